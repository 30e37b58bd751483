//! Ring streams, across real processes: lossy readers see whole records or an overrun,
//! lossless readers lose nothing, dead readers and writers never wedge anyone.

mod common;

use common::{fork_child, NameGuard, Signal};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

const REC: usize = 64;

/// A self-checking fixed-size record: sequence number, payload derived from it, checksum.
fn record(seq: u64) -> [u8; REC] {
    let mut r = [0u8; REC];
    r[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in r[8..REC - 8].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    let sum = checksum(&r[..REC - 8]);
    r[REC - 8..].copy_from_slice(&sum.to_le_bytes());
    r
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The sequence number of an intact record, or `None` if it is torn or wrong.
fn check_record(r: &[u8]) -> Option<u64> {
    let seq = u64::from_le_bytes(r[..8].try_into().unwrap());
    (r == record(seq)).then_some(seq)
}

fn ring(name: &str, cap: u64, policy: fshm::RingPolicy) -> fshm::Stream {
    fshm::OpenOptions::new()
        .ring(cap, policy)
        .create(name)
        .expect("create ring")
}

#[test]
fn lossy_reader_sees_whole_records_or_an_overrun() {
    let g = NameGuard::new("lossy");
    let cap = 64 * 1024;
    let total: u64 = 200_000; // 12.8 MB of records through a 64 KiB ring
    let lapped = Signal::new();
    let name = g.name().to_owned();
    let mut writer = fork_child(|| {
        let mut s = ring(&name, cap, fshm::RingPolicy::Lossy);
        let mut batch = Vec::with_capacity(REC * 37);
        for seq in 0..total {
            batch.extend_from_slice(&record(seq));
            // Writes of varying sizes: 1 to 37 records, never aligned to the ring.
            if batch.len() >= REC * (1 + (seq as usize % 37)) {
                s.write_all(&batch).unwrap();
                batch.clear();
            }
            if seq == 10 * cap / REC as u64 {
                lapped.notify(); // the ring has been overwritten ten times over
            }
        }
        s.write_all(&batch).unwrap();
        0
    });
    lapped.wait();
    let reader = fshm::Stream::open(g.name()).unwrap();
    reader.seek_to_start();
    let mut f = reader.follow();
    let mut buf = vec![0u8; 8 * 1024];
    let (mut pending, mut good, mut overruns, mut last) = (Vec::new(), 0u64, 0u64, None);
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) => {
                let o = fshm::overrun_of(&e).expect("only overrun errors");
                assert!(o.lost() > 0);
                overruns += 1;
                // Resume at the next record boundary after the oldest byte held.
                pending.clear();
                let skip = (REC as u64 - o.resume_at() % REC as u64) % REC as u64;
                let mut sink = vec![0u8; skip as usize];
                (&reader).read_exact(&mut sink).unwrap();
                continue;
            }
        }
        let whole = pending.len() / REC * REC;
        for r in pending[..whole].chunks(REC) {
            let seq = check_record(r).expect("a torn or corrupt record reached the reader");
            assert!(last.is_none_or(|l| seq > l), "records out of order");
            last = Some(seq);
            good += 1;
        }
        pending.drain(..whole);
    }
    writer.assert_success();
    assert!(
        overruns >= 1,
        "the reader started ten capacities behind: it must be overrun"
    );
    assert_eq!(last, Some(total - 1), "the last record is always held");
    assert!(good >= cap / REC as u64 / 2, "only {good} records read");
    assert!(reader.lost_bytes() > 0);
}

trait SeekToStart {
    fn seek_to_start(&self);
}

impl SeekToStart for fshm::Stream {
    /// Asks for position 0, which a lapped ring no longer holds: a clear error.
    fn seek_to_start(&self) {
        let e = (&*self).seek(SeekFrom::Start(0)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("no longer held"), "{e}");
    }
}

/// Byte `i` of the lossless test stream.
fn pattern(i: u64) -> u8 {
    (i ^ (i >> 8) ^ (i >> 16)) as u8
}

#[test]
fn lossless_fast_and_slow_readers_lose_nothing() {
    let g = NameGuard::new("lossless");
    let total: u64 = 4 << 20;
    let mut writer = ring(g.name(), 16 * 1024, fshm::RingPolicy::Lossless);
    let attached = Signal::new();
    let name = g.name().to_owned();
    let reader = |chunk: usize| {
        let name = name.clone();
        let attached = &attached;
        fork_child(move || {
            let s = fshm::Stream::open(&name).unwrap();
            assert!(s.is_attached());
            attached.notify();
            let mut f = s.follow();
            let mut buf = vec![0u8; chunk];
            let mut at = 0u64;
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if b != pattern(at) {
                        return 2;
                    }
                    at += 1;
                }
            }
            if at == total {
                0
            } else {
                3
            }
        })
    };
    let mut fast = reader(1 << 20);
    let mut slow = reader(61);
    attached.wait();
    attached.wait();
    let data: Vec<u8> = (0..total).map(pattern).collect();
    let mut off = 0usize;
    let mut size = 1usize;
    while off < data.len() {
        let end = (off + size).min(data.len());
        writer.write_all(&data[off..end]).unwrap();
        off = end;
        size = size * 7 % 20_011 + 1;
    }
    drop(writer);
    fast.assert_success();
    slow.assert_success();
}

#[test]
fn killed_lossless_reader_unblocks_the_writer() {
    let g = NameGuard::new("deadreader");
    let cap = 16 * 1024;
    let writer = ring(g.name(), cap, fshm::RingPolicy::Lossless);
    let attached = Signal::new();
    let name = g.name().to_owned();
    let mut reader = fork_child(|| {
        let s = fshm::Stream::open(&name).unwrap();
        assert!(s.is_attached());
        attached.notify();
        loop {
            std::thread::park(); // attached, and never reads
        }
    });
    attached.wait();
    assert_eq!(fshm::inspect(g.name()).unwrap().attached_readers, 1);
    let chunk = vec![7u8; cap as usize];
    (&writer).write_all(&chunk).unwrap();
    // The ring is full and the reader has read nothing: the writer must wait.
    writer.set_write_timeout(Some(Duration::from_millis(100)));
    let e = (&writer).write(&[1]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert_eq!(writer.len(), cap);

    reader.kill();
    writer.set_write_timeout(Some(Duration::from_secs(5) * common::time_factor()));
    let t = Instant::now();
    (&writer).write_all(&chunk).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2) * common::time_factor(),
        "dead reader held the writer {:?}",
        t.elapsed()
    );
    assert_eq!(writer.len(), 2 * cap);
    assert_eq!(fshm::inspect(g.name()).unwrap().attached_readers, 0);
}

#[test]
fn killed_ring_writer_ends_followers() {
    let g = NameGuard::new("deadwriter");
    let ready = Signal::new();
    let name = g.name().to_owned();
    let mut owner = fork_child(|| {
        let mut s = ring(&name, 8192, fshm::RingPolicy::Lossless);
        s.write_all(b"last words\n").unwrap();
        ready.notify();
        loop {
            std::thread::park();
        }
    });
    ready.wait();
    let guest = fshm::Stream::open(g.name()).unwrap();
    let mut got = String::new();
    let mut f = guest.follow();
    let mut buf = [0u8; 64];
    let n = f.read(&mut buf).unwrap();
    got.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    assert_eq!(got, "last words\n");
    owner.kill();
    let t = Instant::now();
    assert_eq!(
        f.read(&mut buf).unwrap(),
        0,
        "end-of-stream after the writer died"
    );
    assert!(
        t.elapsed() < Duration::from_secs(1) * common::time_factor(),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(guest.owner_state(), fshm::OwnerState::Dead);
    fshm::force_destroy(g.name()).unwrap();
}

#[test]
fn many_small_messages_from_several_appenders_arrive_whole() {
    let g = NameGuard::new("small");
    let owner = ring(g.name(), 4096, fshm::RingPolicy::Lossless);
    let reader = fshm::Stream::open(g.name()).unwrap();
    assert!(reader.is_attached());
    let per: u32 = 20_000;
    let name = g.name().to_owned();
    let appender = |id: u8| {
        let name = name.clone();
        fork_child(move || {
            let mut s = fshm::OpenOptions::new().append(true).open(&name).unwrap();
            for k in 0..per {
                // Messages of 2 to 17 bytes: [id, len, k as bytes..., padding].
                let len = 2 + (k % 16) as usize;
                let mut m = vec![id; len];
                m[1] = len as u8;
                s.write_all(&m).unwrap();
            }
            0
        })
    };
    let mut children = [appender(1), appender(2), appender(3)];
    let mut counts = [0u32; 4];
    let mut stream = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut f = reader.follow();
    while counts[1..].iter().sum::<u32>() < 3 * per {
        let n = f.read(&mut buf).unwrap();
        assert!(n > 0);
        stream.extend_from_slice(&buf[..n]);
        let mut at = 0;
        while at + 2 <= stream.len() && at + stream[at + 1] as usize <= stream.len() {
            let (id, len) = (stream[at], stream[at + 1] as usize);
            assert!(
                (1..=3).contains(&id) && (2..=17).contains(&len),
                "bad message at {at}"
            );
            assert!(
                stream[at + 2..at + len].iter().all(|&b| b == id),
                "interleaved message"
            );
            assert_eq!(
                len,
                2 + (counts[id as usize] % 16) as usize,
                "message lost or reordered"
            );
            counts[id as usize] += 1;
            at += len;
        }
        stream.drain(..at);
    }
    for c in &mut children {
        c.assert_success();
    }
    assert_eq!(counts[1..], [per, per, per]);
    drop(owner);
}

#[test]
fn wrap_around_at_every_alignment() {
    let g = NameGuard::new("wrap");
    let cap = 4096u64;
    let mut owner = ring(g.name(), cap, fshm::RingPolicy::Lossy);
    let mut guest = fshm::Stream::open(g.name()).unwrap();
    let mut at = 0u64;
    // Every start offset in the ring, with sizes that cross the wrap point.
    for start in 0..cap {
        let size = (cap - start % cap) as usize + (start as usize % 97);
        let size = size.min(cap as usize);
        // Move the end to `start` modulo the capacity with a filler write.
        let fill = ((start + cap - at % cap) % cap) as usize;
        let filler: Vec<u8> = (0..fill).map(|i| pattern(at + i as u64)).collect();
        owner.write_all(&filler).unwrap();
        at += fill as u64;
        let chunk: Vec<u8> = (0..size).map(|i| pattern(at + i as u64)).collect();
        owner.write_all(&chunk).unwrap();
        guest.seek(SeekFrom::Start(at)).unwrap();
        let mut back = vec![0u8; size];
        guest.read_exact(&mut back).unwrap();
        assert_eq!(back, chunk, "start {start}, size {size}");
        at += size as u64;
    }
    assert_eq!(owner.len(), at);
}

/// A lossy reader whose position the writer has overwritten still learns where it is
/// (`stream_position`, as C's `ftell` asks), then gets the overrun on its next read, and
/// only a seek that would move it there is refused.
#[test]
fn an_overrun_reader_can_ask_its_position() {
    let g = NameGuard::new("ringpos");
    let mut owner = ring(g.name(), 4096, fshm::RingPolicy::Lossy);
    let mut guest = fshm::Stream::open(g.name()).unwrap();
    owner.write_all(&[7u8; 3 * 4096]).unwrap();
    assert_eq!(guest.stream_position().unwrap(), 0);
    let e = guest.seek(SeekFrom::Start(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(
        guest.stream_position().unwrap(),
        0,
        "a refused seek moves nothing"
    );
    let mut buf = [0u8; 16];
    let e = guest.read(&mut buf).unwrap_err();
    assert_eq!(
        fshm::overrun_of(&e).map(|o| o.lost()),
        Some(2 * 4096),
        "{e}"
    );
    assert_eq!(guest.stream_position().unwrap(), 2 * 4096);
}

#[test]
fn ring_rejects_what_it_cannot_do() {
    let g = NameGuard::new("ringbad");
    for cap in [0u64, 1000, 4097] {
        let e = fshm::OpenOptions::new()
            .ring(cap, fshm::RingPolicy::Lossy)
            .create(g.name())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{cap}: {e}");
        assert!(!common::shm_exists(g.name()));
    }
    let s = ring(g.name(), 4096, fshm::RingPolicy::Lossy);
    assert_eq!(s.set_len(0).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(
        s.write_at(0, b"x").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let e = fshm::OpenOptions::new()
        .ring(4096, fshm::RingPolicy::Lossy)
        .open(g.name())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let big = vec![0u8; 5000];
    let e = fshm::OpenOptions::new()
        .append(true)
        .open(g.name())
        .unwrap()
        .write(&big)
        .unwrap_err();
    assert_eq!(fshm::errno_of(&e), libc::EFBIG, "{e}");
    assert_eq!(s.len(), 0, "a refused append changes nothing");
}

#[test]
fn full_slot_table_is_a_clear_error() {
    let g = NameGuard::new("slots");
    let _owner = ring(g.name(), 4096, fshm::RingPolicy::Lossless);
    let readers: Vec<_> = (0..32)
        .map(|_| fshm::Stream::open(g.name()).unwrap())
        .collect();
    assert!(readers.iter().all(|r| r.is_attached()));
    let e = fshm::Stream::open(g.name()).unwrap_err();
    assert_eq!(fshm::errno_of(&e), libc::EBUSY, "{e}");
    // Read-only guests need no slot.
    let ro = fshm::OpenOptions::new()
        .read_only(true)
        .open(g.name())
        .unwrap();
    assert!(!ro.is_attached());
    drop(readers);
    let again = fshm::Stream::open(g.name()).unwrap();
    assert!(again.is_attached());
}

//! Stress (issue 7): several appender processes and several follower processes on one
//! stream, with self-describing checksummed records of random sizes from 1 B to 1 MiB;
//! every follower must see every record exactly once, whole, in commit order, and all
//! followers the same order. Then the same on a lossless ring, and many streams opened
//! and closed at once by processes that are owners and guests of each other's streams.
//!
//! `FSHM_SOAK=1` multiplies the volume by ten. The figures are printed with `eprintln!`
//! (run with `--nocapture` to see them); `RELIABILITY.md` cites them.

mod common;

use common::{fork_child, NameGuard, Rng, Signal};
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

const WRITERS: u32 = 3;
const FOLLOWERS: usize = 3;
const MAGIC: u32 = u32::from_le_bytes(*b"REC1");
/// `[magic u32][writer u32][seq u32][len u32][checksum u64]`, then `len` payload bytes.
const HEADER: usize = 24;
const MAX_PAYLOAD: usize = 1 << 20;
const SEED: u64 = 0x7e57_0007;

/// How many times the normal volume to run (10 with `FSHM_SOAK=1`).
fn soak() -> u32 {
    match std::env::var("FSHM_SOAK").as_deref() {
        Ok("1") => 10,
        _ => 1,
    }
}

/// A payload size from 1 B to 1 MiB, skewed toward small: 70 % up to 256 B, 25 % up
/// to 16 KiB, 4.5 % up to 256 KiB, 0.5 % up to 1 MiB. Each writer's first record is
/// 1 B and its second 1 MiB, so both extremes always occur.
fn payload_size(seq: u32, rng: &mut Rng) -> usize {
    match seq {
        0 => return 1,
        1 => return MAX_PAYLOAD,
        _ => {}
    }
    (match rng.below(1000) {
        0..=4 => (256 << 10) + rng.below((768 << 10) + 1),
        5..=49 => (16 << 10) + rng.below(240 << 10),
        50..=299 => 256 + rng.below((16 << 10) - 256),
        _ => 1 + rng.below(256),
    }) as usize
}

fn writer_rng(w: u32) -> Rng {
    Rng::new(SEED + u64::from(w))
}

/// A hash that eats 8 bytes a step (FNV-1a byte by byte would dominate the run time).
fn hash(h: u64, bytes: &[u8]) -> u64 {
    let mut h = h;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap());
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn fill_payload(w: u32, seq: u32, buf: &mut [u8]) {
    Rng::new(u64::from(w) << 32 ^ u64::from(seq) ^ 0x5eed).fill(buf);
}

fn record_checksum(w: u32, seq: u32, payload: &[u8]) -> u64 {
    let head = (u64::from(w) << 32 | u64::from(seq)) ^ (payload.len() as u64) << 8;
    hash(head.wrapping_mul(0xff51_afd7_ed55_8ccd), payload)
}

fn record(w: u32, seq: u32, size: usize) -> Vec<u8> {
    let mut r = vec![0u8; HEADER + size];
    fill_payload(w, seq, &mut r[HEADER..]);
    let sum = record_checksum(w, seq, &r[HEADER..]);
    r[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    r[4..8].copy_from_slice(&w.to_le_bytes());
    r[8..12].copy_from_slice(&seq.to_le_bytes());
    r[12..16].copy_from_slice(&(size as u32).to_le_bytes());
    r[16..24].copy_from_slice(&sum.to_le_bytes());
    r
}

/// What a reader saw: records, bytes, and a hash of the `(writer, seq)` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    records: u64,
    bytes: u64,
    order: u64,
}

/// Checks a byte sequence of records as it arrives: each whole (magic, checksum,
/// payload), each writer's sequence numbers increasing without gaps or repeats.
struct Checker {
    pending: Vec<u8>,
    start: usize,
    next: Vec<u32>,
    seen: Seen,
    scratch: Vec<u8>,
}

impl Checker {
    fn new() -> Checker {
        Checker {
            pending: Vec::new(),
            start: 0,
            next: vec![0; WRITERS as usize],
            seen: Seen {
                records: 0,
                bytes: 0,
                order: 0xcbf2_9ce4_8422_2325,
            },
            scratch: vec![0u8; MAX_PAYLOAD],
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.seen.bytes += bytes.len() as u64;
        self.pending.extend_from_slice(bytes);
        loop {
            let p = &self.pending[self.start..];
            if p.len() < HEADER {
                break;
            }
            let f = |i: usize| u32::from_le_bytes(p[i..i + 4].try_into().unwrap());
            let at = self.seen.bytes - (self.pending.len() - self.start) as u64;
            assert_eq!(f(0), MAGIC, "no record starts at byte {at}");
            let (w, seq, len) = (f(4), f(8), f(12) as usize);
            assert!(w < WRITERS, "writer {w} at byte {at}");
            assert!(
                (1..=MAX_PAYLOAD).contains(&len),
                "length {len} at byte {at}"
            );
            if p.len() < HEADER + len {
                break;
            }
            let payload = &p[HEADER..HEADER + len];
            let sum = u64::from_le_bytes(p[16..24].try_into().unwrap());
            assert_eq!(
                record_checksum(w, seq, payload),
                sum,
                "record {w}/{seq} at byte {at} is torn"
            );
            fill_payload(w, seq, &mut self.scratch[..len]);
            assert!(
                payload == &self.scratch[..len],
                "record {w}/{seq} at byte {at} has a wrong payload"
            );
            assert_eq!(
                seq, self.next[w as usize],
                "writer {w}: record lost, repeated or reordered at byte {at}"
            );
            self.next[w as usize] += 1;
            self.seen.records += 1;
            self.seen.order = hash(
                self.seen.order,
                &(u64::from(w) << 32 | u64::from(seq)).to_le_bytes(),
            );
            self.start += HEADER + len;
        }
        if self.start > (4 << 20) {
            self.pending.drain(..self.start);
            self.start = 0;
        }
    }

    fn finish(self) -> Seen {
        assert_eq!(
            self.start,
            self.pending.len(),
            "the stream ended inside a record"
        );
        self.seen
    }
}

/// Follows `name` to end-of-stream, checking every record; returns what it saw.
fn follow_and_check(s: &fshm::Stream) -> Seen {
    let mut f = s.follow().timeout(Some(common::patience()));
    let mut buf = vec![0u8; 256 << 10];
    let mut c = Checker::new();
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => c.feed(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("follower: {e}"),
        }
    }
    c.finish()
}

/// Expected records and bytes of a whole run.
fn expected(per_writer: u32) -> (u64, u64) {
    let mut bytes = 0;
    for w in 0..WRITERS {
        let mut rng = writer_rng(w);
        for seq in 0..per_writer {
            bytes += (HEADER + payload_size(seq, &mut rng)) as u64;
        }
    }
    (u64::from(WRITERS * per_writer), bytes)
}

/// Runs 3 appenders and 3 followers on the stream `owner` (created by the caller);
/// returns what the followers saw (all checked equal) and the elapsed time.
fn appenders_and_followers(owner: fshm::Stream, per_writer: u32) -> (Seen, Option<Seen>, Duration) {
    let name = owner.name().to_owned();
    let name = name.as_str();
    let ready = Signal::new();
    let go = Signal::new();
    let reports: Vec<Signal> = (0..FOLLOWERS).map(|_| Signal::new()).collect();
    let mut followers: Vec<_> = reports
        .iter()
        .map(|report| {
            let ready = &ready;
            fork_child(move || {
                let s = fshm::Stream::open(name).unwrap();
                assert_eq!(
                    s.is_attached(),
                    s.is_ring(),
                    "a lossless ring guest attaches"
                );
                ready.notify();
                let seen = follow_and_check(&s);
                report.send_u64(seen.records);
                report.send_u64(seen.bytes);
                report.send_u64(seen.order);
                0
            })
        })
        .collect();
    for _ in 0..FOLLOWERS {
        ready.wait();
    }
    let mut writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (ready, go) = (&ready, &go);
            fork_child(move || {
                let mut s = fshm::OpenOptions::new().append(true).open(name).unwrap();
                ready.notify();
                go.wait();
                let mut rng = writer_rng(w);
                for seq in 0..per_writer {
                    let r = record(w, seq, payload_size(seq, &mut rng));
                    // One write call is one append: it lands whole or not at all.
                    assert_eq!(s.write(&r).unwrap(), r.len());
                }
                0
            })
        })
        .collect();
    for _ in 0..WRITERS {
        ready.wait();
    }
    let t = Instant::now();
    for _ in 0..WRITERS {
        go.notify();
    }
    for w in &mut writers {
        w.assert_success();
    }
    // A linear stream holds everything: the owner checks it too.
    let whole = (!owner.is_ring()).then(|| {
        let mut c = Checker::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0;
        loop {
            let n = owner.read_at(pos, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            c.feed(&buf[..n]);
            pos += n as u64;
        }
        c.finish()
    });
    // Closing the owner ends the stream for the followers.
    drop(owner);
    let seen: Vec<Seen> = reports
        .iter()
        .map(|r| Seen {
            records: r.recv_u64(),
            bytes: r.recv_u64(),
            order: r.recv_u64(),
        })
        .collect();
    for f in &mut followers {
        f.assert_success();
    }
    let elapsed = t.elapsed();
    for s in &seen[1..] {
        assert_eq!(*s, seen[0], "two followers saw different sequences");
    }
    if let Some(w) = whole {
        assert_eq!(w, seen[0], "the followers' order differs from the stream's");
    }
    (seen[0], whole, elapsed)
}

#[test]
fn three_appenders_three_followers_on_a_linear_stream_see_every_record_once_in_order() {
    let per_writer = 2_000 * soak();
    let (records, bytes) = expected(per_writer);
    let g = NameGuard::new("stress-linear");
    let owner = fshm::OpenOptions::new()
        .max_size(bytes.next_power_of_two().max(1 << 30))
        .create(g.name())
        .unwrap();
    let (seen, whole, elapsed) = appenders_and_followers(owner, per_writer);
    assert_eq!((seen.records, seen.bytes), (records, bytes));
    assert!(whole.is_some());
    eprintln!(
        "stress linear: {WRITERS} appenders x {per_writer} records, {FOLLOWERS} followers + owner: \
         {records} records, {bytes} bytes checked by each of {} readers ({} records, {} bytes in all), \
         seed {SEED:#x}, {elapsed:.2?}",
        FOLLOWERS + 1,
        records * (FOLLOWERS as u64 + 1),
        bytes * (FOLLOWERS as u64 + 1),
    );
    g.assert_gone();
}

#[test]
fn three_appenders_three_followers_on_a_lossless_ring_see_every_record_once_in_order() {
    const CAP: u64 = 4 << 20;
    let per_writer = 2_000 * soak();
    let (records, bytes) = expected(per_writer);
    let g = NameGuard::new("stress-ring");
    let owner = fshm::OpenOptions::new()
        .ring(CAP, fshm::RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    let (seen, whole, elapsed) = appenders_and_followers(owner, per_writer);
    assert_eq!((seen.records, seen.bytes), (records, bytes));
    assert!(whole.is_none());
    eprintln!(
        "stress lossless ring ({} MiB): {WRITERS} appenders x {per_writer} records, {FOLLOWERS} \
         followers: {records} records, {bytes} bytes checked by each follower ({} records, {} bytes \
         in all; {:.0}x the capacity), seed {SEED:#x}, {elapsed:.2?}",
        CAP >> 20,
        records * FOLLOWERS as u64,
        bytes * FOLLOWERS as u64,
        bytes as f64 / CAP as f64,
    );
    g.assert_gone();
}

/// Removes every name of a many-streams run, also when the test fails.
struct ManyGuard(Vec<String>);

impl Drop for ManyGuard {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = fshm::force_destroy(n);
        }
    }
}

#[test]
fn many_processes_create_open_and_close_many_streams_and_leave_nothing() {
    const PROCS: usize = 8;
    let per_proc = 50 * soak() as usize;
    let prefix = common::unique_name("many");
    let name_of = |p: usize, j: usize| format!("{prefix}-{p}-{j}");
    let guard = ManyGuard(
        (0..PROCS)
            .flat_map(|p| (0..per_proc).map(move |j| (p, j)))
            .map(|(p, j)| name_of(p, j))
            .collect(),
    );
    let name_of = &name_of;
    let t = Instant::now();
    // Process p owns its streams p/j and is the guest of (p+1)/j: it creates its own,
    // opens its neighbour's (polling until it exists), reads its greeting, answers, and
    // closes its own once its own guest has answered.
    let mut children: Vec<_> = (0..PROCS)
        .map(|p| {
            fork_child(move || {
                let deadline = Instant::now() + common::patience();
                for j in 0..per_proc {
                    let mine = name_of(p, j);
                    let mut opts = fshm::OpenOptions::new();
                    match j % 5 {
                        0 => opts.ring(64 << 10, fshm::RingPolicy::Lossless),
                        1 => opts.ring(64 << 10, fshm::RingPolicy::Lossy),
                        2 => opts.mode(0o644).max_size(4096),
                        3 => opts.reclaim(true),
                        _ => opts.append(true),
                    };
                    let mut own = opts.create(&mine).unwrap();
                    own.write_all(b"hello").unwrap();
                    let theirs = name_of((p + 1) % PROCS, j);
                    let guest = loop {
                        match fshm::Stream::open(&theirs) {
                            Ok(s) => break s,
                            Err(e) if e.kind() == ErrorKind::NotFound => {
                                assert!(Instant::now() < deadline, "{theirs} never appeared");
                                std::thread::sleep(Duration::from_micros(200));
                            }
                            Err(e) => panic!("open {theirs}: {e}"),
                        }
                    };
                    assert_eq!(
                        guest.wait_for(4, Some(common::patience())),
                        fshm::WaitStatus::Data
                    );
                    let mut hello = [0u8; 5];
                    guest.read_at(0, &mut hello).unwrap();
                    assert_eq!(&hello, b"hello");
                    // Answer: rings append, linear streams take it at offset 5.
                    if guest.is_ring() {
                        (&guest).write_all(b"ack").unwrap();
                    } else {
                        guest.write_at(5, b"ack").unwrap();
                    }
                    drop(guest);
                    assert_eq!(
                        own.wait_for(5, Some(common::patience())),
                        fshm::WaitStatus::Data,
                        "{mine}: no answer"
                    );
                    assert_eq!(own.len(), 8);
                    drop(own);
                    assert!(!common::shm_exists(&mine), "{mine} outlived its owner");
                }
                0
            })
        })
        .collect();
    // The first child to fail names itself at once: a child that fails early makes its
    // neighbour wait in vain for streams it will never create.
    common::assert_all_succeed(&mut children);
    let elapsed = t.elapsed();
    let left: Vec<&String> = guard.0.iter().filter(|n| common::shm_exists(n)).collect();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    let listed = fshm::list().unwrap();
    assert!(!listed.iter().any(|i| i.name.starts_with(&prefix)));
    eprintln!(
        "stress many streams: {PROCS} processes x {per_proc} streams = {} streams created, \
         each opened by one other process, {} opens in all, none left, {elapsed:.2?}",
        PROCS * per_proc,
        2 * PROCS * per_proc,
    );
}

//! Zero-copy, across real processes: immutable streams never rewrite committed bytes;
//! in-place readers (`BufRead`) see only committed bytes, every one of them; in-place
//! writers (`reserve`) publish all of a commit or nothing; a process killed holding a
//! reservation or unconsumed lent bytes wedges nobody; bad input gets a clear error.

mod common;

use common::{fork_child, NameGuard, Signal, Status};
use fshm::{OpenOptions, RingPolicy, Stream};
use std::io::{BufRead, ErrorKind, Read, Seek, SeekFrom, Write};
use std::time::Duration;

/// Filler for reserved bytes that are never committed: no committed byte equals it.
const JUNK: u8 = 0xEE;

/// A message: 4-byte little-endian length `n`, then `n` bytes derived from `(writer,
/// seq)` (never [`JUNK`]).
fn message(writer: u8, seq: u32) -> Vec<u8> {
    let n = 4 + (seq as usize * 7919 + writer as usize * 31) % 2997;
    let mut m = Vec::with_capacity(4 + n);
    m.extend_from_slice(&(n as u32).to_le_bytes());
    m.extend(payload(writer, seq, n));
    m
}

fn payload(writer: u8, seq: u32, n: usize) -> impl Iterator<Item = u8> {
    let head = [writer, seq as u8, (seq >> 8) as u8, (seq >> 16) as u8];
    (0..n).map(move |i| {
        if i < 4 {
            head[i]
        } else {
            (i as u8).wrapping_mul(13).wrapping_add(seq as u8) % 0xE0
        }
    })
}

/// Checks one whole message at the start of `b`; returns `(writer, seq, its size)`.
fn check_message(b: &[u8]) -> (u8, u32, usize) {
    assert!(b.len() >= 4, "a partial length prefix was visible");
    let n = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
    assert!(
        (4..=3000).contains(&n) && b.len() >= 4 + n,
        "a bad or partial message was visible (len {n}, have {})",
        b.len() - 4
    );
    let body = &b[4..4 + n];
    assert!(n >= 4, "message too short to identify");
    let (writer, seq) = (body[0], u32::from_le_bytes([body[1], body[2], body[3], 0]));
    assert!(
        body.iter().copied().eq(payload(writer, seq, n)),
        "message {writer}/{seq}: wrong bytes (uncommitted or rewritten)"
    );
    (writer, seq, 4 + n)
}

/// Writes `msg` in place: reserves more than needed, fills the rest with junk, commits
/// the message only. Every fifth message is first reserved, filled and dropped.
fn put_in_place(s: &mut Stream, seq: u32, msg: &[u8]) {
    if seq % 5 == 0 {
        let mut r = s.reserve(msg.len()).unwrap();
        r.copy_from_slice(msg);
        drop(r); // commits nothing
    }
    let mut r = s.reserve(msg.len() + 100).unwrap();
    r[..msg.len()].copy_from_slice(msg);
    r[msg.len()..].fill(JUNK);
    r.commit(msg.len()).unwrap();
}

/// Reads messages in place until end-of-stream; returns `(writer, seq)` in order.
fn read_messages(r: &mut impl BufRead) -> Vec<(u8, u32)> {
    let mut got = Vec::new();
    loop {
        let buf = r.fill_buf().unwrap();
        if buf.is_empty() {
            return got;
        }
        // Commits are whole messages: a lent buffer never ends inside one.
        let mut at = 0;
        while at < buf.len() {
            let (w, seq, size) = check_message(&buf[at..]);
            got.push((w, seq));
            at += size;
        }
        r.consume(at);
    }
}

fn immutable(name: &str) -> Stream {
    OpenOptions::new().immutable(true).create(name).unwrap()
}

fn kind(r: std::io::Result<impl std::fmt::Debug>) -> ErrorKind {
    r.expect_err("expected an error").kind()
}

#[test]
fn immutable_stream_never_rewrites_committed_bytes() {
    let g = NameGuard::new("zc-immutable");
    let mut owner = immutable(g.name());
    assert!(owner.is_immutable());
    owner.write_all(b"abcdef").unwrap();
    owner.seek(SeekFrom::Start(2)).unwrap();
    let e = owner.write(b"XY").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(fshm::errno_of(&e), libc::EINVAL);
    assert!(e.to_string().contains(g.name()), "{e}");
    assert!(e.to_string().contains("immutable"), "{e}");
    assert_eq!(kind(owner.write_at(0, b"Z")), ErrorKind::InvalidInput);
    assert_eq!(kind(owner.set_len(3)), ErrorKind::InvalidInput);
    assert_eq!(kind(owner.set_len(100)), ErrorKind::InvalidInput);
    // A seek past the end and a write would leave a gap: not an append either.
    owner.seek(SeekFrom::Start(10)).unwrap();
    assert_eq!(kind(owner.write(b"gap")), ErrorKind::InvalidInput);
    assert_eq!(owner.len(), 6);

    // Guests keep the rule the header records.
    let mut guest = Stream::open(g.name()).unwrap();
    assert!(guest.is_immutable());
    assert_eq!(kind(guest.write(b"Q")), ErrorKind::InvalidInput);
    guest.seek(SeekFrom::End(0)).unwrap();
    guest.write_all(b"gh").unwrap();
    // The owner's position fell behind that append: its write is refused, not misplaced.
    owner.seek(SeekFrom::Start(6)).unwrap();
    assert_eq!(kind(owner.write(b"!")), ErrorKind::InvalidInput);
    // An append handle writes at the end wherever its position stands.
    let mut app = OpenOptions::new().append(true).open(g.name()).unwrap();
    app.write_all(b"ij").unwrap();
    let mut all = Vec::new();
    Stream::open(g.name())
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(all, b"abcdefghij");

    // Bad options.
    let r = OpenOptions::new()
        .immutable(true)
        .ring(4096, RingPolicy::Lossless)
        .create(&format!("{}-ring", g.name()));
    assert_eq!(kind(r), ErrorKind::InvalidInput);
    assert_eq!(
        kind(OpenOptions::new().immutable(true).open(g.name())),
        ErrorKind::InvalidInput
    );
    drop((owner, guest, app));
    g.assert_gone();
}

#[test]
fn in_place_access_is_refused_where_bytes_may_change() {
    let g = NameGuard::new("zc-refused");
    let mut plain = Stream::create(g.name()).unwrap();
    plain.write_all(b"data").unwrap();
    plain.seek(SeekFrom::Start(0)).unwrap();
    let e = plain.fill_buf().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("may change"), "{e}");
    assert_eq!(kind(plain.reserve(4)), ErrorKind::InvalidInput);
    assert_eq!(kind(plain.follow().fill_buf()), ErrorKind::InvalidInput);
    assert_eq!(plain.len(), 4);

    let lossy_guard = NameGuard::new("zc-refused-lossy");
    let lossy_name = lossy_guard.name().to_owned();
    let mut lossy = OpenOptions::new()
        .ring(4096, RingPolicy::Lossy)
        .create(&lossy_name)
        .unwrap();
    lossy.write_all(b"x").unwrap();
    let mut lossy_guest = Stream::open(&lossy_name).unwrap();
    assert_eq!(kind(lossy_guest.fill_buf()), ErrorKind::InvalidInput);

    let ring_guard = NameGuard::new("zc-refused-lossless");
    let ring_name = ring_guard.name().to_owned();
    let mut ring = OpenOptions::new()
        .ring(4096, RingPolicy::Lossless)
        .create(&ring_name)
        .unwrap();
    ring.write_all(b"y").unwrap();
    // Not attached: read-only, or the writer itself.
    let mut ro = OpenOptions::new().read_only(true).open(&ring_name).unwrap();
    assert_eq!(kind(ro.fill_buf()), ErrorKind::InvalidInput);
    assert_eq!(kind(ro.reserve(1)), ErrorKind::PermissionDenied);
    let attached = Stream::open(&ring_name).unwrap();
    assert!(attached.is_attached());
    // A shared follower of a ring could see its position moved by others.
    assert_eq!(kind(attached.follow().fill_buf()), ErrorKind::InvalidInput);
    assert_eq!(kind(ring.reserve(4097)), ErrorKind::FileTooLarge);
    assert_eq!(kind(ring.reserve(0)), ErrorKind::InvalidInput);

    let small_guard = NameGuard::new("zc-refused-small");
    let small = small_guard.name().to_owned();
    let mut imm = OpenOptions::new()
        .immutable(true)
        .max_size(100)
        .create(&small)
        .unwrap();
    imm.write_all(&[1; 60]).unwrap();
    let e = imm.reserve(41).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FileTooLarge);
    assert_eq!(fshm::errno_of(&e), libc::EFBIG);
    assert_eq!(imm.len(), 60);
    imm.reserve(40).unwrap().commit_all().unwrap();
    assert_eq!(imm.len(), 100);
    // A commit past the reservation commits nothing.
    let mut imm2 = Stream::open(&small).unwrap();
    imm2.seek(SeekFrom::End(0)).unwrap();
    assert_eq!(kind(imm2.reserve(1)), ErrorKind::FileTooLarge);
    drop((plain, lossy, lossy_guest, ring, ro, attached, imm, imm2));
    for guard in [&g, &lossy_guard, &ring_guard, &small_guard] {
        guard.assert_gone();
    }
}

#[test]
fn consume_past_what_was_lent_is_an_error() {
    let g = NameGuard::new("zc-consume");
    let mut owner = immutable(g.name());
    owner.write_all(b"abc").unwrap();
    let mut guest = Stream::open(g.name()).unwrap();
    assert_eq!(guest.fill_buf().unwrap(), b"abc");
    owner.write_all(b"def").unwrap();
    // Committed since, but not lent: consume stops at what fill_buf lent.
    guest.consume(5);
    assert_eq!(guest.position(), 3);
    let e = guest.fill_buf().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("consume(5)"), "{e}");
    // Reported once; reading goes on.
    assert_eq!(guest.fill_buf().unwrap(), b"def");
    guest.consume(3);
    assert_eq!(guest.fill_buf().unwrap(), b"");
    drop((owner, guest));
    g.assert_gone();
}

#[test]
fn reservation_commits_all_or_a_prefix_and_dropping_commits_nothing() {
    let g = NameGuard::new("zc-reserve");
    let mut owner = immutable(g.name());
    let mut guest = Stream::open(g.name()).unwrap();
    let mut r = owner.reserve(10).unwrap();
    assert_eq!(r.position(), 0);
    r.fill(JUNK);
    drop(r);
    assert_eq!(owner.len(), 0);
    assert_eq!(guest.fill_buf().unwrap(), b"");
    let mut r = owner.reserve(10).unwrap();
    r[..4].copy_from_slice(b"1234");
    r[4..].fill(JUNK);
    r.commit(4).unwrap();
    assert_eq!((owner.len(), owner.position()), (4, 4));
    let mut r = owner.reserve(3).unwrap();
    r.copy_from_slice(b"567");
    assert_eq!(kind(r.commit(4)), ErrorKind::InvalidInput);
    assert_eq!(owner.len(), 4);
    let mut r = owner.reserve(3).unwrap();
    r.copy_from_slice(b"567");
    r.commit_all().unwrap();
    assert_eq!(guest.fill_buf().unwrap(), b"1234567");
    drop((owner, guest));
    g.assert_gone();
}

#[test]
fn lossless_reader_slot_advances_on_consume_not_before() {
    let g = NameGuard::new("zc-slot");
    let mut owner = OpenOptions::new()
        .ring(4096, RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    owner.set_write_timeout(Some(Duration::from_millis(100)));
    let mut guest = Stream::open(g.name()).unwrap();
    let full: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    owner.write_all(&full).unwrap();
    let lent = guest.fill_buf().unwrap();
    assert_eq!(lent, &full[..]);
    // The ring is full of bytes the reader holds: neither a write nor a reservation may
    // take their place.
    assert_eq!(kind(owner.write(b"z")), ErrorKind::TimedOut);
    assert_eq!(kind(owner.reserve(1)), ErrorKind::TimedOut);
    assert_eq!(lent, &full[..], "lent bytes changed");
    guest.consume(100);
    let mut r = owner.reserve(100).unwrap();
    r.fill(7);
    r.commit_all().unwrap();
    assert_eq!(kind(owner.write(b"z")), ErrorKind::TimedOut);
    let lent = guest.fill_buf().unwrap();
    assert_eq!(&lent[..3996], &full[100..]);
    assert_eq!(&lent[3996..], &[7; 100]);
    // A reader that seeks back may not be lent bytes the writer may overwrite.
    guest.seek(SeekFrom::Current(-1)).unwrap_err(); // 99 is no longer held
    guest.consume(4096);
    guest.seek(SeekFrom::Current(-1)).unwrap();
    assert_eq!(kind(guest.fill_buf()), ErrorKind::InvalidInput);
    let mut one = [0u8; 1];
    guest.read_exact(&mut one).unwrap();
    assert_eq!(one, [7]);
    drop((owner, guest));
    g.assert_gone();
}

#[test]
fn immutable_in_place_writers_and_appenders_readers_see_every_committed_byte() {
    const PER_WRITER: u32 = 3000;
    let g = NameGuard::new("zc-linear");
    let name = g.name();
    let owner = OpenOptions::new()
        .immutable(true)
        .max_size(64 << 20)
        .create(name)
        .unwrap();
    let go = Signal::new();
    // Writer 1 writes in place, writer 2 appends by copying, writer 3 in place with an
    // append handle: all three at once.
    let spawn = |writer: u8| {
        let go = &go;
        fork_child(move || {
            let mut s = OpenOptions::new().append(writer != 1).open(name).unwrap();
            go.wait();
            for seq in 0..PER_WRITER {
                let m = message(writer, seq);
                if writer == 2 {
                    s.write_all(&m).unwrap();
                } else {
                    put_in_place_retrying(&mut s, &m, writer == 1);
                }
            }
            0
        })
    };
    let mut writers: Vec<_> = (1..=3).map(spawn).collect();
    // Two readers: one in this process, one in another, both following in place.
    let mut reader = fork_child(|| {
        let s = Stream::open(name).unwrap();
        let got = read_messages(&mut s.follow());
        i32::from(!counts_ok(&got, PER_WRITER))
    });
    for _ in 0..3 {
        go.notify();
    }
    let mut s = Stream::open(name).unwrap();
    let closer = std::thread::spawn(move || {
        for w in &mut writers {
            w.assert_success();
        }
        drop(owner); // ends the followers
    });
    let got = read_messages(&mut s.follow_mut());
    closer.join().unwrap();
    assert!(counts_ok(&got, PER_WRITER));
    assert_eq!(reader.wait(), Status::Exited(0));
    drop(s);
    g.assert_gone();
}

/// Writes `m` in place (reserving 100 bytes more, filled with junk, not committed). A
/// handle without append mode must stand at the end: it moves there, and tries again
/// when another process appended between the seek and the reservation.
fn put_in_place_retrying(s: &mut Stream, m: &[u8], seek: bool) {
    loop {
        if seek {
            s.seek(SeekFrom::End(0)).unwrap();
        }
        match s.reserve(m.len() + 100) {
            Ok(mut r) => {
                r[..m.len()].copy_from_slice(m);
                r[m.len()..].fill(JUNK);
                r.commit(m.len()).unwrap();
                return;
            }
            Err(e) if seek && e.kind() == ErrorKind::InvalidInput => {}
            Err(e) => panic!("reserve: {e}"),
        }
    }
}

/// Every writer's messages arrived, each once, in its order.
fn counts_ok(got: &[(u8, u32)], per_writer: u32) -> bool {
    (1..=3u8).all(|w| {
        let seqs: Vec<u32> = got.iter().filter(|m| m.0 == w).map(|m| m.1).collect();
        seqs == (0..per_writer).collect::<Vec<_>>()
    })
}

#[test]
fn lossless_ring_in_place_writer_and_readers_lose_nothing() {
    const MESSAGES: u32 = 20_000; // about 30 MB through a 64 KiB ring
    let g = NameGuard::new("zc-ring");
    let name = g.name();
    let (created, ready) = (Signal::new(), Signal::new());
    let mut writer = fork_child(|| {
        let mut s = OpenOptions::new()
            .ring(64 * 1024, RingPolicy::Lossless)
            .create(name)
            .unwrap();
        created.notify();
        // Waits for both readers to attach.
        ready.wait();
        ready.wait();
        for seq in 0..MESSAGES {
            put_in_place(&mut s, seq, &message(1, seq));
        }
        0
    });
    created.wait();
    let reader = |ready: &Signal| {
        let mut s = Stream::open(name).unwrap();
        assert!(s.is_attached());
        ready.notify();
        let got = read_messages(&mut s.follow_mut());
        got == (0..MESSAGES).map(|q| (1, q)).collect::<Vec<_>>()
    };
    let mut other = fork_child(|| i32::from(!reader(&ready)));
    assert!(
        reader(&ready),
        "the in-process reader lost or reordered messages"
    );
    assert_eq!(other.wait(), Status::Exited(0));
    writer.assert_success();
    g.assert_gone();
}

#[test]
fn a_process_killed_holding_a_reservation_blocks_no_appender_and_shows_nothing() {
    let g = NameGuard::new("zc-kill-reserve");
    let name = g.name();
    let mut owner = immutable(name);
    owner.write_all(b"head|").unwrap();
    let held = Signal::new();
    let mut victim = fork_child(|| {
        let mut s = OpenOptions::new().append(true).open(name).unwrap();
        let mut r = s.reserve(1000).unwrap();
        r.fill(JUNK);
        held.notify();
        loop {
            std::thread::park(); // holds the reservation until killed
        }
    });
    held.wait();
    let started = Signal::new();
    let mut other = fork_child(|| {
        let mut s = OpenOptions::new().append(true).open(name).unwrap();
        started.notify();
        s.write_all(b"after").unwrap(); // waits for the reservation's append token
        0
    });
    started.wait();
    assert_eq!(owner.len(), 5, "an uncommitted reservation became visible");
    assert_eq!(victim.kill(), Status::Signaled(libc::SIGKILL));
    other.assert_success();
    let mut all = Vec::new();
    Stream::open(name).unwrap().read_to_end(&mut all).unwrap();
    assert_eq!(all, b"head|after");
    drop(owner);
    g.assert_gone();
}

#[test]
fn a_reader_killed_holding_lent_bytes_does_not_wedge_the_writer() {
    let g = NameGuard::new("zc-kill-reader");
    let name = g.name();
    let mut owner = OpenOptions::new()
        .ring(4096, RingPolicy::Lossless)
        .create(name)
        .unwrap();
    let holding = Signal::new();
    let mut victim = fork_child(|| {
        let mut s = Stream::open(name).unwrap();
        let lent = s.fill_buf().unwrap();
        holding.send_u64(lent.len() as u64);
        loop {
            std::thread::park();
        }
    });
    owner.write_all(&[1; 4096]).unwrap();
    // The victim attached before the write (it signals after fill_buf, which may have
    // seen 0 or 4096 bytes); either way it has consumed nothing.
    let _ = holding.recv_u64();
    owner.set_write_timeout(Some(Duration::from_millis(20)));
    assert_eq!(kind(owner.write(&[2; 10])), ErrorKind::TimedOut);
    assert_eq!(victim.kill(), Status::Signaled(libc::SIGKILL));
    owner.set_write_timeout(Some(Duration::from_secs(10) * common::time_factor()));
    let mut r = owner.reserve(4096).unwrap();
    r.fill(3);
    r.commit_all().unwrap();
    drop(owner);
    g.assert_gone();
}

#[test]
fn a_header_claiming_an_immutable_ring_is_refused() {
    use std::os::unix::fs::FileExt;
    let g = NameGuard::new("zc-hostile-flags");
    let owner = OpenOptions::new()
        .ring(4096, RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    let object = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(common::shm_path(g.name()))
        .unwrap();
    let mut flags = [0u8; 4];
    object.read_exact_at(&mut flags, 32).unwrap();
    let flags = u32::from_ne_bytes(flags) | fshm::header::FLAG_IMMUTABLE;
    object.write_all_at(&flags.to_ne_bytes(), 32).unwrap();
    let e = Stream::open(g.name()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert_eq!(fshm::errno_of(&e), libc::EPROTO);
    assert!(e.to_string().contains("flags"), "{e}");
    drop(owner);
    g.assert_gone();
}

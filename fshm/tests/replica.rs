//! Replicas (`OpenOptions::replica_of`) and ring skips (`Stream::skip_to`): the two core
//! pieces a mirror between hosts (`fshm-tunnel`) builds on.

mod common;

use common::NameGuard;
use std::io::{BufRead, ErrorKind, Read, Write};

#[test]
fn a_replica_is_read_only_for_guests_and_names_its_source() {
    let g = NameGuard::new("replica-ro");
    let mut owner = fshm::OpenOptions::new()
        .mode(0o644)
        .replica_of("zenoh:tcp/127.0.0.1:7447/src")
        .create(g.name())
        .unwrap();
    owner.write_all(b"hello").unwrap();
    let mut guest = fshm::Stream::open(g.name()).unwrap();
    assert!(!guest.is_writable());
    let e = guest.write_all(b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnlyFilesystem);
    assert!(e.to_string().contains("replica"), "{e}");
    assert_eq!(fshm::errno_of(&e), libc::EROFS);
    let e = guest.set_len(0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnlyFilesystem);
    let mut s = String::new();
    guest.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello");
    let info = fshm::inspect(g.name()).unwrap();
    assert_eq!(
        info.replica_of.as_deref(),
        Some("zenoh:tcp/127.0.0.1:7447/src")
    );
    assert_eq!(fshm::inspect(g.name()).unwrap().len, 5);
    // A lossless replica's guest reads as a lossy reader: it cannot hold the importer.
    drop(owner);
}

#[test]
fn an_ordinary_stream_is_no_replica() {
    let g = NameGuard::new("replica-none");
    let _owner = fshm::Stream::create(g.name()).unwrap();
    assert_eq!(fshm::inspect(g.name()).unwrap().replica_of, None);
}

#[test]
fn bad_replica_sources_are_refused_and_create_nothing() {
    let g = NameGuard::new("replica-bad");
    for bad in [String::new(), "x".repeat(257), "a\0b".to_owned()] {
        let e = fshm::OpenOptions::new()
            .replica_of(&bad)
            .create(g.name())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert!(!common::shm_exists(g.name()));
    }
    let _o = fshm::Stream::create(g.name()).unwrap();
    let e = fshm::OpenOptions::new()
        .replica_of("x")
        .open(g.name())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn skipped_positions_are_lost_never_stale_data_for_lossy_and_attached_readers() {
    for policy in [fshm::RingPolicy::Lossy, fshm::RingPolicy::Lossless] {
        let g = NameGuard::new("skip");
        let mut w = fshm::OpenOptions::new()
            .ring(4096, policy)
            .create(g.name())
            .unwrap();
        w.write_all(&[b'a'; 1000]).unwrap();
        // A reader that read everything, then sits at 1000 (attached for a lossless ring).
        let mut r = fshm::Stream::open(g.name()).unwrap();
        let mut buf = vec![0u8; 4096];
        assert_eq!(r.read(&mut buf).unwrap(), 1000);
        // Skip less than a capacity: the slots of 1000..1500 hold stale bytes ('a' of
        // nothing written there); they must never be read as data.
        assert_eq!(w.skip_to(1500).unwrap(), 500);
        assert_eq!(w.skip_to(1200).unwrap(), 0, "a skip never moves back");
        assert_eq!(w.len(), 1500);
        assert_eq!(w.oldest(), 1500);
        w.write_all(b"live").unwrap();
        let e = r.read(&mut buf).unwrap_err();
        let o = fshm::overrun_of(&e).expect("an overrun");
        assert_eq!((o.lost(), o.resume_at()), (500, 1500), "{policy:?}");
        assert_eq!(r.lost_bytes(), 500);
        assert_eq!(r.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"live");
        // A new reader starts past the skip.
        let late = fshm::Stream::open(g.name()).unwrap();
        assert_eq!(late.position(), 1500);
        drop(late);
    }
}

#[test]
fn an_attached_reader_in_place_meets_the_skip_as_an_overrun() {
    let g = NameGuard::new("skip-inplace");
    let mut w = fshm::OpenOptions::new()
        .ring(4096, fshm::RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    w.write_all(b"abc").unwrap();
    let mut r = fshm::Stream::open(g.name()).unwrap();
    assert!(r.is_attached());
    assert_eq!(r.fill_buf().unwrap(), b"abc");
    r.consume(3);
    w.skip_to(10).unwrap();
    w.write_all(b"z").unwrap();
    let e = r.fill_buf().unwrap_err();
    assert_eq!(fshm::overrun_of(&e).map(|o| o.lost()), Some(7));
    assert_eq!(r.fill_buf().unwrap(), b"z");
}

#[test]
fn skip_to_is_refused_on_linear_streams_and_read_only_handles() {
    let g = NameGuard::new("skip-bad");
    let w = fshm::Stream::create(g.name()).unwrap();
    assert_eq!(w.skip_to(10).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(w.len(), 0);
    let g2 = NameGuard::new("skip-ro");
    let _w = fshm::OpenOptions::new()
        .ring(4096, fshm::RingPolicy::Lossy)
        .create(g2.name())
        .unwrap();
    let r = fshm::OpenOptions::new()
        .read_only(true)
        .open(g2.name())
        .unwrap();
    assert!(r.skip_to(10).is_err());
    assert_eq!(r.len(), 0);
}

#[test]
fn a_replicas_owner_sets_and_clears_the_stale_mark_and_other_processes_see_it() {
    let g = NameGuard::new("replica-stale");
    let mut owner = fshm::OpenOptions::new()
        .mode(0o644)
        .replica_of("zenoh:tcp/127.0.0.1:7447/src")
        .create(g.name())
        .unwrap();
    owner.write_all(b"abc").unwrap();
    let guest = fshm::Stream::open(g.name()).unwrap();
    assert!(!fshm::inspect(g.name()).unwrap().stale);
    assert!(!owner.is_stale() && !guest.is_stale());
    owner.set_stale(true).unwrap();
    assert!(fshm::inspect(g.name()).unwrap().stale);
    assert!(owner.info().unwrap().stale && guest.info().unwrap().stale);
    assert!(owner.is_stale() && guest.is_stale());
    // Another process sees the mark, and reads the replica while it is stale.
    let name = g.name().to_owned();
    let mut child = common::fork_child(|| {
        let info = fshm::inspect(&name).unwrap();
        let mut s = String::new();
        fshm::Stream::open(&name)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        i32::from(!(info.stale && s == "abc"))
    });
    child.assert_success();
    owner.set_stale(false).unwrap();
    assert!(!fshm::inspect(g.name()).unwrap().stale && !guest.is_stale());
    // Setting it twice is no error, and the stream's bytes are untouched by the mark.
    owner.set_stale(true).unwrap();
    owner.set_stale(true).unwrap();
    owner.write_all(b"def").unwrap();
    assert_eq!(fshm::inspect(g.name()).unwrap().len, 6);
}

#[test]
fn the_stale_mark_is_refused_to_guests_clones_and_non_replicas_and_a_refusal_changes_nothing() {
    let g = NameGuard::new("replica-stale-refused");
    let owner = fshm::OpenOptions::new()
        .mode(0o666)
        .replica_of("src")
        .create(g.name())
        .unwrap();
    owner.set_stale(true).unwrap();
    let guest = fshm::Stream::open(g.name()).unwrap();
    let clone = owner.try_clone().unwrap();
    for (who, h) in [("guest", &guest), ("clone", &clone)] {
        for v in [false, true] {
            let e = h.set_stale(v).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{who}: {e}");
            assert_eq!(fshm::errno_of(&e), libc::EPERM, "{who}");
            assert!(e.to_string().contains(g.name()), "{who}: {e}");
            assert!(e.to_string().contains("owner"), "{who}: {e}");
            assert!(
                fshm::inspect(g.name()).unwrap().stale,
                "{who} cleared the mark"
            );
        }
    }
    owner.set_stale(false).unwrap();
    let e = guest.set_stale(true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(
        !fshm::inspect(g.name()).unwrap().stale,
        "a guest set the mark"
    );

    // A stream that is not a replica has no mark, for its owner either.
    let h = NameGuard::new("stale-not-replica");
    let plain = fshm::Stream::create(h.name()).unwrap();
    let e = plain.set_stale(true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains(h.name()), "{e}");
    assert!(e.to_string().contains("not a replica"), "{e}");
    assert!(!fshm::inspect(h.name()).unwrap().stale && !plain.is_stale());
}

/// The header word `seq` (offset 128, header.rs's table) of stream `name`, read through
/// its object in `/dev/shm`.
fn seq_word(name: &str) -> u32 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(common::shm_path(name)).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, 128).unwrap();
    u32::from_ne_bytes(b)
}

/// A replica's guests are all read-only and cannot announce a sleep: its owner moves the
/// header word `seq` on after every commit (appends and ring skips alike) so that they
/// sleep on it; an ordinary stream's writer leaves it alone while nobody announced one.
#[test]
fn a_replica_owner_moves_the_header_word_on_every_commit() {
    let g = NameGuard::new("replica-wake");
    let mut owner = fshm::OpenOptions::new()
        .replica_of("src")
        .create(g.name())
        .unwrap();
    let before = seq_word(g.name());
    for k in 1..=3u32 {
        owner.write_all(b"abc").unwrap();
        assert_eq!(seq_word(g.name()), before.wrapping_add(2 * k));
    }
    drop(owner);
    let r = NameGuard::new("replica-wake-ring");
    let ring = fshm::OpenOptions::new()
        .replica_of("src")
        .ring(1 << 16, fshm::RingPolicy::Lossy)
        .create(r.name())
        .unwrap();
    let before = seq_word(r.name());
    ring.skip_to(100).unwrap();
    assert_eq!(seq_word(r.name()), before.wrapping_add(2));
    drop(ring);
    let o = NameGuard::new("replica-wake-none");
    let mut plain = fshm::Stream::create(o.name()).unwrap();
    let before = seq_word(o.name());
    plain.write_all(b"abc").unwrap();
    assert_eq!(seq_word(o.name()), before);
}

/// Voluntary context switches of the calling process so far.
fn voluntary_switches() -> i64 {
    // SAFETY: getrusage writes the struct it is given; a zeroed rusage is valid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to the struct above.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }, 0);
    u.ru_nvcsw
}

/// A read-only follower of a replica (in another process) sleeps until the owner's
/// commit wakes it, in naps of a whole liveness tick (50 ms), instead of polling in naps
/// from 0.1 ms as a read-only follower of another stream does: it wakes about 10 times
/// during an idle half second (polling: about 55), and the next commit reaches it.
#[test]
fn a_read_only_follower_of_a_replica_sleeps_until_the_owner_commits() {
    let g = NameGuard::new("replica-sleep");
    let mut owner = fshm::OpenOptions::new()
        .mode(0o644)
        .replica_of("src")
        .create(g.name())
        .unwrap();
    let ready = common::Signal::new();
    let report = common::Signal::new();
    let name = g.name().to_owned();
    let mut child = common::fork_child(|| {
        let s = fshm::Stream::open(&name).unwrap();
        assert!(!s.is_writable());
        let before = voluntary_switches();
        let idle = s.wait_for(0, Some(std::time::Duration::from_millis(500)));
        let woke = voluntary_switches() - before;
        assert_eq!(idle, fshm::WaitStatus::TimedOut);
        report.send_u64(woke as u64);
        ready.notify();
        assert_eq!(s.wait_for(0, None), fshm::WaitStatus::Data);
        0
    });
    let woke = report.recv_u64();
    ready.wait();
    owner.write_all(b"x").unwrap();
    child.assert_success();
    assert!(
        woke <= 25,
        "the follower woke {woke} times in an idle 0.5 s"
    );
}

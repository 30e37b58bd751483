//! `Stream::skip_to` against the ring's other writers: a skip publishes the ring's end
//! as any other handle's write does (writers that remembered the length forget it), so
//! a write after a skip is never placed below it, reported done and never read.

mod common;

use common::{fork_child, NameGuard};
use std::io::Write;

/// Another process skips the ring's end while this process's handle, the ring's last
/// writer, remembers the length it wrote to: that handle's next write lands after the
/// skip (it is readable there), instead of at the remembered length below the skip,
/// where it would be reported written and never be read.
#[test]
fn a_skip_by_another_process_never_swallows_the_next_write() {
    for policy in [fshm::RingPolicy::Lossy, fshm::RingPolicy::Lossless] {
        let g = NameGuard::new("skip-other-proc");
        let mut w = fshm::OpenOptions::new()
            .mode(0o600)
            .ring(4096, policy)
            .create(g.name())
            .unwrap();
        w.write_all(b"abc").unwrap();
        w.write_all(b"def").unwrap(); // the sole writer: it now remembers length 6
        let name = g.name().to_owned();
        let mut child = fork_child(|| {
            let s = fshm::OpenOptions::new().append(true).open(&name).unwrap();
            assert!(s.is_writable());
            assert_eq!(s.skip_to(100).unwrap(), 94);
            0
        });
        child.assert_success();
        assert_eq!(w.len(), 100);
        w.write_all(b"xyz").unwrap();
        assert_eq!(
            w.len(),
            103,
            "{policy:?}: the write after the skip must be committed"
        );
        let r = fshm::OpenOptions::new()
            .read_only(true)
            .open(g.name())
            .unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(r.read_at(100, &mut buf).unwrap(), 3);
        assert_eq!(&buf, b"xyz");
    }
}

/// The skipping handle itself goes on writing after its skip (the importer's pattern).
#[test]
fn the_skipping_handle_writes_after_its_skip() {
    let g = NameGuard::new("skip-self");
    let mut w = fshm::OpenOptions::new()
        .ring(4096, fshm::RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    w.write_all(b"abc").unwrap();
    assert_eq!(w.skip_to(5000).unwrap(), 4997);
    w.write_all(b"xyz").unwrap();
    assert_eq!(w.len(), 5003);
    let mut buf = [0u8; 3];
    assert_eq!(w.read_at(5000, &mut buf).unwrap(), 3);
    assert_eq!(&buf, b"xyz");
}

fn byte(p: u64) -> u8 {
    (p.wrapping_mul(31) ^ (p >> 9)) as u8
}

/// An attached reader of a lossless ring reads in place (`fill_buf`) in another process
/// while the writer writes and skips (`skip_to`) at random: every byte lent is the byte
/// written at its position, a lent slice never changes while it is held, and skipped
/// positions come only as overruns.
#[test]
fn in_place_reads_meet_skips_and_writes_only_as_true_bytes_or_overruns() {
    use std::io::BufRead;
    let g = NameGuard::new("skip-race");
    let cap = 16384u64;
    let mut w = fshm::OpenOptions::new()
        .ring(cap, fshm::RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    let name = g.name().to_owned();
    let ready = common::Signal::new();
    let mut child = fork_child(|| {
        let mut r = fshm::Stream::open(&name).unwrap();
        assert!(r.is_attached());
        ready.notify();
        let (mut seen, mut lost) = (0u64, 0u64);
        loop {
            let pos = r.position();
            match r.fill_buf() {
                Ok([]) => {
                    if r.wait_for(pos, Some(std::time::Duration::from_secs(30)))
                        == fshm::WaitStatus::Ended
                        && r.len() <= pos
                    {
                        break;
                    }
                }
                Ok(b) => {
                    for (i, &x) in b.iter().enumerate() {
                        assert_eq!(x, byte(pos + i as u64), "byte at {}", pos + i as u64);
                    }
                    let copy = b.to_vec();
                    std::thread::yield_now();
                    assert_eq!(b, &copy[..], "lent bytes changed while held");
                    let n = b.len();
                    r.consume(n);
                    seen += n as u64;
                }
                Err(e) => {
                    let o = fshm::overrun_of(&e).expect("only overruns");
                    lost += o.lost();
                }
            }
        }
        assert!(seen > 0 && lost > 0, "seen {seen}, lost {lost}");
        assert_eq!(seen + lost, r.len());
        0
    });
    ready.wait();
    let mut rng = common::Rng::new(7);
    for _ in 0..3000 {
        let len = w.len();
        if rng.below(4) == 0 {
            w.skip_to(len + 1 + rng.below(3 * cap)).unwrap();
        } else {
            let n = 1 + rng.below(cap / 2);
            let data: Vec<u8> = (len..len + n).map(byte).collect();
            w.write_all(&data).unwrap();
        }
    }
    drop(w);
    child.assert_success();
}

/// A replica's `replica_of` is its owner's word: any local user may create a stream
/// that says it mirrors anything. A reader who trusts only the importer's replicas
/// opens them with `owner_uid` (the importer's user), which refuses the other user's.
#[test]
fn a_fake_replica_of_another_user_is_refused_by_owner_uid() {
    if common::skip_unless_users_can_switch() {
        return;
    }
    let g = NameGuard::new("fake-replica");
    let name = g.name().to_owned();
    let mut child = fork_child(|| {
        common::drop_privileges(1002);
        let mut s = fshm::OpenOptions::new()
            .mode(0o644)
            .persist(true)
            .replica_of("zenoh:tcp/10.0.0.5:7447/sensors/a")
            .create(&name)
            .unwrap();
        s.write_all(b"forged").unwrap();
        0
    });
    child.assert_success();
    let info = fshm::inspect(g.name()).unwrap();
    assert_eq!(
        info.replica_of.as_deref(),
        Some("zenoh:tcp/10.0.0.5:7447/sensors/a")
    );
    assert_eq!(info.uid, 1002);
    // SAFETY: `geteuid` has no preconditions.
    let me = unsafe { libc::geteuid() };
    let e = fshm::OpenOptions::new()
        .owner_uid(me)
        .open(g.name())
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
}

//! Red-team soundness reproducers: safe call sequences in one process that change bytes
//! under a lent `&[u8]`. Each test asserts the promise ("bytes lent by `fill_buf` do not
//! change while the slice lives"); a test that fails demonstrates the hole.

mod common;

use common::NameGuard;
use fshm::{OpenOptions, RingPolicy, Stream};
use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;

const RING: u64 = 4096;
/// The first data byte's offset in the object (the header's size).
const DATA_OFFSET: u64 = 4096;

/// The (hidden, feature-gated) C layer's fd coherence moves a ring reader's position
/// from the offset of the read-only descriptor `AsFd` hands out. Safe code can `lseek`
/// that descriptor (a `File` over a duplicate shares its offset), and
/// `absorb_fd_offset` then moves the position back below the reader's published slot
/// without raising `trust_from` (as `Seek` does) or publishing the slot: `fill_buf`
/// lends bytes the writer is allowed to overwrite, and it does.
#[test]
fn fd_offset_absorbed_backwards_lets_the_writer_overwrite_lent_ring_bytes() {
    use fshm::c_layer::CLayer;
    let g = NameGuard::new("rt-absorb");
    let mut w = OpenOptions::new()
        .ring(RING, RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    let mut r = Stream::open(g.name()).unwrap();
    assert!(r.is_attached());
    w.write_all(&[b'A'; RING as usize]).unwrap();
    // The reader reads everything: its slot is published at RING.
    let mut sink = vec![0u8; RING as usize];
    r.read_exact(&mut sink).unwrap();
    assert_eq!(r.position(), RING);
    // Safe: seek the read-only descriptor's shared offset back to position 0.
    let mut f = File::from(r.as_fd().try_clone_to_owned().unwrap());
    f.seek(SeekFrom::Start(DATA_OFFSET)).unwrap();
    assert_eq!(r.absorb_fd_offset().unwrap(), 0);
    // A plain `Seek` back would make the next `fill_buf` refuse (trust_from); here:
    let lent: &[u8] = match r.fill_buf() {
        Ok(b) => b,
        // Fixed: the absorbed move is a seek, after which lending is refused.
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
            return;
        }
    };
    assert_eq!(lent.len(), RING as usize);
    let before = lent[0];
    // The slot still says RING: the writer may overwrite positions 0..RING, and does
    // (no wait: room up to 2 * RING).
    w.write_all(&[b'B'; RING as usize]).unwrap();
    let after = lent[0];
    assert_eq!(
        before, after,
        "bytes lent as &[u8] by fill_buf changed while the slice lived"
    );
}

/// `fork(2)` copies open file descriptions, and with them the OFD locks a handle holds:
/// the append token of a reservation (and a reader's slot lock). A child that drops its
/// copy of the parent's reservation (what "the rules start afresh in it, for its own
/// handles and its copies of its parent's alike" allows) unlocks the shared
/// description: the parent's reservation no longer holds the token, and another handle
/// of the parent reserves the same bytes — two live `&mut [u8]` over one byte in the
/// parent.
#[test]
fn a_forked_childs_drop_of_an_inherited_reservation_releases_the_parents_token() {
    let g = NameGuard::new("rt-fork-token");
    let mut owner = OpenOptions::new().immutable(true).create(g.name()).unwrap();
    let mut other = owner.try_clone().unwrap();
    let mut held = Some(owner.reserve(8).unwrap());
    {
        let held = &mut held;
        let mut child = common::fork_child(move || {
            drop(held.take()); // the child's copy: cancel_reserved → ofd_unlock
            0
        });
        child.assert_success();
    }
    let mut r = held.take().unwrap();
    r.fill(b'P');
    let second = std::thread::scope(|s| {
        s.spawn(|| match other.try_reserve(8) {
            Ok(mut r2) => {
                r2.fill(b'C');
                Some(r2.position())
            }
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
                None
            }
        })
        .join()
        .unwrap()
    });
    if let Some(at) = second {
        assert_eq!(at, r.position(), "the same bytes of the stream");
        assert_ne!(
            r[0], b'C',
            "another handle reserved and wrote the bytes of a live reservation"
        );
    }
    r.commit(0).unwrap();
}

/// The child's commit of its copy of the parent's open reservation would publish bytes
/// the parent still writes through its `&mut [u8]`: other handles of the parent would
/// then lend them as `&[u8]`. Refused; the length does not move.
#[test]
fn a_forked_child_cannot_commit_the_parents_open_reservation() {
    let g = NameGuard::new("rt-fork-commit");
    let mut owner = OpenOptions::new().immutable(true).create(g.name()).unwrap();
    let mut held = Some(owner.reserve(8).unwrap());
    {
        let held = &mut held;
        let mut child = common::fork_child(move || {
            let mut r = held.take().unwrap();
            let lent_mut: &mut [u8] = &mut r;
            if !lent_mut.is_empty() || !r.is_empty() {
                return 3; // the child could write the parent's bytes
            }
            match r.commit(8) {
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => 0,
                Err(_) => 2,
                Ok(()) => 1,
            }
        });
        child.assert_success();
    }
    let mut r = held.take().unwrap();
    r.fill(b'P');
    let guest = Stream::open(g.name()).unwrap();
    assert_eq!(
        guest.len(),
        0,
        "the child committed the parent's reservation"
    );
    r.commit(8).unwrap();
    assert_eq!(guest.len(), 8);
}

/// The reader slot's lock is an OFD lock too, and the slot lives in the shared header: a
/// child that drops its copy of the parent's attached reader (returning through the
/// parent's scopes after `fork`) detached the parent's slot, and the parent's writer
/// then overwrote the bytes the parent's `fill_buf` still lent. Now the child's copy
/// forgets the slot without touching it; the writer keeps waiting for the parent.
#[test]
fn a_forked_childs_drop_of_an_inherited_reader_leaves_the_parents_slot() {
    let g = NameGuard::new("rt-fork-slot");
    let mut w = OpenOptions::new()
        .ring(RING, RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    w.set_write_timeout(Some(std::time::Duration::from_millis(300)));
    let mut r = Stream::open(g.name()).unwrap();
    assert!(r.is_attached());
    w.write_all(&[b'A'; RING as usize]).unwrap();
    let lent = r.fill_buf().unwrap();
    assert_eq!(lent.len(), RING as usize);
    // SAFETY: the child only drops its copy of the reader and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // What returning from the fork's branch does: drop the handle (its copy).
        drop(r);
        // SAFETY: leaves the child at once.
        unsafe { libc::_exit(0) };
    }
    let mut st = 0;
    // SAFETY: `pid` is our own child; `st` a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
    assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0);
    let before = lent[0];
    // The parent's reader still holds position 0: a full ring's write must wait.
    let e = w.write(&[b'B'; RING as usize]);
    assert!(
        e.is_err(),
        "the writer overwrote bytes the parent's fill_buf lends"
    );
    assert_eq!(lent[0], before);
    assert_eq!(e.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
}

/// A ring writer's claims skip its own reader slot (it would wait for itself), so a
/// reservation of an attached handle overwrites the handle's own unread bytes. The
/// claim gives them up before it lends the bytes: the position moves to `end - capacity`
/// and is published. A reservation dropped (or committed with 0) then leaves the handle
/// there, and `fill_buf` lends only bytes no reservation touched. (It used to lend, from
/// the old position, bytes of the reservation that no commit wrote.)
#[test]
fn a_cancelled_reservation_of_an_attached_handle_clobbers_its_unread_bytes() {
    let g = NameGuard::new("rt-own-slot");
    let mut w = OpenOptions::new()
        .ring(RING, RingPolicy::Lossless)
        .append(true)
        .create(g.name())
        .unwrap();
    let mut me = OpenOptions::new().append(true).open(g.name()).unwrap();
    me.attach().unwrap();
    w.write_all(&[b'A'; RING as usize]).unwrap(); // the ring is full of my unread bytes
    for commit in [None, Some(0)] {
        {
            let mut r = me.reserve(100).unwrap(); // my own slot does not hold it back
            r.fill(b'Z');
            if let Some(k) = commit {
                r.commit(k).unwrap();
            } // else dropped: nothing committed
        }
        assert_eq!(me.position(), 100, "the claim gave up what it overwrites");
        let lent = me.fill_buf().unwrap();
        assert_eq!(lent.len() as u64, RING - 100);
        assert!(
            lent.iter().all(|&b| b == b'A'),
            "fill_buf lends bytes of a reservation that was never committed"
        );
    }
    // The slot followed: the other writer may overwrite what the claims gave up, and
    // no more.
    w.set_write_timeout(Some(std::time::Duration::from_millis(200)));
    w.write_all(&[b'B'; 100]).unwrap();
    let e = w.write(&[b'C'; 1]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
}

/// The race Miri found in one process (`window.rs`, the unit test
/// `lossy_copy_racing_a_reservations_plain_stores`): a lossy reader's atomic copy of
/// old ring bytes while a reservation of the same process fills them with plain stores.
/// The copy now runs under the process's reservation lock and copies nothing the open
/// reservation lends: a reader whose bytes the reservation overwrites is overrun
/// without a copy (in the same thread while the reservation is open, and in another),
/// one whose bytes it does not touch reads them, and after the commit the reader reads
/// the committed bytes. Then a writer thread reserving whole laps races reader threads
/// on two handles: every byte a read returns is a committed lap's.
#[test]
fn lossy_readers_and_a_reservation_of_the_same_process_race_without_torn_bytes() {
    let g = NameGuard::new("rt-lossy-res");
    let mut w = OpenOptions::new()
        .ring(RING, RingPolicy::Lossy)
        .create(g.name())
        .unwrap();
    let mut ro = OpenOptions::new().read_only(true).open(g.name()).unwrap();
    let mut rw = Stream::open(g.name()).unwrap();
    w.write_all(&[b'A'; RING as usize]).unwrap();
    let mut buf = vec![0u8; RING as usize];

    // A small reservation overwrites positions 0..100: a reader past them reads.
    rw.seek(SeekFrom::Start(100)).unwrap();
    let mut ro2 = OpenOptions::new().read_only(true).open(g.name()).unwrap();
    let mut r = w.reserve(100).unwrap();
    r.fill(b'Z');
    let e = ro.read(&mut buf).unwrap_err();
    let o = fshm::overrun_of(&e).expect("an overrun");
    assert_eq!((o.lost(), o.resume_at()), (100, 100), "{e}");
    assert_eq!(rw.read(&mut buf).unwrap(), RING as usize - 100);
    assert!(buf[..RING as usize - 100].iter().all(|&b| b == b'A'));
    std::thread::scope(|s| {
        s.spawn(|| {
            // Another thread, a read that meets the reserved bytes.
            let e = ro2.read(&mut [0u8; 16]).unwrap_err();
            assert!(fshm::overrun_of(&e).is_some(), "{e}");
        });
    });
    r.commit_all().unwrap();
    assert_eq!(ro.read(&mut buf).unwrap(), RING as usize);
    assert!(buf[..RING as usize - 100].iter().all(|&b| b == b'A'));
    assert!(buf[RING as usize - 100..].iter().all(|&b| b == b'Z'));

    // Laps of whole-capacity reservations, byte `lap` each, against two reader threads.
    const LAPS: u64 = 300;
    let start = RING + 100;
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for reader in [&mut ro, &mut rw] {
            let done = &done;
            s.spawn(move || {
                let mut buf = vec![0u8; RING as usize];
                let mut reads = 0u32;
                while !done.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
                    let pos = reader.position();
                    match reader.read(&mut buf) {
                        Ok(n) => {
                            for (i, &b) in buf[..n].iter().enumerate() {
                                let p = pos + i as u64;
                                let want = if p < start {
                                    if p < RING {
                                        b'A'
                                    } else {
                                        b'Z'
                                    }
                                } else {
                                    ((p - start) / RING) as u8
                                };
                                assert_eq!(b, want, "byte at position {p}");
                            }
                            reads += 1;
                        }
                        Err(e) => assert!(fshm::overrun_of(&e).is_some(), "{e}"),
                    }
                }
            });
        }
        for lap in 0..LAPS {
            let mut r = w.reserve(RING as usize).unwrap();
            r.fill(lap as u8);
            r.commit_all().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
    });
}

/// The C layer's absorbed fd offset on a ring is checked as a seek: a position the
/// ring does not hold (past its end) fails once, changes nothing, and the descriptor's
/// offset goes back to the position.
#[test]
fn fd_offset_absorbed_past_a_rings_end_fails_once_and_changes_nothing() {
    use fshm::c_layer::CLayer;
    let g = NameGuard::new("rt-absorb-end");
    let mut w = OpenOptions::new()
        .ring(RING, RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    let r = Stream::open(g.name()).unwrap();
    w.write_all(b"abc").unwrap();
    let mut f = File::from(r.as_fd().try_clone_to_owned().unwrap());
    f.seek(SeekFrom::Start(DATA_OFFSET + 100)).unwrap();
    let e = r.absorb_fd_offset().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert_eq!(r.position(), 0);
    assert_eq!(f.stream_position().unwrap(), DATA_OFFSET);
    assert_eq!(r.absorb_fd_offset().unwrap(), 0);
}

//! Zero-copy without undefined behaviour: no safe sequence of calls in one process
//! makes two live mutable views of one byte (two reservations, or a reservation and a
//! write), or writes bytes lent as `&[u8]`; a reservation holding the append token
//! makes another handle's append in the same thread fail (`EDEADLK`) instead of
//! waiting forever; `try_reserve` and `reserve_timeout` wait less.

mod common;

use common::{errno, fork_child, NameGuard, Signal};
use fshm::{OpenOptions, RingPolicy, Stream};
use std::fs::File;
use std::io::{BufRead, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;
use std::time::Duration;

const RING: u64 = 4096;
/// The first data byte's offset in the object (the header's size).
const DATA_OFFSET: u64 = 4096;

fn ring(name: &str, policy: RingPolicy) -> Stream {
    OpenOptions::new().ring(RING, policy).create(name).unwrap()
}

fn immutable(name: &str) -> Stream {
    OpenOptions::new().immutable(true).create(name).unwrap()
}

fn appender(name: &str) -> Stream {
    OpenOptions::new().append(true).open(name).unwrap()
}

/// The demonstration: a ring's owner and a read-write guest, in one thread,
/// each reserve 64 bytes without append mode. Both reservations would start at
/// position 0; the second is refused instead.
#[test]
fn a_second_ring_writer_of_one_process_cannot_reserve_the_first_ones_bytes() {
    for policy in [RingPolicy::Lossy, RingPolicy::Lossless] {
        let g = NameGuard::new("two-reservers");
        let mut owner = ring(g.name(), policy);
        let mut guest = Stream::open(g.name()).unwrap();
        let mut ra = owner.reserve(64).unwrap();
        assert_eq!(ra.position(), 0);
        ra[0] = 0x41;
        assert_eq!(errno(guest.reserve(64)), libc::EBUSY, "{policy:?}");
        assert_eq!(
            guest.reserve(64).unwrap_err().kind(),
            ErrorKind::ResourceBusy
        );
        assert_eq!(ra[0], 0x41);
        ra.commit(1).unwrap();
        // The owner stays the process's writer of the ring until it closes.
        assert_eq!(errno(guest.reserve(64)), libc::EBUSY);
        assert_eq!(errno(guest.write(b"x")), libc::EBUSY);
        assert_eq!(owner.len(), 1);
        drop(guest);
        drop(owner);
        g.assert_gone();
    }
}

/// Every other way a second handle of this process could write a ring's bytes while
/// a reservation lends them: a plain write, a clone, an append handle's write or
/// reservation, another thread. The first writer's reservation stays whole.
#[test]
fn a_ring_reservation_excludes_every_other_writer_of_the_process() {
    let g = NameGuard::new("ring-excl");
    let mut owner = ring(g.name(), RingPolicy::Lossy);
    let mut guest = Stream::open(g.name()).unwrap();
    let mut clone = owner.try_clone().unwrap();
    let mut app = appender(g.name());
    let mut r = owner.reserve(100).unwrap();
    r.fill(0x41);
    assert_eq!(errno(guest.write(b"overwrite")), libc::EBUSY);
    assert_eq!(errno(clone.write(b"overwrite")), libc::EBUSY);
    assert_eq!(errno(clone.reserve(8)), libc::EBUSY);
    assert_eq!(errno(app.write(b"overwrite")), libc::EBUSY);
    assert_eq!(errno(app.reserve(8)), libc::EBUSY);
    assert_eq!(errno(app.try_reserve(8)), libc::EBUSY);
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(errno(guest.write(b"from a thread")), libc::EBUSY));
    });
    assert!(
        r.iter().all(|&b| b == 0x41),
        "another handle wrote the reservation"
    );
    r.commit_all().unwrap();
    let mut got = vec![0; 100];
    let reader = OpenOptions::new().read_only(true).open(g.name()).unwrap();
    assert_eq!(reader.read_at(0, &mut got).unwrap(), 100);
    assert!(got.iter().all(|&b| b == 0x41));
    assert_eq!(owner.len(), 100);
    drop((owner, guest, clone, app, reader));
    g.assert_gone();
}

/// A process's writers of a ring are one handle without append mode or any number of
/// append handles; a handle that closes makes way.
#[test]
fn ring_writers_of_one_process_are_one_plain_handle_or_appenders() {
    let g = NameGuard::new("ring-writers");
    let owner = ring(g.name(), RingPolicy::Lossy);
    // Appenders first: several may write; a plain handle may not.
    let mut a1 = appender(g.name());
    let mut a2 = appender(g.name());
    a1.write_all(b"a1").unwrap();
    a2.write_all(b"a2").unwrap();
    let mut plain = Stream::open(g.name()).unwrap();
    assert_eq!(errno(plain.write(b"p")), libc::EBUSY);
    assert_eq!(errno(plain.reserve(1)), libc::EBUSY);
    // Their reservations hold the append token: another appender in this thread gets
    // EDEADLK, in another thread it waits for the commit.
    let mut r = a1.reserve(3).unwrap();
    r.copy_from_slice(b"r1!");
    assert_eq!(errno(a2.write(b"a2")), libc::EDEADLK);
    assert_eq!(a2.write(b"a2").unwrap_err().kind(), ErrorKind::Deadlock);
    assert_eq!(errno(a2.reserve(2)), libc::EDEADLK);
    std::thread::scope(|s| {
        let t = s.spawn(|| a2.write_all(b"after"));
        r.commit_all().unwrap();
        t.join().unwrap().unwrap();
    });
    let mut all = vec![0; 12];
    assert_eq!(owner.read_at(0, &mut all).unwrap(), 12);
    assert_eq!(&all, b"a1a2r1!after");
    // Once every appender closed, a plain handle may write.
    drop((a1, a2));
    plain.write_all(b"p").unwrap();
    // And then no appender may.
    let mut a3 = appender(g.name());
    assert_eq!(errno(a3.write(b"a3")), libc::EBUSY);
    drop((a3, plain, owner));
    g.assert_gone();
}

/// Another process's writer is not refused (processes with write access are trusted:
/// the rule "a ring has one writer" is theirs to keep), also a child forked after its
/// parent wrote (a fork starts with no writers recorded), and the rule holds in the
/// child for the child's handles.
#[test]
fn the_one_writer_rule_is_per_process() {
    let g = NameGuard::new("ring-per-process");
    let mut owner = ring(g.name(), RingPolicy::Lossy);
    owner.write_all(b"owner").unwrap();
    let go = Signal::new();
    let done = Signal::new();
    let name = g.name().to_owned();
    let mut child = fork_child(|| {
        go.wait();
        let mut s = Stream::open(&name).unwrap();
        s.write_all(b"child").unwrap();
        let mut second = Stream::open(&name).unwrap();
        let refused = second.write(b"second").map_err(|e| fshm::errno_of(&e));
        done.notify();
        if refused == Err(libc::EBUSY) {
            0
        } else {
            1
        }
    });
    go.notify();
    done.wait();
    child.assert_success();
    owner.write_all(b"!").unwrap();
    let mut all = String::new();
    let mut reader = OpenOptions::new().read_only(true).open(g.name()).unwrap();
    reader.read_to_string(&mut all).unwrap();
    assert_eq!(all, "ownerchild!");
    drop((owner, reader));
    g.assert_gone();
}

/// A reservation against an in-place read of the same process: a lossless ring's
/// attached reader holds lent bytes; the writer may not reserve over them (it would
/// wait for the reader; `try_reserve` says so), only past them.
#[test]
fn a_reservation_never_covers_bytes_lent_in_place() {
    let g = NameGuard::new("reserve-vs-lent");
    let mut owner = ring(g.name(), RingPolicy::Lossless);
    let mut reader = Stream::open(g.name()).unwrap();
    assert!(reader.is_attached());
    owner.write_all(&[0x41; RING as usize]).unwrap(); // full
    let lent = reader.fill_buf().unwrap();
    assert_eq!(lent.len(), RING as usize);
    // Any reservation would overwrite lent bytes.
    assert_eq!(
        owner.try_reserve(1).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!(
        owner
            .reserve_timeout(1, Duration::from_millis(20))
            .unwrap_err()
            .kind(),
        ErrorKind::TimedOut
    );
    assert!(lent.iter().all(|&b| b == 0x41));
    reader.consume(10);
    // Room for the 10 bytes consumed, no more.
    assert_eq!(
        owner.try_reserve(11).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let mut r = owner.try_reserve(10).unwrap();
    r.fill(0x42);
    let lent = reader.fill_buf().unwrap();
    assert!(
        lent.iter().all(|&b| b == 0x41),
        "a reservation wrote lent bytes"
    );
    assert_eq!(lent.len(), RING as usize - 10);
    r.commit_all().unwrap();
    drop((owner, reader));
    g.assert_gone();
}

/// The demonstration of item 6: a reservation on an immutable stream, then an
/// append on another handle in the same thread, waited forever for itself.
#[test]
fn an_append_behind_a_reservation_of_the_same_thread_fails_instead_of_hanging() {
    let g = NameGuard::new("self-deadlock");
    let mut owner = immutable(g.name());
    let mut guest = appender(g.name()); // writes at the end wherever it stands
    let mut r = owner.reserve(4).unwrap();
    r.copy_from_slice(b"resv");
    assert_eq!(errno(guest.write(b"x")), libc::EDEADLK);
    assert_eq!(errno(guest.reserve(1)), libc::EDEADLK);
    assert_eq!(errno(guest.try_reserve(1)), libc::EDEADLK);
    // Another thread: try_reserve does not wait, reserve_timeout gives up, a write
    // waits for the commit.
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(errno(guest.try_reserve(1)), libc::EAGAIN);
            assert_eq!(
                guest.try_reserve(1).unwrap_err().kind(),
                ErrorKind::WouldBlock
            );
            let e = guest.reserve_timeout(1, Duration::from_millis(20));
            assert_eq!(errno(e), libc::ETIMEDOUT);
        });
    });
    std::thread::scope(|s| {
        let t = s.spawn(|| guest.write_all(b"next"));
        r.commit_all().unwrap();
        t.join().unwrap().unwrap();
    });
    // Nothing was lost or held: the guest appends and reserves again.
    guest.write_all(b"!").unwrap();
    let r = guest.try_reserve(1).unwrap();
    drop(r);
    let mut all = String::new();
    Stream::open(g.name())
        .unwrap()
        .read_to_string(&mut all)
        .unwrap();
    assert_eq!(all, "resvnext!");
    drop((owner, guest));
    g.assert_gone();
}

/// A reservation held by another process: `try_reserve` does not wait for it,
/// `reserve_timeout` gives up, and a plain `reserve` gets it once the other commits.
#[test]
fn try_reserve_and_reserve_timeout_against_another_process() {
    let g = NameGuard::new("reserve-other-proc");
    let mut owner = OpenOptions::new()
        .immutable(true)
        .append(true)
        .create(g.name())
        .unwrap();
    let held = Signal::new();
    let release = Signal::new();
    let name = g.name().to_owned();
    let mut child = fork_child(|| {
        let mut s = Stream::open(&name).unwrap();
        let mut r = s.reserve(5).unwrap();
        r.copy_from_slice(b"child");
        held.notify();
        release.wait();
        r.commit_all().unwrap();
        0
    });
    held.wait();
    assert_eq!(errno(owner.try_reserve(3)), libc::EAGAIN);
    assert_eq!(
        errno(owner.reserve_timeout(3, Duration::from_millis(30))),
        libc::ETIMEDOUT
    );
    release.notify();
    let mut r = owner.reserve(3).unwrap();
    assert_eq!(r.position(), 5);
    r.copy_from_slice(b"own");
    r.commit_all().unwrap();
    child.assert_success();
    assert_eq!(owner.len(), 8);
    drop(owner);
    g.assert_gone();
}

/// The demonstration of item 2: bytes an immutable stream lends, and the
/// owner's descriptor taken through `AsFd`: its `write_at` changed the lent byte. The
/// descriptor is read-only now, for every writable handle of a stream that lends.
#[test]
fn the_descriptor_of_a_stream_that_lends_cannot_write_lent_bytes() {
    let g = NameGuard::new("fd-lend");
    let mut owner = immutable(g.name());
    owner.write_all(&[0x41; 8]).unwrap();
    let mut guest = Stream::open(g.name()).unwrap();
    let clone = guest.try_clone().unwrap();
    let lent = guest.fill_buf().unwrap();
    assert_eq!(lent[0], 0x41);
    for (who, handle) in [("owner", &owner), ("clone", &clone)] {
        let file = File::from(handle.as_fd().try_clone_to_owned().unwrap());
        let e = file.write_at(&[0x42], DATA_OFFSET).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{who}");
        assert!(file.set_len(DATA_OFFSET).is_err(), "{who}: ftruncate");
        assert_writable_mapping_refused(handle.as_raw_fd(), who);
        // Reading through it works, and its offset is its own.
        let mut b = [0; 1];
        file.read_exact_at(&mut b, DATA_OFFSET).unwrap();
        assert_eq!(b[0], 0x41);
    }
    assert_eq!(lent[0], 0x41, "a lent byte changed");
    // The handles still write, through their own descriptors.
    owner.write_all(b"more").unwrap();
    assert_eq!(owner.len(), 12);
    drop((owner, guest, clone));
    g.assert_gone();
}

/// A ring's writable handles hand out read-only descriptors too (its reservations
/// lend `&mut [u8]`, its attached readers `&[u8]`); a mutable linear stream's handle
/// hands out the descriptor it writes through, as before (its bytes are never lent).
#[test]
fn which_handles_hand_out_a_read_only_descriptor() {
    let g = NameGuard::new("fd-ring");
    let mut owner = ring(g.name(), RingPolicy::Lossless);
    let guest = Stream::open(g.name()).unwrap();
    // The number only: the reservation borrows the owner mutably.
    let owner_fd = owner.as_raw_fd();
    let mut r = owner.reserve(16).unwrap();
    r.fill(0x41);
    for (who, fd) in [("ring owner", owner_fd), ("ring guest", guest.as_raw_fd())] {
        // SAFETY: both handles live, so their descriptors stay open meanwhile.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let file = File::from(fd.try_clone_to_owned().unwrap());
        assert_eq!(
            file.write_at(b"x", DATA_OFFSET).unwrap_err().raw_os_error(),
            Some(libc::EBADF),
            "{who}"
        );
        assert_writable_mapping_refused(fd.as_raw_fd(), who);
    }
    assert!(r.iter().all(|&b| b == 0x41));
    r.commit_all().unwrap();
    drop((owner, guest));
    g.assert_gone();

    let g = NameGuard::new("fd-linear");
    let owner = Stream::create(g.name()).unwrap();
    let file = File::from(owner.as_fd().try_clone_to_owned().unwrap());
    file.write_at(b"x", DATA_OFFSET).unwrap();
    drop(owner);
    g.assert_gone();
}

fn assert_writable_mapping_refused(fd: std::os::fd::RawFd, who: &str) {
    // SAFETY: a fresh shared mapping of one page of the object, unmapped below if it
    // was made; nothing reads or writes through it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if p != libc::MAP_FAILED {
        // SAFETY: `p` is the mapping just made.
        unsafe { libc::munmap(p, 4096) };
        panic!("{who}: a writable shared mapping of the handed-out descriptor");
    }
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EACCES),
        "{who}"
    );
}

/// The read-only descriptor a handle hands out is of the handle's own object, also
/// when its name has since been given to another stream (a clone made then opens the
/// object through `/proc/self/fd`, not by the name).
#[test]
fn the_handed_out_descriptor_is_of_the_handles_own_object() {
    let ino = |fd: std::os::fd::BorrowedFd<'_>| {
        File::from(fd.try_clone_to_owned().unwrap())
            .metadata()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap()
    };
    let g = NameGuard::new("fd-moved");
    let first = immutable(g.name());
    let guest = Stream::open(g.name()).unwrap();
    fshm::force_destroy(g.name()).unwrap();
    let second = immutable(g.name());
    let clone = guest.try_clone().unwrap();
    let own = ino(first.as_fd());
    assert_eq!(ino(guest.as_fd()), own);
    assert_eq!(ino(clone.as_fd()), own);
    assert_ne!(ino(second.as_fd()), own);
    let file = File::from(clone.as_fd().try_clone_to_owned().unwrap());
    assert_eq!(
        file.write_at(b"x", DATA_OFFSET).unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    drop((first, guest, clone, second));
    g.assert_gone();
}

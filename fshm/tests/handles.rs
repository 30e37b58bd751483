//! Handle-level API: `try_clone` gives an independent guest handle on the same object
//! (also after the name is gone), with the original's access and position; `info`
//! reads the stream's state through a handle; `Debug` maps nothing.

mod common;

use common::{fork_child, NameGuard};
use std::io::{Read, Seek, SeekFrom, Write};

#[test]
fn a_clone_is_an_independent_guest_on_the_same_object() {
    let g = NameGuard::new("clone");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    owner.write_all(b"0123456789").unwrap();
    owner.seek(SeekFrom::Start(4)).unwrap();
    let mut clone = owner.try_clone().unwrap();
    assert_eq!(clone.role(), fshm::Role::Guest);
    assert!(clone.is_writable());
    assert_eq!(clone.position(), 4);
    // Positions are independent from here on.
    let mut two = [0u8; 2];
    clone.read_exact(&mut two).unwrap();
    assert_eq!(&two, b"45");
    assert_eq!(owner.position(), 4);
    // The clone outlives the name and the owner, and keeps reading the same bytes.
    fshm::force_destroy(name).unwrap();
    let mut rest = String::new();
    clone.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "6789");
    drop(owner);
    assert_eq!(clone.owner_state(), fshm::OwnerState::Closed);
    g.assert_gone();
}

#[test]
fn a_clone_keeps_read_only_access_and_a_lossless_clone_attaches() {
    let g = NameGuard::new("clone-ro");
    let name = g.name();
    let owner = fshm::OpenOptions::new()
        .ring(4096, fshm::RingPolicy::Lossless)
        .create(name)
        .unwrap();
    let ro = fshm::OpenOptions::new().read_only(true).open(name).unwrap();
    let ro_clone = ro.try_clone().unwrap();
    assert!(!ro_clone.is_writable());
    assert_eq!(
        fshm::errno_of(&(&ro_clone).write(b"x").unwrap_err()),
        libc::EBADF
    );
    assert!(!ro_clone.is_attached());
    let rw = fshm::Stream::open(name).unwrap();
    assert!(rw.is_attached());
    let rw_clone = rw.try_clone().unwrap();
    assert!(rw_clone.is_attached());
    assert_eq!(owner.info().unwrap().attached_readers, 2);
    drop((rw, rw_clone, ro, ro_clone, owner));
    g.assert_gone();
}

#[test]
fn info_through_a_handle_reports_what_inspect_does() {
    let g = NameGuard::new("info");
    let name = g.name();
    let mut owner = fshm::OpenOptions::new().mode(0o640).create(name).unwrap();
    owner.write_all(b"hello").unwrap();
    let mine = owner.info().unwrap();
    let outside = fshm::inspect(name).unwrap();
    assert_eq!(mine, outside);
    assert_eq!((mine.len, mine.mode), (5, 0o640));
    assert_eq!(mine.owner, fshm::OwnerState::Alive);
    // A guest in another process sees the owner die.
    let guest = fshm::Stream::open(name).unwrap();
    drop(owner);
    assert_eq!(guest.info().unwrap().owner, fshm::OwnerState::Closed);
    let mut c = fork_child(|| {
        let _owner = fshm::OpenOptions::new()
            .create(&format!("{}-dead", name))
            .unwrap();
        // SAFETY: leaves at once, as a crash would, without closing the stream.
        unsafe { libc::_exit(0) }
    });
    c.assert_success();
    let dead = format!("{name}-dead");
    assert_eq!(fshm::inspect(&dead).unwrap().owner, fshm::OwnerState::Dead);
    fshm::force_destroy(&dead).unwrap();
    drop(guest);
    g.assert_gone();
}

#[test]
fn debug_maps_nothing() {
    let g = NameGuard::new("debug");
    let owner = fshm::Stream::create(g.name()).unwrap();
    let text = format!("{owner:?}");
    assert!(text.contains(g.name()), "{text}");
    // A fresh linear owner maps its window on first use only: Debug is no use.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let object = format!("/dev/shm{}", g.name());
    assert!(
        !maps.lines().any(|l| l.ends_with(&object)),
        "Debug mapped the window"
    );
    drop(owner);
    g.assert_gone();
}

#[test]
fn a_handle_whose_window_cannot_be_mapped_reports_it_on_reads_and_writes() {
    let g = NameGuard::new("nomap");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    owner.write_all(b"data").unwrap();
    let mut c = fork_child(|| {
        let guest = fshm::Stream::open(name).unwrap();
        // Too little address space for the 1 GiB window.
        let lim = libc::rlimit {
            rlim_cur: 256 << 20,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: plain system call with a valid struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
        let mut buf = [0u8; 4];
        let e = (&guest).read(&mut buf).unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::ENOMEM, "{e}");
        let e = (&guest).write(b"x").unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::ENOMEM, "{e}");
        let e = guest.read_at(0, &mut buf).unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::ENOMEM, "{e}");
        0
    });
    c.assert_success();
    assert_eq!(owner.len(), 4, "the failed write changed nothing");
    drop(owner);
    g.assert_gone();
}

/// The same for a lossless ring: a read-write guest that cannot map the ring cannot
/// attach (its slot would go to no header a writer reads), so its open fails; an
/// appender's write fails before it touches anything; the ring is as it was.
#[test]
fn a_ring_handle_whose_window_cannot_be_mapped_attaches_and_writes_nothing() {
    let g = NameGuard::new("nomapring");
    let name = g.name();
    // A 256 MiB ring: its window (both views) is twice that.
    let mut owner = fshm::OpenOptions::new()
        .ring(256 << 20, fshm::RingPolicy::Lossless)
        .create(name)
        .unwrap();
    owner.write_all(b"data").unwrap();
    let mut c = fork_child(|| {
        // Room for 128 MiB more than this process maps now (the owner's ring included,
        // inherited at the fork): enough for the allocator, not for a 512 MiB window.
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
        // SAFETY: `sysconf` has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
        let lim = libc::rlimit {
            rlim_cur: pages * page + (128 << 20),
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: plain system call with a valid struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
        let e = fshm::Stream::open(name).unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::ENOMEM, "{e}");
        let appender = fshm::OpenOptions::new().append(true).open(name).unwrap();
        let e = (&appender).write(b"x").unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::ENOMEM, "{e}");
        0
    });
    c.assert_success();
    assert_eq!(owner.len(), 4, "the failed write changed nothing");
    let guest = fshm::Stream::open(name).unwrap();
    let mut buf = [0u8; 4];
    (&guest).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"data");
    drop(guest);
    drop(owner);
    g.assert_gone();
}

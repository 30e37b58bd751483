//! Mode bits (design brief §3): the requested mode is applied exactly despite the umask;
//! `set_permissions`/`set_group` take effect; a guest the mode admits only for reading
//! gets a read-only handle whose writes fail with `EBADF`; no access is `EACCES`.
//!
//! The access tests drop to uid/gid 65534 in a forked child (root would bypass the
//! mode bits); without root they skip, saying so.

mod common;

use common::{drop_privileges, fork_child, read_all, NameGuard, Signal};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;

const NOBODY: u32 = 65534;

fn mode_of(s: &fshm::Stream) -> u32 {
    common::fstat(s.as_raw_fd()).st_mode & 0o7777
}

#[test]
fn the_mode_is_applied_exactly_despite_the_umask() {
    let g = NameGuard::new("umask");
    let name = g.name();
    // The umask is per process: change it in a child only.
    let mut child = fork_child(|| {
        // SAFETY: plain system call.
        unsafe { libc::umask(0o077) };
        for mode in [0o644, 0o666, 0o640, 0o604] {
            let s = fshm::OpenOptions::new().mode(mode).create(name).unwrap();
            assert_eq!(mode_of(&s), mode, "mode {mode:o} under umask 077");
            assert_eq!(fshm::inspect(name).unwrap().mode, mode);
            drop(s);
        }
        0
    });
    child.assert_success();
    // The default mode is 0o600.
    let s = fshm::Stream::create(name).unwrap();
    assert_eq!(mode_of(&s), fshm::DEFAULT_MODE);
    drop(s);
    g.assert_gone();
}

#[test]
fn set_permissions_and_set_group_take_effect() {
    if common::skip_unless_users_can_switch() {
        return;
    }
    let g = NameGuard::new("chmod");
    let name = g.name();
    let s = fshm::OpenOptions::new().mode(0o600).create(name).unwrap();
    s.set_permissions(0o644).unwrap();
    assert_eq!(mode_of(&s), 0o644);
    assert_eq!(fshm::inspect(name).unwrap().mode, 0o644);
    s.set_group(12345).unwrap();
    assert_eq!(common::fstat(s.as_raw_fd()).st_gid, 12345);
    assert_eq!(fshm::inspect(name).unwrap().gid, 12345);
    // The new mode governs later opens: 0o644 lets nobody read, 0o600 not at all.
    let check = |expect_open: bool| {
        let mut child = fork_child(|| {
            drop_privileges(NOBODY);
            match fshm::Stream::open(name) {
                Ok(guest) => i32::from(!expect_open || guest.is_writable()),
                Err(e) => i32::from(expect_open || fshm::errno_of(&e) != libc::EACCES) * 2,
            }
        });
        child.assert_success();
    };
    check(true);
    s.set_permissions(0o600).unwrap();
    check(false);
    assert_eq!(
        common::errno(s.set_permissions(0o10000)),
        libc::EINVAL,
        "mode bits outside 0o7777"
    );
    assert_eq!(mode_of(&s), 0o600);
    drop(s);
    g.assert_gone();
}

#[test]
fn a_guest_the_mode_admits_only_for_reading_is_read_only_and_its_writes_fail_with_ebadf() {
    if common::skip_unless_users_can_switch() {
        return;
    }
    let g = NameGuard::new("ro-guest");
    let name = g.name();
    let mut owner = fshm::OpenOptions::new().mode(0o644).create(name).unwrap();
    owner.write_all(b"owner's bytes").unwrap();
    let mut child = fork_child(|| {
        drop_privileges(NOBODY);
        let mut guest = fshm::Stream::open(name).unwrap();
        assert!(!guest.is_writable());
        let mut s = String::new();
        guest.read_to_string(&mut s).unwrap();
        assert_eq!(s, "owner's bytes");
        let e = guest.write(b"intruder").unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::EBADF);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(common::errno(guest.write_at(0, b"X")), libc::EBADF);
        assert_eq!(common::errno(guest.set_len(0)), libc::EBADF);
        assert_eq!(common::errno(guest.set_len(100)), libc::EBADF);
        let mut app = fshm::OpenOptions::new().append(true).open(name).unwrap();
        assert_eq!(common::errno(app.write(b"x")), libc::EBADF);
        assert_eq!(guest.len(), 13);
        // Waiting needs no write access to the mapping.
        assert_eq!(
            guest.wait_for(13, Some(std::time::Duration::from_millis(20))),
            fshm::WaitStatus::TimedOut
        );
        assert_eq!(guest.wait_for(0, None), fshm::WaitStatus::Data);
        0
    });
    child.assert_success();
    assert_eq!(read_all(&owner), b"owner's bytes");
    assert_eq!(owner.len(), 13);
    drop(owner);
    g.assert_gone();
}

#[test]
fn a_guest_without_read_permission_gets_eacces() {
    if common::skip_unless_users_can_switch() {
        return;
    }
    let g = NameGuard::new("eacces");
    let name = g.name();
    let owner = fshm::OpenOptions::new().mode(0o600).create(name).unwrap();
    let mut child = fork_child(|| {
        drop_privileges(NOBODY);
        let e = fshm::Stream::open(name).unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::EACCES);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.to_string().contains(name), "{e}");
        let e = fshm::OpenOptions::new()
            .read_only(true)
            .open(name)
            .unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::EACCES);
        0
    });
    child.assert_success();
    drop(owner);
    g.assert_gone();
}

#[test]
fn a_guest_the_mode_admits_for_writing_is_writable() {
    if common::skip_unless_users_can_switch() {
        return;
    }
    let g = NameGuard::new("rw-guest");
    let name = g.name();
    let owner = fshm::OpenOptions::new().mode(0o666).create(name).unwrap();
    let wrote = Signal::new();
    let mut child = fork_child(|| {
        drop_privileges(NOBODY);
        let mut guest = fshm::Stream::open(name).unwrap();
        assert!(guest.is_writable());
        guest.write_all(b"written by nobody").unwrap();
        wrote.notify();
        // A read-only open is read-only even when the mode would allow writing.
        let ro = fshm::OpenOptions::new().read_only(true).open(name).unwrap();
        assert!(!ro.is_writable());
        assert_eq!(common::errno(ro.write_at(0, b"x")), libc::EBADF);
        0
    });
    wrote.wait();
    child.assert_success();
    assert_eq!(read_all(&owner), b"written by nobody");
    drop(owner);
    g.assert_gone();
}

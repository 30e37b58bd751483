//! The permission matrix (issue 7): from children running as unprivileged users — the
//! stream's owning user (uid 1000, gid 1000), a member of its group (uid 1001 with
//! supplementary gid 1000) and anyone else (uid 1002) — across modes 0600, 0640, 0644,
//! 0660 and 0666, exactly the opens POSIX permits succeed (read-write, read-only, or
//! `EACCES`); read-only handles cannot write by any path (Rust calls or the raw fd);
//! `set_permissions`/`set_group` govern later opens; and an unprivileged `reclaim`
//! never removes a stream it may not remove.
//!
//! Root bypasses mode bits, so every access check happens in a forked child after
//! `setgroups`/`setgid`/`setuid`; without root to do that, the tests skip, saying so.

mod common;

use common::{fork_child, NameGuard, Signal, Status};
use std::io::Write;
use std::os::fd::AsRawFd;

/// `(uid, gid, supplementary groups)`.
type User = (u32, u32, &'static [u32]);
const OWNER: User = (1000, 1000, &[]);
const MEMBER: User = (1001, 1001, &[1000]);
const OTHER: User = (1002, 1002, &[]);
const USERS: [(&str, User); 3] = [("owner", OWNER), ("member", MEMBER), ("other", OTHER)];
const MODES: [u32; 5] = [0o600, 0o640, 0o644, 0o660, 0o666];

/// Becomes `user` for good (in a forked child only).
fn become_user((uid, gid, groups): User) {
    // SAFETY: plain system calls with valid arguments (`groups` is a valid slice).
    unsafe {
        assert_eq!(
            libc::setgroups(groups.len(), groups.as_ptr()),
            0,
            "setgroups"
        );
        assert_eq!(libc::setgid(gid), 0, "setgid");
        assert_eq!(libc::setuid(uid), 0, "setuid");
        assert_eq!(libc::geteuid(), uid);
    }
}

/// What POSIX grants `user` on an object owned by uid/gid 1000 with `mode`:
/// `None` no access, `Some(true)` read-write, `Some(false)` read-only.
fn expected(user: User, mode: u32, group: u32) -> Option<bool> {
    let (uid, gid, groups) = user;
    let bits = if uid == 1000 {
        mode >> 6
    } else if gid == group || groups.contains(&group) {
        mode >> 3
    } else {
        mode
    } & 7;
    (bits & 4 != 0).then_some(bits & 2 != 0)
}

fn fchown(fd: libc::c_int, uid: u32, gid: u32) {
    // SAFETY: plain system call on a descriptor we own.
    let r = unsafe { libc::fchown(fd, uid, gid) };
    assert_eq!(r, 0, "fchown: {}", std::io::Error::last_os_error());
}

/// Gives the stream `name` (and its lock object, which follows the stream's owner and
/// group) to `uid:gid`, as an administrator would.
fn chown_stream(fd: libc::c_int, name: &str, uid: u32, gid: u32) {
    fchown(fd, uid, gid);
    let lock =
        std::ffi::CString::new(format!("/dev/shm{}", common::lock_object_name(name))).unwrap();
    // SAFETY: plain system call on a NUL-terminated path.
    let r = unsafe { libc::chown(lock.as_ptr(), uid, gid) };
    assert_eq!(
        r,
        0,
        "chown lock object: {}",
        std::io::Error::last_os_error()
    );
}

/// The errno of a raw system call's `-1` result.
fn raw_errno(r: isize) -> i32 {
    assert_eq!(r, -1, "a write through a read-only descriptor succeeded");
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

/// Every way to write through a read-only handle fails; nothing changes.
fn assert_cannot_write(s: &fshm::Stream, name: &str, file_owner: bool) {
    assert!(!s.is_writable());
    let mut h = s;
    assert_eq!(common::errno(h.write(b"x")), libc::EBADF);
    assert_eq!(common::errno(s.write_at(0, b"x")), libc::EBADF);
    assert_eq!(common::errno(s.write_at(1 << 20, b"x")), libc::EBADF);
    assert_eq!(common::errno(s.set_len(0)), libc::EBADF);
    assert_eq!(common::errno(s.set_len(1 << 20)), libc::EBADF);
    let app = fshm::OpenOptions::new()
        .append(true)
        .read_only(true)
        .open(name)
        .unwrap();
    assert_eq!(common::errno((&app).write(b"x")), libc::EBADF);
    // The raw descriptor is O_RDONLY.
    let fd = s.as_raw_fd();
    // SAFETY: writes from a valid buffer; the call is expected to fail.
    let r = unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
    assert_eq!(raw_errno(r), libc::EBADF);
    // SAFETY: as above.
    let r = unsafe { libc::pwrite(fd, b"x".as_ptr().cast(), 1, 4096) };
    assert_eq!(raw_errno(r), libc::EBADF);
    // SAFETY: plain system call; expected to fail on a read-only descriptor.
    let r = unsafe { libc::ftruncate(fd, 0) } as isize;
    assert!([libc::EBADF, libc::EINVAL].contains(&raw_errno(r)));
    // SAFETY: as above.
    let r = unsafe { libc::fallocate(fd, 0, 0, 1 << 20) } as isize;
    assert_eq!(raw_errno(r), libc::EBADF);
    if !file_owner {
        // Metadata belongs to the file's owner (fchmod/fchown by anyone else: EPERM).
        assert_eq!(common::errno(s.set_permissions(0o666)), libc::EPERM);
        assert_eq!(common::errno(s.set_group(1002)), libc::EPERM);
    }
}

#[test]
fn across_modes_and_users_exactly_the_opens_posix_permits_succeed() {
    if common::skip_unless_users_can_switch() {
        return;
    }
    let mut checked = 0;
    for mode in MODES {
        let g = NameGuard::new("perm-matrix");
        let name = g.name();
        let mut owner = fshm::OpenOptions::new().mode(mode).create(name).unwrap();
        owner.write_all(b"root-data").unwrap();
        fchown(owner.as_raw_fd(), 1000, 1000);
        for (k, (label, user)) in USERS.into_iter().enumerate() {
            let want = expected(user, mode, 1000);
            let mut child = fork_child(|| {
                become_user(user);
                match (fshm::Stream::open(name), want) {
                    (Ok(s), Some(rw)) => {
                        assert_eq!(s.is_writable(), rw, "{label} {mode:o}");
                        assert_eq!(common::read_all(&s)[..9], *b"root-data");
                        if rw {
                            s.write_at(100 + 10 * k as u64, label.as_bytes()).unwrap();
                        } else {
                            assert_cannot_write(&s, name, user.0 == 1000);
                        }
                    }
                    (Err(e), None) => {
                        assert_eq!(fshm::errno_of(&e), libc::EACCES, "{label} {mode:o}: {e}")
                    }
                    (r, _) => panic!("{label} {mode:o}: got {r:?}, want {want:?}"),
                }
                // A read-only open is read-only whatever the mode allows.
                match fshm::OpenOptions::new().read_only(true).open(name) {
                    Ok(s) => {
                        assert!(want.is_some(), "{label} {mode:o}");
                        assert_cannot_write(&s, name, user.0 == 1000);
                    }
                    Err(e) => {
                        assert!(want.is_none(), "{label} {mode:o}: {e}");
                        assert_eq!(fshm::errno_of(&e), libc::EACCES);
                    }
                }
                // inspect needs read access only.
                assert_eq!(fshm::inspect(name).is_ok(), want.is_some());
                0
            });
            assert_eq!(child.wait(), Status::Exited(0), "{label} on mode {mode:o}");
            checked += 1;
        }
        // Exactly the writers admitted wrote; nothing else changed.
        let all = common::read_all(&owner);
        assert_eq!(&all[..9], b"root-data");
        for (k, (label, user)) in USERS.into_iter().enumerate() {
            let at = 100 + 10 * k;
            let got = all.get(at..at + label.len());
            if expected(user, mode, 1000) == Some(true) {
                assert_eq!(got, Some(label.as_bytes()), "{label} {mode:o}");
            } else {
                assert!(
                    got.is_none_or(|b| b.iter().all(|&x| x == 0)),
                    "{label} {mode:o}"
                );
            }
        }
        drop(owner);
        g.assert_gone();
    }
    eprintln!(
        "perm matrix: {} modes x {} users = {checked} combinations (read-write, read-only and \
         read-only-requested opens; per read-only handle 10 write paths plus chmod/chgrp by non-owners)",
        MODES.len(),
        USERS.len()
    );
}

#[test]
fn set_permissions_and_set_group_by_the_owning_user_govern_later_opens() {
    if common::skip_unless_users_can_switch() {
        return;
    }
    const OWNER3: User = (1000, 1000, &[1003]);
    const MEMBER3: User = (1001, 1001, &[1003]);
    let g = NameGuard::new("perm-chmod");
    let name = g.name();
    let owner = fshm::OpenOptions::new().mode(0o600).create(name).unwrap();
    chown_stream(owner.as_raw_fd(), name, 1000, 1000);
    let run = |user: User, f: &dyn Fn() -> i32| {
        let mut c = fork_child(|| {
            become_user(user);
            f()
        });
        assert_eq!(c.wait(), Status::Exited(0));
    };
    let access = |user: User| -> Option<bool> {
        let got = Signal::new();
        run(user, &|| {
            let code = match fshm::Stream::open(name) {
                Ok(s) => u8::from(s.is_writable()) + 1,
                Err(e) => {
                    assert_eq!(fshm::errno_of(&e), libc::EACCES, "{e}");
                    0
                }
            };
            got.send(&[code]);
            0
        });
        match got.recv(1)[0] {
            0 => None,
            c => Some(c == 2),
        }
    };
    // The owning user changes mode and group through its own handle.
    let chmod = |mode: u32, group: Option<u32>| {
        run(OWNER3, &|| {
            let s = fshm::Stream::open(name).unwrap();
            s.set_permissions(mode).unwrap();
            if let Some(gid) = group {
                s.set_group(gid).unwrap();
            }
            // Not to a group it is not in.
            assert_eq!(common::errno(s.set_group(1004)), libc::EPERM);
            0
        });
    };
    assert_eq!(access(MEMBER3), None);
    chmod(0o640, Some(1003));
    assert_eq!(fshm::inspect(name).unwrap().gid, 1003);
    assert_eq!(fshm::inspect(name).unwrap().mode, 0o640);
    assert_eq!(access(MEMBER3), Some(false));
    assert_eq!(access(OTHER), None);
    chmod(0o660, None);
    assert_eq!(access(MEMBER3), Some(true));
    assert_eq!(access(OTHER), None);
    // The group class decides for a member even where "other" grants more.
    chmod(0o604, None);
    assert_eq!(access(MEMBER3), None);
    assert_eq!(access(OTHER), Some(false));
    // Write access does not let anyone but the owning user change the mode.
    chmod(0o666, None);
    run(OTHER, &|| {
        let s = fshm::Stream::open(name).unwrap();
        assert!(s.is_writable());
        assert_eq!(common::errno(s.set_permissions(0o600)), libc::EPERM);
        assert_eq!(common::errno(s.set_group(1002)), libc::EPERM);
        0
    });
    assert_eq!(fshm::inspect(name).unwrap().mode, 0o666);
    drop(owner);
    g.assert_gone();
}

/// Creates `name` with `mode` in a child running as uid 1000, then kills it.
fn dead_stream_of_uid_1000(name: &str, mode: u32) -> (u64, u64) {
    let created = Signal::new();
    let mut c = fork_child(|| {
        become_user(OWNER);
        let mut s = fshm::OpenOptions::new().mode(mode).create(name).unwrap();
        s.write_all(b"uid 1000's").unwrap();
        created.notify();
        loop {
            // SAFETY: plain system call; waits for the SIGKILL.
            unsafe { libc::pause() };
        }
    });
    created.wait();
    assert_eq!(c.kill(), Status::Signaled(libc::SIGKILL));
    let info = fshm::inspect(name).unwrap();
    assert_eq!(
        (info.owner, info.uid, info.mode),
        (fshm::OwnerState::Dead, 1000, mode)
    );
    let st = std::fs::metadata(common::shm_path(name)).unwrap();
    (
        std::os::unix::fs::MetadataExt::dev(&st),
        std::os::unix::fs::MetadataExt::ino(&st),
    )
}

#[test]
fn an_unprivileged_reclaim_never_removes_a_stream_it_may_not_remove() {
    if common::skip_unless_users_can_switch() {
        return;
    }
    let g = NameGuard::new("perm-reclaim");
    let name = g.name();
    let mut attempts = 0;
    for mode in [0o644, 0o664, 0o666] {
        let id = dead_stream_of_uid_1000(name, mode);
        for user in [MEMBER, OTHER] {
            let mut c = fork_child(|| {
                become_user(user);
                // Without write permission the open for reclaim is refused; with it, the
                // sticky /dev/shm still reserves removal to the owning user.
                match fshm::reclaim(name) {
                    Ok(removed) => assert!(!removed, "uid {} removed it", user.0),
                    Err(e) => assert!(
                        [libc::EACCES, libc::EPERM].contains(&fshm::errno_of(&e)),
                        "{e}"
                    ),
                }
                let e = fshm::OpenOptions::new()
                    .reclaim(true)
                    .create(name)
                    .unwrap_err();
                assert!(
                    [libc::EACCES, libc::EPERM, libc::EEXIST].contains(&fshm::errno_of(&e)),
                    "{e}"
                );
                0
            });
            assert_eq!(c.wait(), Status::Exited(0), "uid {} mode {mode:o}", user.0);
            attempts += 2;
            let st = std::fs::metadata(common::shm_path(name)).expect("the stream was removed");
            let now = (
                std::os::unix::fs::MetadataExt::dev(&st),
                std::os::unix::fs::MetadataExt::ino(&st),
            );
            assert_eq!(now, id, "the stream was replaced");
            assert_eq!(fshm::inspect(name).unwrap().owner, fshm::OwnerState::Dead);
        }
        // The owning user may: the checks above could fail.
        let mut c = fork_child(|| {
            become_user(OWNER);
            let s = fshm::OpenOptions::new().reclaim(true).create(name).unwrap();
            assert!(common::read_all(&s).is_empty(), "a fresh stream");
            0
        });
        assert_eq!(c.wait(), Status::Exited(0));
        g.assert_gone();
    }
    eprintln!(
        "perm reclaim: {attempts} unprivileged reclaim attempts (fshm::reclaim and \
         create-with-reclaim by a group member and another user, modes 0644/0664/0666) on \
         dead streams of uid 1000: none removed; the owning user's reclaim works"
    );
}

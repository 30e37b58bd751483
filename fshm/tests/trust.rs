//! The trust model's lines that no other test file backs (RELIABILITY.md, "Trust
//! model"): what a user without access, a read-only user and a writer can and cannot do
//! to a stream of another user, what the creation window lets through, what an
//! administrator's chmod or chown of the stream alone leaves behind, and the two ways a
//! writer can make readers' mappings fault (`ftruncate`, and a punched hole once
//! `/dev/shm` is full) — documented limitations, shown to be what the docs say.
//!
//! Every access check happens in a forked child after `setgroups`/`setgid`/`setuid`
//! (root bypasses mode bits); run as another user, each test says it is skipped.

mod common;

use common::{fork_child, raw_shm_open, NameGuard, Signal, Status};
use fshm::header::{DATA_OFFSET, LOCK_APPEND, LOCK_OWNER};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// `(uid, gid, supplementary groups)`.
type User = (u32, u32, &'static [u32]);
/// The streams' owning user in the tests that need an unprivileged owner.
const OWNER: User = (1000, 1000, &[]);
/// A member of the owning user's group (gid 1000).
const MEMBER: User = (1001, 1001, &[1000]);
/// Anyone else.
const OTHER: User = (1002, 1002, &[]);

/// Whether this process can switch users; if not, the test prints its skip line.
fn root() -> bool {
    !common::skip_unless_users_can_switch()
}

/// Becomes `user` for good (in a forked child only).
fn become_user((uid, gid, groups): User) {
    // SAFETY: plain system calls with valid arguments (`groups` is a valid slice).
    unsafe {
        assert_eq!(libc::setgroups(groups.len(), groups.as_ptr()), 0);
        assert_eq!(libc::setgid(gid), 0);
        assert_eq!(libc::setuid(uid), 0);
        assert_eq!(libc::geteuid(), uid);
    }
}

/// Runs `f` as `user` in a forked child and asserts it exited 0.
fn as_user(user: User, f: impl FnOnce() -> i32) {
    let mut c = fork_child(|| {
        become_user(user);
        f()
    });
    assert_eq!(c.wait(), Status::Exited(0), "as uid {}", user.0);
}

/// Writes one line to stderr from a forked child (the harness's capture would keep it
/// in the child's memory).
fn say(line: &str) {
    let line = format!("{line}\n");
    // SAFETY: writes a valid buffer to fd 2.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// The errno of the last failed system call.
fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

/// `fcntl(cmd)` with an OFD lock of `kind` on byte `at`: 0 or errno.
fn ofd(fd: libc::c_int, cmd: libc::c_int, kind: libc::c_int, at: u64) -> i32 {
    // SAFETY: an all-zero flock is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = at as libc::off_t;
    fl.l_len = 1;
    // SAFETY: `fl` is a valid flock for the call.
    if unsafe { libc::fcntl(fd, cmd, &mut fl) } == 0 {
        0
    } else {
        last_errno()
    }
}

/// Whether some open file description other than `fd`'s holds a write lock on byte
/// `at` (the probe fshm itself makes: a read lock conflicts with write locks only).
fn write_locked(fd: libc::c_int, at: u64) -> bool {
    // SAFETY: an all-zero flock is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_RDLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = at as libc::off_t;
    fl.l_len = 1;
    // SAFETY: `fl` is a valid flock for the call.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut fl) }, 0);
    fl.l_type == libc::F_WRLCK as libc::c_short
}

fn lock_name(name: &str) -> String {
    common::lock_object_name(name)
}

/// The objects under creation names of `name` (`<name>%new.<key>`, a name without `/`
/// inside).
fn creation_objects(name: &str) -> Vec<String> {
    let prefix = format!("{}%new.", name.trim_start_matches('/'));
    std::fs::read_dir(fshm::SHM_DIR)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|f| f.starts_with(&prefix))
        .map(|f| format!("/{f}"))
        .collect()
}

/// `(st_dev, st_ino, st_mode & 0o7777)` of a name in /dev/shm.
fn identity(name: &str) -> Option<(u64, u64, u32)> {
    use std::os::unix::fs::MetadataExt;
    let st = std::fs::symlink_metadata(common::shm_path(name)).ok()?;
    Some((st.dev(), st.ino(), st.mode() & 0o7777))
}

/// Creates `name` in a child running as `user` with `mode`, then kills the child.
fn dead_stream_of(user: User, name: &str, mode: u32) {
    let created = Signal::new();
    let mut c = fork_child(|| {
        become_user(user);
        let mut s = fshm::OpenOptions::new().mode(mode).create(name).unwrap();
        s.write_all(b"secret").unwrap();
        created.notify();
        loop {
            // SAFETY: waits for the SIGKILL that ends the process.
            unsafe { libc::pause() };
        }
    });
    created.wait();
    assert_eq!(c.kill(), Status::Signaled(libc::SIGKILL));
}

#[test]
fn a_user_without_access_can_see_the_name_but_not_open_inspect_list_or_remove_it() {
    if !root() {
        return;
    }
    let g = NameGuard::new("trust-noaccess");
    let name = g.name();
    dead_stream_of(OWNER, name, 0o600);
    let before = identity(name).expect("the dead stream");
    as_user(OTHER, || {
        // The name, owner, mode and size are public, as for any file in /dev/shm.
        assert_eq!(identity(name).map(|i| i.2), Some(0o600));
        assert_eq!(common::errno(fshm::Stream::open(name)), libc::EACCES);
        let ro = fshm::OpenOptions::new().read_only(true).open(name);
        assert_eq!(common::errno(ro), libc::EACCES);
        assert_eq!(common::errno(fshm::inspect(name)), libc::EACCES);
        assert!(!fshm::list().unwrap().iter().any(|i| i.name == name));
        assert_eq!(
            raw_shm_open(&lock_name(name), libc::O_RDONLY, 0)
                .map(drop)
                .map_err(|e| e.raw_os_error()),
            Err(Some(libc::EACCES))
        );
        // Removing it: the sticky /dev/shm reserves that to the owning user (the
        // kernel's EPERM, which glibc's shm_unlink reports as EACCES).
        assert_eq!(common::errno(fshm::force_destroy(name)), libc::EACCES);
        assert_eq!(common::errno(fshm::reclaim(name)), libc::EACCES);
        let e = fshm::OpenOptions::new()
            .reclaim(true)
            .create(name)
            .unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::EACCES, "{e}");
        0
    });
    assert_eq!(identity(name), Some(before), "the stream was replaced");
    assert!(
        common::shm_exists(&lock_name(name)),
        "the lock object was removed"
    );
    fshm::force_destroy(name).unwrap();
    g.assert_gone();
}

#[test]
fn a_read_only_guest_of_a_lossless_ring_reads_without_attaching() {
    if !root() {
        return;
    }
    let g = NameGuard::new("trust-ro-attach");
    let name = g.name();
    let mut writer = fshm::OpenOptions::new()
        .mode(0o644)
        .ring(4096, fshm::RingPolicy::Lossless)
        .create(name)
        .unwrap();
    writer.write_all(b"for everyone").unwrap();
    as_user(OTHER, || {
        let s = fshm::Stream::open(name).unwrap();
        assert!(!s.is_writable() && !s.is_attached());
        assert_eq!(common::errno(s.attach()), libc::EBADF);
        assert_eq!(common::read_all(&s), b"for everyone");
        assert_eq!(fshm::inspect(name).unwrap().attached_readers, 0);
        0
    });
    // Nobody holds the writer back: a whole capacity more goes in at once.
    writer.set_write_timeout(Some(Duration::ZERO));
    writer.write_all(&[1u8; 4096]).unwrap();
    drop(writer);
    g.assert_gone();
}

#[test]
fn a_writer_can_hold_the_append_token_and_fake_a_dead_owners_liveness() {
    if !root() {
        return;
    }
    let g = NameGuard::new("trust-writer");
    let name = g.name();
    // A stream of uid 1000 its group may write; the owner dies.
    dead_stream_of(OWNER, name, 0o660);
    let held = Signal::new();
    let mut writer = fork_child(|| {
        become_user(MEMBER);
        // Write locks on the owner's byte of the stream object and the append byte of
        // the lock object, through descriptors open for writing, as any writer may.
        // Removing it is the owning user's alone (sticky /dev/shm), write access or not.
        assert_eq!(common::errno(fshm::force_destroy(name)), libc::EACCES);
        assert!(common::shm_exists(name) && common::shm_exists(&lock_name(name)));
        let stream = raw_shm_open(name, libc::O_RDWR, 0).unwrap();
        let lock = raw_shm_open(&lock_name(name), libc::O_RDWR, 0).unwrap();
        assert_eq!(
            ofd(stream.fd, libc::F_OFD_SETLK, libc::F_WRLCK, LOCK_OWNER),
            0
        );
        assert_eq!(
            ofd(lock.fd, libc::F_OFD_SETLK, libc::F_WRLCK, LOCK_APPEND),
            0
        );
        held.notify();
        loop {
            // SAFETY: waits for the SIGKILL that ends the process.
            unsafe { libc::pause() };
        }
    });
    held.wait();
    // The dead owner looks alive, so reclaim leaves the name alone and followers wait
    // on (a follower of a dead owner's stream would get Ended at once)...
    assert_eq!(fshm::inspect(name).unwrap().owner, fshm::OwnerState::Alive);
    assert!(!fshm::reclaim(name).unwrap());
    let appender = fshm::OpenOptions::new().append(true).open(name).unwrap();
    assert_eq!(
        appender.wait_for(6, Some(Duration::from_millis(100))),
        fshm::WaitStatus::TimedOut
    );
    // ... and an appender waits for the writer's token (it gives up only because this
    // test stops waiting; an append has no timeout).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|t| {
        let appender = &appender;
        t.spawn(move || tx.send((&*appender).write(b"late").map_err(|e| e.to_string())));
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "the append did not wait for the writer's token"
        );
        // Both end with the writer.
        assert_eq!(writer.kill(), Status::Signaled(libc::SIGKILL));
        assert_eq!(rx.recv_timeout(common::PATIENCE).unwrap(), Ok(4));
    });
    assert_eq!(fshm::inspect(name).unwrap().owner, fshm::OwnerState::Dead);
    assert_eq!(appender.wait_for(10, None), fshm::WaitStatus::Ended);
    assert!(fshm::reclaim(name).unwrap());
    drop(appender);
    g.assert_gone();
}

#[test]
fn the_lock_object_follows_set_permissions_but_not_a_chmod_of_the_stream_alone() {
    if !root() {
        return;
    }
    let g = NameGuard::new("trust-chmod");
    let name = g.name();
    let mut owner = fshm::OpenOptions::new().mode(0o644).create(name).unwrap();
    owner.write_all(b"0123456789").unwrap();
    let stream_path = common::shm_path(name);
    let chmod = |path: &std::path::Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    assert_eq!(identity(&lock_name(name)).unwrap().2, 0o600);

    // An administrator widens the stream alone: others may now write it, but not open
    // the lock object, so their appends fail (and commit nothing) where plain writes work.
    chmod(&stream_path, 0o666);
    as_user(OTHER, || {
        let s = fshm::OpenOptions::new().append(true).open(name).unwrap();
        assert!(s.is_writable());
        assert_eq!(common::errno((&s).write(b"append")), libc::EACCES);
        s.write_at(0, b"w").unwrap();
        assert_eq!(s.len(), 10);
        0
    });
    // On a lossless ring a writable guest attaches as it opens, so its open fails.
    let ring_guard = NameGuard::new("trust-chmod-ring");
    let ring_name = ring_guard.name();
    let ring = fshm::OpenOptions::new()
        .mode(0o644)
        .ring(4096, fshm::RingPolicy::Lossless)
        .create(ring_name)
        .unwrap();
    chmod(&common::shm_path(ring_name), 0o666);
    as_user(OTHER, || {
        assert_eq!(common::errno(fshm::Stream::open(ring_name)), libc::EACCES);
        0
    });
    ring.set_permissions(0o666).unwrap();
    as_user(OTHER, || {
        assert!(fshm::Stream::open(ring_name).unwrap().is_attached());
        0
    });
    drop(ring);
    ring_guard.assert_gone();
    // set_permissions brings the lock object along.
    owner.set_permissions(0o666).unwrap();
    assert_eq!(identity(&lock_name(name)).unwrap().2, 0o666);
    as_user(OTHER, || {
        let s = fshm::OpenOptions::new().append(true).open(name).unwrap();
        (&s).write_all(b"append").unwrap();
        0
    });
    assert_eq!(owner.len(), 16);

    // An administrator narrows the stream alone: others now open the stream read-only,
    // yet still open the lock object and can hold its tokens.
    chmod(&stream_path, 0o644);
    let held = Signal::new();
    let stop = Signal::new();
    let mut demoted = fork_child(|| {
        become_user(OTHER);
        let s = fshm::Stream::open(name).unwrap();
        assert!(!s.is_writable());
        let lock = raw_shm_open(&lock_name(name), libc::O_RDWR, 0).unwrap();
        assert_eq!(
            ofd(lock.fd, libc::F_OFD_SETLK, libc::F_WRLCK, LOCK_APPEND),
            0
        );
        held.notify();
        stop.wait();
        0
    });
    held.wait();
    let lock = raw_shm_open(&lock_name(name), libc::O_RDWR, 0).unwrap();
    assert!(
        write_locked(lock.fd, LOCK_APPEND),
        "a reader holds the append token"
    );
    stop.notify();
    demoted.assert_success();
    // set_permissions narrows the lock object too; from then on a reader cannot open it.
    owner.set_permissions(0o644).unwrap();
    assert_eq!(identity(&lock_name(name)).unwrap().2, 0o600);
    as_user(OTHER, || {
        let r = raw_shm_open(&lock_name(name), libc::O_RDWR, 0).map(drop);
        assert_eq!(r.map_err(|e| e.raw_os_error()), Err(Some(libc::EACCES)));
        0
    });
    assert_eq!(identity(&lock_name(name)).unwrap().2, 0o600);
    drop(lock);
    drop(owner);
    g.assert_gone();
}

#[test]
fn a_chmod_never_revokes_a_descriptor_already_open() {
    if !root() {
        return;
    }
    let g = NameGuard::new("trust-revoke");
    let name = g.name();
    let owner = fshm::OpenOptions::new().mode(0o666).create(name).unwrap();
    let opened = Signal::new();
    let narrowed = Signal::new();
    let mut writer = fork_child(|| {
        become_user(OTHER);
        let s = fshm::OpenOptions::new().append(true).open(name).unwrap();
        (&s).write_all(b"before|").unwrap();
        opened.notify();
        narrowed.wait();
        // Mode bits are checked at open: this handle keeps writing and appending.
        (&s).write_all(b"after").unwrap();
        // A new open is read-only.
        assert!(!fshm::Stream::open(name).unwrap().is_writable());
        0
    });
    opened.wait();
    owner.set_permissions(0o644).unwrap();
    narrowed.notify();
    writer.assert_success();
    assert_eq!(common::read_all(&owner), b"before|after");
    drop(owner);
    g.assert_gone();
}

#[test]
fn a_chown_of_the_stream_alone_makes_the_new_owners_set_permissions_fail_and_change_nothing() {
    if !root() {
        return;
    }
    let g = NameGuard::new("trust-chown");
    let name = g.name();
    let owner = fshm::OpenOptions::new().mode(0o600).create(name).unwrap();
    // An administrator gives the stream, not its lock object, to uid 1000.
    // SAFETY: plain system call on the owner's own descriptor.
    assert_eq!(unsafe { libc::fchown(owner.as_raw_fd(), 1000, 1000) }, 0);
    as_user(OWNER, || {
        let s = fshm::Stream::open(name).unwrap();
        // Its lock object is still root's, mode 0600: the new owning user cannot open it.
        let e = s.set_permissions(0o640).unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::EACCES, "{e}");
        assert!(e.to_string().contains("lock object"), "{e}");
        let e = s.set_group(1000).unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::EACCES, "{e}");
        0
    });
    // Refused before anything changed: the stream's bits are as they were.
    assert_eq!(identity(name).unwrap().2, 0o600);
    assert_eq!(identity(&lock_name(name)).unwrap().2, 0o600);
    drop(owner);
    g.assert_gone();
}

#[test]
fn a_squatted_lock_object_name_is_never_used_and_a_squatted_name_fails_at_once() {
    if !root() {
        return;
    }
    let g = NameGuard::new("trust-squat");
    let name = g.name();
    // Another user creates what was once the lock object's name, open to all.
    let old_lock = format!("{name}%lock");
    as_user(OTHER, || {
        let o = raw_shm_open(
            &old_lock,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            0o666,
        )
        .unwrap();
        // SAFETY: plain system call on our descriptor.
        assert_eq!(unsafe { libc::fchmod(o.fd, 0o666) }, 0);
        0
    });
    let squatted = identity(&old_lock).unwrap();
    // Squatting the stream's own name: EEXIST at once, naming the object, and reclaim
    // never removes an object that is not an fshm stream.
    let other_name = NameGuard::new("trust-squat-name");
    as_user(OTHER, || {
        let o = common::plain_object(other_name.name(), b"not a stream, open to all");
        // SAFETY: plain system call on our descriptor.
        assert_eq!(unsafe { libc::fchmod(o.fd, 0o666) }, 0);
        0
    });
    as_user(OWNER, || {
        for reclaim in [false, true] {
            let e = fshm::OpenOptions::new()
                .reclaim(reclaim)
                .create(other_name.name())
                .unwrap_err();
            assert_eq!(fshm::errno_of(&e), libc::EEXIST, "{e}");
            let object = format!("/dev/shm{}", other_name.name());
            assert!(e.to_string().contains(&object), "{e}");
            assert!(e.to_string().contains(&format!("uid {}", OTHER.0)), "{e}");
        }
        0
    });
    assert!(common::shm_exists(other_name.name()));
    assert!(common::lock_objects_of(other_name.name()).is_empty());
    fshm::force_destroy(other_name.name()).unwrap();
    // The squatter's object under the old lock name changes nothing: the lock object
    // is a new one, the owner's, under a name of its own.
    as_user(OWNER, || {
        let s = fshm::OpenOptions::new().mode(0o644).create(name).unwrap();
        let lock = lock_name(name);
        assert_ne!(lock, old_lock);
        let (_, _, mode) = identity(&lock).unwrap();
        assert_eq!(mode, 0o600);
        let st = std::fs::metadata(common::shm_path(&lock)).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&st), OWNER.0);
        (&s).write_all(b"x").unwrap();
        drop(s);
        0
    });
    assert_eq!(
        identity(&old_lock),
        Some(squatted),
        "the squatter's object changed"
    );
    as_user(OTHER, || {
        let c = std::ffi::CString::new(old_lock.as_str()).unwrap();
        // SAFETY: `c` is NUL-terminated.
        assert_eq!(unsafe { libc::shm_unlink(c.as_ptr()) }, 0);
        0
    });
    g.assert_gone();
}

/// A seccomp filter for the calling thread only that hands every
/// `fcntl(_, F_OFD_SETLK, _)` to a supervisor: returns the listener descriptor, or why
/// the kernel refused. (No architecture check: the filtered thread makes native system
/// calls only; the argument is read as the low half of a little-endian word.)
fn notify_on_ofd_setlk() -> Result<libc::c_int, String> {
    const NR: u32 = 0; // offsetof(struct seccomp_data, nr)
    const ARG1: u32 = 24; // offsetof(struct seccomp_data, args[1]), low half (little endian)
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let mut prog = [
        stmt(ld, NR),
        jeq(libc::SYS_fcntl as u32, 0, 3),
        stmt(ld, ARG1),
        jeq(libc::F_OFD_SETLK as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_USER_NOTIF),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: plain system calls; `fprog` points to a valid program that outlives them.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!(
                "PR_SET_NO_NEW_PRIVS: {}",
                std::io::Error::last_os_error()
            ));
        }
        let fd = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog,
        );
        if fd < 0 {
            return Err(format!("seccomp: {}", std::io::Error::last_os_error()));
        }
        Ok(fd as libc::c_int)
    }
}

/// Exit code of the creation-window child when the kernel offers no seccomp listener.
const NO_SECCOMP: i32 = 77;

/// The creation window, stopped where it is widest: the owner has created the object
/// under its creation name (`<object>%new.<key>`, `O_CREAT|O_EXCL`; the stream's name
/// does not exist yet) and is about to take its liveness token. A seccomp listener
/// holds the owner's thread at that `fcntl` while another user tries to open the
/// object. It must be refused — the object has the owner's bits only — for had it
/// opened it, a read lock on the owner's byte would keep the owner from ever taking its
/// token.
#[test]
fn a_new_stream_admits_nobody_else_until_its_owner_holds_its_token() {
    if !root() {
        return;
    }
    let g = NameGuard::new("trust-window");
    let name = g.name();
    let mut child = fork_child(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|t| {
            let creator = t.spawn(move || {
                let listener = notify_on_ofd_setlk();
                let ok = listener.is_ok();
                tx.send(listener).unwrap();
                ok.then(|| fshm::OpenOptions::new().mode(0o644).create(name))
            });
            let listener = match rx.recv().unwrap() {
                Ok(fd) => fd,
                Err(why) => {
                    say(&format!(
                        "skipped: the creation window test needs a seccomp listener: {why}"
                    ));
                    return NO_SECCOMP;
                }
            };
            while !creator.is_finished() {
                let mut pfd = libc::pollfd {
                    fd: listener,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, 10) } <= 0 || pfd.revents & libc::POLLIN == 0 {
                    continue;
                }
                // SAFETY: an all-zero seccomp_notif is valid; the ioctl fills it.
                let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
                // SAFETY: the ioctl writes one seccomp_notif into `req`.
                if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
                    continue; // the call was interrupted and withdrawn
                }
                // The owner's thread waits in its fcntl until the answer below: look,
                // and let an intruder try, without failing before the answer (a panic
                // here would leave that thread waiting for good).
                let cmd = req.data.args[1];
                let name_there = common::shm_exists(name);
                let building = creation_objects(name);
                let object = building.first().cloned().unwrap_or_default();
                let mode = identity(&object).map(|i| i.2);
                let owner_byte_held = raw_shm_open(&object, libc::O_RDONLY, 0)
                    .map(|probe| write_locked(probe.fd, LOCK_OWNER))
                    .ok();
                let got = Signal::new();
                let mut intruder = fork_child(|| {
                    become_user(OTHER);
                    let r = match raw_shm_open(&object, libc::O_RDONLY, 0) {
                        Ok(o) => {
                            // What an intruder would do: hold the owner's byte.
                            ofd(o.fd, libc::F_OFD_SETLK, libc::F_RDLCK, LOCK_OWNER);
                            std::mem::forget(o);
                            0
                        }
                        Err(e) => e.raw_os_error().unwrap_or(-1),
                    };
                    got.send_u64(r as u64);
                    loop {
                        // SAFETY: waits for the SIGKILL that ends the process.
                        unsafe { libc::pause() };
                    }
                });
                let intruder_open = got.recv_timeout(8, common::PATIENCE);
                let resp = libc::seccomp_notif_resp {
                    id: req.id,
                    val: 0,
                    error: 0,
                    flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
                };
                // SAFETY: the ioctl reads one seccomp_notif_resp.
                unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
                // SAFETY: closes the listener this process opened.
                unsafe { libc::close(listener) };
                let created = creator.join().unwrap().expect("filter installed");
                // (Killed only now: an intruder's lock would have stayed until here.)
                intruder.kill();
                let intruder_open =
                    intruder_open.map(|b| u64::from_le_bytes(b.try_into().unwrap()) as i32);
                assert_eq!(
                    intruder_open,
                    Some(libc::EACCES),
                    "another user opened a stream being created"
                );
                // Held at the owner's token: the object exists with the owner's bits
                // only, and nobody holds the owner's byte yet.
                assert_eq!(cmd, libc::F_OFD_SETLK as u64);
                assert!(!name_there, "the name exists before the stream is made");
                assert_eq!(building.len(), 1, "{building:?}");
                assert_eq!(mode, Some(0o600));
                assert_eq!(owner_byte_held, Some(false));
                let s = created.expect("the owner takes its token and applies the mode");
                assert_eq!(s.owner_state(), fshm::OwnerState::Alive);
                assert_eq!(identity(name).map(|i| i.2), Some(0o644));
                // Now the mode admits the other user for reading.
                as_user(OTHER, || {
                    assert!(!fshm::Stream::open(name).unwrap().is_writable());
                    0
                });
                drop(s);
                return 0;
            }
            panic!("the owner never took its token with F_OFD_SETLK");
        })
    });
    match child.wait() {
        Status::Exited(NO_SECCOMP) => {}
        s => assert_eq!(s, Status::Exited(0)),
    }
    g.assert_gone();
}

#[test]
fn a_writer_that_truncates_the_object_makes_readers_fault() {
    let g = NameGuard::new("trust-truncate");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    owner.write_all(&[5u8; 3 * 4096]).unwrap();
    let read_once = Signal::new();
    let cut = Signal::new();
    let mut reader = fork_child(|| {
        let s = fshm::Stream::open(name).unwrap();
        let mut b = [0u8; 16];
        assert_eq!(s.read_at(4096, &mut b).unwrap(), 16);
        assert_eq!(b, [5u8; 16]);
        read_once.notify();
        cut.wait();
        // The header still says 3 pages are committed; the pages are gone.
        let _ = s.read_at(4096, &mut b);
        0
    });
    read_once.wait();
    let raw = raw_shm_open(name, libc::O_RDWR, 0).unwrap();
    raw.ftruncate(DATA_OFFSET);
    cut.notify();
    assert_eq!(reader.wait(), Status::Signaled(libc::SIGBUS));
    drop(raw);
    drop(owner);
    g.assert_gone();
}

/// Exit codes of the hole-punching child.
const NO_NAMESPACE: i32 = 78;

/// Enters a private mount namespace with a 1 MiB tmpfs on /dev/shm (in a forked child
/// only); `Err` says why not.
fn private_small_dev_shm() -> Result<(), &'static str> {
    // SAFETY: plain system calls with valid, NUL-terminated arguments.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err("unshare(CLONE_NEWNS) was refused");
        }
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
            || libc::mount(
                c"tmpfs".as_ptr(),
                c"/dev/shm".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"size=1m,mode=1777".as_ptr().cast(),
            ) != 0
        {
            return Err("mounting a tmpfs in the namespace failed");
        }
    }
    Ok(())
}

/// `fallocate(PUNCH_HOLE | KEEP_SIZE)` over `len` bytes of data from `at`.
fn punch(fd: libc::c_int, at: u64, len: u64) {
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: plain system call on a valid descriptor.
    let r = unsafe { libc::fallocate(fd, mode, (DATA_OFFSET + at) as i64, len as i64) };
    assert_eq!(r, 0, "punch: {}", std::io::Error::last_os_error());
}

/// Issue 13's second `SIGBUS` path, a documented limitation: a writer punches holes in
/// committed data; a reader that then copies from a hole through its mapping reads
/// zeros while memory is left, and faults once /dev/shm is full (the kernel cannot give
/// the hole a page). Committed pages that were not punched stay readable.
#[test]
fn a_writer_that_punches_a_hole_and_fills_dev_shm_makes_readers_fault() {
    if !root() {
        return;
    }
    let name = common::unique_name("trust-hole");
    let name = name.as_str();
    let mut child = fork_child(|| {
        if let Err(why) = private_small_dev_shm() {
            say(&format!(
                "skipped: the hole-punching test needs a private tmpfs: {why}"
            ));
            return NO_NAMESPACE;
        }
        const PAGE: u64 = 4096;
        let mut owner = fshm::Stream::create(name).unwrap();
        owner.write_all(&[7u8; 64 * PAGE as usize]).unwrap();
        let (opened, step, looked) = (Signal::new(), Signal::new(), Signal::new());
        let mut reader = fork_child(|| {
            let s = fshm::Stream::open(name).unwrap();
            let mut b = [0u8; 16];
            // Small reads below what this handle has seen the object hold copy through
            // its mapping (a read near the end has it look).
            assert_eq!(s.read_at(63 * PAGE, &mut b).unwrap(), 16);
            assert_eq!(b, [7u8; 16]);
            opened.notify();
            step.wait();
            // Holes punched, memory left: the first hole reads as zeros.
            assert_eq!(s.read_at(8 * PAGE, &mut b).unwrap(), 16);
            assert_eq!(b, [0u8; 16]);
            looked.notify();
            step.wait();
            // /dev/shm full: committed pages read, the second hole faults.
            assert_eq!(s.read_at(PAGE, &mut b).unwrap(), 16);
            assert_eq!(b, [7u8; 16]);
            looked.notify();
            let _ = s.read_at(16 * PAGE, &mut b);
            0
        });
        opened.wait();
        let writer = fshm::Stream::open(name).unwrap();
        punch(writer.as_raw_fd(), 8 * PAGE, PAGE);
        punch(writer.as_raw_fd(), 16 * PAGE, PAGE);
        step.notify();
        looked.wait();
        // Fill /dev/shm with another object.
        let fill_name = common::unique_name("trust-fill");
        let fill = raw_shm_open(
            &fill_name,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )
        .unwrap();
        let mut size = 0i64;
        loop {
            // SAFETY: plain system call on our descriptor.
            if unsafe { libc::fallocate(fill.fd, 0, size, PAGE as i64) } != 0 {
                assert_eq!(last_errno(), libc::ENOSPC);
                break;
            }
            size += PAGE as i64;
        }
        step.notify();
        looked.wait();
        let status = reader.wait();
        assert_eq!(
            status,
            Status::Signaled(libc::SIGBUS),
            "the reader did not fault"
        );
        drop(fill);
        let fill_name = std::ffi::CString::new(fill_name).unwrap();
        // SAFETY: a NUL-terminated name.
        unsafe { libc::shm_unlink(fill_name.as_ptr()) };
        drop(writer);
        drop(owner);
        assert!(!common::shm_exists(name));
        0
    });
    match child.wait() {
        Status::Exited(NO_NAMESPACE) => {}
        s => assert_eq!(s, Status::Exited(0), "the hole-punching child failed"),
    }
    assert!(!common::shm_exists(name));
}

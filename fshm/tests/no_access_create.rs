//! Users with no access to a stream cannot stall its creation, nor a reclaim: each
//! attack below runs in real processes as another user (uid 1002), and each operation it
//! targets runs in a forked child under a watchdog, so a hang fails the test instead of
//! stalling the suite.
//!
//! - an object squatting what was once the lock object's name (`<object>%lock`), with a
//!   write lock held on it, or a directory there;
//! - a watcher that sees every new object in /dev/shm (inotify) and squats the lock
//!   object's old name of each new stream at once;
//! - a user that creates its own stream, lets its owner die and holds the reclaim token
//!   of its lock object: `fshm::reclaim`, a create with reclaim, and a reclaim of
//!   another dead stream all return within the bound;
//! - a create that fails leaves nothing behind;
//! - a creator killed before publishing its stream leaves nothing under the name, and
//!   `fshm::reclaim` removes what it left under its creation name (not a live one's).
//!
//! The uid switch needs root; run as another user, each test (but the last, which
//! needs none) says it is skipped.

mod common;

use common::{fork_child, Child, NameGuard, Signal, Status};
use std::io::Write;
use std::time::{Duration, Instant};

/// The attacker's uid and gid: neither the streams' owner nor in their group.
const HOSTILE: u32 = 1002;
/// The victim's uid and gid (an unprivileged user; root's creates are checked too).
const VICTIM: u32 = 1000;
/// How long an operation under attack may take before the test calls it stalled: far
/// more than any bound the library keeps (a reclaim gives up after 1 s), far less than
/// forever.
/// How long an attacked call may take before the test calls it stalled, scaled by the
/// time factor of slow runs (qemu-user, valgrind).
fn watchdog() -> Duration {
    Duration::from_secs(10) * common::time_factor()
}

/// Whether this process can switch users; if not, the test prints its skip line.
fn root() -> bool {
    !common::skip_unless_users_can_switch()
}

/// Runs `f` in a forked child (as `uid`, or as root for `None`) and waits for it under
/// the watchdog: a child still running then is killed and the test fails, naming `what`.
fn bounded(what: &str, uid: Option<u32>, f: impl FnOnce() -> i32) {
    let mut child = fork_child(|| {
        if let Some(uid) = uid {
            common::drop_privileges(uid);
        }
        f()
    });
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait() {
            assert_eq!(status, Status::Exited(0), "{what} failed");
            return;
        }
        if start.elapsed() > watchdog() {
            child.kill();
            panic!(
                "{what} did not return within {:?}: it is stalled",
                watchdog()
            );
        }
        // Polling for the child's exit (waitpid has no timeout).
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts a child as the attacker that runs `f`, then reports (one byte) and waits to
/// be killed, keeping whatever `f` opened and locked.
fn attacker(f: impl FnOnce()) -> Child {
    let ready = Signal::new();
    let child = fork_child(|| {
        common::drop_privileges(HOSTILE);
        f();
        ready.notify();
        loop {
            // SAFETY: waits for the SIGKILL that ends the process.
            unsafe { libc::pause() };
        }
    });
    ready.wait();
    child
}

/// A write lock on byte `byte` of `fd` (`F_OFD_SETLK`): 0 or errno.
fn write_lock(fd: libc::c_int, byte: i64) -> i32 {
    // SAFETY: an all-zero flock is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte;
    fl.l_len = 1;
    // SAFETY: `fl` is a valid flock for the call.
    if unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) } == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

/// Squats `object` as the attacker would: created open to all, a write lock held on
/// bytes 0 and 1 (the old reclaim and append tokens). The descriptor stays open.
fn squat_with_lock(object: &str) {
    let o = common::raw_shm_open(object, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o666)
        .expect("the attacker creates the name");
    // SAFETY: plain system call on the attacker's own descriptor.
    assert_eq!(unsafe { libc::fchmod(o.fd, 0o666) }, 0);
    assert_eq!(write_lock(o.fd, 0), 0);
    assert_eq!(write_lock(o.fd, 1), 0);
    std::mem::forget(o);
}

/// The victim's side: creates `name`, writes, appends (through the lock object), reads
/// back, closes; nothing of it remains.
fn create_use_and_close(name: &str) -> i32 {
    let mut s = fshm::OpenOptions::new()
        .mode(0o644)
        .append(true)
        .create(name)
        .expect("create");
    s.write_all(b"hello").unwrap();
    assert_eq!(
        common::read_all(&fshm::Stream::open(name).unwrap()),
        b"hello"
    );
    drop(s);
    assert!(!common::shm_exists(name));
    assert!(common::lock_objects_of(name).is_empty());
    0
}

#[test]
fn a_locked_object_at_the_old_lock_name_stalls_no_create() {
    if !root() {
        return;
    }
    let g = NameGuard::new("noacc-locked");
    let name = g.name();
    let old_lock = format!("{name}%lock");
    let mut squatter = attacker(|| squat_with_lock(&old_lock));
    bounded("an unprivileged create", Some(VICTIM), || {
        create_use_and_close(name)
    });
    bounded("root's create", None, || create_use_and_close(name));
    squatter.kill();
    assert!(
        common::shm_exists(&old_lock),
        "the squatter's object was removed"
    );
    let _ = std::fs::remove_file(common::shm_path(&old_lock));
    g.assert_gone();
}

#[test]
fn a_directory_at_the_old_lock_name_fails_no_create() {
    if !root() {
        return;
    }
    let g = NameGuard::new("noacc-dir");
    let name = g.name();
    let dir = common::shm_path(&format!("{name}%lock"));
    let mut c = fork_child(|| {
        common::drop_privileges(HOSTILE);
        std::fs::create_dir(&dir).map(|_| 0).unwrap_or(1)
    });
    assert_eq!(c.wait(), Status::Exited(0));
    bounded("root's create", None, || create_use_and_close(name));
    bounded("an unprivileged create", Some(VICTIM), || {
        create_use_and_close(name)
    });
    std::fs::remove_dir(&dir).unwrap();
    g.assert_gone();
}

/// The watcher: inotify on /dev/shm; for every new object whose name starts with
/// `prefix` and is a stream's object (no `%`), it creates `<object>%lock` open to all
/// and write-locks it, and it tries to open every other new object of the prefix (the
/// lock objects and the objects being built), keeping any it could open and
/// read-locking their byte 0. It reports nothing: the victim's creations are what is
/// checked.
fn watch_and_squat(prefix: &str) {
    // SAFETY: plain system calls; `path` is NUL-terminated.
    let ino = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(
        ino >= 0,
        "inotify_init1: {}",
        std::io::Error::last_os_error()
    );
    let path = c"/dev/shm";
    // SAFETY: `path` is NUL-terminated; `ino` is ours.
    let w =
        unsafe { libc::inotify_add_watch(ino, path.as_ptr(), libc::IN_CREATE | libc::IN_MOVED_TO) };
    assert!(
        w >= 0,
        "inotify_add_watch: {}",
        std::io::Error::last_os_error()
    );
    let prefix = prefix.trim_start_matches('/').to_owned();
    // The watcher runs in a thread of the attacker's process, so that `attacker`
    // reports once it is watching.
    std::thread::Builder::new()
        .spawn({
            move || {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    // SAFETY: reads into our own buffer.
                    let n = unsafe { libc::read(ino, buf.as_mut_ptr().cast(), buf.len()) };
                    if n <= 0 {
                        continue;
                    }
                    let mut at = 0usize;
                    while at < n as usize {
                        // SAFETY: the kernel wrote whole inotify_event records.
                        let ev = unsafe {
                            std::ptr::read_unaligned(
                                buf[at..].as_ptr().cast::<libc::inotify_event>(),
                            )
                        };
                        let start = at + std::mem::size_of::<libc::inotify_event>();
                        let raw = &buf[start..start + ev.len as usize];
                        at = start + ev.len as usize;
                        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                        let Ok(file) = std::str::from_utf8(&raw[..end]) else {
                            continue;
                        };
                        if !file.starts_with(&prefix) {
                            continue;
                        }
                        if !file.contains('%') {
                            let lock = format!("/{file}%lock");
                            if let Ok(o) = common::raw_shm_open(
                                &lock,
                                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                                0o666,
                            ) {
                                write_lock(o.fd, 0);
                                write_lock(o.fd, 1);
                                std::mem::forget(o);
                            }
                        } else if let Ok(o) =
                            common::raw_shm_open(&format!("/{file}"), libc::O_RDONLY, 0)
                        {
                            // An object it may read: hold a read lock on its byte 0.
                            // SAFETY: an all-zero flock is valid; `fl` lives for the call.
                            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
                            fl.l_type = libc::F_RDLCK as libc::c_short;
                            fl.l_len = 1;
                            // SAFETY: as above.
                            unsafe { libc::fcntl(o.fd, libc::F_OFD_SETLK, &fl) };
                            std::mem::forget(o);
                        }
                    }
                }
            }
        })
        .unwrap();
}

#[test]
fn a_watcher_squatting_each_new_streams_lock_name_stalls_none_of_100_creates() {
    if !root() {
        return;
    }
    let base = NameGuard::new("noacc-watch");
    let prefix = format!("{}-", base.name());
    let mut watcher = attacker(|| watch_and_squat(&prefix));
    let names: Vec<String> = (0..100).map(|i| format!("{prefix}{i}")).collect();
    // The watcher's squats go, as root, also when the test fails.
    struct Squats<'a>(&'a [String]);
    impl Drop for Squats<'_> {
        fn drop(&mut self) {
            for name in self.0 {
                let _ = std::fs::remove_file(common::shm_path(&format!("{name}%lock")));
            }
        }
    }
    let _squats = Squats(&names);
    bounded("100 creates under a watcher", Some(VICTIM), || {
        for name in &names {
            create_use_and_close(name);
        }
        0
    });
    watcher.kill();
    // The watcher's squats, removed as root; the streams left nothing.
    for name in &names {
        assert!(!common::shm_exists(name), "{name} was left");
        assert!(
            common::lock_objects_of(name).is_empty(),
            "{name}'s lock object was left"
        );
    }
}

/// Makes `name` a stream of the attacker whose owner died (mode 0666, so that anyone
/// may reclaim it), and starts the attacker holding the reclaim token (byte 0) of its
/// lock object.
fn dead_stream_with_held_reclaim_token(name: &str) -> Child {
    let mut owner = fork_child(|| {
        common::drop_privileges(HOSTILE);
        let s = fshm::OpenOptions::new().mode(0o666).create(name).unwrap();
        std::mem::forget(s);
        // SAFETY: dies without closing, as a killed owner would.
        unsafe { libc::_exit(0) }
    });
    assert_eq!(owner.wait(), Status::Exited(0));
    assert_eq!(fshm::inspect(name).unwrap().owner, fshm::OwnerState::Dead);
    let lock = common::lock_object_name(name);
    attacker(|| {
        let o = common::raw_shm_open(&lock, libc::O_RDWR, 0).expect("its own lock object");
        assert_eq!(
            write_lock(o.fd, 0),
            0,
            "the attacker takes the reclaim token"
        );
        std::mem::forget(o);
    })
}

/// A stream of `uid` whose owner died.
fn dead_stream_of(uid: u32, name: &str) {
    let mut owner = fork_child(|| {
        common::drop_privileges(uid);
        let s = fshm::OpenOptions::new().mode(0o644).create(name).unwrap();
        std::mem::forget(s);
        // SAFETY: dies without closing, as a killed owner would.
        unsafe { libc::_exit(0) }
    });
    assert_eq!(owner.wait(), Status::Exited(0));
}

#[test]
fn a_held_reclaim_token_bounds_reclaim_and_reclaiming_creates() {
    if !root() {
        return;
    }
    let g = NameGuard::new("noacc-reclaim");
    let name = g.name();
    let other = NameGuard::new("noacc-reclaim-other");
    let mut holder = dead_stream_with_held_reclaim_token(name);
    dead_stream_of(VICTIM, other.name());
    for uid in [None, Some(VICTIM)] {
        bounded("fshm::reclaim", uid, || {
            let start = Instant::now();
            let e = fshm::reclaim(name).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
            assert_eq!(fshm::errno_of(&e), libc::EAGAIN);
            assert!(e.to_string().contains(name), "{e}");
            assert!(start.elapsed() < Duration::from_secs(5));
            let e = fshm::OpenOptions::new()
                .reclaim(true)
                .create(name)
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
            // Without patience: one look, no wait.
            let e = fshm::reclaim_within(name, Duration::ZERO).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
            0
        });
    }
    assert!(common::shm_exists(name), "the held stream was removed");
    // Another dead stream is reclaimed as usual meanwhile.
    bounded("reclaiming another dead stream", None, || {
        assert!(fshm::reclaim(other.name()).unwrap());
        0
    });
    // Once the holder lets go, the reclaim goes through.
    holder.kill();
    bounded("the reclaim once the token is free", None, || {
        let s = fshm::OpenOptions::new().reclaim(true).create(name).unwrap();
        drop(s);
        0
    });
    g.assert_gone();
    other.assert_gone();
}

#[test]
fn a_create_that_fails_leaves_nothing_behind() {
    if !root() {
        return;
    }
    let g = NameGuard::new("noacc-fails");
    let name = g.name();
    // The name squatted by another user: EEXIST at once, naming the object; nothing
    // of the victim's remains.
    let mut squatter = attacker(|| {
        let o =
            common::raw_shm_open(name, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o644).unwrap();
        std::mem::forget(o);
    });
    bounded("a create of a squatted name", Some(VICTIM), || {
        let e = fshm::OpenOptions::new().create(name).unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::EEXIST, "{e}");
        assert!(e.to_string().contains(&format!("/dev/shm{name}")), "{e}");
        assert!(e.to_string().contains("uid 1002"), "{e}");
        0
    });
    squatter.kill();
    assert!(common::lock_objects_of(name).is_empty());
    fshm::force_destroy(name).unwrap();
    // A directory there: EEXIST too, with reclaim or not, and it stays.
    let dir = common::shm_path(name);
    let mut c = fork_child(|| {
        common::drop_privileges(HOSTILE);
        std::fs::create_dir(&dir).map(|_| 0).unwrap_or(1)
    });
    assert_eq!(c.wait(), Status::Exited(0));
    bounded(
        "a create of a name that is a directory",
        Some(VICTIM),
        || {
            for reclaim in [false, true] {
                let e = fshm::OpenOptions::new()
                    .reclaim(reclaim)
                    .create(name)
                    .unwrap_err();
                assert_eq!(fshm::errno_of(&e), libc::EEXIST, "{e}");
            }
            // `reclaim` itself refuses what is no stream at once, as every entry point.
            let e = fshm::reclaim(name).unwrap_err();
            assert_eq!(fshm::errno_of(&e), libc::EPROTO, "{e}");
            0
        },
    );
    assert!(dir.is_dir());
    std::fs::remove_dir(&dir).unwrap();
    // A ring too large for memory: fails after the lock object exists; nothing remains.
    bounded(
        "a create that cannot reserve its memory",
        Some(VICTIM),
        || {
            // SAFETY: plain system call with a valid rlimit.
            let r = unsafe {
                libc::setrlimit(
                    libc::RLIMIT_FSIZE,
                    &libc::rlimit {
                        rlim_cur: 1 << 20,
                        rlim_max: 1 << 20,
                    },
                )
            };
            assert_eq!(r, 0);
            // SAFETY: ignoring SIGXFSZ, so the write past the limit fails with EFBIG.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            let e = fshm::OpenOptions::new()
                .ring(4 << 20, fshm::RingPolicy::Lossy)
                .create(name)
                .unwrap_err();
            assert_eq!(fshm::errno_of(&e), libc::EFBIG, "{e}");
            0
        },
    );
    g.assert_gone();
}

/// Where a creator of `name` builds it: `<name>%new.<key>` (a name without `/` inside).
fn creation_object(name: &str, key: u64) -> String {
    format!("{name}%new.{key:016x}")
}

#[test]
fn what_a_killed_creator_left_blocks_nothing_and_reclaim_removes_it() {
    let g = NameGuard::new("noacc-killed-creator");
    let name = g.name();
    // A creator killed before publishing leaves its object under its creation name,
    // never under the stream's name: an empty one (killed at once), and one with a
    // whole header naming its lock object (killed just before the rename).
    let empty = creation_object(name, 0x1111);
    drop(common::raw_shm_open(&empty, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600).unwrap());
    let built = creation_object(name, 0x2222);
    let mut child = fork_child(|| {
        // A whole stream, its owner dead, moved to a creation name: what a creator
        // killed just before its rename leaves (with its lock object).
        let s = fshm::Stream::create(name).unwrap();
        std::mem::forget(s);
        std::fs::rename(common::shm_path(name), common::shm_path(&built)).unwrap();
        // SAFETY: dies without closing, as a killed creator would.
        unsafe { libc::_exit(0) }
    });
    assert_eq!(child.wait(), Status::Exited(0));
    let left_lock = common::lock_object_name(name);
    // A live creator's object (its owner token held) is left alone.
    let live = creation_object(name, 0x3333);
    let holder = Signal::new();
    let mut live_creator = fork_child(|| {
        let o = common::raw_shm_open(&live, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600)
            .unwrap();
        assert_eq!(write_lock(o.fd, 0), 0);
        holder.notify();
        loop {
            // SAFETY: waits for the SIGKILL that ends the process.
            unsafe { libc::pause() };
        }
    });
    holder.wait();
    // Nothing blocks a create of the name.
    let s = fshm::Stream::create(name).unwrap();
    drop(s);
    assert_eq!(
        common::lock_objects_of(name),
        std::slice::from_ref(&left_lock)
    );
    // reclaim removes the dead creators' objects, with the lock object a header names,
    // and leaves the live one's.
    assert!(!fshm::reclaim(name).unwrap());
    assert!(!common::shm_exists(&empty));
    assert!(!common::shm_exists(&built));
    assert!(!common::shm_exists(&left_lock));
    assert!(common::shm_exists(&live));
    live_creator.kill();
    // `fshm gc`'s sweep, by name prefix, finds it now.
    assert_eq!(fshm::reclaim_unfinished(name).unwrap(), [name.to_owned()]);
    assert!(!common::shm_exists(&live));
    assert!(fshm::reclaim_unfinished(name).unwrap().is_empty());
    g.assert_gone();
}

/// Squats `name` as the attacker would to make every open of it wait: a regular file
/// readable by all (mode 0644) holding `header`, a write lock held on byte 0 (where an
/// owner holds its liveness lock while it sets a stream up). The descriptor stays open.
fn squat_unready(name: &str, header: &[u8]) {
    let o = common::raw_shm_open(name, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o644)
        .expect("the attacker creates the name");
    // SAFETY: plain system call on the attacker's own descriptor.
    assert_eq!(unsafe { libc::fchmod(o.fd, 0o644) }, 0);
    o.ftruncate(8192);
    o.pwrite(0, header);
    assert_eq!(write_lock(o.fd, 0), 0);
    std::mem::forget(o);
}

#[test]
fn a_squatted_name_without_a_whole_header_is_refused_at_once() {
    if !root() {
        return;
    }
    // Streams are published whole, so what is at a name without a whole header is
    // never a stream being set up, whatever lock its creator holds: refused at once.
    let g = NameGuard::new("noacc-squat-unready");
    let name = g.name();
    // `fshm` in little-endian bytes, the magic half-written: its low half only.
    let model = NameGuard::new("noacc-squat-model");
    let real = fshm::Stream::create(model.name()).unwrap();
    let magic = common::raw_shm_open(model.name(), libc::O_RDONLY, 0)
        .unwrap()
        .pread(0, 8);
    drop(real);
    let mut half = magic.clone();
    half[4..].fill(0);
    for (what, header) in [
        ("a zero header", vec![0u8; 64]),
        ("a half-written magic", half),
    ] {
        let mut squatter = attacker(|| squat_unready(name, &header));
        for uid in [None, Some(VICTIM)] {
            bounded(&format!("open of {what} as {uid:?}"), uid, || {
                let t = Instant::now();
                for read_only in [false, true] {
                    let e = fshm::OpenOptions::new()
                        .read_only(read_only)
                        .open(name)
                        .unwrap_err();
                    assert_eq!(fshm::errno_of(&e), libc::EPROTO, "{what}: {e}");
                    assert!(e.to_string().contains("not an fshm stream"), "{e}");
                }
                assert_eq!(common::errno(fshm::inspect(name)), libc::EPROTO);
                // A refusal takes a few system calls; the squat used to cost each open
                // a 2 s wait (then ETIMEDOUT).
                let took = t.elapsed();
                assert!(
                    took < Duration::from_millis(500) * common::time_factor(),
                    "{took:?}"
                );
                0
            });
        }
        squatter.kill();
        fshm::force_destroy(name).unwrap();
    }
    g.assert_gone();
}

/// Makes `count` empty objects `<prefix><i:016x>` as the attacker, readable and
/// writable by all (mode 0666), as fast as plain `open(2)` in `/dev/shm` allows.
fn flood(prefix: &str, count: usize) {
    bounded("the attacker's flood", Some(HOSTILE), || {
        for i in 0..count {
            let path = std::ffi::CString::new(format!("/dev/shm{prefix}{:016x}", i + 1)).unwrap();
            // SAFETY: `path` is NUL-terminated; the descriptor is closed at once.
            unsafe {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o666,
                );
                assert!(fd >= 0, "{}", std::io::Error::last_os_error());
                libc::fchmod(fd, 0o666);
                libc::close(fd);
            }
        }
        0
    });
}

/// Removes, when dropped (also on failure), every object in `/dev/shm` whose name
/// starts with the prefix it holds (as root).
struct RemoveAll<'a>(&'a str);

impl Drop for RemoveAll<'_> {
    fn drop(&mut self) {
        let prefix = self.0.trim_start_matches('/');
        for e in std::fs::read_dir("/dev/shm").unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[test]
fn a_flood_of_creation_look_alikes_keeps_reclaim_within_its_patience() {
    if !root() {
        return;
    }
    // 40,000 objects named like creation objects of the victim's stream, made by a user
    // with no access to it: the victim cannot remove them (sticky /dev/shm), root can.
    const FLOOD: usize = 40_000;
    let g = NameGuard::new("noacc-flood");
    let name = g.name();
    let look_alikes = format!("{name}%new.");
    let cleanup = RemoveAll(&look_alikes);
    flood(&look_alikes, FLOOD);
    // The victim's own reclaim passes over what it may not remove, opening none of
    // it: far within its patience (it used to open each, some 60 µs apiece).
    bounded("the victim's reclaim", Some(VICTIM), || {
        let s = fshm::OpenOptions::new().mode(0o644).create(name).unwrap();
        let t = Instant::now();
        assert!(!fshm::reclaim(name).unwrap(), "a live stream stays");
        let took = t.elapsed();
        assert!(
            took < fshm::RECLAIM_PATIENCE / 2 * common::time_factor(),
            "the victim's reclaim took {took:?}"
        );
        drop(s);
        0
    });
    // Root may remove them (and does, as dead creations), but stops when its patience
    // is spent: the promise is to take at most RECLAIM_PATIENCE, not to sweep all.
    let left = || {
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&look_alikes[1..])
            })
            .count()
    };
    let t = Instant::now();
    assert!(!fshm::reclaim(name).unwrap());
    let took = t.elapsed();
    assert!(
        took < fshm::RECLAIM_PATIENCE + Duration::from_millis(500) * common::time_factor(),
        "root's reclaim took {took:?}"
    );
    assert!(left() < FLOOD, "root's reclaim removed none");
    // `Duration::ZERO` looks for none.
    let before = left();
    assert!(!fshm::reclaim_within(name, Duration::ZERO).unwrap());
    assert_eq!(left(), before);
    drop(cleanup);
    assert_eq!(left(), 0);
    g.assert_gone();
}

#[test]
fn a_readers_read_lock_keeps_no_dead_creation_from_removal() {
    if !root() {
        return;
    }
    // A creator killed after giving its creation object the final mode (0644) leaves
    // it readable by all; a reader takes a read lock on byte 0, where a reclaimer used
    // to need the write lock. Reclaimers probe instead: the reader changes nothing.
    let g = NameGuard::new("noacc-read-locked-creation");
    let name = g.name();
    let object = creation_object(name, 0xdead_beef);
    let _cleanup = RemoveAll(&object);
    bounded("the killed creator", Some(VICTIM), || {
        let o = common::raw_shm_open(&object, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o644)
            .unwrap();
        // SAFETY: plain system call on this process's own descriptor.
        assert_eq!(unsafe { libc::fchmod(o.fd, 0o644) }, 0);
        o.ftruncate(1 << 20);
        0
    });
    for who in [
        "the victim's reclaim",
        "the victim's reclaim_unfinished",
        "root's gc sweep",
    ] {
        let o = object.clone();
        let mut reader = attacker(move || {
            let r = common::raw_shm_open(&o, libc::O_RDONLY, 0).expect("readable by all");
            // SAFETY: an all-zero flock is a valid value of this plain C struct.
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_RDLCK as libc::c_short;
            fl.l_len = 1;
            // SAFETY: `fl` is a valid flock for the call.
            let r2 = unsafe { libc::fcntl(r.fd, libc::F_OFD_SETLK, &fl) };
            assert_eq!(r2, 0, "{}", std::io::Error::last_os_error());
            std::mem::forget(r);
        });
        match who {
            "the victim's reclaim" => bounded(who, Some(VICTIM), || {
                assert!(!fshm::reclaim(name).unwrap());
                0
            }),
            "the victim's reclaim_unfinished" => bounded(who, Some(VICTIM), || {
                assert_eq!(fshm::reclaim_unfinished(name).unwrap(), [name.to_owned()]);
                0
            }),
            _ => assert_eq!(fshm::reclaim_unfinished(name).unwrap(), [name.to_owned()]),
        }
        reader.kill();
        assert!(!common::shm_exists(&object), "{who} left the dead creation");
        if who != "root's gc sweep" {
            // Again, for the next reclaimer.
            bounded("the killed creator", Some(VICTIM), || {
                let o = common::raw_shm_open(
                    &object,
                    libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                    0o644,
                )
                .unwrap();
                // SAFETY: plain system call on this process's own descriptor.
                assert_eq!(unsafe { libc::fchmod(o.fd, 0o644) }, 0);
                0
            });
        }
    }
    g.assert_gone();
}

//! Whatever another user puts at a stream's name — a FIFO, a socket, a directory, a
//! symbolic link, a device — every entry point refuses it at once with `EPROTO`
//! (`InvalidData`), and changes nothing: `Stream::open` (read-write, read-only, with
//! the read-only fallback), `inspect`, `list`, `reclaim`, `create` (also with reclaim);
//! `force_destroy` removes the entry itself (a link, never its target), a directory
//! excepted. And a user swapping a regular file with a FIFO in a loop
//! (`renameat2(RENAME_EXCHANGE)`) makes no `list`, `inspect`, open or `reclaim` hang.
//!
//! The attacker is a forked child running as uid/gid 1002 where this process may switch
//! users (root); otherwise it runs as this user, which shows the same hangs. Victims run
//! as this process's user and, where users can switch, as uid/gid 1003 (for whom the
//! attacker's objects are other users' objects, so the read-only fallback is taken).
//! Every victim runs in a forked child under a watchdog: a hang fails the test, naming
//! the call that hung. (The devices are made by this process: only a process with
//! `CAP_MKNOD` can make one; without it that case is skipped.)

mod common;

use common::{fork_child, Child, Signal, Status};
use std::ffi::CString;
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The attacker's uid and gid.
const ATTACKER: u32 = 1002;
/// A second, unprivileged victim's uid and gid.
const VICTIM: u32 = 1003;
/// How long a victim may take for all its calls. Each should take microseconds; a
/// hang takes forever.
/// How long an attacked call may take before the test calls it stalled, scaled by the
/// time factor of slow runs (qemu-user, valgrind).
fn watchdog() -> Duration {
    Duration::from_secs(60) * common::time_factor()
}

/// Whether this process can make children of other users. If not, says that the
/// calling test runs its attacker and victims as this user only (and fails instead
/// where `FSHM_TEST_REQUIRE_PRIVILEGES` is set).
fn users_can_switch() -> bool {
    match common::cannot_switch_users() {
        None => true,
        Some(why) => {
            common::skip(&format!(
                "its uid-1002 attacker and uid-1003 victim (it runs them as this user): {why}"
            ));
            false
        }
    }
}

/// In a forked child: becomes the attacker where users can switch, and lets every
/// mode bit through.
fn become_attacker(switch: bool) {
    if switch {
        common::drop_privileges(ATTACKER);
    }
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
}

/// A path in `/dev/shm` as a C string.
fn cpath(path: &std::path::Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).unwrap()
}

/// What the attacker puts at a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A FIFO nobody writes to, mode 0644: a plain read-only open of it waits forever.
    Fifo,
    /// A Unix socket's file, mode 0666.
    Socket,
    /// A directory, mode 0755.
    Directory,
    /// A symbolic link to a real, readable fshm stream.
    Symlink,
    /// A character device (the null device's numbers), mode 0666.
    Device,
}

/// Removes whatever is at its paths when dropped (also when the test fails).
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let remove = |p: &std::path::Path| match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => drop(std::fs::remove_dir(p)),
            Ok(_) => drop(std::fs::remove_file(p)),
            Err(_) => {}
        };
        for p in &self.0 {
            remove(p);
            // A stream's companions carry random keys: `<object>%lock.<key>` (named
            // here as `<object>%lock`) and `<object>%new.<key>`.
            let (Some(dir), Some(file)) = (p.parent(), p.file_name()) else {
                continue;
            };
            let file = file.to_string_lossy();
            let object = file.strip_suffix("%lock").unwrap_or(&file);
            let keyed = [format!("{object}%lock."), format!("{object}%new.")];
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if keyed.iter().any(|k| name.starts_with(k.as_str())) {
                    remove(&entry.path());
                }
            }
        }
    }
}

/// Puts `kind` at the stream name `name`, as the attacker (a device: as this process).
/// `Ok(false)` if this process may not make a device.
fn plant(name: &str, kind: Kind, link_to: &str, switch: bool) -> io::Result<bool> {
    let path = common::shm_path(name);
    if kind == Kind::Device {
        let p = cpath(&path);
        // SAFETY: `p` is NUL-terminated; makes a device node, nothing else.
        let r = unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        if r != 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EPERM) => Ok(false),
                _ => Err(e),
            };
        }
        // SAFETY: as above; mknod's mode is narrowed by the umask.
        unsafe { libc::chmod(p.as_ptr(), 0o666) };
        return Ok(true);
    }
    let target = common::shm_path(link_to);
    let mut child = fork_child(move || {
        become_attacker(switch);
        let p = cpath(&path);
        // SAFETY: NUL-terminated paths; each call makes one directory entry.
        let r = unsafe {
            match kind {
                Kind::Fifo => libc::mkfifo(p.as_ptr(), 0o644),
                Kind::Directory => libc::mkdir(p.as_ptr(), 0o755),
                Kind::Symlink => libc::symlink(cpath(&target).as_ptr(), p.as_ptr()),
                Kind::Socket => {
                    // The listener closes; its file stays.
                    match std::os::unix::net::UnixListener::bind(&path) {
                        Ok(_) => libc::chmod(p.as_ptr(), 0o666),
                        Err(_) => -1,
                    }
                }
                Kind::Device => unreachable!(),
            }
        };
        assert_eq!(r, 0, "planting {kind:?}: {}", io::Error::last_os_error());
        0
    });
    assert_eq!(child.wait(), Status::Exited(0));
    Ok(true)
}

/// The file type at `name` and its inode, as `lstat` sees it.
fn entry(name: &str) -> Option<(std::fs::FileType, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(common::shm_path(name))
        .ok()
        .map(|m| (m.file_type(), m.ino()))
}

/// Runs `steps` in a forked child (as `uid`, if given) under the watchdog. The child
/// reports each step before it starts it, so a hang names its step.
fn as_victim(uid: Option<u32>, who: &str, steps: &[(&str, &dyn Fn())]) {
    let progress = Signal::new();
    let mut child = fork_child(|| {
        if let Some(uid) = uid {
            common::drop_privileges(uid);
        }
        for (i, (_, step)) in steps.iter().enumerate() {
            progress.send(&[i as u8]);
            step();
        }
        0
    });
    let deadline = Instant::now() + watchdog();
    let mut started = None;
    let status = loop {
        while let Some(b) = progress.recv_timeout(1, Duration::from_millis(1)) {
            started = Some(b[0] as usize);
        }
        if let Some(s) = child.try_wait() {
            break s;
        }
        if Instant::now() >= deadline {
            child.kill();
            let step = started.map_or("(before its first call)", |i| steps[i].0);
            panic!("{who}: `{step}` hung for {:?}", watchdog());
        }
    };
    assert_eq!(
        status,
        Status::Exited(0),
        "{who}: a step failed (its message is above)"
    );
}

/// Asserts that `r` is the refusal of something that is not a stream: `EPROTO`,
/// `InvalidData`, a message naming the stream.
fn refused<T: std::fmt::Debug>(what: &str, r: io::Result<T>) {
    match r {
        Ok(v) => panic!("{what}: got {v:?}, want EPROTO"),
        Err(e) => {
            assert_eq!(
                (fshm::errno_of(&e), e.kind()),
                (libc::EPROTO, ErrorKind::InvalidData),
                "{what}: {e}"
            );
            assert!(e.to_string().contains("not an fshm stream"), "{what}: {e}");
        }
    }
}

/// Asserts that `r` failed with one of `errnos`.
fn failed_with<T: std::fmt::Debug>(what: &str, r: io::Result<T>, errnos: &[i32]) {
    match r {
        Ok(v) => panic!("{what}: got {v:?}, want one of errnos {errnos:?}"),
        Err(e) => assert!(errnos.contains(&fshm::errno_of(&e)), "{what}: {e}"),
    }
}

/// Every entry point that takes a name, against `kind` at a name, as this user and
/// (where users can switch) as another unprivileged one.
fn every_entry_point_refuses(kind: Kind) {
    let switch = users_can_switch();
    let real = common::NameGuard::new("real");
    let real_stream = fshm::OpenOptions::new()
        .mode(0o644)
        .create(real.name())
        .unwrap();
    let name = common::unique_name("planted");
    let _cleanup = Cleanup(vec![common::shm_path(&name)]);
    if !plant(&name, kind, real.name(), switch).unwrap() {
        common::skip("making a device node needs CAP_MKNOD");
        return;
    }
    let before = entry(&name).expect("planted");
    let n = name.as_str();
    let mut victims = vec![(None, "this user")];
    if switch {
        victims.push((Some(VICTIM), "uid 1003"));
    }
    for (uid, who) in victims {
        // Another unprivileged user may lack write access to what is planted (a FIFO
        // or socket of mode 0644 or 0755): the open for writing reclaim needs is then
        // refused by the mode bits first.
        let writers_refusal: &[i32] = match uid {
            None => &[libc::EPROTO],
            Some(_) => &[libc::EPROTO, libc::EACCES],
        };
        let steps: [(&str, &dyn Fn()); 9] = [
            ("Stream::open", &|| {
                refused("Stream::open", fshm::Stream::open(n))
            }),
            ("open read-only", &|| {
                refused(
                    "open read-only",
                    fshm::OpenOptions::new().read_only(true).open(n),
                )
            }),
            ("open with owner_uid", &|| {
                refused(
                    "open with owner_uid",
                    fshm::OpenOptions::new().owner_uid(ATTACKER).open(n),
                )
            }),
            ("inspect", &|| refused("inspect", fshm::inspect(n))),
            ("list_with_prefix", &|| {
                assert_eq!(fshm::list_with_prefix(n).unwrap(), [], "listed")
            }),
            ("list", &|| {
                assert!(fshm::list().unwrap().iter().all(|i| i.name != n), "listed")
            }),
            ("reclaim", &|| {
                failed_with("reclaim", fshm::reclaim(n), writers_refusal)
            }),
            ("create", &|| {
                failed_with("create", fshm::Stream::create(n), &[libc::EEXIST])
            }),
            ("create with reclaim", &|| {
                let r = fshm::OpenOptions::new().reclaim(true).create(n);
                failed_with(
                    "create with reclaim",
                    r,
                    &[libc::EPROTO, libc::EEXIST, libc::EACCES],
                )
            }),
        ];
        as_victim(uid, &format!("{kind:?} as {who}"), &steps);
        assert_eq!(entry(n), Some(before), "the planted {kind:?} was changed");
    }
    // The symbolic link's target, a real stream, was never reached through the link.
    assert_eq!(fshm::inspect(real.name()).unwrap().len, 0);
    drop(real_stream);
}

#[test]
fn a_fifo_at_a_name_is_refused_at_once_everywhere() {
    every_entry_point_refuses(Kind::Fifo);
}

#[test]
fn a_socket_at_a_name_is_refused_at_once_everywhere() {
    every_entry_point_refuses(Kind::Socket);
}

#[test]
fn a_directory_at_a_name_is_refused_at_once_everywhere() {
    every_entry_point_refuses(Kind::Directory);
}

#[test]
fn a_symbolic_link_at_a_name_is_refused_even_to_a_real_stream() {
    every_entry_point_refuses(Kind::Symlink);
}

#[test]
fn a_device_at_a_name_is_refused_at_once_everywhere() {
    every_entry_point_refuses(Kind::Device);
}

#[test]
fn force_destroy_removes_the_entry_itself_and_never_a_directory() {
    let switch = users_can_switch();
    let real = common::NameGuard::new("real");
    let real_stream = fshm::Stream::create(real.name()).unwrap();
    for kind in [Kind::Fifo, Kind::Socket, Kind::Symlink, Kind::Device] {
        let name = common::unique_name("planted");
        let _cleanup = Cleanup(vec![common::shm_path(&name)]);
        if !plant(&name, kind, real.name(), switch).unwrap() {
            continue; // no device without CAP_MKNOD (said by the test above)
        }
        fshm::force_destroy(&name).unwrap();
        assert_eq!(entry(&name), None, "{kind:?} left in place");
    }
    // The link went, its target stayed.
    assert!(fshm::inspect(real.name()).is_ok());
    let name = common::unique_name("planted-dir");
    let _cleanup = Cleanup(vec![common::shm_path(&name)]);
    plant(&name, Kind::Directory, real.name(), switch).unwrap();
    let before = entry(&name);
    refused("force_destroy", fshm::force_destroy(&name));
    assert_eq!(entry(&name), before);
    drop(real_stream);
}

/// `renameat2(from, to, RENAME_EXCHANGE)`.
fn exchange(a: &CString, b: &CString) -> io::Result<()> {
    // SAFETY: NUL-terminated paths; the call swaps two directory entries.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Starts the swapper: the attacker makes a (persistent, closed) fshm stream at `a`
/// and a FIFO at `b`, and exchanges the two names in a loop until killed. Returns once
/// it has swapped a thousand times.
fn swapper(a: &str, b: &str, switch: bool) -> Child {
    let ready = Signal::new();
    let child = fork_child(|| {
        become_attacker(switch);
        let mut s = fshm::OpenOptions::new()
            .mode(0o644)
            .persist(true)
            .create(a)
            .unwrap();
        s.write_all(b"the attacker's bytes").unwrap();
        drop(s);
        let object = |n: &str| cpath(&common::shm_path(&fshm::object_name(n).unwrap()));
        let (pa, pb) = (object(a), object(b));
        // SAFETY: NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(pb.as_ptr(), 0o644) }, 0);
        for round in 0u64.. {
            exchange(&pa, &pb).unwrap();
            if round == 1000 {
                ready.notify();
            }
        }
        0
    });
    ready.wait();
    child
}

/// What one call of the swap test saw: the stream, or the FIFO (refused).
fn tally<T>(seen: &mut [u32; 2], what: &str, r: io::Result<T>) {
    match r {
        Ok(_) => seen[0] += 1,
        Err(e) if fshm::errno_of(&e) == libc::EPROTO => seen[1] += 1,
        Err(e) => panic!("{what}: {e}"),
    }
}

#[test]
fn a_stream_swapped_with_a_fifo_in_a_loop_hangs_no_listing_or_open() {
    let switch = users_can_switch();
    let prefix = common::unique_name("swap");
    let (a, b) = (format!("{prefix}/a"), format!("{prefix}/b"));
    let _cleanup = Cleanup(
        [&a, &b]
            .iter()
            .flat_map(|n| {
                let object = fshm::object_name(n).unwrap();
                [
                    common::shm_path(&object),
                    common::shm_path(&format!("{object}%lock")),
                ]
            })
            .collect(),
    );
    let mut attacker = swapper(&a, &b, switch);
    let (a, prefix) = (a.as_str(), prefix.as_str());
    let (b, names) = (b.as_str(), [a, b.as_str()]);
    let rounds = || {
        // SAFETY: geteuid cannot fail.
        let other_user = unsafe { libc::geteuid() } == VICTIM;
        // [saw the stream, saw the FIFO], over every call.
        let mut seen = [0u32; 2];
        let mut round = 0;
        while round < 300 || seen.iter().any(|&n| n < 20) {
            assert!(round < 20_000, "the race was never seen: {seen:?}");
            // Either name may be listed, even both (the stream seen under each name
            // in turn), never the FIFO.
            for info in fshm::list_with_prefix(prefix).unwrap() {
                assert!(names.contains(&info.name.as_str()), "{info:?}");
                assert!(info.persistent, "{info:?}");
            }
            tally(&mut seen, "inspect", fshm::inspect(a));
            tally(&mut seen, "inspect", fshm::inspect(b));
            tally(
                &mut seen,
                "open read-only",
                fshm::OpenOptions::new().read_only(true).open(a),
            );
            tally(&mut seen, "Stream::open", fshm::Stream::open(a));
            match fshm::reclaim(a) {
                // The stream is persistent: never removed.
                Ok(removed) => assert!(!removed),
                Err(e) if fshm::errno_of(&e) == libc::EPROTO => {}
                // Another user may not open the attacker's objects for writing.
                Err(e) if other_user && fshm::errno_of(&e) == libc::EACCES => {}
                Err(e) => panic!("reclaim: {e}"),
            }
            if round % 100 == 0 {
                fshm::list().unwrap();
            }
            round += 1;
        }
    };
    as_victim(
        None,
        "this user, against the swapper",
        &[("the rounds", &rounds)],
    );
    if switch {
        as_victim(
            Some(VICTIM),
            "uid 1003, against the swapper",
            &[("the rounds", &rounds)],
        );
    }
    assert_eq!(attacker.try_wait(), None, "the swapper stopped");
    attacker.kill();
}

#[test]
fn a_stream_opened_before_a_swap_stays_the_stream() {
    // The descriptor, not the name, is what every later call uses: a guest that opened
    // the stream reads it whatever is at its name afterwards.
    let g = common::NameGuard::new("swapped-after");
    let mut owner = fshm::Stream::create(g.name()).unwrap();
    owner.write_all(b"mine").unwrap();
    let guest = fshm::OpenOptions::new()
        .read_only(true)
        .open(g.name())
        .unwrap();
    let fifo = common::unique_name("fifo");
    let _cleanup = Cleanup(vec![common::shm_path(&fifo)]);
    let (p, f) = (
        cpath(&common::shm_path(g.name())),
        cpath(&common::shm_path(&fifo)),
    );
    // SAFETY: NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(f.as_ptr(), 0o600) }, 0);
    exchange(&p, &f).unwrap();
    // Restores the names (also when the test fails), so the guard removes the stream.
    struct Unswap<'a>(&'a CString, &'a CString);
    impl Drop for Unswap<'_> {
        fn drop(&mut self) {
            let _ = exchange(self.0, self.1);
        }
    }
    let unswap = Unswap(&p, &f);
    assert_eq!(common::read_all(&guest), b"mine");
    let n = g.name();
    as_victim(
        None,
        "this user, after the swap",
        &[("inspect", &|| refused("inspect", fshm::inspect(n)))],
    );
    drop(unswap);
    drop(guest);
    drop(owner);
    g.assert_gone();
    assert!(std::fs::symlink_metadata(common::shm_path(&fifo))
        .unwrap()
        .file_type()
        .is_fifo());
}

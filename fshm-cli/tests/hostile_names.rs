//! The `fshm` command against what another user puts at a stream's name: a FIFO, a
//! socket, a directory, a symbolic link — refused at once by `stat`, `cat`, `tail`,
//! `rm`, `write` (`not an fshm stream`, exit 1), left out by `ls` and `gc`, and never
//! a hang, also while the attacker swaps a stream and a FIFO in a loop
//! (`renameat2(RENAME_EXCHANGE)`); and `--owner USER`, which refuses a stream another
//! user owns before a byte moves.
//!
//! The attacker is a forked child running as uid/gid 1002 where this process may
//! switch users (root); otherwise it runs as this user, which shows the same hangs.
//! Every command runs under a watchdog ([`TIMEOUT`]): a hang fails the test.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Longest time one command may take: each takes milliseconds; a hang, forever.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The attacker's uid and gid.
const ATTACKER: u32 = 1002;

/// A name for this test alone (flat: its object name is itself).
fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/fshm-clih-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `/dev/shm` entry of a stream name.
fn path_of(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}{}",
        fshm::SHM_DIR,
        fshm::object_name(name).unwrap()
    ))
}

fn cpath(p: &std::path::Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
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

/// Whether this process may switch users (tried once, in a forked child). If not,
/// says that the calling test runs its attacker as this user (and fails instead where
/// `FSHM_TEST_REQUIRE_PRIVILEGES` is set).
fn users_can_switch() -> bool {
    let can = can_switch_users();
    if !can {
        let thread = thread::current();
        let test = thread.name().unwrap_or("?");
        let why = "switching users needs root; the attacker runs as this user";
        if std::env::var_os("FSHM_TEST_REQUIRE_PRIVILEGES").is_some_and(|v| !v.is_empty()) {
            panic!("{test} cannot run as meant (FSHM_TEST_REQUIRE_PRIVILEGES is set): {why}");
        }
        let _ = writeln!(io::stderr(), "skipped part of {test}: {why}");
    }
    can
}

fn can_switch_users() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        let mut child = Forked::run(|| {
            // SAFETY: plain system calls with valid arguments (a null list of length 0).
            let ok = unsafe {
                libc::setgroups(0, std::ptr::null()) == 0
                    && libc::setgid(65534) == 0
                    && libc::setuid(65534) == 0
            };
            i32::from(!ok)
        });
        child.wait() == 0
    })
}

/// A forked child; killed and reaped when dropped.
struct Forked(libc::pid_t, Option<i32>);

impl Forked {
    /// Forks; the child runs `f` and `_exit`s with its result (101 if it panicked). The
    /// child only makes system calls and opens streams of its own.
    fn run(f: impl FnOnce() -> i32) -> Forked {
        // SAFETY: fork has no memory-safety preconditions; the child runs `f` and
        // leaves with `_exit`, running none of the parent's destructors.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: leaves the child at once.
            unsafe { libc::_exit(code) };
        }
        Forked(pid, None)
    }

    /// The child's exit code (-1 if a signal ended it), waiting at most [`TIMEOUT`].
    fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(code) = self.try_wait() {
                return code;
            }
            assert!(Instant::now() < deadline, "child {} hung", self.0);
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn try_wait(&mut self) -> Option<i32> {
        if self.1.is_none() {
            let mut st = 0;
            // SAFETY: our own child; `st` is a valid out-pointer.
            if unsafe { libc::waitpid(self.0, &mut st, libc::WNOHANG) } == self.0 {
                self.1 = Some(if libc::WIFEXITED(st) {
                    libc::WEXITSTATUS(st)
                } else {
                    -1
                });
            }
        }
        self.1
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            // SAFETY: our own unreaped child.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
            let mut st = 0;
            // SAFETY: as above.
            unsafe { libc::waitpid(self.0, &mut st, 0) };
        }
    }
}

/// In a forked child: becomes the attacker where users can switch; modes exact.
fn become_attacker(switch: bool) {
    if switch {
        // SAFETY: plain system calls with valid arguments.
        unsafe {
            assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
            assert_eq!(libc::setgid(ATTACKER), 0);
            assert_eq!(libc::setuid(ATTACKER), 0);
        }
    }
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
}

/// Runs `fshm ARGS` with `input` on stdin, under the watchdog.
fn fshm_in(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fshm"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fshm");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = thread::spawn(move || drop(stdin.write_all(&input)));
    let read = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            v
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`fshm {}` hung for {TIMEOUT:?}", args.join(" "));
        }
        thread::sleep(Duration::from_millis(2));
    };
    feeder.join().unwrap();
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn fshm(args: &[&str]) -> Output {
    fshm_in(args, b"")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What the attacker puts at a name.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Fifo,
    Socket,
    Directory,
    Symlink,
}

/// `lstat` type and inode of a path.
fn entry(p: &std::path::Path) -> Option<(std::fs::FileType, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .ok()
        .map(|m| (m.file_type(), m.ino()))
}

#[test]
fn every_command_refuses_what_is_not_a_stream_at_once() {
    let switch = users_can_switch();
    let real = unique_name("real");
    let _real_cleanup = Cleanup(vec![
        path_of(&real),
        PathBuf::from(format!("{}%lock", path_of(&real).display())),
    ]);
    let real_stream = fshm::OpenOptions::new().mode(0o644).create(&real).unwrap();
    for kind in [Kind::Fifo, Kind::Socket, Kind::Directory, Kind::Symlink] {
        let name = unique_name("planted");
        let path = path_of(&name);
        let _cleanup = Cleanup(vec![path.clone()]);
        let target = path_of(&real);
        let mut planter = Forked::run(|| {
            become_attacker(switch);
            let p = cpath(&path);
            // SAFETY: NUL-terminated paths; each call makes one directory entry.
            let r = unsafe {
                match kind {
                    Kind::Fifo => libc::mkfifo(p.as_ptr(), 0o644),
                    Kind::Directory => libc::mkdir(p.as_ptr(), 0o755),
                    Kind::Symlink => libc::symlink(cpath(&target).as_ptr(), p.as_ptr()),
                    Kind::Socket => match std::os::unix::net::UnixListener::bind(&path) {
                        Ok(_) => 0,
                        Err(_) => -1,
                    },
                }
            };
            i32::from(r != 0)
        });
        assert_eq!(planter.wait(), 0, "planting {kind:?}");
        let before = entry(&path);
        for args in [
            vec!["stat", &name],
            vec!["stat", "--json", &name],
            vec!["cat", &name],
            vec!["tail", &name],
            vec!["tail", "-f", &name],
            vec!["rm", &name],
            vec!["write", &name],
            vec!["cat", "--owner", "0", &name],
        ] {
            let o = fshm_in(&args, b"SECRET\n");
            assert_eq!(o.status.code(), Some(1), "{kind:?}: fshm {args:?}");
            let err = text(&o.stderr);
            assert!(
                err.contains("not an fshm stream"),
                "{kind:?}: fshm {args:?}: {err}"
            );
            assert_eq!(entry(&path), before, "{kind:?}: fshm {args:?} changed it");
        }
        let prefix = &name[..name.len() - "planted".len()];
        for args in [
            vec!["ls", &name],
            vec!["ls", "--json", prefix],
            vec!["gc", prefix],
        ] {
            let o = fshm(&args);
            assert!(o.status.success(), "{kind:?}: fshm {args:?}: {o:?}");
            assert!(
                !text(&o.stdout).contains(&name[1..]),
                "{kind:?}: fshm {args:?} showed it: {}",
                text(&o.stdout)
            );
        }
        assert_eq!(entry(&path), before, "{kind:?}: changed");
    }
    // The link's target, a real stream, was never reached through the link.
    assert_eq!(fshm::inspect(&real).unwrap().len, 0);
    drop(real_stream);
}

#[test]
fn ls_gc_and_stat_survive_a_stream_swapped_with_a_fifo_in_a_loop() {
    let switch = users_can_switch();
    let prefix = unique_name("swap");
    let (a, b) = (format!("{prefix}/a"), format!("{prefix}/b"));
    let _cleanup = Cleanup(
        [&a, &b]
            .iter()
            .flat_map(|n| {
                let p = path_of(n);
                [p.clone(), PathBuf::from(format!("{}%lock", p.display()))]
            })
            .collect(),
    );
    let mut ready = [0; 2];
    // SAFETY: `ready` is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(ready.as_mut_ptr()) }, 0);
    let swapper = Forked::run(|| {
        become_attacker(switch);
        // A dead owner's stream would be removed by the first gc; a persistent one
        // stays, and every listing opens it.
        let mut s = fshm::OpenOptions::new()
            .mode(0o644)
            .persist(true)
            .create(&a)
            .unwrap();
        s.write_all(b"the attacker's bytes").unwrap();
        drop(s);
        let (pa, pb) = (cpath(&path_of(&a)), cpath(&path_of(&b)));
        // SAFETY: NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(pb.as_ptr(), 0o644) }, 0);
        for round in 0u64.. {
            // SAFETY: NUL-terminated paths; swaps two directory entries.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_renameat2,
                    libc::AT_FDCWD,
                    pa.as_ptr(),
                    libc::AT_FDCWD,
                    pb.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            assert_eq!(r, 0, "renameat2: {}", io::Error::last_os_error());
            if round == 1000 {
                // SAFETY: writes one byte from a valid buffer to our pipe.
                unsafe { libc::write(ready[1], [1u8].as_ptr().cast(), 1) };
            }
        }
        0
    });
    let mut byte = [0u8];
    // SAFETY: reads one byte into a valid buffer from our pipe.
    let got = unsafe { libc::read(ready[0], byte.as_mut_ptr().cast(), 1) };
    assert_eq!(got, 1, "the swapper never started");
    // [stat saw the stream, stat saw the FIFO]
    let mut seen = [0u32; 2];
    let mut round = 0;
    while round < 60 || seen.contains(&0) {
        assert!(round < 2000, "the race was never seen: {seen:?}");
        for args in [vec!["ls", &prefix], vec!["gc", &prefix]] {
            let o = fshm(&args);
            assert!(o.status.success(), "fshm {args:?}: {o:?}");
            assert!(!text(&o.stdout).contains("removed"), "{o:?}");
        }
        let o = fshm(&["stat", &a]);
        match o.status.code() {
            Some(0) => seen[0] += 1,
            Some(1) if text(&o.stderr).contains("not an fshm stream") => seen[1] += 1,
            _ => panic!("fshm stat: {o:?}"),
        }
        if round % 20 == 0 {
            let o = fshm(&["ls"]);
            assert!(o.status.success(), "fshm ls: {o:?}");
        }
        round += 1;
    }
    drop(swapper);
    // SAFETY: closes the two descriptors of our pipe.
    unsafe {
        libc::close(ready[0]);
        libc::close(ready[1]);
    }
}

#[test]
fn owner_refuses_a_stream_another_user_owns() {
    let name = unique_name("owned");
    let _cleanup = Cleanup(vec![
        path_of(&name),
        PathBuf::from(format!("{}%lock", path_of(&name).display())),
    ]);
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    // The stream's owner: the attacker (uid 1002) where users can switch, else this
    // user; `other` is a user who does not own it.
    let (owner_uid, other) = if users_can_switch() {
        (ATTACKER, me)
    } else {
        (me, me + 1)
    };
    let mut writer = Command::new(env!("CARGO_BIN_EXE_fshm"));
    writer
        .args(["write", "--create", "--mode", "666", &name])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if owner_uid != me {
        use std::os::unix::process::CommandExt;
        writer.uid(owner_uid).gid(owner_uid);
    }
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut writer = Kill(writer.spawn().unwrap());
    writer
        .0
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"squatter's line\n")
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while fshm::inspect(&name).map_or(true, |i| i.len == 0) {
        assert!(Instant::now() < deadline, "the stream never appeared");
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(fshm::inspect(&name).unwrap().uid, owner_uid);
    let other = other.to_string();
    let owner = owner_uid.to_string();
    for args in [
        vec!["cat", "--owner", &other, &name],
        vec!["tail", "--owner", &other, &name],
        vec!["tail", "-f", "--owner", &other, &name],
        vec!["write", "--owner", &other, &name],
    ] {
        let o = fshm_in(&args, b"token=SECRET\n");
        assert_eq!(o.status.code(), Some(1), "fshm {args:?}: {o:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!("owned by uid {owner_uid}, not by uid {other}")),
            "fshm {args:?}: {err}"
        );
    }
    assert_eq!(
        fshm::inspect(&name).unwrap().len,
        16,
        "a refused write wrote"
    );
    let o = fshm(&["cat", "--owner", &owner, &name]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(text(&o.stdout), "squatter's line\n");
    if me == 0 {
        // A user name works as well as a number (root is uid 0 everywhere).
        let o = fshm(&["cat", "--owner", "root", &name]);
        assert_eq!(o.status.code(), Some(i32::from(owner_uid != 0)), "{o:?}");
    }
    // A user that does not exist, and --owner with --create: usage errors.
    for args in [
        vec!["cat", "--owner", "no-such-user-fshm", &name],
        vec!["write", "--create", "--owner", &owner, &name],
    ] {
        let o = fshm(&args);
        assert_eq!(o.status.code(), Some(2), "fshm {args:?}: {o:?}");
    }
    drop(writer);
}

#[test]
fn every_command_refuses_a_squatted_name_without_a_whole_header_at_once() {
    // The attacker's regular file at a name (mode 0644), all zero or with half its
    // magic, a write lock held on byte 0 where an owner setting a stream up would hold
    // its token. Streams are published whole, so it is no stream being set up: every
    // command says "not an fshm stream" at once (they waited 2 s, then timed out).
    let switch = users_can_switch();
    for (what, magic) in [("zero", [0u8; 8]), ("half magic", *b"FSHM\0\0\0\0")] {
        let name = unique_name("unready");
        let path = path_of(&name);
        let _cleanup = Cleanup(vec![path.clone()]);
        let mut planter = Forked::run(|| {
            become_attacker(switch);
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path);
            let ok = f.is_ok_and(|f| {
                use std::os::unix::fs::{FileExt, PermissionsExt};
                f.set_permissions(std::fs::Permissions::from_mode(0o644))
                    .is_ok()
                    && f.set_len(8192).is_ok()
                    && f.write_all_at(&magic, 0).is_ok()
            });
            i32::from(!ok)
        });
        assert_eq!(planter.wait(), 0, "planting {what}");
        // The lock on the squatter's object (who holds it makes no difference to an
        // open: only that a write lock is held).
        let held = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        // SAFETY: an all-zero flock is a valid value of this plain C struct.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_len = 1;
        {
            use std::os::fd::AsRawFd;
            // SAFETY: `fl` is a valid flock for the call on our open descriptor.
            let r = unsafe { libc::fcntl(held.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
            assert_eq!(r, 0, "{}", io::Error::last_os_error());
        }
        for args in [
            vec!["cat", &name],
            vec!["tail", &name],
            vec!["tail", "-f", &name],
            vec!["stat", &name],
        ] {
            let t = Instant::now();
            let o = fshm(&args);
            let took = t.elapsed();
            assert_eq!(o.status.code(), Some(1), "{what}: fshm {args:?}");
            let err = text(&o.stderr);
            assert!(
                err.contains("not an fshm stream"),
                "{what}: fshm {args:?}: {err}"
            );
            assert!(
                took < Duration::from_secs(1),
                "{what}: fshm {args:?} took {took:?}"
            );
        }
        drop(held);
    }
}

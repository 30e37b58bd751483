//! Shared helpers for the multi-process integration tests: unique stream names, a guard
//! that removes a name even when a test panics, forked children with exit-code
//! reporting, and pipe-based signals for sleep-free synchronisation between processes.
//!
//! Forking from the (multi-threaded) test harness is safe enough here because glibc
//! resets its malloc locks in the child, and children only touch streams they open
//! themselves (never a `Stream` value of the parent: its drop would act for the parent).
#![allow(dead_code)]

use std::ffi::CString;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// How long any wait on another process may take before the test fails instead of
/// hanging. Generous: tests run in parallel on small machines.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Sets up, once and before any fork of this test process, the library's process-wide
/// state that is made on first use (the per-object registry and its fork handlers,
/// the racing copies' list): a child forked while another test thread was in the
/// middle of making it would find it half made and wait forever (a fork copies one
/// thread only). The library's own state is fork-safe (`local.rs`, `reactor/`); this
/// also settles what the test process's dependencies make on first use, before the
/// test threads start forking at once.
fn warm_up_before_forks() {
    static WARM: Once = Once::new();
    WARM.call_once(|| {
        use std::io::{Read, Write};
        let name = unique_name("warm-up");
        let created = fshm::OpenOptions::new()
            .ring(4 * 4096, fshm::RingPolicy::Lossless)
            .create(&name);
        if let Ok(mut w) = created {
            if let Ok(mut r) = fshm::Stream::open(&name) {
                let _ = w.write_all(b"warm");
                let mut b = [0u8; 4];
                let _ = r.read(&mut b);
            }
        }
        let _ = fshm::force_destroy(&name);
    });
}

/// [`PATIENCE`] scaled by [`time_factor`] (up to 3×): what the shared helpers below (children's
/// exits, signals, announced sleeps) wait for before they fail the test. A hang still
/// fails; a slow run (qemu-user, valgrind, a loaded machine) gets the time it needs.
pub fn patience() -> Duration {
    // At most three times: under qemu-user the slowest legitimate wait is about 115 s,
    // and a real hang should still fail within minutes.
    PATIENCE * time_factor().min(3)
}

/// The environment variable that scales every hard time bound of the tests (a whole
/// number ≥ 1): set by `ci/cross.sh` (qemu-user) and `ci/reliability.sh` (valgrind),
/// and by hand on a loaded machine.
pub const TIME_FACTOR_ENV: &str = "FSHM_TEST_TIME_FACTOR";

/// How many times longer than on a quiet native run the tests' time bounds may be:
/// [`TIME_FACTOR_ENV`], 1 when unset. A bound a test asserts on (a wait must end within
/// `d`) is written `d * time_factor()`; a value that is not a whole number ≥ 1 fails
/// the test rather than silently meaning 1.
pub fn time_factor() -> u32 {
    match std::env::var(TIME_FACTOR_ENV) {
        Err(std::env::VarError::NotPresent) => 1,
        Ok(v) if v.is_empty() => 1,
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(f) if f >= 1 => f,
            _ => panic!("{TIME_FACTOR_ENV}={v:?}: expected a whole number >= 1"),
        },
        Err(e) => panic!("{TIME_FACTOR_ENV}: {e}"),
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A stream name unique to this process and call: `/fshm-t-{pid}-{counter}-{tag}`.
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("/fshm-t-{}-{}-{}", std::process::id(), n, tag)
}

/// Where `name` lives in the file system.
pub fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(fshm::SHM_DIR).join(name.trim_start_matches('/'))
}

/// Whether `name` exists in `/dev/shm`.
pub fn shm_exists(name: &str) -> bool {
    std::fs::symlink_metadata(shm_path(name)).is_ok()
}

/// A unique name that is force-destroyed when the guard drops (also on panic).
pub struct NameGuard {
    name: String,
}

impl NameGuard {
    pub fn new(tag: &str) -> NameGuard {
        let name = unique_name(tag);
        assert!(!shm_exists(&name), "fresh name {name} already exists");
        NameGuard { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asserts that the test left nothing of this name in `/dev/shm`.
    pub fn assert_gone(&self) {
        assert!(
            !shm_exists(&self.name),
            "{} was left in {}",
            self.name,
            fshm::SHM_DIR
        );
        let left = lock_objects_of(&self.name);
        assert!(left.is_empty(), "{left:?} left in {}", fshm::SHM_DIR);
        let prefix = format!("{}%new.", self.name.trim_start_matches('/'));
        let building: Vec<_> = std::fs::read_dir(fshm::SHM_DIR)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .collect();
        assert!(
            building.is_empty(),
            "{building:?} left in {}",
            fshm::SHM_DIR
        );
    }
}

/// The names (with a leading `/`) of the objects in `/dev/shm` that are lock objects of
/// the stream `name` (a name without `/` inside): `<name>%lock.<key>`, any key.
pub fn lock_objects_of(name: &str) -> Vec<String> {
    let prefix = format!("{}%lock.", name.trim_start_matches('/'));
    let mut out: Vec<String> = std::fs::read_dir(fshm::SHM_DIR)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|f| f.starts_with(&prefix))
                .map(|f| format!("/{f}"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The name (with its leading `/`) of the lock object of the stream `name` (a name
/// without `/` inside): the one `<name>%lock.<key>` in `/dev/shm` (listing it needs no
/// access to the stream). Panics unless there is exactly one.
pub fn lock_object_name(name: &str) -> String {
    let mut all = lock_objects_of(name);
    assert_eq!(all.len(), 1, "lock objects of {name}: {all:?}");
    all.pop().unwrap()
}

/// Header offset of `lock_key` (`fshm::header`).
pub const LOCK_KEY_AT: libc::off_t = 72;

impl Drop for NameGuard {
    fn drop(&mut self) {
        let _ = fshm::force_destroy(&self.name);
    }
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
}

/// A forked child process. Dropping an unreaped child kills and reaps it.
pub struct Child {
    pid: libc::pid_t,
    status: Option<Status>,
}

static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Installs (once, in the parent, before any fork) a panic hook that in a forked child
/// writes the message straight to fd 2 (the harness's capture would keep it in the
/// child's memory). Installing it in the child instead could deadlock: a thread of the
/// parent that was panicking at the fork leaves the hook lock held in the child.
fn install_child_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CHILD.load(Ordering::SeqCst) {
                let msg = format!("[child {}] {info}\n", std::process::id());
                // SAFETY: writes a valid buffer to stderr.
                unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
            } else {
                default(info);
            }
        }));
    });
}

/// Exit code of a child whose closure panicked.
pub const PANICKED: i32 = 101;

/// Forks; the child runs `f` and `_exit`s with its return value (101 if it panicked).
/// `f` runs in a copy of this process: it must not drop anything owned by the parent
/// (so capture by reference, and open streams inside `f`).
pub fn fork_child(f: impl FnOnce() -> i32) -> Child {
    install_child_panic_hook();
    warm_up_before_forks();
    // SAFETY: fork has no memory-safety preconditions; the child only runs `f`, then
    // leaves with `_exit` without running the parent's destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", io::Error::last_os_error());
    if pid == 0 {
        IN_CHILD.store(true, Ordering::SeqCst);
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(PANICKED);
        // SAFETY: leaves the child at once, as a forked child should.
        unsafe { libc::_exit(code) };
    }
    Child { pid, status: None }
}

impl Child {
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Reaps the child if it has ended, without waiting.
    pub fn try_wait(&mut self) -> Option<Status> {
        if self.status.is_none() {
            let mut st = 0;
            // SAFETY: `st` is a valid out-pointer; `pid` is our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut st, libc::WNOHANG) };
            if r == self.pid {
                self.status = Some(if libc::WIFEXITED(st) {
                    Status::Exited(libc::WEXITSTATUS(st))
                } else {
                    Status::Signaled(libc::WTERMSIG(st))
                });
            } else {
                assert!(r == 0, "waitpid: {}", io::Error::last_os_error());
            }
        }
        self.status
    }

    /// Waits (bounded by `limit`; then kills the child and panics) for the child to end.
    pub fn wait_timeout(&mut self, limit: Duration) -> Status {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_wait() {
                return s;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("child {} did not end within {limit:?}", self.pid);
            }
            // Polling the kernel for the child's exit (waitpid has no timeout).
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn wait(&mut self) -> Status {
        self.wait_timeout(patience())
    }

    /// Waits and asserts the child exited with code 0.
    pub fn assert_success(&mut self) {
        let s = self.wait();
        assert_eq!(s, Status::Exited(0), "child {} failed", self.pid);
    }

    /// `kill -9` the child and reap it.
    pub fn kill(&mut self) -> Status {
        if self.status.is_none() {
            // SAFETY: plain system call on our own child's pid (not yet reaped, so the
            // pid cannot have been reused).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let deadline = Instant::now() + patience();
        loop {
            if let Some(s) = self.try_wait() {
                return s;
            }
            assert!(Instant::now() < deadline, "killed child did not die");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Waits (bounded by [`patience()`]) for every child to exit with code 0, in whatever
/// order they end: the first that fails fails the test at once, naming it (the others
/// are killed when the caller drops them), rather than after the children that wait
/// for it give up.
pub fn assert_all_succeed(children: &mut [Child]) {
    let deadline = Instant::now() + patience();
    loop {
        let mut running = 0;
        for c in children.iter_mut() {
            match c.try_wait() {
                None => running += 1,
                Some(Status::Exited(0)) => {}
                Some(other) => panic!("child {} failed: {other:?}", c.pid),
            }
        }
        if running == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{running} children did not end within {:?}",
            patience()
        );
        // Polling the kernel for the children's exits (waitpid has no timeout).
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill();
        }
    }
}

/// A one-way pipe for "I am ready" messages between processes (create it before the
/// fork; both sides keep both ends).
pub struct Signal {
    read: libc::c_int,
    write: libc::c_int,
}

impl Default for Signal {
    fn default() -> Self {
        Self::new()
    }
}

impl Signal {
    pub fn new() -> Signal {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
        Signal {
            read: fds[0],
            write: fds[1],
        }
    }

    /// The write end, for async-signal-safe use in hooks.
    pub fn raw_write_fd(&self) -> libc::c_int {
        self.write
    }

    pub fn send(&self, bytes: &[u8]) {
        let mut done = 0;
        while done < bytes.len() {
            // SAFETY: writes from a valid slice to our own pipe.
            let r = unsafe {
                libc::write(
                    self.write,
                    bytes[done..].as_ptr().cast(),
                    bytes.len() - done,
                )
            };
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            assert!(r > 0, "signal write: {}", io::Error::last_os_error());
            done += r as usize;
        }
    }

    pub fn notify(&self) {
        self.send(&[1]);
    }

    /// Receives exactly `n` bytes, failing the test after [`patience()`].
    pub fn recv(&self, n: usize) -> Vec<u8> {
        self.recv_timeout(n, patience())
            .unwrap_or_else(|| panic!("no signal within {:?}", patience()))
    }

    /// Receives exactly `n` bytes, or `None` if they do not all come within `limit`.
    pub fn recv_timeout(&self, n: usize, limit: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + limit;
        let mut out = vec![0u8; n];
        let mut got = 0;
        while got < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.read,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: `pfd` is one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r <= 0 {
                continue;
            }
            // SAFETY: reads into the unfilled tail of `out`.
            let r = unsafe { libc::read(self.read, out[got..].as_mut_ptr().cast(), n - got) };
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            assert!(r > 0, "signal read: {}", io::Error::last_os_error());
            got += r as usize;
        }
        Some(out)
    }

    pub fn wait(&self) {
        assert_eq!(self.recv(1), [1]);
    }

    pub fn send_u64(&self, v: u64) {
        self.send(&v.to_le_bytes());
    }

    pub fn recv_u64(&self) -> u64 {
        u64::from_le_bytes(self.recv(8).try_into().unwrap())
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        // SAFETY: closes the two descriptors this value owns.
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

/// The errno of an fshm error.
pub fn errno<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("fshm stream"),
                "message names no stream: {msg}"
            );
            fshm::errno_of(&e)
        }
    }
}

/// FNV-1a, 64 bit.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Set (to anything non-empty) to make a test that would skip for want of privileges
/// fail instead: CI's run as root sets it, so there every test really runs.
pub const REQUIRE_PRIVILEGES_ENV: &str = "FSHM_TEST_REQUIRE_PRIVILEGES";

/// Skips the calling test for `reason`: prints one line naming the test, straight to
/// stderr (the harness captures `eprintln!`, which would hide it), or panics with the
/// reason when [`REQUIRE_PRIVILEGES_ENV`] is set.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    if std::env::var_os(REQUIRE_PRIVILEGES_ENV).is_some_and(|v| !v.is_empty()) {
        panic!("{test} cannot run ({REQUIRE_PRIVILEGES_ENV} is set): {reason}");
    }
    use std::io::Write as _;
    let _ = writeln!(io::stderr(), "skipped {test}: {reason}");
}

/// Why this process cannot make a child that switches to other users with
/// `setgroups`/`setgid`/`setuid` (that takes root, or CAP_SETUID and CAP_SETGID), or
/// `None` if it can. Tried once per test process, in a forked child that becomes
/// uid/gid 65534.
pub fn cannot_switch_users() -> Option<&'static str> {
    static ANSWER: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        let mut child = fork_child(|| {
            // SAFETY: plain system calls with valid arguments (a null list of length 0).
            let ok = unsafe {
                libc::setgroups(0, std::ptr::null()) == 0
                    && libc::setgid(65534) == 0
                    && libc::setuid(65534) == 0
            };
            i32::from(!ok)
        });
        match child.wait() {
            Status::Exited(0) => None,
            _ => Some("needs root to switch users (setgroups/setgid/setuid failed)"),
        }
    })
}

/// For a test that forks children which become other users: `true` (after printing
/// the skip line) when this process cannot do that, so the test should return.
pub fn skip_unless_users_can_switch() -> bool {
    match cannot_switch_users() {
        None => false,
        Some(reason) => {
            skip(reason);
            true
        }
    }
}

/// Puts the calling process (a forked child: `CLONE_NEWUSER` needs a single-threaded
/// caller) in a private mount namespace with a fresh tmpfs of `options` (e.g.
/// `"size=1m,mode=1777"`) on `/dev/shm`, which nothing outside sees. Uses a plain mount
/// namespace when it may (root), otherwise a user namespace that maps only this
/// process's own uid and gid to themselves, so that files it creates keep their owner.
/// On failure returns what failed, for a skip message.
pub fn private_dev_shm(options: &std::ffi::CStr) -> Result<(), String> {
    fn fail(what: &str) -> String {
        format!("{what}: {}", io::Error::last_os_error())
    }
    fn write_proc(path: &str, text: &str) -> Result<(), String> {
        std::fs::write(path, text).map_err(|e| format!("writing {path}: {e}"))
    }
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        // SAFETY: unshare takes flags only; the caller is single-threaded.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
            return Err(fail(
                "unshare(CLONE_NEWNS) and unshare(CLONE_NEWUSER | CLONE_NEWNS) failed",
            ));
        }
        write_proc("/proc/self/setgroups", "deny")?;
        write_proc("/proc/self/uid_map", &format!("{uid} {uid} 1"))?;
        write_proc("/proc/self/gid_map", &format!("{gid} {gid} 1"))?;
    }
    // SAFETY: plain system calls with valid, NUL-terminated arguments.
    unsafe {
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(fail("making the mounts private"));
        }
        if libc::mount(
            c"tmpfs".as_ptr(),
            c"/dev/shm".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            options.as_ptr().cast(),
        ) != 0
        {
            return Err(fail("mounting a tmpfs on /dev/shm"));
        }
    }
    Ok(())
}

/// Why [`private_dev_shm`] fails in this process's children, or `None` if it works.
/// Tried in a forked child that mounts a 64 KiB tmpfs and exits.
pub fn cannot_make_private_dev_shm() -> Option<String> {
    use std::io::Read as _;
    use std::os::fd::FromRawFd as _;
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both descriptors were just made by pipe2 and are owned by nothing else.
    let (mut read, write) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    let mut child = fork_child(|| match private_dev_shm(c"size=64k") {
        Ok(()) => 0,
        Err(why) => {
            use std::io::Write as _;
            let _ = (&write).write_all(why.as_bytes());
            1
        }
    });
    drop(write);
    let mut why = String::new();
    let _ = read.read_to_string(&mut why);
    match child.wait() {
        Status::Exited(0) => None,
        Status::Exited(1) => Some(format!("cannot mount a private /dev/shm ({why})")),
        other => panic!("the private /dev/shm probe ended with {other:?}"),
    }
}

/// Drops every privilege: supplementary groups, then gid and uid (to `id`).
/// For use in a forked child only. Panics on failure.
pub fn drop_privileges(id: u32) {
    // SAFETY: plain system calls with valid arguments (a null list of length 0).
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setgid(id), 0, "setgid");
        assert_eq!(libc::setuid(id), 0, "setuid");
        assert_eq!(libc::geteuid(), id);
    }
}

/// Opens `name` with plain `shm_open` (no fshm), for tests that play a hostile or
/// foreign process.
pub fn raw_shm_open(name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<RawShm> {
    let c = CString::new(name).unwrap();
    // SAFETY: `c` is NUL-terminated.
    let fd = unsafe { libc::shm_open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(RawShm { fd })
}

/// A raw shm descriptor.
pub struct RawShm {
    pub fd: libc::c_int,
}

impl RawShm {
    pub fn pwrite(&self, off: u64, bytes: &[u8]) {
        // SAFETY: writes from a valid slice.
        let r = unsafe {
            libc::pwrite(
                self.fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                off as libc::off_t,
            )
        };
        assert_eq!(
            r,
            bytes.len() as isize,
            "pwrite: {}",
            io::Error::last_os_error()
        );
    }

    pub fn pread(&self, off: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        // SAFETY: reads into a valid buffer of `n` bytes.
        let r = unsafe { libc::pread(self.fd, v.as_mut_ptr().cast(), n, off as libc::off_t) };
        assert!(r >= 0, "pread: {}", io::Error::last_os_error());
        v.truncate(r as usize);
        v
    }

    pub fn ftruncate(&self, size: u64) {
        // SAFETY: plain system call on our descriptor.
        let r = unsafe { libc::ftruncate(self.fd, size as libc::off_t) };
        assert_eq!(r, 0, "ftruncate: {}", io::Error::last_os_error());
    }

    pub fn size(&self) -> u64 {
        fstat(self.fd).st_size as u64
    }
}

impl Drop for RawShm {
    fn drop(&mut self) {
        // SAFETY: closes the descriptor this value owns.
        unsafe { libc::close(self.fd) };
    }
}

/// `fstat` of a descriptor.
pub fn fstat(fd: libc::c_int) -> libc::stat {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    let r = unsafe { libc::fstat(fd, &mut st) };
    assert_eq!(r, 0, "fstat: {}", io::Error::last_os_error());
    st
}

/// Creates a plain shm object (not an fshm stream) holding `bytes`.
pub fn plain_object(name: &str, bytes: &[u8]) -> RawShm {
    let o = raw_shm_open(name, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600)
        .expect("create a plain shm object");
    if !bytes.is_empty() {
        o.ftruncate(bytes.len() as u64);
        o.pwrite(0, bytes);
    }
    o
}

/// Reads a whole stream through `read_at` from 0 to its current length.
pub fn read_all(s: &fshm::Stream) -> Vec<u8> {
    let len = s.len() as usize;
    let mut v = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = s.read_at(got as u64, &mut v[got..]).expect("read_at");
        assert!(n > 0, "short stream: {got} of {len}");
        got += n;
    }
    v
}

/// The readers' futex word (header offset 128) of a stream, read from outside through a
/// read-only descriptor: bit 0 says a reader sleeps on it.
#[allow(dead_code)]
pub struct SeqWord(RawShm);

#[allow(dead_code)]
impl SeqWord {
    pub fn of(name: &str) -> SeqWord {
        SeqWord(raw_shm_open(name, libc::O_RDONLY, 0).unwrap())
    }

    pub fn get(&self) -> u32 {
        u32::from_le_bytes(self.0.pread(128, 4).try_into().unwrap())
    }

    /// Waits (bounded by [`patience()`]) until a reader has announced its sleep.
    pub fn wait_for_sleeper(&self) {
        let deadline = Instant::now() + patience();
        while self.get() & 1 == 0 {
            assert!(Instant::now() < deadline, "no reader announced its sleep");
            std::thread::yield_now();
        }
    }
}

/// The pipe the append pause hook reports on (set in the paused child only).
static PAUSE_FD: AtomicI32 = AtomicI32::new(-1);

/// The append pause hook: reports that the bytes are copied but not committed, then
/// blocks until the process is killed.
fn pause_forever() {
    let b = [1u8];
    // SAFETY: writes one byte from a valid buffer to the test's pipe.
    unsafe { libc::write(PAUSE_FD.load(Ordering::SeqCst), b.as_ptr().cast(), 1) };
    loop {
        // SAFETY: plain system call; waits for a signal (SIGKILL ends the process).
        unsafe { libc::pause() };
    }
}

/// In a child: every append of this process, once its bytes are copied and before they
/// are committed, notifies `report` and then blocks until the process is killed.
pub fn pause_appends_forever(report: &Signal) {
    PAUSE_FD.store(report.raw_write_fd(), Ordering::SeqCst);
    fshm::test_hooks::set_append_pause(Some(pause_forever));
}

//! A program's own `pthread_atfork` handlers, registered before the library's first use
//! (so they run inside the fork while the library's handlers hold its locks), call the
//! C API on a `FILE*`: the fork completes and the calls work. (One test per binary: the
//! registration must come before any use of the library in the process.)

use fshm_sys::libc;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};
use std::time::{Duration, Instant};

/// The `FILE*` the handlers use (null until made).
static FILE: AtomicPtr<libc::FILE> = AtomicPtr::new(std::ptr::null_mut());
/// What `fshm_owner_state` returned in the prepare and parent handlers.
static IN_PREPARE: AtomicI32 = AtomicI32::new(0);
static IN_PARENT: AtomicI32 = AtomicI32::new(0);

fn owner_state() -> i32 {
    let f = FILE.load(Ordering::SeqCst);
    if f.is_null() {
        return 0;
    }
    // SAFETY: `f` is a live FILE* of the library (closed only after the fork).
    unsafe { shmfile::fshm_owner_state(f) }
}

extern "C" fn prepare() {
    IN_PREPARE.store(owner_state(), Ordering::SeqCst);
}

extern "C" fn parent() {
    IN_PARENT.store(owner_state(), Ordering::SeqCst);
}

#[test]
fn atfork_handlers_registered_before_the_library_may_call_it() {
    // SAFETY: two functions that call the library and store to atomics.
    let registered = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), None) };
    assert_eq!(registered, 0);
    let name = CString::new(format!("/fshm-ffi-atfork-{}", std::process::id())).unwrap();
    // SAFETY: a valid C string; the FILE* is closed below.
    let f = unsafe { shmfile::fshm_create(name.as_ptr(), 0o600) };
    assert!(!f.is_null(), "fshm_create failed");
    FILE.store(f, Ordering::SeqCst);
    // A fork that waits for itself never returns: a watchdog then removes what the test
    // made (by listing /dev/shm: nothing of the library, whose locks the fork holds)
    // and ends the test process with a failure. Scaled like every bound of the tests
    // (10 under qemu).
    let factor: u32 = std::env::var("FSHM_TEST_TIME_FACTOR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    static FORK_RETURNED: AtomicBool = AtomicBool::new(false);
    let prefix = format!("fshm-ffi-atfork-{}", std::process::id());
    std::thread::spawn(move || {
        let start = Instant::now();
        while !FORK_RETURNED.load(Ordering::SeqCst) {
            if start.elapsed() > Duration::from_secs(60) * factor {
                for e in std::fs::read_dir("/dev/shm")
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    // The stream and its lock object (`<name>%lock.<key>`), not the
                    // objects of a process whose pid merely starts with ours.
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n == prefix || n.starts_with(&format!("{prefix}%")) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
                eprintln!("fork() never returned: a fork handler waited for itself");
                // SAFETY: ends the process at once; the test has failed.
                unsafe { libc::_exit(101) };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    // SAFETY: the child only _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: _exit has no preconditions.
        unsafe { libc::_exit(0) };
    }
    FORK_RETURNED.store(true, Ordering::SeqCst);
    assert!(pid > 0, "fork failed");
    let mut status = 0;
    // SAFETY: our child; `status` is a valid local.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    FILE.store(std::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: `f` came from fshm_create and is closed once.
    assert_eq!(unsafe { libc::fclose(f) }, 0);
    // 1: the owner is alive (FSHM_OWNER_ALIVE).
    assert_eq!(IN_PREPARE.load(Ordering::SeqCst), 1);
    assert_eq!(IN_PARENT.load(Ordering::SeqCst), 1);
}

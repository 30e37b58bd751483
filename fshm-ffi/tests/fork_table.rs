//! A C program that forks while another of its threads opens, uses or closes a
//! `FILE*` of the library: the child's inherited `FILE*`s must keep working. Every
//! call on a `FILE*` looks it up in the library's table of the `FILE*`s it made, which
//! each of those calls takes for a moment; a child forked while another thread held it
//! would find it locked by a thread it does not have and wait forever.

use fshm_sys::libc;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Set by the parent-side fork handler this test registers: the fork has happened.
static FORKED: AtomicBool = AtomicBool::new(false);

extern "C" fn forked() {
    FORKED.store(true, Ordering::SeqCst);
}

/// Waits for `pid` for at most `limit`; its exit status, or `None` (then killed).
fn wait_within(pid: libc::pid_t, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid local.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if start.elapsed() > limit {
            // SAFETY: as above; the child is reaped right after.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_child_forked_while_another_thread_holds_the_file_table_uses_its_files() {
    let name = CString::new(format!("/fshm-ffi-forktable-{}", std::process::id())).unwrap();
    // SAFETY: a valid C string; the returned FILE* is checked and closed below.
    let f = unsafe { shmfile::fshm_create(name.as_ptr(), 0o600) };
    assert!(!f.is_null(), "fshm_create failed");
    // SAFETY: a function that only stores to an atomic.
    assert_eq!(unsafe { libc::pthread_atfork(None, Some(forked), None) }, 0);

    // Another thread takes the table (as any call on a FILE* does) and holds it until
    // the fork has happened — or, where the library's fork handlers wait for the table
    // (so that the fork never copies it locked), for a moment, then lets them have it.
    let (held_tx, held) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        fshm::c_layer::with_file_table(|_| {
            held_tx.send(()).unwrap();
            let start = Instant::now();
            while !FORKED.load(Ordering::SeqCst) && start.elapsed() < Duration::from_millis(300) {
                std::thread::yield_now();
            }
        })
    });
    held.recv().unwrap();
    // SAFETY: the child only calls the library on its inherited FILE* and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: `f` is a FILE* of the library the child inherited. 1: the owner is
        // alive (FSHM_OWNER_ALIVE).
        let state = unsafe { shmfile::fshm_owner_state(f) };
        // SAFETY: _exit has no preconditions.
        unsafe { libc::_exit(if state == 1 { 0 } else { 1 }) };
    }
    assert!(pid > 0, "fork failed");
    holder.join().unwrap();
    // Scaled like every bound of the tests (FSHM_TEST_TIME_FACTOR: 10 under qemu).
    let factor: u32 = std::env::var("FSHM_TEST_TIME_FACTOR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let status = wait_within(pid, Duration::from_secs(20) * factor);
    // SAFETY: `f` came from fshm_create and is closed once.
    assert_eq!(unsafe { libc::fclose(f) }, 0);
    assert_eq!(
        status,
        Some(0),
        "the child hung (killed after 20 s × the time factor) or failed on its inherited FILE*"
    );
}

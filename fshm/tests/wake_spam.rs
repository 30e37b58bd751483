//! Futex wake spam costs the waiters (almost) nothing.
//!
//! Anyone who may read a stream maps its header, futex words included, and may call
//! `FUTEX_WAKE` on them as often as it likes. Since layout 3 writable waiters sleep on
//! words in the stream's lock object instead, which a reader cannot open, so such a
//! wake-up reaches only read-only waiters; and it changes no word: a blocking waiter, a
//! reactor thread and an io_uring request go back to sleep without reading the stream,
//! and an async task is not woken at all. These tests run the
//! spammer in a real child process — as another user with read-only access when the
//! test runs as root, otherwise as the same user through a read-only descriptor and a
//! read-only mapping (it can do exactly the same: wake-ups need no write access) — while
//! blocking followers (threads of one child) and, with the `tokio` feature,
//! `AsyncStream` tasks (another child) wait on the stream. They measure the work the
//! waiters do during an idle window and during the spam window — the CPU time of each
//! waiting process (`getrusage`), and how many times the tasks were polled — and bound
//! it; then they kill the owner while the spam goes on, and every waiter must see the
//! end within a bounded time (the liveness re-checks are neither starved nor replaced).
//!
//! The figures are printed (`--nocapture`) for RELIABILITY.md.

mod common;

use common::{fork_child, time_factor, Child, NameGuard, Signal, Status, PATIENCE};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The uid the spammer runs as when the test runs as root (nobody).
const SPAMMER_UID: u32 = 65534;
/// Waiters of each kind.
const WAITERS: usize = 8;
/// Length of the idle window and of the spam window the waiters' work is measured over.
const WINDOW: Duration = Duration::from_millis(1000);
/// Offsets of the header's futex words (`seq`, `space_seq`: header.rs's table).
const FUTEX_WORDS: [usize; 2] = [128, 256];
/// The liveness tick (`wait.rs`): a waiter looks at the owner at least this often.
#[cfg(feature = "tokio")]
const TICK: Duration = Duration::from_millis(50);

/// The tests of this file run one at a time: each floods with a spammer that keeps a
/// CPU busy, and on a small machine two floods at once starve the waiters whose
/// latency and CPU the other test measures.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// CPU time (user + system) this process has used, all its threads, in microseconds.
fn cpu_us() -> u64 {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(r, 0);
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The owner: creates `name` (readable by others), reports, then sleeps until killed.
fn owner(name: &str) -> Child {
    let ready = Signal::new();
    let child = fork_child(|| {
        let _owner = fshm::OpenOptions::new()
            .mode(0o644)
            .create(name)
            .expect("create");
        ready.notify();
        loop {
            // SAFETY: waits for a signal (SIGKILL ends the process).
            unsafe { libc::pause() };
        }
    });
    ready.wait();
    child
}

/// The spammer: maps the header read-only (as another user when root), reports, then
/// calls `FUTEX_WAKE` on every futex word of the header until `stop` gets a byte, and
/// reports the CPU it used and how many wake calls it made.
fn spammer(name: &str, ready: &Signal, stop: &SharedFlag, report: &Signal) -> Child {
    fork_child(|| {
        if is_root() {
            common::drop_privileges(SPAMMER_UID);
        }
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: `c` is NUL-terminated.
        let fd = unsafe { libc::shm_open(c.as_ptr(), libc::O_RDONLY, 0) };
        assert!(fd >= 0, "the spammer may read the stream");
        // SAFETY: maps the header read-only; nothing else in this process uses it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        ready.notify();
        let start = cpu_us();
        let mut wakes = 0u64;
        loop {
            for _ in 0..1024 {
                for off in FUTEX_WORDS {
                    // SAFETY: a shared FUTEX_WAKE on an aligned word of our mapping;
                    // waking has no memory effects.
                    unsafe {
                        libc::syscall(
                            libc::SYS_futex,
                            base.cast::<u8>().add(off),
                            libc::FUTEX_WAKE,
                            i32::MAX,
                            std::ptr::null::<libc::timespec>(),
                            std::ptr::null::<u32>(),
                            0u32,
                        )
                    };
                    wakes += 1;
                }
            }
            if stop.is_set() {
                break;
            }
        }
        report.send_u64(cpu_us() - start);
        report.send_u64(wakes);
        0
    })
}

/// A flag in memory shared with forked children (made before the fork).
struct SharedFlag(*const std::sync::atomic::AtomicU32);

impl SharedFlag {
    fn new() -> SharedFlag {
        // SAFETY: a fresh anonymous shared mapping of one page, zeroed by the kernel.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        SharedFlag(p.cast())
    }

    fn set(&self) {
        // SAFETY: the mapping lives until `drop`; zeroed memory is a valid AtomicU32.
        unsafe { &*self.0 }.store(1, Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        // SAFETY: as in `set`.
        unsafe { &*self.0 }.load(Ordering::SeqCst) != 0
    }
}

impl Drop for SharedFlag {
    fn drop(&mut self) {
        // SAFETY: unmaps the page `new` mapped; no reference to it outlives `self`.
        unsafe { libc::munmap(self.0 as *mut libc::c_void, 4096) };
    }
}

/// What a waiting child reports at each mark: its CPU time so far, and how many times
/// its tasks were polled (0 for threads).
#[derive(Clone, Copy, Debug)]
struct Mark {
    cpu_us: u64,
    polls: u64,
}

/// A waiting child's side of the marks: answers each byte on `mark` with a [`Mark`],
/// until `done` is set.
fn answer_marks(mark: &Signal, report: &Signal, polls: &AtomicU64, done: &AtomicBool) {
    while !done.load(Ordering::SeqCst) {
        if mark.recv_timeout(1, Duration::from_millis(100)).is_none() {
            continue;
        }
        report.send_u64(cpu_us());
        report.send_u64(polls.load(Ordering::SeqCst));
    }
}

/// The parent's side: asks `child` for a mark.
fn take_mark(mark: &Signal, report: &Signal) -> Mark {
    mark.notify();
    Mark {
        cpu_us: report.recv_u64(),
        polls: report.recv_u64(),
    }
}

/// Blocking followers: `WAITERS` threads, each following `name` through its own
/// read-write handle until the end; reports once all sleep.
fn blocking_followers(name: &str, ready: &Signal, mark: &Signal, report: &Signal) -> Child {
    followers(name, false, ready, mark, report)
}

/// Blocking followers through read-only handles, which nap on the header's words
/// themselves (the spammer's words): its wake-ups reach them and must cost them little.
fn read_only_followers(name: &str, ready: &Signal, mark: &Signal, report: &Signal) -> Child {
    followers(name, true, ready, mark, report)
}

fn followers(name: &str, read_only: bool, ready: &Signal, mark: &Signal, report: &Signal) -> Child {
    fork_child(|| {
        let done = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..WAITERS)
            .map(|_| {
                let s = fshm::OpenOptions::new()
                    .read_only(read_only)
                    .open(name)
                    .expect("open");
                assert_eq!(s.is_writable(), !read_only);
                std::thread::spawn(move || {
                    let mut byte = [0u8; 1];
                    let n = s.follow().read(&mut byte).expect("follow");
                    assert_eq!(n, 0, "the stream ends when its owner dies");
                    drop(s);
                })
            })
            .collect();
        all_threads_asleep(WAITERS);
        ready.send(&[0]);
        let polls = AtomicU64::new(0);
        std::thread::scope(|sc| {
            let d = done.clone();
            let polls = &polls;
            sc.spawn(move || answer_marks(mark, report, polls, &d));
            for t in threads {
                t.join().expect("a follower failed");
            }
            done.store(true, Ordering::SeqCst);
        });
        0
    })
}

/// Waits (bounded) until `n` threads of this process sleep (state `S` in
/// `/proc/self/task/*/stat`).
fn all_threads_asleep(n: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let asleep = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                // The state follows the command name's closing parenthesis.
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('S'))
            })
            .count();
        if asleep >= n {
            return;
        }
        assert!(Instant::now() < deadline, "the waiters never slept");
        std::thread::yield_now();
    }
}

/// Runs the attack against `waiters` (started by `start(name, ready, mark, report)`),
/// and returns (idle mark delta, spam mark delta, spammer's CPU, spammer's wakes).
fn attack(
    what: &str,
    start: impl Fn(&str, &Signal, &Signal, &Signal) -> Child,
) -> (Mark, Mark, u64, u64) {
    let guard = NameGuard::new("spam");
    let name = guard.name();
    let mut owner = owner(name);
    let (ready, mark, report) = (Signal::new(), Signal::new(), Signal::new());
    let mut waiters = start(name, &ready, &mark, &report);
    let how = match ready.recv(1)[0] {
        0 => "blocking threads",
        1 => "tasks through the reactor threads",
        _ => "tasks through io_uring requests and the reactor threads",
    };

    let m0 = take_mark(&mark, &report);
    // The measurement window: a duration to measure over, not a synchronisation.
    std::thread::sleep(WINDOW);
    let m1 = take_mark(&mark, &report);

    let (spam_ready, spam_stop, spam_report) = (Signal::new(), SharedFlag::new(), Signal::new());
    let mut spam = spammer(name, &spam_ready, &spam_stop, &spam_report);
    spam_ready.wait();
    let m2 = take_mark(&mark, &report);
    std::thread::sleep(WINDOW);
    let m3 = take_mark(&mark, &report);

    // The owner dies while the spam goes on: every waiter must notice.
    let killed = Instant::now();
    owner.kill();
    let limit = Duration::from_secs(2) * time_factor();
    let ended = waiters.wait_timeout(PATIENCE);
    let took = killed.elapsed();
    spam_stop.set();
    let spam_cpu = spam_report.recv_u64();
    let spam_wakes = spam_report.recv_u64();
    spam.assert_success();
    assert_eq!(ended, Status::Exited(0), "{what}: a waiter failed");
    assert!(
        took < limit,
        "{what}: the owner's death took {took:?} to reach the waiters under spam (limit {limit:?})"
    );
    let delta = |a: Mark, b: Mark| Mark {
        cpu_us: b.cpu_us - a.cpu_us,
        polls: b.polls - a.polls,
    };
    let (idle, spammed) = (delta(m0, m1), delta(m2, m3));
    eprintln!(
        "{what}: {WAITERS} waiters ({how}), {WINDOW:?} windows: idle {} us CPU, {} polls; \
         under spam {} us CPU, {} polls; spammer ({}) {} us CPU, {spam_wakes} wake calls; \
         owner's death noticed in {took:?}",
        idle.cpu_us,
        idle.polls,
        spammed.cpu_us,
        spammed.polls,
        if is_root() {
            "another user, read-only"
        } else {
            "same user, read-only descriptor"
        },
        spam_cpu
    );
    (idle, spammed, spam_cpu, spam_wakes)
}

/// The CPU the waiters may spend in a window under spam: a few times what they spend
/// idle, plus a floor for the clock's granularity and a loaded machine — far below the
/// spammer's own (each of its wake calls would otherwise cost every waiter a wake-up).
fn assert_cheap(what: &str, idle: Mark, spammed: Mark, spam_cpu: u64) {
    let floor = 30_000 * u64::from(time_factor());
    let bound = (4 * idle.cpu_us).max(floor);
    assert!(
        spammed.cpu_us <= bound,
        "{what}: the waiters spent {} us of CPU under spam ({} idle; bound {bound}; the \
         spammer spent {spam_cpu})",
        spammed.cpu_us,
        idle.cpu_us
    );
}

#[test]
fn futex_wake_spam_costs_blocking_followers_almost_nothing() {
    let _serial = serial();
    let (idle, spammed, spam_cpu, _) = attack("blocking followers", blocking_followers);
    assert_cheap("blocking followers", idle, spammed, spam_cpu);
}

#[test]
fn futex_wake_spam_costs_read_only_followers_almost_nothing() {
    let _serial = serial();
    let (idle, spammed, spam_cpu, _) = attack("read-only followers", read_only_followers);
    assert_cheap("read-only followers", idle, spammed, spam_cpu);
}

/// `AsyncStream` followers (feature `tokio`): `WAITERS` tasks on one runtime thread,
/// each with its own read-write handle, each poll counted.
#[cfg(feature = "tokio")]
fn async_followers(name: &str, ready: &Signal, mark: &Signal, report: &Signal) -> Child {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::AsyncReadExt;

    /// A future that counts its polls.
    struct Counted<F> {
        inner: Pin<Box<F>>,
        polls: Arc<AtomicU64>,
    }
    impl<F: Future> Future for Counted<F> {
        type Output = F::Output;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            self.inner.as_mut().poll(cx)
        }
    }

    fork_child(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let polls = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        std::thread::scope(|sc| {
            let (p, d) = (polls.clone(), done.clone());
            sc.spawn(move || {
                // Announced only once every task has registered its wait.
                let deadline = Instant::now() + PATIENCE;
                while fshm::reactor_stats::registrations() < WAITERS {
                    assert!(Instant::now() < deadline, "the tasks never waited");
                    std::thread::sleep(Duration::from_millis(1));
                }
                let uring = fshm::reactor_stats::uses_io_uring() == Some(true);
                ready.send(&[1 + u8::from(uring)]);
                answer_marks(mark, report, &p, &d);
            });
            rt.block_on(async {
                let tasks: Vec<_> = (0..WAITERS)
                    .map(|_| {
                        let s = fshm::Stream::open(name).expect("open");
                        assert!(s.is_writable(), "followers announce their sleeps");
                        let mut s = s.into_async();
                        tokio::spawn(Counted {
                            inner: Box::pin(async move {
                                let mut buf = [0u8; 16];
                                s.read(&mut buf).await
                            }),
                            polls: polls.clone(),
                        })
                    })
                    .collect();
                for t in tasks {
                    let n = t.await.expect("task").expect("read");
                    assert_eq!(n, 0, "the stream ends when its owner dies");
                }
            });
            done.store(true, Ordering::SeqCst);
        });
        0
    })
}

#[cfg(feature = "tokio")]
#[test]
fn futex_wake_spam_neither_wakes_async_tasks_nor_costs_their_process() {
    let _serial = serial();
    let (idle, spammed, spam_cpu, _) = attack("AsyncStream tasks", async_followers);
    // Idle, a task is polled once when it starts waiting, and again only when its wait
    // ends: the reactor probes the owner itself at each tick. Allow a poll per task per
    // tick on top, which is still thousands of times fewer than one per wake call.
    let ticks = (WINDOW.as_millis() / TICK.as_millis()) as u64;
    let bound = WAITERS as u64 * (2 + ticks);
    assert!(
        spammed.polls <= bound,
        "the tasks were polled {} times under spam ({} idle; bound {bound})",
        spammed.polls,
        idle.polls
    );
    assert_cheap("AsyncStream tasks", idle, spammed, spam_cpu);
}

// ---------------------------------------------------------------------------------------
// Latency: a flood from a read-only user delays no writable waiter, and a flood on one
// stream delays no waiter of another.
//
// The words writable waiters sleep on are in the stream's lock object, which a
// read-only user cannot open (`wait.rs`, "Where waiters sleep"): the spammer, who maps
// the header, can wake nobody who sleeps there. And a flood that makes one of a reactor
// thread's words deaf leaves its other words heard (`reactor/mod.rs`, "Firing"). A
// deaf waiter looks at its word every 10 ms, so its wake-ups spread over 0-10 ms (third
// quartile about 7 ms): each test below bounds the third quartile of the wake-ups under
// flood at 2 ms (times the time factor).

/// Wake-ups measured per run.
const ROUNDS: usize = 60;
/// Pause between two commits (or two reads) of the side that wakes the victim: long
/// enough for the victim to be asleep again. A pace, not a synchronisation.
const PACE: Duration = Duration::from_millis(3);

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The third quartile of `v` (not empty): three wake-ups in four took at most this.
fn quartile3(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() * 3 / 4]
}

/// The bound on the third quartile of the wake-ups under flood, in µs: 2 ms, times the
/// time factor. A waiter made deaf (it looks every 10 ms) has one near 7 ms.
fn latency_bound_us() -> u64 {
    2_000 * u64::from(time_factor())
}

/// A u64 in memory shared with forked children (made before the fork).
struct SharedStamp(*const AtomicU64);

impl SharedStamp {
    fn new() -> SharedStamp {
        // SAFETY: a fresh anonymous shared mapping of one page, zeroed by the kernel.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        SharedStamp(p.cast())
    }

    fn get(&self) -> &AtomicU64 {
        // SAFETY: the mapping lives until `drop`; zeroed memory is a valid AtomicU64.
        unsafe { &*self.0 }
    }
}

impl Drop for SharedStamp {
    fn drop(&mut self) {
        // SAFETY: unmaps the page `new` mapped; no reference to it outlives `self`.
        unsafe { libc::munmap(self.0 as *mut libc::c_void, 4096) };
    }
}

/// A flood on `flooded`'s header words while `drive` runs (none if `flood` is false):
/// the spammer of the CPU tests, as another user with read-only access when root.
fn with_flood<T>(flooded: &str, flood: bool, drive: impl FnOnce() -> T) -> T {
    if !flood {
        return drive();
    }
    let (ready, stop, report) = (Signal::new(), SharedFlag::new(), Signal::new());
    let mut spam = spammer(flooded, &ready, &stop, &report);
    ready.wait();
    let out = drive();
    stop.set();
    let _cpu = report.recv_u64();
    let wakes = report.recv_u64();
    spam.assert_success();
    assert!(wakes > 0, "the spammer ran");
    out
}

/// Runs a victim in a child process: `victim(ready, report)` sends a byte on `ready`
/// once it waits, then the third quartile of its wake-ups (µs) on `report`; meanwhile
/// `drive` (in this process) wakes it `ROUNDS` times, under a flood of `flooded` if
/// `flood`. Returns the quartile.
fn victim_quartile(
    flooded: &str,
    flood: bool,
    victim: impl FnOnce(&Signal, &Signal) -> i32,
    drive: impl FnOnce(),
) -> u64 {
    let (ready, report) = (Signal::new(), Signal::new());
    let mut child = fork_child(|| victim(&ready, &report));
    ready.wait();
    let q3 = with_flood(flooded, flood, || {
        drive();
        report.recv_u64()
    });
    child.assert_success();
    q3
}

/// Asserts that the wake-ups under flood are within the bound.
fn assert_prompt(what: &str, idle_us: u64, flooded_us: u64) {
    eprintln!(
        "{what}: wake-ups' third quartile {idle_us} us idle, {flooded_us} us under a \
         read-only flood \
         (spammer: {})",
        if is_root() {
            "another user, read-only"
        } else {
            "same user, read-only descriptor"
        }
    );
    let bound = latency_bound_us();
    assert!(
        flooded_us <= bound,
        "{what}: a quarter of the wake-ups under flood took more than {flooded_us} us \
         ({idle_us} us idle; \
         bound {bound} us)"
    );
}

/// A blocking follower (a read-write handle, `wait_for`) of a stream on which a
/// read-only user floods `FUTEX_WAKE`: its wake-ups are as prompt as idle.
#[test]
fn a_read_only_flood_does_not_delay_a_blocking_follower() {
    let _serial = serial();
    let run = |flood: bool| {
        let guard = NameGuard::new("lat-follow");
        let name = guard.name();
        let mut w = fshm::OpenOptions::new()
            .mode(0o644)
            .create(name)
            .expect("create");
        victim_quartile(
            name,
            flood,
            |ready, report| {
                let mut s = fshm::Stream::open(name).expect("open");
                assert!(s.is_writable(), "a writable follower");
                ready.notify();
                let mut lat = Vec::new();
                let mut stamp = [0u8; 8];
                for i in 0..ROUNDS as u64 {
                    let status = s.wait_for(8 * i, Some(PATIENCE));
                    assert_eq!(status, fshm::WaitStatus::Data);
                    s.read_exact(&mut stamp).expect("read");
                    lat.push((mono_ns() - u64::from_le_bytes(stamp)) / 1000);
                }
                report.send_u64(quartile3(lat));
                0
            },
            || {
                use std::io::Write;
                for _ in 0..ROUNDS {
                    std::thread::sleep(PACE);
                    w.write_all(&mono_ns().to_le_bytes()).expect("write");
                }
            },
        )
    };
    let idle = run(false);
    let flooded = run(true);
    assert_prompt("blocking follower", idle, flooded);
}

/// A lossless ring writer waiting for room while a read-only user floods `FUTEX_WAKE`
/// on the header: woken as promptly as idle when the reader makes room.
#[test]
fn a_read_only_flood_does_not_delay_a_lossless_writer_waiting_for_room() {
    let _serial = serial();
    const CAP: u64 = 64 << 10;
    const CHUNK: usize = 4096;
    // Longer than `PACE`: a wait of a few milliseconds under flood is often over before
    // the flood has made the waiter deaf; one of 10 ms is not.
    const ROOM_PACE: Duration = Duration::from_millis(10);
    let run = |flood: bool| {
        let guard = NameGuard::new("lat-room");
        let name = guard.name();
        let (made, attached, filled) = (Signal::new(), Signal::new(), Signal::new());
        let (done, report) = (Signal::new(), Signal::new());
        let stamp = SharedStamp::new();
        // The writer (the victim) owns the ring.
        let mut child = fork_child(|| {
            use std::io::Write;
            let mut w = fshm::OpenOptions::new()
                .mode(0o644)
                .ring(CAP, fshm::RingPolicy::Lossless)
                .create(name)
                .expect("create");
            w.set_write_timeout(Some(PATIENCE));
            made.notify();
            // The reader attached: fill the ring.
            attached.wait();
            w.write_all(&vec![1u8; CAP as usize]).expect("fill");
            filled.notify();
            let mut lat = Vec::new();
            for _ in 0..ROUNDS {
                w.write_all(&[2u8; CHUNK]).expect("write");
                lat.push((mono_ns() - stamp.get().load(Ordering::SeqCst)) / 1000);
            }
            report.send_u64(quartile3(lat));
            // Stay until the reader is done with the stream.
            done.wait();
            0
        });
        made.wait();
        let mut r = fshm::Stream::open(name).expect("open");
        assert!(r.is_attached(), "an attached reader holds the writer back");
        attached.notify();
        filled.wait();
        let q3 = with_flood(name, flood, || {
            let mut buf = vec![0u8; CHUNK];
            for _ in 0..ROUNDS {
                std::thread::sleep(ROOM_PACE);
                stamp.get().store(mono_ns(), Ordering::SeqCst);
                r.read_exact(&mut buf).expect("read");
            }
            report.recv_u64()
        });
        done.notify();
        child.assert_success();
        q3
    };
    let idle = run(false);
    let flooded = run(true);
    assert_prompt("lossless writer waiting for room", idle, flooded);
}

/// How a victim waits on two streams at once.
#[derive(Clone, Copy)]
enum Both {
    EventFds,
    WaitAny,
}

/// A victim waits on A (mode 0644) and on B (mode 0600: as root the spammer cannot even
/// open it) through one reactor thread; a read-only user floods A's header words. B's
/// wake-ups stay prompt. (Before layout 3 the flood reached the thread through A's word
/// and made the whole thread deaf, B's word included: B's median wake-up was about
/// 5 ms.)
fn cross_stream(how: Both) -> (u64, u64) {
    let run = |flood: bool| {
        let (ga, gb) = (NameGuard::new("lat-a"), NameGuard::new("lat-b"));
        let (a_name, b_name) = (ga.name(), gb.name());
        let _a = fshm::OpenOptions::new()
            .mode(0o644)
            .create(a_name)
            .expect("create A");
        let mut b = fshm::OpenOptions::new()
            .mode(0o600)
            .create(b_name)
            .expect("create B");
        victim_quartile(
            a_name,
            flood,
            |ready, report| {
                let a = fshm::Stream::open(a_name).expect("open A");
                let mut b = fshm::Stream::open(b_name).expect("open B");
                let mut lat = Vec::new();
                let mut stamp = [0u8; 8];
                let mut take = |b: &mut fshm::Stream, lat: &mut Vec<u64>| loop {
                    match b.read(&mut stamp).expect("read B") {
                        8 => lat.push((mono_ns() - u64::from_le_bytes(stamp)) / 1000),
                        0 => break,
                        n => panic!("a short read of {n} bytes"),
                    }
                };
                match how {
                    Both::EventFds => {
                        use std::os::fd::AsRawFd;
                        let mut ev_a = a.event_fd().expect("event fd A");
                        let mut ev_b = b.event_fd().expect("event fd B");
                        assert!(ev_a.arm(&a).is_none() && ev_b.arm(&b).is_none());
                        ready.notify();
                        while lat.len() < ROUNDS {
                            let mut p = libc::pollfd {
                                fd: ev_b.as_raw_fd(),
                                events: libc::POLLIN,
                                revents: 0,
                            };
                            // SAFETY: one valid pollfd.
                            let n = unsafe { libc::poll(&mut p, 1, PATIENCE.as_millis() as i32) };
                            assert_eq!(n, 1, "B's event fd never fired");
                            take(&mut b, &mut lat);
                            while ev_b.arm(&b).is_some() {
                                take(&mut b, &mut lat);
                            }
                        }
                    }
                    Both::WaitAny => {
                        ready.notify();
                        while lat.len() < ROUNDS {
                            let got = fshm::wait_any(&[&a, &b], Some(PATIENCE));
                            assert!(
                                got.iter().any(|&(i, _)| i == 1),
                                "B's data never came: {got:?}"
                            );
                            take(&mut b, &mut lat);
                        }
                    }
                }
                report.send_u64(quartile3(lat));
                0
            },
            || {
                use std::io::Write;
                for _ in 0..ROUNDS {
                    std::thread::sleep(PACE);
                    b.write_all(&mono_ns().to_le_bytes()).expect("write B");
                }
            },
        )
    };
    (run(false), run(true))
}

#[test]
fn a_flood_on_one_stream_does_not_delay_the_event_fd_of_another() {
    let _serial = serial();
    let (idle, flooded) = cross_stream(Both::EventFds);
    assert_prompt("event fd of B, flood on A", idle, flooded);
}

#[test]
fn a_flood_on_one_stream_does_not_delay_wait_any_on_another() {
    let _serial = serial();
    let (idle, flooded) = cross_stream(Both::WaitAny);
    assert_prompt("wait_any on A and B, flood on A", idle, flooded);
}

//! Async waits across processes: the reactor (`futex_waitv` threads), `Stream::wait_async`,
//! `AsyncWaiter`, and — with the `tokio` feature — `AsyncStream`.
//!
//! Tests that count the reactor's registrations or threads run their async part in a
//! forked child of their own: the counts are per process, and the harness runs other
//! tests of this file in parallel threads.

mod common;

use common::{fork_child, Child, NameGuard, Signal, PATIENCE};
use fshm::{reactor_stats, OpenOptions, Stream, WaitStatus};
use std::future::Future;
use std::io::Write;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `cond` every millisecond on the runtime's timer until it holds (a condition,
/// not a delay: it fails the test after [`PATIENCE`]).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Blocking form of [`until`], outside any runtime.
fn until_blocking(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    std::pin::Pin::new(f).poll(&mut cx)
}

fn sigkill(child: &Child) {
    // SAFETY: plain system call on our own, not yet reaped, child.
    unsafe { libc::kill(child.pid(), libc::SIGKILL) };
}

/// An owner process of every name in `names` (1 MiB streams): creates them, signals,
/// on `go` writes one byte to each, signals again, then blocks until killed.
fn owner_of_many(names: &[String], go: &Signal) -> Child {
    let ready = Signal::new();
    let child = fork_child(|| {
        let mut owned: Vec<Stream> = names
            .iter()
            .map(|n| OpenOptions::new().max_size(1 << 20).create(n).unwrap())
            .collect();
        ready.notify();
        go.wait();
        for s in &mut owned {
            s.write_all(b"x").unwrap();
        }
        ready.notify();
        // Block until killed (nobody ever signals this pipe again).
        go.recv_timeout(1, Duration::from_secs(3600));
        1
    });
    ready.wait();
    child
}

/// More streams than one `futex_waitv` call takes: every commit of another process
/// reaches its async waiter, the reactor uses one thread per 127 waiters, the owner's
/// death ends every waiter within the promised 250 ms (asserted generously: the machine
/// is shared), and nothing stays registered; the threads end once idle.
#[test]
fn many_async_waiters_see_every_commit_and_the_owner_death() {
    const STREAMS: usize = 300;
    let guards: Vec<NameGuard> = (0..STREAMS).map(|_| NameGuard::new("many")).collect();
    let names: Vec<String> = guards.iter().map(|g| g.name().to_owned()).collect();
    let mut tester = fork_child(|| {
        let go = Signal::new();
        let owner = owner_of_many(&names, &go);
        let guests: Vec<Arc<Stream>> = names
            .iter()
            .map(|n| Arc::new(Stream::open(n).unwrap()))
            .collect();
        let rt = runtime();
        let got_data = Arc::new(AtomicUsize::new(0));
        let ends = rt.block_on(async {
            let tasks: Vec<_> = guests
                .iter()
                .map(|g| {
                    let (g, got_data) = (g.clone(), got_data.clone());
                    tokio::spawn(async move {
                        assert_eq!(g.wait_async(0).await, WaitStatus::Data);
                        got_data.fetch_add(1, Ordering::SeqCst);
                        let st = g.wait_async(1).await;
                        (st, Instant::now())
                    })
                })
                .collect();
            until("every waiter registered", || {
                reactor_stats::registrations() == STREAMS
            })
            .await;
            // One owner process: one pidfd watches it for all 300 handles.
            assert_eq!(reactor_stats::watched_owners(), 1, "watched owners");
            let threads = reactor_stats::threads().0;
            assert_eq!(
                threads,
                STREAMS.div_ceil(127),
                "threads for {STREAMS} waiters"
            );
            go.notify();
            until(
                "every commit seen and every waiter registered again",
                || {
                    got_data.load(Ordering::SeqCst) == STREAMS
                        && reactor_stats::registrations() == STREAMS
                },
            )
            .await;
            let killed_at = Instant::now();
            sigkill(&owner);
            let mut worst = Duration::ZERO;
            for t in tasks {
                let (st, at) = t.await.unwrap();
                assert_eq!(st, WaitStatus::Ended, "a dead owner must end the wait");
                worst = worst.max(at.saturating_duration_since(killed_at));
            }
            worst
        });
        // Promised: within 250 ms; asserted generously.
        assert!(
            ends <= Duration::from_secs(1) * common::time_factor(),
            "last waiter ended {ends:?} after the kill"
        );
        assert_eq!(reactor_stats::registrations(), 0, "registrations left");
        drop(rt);
        until_blocking("reactor threads ended", || reactor_stats::threads().0 == 0);
        drop(owner);
        0
    });
    tester.assert_success();
    for g in &guards {
        let _ = fshm::force_destroy(g.name());
        g.assert_gone();
    }
}

/// A future dropped mid-wait, a leaked one whose stream closes, and a runtime shut
/// down with waiters pending leave nothing registered, and the threads end.
#[test]
fn cancelled_and_abandoned_waits_leave_nothing_registered() {
    let g = NameGuard::new("cancel");
    let name = g.name();
    let mut tester = fork_child(|| {
        let owner = Arc::new(Stream::create(name).unwrap());
        // Dropped mid-wait.
        {
            let mut f = pin!(owner.wait_async(0));
            assert!(poll_once(&mut f).is_pending());
            assert_eq!(reactor_stats::registrations(), 1);
        }
        assert_eq!(
            reactor_stats::registrations(),
            0,
            "a dropped future stayed registered"
        );
        // Leaked: the handle's close removes its registration before unmapping.
        {
            let guest = Stream::open(name).unwrap();
            let mut f = Box::pin(guest.wait_async(0));
            assert!(poll_once(&mut f).is_pending());
            assert_eq!(reactor_stats::registrations(), 1);
            std::mem::forget(f);
            drop(guest);
        }
        assert_eq!(
            reactor_stats::registrations(),
            0,
            "a leaked future's registration outlived its stream"
        );
        // Runtime shut down with 200 waiters pending.
        let rt = runtime();
        rt.block_on(async {
            for _ in 0..200 {
                let s = owner.clone();
                tokio::spawn(async move { s.wait_async(0).await });
            }
            until("200 waiters registered", || {
                reactor_stats::registrations() == 200
            })
            .await;
        });
        drop(rt);
        assert_eq!(
            reactor_stats::registrations(),
            0,
            "runtime shutdown left registrations"
        );
        until_blocking("reactor threads ended", || reactor_stats::threads().0 == 0);
        0
    });
    tester.assert_success();
    g.assert_gone();
}

/// Without `futex_waitv` (forced here) the reactor polls its words: every commit of
/// another process and the owner's close still reach every waiter.
#[test]
fn the_polling_fallback_delivers_commits_and_ends() {
    const STREAMS: usize = 150;
    let guards: Vec<NameGuard> = (0..STREAMS).map(|_| NameGuard::new("poll")).collect();
    let mut owners: Vec<Stream> = guards
        .iter()
        .map(|g| {
            OpenOptions::new()
                .max_size(1 << 20)
                .create(g.name())
                .unwrap()
        })
        .collect();
    let (registered, written) = (Signal::new(), Signal::new());
    let mut tester = fork_child(|| {
        reactor_stats::force_polling();
        let rt = runtime();
        rt.block_on(async {
            let tasks: Vec<_> = guards
                .iter()
                .map(|g| {
                    let s = Stream::open(g.name()).unwrap();
                    tokio::spawn(async move {
                        assert_eq!(s.wait_async(0).await, WaitStatus::Data);
                        s.wait_async(1).await
                    })
                })
                .collect();
            until("every waiter registered", || {
                reactor_stats::registrations() == STREAMS
            })
            .await;
            assert!(!reactor_stats::uses_futex_waitv());
            registered.notify();
            written.wait();
            for t in tasks {
                assert_eq!(t.await.unwrap(), WaitStatus::Ended);
            }
        });
        assert_eq!(reactor_stats::registrations(), 0);
        0
    });
    registered.wait();
    for o in &mut owners {
        o.write_all(b"x").unwrap();
    }
    written.notify();
    drop(owners);
    tester.assert_success();
    for g in &guards {
        g.assert_gone();
    }
}

/// Waits registered, fired and dropped at once from four threads (each with its own
/// runtime) while another process commits: every wait that ends sees data or its
/// timeout, and nothing stays registered.
#[test]
fn concurrent_waits_and_cancellations_leave_nothing_registered() {
    const STREAMS: usize = 8;
    let guards: Vec<NameGuard> = (0..STREAMS).map(|_| NameGuard::new("churn")).collect();
    let owners: Vec<Stream> = guards
        .iter()
        .map(|g| {
            OpenOptions::new()
                .max_size(1 << 20)
                .create(g.name())
                .unwrap()
        })
        .collect();
    let done = Signal::new();
    let mut writer = fork_child(|| {
        let mut streams: Vec<Stream> = guards
            .iter()
            .map(|g| Stream::open(g.name()).unwrap())
            .collect();
        let mut i = 0;
        // Commit until the tester is done (pacing only: the test waits for `done`).
        while done.recv_timeout(1, Duration::from_micros(200)).is_none() {
            streams[i % STREAMS].write_all(b".").unwrap();
            i += 1;
        }
        0
    });
    let mut tester = fork_child(|| {
        let names: Vec<String> = guards.iter().map(|g| g.name().to_owned()).collect();
        let (data, timeouts) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for t in 0..4 {
                let (names, data, timeouts) = (&names, &data, &timeouts);
                s.spawn(move || {
                    let streams: Vec<Stream> =
                        names.iter().map(|n| Stream::open(n).unwrap()).collect();
                    runtime().block_on(async {
                        for k in 0..400 {
                            let st = &streams[(k * 3 + t) % STREAMS];
                            let wait = st.wait_async(st.len());
                            let limit = Duration::from_micros(((k * 37 + t * 11) % 500) as u64);
                            match tokio::time::timeout(limit, wait).await {
                                Ok(WaitStatus::Data) => data.fetch_add(1, Ordering::Relaxed),
                                Ok(other) => panic!("unexpected {other:?}"),
                                Err(_) => timeouts.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    });
                });
            }
        });
        assert_eq!(
            data.load(Ordering::Relaxed) + timeouts.load(Ordering::Relaxed),
            1600
        );
        assert_eq!(reactor_stats::registrations(), 0, "registrations left");
        until_blocking("reactor threads ended", || reactor_stats::threads().0 == 0);
        0
    });
    tester.assert_success();
    done.notify();
    writer.assert_success();
    drop(owners);
    for g in &guards {
        g.assert_gone();
    }
}

/// The owner's process is watched through a pidfd (one for all its streams) while its
/// token stands. When the recorded process ends but a forked child of it still holds
/// the owner's descriptor — and so the token — the followers do not end; they end once
/// that child dies, found by the liveness tick the fired watch falls back to.
#[test]
fn a_fired_owner_watch_falls_back_to_the_token() {
    let g = NameGuard::new("forkowner");
    let name = g.name();
    let mut tester = fork_child(|| {
        let (ready, exit_parent, stop_child) = (Signal::new(), Signal::new(), Signal::new());
        let mut parent = fork_child(|| {
            let s = OpenOptions::new().max_size(1 << 20).create(name).unwrap();
            // SAFETY: the grandchild only waits on a pipe and leaves with `_exit`.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // Until told, or at most PATIENCE should the test fail first.
                stop_child.recv_timeout(1, PATIENCE);
                // Dies holding the token: no clean close.
                // SAFETY: leaves the forked grandchild at once.
                unsafe { libc::_exit(0) };
            }
            ready.notify();
            exit_parent.wait();
            // Leaves without closing: the grandchild keeps the owner's descriptor.
            std::mem::forget(s);
            0
        });
        ready.wait();
        let guest = Stream::open(name).unwrap();
        let rt = runtime();
        rt.block_on(async {
            let mut wait = pin!(guest.wait_async(0));
            assert!(poll_once(&mut wait).is_pending());
            assert_eq!(reactor_stats::watched_owners(), 1, "the owner is watched");
            exit_parent.notify();
            parent.assert_success();
            until("the watch fired", || reactor_stats::watched_owners() == 0).await;
            // The token still stands: the wait goes on past several ticks.
            let early = tokio::time::timeout(Duration::from_millis(300), &mut wait).await;
            assert!(early.is_err(), "ended while the token was held: {early:?}");
            stop_child.notify();
            let started = Instant::now();
            assert_eq!(wait.await, WaitStatus::Ended);
            // The tick (50 ms) finds it; asserted generously.
            assert!(
                started.elapsed() <= Duration::from_secs(1) * common::time_factor(),
                "{:?}",
                started.elapsed()
            );
        });
        0
    });
    tester.assert_success();
    let _ = fshm::force_destroy(name);
    g.assert_gone();
}

/// A wrong pid in the header (only a writer can write one: trusted, but it may be
/// mistaken) cannot hide the owner's death: the watched process lives on, and the
/// bounded probe every second ends the follower anyway.
#[test]
fn a_wrong_owner_pid_delays_the_end_by_at_most_the_watched_nap() {
    let g = NameGuard::new("wrongpid");
    let name = g.name();
    let mut tester = fork_child(|| {
        let (ready, never) = (Signal::new(), Signal::new());
        let owner = fork_child(|| {
            let s = Stream::create(name).unwrap();
            ready.notify();
            // Blocks until killed (nobody writes to this pipe).
            never.recv_timeout(1, Duration::from_secs(3600));
            drop(s);
            1
        });
        ready.wait();
        // A writer records another live process (this one) as the owner.
        let path = common::shm_path(name);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &std::process::id().to_ne_bytes(), 48)
            .unwrap();
        drop(f);
        let guest = Stream::open(name).unwrap();
        runtime().block_on(async {
            let mut wait = pin!(guest.wait_async(0));
            assert!(poll_once(&mut wait).is_pending());
            assert_eq!(
                reactor_stats::watched_owners(),
                1,
                "the wrong pid is watched"
            );
            let killed_at = Instant::now();
            sigkill(&owner);
            assert_eq!(wait.await, WaitStatus::Ended);
            let took = killed_at.elapsed();
            // At most one watched nap (1 s) and its slack (250 ms); asserted generously.
            assert!(
                took <= Duration::from_secs(3) * common::time_factor(),
                "ended {took:?} after the kill"
            );
        });
        drop(owner);
        0
    });
    tester.assert_success();
    let _ = fshm::force_destroy(name);
    g.assert_gone();
}

/// A read-only handle cannot announce its sleep; its async wait polls (naps growing to
/// 10 ms) and still sees a commit of another process.
#[test]
fn a_read_only_async_waiter_sees_commits() {
    let g = NameGuard::new("ro");
    let name = g.name();
    let go = Signal::new();
    let ready = Signal::new();
    let mut owner = fork_child(|| {
        let mut s = Stream::create(name).unwrap();
        ready.notify();
        go.wait();
        s.write_all(b"hello").unwrap();
        go.wait(); // close after the reader is done
        0
    });
    ready.wait();
    let guest = OpenOptions::new().read_only(true).open(name).unwrap();
    assert!(!guest.is_writable());
    runtime().block_on(async {
        let mut f = pin!(guest.wait_async(0));
        assert!(poll_once(&mut f).is_pending());
        go.notify();
        assert_eq!(f.await, WaitStatus::Data);
    });
    go.notify();
    owner.assert_success();
    assert_eq!(guest.wait_for(5, Some(PATIENCE)), WaitStatus::Ended);
    drop(guest);
    g.assert_gone();
}

/// A waiter polled for one stream, then another, waits on the second only.
#[test]
fn an_async_waiter_moves_between_streams() {
    let (g1, g2) = (NameGuard::new("move1"), NameGuard::new("move2"));
    let a = Stream::create(g1.name()).unwrap();
    let mut b = Stream::create(g2.name()).unwrap();
    let mut w = fshm::AsyncWaiter::new();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(w.poll_wait_for(&a, 0, &mut cx).is_pending());
    assert!(w.poll_wait_for(&b, 0, &mut cx).is_pending());
    b.write_all(b"!").unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match w.poll_wait_for(&b, 0, &mut cx) {
            Poll::Ready(st) => break assert_eq!(st, WaitStatus::Data),
            Poll::Pending => assert!(Instant::now() < deadline, "commit not seen"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    w.cancel();
    drop((a, b));
    g1.assert_gone();
    g2.assert_gone();
}

#[cfg(feature = "tokio")]
mod with_tokio {
    use super::*;
    use fshm::RingPolicy;
    use std::io::Read;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    /// An owner process that writes `lines` lines (waiting for `go` first) and closes.
    fn line_writer(name: &str, opts: &OpenOptions, lines: usize, go: &Signal) -> Child {
        let ready = Signal::new();
        let child = fork_child(|| {
            let mut s = opts.create(name).unwrap();
            ready.notify();
            go.wait();
            for i in 0..lines {
                writeln!(s, "line {i}").unwrap();
            }
            0
        });
        ready.wait();
        child
    }

    fn follow_lines(opts: &OpenOptions, tag: &str) {
        const LINES: usize = 2000;
        let g = NameGuard::new(tag);
        let go = Signal::new();
        let mut writer = line_writer(g.name(), opts, LINES, &go);
        let guest = Stream::open(g.name()).unwrap();
        let got = runtime().block_on(async {
            let mut lines = guest.into_async().lines();
            go.notify();
            let mut got = Vec::new();
            while let Some(l) = lines.next_line().await.unwrap() {
                got.push(l);
            }
            got
        });
        writer.assert_success();
        let want: Vec<String> = (0..LINES).map(|i| format!("line {i}")).collect();
        assert_eq!(got, want);
        g.assert_gone();
    }

    #[test]
    fn async_follower_reads_a_linear_stream_to_the_owners_close() {
        follow_lines(&OpenOptions::new(), "lines-linear");
    }

    /// The follower attaches (a read-write guest of a lossless ring), so the writer
    /// process waits for it: every line arrives although the ring holds 4 KiB.
    #[test]
    fn async_follower_reads_a_lossless_ring_to_the_owners_close() {
        follow_lines(
            OpenOptions::new().ring(4096, RingPolicy::Lossless),
            "lines-lossless",
        );
    }

    /// An immutable stream is read in place (`AsyncBufRead` lends the mapping).
    #[test]
    fn async_follower_reads_an_immutable_stream_in_place() {
        follow_lines(OpenOptions::new().immutable(true), "lines-immutable");
    }

    /// The owner dying (not closing) ends the async follower after the data it wrote.
    #[test]
    fn async_follower_ends_when_the_writer_process_is_killed() {
        let g = NameGuard::new("killed-writer");
        let name = g.name();
        let (ready, never) = (Signal::new(), Signal::new());
        let mut writer = fork_child(|| {
            let mut s = Stream::create(name).unwrap();
            s.write_all(b"last words\n").unwrap();
            ready.notify();
            never.recv_timeout(1, Duration::from_secs(3600));
            1
        });
        ready.wait();
        let guest = Stream::open(name).unwrap();
        let got = runtime().block_on(async {
            let mut r = guest.into_async();
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            assert_eq!(line, "last words\n");
            let mut pending = pin!(read_to_end_vec(&mut r));
            assert!(poll_once(&mut pending).is_pending(), "no more data yet");
            sigkill(&writer);
            pending.await
        });
        assert!(got.is_empty(), "no data after the last words: {got:?}");
        writer.kill();
        fshm::force_destroy(name).unwrap();
        g.assert_gone();
    }

    /// `AsyncStream` waits sleep in io_uring requests of their runtime (one wake-up:
    /// the runtime's own poller), where the kernel has them: every commit of another
    /// process arrives, reads dropped mid-wait cancel their requests, and a runtime shut
    /// down with waits pending leaves no request behind. Where io_uring cannot wait on
    /// futexes (before Linux 6.7, qemu-user, a seccomp filter) the same holds through
    /// the reactor threads, and the test says which path it checked.
    #[test]
    fn async_stream_waits_sleep_in_io_uring_and_leave_nothing_behind() {
        const STREAMS: usize = 40;
        let guards: Vec<NameGuard> = (0..STREAMS).map(|_| NameGuard::new("uring")).collect();
        let names: Vec<String> = guards.iter().map(|g| g.name().to_owned()).collect();
        let mut tester = fork_child(|| {
            // The count its parent had at the fork (other tests' requests, asleep in
            // runtimes this child does not have) stays; this test's come on top.
            let inherited = reactor_stats::uring_waits();
            let go = Signal::new();
            let owner = owner_of_many(&names, &go);
            let rt = runtime();
            let got = Arc::new(AtomicUsize::new(0));
            let uring = rt.block_on(async {
                let mut tasks = Vec::new();
                for n in &names {
                    let mut r = Stream::open(n).unwrap().into_async();
                    let got = got.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut b = [0u8; 1];
                        r.read_exact(&mut b).await.unwrap();
                        assert_eq!(&b, b"x");
                        got.fetch_add(1, Ordering::SeqCst);
                        // Waits again, until dropped below.
                        r.read_exact(&mut b).await.unwrap();
                    }));
                }
                until("every read registered", || {
                    reactor_stats::registrations() == STREAMS
                })
                .await;
                let uring = reactor_stats::uses_io_uring() == Some(true);
                let asleep = if uring { STREAMS } else { 0 };
                assert_eq!(
                    (reactor_stats::uring_waits() - inherited),
                    asleep,
                    "requests asleep"
                );
                go.notify();
                // Every commit arrives, and every read waits again.
                until("every read woken and waiting again", || {
                    got.load(Ordering::SeqCst) == STREAMS
                        && reactor_stats::registrations() == STREAMS
                        && (reactor_stats::uring_waits() - inherited) == asleep
                })
                .await;
                // Half the reads are dropped mid-wait: their requests are cancelled.
                for t in &tasks[..STREAMS / 2] {
                    t.abort();
                }
                until("the dropped reads' waits gone", || {
                    reactor_stats::registrations() == STREAMS - STREAMS / 2
                        && (reactor_stats::uring_waits() - inherited) == asleep - asleep / 2
                })
                .await;
                uring
            });
            // The other half are still waiting when the runtime shuts down.
            drop(rt);
            assert_eq!(
                (reactor_stats::uring_waits() - inherited),
                0,
                "requests left behind"
            );
            assert_eq!(
                reactor_stats::registrations(),
                0,
                "registrations left behind"
            );
            if !uring {
                eprintln!("io_uring futex waits unavailable here: checked the reactor path");
            }
            drop(owner);
            0
        });
        tester.assert_success();
        for g in &guards {
            let _ = fshm::force_destroy(g.name());
            g.assert_gone();
        }
    }

    /// The same on a multi-threaded runtime, whose tasks and ring reaper move between
    /// worker threads: every line of every stream arrives, in order, and no request is
    /// left asleep once the followers have ended.
    #[test]
    fn async_followers_on_a_multi_threaded_runtime_get_every_line() {
        const STREAMS: usize = 8;
        const LINES: usize = 300;
        let guards: Vec<NameGuard> = (0..STREAMS).map(|_| NameGuard::new("mt")).collect();
        // In a child of its own: the count of requests asleep is per process. The child
        // starts with the count its parent had when it forked (other tests' requests,
        // asleep in runtimes the child does not have), so it compares with that.
        let mut tester = fork_child(|| {
            let inherited = reactor_stats::uring_waits();
            let go = Signal::new();
            let mut writers: Vec<Child> = guards
                .iter()
                .map(|g| line_writer(g.name(), &OpenOptions::new(), LINES, &go))
                .collect();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let counts = rt.block_on(async {
                let mut tasks = Vec::new();
                for g in &guards {
                    let mut lines = Stream::open(g.name()).unwrap().into_async().lines();
                    tasks.push(tokio::spawn(async move {
                        let mut n = 0;
                        while let Some(l) = lines.next_line().await.unwrap() {
                            assert_eq!(l, format!("line {n}"));
                            n += 1;
                        }
                        n
                    }));
                }
                for _ in &guards {
                    go.notify();
                }
                let mut counts = Vec::new();
                for t in tasks {
                    counts.push(t.await.unwrap());
                }
                counts
            });
            assert_eq!(counts, vec![LINES; STREAMS]);
            assert_eq!(
                reactor_stats::uring_waits(),
                inherited,
                "requests left asleep"
            );
            drop(rt);
            for w in &mut writers {
                w.assert_success();
            }
            0
        });
        tester.assert_success();
        for g in &guards {
            g.assert_gone();
        }
    }

    /// A child forked while another thread of its parent held the list of io_uring
    /// rings (every handle's close takes it) closes its handles and waits
    /// asynchronously through rings of its own.
    #[test]
    fn a_child_forked_while_the_ring_list_is_locked_waits_and_closes() {
        let g = NameGuard::new("rlock");
        let mut child = reactor_stats::with_ring_list_locked(|| {
            fork_child(|| {
                let mut owner = OpenOptions::new().create(g.name()).unwrap();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let got = rt.block_on(async {
                    let mut r = Stream::open(g.name()).unwrap().into_async();
                    let reader = tokio::spawn(async move { read_to_end_vec(&mut r).await });
                    tokio::task::yield_now().await;
                    owner.write_all(b"after the fork").unwrap();
                    drop(owner);
                    reader.await.unwrap()
                });
                assert_eq!(got, b"after the fork");
                0
            })
        });
        child.assert_success();
        g.assert_gone();
    }

    async fn read_to_end_vec(r: &mut fshm::AsyncStream) -> Vec<u8> {
        let mut v = Vec::new();
        r.read_to_end(&mut v).await.unwrap();
        v
    }

    /// An async lossless writer waits (without blocking its runtime) for a reader
    /// process that reads slowly, and every byte arrives in order.
    #[test]
    fn async_lossless_writer_waits_for_a_reading_process() {
        const BYTES: usize = 256 * 1024;
        let g = NameGuard::new("async-writer");
        let name = g.name();
        let owner = OpenOptions::new()
            .ring(4096, RingPolicy::Lossless)
            .create(name)
            .unwrap();
        let attached = Signal::new();
        let mut reader = fork_child(|| {
            let s = Stream::open(name).unwrap();
            assert!(s.is_attached());
            attached.notify();
            let mut got = Vec::new();
            s.follow().read_to_end(&mut got).unwrap();
            let ok =
                got.len() == BYTES && got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8);
            if ok {
                0
            } else {
                1
            }
        });
        attached.wait();
        let data: Vec<u8> = (0..BYTES).map(|i| (i % 251) as u8).collect();
        let mut w = owner.into_async();
        runtime().block_on(async {
            for chunk in data.chunks(1000) {
                w.write_all(chunk).await.unwrap();
            }
        });
        drop(w); // the owner closes: the reader's follow ends
        reader.assert_success();
        g.assert_gone();
    }

    /// A lossless writer waiting for room is released when the reader process that
    /// holds it back dies, and leaves nothing registered.
    #[test]
    fn a_killed_reader_releases_an_async_writer() {
        let g = NameGuard::new("killed-reader");
        let name = g.name();
        let mut tester = fork_child(|| {
            let owner = OpenOptions::new()
                .ring(4096, RingPolicy::Lossless)
                .create(name)
                .unwrap();
            let (attached, never) = (Signal::new(), Signal::new());
            let reader = fork_child(|| {
                let _s = Stream::open(name).unwrap();
                attached.notify();
                never.recv_timeout(1, Duration::from_secs(3600));
                1
            });
            attached.wait();
            let mut w = owner.into_async();
            runtime().block_on(async {
                w.write_all(&[7; 4096]).await.unwrap();
                let mut more = pin!(w.write_all(b"one more"));
                assert!(poll_once(&mut more).is_pending(), "the ring is full");
                assert_eq!(reactor_stats::registrations(), 1);
                sigkill(&reader);
                tokio::time::timeout(PATIENCE, more).await.unwrap().unwrap();
            });
            assert_eq!(reactor_stats::registrations(), 0);
            drop(reader);
            0
        });
        tester.assert_success();
        g.assert_gone();
    }
}

//! Event loops and many streams: [`EventFd`], a descriptor `poll`/`epoll`/`select` can
//! wait on, and [`wait_any`], one blocking wait on any number of streams.
//!
//! Both are built on [`AsyncWaiter`]: a wait announces itself on the stream's futex
//! word exactly as a blocking follower does (so a writer still makes no system call
//! while nobody waits), and the process's reactor — a few threads that sleep in
//! `futex_waitv(2)` for every async waiter of the process, 127 words each, and watch
//! the owners' processes through pidfds — wakes a [`Waker`] on a commit, on the owner's
//! close, or on its death. For an [`EventFd`] that waker adds 1 to an `eventfd(2)`; for
//! [`wait_any`] it unparks the waiting thread. Neither starts a thread of its own.
//!
//! **Kernels.** eventfd: Linux 2.6.27. The reactor sleeps in `futex_waitv` on Linux
//! 5.16 and later; before that (or under a seccomp filter refusing it) its threads
//! poll their words with naps growing from 100 µs to 10 ms: everything works, but a
//! wake-up may take up to 10 ms and each reactor thread (one per 127 waits) wakes up to
//! 100 times a second. Owner deaths are seen at once where the owner's process can be
//! watched through a pidfd (Linux 5.3), within about 60 ms elsewhere.

use crate::asyncwait::AsyncWaiter;
use crate::error::os;
use crate::handle::WaitStatus;
use crate::stream::Stream;
use crate::sys;
use parking_lot::Mutex;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// The waker of an [`EventFd`]: makes its eventfd readable.
struct Signal(OwnedFd);

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        sys::eventfd_signal(self.0.as_fd());
    }
}

/// A descriptor that becomes readable when a stream holds data past a handle's
/// position, or when the stream ends (its owner closed or died): what `poll(2)`,
/// `epoll(7)`, `select(2)` and every event loop built on them (tokio's
/// [`AsyncFd`](https://docs.rs/tokio/latest/tokio/io/unix/struct.AsyncFd.html), mio,
/// libuv, GLib, ...) can wait on. Made by [`Stream::event_fd`]; the C API's
/// `fshm_event_fd` is the same thing.
///
/// **Arming.** The descriptor (an `eventfd(2)`, close-on-exec, non-blocking) is armed
/// for one handle and one position: [`arm`](Self::arm) clears it and, if data past the
/// handle's position is already committed or the stream has ended, makes it readable
/// at once; otherwise it registers with the process's reactor, which makes it readable
/// on the next commit, on the owner's close, or when the owner is found dead. It then
/// **stays readable until the next `arm`**, however often the loop looks — level-
/// triggered for `poll` and epoll's default mode, one edge per readiness for
/// `EPOLLET` (each arm that finds data makes a new edge). So a loop follows a stream
/// like this: wait until the descriptor is readable; read the stream until a read
/// returns 0 (no more data for now); call `arm`; if `arm` returns `Some`, read again
/// at once, else go back to waiting. Nothing is lost between the last read and `arm`:
/// `arm` looks after registering. Reading the eventfd yourself is harmless (it only
/// clears it early); don't write to it.
///
/// Once the stream has ended, every `arm` finds it ended and the descriptor stays
/// readable, as a pipe's does at end-of-file; the loop should then stop watching it.
///
/// **Cost.** A writer pays nothing while nobody waits (the futex rule of a blocking
/// wait: one `FUTEX_WAKE` per commit while someone is armed). Idle armed descriptors
/// cost what idle async waits cost — the reactor's threads, one per 127 waits, wake
/// about once a second to probe owners whose processes they cannot watch
/// (BENCHMARKS.md, "Event loops").
///
/// A read-only handle (the stream's mode lets you only read) cannot announce its waits;
/// its registrations are looked at after naps of 100 µs growing to 10 ms, and each
/// look makes the descriptor readable: it may be readable without new data (a read
/// then returns 0; arm again). Writable handles see no such spurious readiness but for
/// rare races (a commit arriving while `arm` runs).
///
/// **Kernels.** eventfd: Linux 2.6.27. The reactor's threads sleep in `futex_waitv(2)`
/// from Linux 5.16; on older kernels (or under a seccomp filter refusing it) they poll
/// their words every 100 µs to 10 ms instead — the descriptor still works, but becomes
/// readable up to 10 ms after a commit, and each reactor thread wakes up to 100 times
/// a second. Owner deaths are seen at once where the owner's process can be watched
/// through a pidfd (Linux 5.3, same pid namespace), within about 60 ms elsewhere.
///
/// **Lifetime.** The `EventFd` owns the descriptor and closes it when dropped; it holds
/// no borrow of the stream (each `arm` names the handle). A handle that closes while
/// its `EventFd` is armed removes the registration and leaves the descriptor readable;
/// nothing is registered until the next `arm`. Thread safety: the
/// descriptor may be polled from any thread; `arm` takes `&mut self`.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
/// # let name = format!("/doc-event-fd-{}", std::process::id());
/// let mut owner = fshm::Stream::create(&name)?;
/// let mut guest = fshm::Stream::open(&name)?;
/// let mut ev = guest.event_fd()?;           // armed at the guest's position
/// let readable = |fd: i32, ms: i32| {
///     let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
///     unsafe { libc::poll(&mut p, 1, ms) == 1 }
/// };
/// assert!(!readable(ev.as_raw_fd(), 0));   // nothing yet
/// owner.write_all(b"hello")?;
/// assert!(readable(ev.as_raw_fd(), -1));   // the commit made it readable
/// let mut got = Vec::new();
/// guest.read_to_end(&mut got)?;             // read until no more data for now
/// assert_eq!(got, b"hello");
/// assert_eq!(ev.arm(&guest), None);         // armed again: nothing past the position
/// assert!(!readable(ev.as_raw_fd(), 0));
/// drop(owner);                              // the owner closes: the stream ends
/// assert!(readable(ev.as_raw_fd(), -1));
/// assert_eq!(ev.arm(&guest), Some(fshm::WaitStatus::Ended));
/// # Ok(()) }
/// ```
pub struct EventFd {
    signal: Arc<Signal>,
    waker: Waker,
    waiter: AsyncWaiter,
}

impl std::fmt::Debug for EventFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFd")
            .field("fd", &self.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl EventFd {
    /// Clears the descriptor and arms it for data past `stream`'s position (see the
    /// type's docs). Returns `Some(Data)` or `Some(Ended)` when that is already the
    /// case (the descriptor is then readable), `None` when the wait is registered.
    pub fn arm(&mut self, stream: &Stream) -> Option<WaitStatus> {
        self.arm_at(stream, stream.position())
    }

    /// As [`arm`](Self::arm), for data past `pos` rather than the handle's position
    /// (a caller that reads with its own positions, or through a buffer of its own).
    pub fn arm_at(&mut self, stream: &Stream, pos: u64) -> Option<WaitStatus> {
        // Clear first, look after: a commit after the clear either is seen by the look
        // (and signalled below) or wakes the registration (the wait rule, `wait.rs`).
        let fired = sys::eventfd_clear(self.signal.0.as_fd());
        // After a readiness without data, probe the owner's liveness too: the reactor
        // wakes a registration without data when it found the owner dead (one `fcntl`).
        if let Some(s) = stream.core.data_check(pos, fired, &mut None) {
            sys::eventfd_signal(self.signal.0.as_fd());
            return Some(s);
        }
        let mut cx = Context::from_waker(&self.waker);
        match self.waiter.poll_wait_for(stream, pos, &mut cx) {
            Poll::Ready(s) => {
                sys::eventfd_signal(self.signal.0.as_fd());
                Some(s)
            }
            Poll::Pending => None,
        }
    }

    /// Removes the registration, leaving the descriptor as it is (readable or not); a
    /// later [`arm`](Self::arm) registers again.
    pub fn disarm(&mut self) {
        self.waiter.cancel();
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.signal.0.as_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.signal.0.as_raw_fd()
    }
}

impl Stream {
    /// A descriptor for event loops, armed for data past this handle's position: see
    /// [`EventFd`]. Each call makes a new descriptor.
    ///
    /// # Errors
    /// The kernel refused an eventfd (`EMFILE`/`ENFILE`: too many open descriptors).
    pub fn event_fd(&self) -> std::io::Result<EventFd> {
        let fd =
            sys::eventfd().map_err(|e| os(self.name(), e, "cannot create an event descriptor"))?;
        let signal = Arc::new(Signal(fd));
        let mut ev = EventFd {
            waker: Waker::from(signal.clone()),
            signal,
            waiter: AsyncWaiter::new(),
        };
        ev.arm(self);
        Ok(ev)
    }
}

/// What [`wait_any`]'s wakers share with the waiting thread.
struct Waiting {
    thread: Thread,
    fired: Mutex<Vec<usize>>,
}

/// The waker of one entry of a [`wait_any`].
struct EntryWake {
    waiting: Arc<Waiting>,
    index: usize,
}

impl Wake for EntryWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.waiting.fired.lock().push(self.index);
        self.waiting.thread.unpark();
    }
}

/// Waits until at least one of `streams` holds data past its handle's position or has
/// ended (its owner closed or died), or `timeout` passes (`None`: no limit). Returns
/// the streams ready as `(index in streams, Data or Ended)`, in index order; empty
/// when the time ran out. An empty slice waits for the timeout (`None`: for ever), as
/// `poll(2)` with no descriptors does.
///
/// It blocks the calling thread only — like `poll(2)` over many descriptors — and
/// starts no thread per stream: the waits are registered with the process's reactor
/// ([`AsyncWaiter`]), which unparks the caller. A call first looks at every stream
/// (about 10 ns each, no system call), so a call with a stream ready costs a pass over
/// the slice; only then does it register. With `Some(Duration::ZERO)` it only looks.
/// A closed owner is seen by the look; a dead one needs a probe of its liveness (one
/// `fcntl`), made for every stream before a call returns empty, so a dead owner is
/// reported as `Ended` by the call that finds no stream with data — however short its
/// timeout — or sooner: during a wait a death is seen at once where the owner's
/// process can be watched through a pidfd, and within about 60 ms elsewhere. (A call
/// that finds data does not probe: the others' deaths come in a later call.)
///
/// For data past other positions than the handles', see [`wait_any_at`]. Thread
/// safety: the streams may be used by other threads meanwhile (a read that moves a
/// position after the call began does not change what it waits for).
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::Write;
/// use std::time::Duration;
/// # let a = format!("/doc-wait-any-a-{}", std::process::id());
/// # let b = format!("/doc-wait-any-b-{}", std::process::id());
/// let mut owner_a = fshm::Stream::create(&a)?;
/// let owner_b = fshm::Stream::create(&b)?;
/// let (ga, gb) = (fshm::Stream::open(&a)?, fshm::Stream::open(&b)?);
/// let t = Some(Duration::from_millis(10));
/// assert!(fshm::wait_any(&[&ga, &gb], t).is_empty()); // timed out
/// owner_a.write_all(b"x")?;
/// drop(owner_b);
/// assert_eq!(
///     fshm::wait_any(&[&ga, &gb], None),
///     [(0, fshm::WaitStatus::Data), (1, fshm::WaitStatus::Ended)]
/// );
/// # Ok(()) }
/// ```
pub fn wait_any(streams: &[&Stream], timeout: Option<Duration>) -> Vec<(usize, WaitStatus)> {
    let entries: Vec<(&Stream, u64)> = streams.iter().map(|s| (*s, s.position())).collect();
    wait_any_at(&entries, timeout)
}

/// As [`wait_any`], for data past the given positions: `(stream, position)` pairs.
/// A position of `u64::MAX` waits for the end alone.
pub fn wait_any_at(
    entries: &[(&Stream, u64)],
    timeout: Option<Duration>,
) -> Vec<(usize, WaitStatus)> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    // One look at every stream; `slow` also probes each owner's liveness.
    let look = |slow: bool| -> Vec<(usize, WaitStatus)> {
        entries
            .iter()
            .enumerate()
            .filter_map(|(i, (s, pos))| s.core.data_check(*pos, slow, &mut None).map(|r| (i, r)))
            .collect()
    };
    let ready = look(false);
    if !ready.is_empty() {
        return ready;
    }
    if timeout == Some(Duration::ZERO) {
        return look(true);
    }
    let waiting = Arc::new(Waiting {
        thread: std::thread::current(),
        fired: Mutex::new(Vec::new()),
    });
    let wakers: Vec<Waker> = (0..entries.len())
        .map(|index| {
            Waker::from(Arc::new(EntryWake {
                waiting: waiting.clone(),
                index,
            }))
        })
        .collect();
    let mut waiters: Vec<AsyncWaiter> = (0..entries.len()).map(|_| AsyncWaiter::new()).collect();
    let mut ready = Vec::new();
    let mut poll = |i: usize, ready: &mut Vec<(usize, WaitStatus)>| {
        let (s, pos) = entries[i];
        let mut cx = Context::from_waker(&wakers[i]);
        if let Poll::Ready(r) = waiters[i].poll_wait_for(s, pos, &mut cx) {
            ready.push((i, r));
        }
    };
    for i in 0..entries.len() {
        poll(i, &mut ready);
    }
    loop {
        if !ready.is_empty() {
            // Report every stream ready now, not only those whose wait fired.
            let mut all = look(false);
            for r in ready {
                if !all.iter().any(|(i, _)| *i == r.0) {
                    all.push(r);
                }
            }
            all.sort_unstable_by_key(|r| r.0);
            return all;
        }
        let fired = std::mem::take(&mut *waiting.fired.lock());
        if fired.is_empty() {
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return look(true);
                    }
                    std::thread::park_timeout(d - now);
                }
            }
            continue;
        }
        for i in fired {
            poll(i, &mut ready);
        }
    }
}

//! The runtime-agnostic async wait: [`AsyncWaiter`] and [`WaitFuture`].

use crate::handle::{Core, Role, WaitStatus};
use crate::reactor::AsyncWait;
use crate::reactor::Probe;
use crate::stream::Stream;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// The state of an async wait, for any runtime: what [`Stream::wait_async`]'s future
/// and the `tokio` feature's `AsyncStream` are built on, for
/// writing your own `poll_*` functions (an `AsyncRead` for another runtime, say).
///
/// [`poll_wait_for`](Self::poll_wait_for) answers at once when it can; otherwise it
/// announces the wait on the stream's futex word (as a blocking follower does), hands
/// the word and the task's [`Waker`](std::task::Waker) to the process's reactor — a few
/// threads that sleep in `futex_waitv(2)` for every async waiter of the process, 127
/// words per thread — and returns `Pending`. The waker is woken when a writer commits,
/// the owner closes, or the liveness tick passes (a dead owner wakes nobody; it is
/// noticed within about 60 ms, or at once where the owner's process is watched through
/// a pidfd — its tick is then a second, the bound for what a pidfd cannot see). Dropping the waiter, or polling it for another stream,
/// removes its registration. No thread per stream, and no CPU while idle beyond the
/// tick (BENCHMARKS.md, "Async").
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::task::Poll;
/// let name = format!("/doc-async-waiter-{}", std::process::id());
/// let owner = fshm::Stream::create(&name)?;
/// let guest = fshm::Stream::open(&name)?;
/// let mut waiter = fshm::AsyncWaiter::new();
/// let waker = std::task::Waker::noop();
/// let mut cx = std::task::Context::from_waker(waker);
/// assert!(waiter.poll_wait_for(&guest, 0, &mut cx).is_pending()); // registered
/// drop(owner); // the owner closes: the wait ends
/// assert_eq!(waiter.poll_wait_for(&guest, 0, &mut cx), Poll::Ready(fshm::WaitStatus::Ended));
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct AsyncWaiter {
    wait: AsyncWait,
    last_liveness: Option<Instant>,
    /// An `AsyncStream`'s waiter: its waits may sleep in the tokio runtime's io_uring
    /// (`uring.rs`).
    one_hop: bool,
}

impl std::fmt::Debug for AsyncWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncWaiter").finish_non_exhaustive()
    }
}

impl AsyncWaiter {
    /// A waiter with no wait in progress.
    pub fn new() -> AsyncWaiter {
        AsyncWaiter::default()
    }

    /// An `AsyncStream`'s waiter, whose waits may sleep in its tokio runtime's io_uring.
    #[cfg(feature = "tokio")]
    pub(crate) fn one_hop() -> AsyncWaiter {
        AsyncWaiter {
            one_hop: true,
            ..AsyncWaiter::default()
        }
    }

    /// Polls for data past `pos` in `stream`: `Ready(Data)`, `Ready(Ended)` once the owner
    /// has closed or died and no data past `pos` is left, or `Pending` with `cx`'s waker
    /// registered. Never `TimedOut`: race it against your runtime's timer for a timeout.
    pub fn poll_wait_for(
        &mut self,
        stream: &Stream,
        pos: u64,
        cx: &mut Context<'_>,
    ) -> Poll<WaitStatus> {
        self.poll_data(&stream.core, pos, cx)
    }

    pub(crate) fn poll_data(
        &mut self,
        core: &Core,
        pos: u64,
        cx: &mut Context<'_>,
    ) -> Poll<WaitStatus> {
        let h = core.header();
        core.count_as_follower(h);
        let last_liveness = &mut self.last_liveness;
        // The liveness half of the slow check, which the reactor may run itself while
        // the waiter sleeps (a read-only waiter must look at the length after every
        // nap anyway).
        // Asked only when the wait registers: a poll that finds data opens no pidfd.
        let probe = || {
            if !core.is_writable() {
                Probe::None
            } else if core.role() == Role::Owner {
                Probe::Renew
            } else {
                Probe::Owner(core.fd.as_raw_fd(), core.owner_watch())
            }
        };
        let r = self.wait.poll(
            &h.seq,
            core.data_bell(),
            core.is_replica(),
            probe,
            self.one_hop,
            cx,
            |slow_ok| core.data_check(pos, slow_ok, last_liveness),
        );
        if r.is_ready() {
            self.last_liveness = None;
        }
        r
    }

    /// Lossless ring writer: polls until no attached live reader (but the handle's own
    /// slot `own`) needs a position below `need`.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn poll_room(
        &mut self,
        core: &Core,
        own: Option<u32>,
        need: u64,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let h = core.header();
        let mut failed = None;
        let r = self.wait.poll(
            &h.space_seq,
            core.room_bell(),
            false,
            || Probe::None,
            self.one_hop,
            cx,
            |slow_ok| match core.has_room(own, need, slow_ok) {
                Ok(true) => Some(()),
                Ok(false) => None,
                Err(e) => {
                    failed = Some(e);
                    Some(())
                }
            },
        );
        match (r, failed) {
            (_, Some(e)) => Poll::Ready(Err(e)),
            (Poll::Ready(()), None) => Poll::Ready(Ok(())),
            (Poll::Pending, None) => Poll::Pending,
        }
    }

    /// Forgets the wait in progress, removing its registration.
    pub fn cancel(&mut self) {
        self.wait.reset();
        self.last_liveness = None;
    }
}

/// The future of [`Stream::wait_async`]: data past a position, or the end.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct WaitFuture<'a> {
    stream: &'a Stream,
    pos: u64,
    waiter: AsyncWaiter,
}

impl Future for WaitFuture<'_> {
    type Output = WaitStatus;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WaitStatus> {
        let this = self.get_mut();
        this.waiter.poll_data(&this.stream.core, this.pos, cx)
    }
}

impl Stream {
    /// Waits asynchronously until the stream holds data past `pos`
    /// ([`WaitStatus::Data`]) or the owner has closed or died ([`WaitStatus::Ended`]):
    /// the async form of [`wait_for`](Self::wait_for), for any runtime (it needs no
    /// runtime's reactor; see [`AsyncWaiter`]). Never `TimedOut`: for a timeout, race
    /// it against your runtime's timer. Dropping the future cancels the wait.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// # let name = format!("/doc-wait-async-{}", std::process::id());
    /// use std::io::Write;
    /// let mut owner = fshm::Stream::create(&name)?;
    /// let guest = fshm::Stream::open(&name)?;
    /// owner.write_all(b"x")?;
    /// # let f = async {
    /// assert_eq!(guest.wait_async(0).await, fshm::WaitStatus::Data);
    /// # };
    /// # let mut f = std::pin::pin!(f);
    /// # let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// # assert!(f.as_mut().poll(&mut cx).is_ready());
    /// # use std::future::Future;
    /// # Ok(()) }
    /// ```
    pub fn wait_async(&self, pos: u64) -> WaitFuture<'_> {
        WaitFuture {
            stream: self,
            pos,
            waiter: AsyncWaiter::new(),
        }
    }
}

//! The `tokio` feature: [`AsyncStream`], tokio's I/O traits over a stream.

use crate::asyncwait::AsyncWaiter;
use crate::error::errno_of;
use crate::handle::WaitStatus;
use crate::stream::Stream;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

/// Size of the buffer behind [`AsyncBufRead`].
const BUF_SIZE: usize = 64 * 1024;

/// A [`Stream`] for tokio (feature `tokio`): an async follower and an async writer,
/// without a thread per stream.
///
/// - [`AsyncRead`] and [`AsyncBufRead`] follow the stream like
///   [`Stream::follow`]: a read returns data as it is committed, waits (without
///   blocking the runtime) while there is none, and returns 0 — end-of-stream — once
///   the owner has closed the stream or died and every committed byte has been read.
///   `tokio::io::AsyncBufReadExt::lines` reads a live stream line by line. A lossy
///   ring reader that fell behind gets the [`Overrun`](crate::Overrun) error, as a
///   blocking reader does, and reads on from the oldest byte held. Where the stream's
///   committed bytes cannot change under a reader — an immutable stream, an attached
///   reader of a lossless ring — `poll_fill_buf` lends them in place (crate docs,
///   "Zero-copy"); elsewhere it copies them into a 64 KiB buffer.
/// - [`AsyncWrite`] writes, appends, and on a lossless ring waits asynchronously for
///   attached readers to make room. Writes that never wait (linear streams, lossy
///   rings) complete at once. An appender takes the stream's append lock for each
///   append, as a blocking one does: it may wait for another process's append in
///   progress (microseconds; the kernel releases a dead appender's lock). The handle's
///   write timeout ([`Stream::set_write_timeout`]) does not apply: race the write
///   against your runtime's timer instead.
///
/// The waits are those of [`AsyncWaiter`]: one process-wide reactor serves every
/// waiter of every runtime. In addition, where the kernel has io_uring futex waits
/// (Linux 6.7+), a writable handle's waits sleep in an io_uring request of the task's
/// runtime, whose descriptor the runtime's I/O driver watches: a writer's wake-up then
/// reaches the runtime's thread directly, one wake-up instead of two (BENCHMARKS.md,
/// "Async"). So, like tokio's own I/O types, an `AsyncStream` must be polled in a
/// runtime with I/O enabled (`enable_io`, or `enable_all`; `#[tokio::main]` does):
/// tokio panics otherwise. Dropping a pending read or write leaves nothing registered.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use tokio::io::AsyncBufReadExt;
/// let guest = fshm::Stream::open("/metrics")?;
/// let mut lines = guest.into_async().lines();
/// while let Some(line) = lines.next_line().await? {
///     println!("{line}");
/// }
/// // the owner closed the stream or died
/// # Ok(()) }
/// ```
pub struct AsyncStream {
    // Declared first, dropped first: its registration goes before the stream's mapping.
    waiter: AsyncWaiter,
    buf: Box<[u8]>,
    /// `buf[start..end]` is read but not consumed.
    start: usize,
    end: usize,
    stream: Stream,
}

impl std::fmt::Debug for AsyncStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncStream")
            .field("stream", &self.stream)
            .field("buffered", &(self.end - self.start))
            .finish()
    }
}

impl Stream {
    /// This handle as an [`AsyncStream`] (feature `tokio`).
    pub fn into_async(self) -> AsyncStream {
        AsyncStream::new(self)
    }
}

impl AsyncStream {
    /// Wraps a handle; reads follow from its position.
    pub fn new(stream: Stream) -> AsyncStream {
        AsyncStream {
            waiter: AsyncWaiter::one_hop(),
            buf: Box::default(),
            start: 0,
            end: 0,
            stream,
        }
    }

    /// The handle. Its position is past what the [`AsyncBufRead`] buffer holds.
    pub fn get_ref(&self) -> &Stream {
        &self.stream
    }

    /// The handle back; bytes read into the buffer but not consumed are dropped.
    pub fn into_inner(self) -> Stream {
        self.stream
    }

    /// Reads what is there now into `buf`, or waits for more: the follower's step. On
    /// `Ready(Ok(n))`, `buf[..n]` is initialised.
    fn poll_follow(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        loop {
            let core = &self.stream.core;
            let c = self.stream.cursor.get_mut();
            let n = core.read_cursor(c, buf)?;
            if n > 0 || buf.is_empty() {
                self.waiter.cancel();
                return Poll::Ready(Ok(n));
            }
            let pos = c.pos;
            match ready!(self.waiter.poll_data(core, pos, cx)) {
                WaitStatus::Ended => return Poll::Ready(Ok(0)),
                WaitStatus::Data | WaitStatus::TimedOut => continue,
            }
        }
    }
}

impl AsyncRead for AsyncStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start < this.end {
            let n = (this.end - this.start).min(out.remaining());
            out.put_slice(&this.buf[this.start..this.start + n]);
            this.start += n;
            return Poll::Ready(Ok(()));
        }
        // SAFETY: `poll_follow` only copies initialised bytes (from the mapping or the
        // kernel) into the buffer, never uninitialised ones.
        let unfilled = unsafe { out.unfilled_mut() };
        let n = ready!(this.poll_follow(cx, unfilled))?;
        // SAFETY: on `Ok(n)` the read initialised the first `n` bytes of the unfilled
        // part (`read_cursor`'s contract).
        unsafe { out.assume_init(n) };
        out.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncStream {
    /// Whether `fill_buf` lends the committed bytes in place (see the crate docs,
    /// "Zero-copy"): an immutable stream, or an attached reader of a lossless ring; and
    /// no copied bytes are left to consume.
    fn in_place(&mut self) -> bool {
        let core = &self.stream.core;
        let c = self.stream.cursor.get_mut();
        self.start == self.end
            && (core.is_immutable()
                || (core.is_ring() && core.is_lossless() && c.own_slot().is_some()))
    }

    /// `poll_fill_buf` in place: the committed bytes at the position, in the mapping.
    fn poll_lend(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let mut ended = false;
        loop {
            let core = &self.stream.core;
            let c = self.stream.cursor.get_mut();
            let (ptr, n) = core.lend(c)?;
            if n > 0 || ended {
                self.waiter.cancel();
                // SAFETY: as for `Stream`'s `BufRead::fill_buf`: `lend` checked that the
                // `n` bytes at `ptr` lie in this handle's window, in the object's
                // verified size, below the committed length, and that no honest writer
                // rewrites them until this handle consumes them; the `AsyncStream` owns
                // its handle, and stays borrowed as long as the slice, so neither
                // happens meanwhile, and the window lives as long as the handle.
                return Poll::Ready(Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), n) }));
            }
            let pos = c.pos;
            match ready!(self.waiter.poll_data(core, pos, cx)) {
                // Bytes committed before the end were seen by the wait: look once more.
                WaitStatus::Ended => ended = true,
                WaitStatus::Data | WaitStatus::TimedOut => {}
            }
        }
    }
}

/// On an immutable stream, and for an attached reader of a lossless ring, `fill_buf`
/// lends the committed bytes in place, in the shared mapping (crate docs,
/// "Zero-copy"); on other streams it copies them into a 64 KiB buffer first.
impl AsyncBufRead for AsyncStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.in_place() {
            return this.poll_lend(cx);
        }
        if this.start == this.end {
            if this.buf.is_empty() {
                this.buf = vec![0; BUF_SIZE].into_boxed_slice();
            }
            let mut buf = std::mem::take(&mut this.buf);
            // SAFETY: the follow read path writes only bytes copied from the stream.
            let r = this.poll_follow(cx, unsafe { crate::sys::uninit(&mut buf) });
            this.buf = buf;
            let n = ready!(r)?;
            this.start = 0;
            this.end = n;
        }
        Poll::Ready(Ok(&this.buf[this.start..this.end]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        if this.in_place() {
            let c = this.stream.cursor.get_mut();
            this.stream.core.consume_clamped(c, amt);
        } else {
            this.start = (this.start + amt).min(this.end);
        }
    }
}

impl AsyncWrite for AsyncStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let core = &this.stream.core;
        if !(core.is_ring() && core.is_lossless()) {
            return Poll::Ready(core.write_cursor(this.stream.cursor.get_mut(), buf));
        }
        loop {
            // Try without waiting: a zero write timeout makes the write fail with
            // `ETIMEDOUT` where it would wait for readers.
            let c = this.stream.cursor.get_mut();
            let timeout = c.writer.write_timeout.replace(Duration::ZERO);
            let r = core.write_cursor(c, buf);
            c.writer.write_timeout = timeout;
            match r {
                Err(e) if errno_of(&e) == libc::ETIMEDOUT => {
                    let n = (buf.len() as u64).min(core.capacity());
                    let need = (core.len() + n).saturating_sub(core.capacity());
                    let own = c.own_slot();
                    ready!(this.waiter.poll_room(core, own, need, cx))?;
                }
                r => {
                    this.waiter.cancel();
                    return Poll::Ready(r);
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Nothing to do: the stream closes when the `AsyncStream` drops.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

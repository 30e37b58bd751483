//! The zero-copy API: [`FollowerMut`] (a follower that reads in place) and
//! [`Reservation`] (bytes written in place, [`Stream::reserve`]). The protocol behind
//! them, and `BufRead` for [`Stream`] and [`Follower`](crate::Follower), are in
//! `inplace.rs`, `stream.rs` and `follow.rs`.

use crate::error::Result;
use crate::follow::{wait_past, DEFAULT_SPIN};
use crate::inplace::{look, Look, Patience};
use crate::stream::Stream;
use std::io::{self, BufRead, Read};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// A blocking reader that holds its [`Stream`] exclusively ([`Stream::follow_mut`]):
/// [`Read`] as a [`Follower`](crate::Follower)'s, and [`BufRead`] in place on immutable streams and, for
/// an attached reader, on lossless rings. [`fill_buf`](BufRead::fill_buf) waits for
/// data (spinning briefly, then sleeping on a futex) and returns an empty slice at
/// end-of-stream (the owner closed or died and every committed byte was consumed);
/// [`consume`](BufRead::consume) moves the position and, on a lossless ring, the
/// reader's slot, so that the writer may overwrite what was consumed.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::{BufRead, Write};
/// let name = format!("/doc-follow-mut-{}", std::process::id());
/// let mut owner = fshm::OpenOptions::new()
///     .ring(4096, fshm::RingPolicy::Lossless)
///     .create(&name)?;
/// let mut guest = fshm::Stream::open(&name)?; // read-write: attached
/// let writer = std::thread::spawn(move || {
///     for i in 0..1000 {
///         writeln!(owner, "line {i}").unwrap(); // waits for the reader
///     }
/// });
/// let lines = guest.follow_mut().lines().count(); // each line parsed in place
/// writer.join().unwrap();
/// assert_eq!(lines, 1000);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FollowerMut<'a> {
    stream: &'a mut Stream,
    spin: Duration,
    timeout: Option<Duration>,
}

impl Stream {
    /// A blocking [`FollowerMut`] reading from this handle's position, which it holds
    /// exclusively while it lives.
    pub fn follow_mut(&mut self) -> FollowerMut<'_> {
        FollowerMut {
            stream: self,
            spin: DEFAULT_SPIN,
            timeout: None,
        }
    }
}

impl FollowerMut<'_> {
    /// How long to poll before sleeping ([`Follower::spin`](crate::Follower::spin)).
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Longest wait for data in one `read` or `fill_buf` ([`Follower::timeout`](crate::Follower::timeout)).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The stream followed.
    pub fn stream(&self) -> &Stream {
        self.stream
    }
}

impl Read for FollowerMut<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let Stream { core, cursor } = &mut *self.stream;
        let c = cursor.get_mut();
        // SAFETY: the view goes only to `read_cursor`, which writes only bytes copied
        // from the stream.
        let buf = unsafe { crate::sys::uninit(buf) };
        loop {
            let n = core.read_cursor(c, buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if wait_past(core, c.pos, deadline, self.spin)? {
                return core.read_cursor(c, buf);
            }
        }
    }
}

/// # Errors
/// As for [`BufRead` for `Stream`](Stream#impl-BufRead-for-Stream); `TimedOut`
/// (`ETIMEDOUT`) past the follower's timeout.
impl BufRead for FollowerMut<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let Stream { core, cursor } = &mut *self.stream;
        let c = cursor.get_mut();
        let mut ended = false;
        loop {
            match look(core, c, ended)? {
                Look::Lent(ptr, n) => {
                    // SAFETY: as for `Stream`'s `fill_buf`: the follower holds the
                    // handle exclusively, and `&mut self` stays borrowed as long as
                    // the slice.
                    return Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), n) });
                }
                Look::Wait(pos) => ended = wait_past(core, pos, deadline, self.spin)?,
            }
        }
    }

    fn consume(&mut self, n: usize) {
        let Stream { core, cursor } = &mut *self.stream;
        core.consume_clamped(cursor.get_mut(), n);
    }
}

/// Space at the end of a stream, reserved by [`Stream::reserve`], to fill in place and
/// [`commit`](Reservation::commit). It dereferences to `[u8]`: the bytes hold whatever
/// was there before (zeros, or older data of a ring), never another handle's bytes in
/// flight. Dropping it commits nothing and releases the space. In a child made by
/// `fork(2)`, the copy of a reservation the parent holds dereferences to an empty
/// slice and cannot commit: the bytes are the parent's to fill.
#[derive(Debug)]
pub struct Reservation<'a> {
    stream: &'a mut Stream,
    ptr: NonNull<u8>,
    len: usize,
    pos: u64,
    /// The process generation (`local.rs`) that made it: a child `fork(2)` made lends
    /// nothing through its copy.
    generation: u64,
}

impl Stream {
    /// Reserves `n` bytes at the end of the stream to fill in place, then
    /// [`commit`](Reservation::commit) in one step, as a write of those bytes would
    /// have committed them: readers see all of the committed part or none of it.
    ///
    /// Works on immutable streams ([`OpenOptions::immutable`](crate::OpenOptions::immutable))
    /// and on rings (at most the capacity at once). Like a write, a reservation on a
    /// lossless ring first waits for attached readers to make room (up to the
    /// [write timeout](Stream::set_write_timeout)). On an immutable stream, and on a
    /// ring for an append handle, the reservation holds the append token until it is
    /// committed or dropped, as an append holds it for its copy: other appenders wait
    /// that long, so fill it and commit promptly. (A reservation is an append whose copy
    /// the caller makes. It cannot let later appends claim the bytes after it: a byte
    /// stream has no frames to skip, so a reservation dropped after them would leave a
    /// hole no reader could tell from data.) A process that dies holding one commits
    /// nothing and blocks nobody (the kernel drops the token).
    ///
    /// In one process, the handles writing a ring are one handle without append mode or
    /// any number in append mode (see "Errors"), so that no two reservations, and no
    /// reservation and write, claim the same bytes. Readers of the ring in this process
    /// that are not attached to a slot do not copy the reserved bytes while the
    /// reservation is open: one whose unread bytes it overwrites gets its overrun at
    /// once (crate docs, "Safety of in-place reads").
    ///
    /// A handle that is also an attached reader of a lossless ring is not held back by
    /// its own slot: a reservation of `n` bytes at position `p` overwrites its unread
    /// bytes below `p + n - capacity`, as its writes do. The reservation gives them up
    /// when it is made: the handle's position moves to at least `p + n - capacity`
    /// (and its slot with it, so other writers may go on), whether the reservation is
    /// then committed, committed with 0 or dropped; a commit moves it to the end of
    /// what it committed, as a write does. To wait less, see
    /// [`try_reserve`](Self::try_reserve) and [`reserve_timeout`](Self::reserve_timeout).
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::BufRead;
    /// let name = format!("/doc-reserve-{}", std::process::id());
    /// let mut owner = fshm::OpenOptions::new().immutable(true).create(&name)?;
    /// let mut r = owner.reserve(8)?;
    /// r[..5].copy_from_slice(b"hello");
    /// r.commit(5)?;                         // the first 5 bytes, in one step
    /// let mut guest = fshm::Stream::open(&name)?;
    /// assert_eq!(guest.fill_buf()?, b"hello");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `PermissionDenied` (`EBADF`) on a read-only handle; `InvalidInput` (`EINVAL`) for
    /// `n == 0`, on a linear stream that is not immutable (other handles may write
    /// anywhere there), and on an immutable stream's handle without append mode that is
    /// not at the end; `FileTooLarge` (`EFBIG`) past the maximum size or the ring's
    /// capacity; `ResourceBusy` (`EBUSY`) on a ring that another handle of this process
    /// writes without append mode, or, for a handle without append mode, that handles of
    /// this process append to (the handle that wrote first keeps the ring until it
    /// closes); `Deadlock` (`EDEADLK`) where a reservation open in this thread on
    /// another handle of the stream holds the append token (waiting for it would never
    /// end; other threads' reservations are waited for); the errors of a write
    /// (`ENOSPC`, `TimedOut`).
    #[inline]
    pub fn reserve(&mut self, n: usize) -> Result<Reservation<'_>> {
        self.reserve_with(n, Patience::Block)
    }

    /// [`reserve`](Self::reserve) without waiting: where it would wait for the append
    /// token (held by another appender or reservation) or for a lossless ring's
    /// readers to make room, it fails with `WouldBlock` (`EAGAIN`) instead, reserving
    /// nothing.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/doc-try-reserve-{}", std::process::id());
    /// let mut owner = fshm::OpenOptions::new().immutable(true).create(&name)?;
    /// let mut other = owner.try_clone()?;
    /// let r = owner.reserve(8)?;                        // holds the append token
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         let e = other.try_reserve(8).unwrap_err(); // held by another thread
    ///         assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    ///     });
    /// });
    /// r.commit(0)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`reserve`](Self::reserve); `WouldBlock` (`EAGAIN`) where it would wait.
    pub fn try_reserve(&mut self, n: usize) -> Result<Reservation<'_>> {
        self.reserve_with(n, Patience::Try)
    }

    /// [`reserve`](Self::reserve), waiting at most `timeout` for the append token and
    /// for a lossless ring's readers to make room (and no longer than the
    /// [write timeout](Stream::set_write_timeout)). The append token is an OFD lock,
    /// which the kernel cannot wait for with a timeout: the wait for it polls, with
    /// naps growing from 100 µs to 10 ms.
    ///
    /// # Errors
    /// As [`reserve`](Self::reserve); `TimedOut` (`ETIMEDOUT`) past the timeout.
    pub fn reserve_timeout(&mut self, n: usize, timeout: Duration) -> Result<Reservation<'_>> {
        let patience = match Instant::now().checked_add(timeout) {
            Some(deadline) => Patience::Until(deadline),
            None => Patience::Block,
        };
        self.reserve_with(n, patience)
    }

    #[inline]
    fn reserve_with(&mut self, n: usize, patience: Patience) -> Result<Reservation<'_>> {
        let ptr = self.core.reserve(self.cursor.get_mut(), n, patience)?;
        let pos = self.cursor.get_mut().in_place.reserved.map_or(0, |r| r.pos);
        Ok(Reservation {
            stream: self,
            ptr,
            len: n,
            pos,
            generation: crate::local::generation(),
        })
    }
}

impl Reservation<'_> {
    /// The reserved length this process may fill: the whole reservation, or 0 for a
    /// child's copy of its parent's (the parent fills those bytes; the child's racing
    /// ring copies do not know of them).
    #[inline]
    fn lendable(&self) -> usize {
        if self.generation == crate::local::generation() {
            self.len
        } else {
            0
        }
    }

    /// The stream position of the first reserved byte.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Commits the first `n` bytes (`n` at most the reservation's length; 0 commits
    /// nothing), publishing them as one write; the handle's position moves past them.
    ///
    /// # Errors
    /// `InvalidInput` (`EINVAL`) if `n` exceeds the reservation; nothing is committed
    /// then.
    #[inline]
    pub fn commit(self, n: usize) -> Result<()> {
        let core = &self.stream.core;
        let c = self.stream.cursor.get_mut();
        // On error the reservation stays open, and `drop` cancels it.
        core.commit_reserved(c, n as u64)
    }

    /// Commits the whole reservation.
    #[inline]
    pub fn commit_all(self) -> Result<()> {
        let n = self.len;
        self.commit(n)
    }
}

impl std::ops::Deref for Reservation<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: as for `deref_mut`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.lendable()) }
    }
}

impl std::ops::DerefMut for Reservation<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: `reserve` checked that the `len` bytes at `ptr` lie in this handle's
        // writable window and in the object's verified (or just allocated) size, and
        // claimed them: on an immutable stream under the append token, which every
        // writer of every process takes; on a ring past the committed length, under the
        // token for an appender, else as this process's only ring writer (`local.rs`:
        // no other handle of this process claims ring bytes while this one lives), and
        // no lossless reader reads them. No descriptor this process hands out can write
        // them (`AsFd`: read-only for rings and immutable streams). Other processes
        // with write access are trusted to follow the protocol (crate docs, "Safety of
        // in-place reads"). This process's racing ring copies stay off the bytes
        // (`local.rs`, "Ring bytes a reservation holds": recorded by `reserve`).
        // A child `fork(2)` made gets 0 bytes through its copy (`lendable`): they are
        // recorded in its parent's `Local`, not its own.
        // `&mut self` borrows the handle, so no second reservation or write of this
        // handle aliases it; shared memory pages always hold initialised bytes (zeros
        // from the kernel or bytes written before), so `[u8]` rather than
        // `[MaybeUninit<u8>]`. The window lives as long as the borrowed handle.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.lendable()) }
    }
}

impl Drop for Reservation<'_> {
    #[inline]
    fn drop(&mut self) {
        self.stream
            .core
            .cancel_reserved(self.stream.cursor.get_mut());
    }
}

//! Zero-copy: committed bytes read in place (`BufRead`) and bytes written in place at
//! the end (`Stream::reserve`), where the protocol guarantees that nobody else writes
//! them meanwhile.
//!
//! **Reading in place** lends committed bytes `[pos, len)` as `&[u8]` only where no
//! honest writer rewrites them while the borrow lasts:
//!
//! - an immutable linear stream (`FLAG_IMMUTABLE`): every write appends under the
//!   append token at the length and no write lands below the length (`linear.rs`),
//!   truncation is refused, so bytes below the length never change;
//! - a lossless ring, for a reader attached to a slot and reading at or past its
//!   `trust_from` (`ring.rs`, "Trusted reads"): the writer overwrites no position at or
//!   past the slot's published position, and the slot moves only when the reader
//!   consumes. The borrow of `&mut Stream` (or of a [`FollowerMut`], which holds one)
//!   keeps every other user of the handle in this process from moving the position,
//!   and so the slot, or detaching while the bytes are lent.
//!
//! `fill_buf` records the end of what it lent (`Cursor::lent_end`); `consume(n)` moves
//! the position (and publishes the slot) by at most that much.
//!
//! **Writing in place** claims the bytes past the length for one handle: on an
//! immutable stream by taking the append token (held until commit or drop, as a write
//! holds it for its copy; the kernel drops it when the process dies), on a ring by the
//! first half of a ring write ([`Core::ring_claim`]: room from lossless readers, `hwm`
//! raised), under the append token for an append handle. `commit(k)` publishes the
//! first `k` bytes as a write does (`len` with release; readers woken).
//!
//! **In one process** the protocol is enforced, not trusted (crate docs, "Safety of
//! in-place reads"): a ring's claims come from one plain writer handle or from
//! appenders (`local.rs`), descriptors handed out are read-only, and a reservation
//! that holds the append token makes another handle's wait for it in the same thread
//! an `EDEADLK`.
//!
//! The protocol over the header's atomics is the one of writes and reads; the only
//! new functions are [`Core::lend`], [`Core::consume_lent`], [`Core::reserve`],
//! [`Core::commit_reserved`] and [`Core::cancel_reserved`].

use crate::error::{invalid, not_fshm, os, Result};
use crate::follow::wait_past;
use crate::follow::{Follower, DEFAULT_SPIN};
use crate::header::LOCK_APPEND;
use crate::stream::{Core, Cursor, Stream};
use crate::sys;
use std::io::{self, BufRead, Read};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a reservation waits for the append token and for a lossless ring's
/// readers to make room.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Patience {
    /// As long as it takes (a lossless ring: up to the handle's write timeout).
    Block,
    /// Not at all: `EAGAIN` where it would wait.
    Try,
    /// Until the deadline (and no longer than a lossless ring's write timeout):
    /// `ETIMEDOUT` past it.
    Until(Instant),
}

/// Runs `claim` (which waits for a lossless ring's readers up to the cursor's write
/// timeout) with that timeout cut to what `patience` allows; `Try` turns the timeout
/// into `EAGAIN`.
fn with_patience<T>(
    core: &Core,
    c: &mut Cursor,
    patience: Patience,
    claim: impl FnOnce(&mut Cursor) -> Result<T>,
) -> Result<T> {
    let allowed = match patience {
        Patience::Block => return claim(c),
        Patience::Try => Duration::ZERO,
        Patience::Until(deadline) => deadline.saturating_duration_since(Instant::now()),
    };
    let saved = c.write_timeout;
    c.write_timeout = Some(saved.map_or(allowed, |t| t.min(allowed)));
    let r = claim(c);
    c.write_timeout = saved;
    match r {
        Err(e) if matches!(patience, Patience::Try) && e.kind() == io::ErrorKind::TimedOut => {
            Err(os(
                core.name(),
                libc::EAGAIN,
                "attached readers have not made room for the reservation",
            ))
        }
        r => r,
    }
}

/// A reservation open on a handle: data bytes `[pos, pos + len)` are its own to fill.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reserved {
    pos: u64,
    len: u64,
    /// Whether it holds the append token (released at commit or cancel).
    locked: bool,
    /// The process generation (`local.rs`) that took the token. A child `fork(2)` made
    /// shares the token's open file description with its parent: its copy of the
    /// reservation must not unlock the parent's token when it goes.
    generation: u64,
}

impl Core {
    /// The error for an operation that would rewrite an immutable stream's bytes.
    pub(crate) fn immutable_error(&self, what: String) -> io::Error {
        invalid(
            self.name(),
            format!("immutable stream: committed bytes are never rewritten: {what}"),
        )
    }

    /// Immutable streams: a handle without append mode writes only at the end. Called
    /// under the append token with the length `len`.
    pub(crate) fn check_immutable_end(&self, c: &Cursor, len: u64) -> Result<()> {
        if self.is_immutable() && !self.append && c.pos != len {
            return Err(self.immutable_error(format!(
                "a write at position {} is not at the end ({len}); open with append to \
                 write at the end wherever the position stands",
                c.pos
            )));
        }
        Ok(())
    }

    pub(crate) fn reservation_open(&self) -> io::Error {
        os(
            self.name(),
            libc::EBUSY,
            "a reservation is open on this handle: commit or drop it first",
        )
    }

    fn not_in_place(&self) -> io::Error {
        invalid(
            self.name(),
            "the bytes of this stream may change under a reader: in-place reads need an \
             immutable stream or an attached reader of a lossless ring",
        )
    }

    /// The committed bytes at the position that this handle may lend in place: the
    /// address of the byte at the position and how many follow it (0 at the end). The
    /// position does not move; [`consume_lent`](Self::consume_lent) moves it.
    ///
    /// # Errors
    /// `InvalidInput` where the bytes may change (module docs), for a reader of a
    /// lossless ring that moved back past bytes a writer may overwrite, and once after
    /// a `consume` past what was lent; a malformed header as for a read.
    pub(crate) fn lend(&self, c: &mut Cursor) -> Result<(NonNull<u8>, usize)> {
        if let Some((asked, lent)) = c.overconsumed.take() {
            return Err(invalid(
                self.name(),
                format!("consume({asked}) past the {lent} bytes fill_buf lent"),
            ));
        }
        let pos = c.pos;
        let window = self.window()?;
        let (off, n) = if self.is_ring() {
            if !self.is_lossless() || c.own_slot().is_none() {
                return Err(self.not_in_place());
            }
            if pos < c.trust_from {
                return Err(invalid(
                    self.name(),
                    format!(
                        "this reader moved back to {pos}: bytes below {} may be overwritten \
                         before it reads them; read them with read()",
                        c.trust_from
                    ),
                ));
            }
            let cap = self.capacity();
            let len = self.header().len.load(Ordering::Acquire);
            // An attached reader is never more than a capacity behind; a hostile
            // header claiming more is cut to what the window holds from `pos % cap`.
            let n = len.saturating_sub(pos).min(cap);
            self.ensure_readable(c, cap)?;
            (pos % cap, n)
        } else {
            if !self.is_immutable() {
                return Err(self.not_in_place());
            }
            let len = self.checked_len()?;
            let n = len.saturating_sub(pos);
            if n > 0 {
                self.ensure_readable(c, len)?;
            }
            (pos.min(len), n)
        };
        let Ok(n) = usize::try_from(n) else {
            return Err(not_fshm(self.name(), "malformed header (length)"));
        };
        c.lent_end = Some(pos + n as u64);
        let ptr = NonNull::new(window.data_ptr_wrapping(off)).expect("a mapping is never at 0");
        Ok((ptr, n))
    }

    /// Moves the position past `n` bytes that [`lend`](Self::lend) lent, and publishes
    /// a lossless reader's slot (the writer may then overwrite them).
    ///
    /// # Errors
    /// `InvalidInput` if `n` exceeds the bytes lent at the position; nothing moves then.
    pub(crate) fn consume_lent(&self, c: &mut Cursor, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let lent = c.lent_end.map_or(0, |end| end.saturating_sub(c.pos));
        if n > lent {
            return Err(invalid(
                self.name(),
                format!(
                    "consume({n}) past the {lent} bytes lent at position {}",
                    c.pos
                ),
            ));
        }
        c.pos += n;
        if c.own_slot().is_some() {
            self.publish_slot(c);
        }
        Ok(())
    }

    /// `BufRead::consume`: as [`consume_lent`](Self::consume_lent), but a request past
    /// what was lent consumes what was lent and leaves the error for the next `fill_buf`.
    pub(crate) fn consume_clamped(&self, c: &mut Cursor, n: usize) {
        let n = n as u64;
        if self.consume_lent(c, n).is_err() {
            let lent = c.lent_end.map_or(0, |end| end.saturating_sub(c.pos));
            let _ = self.consume_lent(c, lent);
            c.overconsumed = Some((n, lent));
        }
    }

    /// Claims `n` bytes at the end for this handle to fill in place; returns their
    /// address in the mapping. See the module docs. `patience` says how long to wait
    /// for the append token and, on a lossless ring, for readers to make room.
    ///
    /// # Errors
    /// `EBADF` on a read-only handle; `EBUSY` if a reservation is open on the handle,
    /// and for a ring where another handle of this process writes (`local.rs`);
    /// `EDEADLK` if a reservation of this thread holds the append token through another
    /// handle; `InvalidInput` for `n == 0`, on a linear stream that is not immutable, and
    /// where a write would be refused (an immutable stream's handle not at the end);
    /// `FileTooLarge` (`EFBIG`) past the maximum size or the ring's capacity; `EAGAIN`
    /// (`Patience::Try`) or `ETIMEDOUT` (`Patience::Until`, and a lossless ring's write
    /// timeout) where it would wait longer; and the errors of a write (`ENOSPC`).
    #[inline]
    pub(crate) fn reserve(
        &self,
        c: &mut Cursor,
        n: usize,
        patience: Patience,
    ) -> Result<NonNull<u8>> {
        if !self.writable {
            return Err(self.ebadf());
        }
        if c.reserved.is_some() {
            return Err(self.reservation_open());
        }
        if n == 0 {
            return Err(invalid(self.name(), "a reservation of 0 bytes"));
        }
        let n = n as u64;
        if !self.is_ring() && !self.is_immutable() {
            return Err(invalid(
                self.name(),
                "in-place writes need an immutable stream or a ring: other handles may \
                 write anywhere in this stream",
            ));
        }
        if self.is_ring() && n > self.capacity() {
            return Err(self.past_ring_capacity("a reservation", n));
        }
        if self.is_ring() {
            self.join_ring_writers()?;
        }
        if self.is_ring() && !self.append {
            // The lock-free ring writer (the only one of this process): no token to take
            // or give back.
            let pos = with_patience(self, c, patience, |c| self.ring_claim(c, n))?;
            self.open_ring_reservation(pos, n)?;
            return self.reserved_at(c, pos, pos % self.capacity(), n, false);
        }
        let lock = self.lock_object()?;
        self.take_append_token(lock, patience)?;
        let claimed = with_patience(self, c, patience, |c| self.claim_locked(c, n));
        let claimed = match claimed {
            Ok((pos, _)) if self.is_ring() => self.open_ring_reservation(pos, n).and(claimed),
            r => r,
        };
        match claimed {
            Ok((pos, off)) => {
                if let Ok(local) = self.local() {
                    local.token_taken_by_reservation();
                }
                self.reserved_at(c, pos, off, n, true)
            }
            Err(e) => {
                let _ = sys::ofd_unlock(lock, LOCK_APPEND);
                Err(e)
            }
        }
    }

    /// Takes the append token for a reservation, waiting as `patience` allows.
    fn take_append_token(
        &self,
        lock: std::os::fd::BorrowedFd<'_>,
        patience: Patience,
    ) -> Result<()> {
        let took = |e| os(self.name(), e, "cannot take the append lock");
        // `EDEADLK` where the token is held by a reservation of this very thread, before
        // `Try` could call it merely busy.
        self.check_token_wait()?;
        let deadline = match patience {
            Patience::Block => return sys::ofd_lock_wait(lock, LOCK_APPEND).map_err(took),
            Patience::Try => None,
            Patience::Until(deadline) => Some(deadline),
        };
        // `fcntl` has no timed wait for a lock: poll, with naps growing as a read-only
        // waiter's do (`wait.rs`).
        let mut nap = Duration::from_micros(100);
        loop {
            if sys::ofd_try_lock(lock, LOCK_APPEND).map_err(took)? {
                return Ok(());
            }
            let Some(deadline) = deadline else {
                return Err(os(
                    self.name(),
                    libc::EAGAIN,
                    "another writer holds the append token",
                ));
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(os(
                    self.name(),
                    libc::ETIMEDOUT,
                    "another writer held the append token past the timeout",
                ));
            }
            std::thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// Under the append token: claims `n` bytes at the end (a ring's, or an immutable
    /// stream's). Returns their position and data offset.
    fn claim_locked(&self, c: &mut Cursor, n: u64) -> Result<(u64, u64)> {
        if self.is_ring() {
            let pos = self.ring_claim(c, n)?;
            return Ok((pos, pos % self.capacity()));
        }
        let pos = self.checked_len()?;
        self.check_immutable_end(c, pos)?;
        let end = match pos.checked_add(n) {
            Some(end) if end <= self.layout.max_size => end,
            _ => return Err(self.efbig()),
        };
        self.ensure_capacity(c, end)?;
        // Nothing at or past `hwm` was ever written (`linear.rs`, gaps): these bytes
        // may be from now on.
        c.hwm_seen = crate::linear::raise_hwm(self.header(), end, c.hwm_seen);
        Ok((pos, pos))
    }

    /// Ring: records the claimed positions `[pos, pos + n)` as this process's open
    /// reservation (`local.rs`, "Ring bytes a reservation holds") before they are lent:
    /// from then on this process's racing copies leave them alone. The claim raised
    /// `hwm` to `pos + n` before this.
    #[inline]
    fn open_ring_reservation(&self, pos: u64, n: u64) -> Result<()> {
        self.with_local(|local| local.ring_reservation.open(pos, pos + n))
    }

    /// Records the reservation of `[pos, pos + len)` at data offset `off`.
    #[inline]
    fn reserved_at(
        &self,
        c: &mut Cursor,
        pos: u64,
        off: u64,
        len: u64,
        locked: bool,
    ) -> Result<NonNull<u8>> {
        c.reserved = Some(Reserved {
            pos,
            len,
            locked,
            generation: crate::local::generation(),
        });
        let ptr = self.window()?.data_ptr_wrapping(off);
        Ok(NonNull::new(ptr).expect("a mapping is never at 0"))
    }

    /// Commits the first `k` bytes of the open reservation (0: none) and closes it.
    ///
    /// # Errors
    /// `InvalidInput` if no reservation is open, or `k` exceeds it (the reservation then
    /// stays open), and in a child `fork(2)` made for its copy of the parent's open
    /// reservation (which then closes, committing nothing).
    #[inline]
    pub(crate) fn commit_reserved(&self, c: &mut Cursor, k: u64) -> Result<()> {
        let Some(r) = c.reserved else {
            return Err(invalid(
                self.name(),
                "no reservation is open on this handle",
            ));
        };
        if r.generation != crate::local::generation() {
            // A copy `fork(2)` made of the parent's open reservation: the bytes are the
            // parent's to fill and commit. The copy closes, committing nothing.
            c.reserved = None;
            return Err(invalid(
                self.name(),
                "this reservation was opened by the parent process before fork(2): only \
                 the parent may commit it",
            ));
        }
        if k > r.len {
            return Err(invalid(
                self.name(),
                format!("commit of {k} bytes past the reservation of {}", r.len),
            ));
        }
        c.reserved = None;
        if k > 0 {
            let end = r.pos + k;
            if self.is_ring() {
                self.ring_publish(c, r.pos, end);
            } else {
                self.commit(end);
                c.pos = end;
            }
        }
        self.release(r);
        Ok(())
    }

    /// Closes the open reservation, if any, committing nothing.
    #[inline]
    pub(crate) fn cancel_reserved(&self, c: &mut Cursor) {
        if let Some(r) = c.reserved.take() {
            self.release(r);
        }
    }

    fn release(&self, r: Reserved) {
        if self.is_ring() && r.generation == crate::local::generation() {
            // After the caller's stores to the bytes (the reservation was borrowed
            // mutably until now): a racing copy that takes the lock next sees them.
            let _ = self.with_local(|local| local.ring_reservation.close());
        }
        // In a forked child, an inherited reservation's token is the parent's: the
        // child's copy goes without unlocking it.
        if r.locked && r.generation == crate::local::generation() {
            if let Ok(local) = self.local() {
                local.token_released_by_reservation();
            }
            if let Ok(lock) = self.lock_object() {
                let _ = sys::ofd_unlock(lock, LOCK_APPEND);
            }
        }
    }
}

/// Reads in place: [`fill_buf`](BufRead::fill_buf) returns the committed bytes at the
/// handle's position as they lie in the shared mapping (empty at the end; it does not
/// wait — see [`Follower`] for that), [`consume`](BufRead::consume) moves the position.
/// So `lines()`, `read_until()` and parsers read the stream without a copy.
///
/// Only where no honest writer rewrites the bytes lent: on an immutable stream
/// ([`OpenOptions::immutable`](crate::OpenOptions::immutable)), and on a lossless ring
/// for a handle attached to a reader slot (a guest opened read-write; see
/// [`Stream::attach`]), whose slot moves on `consume`, not before: the writer waits
/// for it as for a `read`. The borrow of `&mut self` holds the bytes in place.
///
/// # Errors
/// `fill_buf` fails with `InvalidInput` on any other stream or handle (its bytes may
/// change under a reader); on a ring reader that moved back (a seek) over bytes a
/// writer may already overwrite; and once after a `consume(n)` past the bytes the last
/// `fill_buf` lent, which consumed only those. See the crate docs, "Zero-copy", for the
/// trust boundary that remains.
impl BufRead for Stream {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let (ptr, n) = self.core.lend(self.cursor.get_mut())?;
        // SAFETY: `lend` checked that the `n` bytes at `ptr` lie in this handle's
        // window, in the object's verified size, below the committed length (which only
        // grows for these streams), and that no honest writer rewrites them until this
        // handle consumes them or is dropped; `&mut self` stays borrowed as long as the
        // slice, so neither happens meanwhile, and the window lives as long as `self`.
        // In this process every writer is honest: no descriptor handed out can write
        // these streams (`AsFd`), and a ring's claims come from one writer (`local.rs`);
        // other processes with write access are trusted (crate docs, "Safety of
        // in-place reads"). Shared memory pages always hold initialised bytes.
        Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), n) })
    }

    fn consume(&mut self, n: usize) {
        self.core.consume_clamped(self.cursor.get_mut(), n);
    }
}

/// A shared follower reads an immutable stream in place as its handle does (see
/// [`BufRead` for `Stream`](Stream#impl-BufRead-for-Stream)), but
/// [`fill_buf`](BufRead::fill_buf) waits for data like [`Read::read`] does, and
/// returns an empty slice at end-of-stream (the owner closed or died and every
/// committed byte was consumed).
///
/// On a ring use [`FollowerMut`] ([`Stream::follow_mut`]): a follower made by
/// [`Stream::follow`] shares its handle, whose position (and so the slot that holds the
/// writer back) other users could move while bytes are lent.
///
/// # Errors
/// As for `Stream`; `InvalidInput` on a ring; `TimedOut` (`ETIMEDOUT`) past the
/// follower's timeout.
impl BufRead for Follower<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let core = &self.stream.core;
        if core.is_ring() {
            return Err(invalid(
                core.name(),
                "a shared follower of a ring cannot read in place: use Stream::follow_mut",
            ));
        }
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let mut ended = false;
        loop {
            match look(core, &mut self.stream.cursor.lock(), ended)? {
                Look::Lent(ptr, n) => {
                    // SAFETY: as for `Stream`'s `fill_buf`; on an immutable stream the
                    // bytes never change whoever moves the position, and the window
                    // lives as long as the stream.
                    return Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), n) });
                }
                Look::Wait(pos) => ended = wait_past(core, pos, deadline, self.spin)?,
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.stream
            .core
            .consume_clamped(&mut self.stream.cursor.lock(), n);
    }
}

/// What a follower's look at its position found.
enum Look {
    /// Bytes lent (or, at the end of the stream, none).
    Lent(NonNull<u8>, usize),
    /// Nothing yet at this position: wait for data past it.
    Wait(u64),
}

/// One look of a waiting `fill_buf`: lends the bytes at the position, or (none there,
/// the stream not ended) says where to wait.
fn look(core: &Core, c: &mut Cursor, ended: bool) -> Result<Look> {
    let (ptr, n) = core.lend(c)?;
    Ok(if n > 0 || ended {
        Look::Lent(ptr, n)
    } else {
        Look::Wait(c.pos)
    })
}

/// A blocking reader that holds its [`Stream`] exclusively ([`Stream::follow_mut`]):
/// [`Read`] as a [`Follower`]'s, and [`BufRead`] in place on immutable streams and, for
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
    /// How long to poll before sleeping ([`Follower::spin`]).
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Longest wait for data in one `read` or `fill_buf` ([`Follower::timeout`]).
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
        let pos = self.cursor.get_mut().reserved.map_or(0, |r| r.pos);
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

//! Zero-copy's protocol on [`Core`]: committed bytes read in place (`BufRead`) and
//! bytes written in place at the end (`Stream::reserve`), where the protocol
//! guarantees that nobody else writes them meanwhile. The public types are in
//! `zerocopy.rs`.
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
//! `fill_buf` records the end of what it lent (`InPlaceState::lent_end`); `consume(n)` moves
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
use crate::handle::{Core, Cursor, Reserved};
use crate::header::LOCK_APPEND;
use crate::sys;
use std::io;
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
    let saved = c.writer.write_timeout;
    c.writer.write_timeout = Some(saved.map_or(allowed, |t| t.min(allowed)));
    let r = claim(c);
    c.writer.write_timeout = saved;
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

impl Core {
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
        if let Some((asked, lent)) = c.in_place.overconsumed.take() {
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
            if pos < c.reader.trust_from {
                return Err(invalid(
                    self.name(),
                    format!(
                        "this reader moved back to {pos}: bytes below {} may be overwritten \
                         before it reads them; read them with read()",
                        c.reader.trust_from
                    ),
                ));
            }
            let cap = self.capacity();
            let len = self.header().len.load(Ordering::Acquire);
            if pos < self.header().floor.load(Ordering::Relaxed) {
                // Skipped positions (`skip_to`): never lent as data.
                return Err(self.overrun(c, pos, 0));
            }
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
        c.in_place.lent_end = Some(pos + n as u64);
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
        let lent = c
            .in_place
            .lent_end
            .map_or(0, |end| end.saturating_sub(c.pos));
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
            let lent = c
                .in_place
                .lent_end
                .map_or(0, |end| end.saturating_sub(c.pos));
            let _ = self.consume_lent(c, lent);
            c.in_place.overconsumed = Some((n, lent));
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
        if c.in_place.reserved.is_some() {
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
        c.in_place.reserved = Some(Reserved {
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
        let Some(r) = c.in_place.reserved else {
            return Err(invalid(
                self.name(),
                "no reservation is open on this handle",
            ));
        };
        if r.generation != crate::local::generation() {
            // A copy `fork(2)` made of the parent's open reservation: the bytes are the
            // parent's to fill and commit. The copy closes, committing nothing.
            c.in_place.reserved = None;
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
        c.in_place.reserved = None;
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
        if let Some(r) = c.in_place.reserved.take() {
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

/// What a follower's look at its position found.
pub(crate) enum Look {
    /// Bytes lent (or, at the end of the stream, none).
    Lent(NonNull<u8>, usize),
    /// Nothing yet at this position: wait for data past it.
    Wait(u64),
}

/// One look of a waiting `fill_buf`: lends the bytes at the position, or (none there,
/// the stream not ended) says where to wait.
pub(crate) fn look(core: &Core, c: &mut Cursor, ended: bool) -> Result<Look> {
    let (ptr, n) = core.lend(c)?;
    Ok(if n > 0 || ended {
        Look::Lent(ptr, n)
    } else {
        Look::Wait(c.pos)
    })
}

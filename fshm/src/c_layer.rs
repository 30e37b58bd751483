//! What the C API's buffered `FILE*` needs beyond `std::io`, for `fshm-ffi` only: hidden
//! from the docs and outside the stable API.
//!
//! **Fd coherence.** The layer hands the stream's fd to its users beside the buffered
//! stream (the one `AsFd` gives: read-only on a ring or an immutable stream), and keeps
//! the fd's offset at `DATA_OFFSET + position`. Before each operation
//! it calls [`CLayer::absorb_fd_offset`]: if the fd's offset moved (the user called
//! `read`, `write` or `lseek` on the fd), the position follows it, and if it moved past
//! the committed length over bytes that exist in the object, those bytes were written
//! through the fd and join the length. After each operation it calls
//! [`CLayer::sync_fd_offset`].
//!
//! **In place.** The layer reads committed bytes of a linear stream straight out of the
//! handle's mapping ([`CLayer::in_place`]) instead of copying them into a buffer of its
//! own first. Everything a read checks is checked there too (the committed length, the
//! object's size behind it).

use crate::error::{invalid, os, Result};
use crate::handle::WaitStatus;
use crate::header::DATA_OFFSET;
use crate::stream::Stream;
use crate::sys;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;

/// Runs `f` on the C layer's table of the `FILE*`s it made (`FILE` address → its
/// cookie's address), locked. The core's fork handlers lock it across `fork(2)`, so a
/// child forked while another thread held it finds it free (its inherited `FILE*`s keep
/// working); the lock is reentrant, so `pthread_atfork` handlers of the program that run
/// inside the fork may use the C API. `f` must not use the table again.
pub fn with_file_table<R>(f: impl FnOnce(&mut std::collections::BTreeMap<usize, usize>) -> R) -> R {
    crate::local::with_file_table(f)
}

/// Copies `dst.len()` bytes at `src`, in a handle's mapping, with the per-byte-atomic
/// copy that fshm's own racing reads use (relaxed atomic loads, `window.rs`): for
/// bytes another handle may overwrite meanwhile, which a plain copy would race with.
///
/// # Safety
/// `src .. src + dst.len()` must lie in a live handle's mapping, in bytes the object
/// holds (such as an [`InPlace`] range), for the whole copy.
pub unsafe fn copy_from_mapping(src: *const u8, dst: &mut [MaybeUninit<u8>]) {
    // SAFETY: the caller's promise.
    unsafe { crate::window::copy_shared(src, dst) }
}

/// Committed bytes of a linear stream, in place in a handle's mapping
/// ([`Stream::in_place`]).
#[derive(Debug, Clone, Copy)]
pub struct InPlace {
    /// Address of the byte at [`pos`](InPlace::pos) in the handle's mapping.
    pub ptr: *const u8,
    /// Committed bytes from `ptr` on (0: nothing to read at `pos`).
    pub len: usize,
    /// The handle's position, whose byte `ptr` addresses.
    pub pos: u64,
}

/// The C layer's operations on a handle.
pub trait CLayer {
    /// Takes in what was done through the fd since the last
    /// [`sync_fd_offset`](CLayer::sync_fd_offset): the position follows the fd's
    /// offset, and bytes written through the fd past the committed length join it.
    /// Returns the position.
    fn absorb_fd_offset(&self) -> Result<u64>;

    /// Moves the fd's offset to `DATA_OFFSET + position` (no system call when the last
    /// operation left it there: a large write at the fd's offset moves it along).
    fn sync_fd_offset(&self) -> Result<()>;

    /// The committed bytes at the handle's position, in place: the address of the byte
    /// at the position in this handle's mapping and how many committed bytes follow it
    /// (at most `max`). The position does not move. With `wait`, waits first until there
    /// is data there or the owner has closed or died (then `len` is 0), like a
    /// [`Follower`](crate::Follower).
    ///
    /// The bytes stay mapped while the handle lives, and committed bytes are never
    /// taken away (the object never shrinks); other processes may still overwrite them,
    /// as they may any committed bytes, so read them with raw copies, never through a
    /// Rust reference. For linear streams only: a ring reuses its pages, and its reads
    /// must check for overruns after copying.
    ///
    /// # Errors
    /// `InvalidInput` on a ring stream; otherwise as a read.
    fn in_place(&self, max: usize, wait: bool) -> Result<InPlace>;

    /// The stream position whose byte this handle's mapping holds at `ptr`, if `ptr`
    /// points into the data part of the mapping (or one past its end).
    fn position_in_window(&self, ptr: *const u8) -> Option<u64>;

    /// Whether `ptr .. ptr + len` overlaps the data part of this handle's mapping.
    fn overlaps_window(&self, ptr: *const u8, len: usize) -> bool;

    /// `Read::read` into memory that may be uninitialised (stdio's buffers); with
    /// `follow`, as a [`Follower`](crate::Follower) with its defaults. On `Ok(n)`,
    /// `buf[..n]` is initialised.
    fn read_uninit(&self, buf: &mut [MaybeUninit<u8>], follow: bool) -> Result<usize>;

    /// `fshm_read_in_place`: the committed bytes at the position that the handle may
    /// lend (`BufRead::fill_buf`'s rule, `inplace.rs`); with `wait`, waits first for
    /// data or end-of-stream like a [`Follower`](crate::Follower). The bytes stay as
    /// they are until the handle consumes them, moves its position otherwise, or closes.
    fn lend_in_place(&self, wait: bool) -> Result<InPlace>;

    /// `fshm_consume`: moves the position past `n` of the bytes last lent.
    fn consume_in_place(&self, n: usize) -> Result<()>;

    /// `fshm_reserve`, `fshm_reserve_timeout`: reserves `n` bytes at the end
    /// ([`Stream::reserve`]'s rule); returns their address in the mapping. `timeout`:
    /// `None` waits as [`Stream::reserve`], `Some(ZERO)` not at all
    /// ([`Stream::try_reserve`]), else at most that long ([`Stream::reserve_timeout`]).
    fn reserve_in_place(&self, n: usize, timeout: Option<std::time::Duration>) -> Result<*mut u8>;

    /// `fshm_commit`: commits the first `n` bytes of the open reservation and closes it.
    fn commit_in_place(&self, n: usize) -> Result<()>;
}

impl CLayer for Stream {
    fn read_uninit(&self, buf: &mut [MaybeUninit<u8>], follow: bool) -> Result<usize> {
        if follow {
            self.follow().read_uninit(buf)
        } else {
            self.core.read_cursor(&mut self.cursor.lock(), buf)
        }
    }

    fn absorb_fd_offset(&self) -> Result<u64> {
        let s = &self.core;
        let mut c = self.cursor.lock();
        let off =
            sys::lseek(self.as_fd(), 0, libc::SEEK_CUR).map_err(|e| os(s.name(), e, "lseek"))?;
        c.c_layer.fd_at = off.checked_sub(DATA_OFFSET);
        if off == DATA_OFFSET + c.pos || off < DATA_OFFSET {
            return Ok(c.pos);
        }
        let pos = off - DATA_OFFSET;
        if s.is_ring() {
            // As a seek: a ring reader moved back no longer lends what writers may
            // already overwrite (`trust_from`), and its slot follows the position. A
            // position the ring does not hold fails this call once; the fd's offset
            // goes back to the position.
            if let Err(e) = s.seek_cursor(&mut c, std::io::SeekFrom::Start(pos)) {
                let back = (DATA_OFFSET + c.pos).min(i64::MAX as u64) as i64;
                if sys::lseek(self.as_fd(), back, libc::SEEK_SET).is_ok() {
                    c.c_layer.fd_at = Some(c.pos);
                }
                return Err(e);
            }
            return Ok(pos);
        }
        c.pos = pos;
        // Bytes join only where the fd handed out can write them: not on a ring or an
        // immutable stream, whose fd is read-only (an immutable stream takes bytes in
        // only through appends under the append token, a ring only through its writers).
        if s.writable && !s.hands_out_own_fd() {
            let len = s.checked_len()?;
            let end = pos.min(s.layout.max_size);
            // Commit only bytes that exist in the object: an lseek past the end wrote
            // nothing.
            if end > len && s.ensure_readable(&mut c, end).is_ok() {
                // The real header, not the stand-in of a handle that could not map.
                let h = s.window()?.header();
                c.hwm_seen = crate::linear::raise_hwm(h, end, c.hwm_seen);
                s.commit(end);
            }
        }
        Ok(pos)
    }

    fn sync_fd_offset(&self) -> Result<()> {
        let mut c = self.cursor.lock();
        if c.c_layer.fd_at == Some(c.pos) {
            return Ok(());
        }
        let off = (DATA_OFFSET + c.pos).min(i64::MAX as u64) as i64;
        c.c_layer.fd_at = None;
        sys::lseek(self.as_fd(), off, libc::SEEK_SET)
            .map_err(|e| os(self.core.name(), e, "lseek"))?;
        c.c_layer.fd_at = Some(c.pos);
        Ok(())
    }

    fn in_place(&self, max: usize, wait: bool) -> Result<InPlace> {
        let s = &self.core;
        if s.is_ring() {
            return Err(invalid(s.name(), "a ring's bytes cannot be read in place"));
        }
        if wait {
            let pos = self.position();
            // Without a deadline a wait does not time out; Ended finds no data below.
            while s.wait_until(pos, None, crate::DEFAULT_SPIN) == WaitStatus::TimedOut {}
        }
        let mut c = self.cursor.lock();
        let pos = c.pos;
        let window = s.window()?;
        let len = s.checked_len()?;
        let n = if pos >= len {
            0
        } else {
            (len - pos).min(max as u64)
        };
        if n > 0 {
            s.ensure_readable(&mut c, pos + n)?;
        }
        Ok(InPlace {
            ptr: window.data_ptr_wrapping(pos),
            len: n as usize,
            pos,
        })
    }

    fn lend_in_place(&self, wait: bool) -> Result<InPlace> {
        let s = &self.core;
        loop {
            let pos = {
                let mut c = self.cursor.lock();
                let (ptr, len) = s.lend(&mut c)?;
                if len > 0 || !wait {
                    return Ok(InPlace {
                        ptr: ptr.as_ptr(),
                        len,
                        pos: c.pos,
                    });
                }
                c.pos
            };
            if s.wait_until(pos, None, crate::DEFAULT_SPIN) == WaitStatus::Ended {
                let mut c = self.cursor.lock();
                let (ptr, len) = s.lend(&mut c)?;
                return Ok(InPlace {
                    ptr: ptr.as_ptr(),
                    len,
                    pos: c.pos,
                });
            }
        }
    }

    fn consume_in_place(&self, n: usize) -> Result<()> {
        self.core.consume_lent(&mut self.cursor.lock(), n as u64)
    }

    fn reserve_in_place(&self, n: usize, timeout: Option<std::time::Duration>) -> Result<*mut u8> {
        use crate::inplace::Patience;
        let patience = match timeout {
            None => Patience::Block,
            Some(t) if t.is_zero() => Patience::Try,
            Some(t) => std::time::Instant::now()
                .checked_add(t)
                .map_or(Patience::Block, Patience::Until),
        };
        Ok(self
            .core
            .reserve(&mut self.cursor.lock(), n, patience)?
            .as_ptr())
    }

    fn commit_in_place(&self, n: usize) -> Result<()> {
        self.core.commit_reserved(&mut self.cursor.lock(), n as u64)
    }

    fn position_in_window(&self, ptr: *const u8) -> Option<u64> {
        let w = self.core.mapped_window()?;
        let base = w.data_ptr_wrapping(0) as usize;
        let p = ptr as usize;
        let off = p.checked_sub(base)? as u64;
        (off <= w.data_len()).then_some(off)
    }

    fn overlaps_window(&self, ptr: *const u8, len: usize) -> bool {
        let Some(w) = self.core.mapped_window() else {
            return false;
        };
        let base = w.data_ptr_wrapping(0) as usize;
        let end = base.saturating_add(w.data_len() as usize);
        let p = ptr as usize;
        p < end && p.saturating_add(len) > base
    }
}

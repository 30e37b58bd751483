//! Linear streams: a file in memory that grows as it is written, up to its maximum size.
//!
//! Reads copy committed bytes out of the mapping, or through the kernel (`pread`) where
//! that is faster or where the object's size is not yet verified; writes land at any
//! position, extend the length, and clear the gap a write past the length leaves;
//! appends serialise on the append token of the lock object (`liveness.rs`). Growth
//! reserves memory before it is touched (`grow.rs`), so a full `/dev/shm` is `ENOSPC`,
//! never `SIGBUS`.

use crate::error::{invalid, not_fshm, os, Result};
use crate::grow;
use crate::handle::{Core, Cursor};
use crate::header::{Header, DATA_OFFSET, LOCK_APPEND};
use crate::sys;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

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

    /// Reads committed bytes of a linear stream at `pos`.
    pub(crate) fn linear_read(
        &self,
        c: &mut Cursor,
        pos: u64,
        buf: &mut [MaybeUninit<u8>],
    ) -> Result<usize> {
        let len = self.checked_len()?;
        if pos >= len || buf.is_empty() {
            return Ok(0);
        }
        let n = (len - pos).min(buf.len() as u64);
        let buf = &mut buf[..n as usize];
        let end = DATA_OFFSET + pos + n;
        // The copy rule (see `grow`): large reads through the kernel, and so are reads
        // past the object size this handle verified — `pread` cannot fault, so a
        // follower right behind the writer need not ask the kernel for the size first.
        if buf.len() >= grow::KERNEL_READ_MIN || end > c.verified {
            return match sys::pread_exact_uninit(self.fd.as_fd(), buf, DATA_OFFSET + pos) {
                Ok(()) => {
                    c.verified = c.verified.max(end);
                    Ok(n as usize)
                }
                // Short: the length claims bytes the object does not hold.
                Err(libc::EIO) => Err(not_fshm(
                    self.name(),
                    "malformed header (length beyond the object's size)",
                )),
                Err(e) => Err(os(self.name(), e, "cannot read")),
            };
        }
        // SAFETY: `pos + n <= len <= max_size` (inside the window) and the object holds
        // `DATA_OFFSET + pos + n` bytes (verified). Committed bytes may be overwritten by
        // another handle meanwhile (as a file's may), so the copy is the shared one.
        unsafe { self.window()?.read_shared(pos, buf) };
        Ok(n as usize)
    }

    /// Makes sure object bytes up to `DATA_OFFSET + end` exist, growing the object if
    /// needed (see [`crate::grow`]).
    pub(crate) fn ensure_capacity(&self, c: &mut Cursor, end: u64) -> Result<()> {
        let need = DATA_OFFSET + end;
        if need <= c.verified {
            return Ok(());
        }
        let n = self.name();
        let h = self.header();
        let hint = h.alloc.load(Ordering::Acquire);
        if hint >= end {
            let st = sys::fstat(self.fd.as_fd()).map_err(|e| os(n, e, "fstat"))?;
            c.verified = c.verified.max(st.size);
            if need <= c.verified {
                return Ok(());
            }
        }
        let page = sys::page_size();
        let from = c.verified;
        let have = from.saturating_sub(DATA_OFFSET);
        let mut to = grow::step_target(have, end, self.layout.max_size, page);
        if let Err(e) = sys::fallocate(self.fd.as_fd(), from, to - from) {
            if e != libc::ENOSPC {
                return Err(os(n, e, "cannot grow"));
            }
            to = grow::exact_target(end, self.layout.max_size, page);
            sys::fallocate(self.fd.as_fd(), from, to - from)
                .map_err(|e| os(n, e, "cannot grow: no space left in /dev/shm"))?;
        }
        c.verified = to;
        h.alloc.fetch_max(to - DATA_OFFSET, Ordering::AcqRel);
        // SAFETY: this handle reserved object bytes up to `to` just above, and only
        // writable handles grow (their mappings are writable).
        unsafe { self.window()?.populate(from, to) };
        Ok(())
    }

    pub(crate) fn write_locked(&self, c: &mut Cursor, pos: u64, buf: &[u8]) -> Result<usize> {
        self.window()?;
        self.write_with(c, pos, buf, false)
    }

    /// Writes at `pos`; `appending` writes run the test hook between copy and commit.
    fn write_with(&self, c: &mut Cursor, pos: u64, buf: &[u8], appending: bool) -> Result<usize> {
        if !self.writable {
            return Err(self.ebadf());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let max = self.layout.max_size;
        if pos >= max {
            return Err(self.efbig());
        }
        let n = (max - pos).min(buf.len() as u64);
        let end = pos + n;
        // The growth rule (see `grow`): a large write into fresh memory goes through
        // the kernel's write path, a small one through reserved, pre-faulted pages.
        let through_kernel = grow::write_through_kernel(n, DATA_OFFSET + end > c.verified, || {
            self.header().followers.load(Ordering::Relaxed) != 0
        });
        if through_kernel {
            // No holes: every byte below the write must be reserved, or a process that
            // reads the gap through its mapping could fault on a full /dev/shm.
            if pos > 0 {
                self.ensure_capacity(c, pos)?;
            }
        } else {
            self.ensure_capacity(c, end)?;
        }
        let h = self.header();
        let len = h.len.load(Ordering::Acquire).min(max);
        self.clear_gap(c, len, pos)?;
        c.hwm_seen = raise_hwm(h, end, c.hwm_seen);
        if through_kernel {
            // At the fd's own offset (a layer keeping the fd coherent), `write(2)` moves
            // the offset with the position: one system call fewer than `pwrite` and
            // `lseek` afterwards. Not where the fd handed out is a read-only one of the
            // handle's own (`Core::hands_out_own_fd`): its offset is not this one's.
            let at_fd = c.c_layer.fd_at == Some(pos) && !self.hands_out_own_fd();
            let done = if at_fd {
                sys::write_all(self.fd.as_fd(), &buf[..n as usize])
            } else {
                sys::pwrite_all(self.fd.as_fd(), &buf[..n as usize], DATA_OFFSET + pos)
            };
            if at_fd {
                let moved = match done {
                    Ok(w) | Err((w, _)) => w as u64,
                };
                c.c_layer.fd_at = Some(pos + moved);
            }
            let (written, err) = match done {
                Ok(w) => (w as u64, None),
                Err((w, e)) => (w as u64, Some(e)),
            };
            c.verified = c.verified.max(DATA_OFFSET + pos + written);
            h.alloc.fetch_max(pos + written, Ordering::AcqRel);
            if let Some(e) = err {
                // All or nothing, as on the reserved path: a write that fails (a full
                // /dev/shm) commits none of its bytes.
                return Err(os(self.name(), e, "cannot grow"));
            }
        } else {
            // SAFETY: `end <= max_size` and the object holds `DATA_OFFSET + end` bytes;
            // the handle is writable, so the mapping is too.
            unsafe { self.window()?.write(pos, &buf[..n as usize]) };
        }
        #[cfg(not(feature = "__test-hooks"))]
        let _ = appending;
        #[cfg(feature = "__test-hooks")]
        if appending {
            if let Some(hook) = crate::test_hooks::append_pause() {
                hook();
            }
        }
        if end > len {
            self.commit(end);
        }
        Ok(n as usize)
    }

    /// A gap reads as zeros: before the length moves from `len` to past `to`, clears what
    /// earlier writes (before a truncate, or an appender that died) left in between.
    /// Nothing at or past the high-water mark was ever written, so only up to it.
    fn clear_gap(&self, c: &mut Cursor, len: u64, to: u64) -> Result<()> {
        if to <= len {
            // Written at (or below) the length, as appends are: no gap, and no load of
            // `hwm`, a line writers share.
            return Ok(());
        }
        let zero_end = gap_end(self.header(), to);
        if len < zero_end {
            self.ensure_readable(c, zero_end)?;
            // SAFETY: `len < zero_end <= max_size` (callers bound `to` by it), and the
            // object holds those bytes (verified just above).
            unsafe { self.window()?.zero(len, zero_end - len) };
        }
        Ok(())
    }

    pub(crate) fn append_locked(&self, c: &mut Cursor, buf: &[u8]) -> Result<usize> {
        if !self.writable {
            return Err(self.ebadf());
        }
        let n = self.name();
        let lock = self.lock_object()?;
        sys::ofd_lock_wait(lock, LOCK_APPEND)
            .map_err(|e| os(n, e, "cannot take the append lock"))?;
        let r = (|| {
            let pos = self.checked_len()?;
            self.check_immutable_end(c, pos)?;
            if pos + buf.len() as u64 > self.layout.max_size {
                return Err(self.efbig());
            }
            let written = self.write_with(c, pos, buf, true)?;
            c.pos = pos + written as u64;
            Ok(written)
        })();
        let _ = sys::ofd_unlock(lock, LOCK_APPEND);
        r
    }

    /// Sets the length (checked by the caller: writable, linear, within the maximum).
    pub(crate) fn set_len_linear(&self, c: &mut Cursor, new_len: u64) -> Result<()> {
        self.window()?;
        let h = self.header();
        let len = h.len.load(Ordering::Acquire).min(self.layout.max_size);
        if new_len > len {
            self.ensure_capacity(c, new_len)?;
            self.clear_gap(c, len, new_len)?;
            self.commit(new_len);
        } else {
            h.len.store(new_len, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Before bytes up to `end` are written: raises the high-water mark to `end` (no byte at
/// or past `hwm` was ever written) unless this handle knows it stands there already
/// (`hwm_seen`); returns what the handle knows now.
#[inline]
pub(crate) fn raise_hwm(h: &Header, end: u64, hwm_seen: u64) -> u64 {
    if end > hwm_seen {
        h.hwm.fetch_max(end, Ordering::AcqRel).max(end)
    } else {
        hwm_seen
    }
}

/// Where the bytes to clear before the length moves up to `to` end: nothing at or past
/// the high-water mark was ever written, so no further than it.
#[inline]
pub(crate) fn gap_end(h: &Header, to: u64) -> u64 {
    to.min(h.hwm.load(Ordering::Acquire))
}

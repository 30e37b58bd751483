//! Coherence between a handle's position and its fd's offset, for layers that hand the
//! stream's fd to users beside a buffered stream (the C API's `FILE*`).
//!
//! The rule: the fd's offset is kept at `DATA_OFFSET + position`. Before each operation
//! the layer calls [`Stream::absorb_fd_offset`]: if the fd's offset moved (the user called
//! `read`, `write` or `lseek` on the fd), the position follows it, and if it moved past the
//! committed length over bytes that exist in the object, those bytes were written through
//! the fd and join the length. After each operation the layer calls
//! [`Stream::sync_fd_offset`].

use crate::error::{os, Result};
use crate::header::DATA_OFFSET;
use crate::stream::Stream;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

fn lseek(fd: i32, off: i64, whence: i32) -> std::result::Result<u64, i32> {
    // SAFETY: plain system call on a descriptor the handle owns.
    let r = unsafe { libc::lseek(fd, off, whence) };
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r as u64)
    }
}

impl Stream {
    /// Takes in what was done through the fd since the last [`sync_fd_offset`]: the
    /// position follows the fd's offset, and bytes written through the fd past the
    /// committed length join it. Returns the position.
    ///
    /// [`sync_fd_offset`]: Stream::sync_fd_offset
    pub fn absorb_fd_offset(&self) -> Result<u64> {
        let mut c = self.lock();
        let off =
            lseek(self.as_raw_fd(), 0, libc::SEEK_CUR).map_err(|e| os(self.name(), e, "lseek"))?;
        c.fd_at = off.checked_sub(DATA_OFFSET);
        if off == DATA_OFFSET + c.pos || off < DATA_OFFSET {
            return Ok(c.pos);
        }
        let pos = off - DATA_OFFSET;
        c.pos = pos;
        if self.writable {
            let len = self.checked_len()?;
            let end = pos.min(self.layout.max_size);
            // Commit only bytes that exist in the object: an lseek past the end wrote
            // nothing.
            if end > len && self.ensure_readable(&mut c, end).is_ok() {
                let h = self.header();
                c.hwm_seen = h.hwm.fetch_max(end, Ordering::AcqRel).max(end);
                self.commit(end);
            }
        }
        Ok(pos)
    }

    /// Moves the fd's offset to `DATA_OFFSET + position` (no system call when the last
    /// operation left it there: a large write at the fd's offset moves it along).
    pub fn sync_fd_offset(&self) -> Result<()> {
        let mut c = self.lock();
        if c.fd_at == Some(c.pos) {
            return Ok(());
        }
        let off = (DATA_OFFSET + c.pos).min(i64::MAX as u64) as i64;
        c.fd_at = None;
        lseek(self.as_raw_fd(), off, libc::SEEK_SET).map_err(|e| os(self.name(), e, "lseek"))?;
        c.fd_at = Some(c.pos);
        Ok(())
    }
}

//! The fixed virtual window: one `MAP_SHARED` mapping of the header and the whole
//! maximum data size, made once per handle (on its first use), so no process remaps
//! when another grows the stream. This file holds every raw access to the mapping.

use crate::header::{Header, Layout, DATA_OFFSET};
use crate::sys;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

/// A mapping of `DATA_OFFSET + max_size` bytes of a stream object.
pub(crate) struct Window {
    base: NonNull<u8>,
    len: usize,
    data_len: u64,
}

// SAFETY: the window is a process-wide shared mapping; every shared field is accessed
// through atomics, and data bytes are copied with raw copies whose bounds are checked
// against `data_len` and the verified object size by the callers.
unsafe impl Send for Window {}
// SAFETY: as above; `&Window` gives no unsynchronised access to Rust-owned memory.
unsafe impl Sync for Window {}

impl Window {
    /// Maps the header and `data_len` data bytes of `fd`.
    pub fn map(fd: BorrowedFd<'_>, data_len: u64, writable: bool) -> Result<Window, sys::Errno> {
        let len = usize::try_from(DATA_OFFSET + data_len).map_err(|_| libc::ENOMEM)?;
        let base = sys::mmap_shared(fd, len, writable)?;
        Ok(Window {
            base: NonNull::new(base).ok_or(libc::ENOMEM)?,
            len,
            data_len,
        })
    }

    /// Maps the header and a ring of `capacity` data bytes twice back to back, so that
    /// data offsets `0..2 * capacity` are valid and offset `capacity + i` is byte `i`.
    pub fn map_ring(
        fd: BorrowedFd<'_>,
        capacity: u64,
        writable: bool,
    ) -> Result<Window, sys::Errno> {
        let enomem = libc::ENOMEM;
        let cap = usize::try_from(capacity).map_err(|_| enomem)?;
        let len = (DATA_OFFSET as usize)
            .checked_add(cap.checked_mul(2).ok_or(enomem)?)
            .ok_or(enomem)?;
        let base = sys::mmap_reserve(len)?;
        // From here `Window` owns the reservation and unmaps it on any early return.
        let w = Window {
            base: NonNull::new(base).ok_or(enomem)?,
            len,
            data_len: 2 * capacity,
        };
        sys::mmap_fixed(base, DATA_OFFSET as usize + cap, fd, 0, writable)?;
        // SAFETY: `DATA_OFFSET + cap < len`, inside the reservation.
        let second = unsafe { base.add(DATA_OFFSET as usize + cap) };
        sys::mmap_fixed(second, cap, fd, DATA_OFFSET, writable)?;
        Ok(w)
    }

    /// Data bytes addressable through the window (twice the capacity for a ring).
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// The shared header.
    pub fn header(&self) -> &Header {
        // SAFETY: the mapping starts page-aligned with at least DATA_OFFSET bytes that
        // the caller verified exist in the object (open checks the size before use);
        // `Header` is all atomics and padding, valid for any bytes.
        unsafe { &*self.base.as_ptr().cast::<Header>() }
    }

    /// Address of data byte `off`.
    fn data_ptr(&self, off: u64) -> *mut u8 {
        debug_assert!(off <= self.data_len);
        // SAFETY: `off <= data_len`, so the result stays inside (or one past) the mapping.
        unsafe { self.base.as_ptr().add((DATA_OFFSET + off) as usize) }
    }

    /// Address of data byte `off`, computed without bounds (for comparisons, and for
    /// callers that check `off` against what exists before any access).
    pub fn data_ptr_wrapping(&self, off: u64) -> *mut u8 {
        self.base
            .as_ptr()
            .wrapping_add(DATA_OFFSET as usize)
            .wrapping_add(off as usize)
    }

    /// Asks the CPU to fetch the cache line of data byte `off` for writing, so that
    /// taking it from a reader's core overlaps with other work (x86 `prefetchw`; a
    /// no-op elsewhere and on CPUs without it). Touches no data.
    #[inline]
    pub fn prefetch_write(&self, off: u64) {
        let p = self.data_ptr_wrapping(off.min(self.data_len.saturating_sub(1)));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch never faults and changes no memory or flags; the address
        // is inside the mapping.
        unsafe {
            std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// Copies `buf` into data bytes `off..off + buf.len()`.
    ///
    /// # Safety
    /// The range must lie inside the window, inside the object's verified size, and the
    /// mapping must be writable.
    pub unsafe fn write(&self, off: u64, buf: &[u8]) {
        debug_assert!(off + buf.len() as u64 <= self.data_len);
        // SAFETY: guaranteed by the caller; the source is a Rust slice that cannot overlap
        // a mapping Rust does not own.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.data_ptr(off), buf.len()) }
    }

    /// Copies data bytes `off..off + buf.len()` into `buf`.
    ///
    /// # Safety
    /// The range must lie inside the window and inside the object's verified size.
    pub unsafe fn read(&self, off: u64, buf: &mut [u8]) {
        debug_assert!(off + buf.len() as u64 <= self.data_len);
        // SAFETY: guaranteed by the caller.
        unsafe { std::ptr::copy_nonoverlapping(self.data_ptr(off), buf.as_mut_ptr(), buf.len()) }
    }

    /// Zeroes data bytes `off..off + n`.
    ///
    /// # Safety
    /// As for [`Window::write`].
    pub unsafe fn zero(&self, off: u64, n: u64) {
        debug_assert!(off + n <= self.data_len);
        // SAFETY: guaranteed by the caller.
        unsafe { std::ptr::write_bytes(self.data_ptr(off), 0, n as usize) }
    }

    /// Pre-faults object bytes `from..to` (object offsets) for writing.
    pub fn populate(&self, from: u64, to: u64) {
        let to = to.min(self.len as u64);
        if from < to {
            // SAFETY: `from < to <= len`, so the pointer stays inside the mapping.
            let p = unsafe { self.base.as_ptr().add(from as usize) };
            sys::populate_write(p, (to - from) as usize);
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `map` and nothing borrows from it any more
        // (borrows of the header are tied to `&self`).
        unsafe { sys::munmap(self.base.as_ptr(), self.len) }
    }
}

/// Maps a stream's window: linear, or a ring mapped twice.
pub(crate) fn map_window(
    fd: &std::os::fd::OwnedFd,
    layout: Layout,
    writable: bool,
) -> std::result::Result<Window, sys::Errno> {
    if layout.ring_capacity != 0 {
        Window::map_ring(std::os::fd::AsFd::as_fd(fd), layout.ring_capacity, writable)
    } else {
        Window::map(std::os::fd::AsFd::as_fd(fd), layout.max_size, writable)
    }
}

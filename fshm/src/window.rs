//! The fixed virtual window: one `MAP_SHARED` mapping of the header and the whole
//! maximum data size, made once per handle (on its first use), so no process remaps
//! when another grows the stream. This file holds every raw access to the mapping.
//!
//! **What is guaranteed about racing bytes.** Every access fshm itself makes to data
//! bytes that another handle may access at the same time is atomic: writes
//! ([`Window::write`], [`Window::zero`]) are relaxed atomic stores and racing reads
//! ([`Window::read_shared`]) relaxed atomic loads — 8-byte words where the address is
//! 8-aligned (writes on x86_64: 16-byte SSE2 stores where 16-aligned, atomic per byte
//! at least), single bytes at the edges. That makes a race
//! between a writer and a reader (a lossy ring reader lapped by the writer, a linear
//! stream's committed bytes rewritten while read) no data race in Rust's memory model,
//! and lets the ring's overrun check pair the writer's release fence with the reader's
//! acquire fence (`ring.rs`, `overrun_after_copy`; the `loom` model
//! `loom_a_lossy_reader_lapped_by_the_writer_accepts_only_whole_bytes`). What a racing
//! reader copies is per byte some value the byte held: no atomicity across bytes or
//! words is promised or relied on — whole-write visibility comes from the length and
//! `hwm` protocols, never from the copy. Not covered:
//! - [`Window::read_stable`] is a plain `memcpy`, for bytes the protocol keeps from
//!   being written during the copy (an attached lossless reader's: "Trusted reads").
//! - Bytes the kernel copies (`pwrite`, `pread`) and bytes C code copies (glibc's
//!   `fread` out of the `FILE*`'s in-place refills) are outside Rust's model; they
//!   behave as another process's accesses do. (`fshm-ffi`'s own copy out of a refill
//!   uses this file's shared copy: `c_layer::copy_from_mapping`.)
//! - In-place writes through a `Reservation` are the caller's own stores into a
//!   `&mut [u8]` (plain, or whatever the caller uses). No racing read of this process
//!   meets them: a ring's racing copies ([`Window::read_shared`] in `ring.rs`) run under
//!   the reservation lock of the object's `Local` and copy nothing a reservation of
//!   this process lends (`local.rs`, "Ring bytes a reservation holds"); the unit test
//!   `local::tests::lossy_copy_racing_a_reservations_plain_stores` runs that pairing under Miri.
//! - Another process's accesses are whatever its code does; a process with write access
//!   is trusted (crate docs, "Trust").

use crate::header::{Header, Layout, DATA_OFFSET};
use crate::sys;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

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
        // SAFETY: `DATA_OFFSET + cap <= len`: the first part of the reservation `w` owns,
        // which nothing references yet.
        unsafe { sys::mmap_fixed(base, DATA_OFFSET as usize + cap, fd, 0, writable)? };
        // SAFETY: `DATA_OFFSET + cap < len`, inside the reservation.
        let second = unsafe { base.add(DATA_OFFSET as usize + cap) };
        // SAFETY: `second..second + cap` ends at `len`: the rest of the reservation,
        // unreferenced too.
        unsafe { sys::mmap_fixed(second, cap, fd, DATA_OFFSET, writable)? };
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
        // `Header` is all atomics and `UnsafeCell` padding, valid for any bytes and for
        // other processes changing them.
        unsafe { &*self.base.as_ptr().cast::<Header>() }
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

    /// Copies `buf` into data bytes `off..off + buf.len()` while other processes (or
    /// other mappings of this process) may read or write them: the copy has the
    /// semantics of a per-byte atomic memcpy (Rust RFC 3301) — relaxed atomic stores, a
    /// word at a time where aligned (16 bytes on x86_64) — so a reader copying the same
    /// bytes with
    /// [`read_shared`](Window::read_shared) races with no data race, and the release
    /// fence a ring writer puts before the copy orders it with the acquire fence of a
    /// reader that saw one of its bytes (`ring.rs`, "Reading"). `BENCHMARKS.md` has
    /// what it costs against `memcpy`.
    ///
    /// # Safety
    /// The range must lie inside the window, inside the object's verified size, and the
    /// mapping must be writable.
    pub unsafe fn write(&self, off: u64, buf: &[u8]) {
        // SAFETY: guaranteed by the caller; the source is a Rust slice that cannot overlap
        // a mapping Rust does not own.
        unsafe { copy_to_shared(self.data_ptr_wrapping(off), buf) }
    }

    /// Copies data bytes `off..off + buf.len()` into `buf` with a plain `memcpy`, for
    /// bytes the protocol guarantees no one writes during the copy (an attached
    /// lossless reader's unconsumed bytes: `ring.rs`, "Trusted reads").
    ///
    /// # Safety
    /// The range must lie inside the window and inside the object's verified size, and
    /// no process may write it during the copy.
    pub unsafe fn read_stable(&self, off: u64, buf: &mut [MaybeUninit<u8>]) {
        // SAFETY: guaranteed by the caller; `buf` is ours and cannot overlap a mapping
        // Rust does not own.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.data_ptr_wrapping(off),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        }
    }

    /// Copies data bytes `off..off + buf.len()` into `buf` while other processes (or
    /// other mappings of this process) may write them: the copy has the semantics of a
    /// per-byte atomic memcpy (Rust RFC 3301) — relaxed atomic loads, a word at a time
    /// where aligned — so a concurrent write is no data race; the bytes copied may mix
    /// old and new values, and the caller decides afterwards whether they are whole
    /// (a lossy ring reader checks for an overrun; a linear stream's committed bytes
    /// change only by explicit overwrites, which race as they would on a file).
    /// `BENCHMARKS.md` has what it costs against `memcpy`.
    ///
    /// # Safety
    /// The range must lie inside the window and inside the object's verified size.
    pub unsafe fn read_shared(&self, off: u64, buf: &mut [MaybeUninit<u8>]) {
        // SAFETY: guaranteed by the caller.
        unsafe { copy_shared(self.data_ptr_wrapping(off), buf) }
    }

    /// Zeroes data bytes `off..off + n`, with relaxed atomic stores as
    /// [`write`](Window::write) copies (another handle may write the same bytes).
    ///
    /// # Safety
    /// As for [`Window::write`].
    pub unsafe fn zero(&self, off: u64, n: u64) {
        // SAFETY: guaranteed by the caller.
        unsafe { zero_shared(self.data_ptr_wrapping(off), n as usize) }
    }

    /// Pre-faults window bytes `from..to` (offsets from the window's start, header
    /// included) for writing.
    ///
    /// # Safety
    /// Every page of the window in `from..to` must be backed by the object (reserved
    /// with `fallocate`), and the mapping must be writable.
    pub unsafe fn populate(&self, from: u64, to: u64) {
        let to = to.min(self.len as u64);
        if from < to {
            // SAFETY: `from < to <= len`, so the pointer stays inside the mapping.
            let p = unsafe { self.base.as_ptr().add(from as usize) };
            // SAFETY: inside this handle's own shared mapping, backed up to `to` (the
            // caller's guarantee).
            unsafe { sys::populate_write(p, (to - from) as usize) };
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

/// Copies `dst.len()` bytes from `src` with relaxed atomic loads: single bytes up to
/// the first 8-byte boundary of `src`, then aligned 8-byte words, then single bytes.
/// Atomic loads are allowed on read-only mappings (`std::sync::atomic`, "Atomic
/// accesses to read-only memory": plain loads of lock-free sizes).
///
/// # Safety
/// `src .. src + dst.len()` must be readable memory for the whole copy.
pub(crate) unsafe fn copy_shared(src: *const u8, dst: &mut [MaybeUninit<u8>]) {
    let n = dst.len();
    let head = src.align_offset(8).min(n);
    let load8 = |i: usize| {
        // SAFETY: `i < n`, inside the readable range; `AtomicU8` has no alignment needs.
        unsafe { (*src.add(i).cast::<AtomicU8>()).load(Ordering::Relaxed) }
    };
    for (i, d) in dst[..head].iter_mut().enumerate() {
        d.write(load8(i));
    }
    let words = (n - head) / 8;
    let out = dst.as_mut_ptr();
    for w in 0..words {
        let i = head + 8 * w;
        // SAFETY: `src + i` is 8-aligned (past the head) and `i + 8 <= n`; `out + i ..
        // + 8` lies inside `dst`, which is ours (an unaligned store of initialised bytes
        // into `MaybeUninit` memory).
        unsafe {
            let v = (*src.add(i).cast::<AtomicU64>()).load(Ordering::Relaxed);
            out.add(i).cast::<u64>().write_unaligned(v);
        }
    }
    let tail = head + 8 * words;
    for (i, d) in dst.iter_mut().enumerate().skip(tail) {
        d.write(load8(i));
    }
}

/// Copies `src` to `dst` with relaxed atomic stores: single bytes up to the first
/// 8-byte boundary of `dst`, then aligned words, then single bytes. The twin of
/// [`copy_shared`]. Relaxed atomic stores of 8 bytes are plain `mov`s on x86_64 and
/// `str`s on aarch64, but the compiler may neither merge them into wider vector stores
/// nor call `memcpy`; on x86_64 the 16-byte-aligned middle is therefore stored 16 bytes
/// at a time by [`store_blocks16`] (a 64-byte ring write cost 1.3× the CPU time of
/// `memcpy` with 8-byte stores, `BENCHMARKS.md`).
///
/// # Safety
/// `dst .. dst + src.len()` must be writable memory for the whole copy, and must not
/// overlap `src`.
#[inline]
unsafe fn copy_to_shared(dst: *mut u8, src: &[u8]) {
    let n = src.len();
    let from = src.as_ptr();
    let store8 = |i: usize| {
        // SAFETY: `i < n`, inside the writable range; `AtomicU8` has no alignment needs.
        unsafe { (*dst.add(i).cast::<AtomicU8>()).store(src[i], Ordering::Relaxed) }
    };
    let store64 = |i: usize| {
        // SAFETY: the callers below pass an 8-aligned `dst + i` with `i + 8 <= n`, inside
        // the writable range; `from + i .. + 8` lies inside `src` (an unaligned load of
        // initialised bytes).
        unsafe {
            let v = from.add(i).cast::<u64>().read_unaligned();
            (*dst.add(i).cast::<AtomicU64>()).store(v, Ordering::Relaxed);
        }
    };
    let head = dst.align_offset(8).min(n);
    for i in 0..head {
        store8(i);
    }
    let mut i = head;
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        if (dst as usize + i) % 16 == 8 && n - i >= 8 {
            store64(i);
            i += 8;
        }
        let blocks = (n - i) / 16;
        if blocks > 0 {
            // SAFETY: `dst + i` is 16-aligned (8-aligned past the head, and past the
            // word above when it was not 16-aligned); `i + 16 * blocks <= n`, inside
            // both ranges.
            unsafe { store_blocks16(dst.add(i), from.add(i), blocks) };
            i += 16 * blocks;
        }
    }
    while n - i >= 8 {
        store64(i);
        i += 8;
    }
    for i in i..n {
        store8(i);
    }
}

/// Stores `blocks` 16-byte blocks from `src` (any alignment) to `dst` (16-aligned) with
/// SSE2 stores, in one `asm!` loop. Each store is one instruction writing 16 aligned
/// bytes, single-copy atomic per byte at least (x86 never tears a byte; CPUs with AVX
/// make aligned 16-byte stores atomic as a whole), so the loop does what a sequence of
/// relaxed atomic stores of its bytes does, which is what Rust's memory model may
/// assume of it: the compiler sees only an opaque write of the range. Not under Miri,
/// which runs no `asm!` (the word loop serves there and on other targets).
///
/// # Safety
/// `dst` must be 16-aligned; `dst .. dst + 16 * blocks` writable and
/// `src .. src + 16 * blocks` readable, not overlapping; `blocks > 0`.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline]
unsafe fn store_blocks16(dst: *mut u8, src: *const u8, blocks: usize) {
    // SAFETY: the caller's ranges; `movdqa` needs the 16-aligned `dst` it promises.
    // The first loop stores `blocks / 4` runs of 64 bytes, the second the `blocks % 4`
    // blocks left, each advancing both pointers by what it stored; `blocks > 0`.
    unsafe {
        std::arch::asm!(
            "test {quads}, {quads}",
            "jz 3f",
            "2:",
            "movdqu {a}, xmmword ptr [{src}]",
            "movdqu {b}, xmmword ptr [{src} + 16]",
            "movdqu {c}, xmmword ptr [{src} + 32]",
            "movdqu {d}, xmmword ptr [{src} + 48]",
            "movdqa xmmword ptr [{dst}], {a}",
            "movdqa xmmword ptr [{dst} + 16], {b}",
            "movdqa xmmword ptr [{dst} + 32], {c}",
            "movdqa xmmword ptr [{dst} + 48], {d}",
            "add {src}, 64",
            "add {dst}, 64",
            "dec {quads}",
            "jnz 2b",
            "3:",
            "test {rest}, {rest}",
            "jz 5f",
            "4:",
            "movdqu {a}, xmmword ptr [{src}]",
            "movdqa xmmword ptr [{dst}], {a}",
            "add {src}, 16",
            "add {dst}, 16",
            "dec {rest}",
            "jnz 4b",
            "5:",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            quads = inout(reg) blocks / 4 => _,
            rest = inout(reg) blocks % 4 => _,
            a = out(xmm_reg) _,
            b = out(xmm_reg) _,
            c = out(xmm_reg) _,
            d = out(xmm_reg) _,
            options(nostack),
        );
    }
}

/// Zeroes `n` bytes at `dst` with relaxed atomic stores, as [`copy_to_shared`] copies.
///
/// # Safety
/// `dst .. dst + n` must be writable memory for the whole call.
unsafe fn zero_shared(dst: *mut u8, n: usize) {
    let head = dst.align_offset(8).min(n);
    let store8 = |i: usize| {
        // SAFETY: `i < n`, inside the writable range.
        unsafe { (*dst.add(i).cast::<AtomicU8>()).store(0, Ordering::Relaxed) }
    };
    for i in 0..head {
        store8(i);
    }
    let words = (n - head) / 8;
    for w in 0..words {
        // SAFETY: `dst + head + 8 * w` is 8-aligned and its 8 bytes lie inside the range.
        unsafe { (*dst.add(head + 8 * w).cast::<AtomicU64>()).store(0, Ordering::Relaxed) }
    }
    for i in head + 8 * words..n {
        store8(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_shared_copies_every_length_and_alignment() {
        let src: Vec<u8> = (0..200u8).collect();
        for start in 0..9 {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 100] {
                let mut dst = vec![MaybeUninit::new(0xAAu8); len];
                // SAFETY: `start + len <= 200`, inside `src`.
                unsafe { copy_shared(src.as_ptr().add(start), &mut dst) };
                // SAFETY: every byte was written by the copy.
                let got: Vec<u8> = dst.iter().map(|b| unsafe { b.assume_init() }).collect();
                assert_eq!(got, src[start..start + len], "start {start} len {len}");
            }
        }
    }

    #[test]
    fn copy_to_shared_and_zero_shared_touch_exactly_their_range_at_every_alignment() {
        let src: Vec<u8> = (1..=200u8).collect();
        // Every start modulo 16: the x86_64 path stores 16-aligned blocks.
        for start in 0..17 {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 100] {
                let mut dst = vec![0xAAu8; 120];
                // SAFETY: `start + len <= 116 <= 120`, inside `dst`, which `src` does not
                // overlap.
                unsafe { copy_to_shared(dst.as_mut_ptr().add(start), &src[..len]) };
                assert_eq!(
                    dst[start..start + len],
                    src[..len],
                    "start {start} len {len}"
                );
                assert!(dst[..start].iter().all(|&b| b == 0xAA), "before {start}");
                assert!(dst[start + len..].iter().all(|&b| b == 0xAA), "after {len}");
                // SAFETY: as above.
                unsafe { zero_shared(dst.as_mut_ptr().add(start), len) };
                assert!(dst[start..start + len].iter().all(|&b| b == 0), "zeroed");
                assert!(dst[..start].iter().all(|&b| b == 0xAA), "before {start}");
                assert!(dst[start + len..].iter().all(|&b| b == 0xAA), "after {len}");
            }
        }
    }
}

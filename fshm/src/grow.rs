//! The growth rule: how a linear stream's object grows as it is written.
//!
//! Every process maps the whole `DATA_OFFSET + max_size` window once, so growing never
//! remaps anything. The object itself grows in steps with `fallocate`, which reserves the
//! pages (a full `/dev/shm` is `ENOSPC` from the write, never `SIGBUS` later) and extends
//! its size. A step doubles the reserved data up to 64 MiB at a time, at least 64 KiB,
//! capped at the maximum size; when a step does not fit, the writer retries with exactly
//! what it needs before reporting `ENOSPC`. The writer then pre-faults the new pages in
//! its own mapping in one call (`MADV_POPULATE_WRITE`) instead of page by page.
//!
//! A large write (at least [`KERNEL_WRITE_MIN`]) that reaches past what the writer has
//! reserved does not reserve and pre-fault first: it goes through the kernel's write
//! path (`pwrite` on the stream's fd), which allocates exactly the pages it fills and
//! need not zero them first, and leaves the writer's page tables alone — about twice as
//! fast for fresh memory on the machines fshm was measured on (see `BENCHMARKS.md`). A
//! full `/dev/shm` is still a clean `ENOSPC` from the write, never a `SIGBUS`: no
//! process touches those bytes through its mapping before the write has created them.
//!
//! Unless someone follows: a follower right behind the writer reads each new page
//! with `pread` while the writer's `pwrite` is still filling the next, and with 4 KiB
//! writes the two meet in the kernel on every page. While the header counts a
//! follower (`followers`: writable handles that have waited for data), writes below
//! [`FOLLOWED_KERNEL_WRITE_MIN`] into fresh memory take the reserved, pre-faulted path
//! instead. (Session machine, 256 MiB in 4 KiB writes with a follower, 12 interleaved
//! runs, medians: 1478 MB/s through `pwrite`, 1608 through the mapping (1.07× per
//! run, 0.96-1.31×), the fresh-page ceiling 1647; alone, `pwrite` is the faster path,
//! 2657 against 1714.) A follower that died uncounted leaves the hint set: the writer
//! then takes the mapping path for small writes, slower alone but just as correct.
//!
//! Reads mirror it: a linear-stream read of at least [`KERNEL_READ_MIN`] bytes is a
//! `pread`, which copies through the kernel's own mapping of the pages, where a copy
//! through the handle's window first maps every 4 KiB page it touches (and a follower
//! right behind the writer faults on each fresh one); so is a read of bytes past the
//! object size the handle has verified (a `pread` cannot fault, so a follower need not
//! `fstat` before each read of what the writer just added; a short `pread` means a
//! malformed header). Smaller reads of verified bytes use the window.
//! (Measured on the session machine, `BENCHMARKS.md`: a guest re-reading 256 MiB with
//! 64 KiB reads 3.9-4.2 GB/s through the window, 4.6-4.9 GB/s with `pread`; with 4 KiB
//! reads 3.8-4.0 against 3.3-3.5; a follower of 64 KiB writes 1.4-1.6 GB/s against
//! 1.9-2.1.)
//!
//! The `alloc` header field is a hint for other processes; before touching bytes past
//! what it has verified, a process asks the kernel (`fstat`) for the real size.

use crate::header::DATA_OFFSET;

/// Smallest growth step (a new stream reserves no data until its first write).
pub const INITIAL_DATA: u64 = 64 * 1024;
/// Largest single growth step.
const MAX_STEP: u64 = 64 << 20;

fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to).saturating_mul(to)
}

/// Smallest write that goes through the kernel's write path when it needs fresh memory.
pub const KERNEL_WRITE_MIN: u64 = 4 * 1024;

/// The same while someone follows the stream: smaller writes into fresh memory go
/// through reserved, pre-faulted pages instead.
pub const FOLLOWED_KERNEL_WRITE_MIN: u64 = 8 * 1024;

/// Smallest linear-stream read that goes through the kernel (`pread`).
pub const KERNEL_READ_MIN: usize = 32 * 1024;

/// Whether a write of `n` bytes goes through the kernel (`pwrite`) rather than the
/// mapping; `fresh` tells whether it reaches past the memory this handle verified,
/// `followed` (asked only when it matters) whether a follower may be right behind.
pub(crate) fn write_through_kernel(n: u64, fresh: bool, followed: impl FnOnce() -> bool) -> bool {
    fresh && n >= KERNEL_WRITE_MIN && (n >= FOLLOWED_KERNEL_WRITE_MIN || !followed())
}

/// Object size to grow to when `need` data bytes must exist and `alloc` already do.
pub(crate) fn step_target(alloc: u64, need: u64, max_size: u64, page: u64) -> u64 {
    let step = alloc.clamp(INITIAL_DATA, MAX_STEP);
    let data = need.max(alloc.saturating_add(step));
    DATA_OFFSET + round_up(data, page).min(round_up(max_size, page))
}

/// Object size to grow to when only `need` data bytes are wanted (the fallback).
pub(crate) fn exact_target(need: u64, max_size: u64, page: u64) -> u64 {
    DATA_OFFSET + round_up(need, page).min(round_up(max_size, page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_fresh_writes_leave_the_kernel_path_only_when_followed() {
        let asked = std::cell::Cell::new(false);
        let followed = |f: bool| {
            let asked = &asked;
            move || {
                asked.set(true);
                f
            }
        };
        assert!(write_through_kernel(4096, true, followed(false)));
        assert!(!write_through_kernel(4096, true, followed(true)));
        assert!(write_through_kernel(8192, true, followed(true)));
        assert!(!write_through_kernel(4095, true, followed(false)));
        asked.set(false);
        assert!(!write_through_kernel(1 << 20, false, followed(false)));
        assert!(write_through_kernel(1 << 20, true, followed(true)));
        assert!(
            !asked.get(),
            "the header is loaded only for writes it decides"
        );
    }

    #[test]
    fn growth_doubles_then_steps_and_stops_at_max() {
        let p = 4096;
        assert_eq!(
            step_target(64 << 10, 64 << 10 | 1, 1 << 30, p),
            DATA_OFFSET + (128 << 10)
        );
        assert_eq!(
            step_target(256 << 20, (256 << 20) + 1, 1 << 30, p),
            DATA_OFFSET + (320 << 20)
        );
        assert_eq!(
            step_target(0, 10 << 20, 1 << 30, p),
            DATA_OFFSET + (10 << 20)
        );
        assert_eq!(
            step_target(900 << 20, 901 << 20, 1 << 30, p),
            DATA_OFFSET + (964 << 20)
        );
        assert_eq!(
            step_target(1000 << 20, 1001 << 20, 1 << 30, p),
            DATA_OFFSET + (1 << 30)
        );
        assert_eq!(step_target(0, 1, 100, p), DATA_OFFSET + 4096);
        assert_eq!(exact_target(5000, 1 << 30, p), DATA_OFFSET + 8192);
    }
}

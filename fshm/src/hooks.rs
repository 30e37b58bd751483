//! Test hooks. Hidden from the docs; used by the test suite to pause an appender between
//! copying its bytes and committing them, so a test can kill it there, and to write to
//! a ring while a reader copies from it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The hook as a function address; 0 when unset. An atomic, not a lock: appends of every
/// process look at it.
static APPEND_PAUSE: AtomicUsize = AtomicUsize::new(0);

/// Sets a function that every append of this process calls after copying its bytes and
/// before committing them (`None` removes it). For tests only.
#[doc(hidden)]
pub fn set_append_pause(hook: Option<fn()>) {
    APPEND_PAUSE.store(hook.map_or(0, |f| f as usize), Ordering::SeqCst);
}

pub(crate) fn append_pause() -> Option<fn()> {
    match APPEND_PAUSE.load(Ordering::Acquire) {
        0 => None,
        // SAFETY: a non-zero value was stored by `set_append_pause` from a `fn()`, and
        // function pointers round-trip through `usize` on every platform Rust supports.
        addr => Some(unsafe { std::mem::transmute::<usize, fn()>(addr) }),
    }
}

/// The ring-read hook, like [`APPEND_PAUSE`].
static RING_READ_PAUSE: AtomicUsize = AtomicUsize::new(0);

/// Sets a function that every ring read of this process calls after copying its bytes
/// and before checking them for an overrun (`None` removes it). For tests only.
#[doc(hidden)]
pub fn set_ring_read_pause(hook: Option<fn()>) {
    RING_READ_PAUSE.store(hook.map_or(0, |f| f as usize), Ordering::SeqCst);
}

pub(crate) fn ring_read_pause() -> Option<fn()> {
    match RING_READ_PAUSE.load(Ordering::Acquire) {
        0 => None,
        // SAFETY: as in `append_pause`.
        addr => Some(unsafe { std::mem::transmute::<usize, fn()>(addr) }),
    }
}

//! Test hooks. Hidden from the docs; used by the test suite to pause an appender between
//! copying its bytes and committing them, so a test can kill it there, to write to a
//! ring while a reader copies from it, and to fork while a handle maps its window.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A hook as a function address; 0 when unset. An atomic, not a lock: every append or
/// ring read of the process looks at it.
struct Hook(AtomicUsize);

impl Hook {
    const fn new() -> Hook {
        Hook(AtomicUsize::new(0))
    }

    fn set(&self, hook: Option<fn()>) {
        self.0
            .store(hook.map_or(0, |f| f as usize), Ordering::SeqCst);
    }

    fn get(&self) -> Option<fn()> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            // SAFETY: a non-zero value was stored by `set` from a `fn()`, and function
            // pointers round-trip through `usize` on every platform Rust supports.
            addr => Some(unsafe { std::mem::transmute::<usize, fn()>(addr) }),
        }
    }
}

static APPEND_PAUSE: Hook = Hook::new();
static RING_READ_PAUSE: Hook = Hook::new();
static MAP_PAUSE: Hook = Hook::new();

/// Sets a function that every append of this process calls after copying its bytes and
/// before committing them (`None` removes it). For tests only.
#[doc(hidden)]
pub fn set_append_pause(hook: Option<fn()>) {
    APPEND_PAUSE.set(hook);
}

pub(crate) fn append_pause() -> Option<fn()> {
    APPEND_PAUSE.get()
}

/// Sets a function that every ring read of this process calls after copying its bytes
/// and before checking them for an overrun (`None` removes it). For tests only.
#[doc(hidden)]
pub fn set_ring_read_pause(hook: Option<fn()>) {
    RING_READ_PAUSE.set(hook);
}

pub(crate) fn ring_read_pause() -> Option<fn()> {
    RING_READ_PAUSE.get()
}

/// Sets a function that a handle calls when it maps its window lazily, on its first use,
/// before mapping (`None` removes it). For tests only: a test forks while a thread is
/// inside that initialisation.
#[doc(hidden)]
pub fn set_map_pause(hook: Option<fn()>) {
    MAP_PAUSE.set(hook);
}

pub(crate) fn map_pause() -> Option<fn()> {
    MAP_PAUSE.get()
}

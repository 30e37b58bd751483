//! Test hooks. Hidden from the docs; used by the test suite to pause an appender between
//! copying its bytes and committing them, so a test can kill it there.

use parking_lot::Mutex;

static APPEND_PAUSE: Mutex<Option<fn()>> = Mutex::new(None);

/// Sets a function that every append of this process calls after copying its bytes and
/// before committing them (`None` removes it). For tests only.
#[doc(hidden)]
pub fn set_append_pause(hook: Option<fn()>) {
    *APPEND_PAUSE.lock() = hook;
}

pub(crate) fn append_pause() -> Option<fn()> {
    *APPEND_PAUSE.lock()
}

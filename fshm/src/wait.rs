//! The wait/wake rule.
//!
//! A commit stores the new length with a sequentially consistent read-modify-write, then
//! loads `waiters`; only if someone waits does it bump `seq` and `FUTEX_WAKE` it, so a
//! writer makes no system call when nobody waits. A waiter loads `seq`, increments
//! `waiters`, re-checks its condition, and only then sleeps in `FUTEX_WAIT(seq, seen)`: a
//! commit between the check and the sleep changes `seq`, so the sleep returns at once.
//! The futex is shared (not private), so it works across processes that map the word at
//! different addresses. Sleeps are bounded by [`LIVENESS_TICK`] so that a waiter notices
//! an owner that died without waking anyone.

use crate::header::Header;
use crate::sys;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Longest single sleep: how soon a waiter notices an owner that died.
pub(crate) const LIVENESS_TICK: Duration = Duration::from_millis(50);

/// Wakes every reader sleeping on the stream, if any (call after a commit).
#[inline]
pub(crate) fn notify_readers(h: &Header) {
    if h.waiters.load(Ordering::SeqCst) != 0 {
        wake(&h.seq);
    }
}

/// Wakes every sleeper on `word` unconditionally.
pub(crate) fn wake(word: &AtomicU32) {
    word.fetch_add(1, Ordering::SeqCst);
    sys::futex_wake_all(word);
}

/// What ended a wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waited<T> {
    /// The condition gave a value.
    Ready(T),
    /// The deadline passed.
    TimedOut,
}

/// Waits on `word`/`waiters` until `check` returns `Some`, or `deadline` passes.
/// `check(slow_ok)` runs while spinning (`slow_ok == false`: it must be cheap), then
/// after registering as a waiter and after every wake-up or tick (`slow_ok == true`: the
/// place for slower tests such as liveness). `spin` is how many times to poll before
/// sleeping.
pub(crate) fn wait_on<T>(
    word: &AtomicU32,
    waiters: &AtomicU32,
    deadline: Option<Instant>,
    spin: u32,
    mut check: impl FnMut(bool) -> Option<T>,
) -> Waited<T> {
    for _ in 0..spin {
        if let Some(v) = check(false) {
            return Waited::Ready(v);
        }
        std::hint::spin_loop();
    }
    loop {
        let seen = word.load(Ordering::SeqCst);
        waiters.fetch_add(1, Ordering::SeqCst);
        let got = check(true);
        let nap = match (got.is_some(), deadline) {
            (true, _) => None,
            (false, None) => Some(LIVENESS_TICK),
            (false, Some(d)) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    waiters.fetch_sub(1, Ordering::SeqCst);
                    return Waited::TimedOut;
                }
                Some(left.min(LIVENESS_TICK))
            }
        };
        if let Some(nap) = nap {
            sys::futex_wait(word, seen, Some(nap));
        }
        waiters.fetch_sub(1, Ordering::SeqCst);
        if let Some(v) = got {
            return Waited::Ready(v);
        }
    }
}

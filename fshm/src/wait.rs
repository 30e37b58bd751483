//! The wait/wake rule.
//!
//! A commit stores the new length with a sequentially consistent read-modify-write, then
//! loads `waiters`; only if someone waits does it bump `seq` and `FUTEX_WAKE` it, so a
//! writer makes no system call when nobody waits. A waiter loads `seq`, increments
//! `waiters`, re-checks its condition, and only then sleeps in `FUTEX_WAIT(seq, seen)`: a
//! commit between the check and the sleep changes `seq`, so the sleep returns at once.
//! The futex is shared (not private), so it works across processes that map the word at
//! different addresses. Sleeps are bounded by [`LIVENESS_TICK`] so that a waiter notices
//! an owner that died without waking anyone. A read-only handle, which cannot write the
//! header, does not register; it polls with naps growing from 100 µs to 10 ms.

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

/// Shortest and longest sleep of a waiter that cannot register (see [`wait_on`]).
const UNREGISTERED_NAP: (Duration, Duration) =
    (Duration::from_micros(100), Duration::from_millis(10));

/// Waits on `word` until `check` returns `Some`, or `deadline` passes.
///
/// `check(slow_ok)` runs while spinning (`slow_ok == false`: it must be cheap), then
/// after registering as a waiter and after every wake-up or tick (`slow_ok == true`: the
/// place for slower tests such as liveness). Before sleeping, `check(false)` runs in a
/// loop until it answers or `spin` has passed.
///
/// `waiters` is the shared count writers look at before waking anyone. A handle that
/// maps the header read-only cannot add itself to it (`None`): it still sleeps on the
/// futex, but since writers may not wake it, its naps grow from 100 µs to at most
/// 10 ms, so it notices new data within 10 ms at a cost of at most 100 wake-ups a second.
pub(crate) fn wait_on<T>(
    word: &AtomicU32,
    waiters: Option<&AtomicU32>,
    deadline: Option<Instant>,
    spin: Duration,
    mut check: impl FnMut(bool) -> Option<T>,
) -> Waited<T> {
    if !spin.is_zero() {
        let until = Instant::now() + spin;
        // Read the clock only every 64 polls: it costs more than a poll.
        'spin: loop {
            for _ in 0..64 {
                if let Some(v) = check(false) {
                    return Waited::Ready(v);
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until {
                break 'spin;
            }
        }
    }
    let mut unregistered_nap = UNREGISTERED_NAP.0;
    loop {
        let seen = word.load(Ordering::SeqCst);
        if let Some(w) = waiters {
            w.fetch_add(1, Ordering::SeqCst);
        }
        let got = check(true);
        let longest = match waiters {
            Some(_) => LIVENESS_TICK,
            None => {
                let nap = unregistered_nap;
                unregistered_nap = (nap * 2).min(UNREGISTERED_NAP.1);
                nap
            }
        };
        let nap = match (got.is_some(), deadline) {
            (true, _) => None,
            (false, None) => Some(longest),
            (false, Some(d)) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    if let Some(w) = waiters {
                        w.fetch_sub(1, Ordering::SeqCst);
                    }
                    return Waited::TimedOut;
                }
                Some(left.min(longest))
            }
        };
        if let Some(nap) = nap {
            sys::futex_wait(word, seen, Some(nap));
        }
        if let Some(w) = waiters {
            w.fetch_sub(1, Ordering::SeqCst);
        }
        if let Some(v) = got {
            return Waited::Ready(v);
        }
    }
}

//! The wait/wake rule.
//!
//! Each futex word (`seq` for readers waiting for data, `space_seq` for a lossless ring
//! writer waiting for room) counts in steps of 2; its bit 0 says "someone sleeps here".
//! A waiter loads the word, sets bit 0 (compare-and-swap), re-checks its condition, and
//! only then sleeps in `FUTEX_WAIT(word, seen)`. The other side publishes its change
//! (a sequentially consistent read-modify-write), then loads the word: only if bit 0 is
//! set does it clear it — moving the word on — and `FUTEX_WAKE` every sleeper, so it
//! makes no system call when nobody sleeps. Either the waker sees the bit, or the
//! waiter's re-check sees the change; a wake between the re-check and the sleep changes
//! the word, so the sleep returns at once. Woken waiters that must wait on set the bit
//! again. The flag heals itself: a waiter killed in its sleep leaves it set, which costs
//! one needless wake at the next change, not one on every change (a waiter count would
//! stay wrong for good).
//!
//! The futex is shared (not private), so it works across processes that map the word at
//! different addresses. Sleeps are bounded by [`LIVENESS_TICK`] so that a waiter notices
//! an owner that died without waking anyone, and the slow checks (liveness) run at least
//! once per tick whatever wake-ups arrive: anyone who maps a futex word, a process with
//! read-only access included, can wake its sleepers as often as it likes, and must not
//! thereby hide a death. A read-only handle, which cannot write the
//! header, cannot set the flag; it polls with naps growing from 100 µs to 10 ms.

use crate::sys;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Longest single sleep: how soon a waiter notices an owner that died.
pub(crate) const LIVENESS_TICK: Duration = Duration::from_millis(50);

/// Bit 0 of a futex word: someone sleeps on it.
const SLEEPERS: u32 = 1;

/// After a change the other side waits for: wakes every sleeper on `word`, if any.
#[inline]
pub(crate) fn notify(word: &AtomicU32) {
    let mut seen = word.load(Ordering::SeqCst);
    while seen & SLEEPERS != 0 {
        // Clearing the bit also moves the word on (an odd value plus one).
        match word.compare_exchange(
            seen,
            seen.wrapping_add(1),
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => {
                sys::futex_wake_all(word);
                return;
            }
            Err(now) => seen = now,
        }
    }
}

/// Wakes every sleeper on `word` unconditionally (the owner closing), clearing bit 0.
pub(crate) fn wake(word: &AtomicU32) {
    let _ = word.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
        Some((w | SLEEPERS).wrapping_add(1))
    });
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

/// Shortest and longest sleep of a waiter that cannot announce itself ([`wait_on`]).
const UNFLAGGED_NAP: (Duration, Duration) = (Duration::from_micros(100), Duration::from_millis(10));

/// Waits on `word` until `check` returns `Some`, or `deadline` passes.
///
/// `check(slow_ok)` runs while spinning, after announcing a sleep and after every
/// wake-up; `slow_ok` is `true` after a sleep that ran its full time without a wake-up,
/// and at least once per [`LIVENESS_TICK`] of waiting however many wake-ups come — the
/// place for slower tests such as liveness (a dead owner or reader wakes nobody), which
/// would otherwise cost a system call on every wake-up. Before sleeping, `check(false)`
/// runs in a loop until it answers or `spin` has passed.
///
/// A handle that maps the header read-only cannot announce itself (`can_flag ==
/// false`): it still sleeps on the futex, but since wakers may not see it, its naps grow
/// from 100 µs to at most 10 ms, so it notices a change within 10 ms at a cost of at
/// most 100 wake-ups a second.
pub(crate) fn wait_on<T>(
    word: &AtomicU32,
    can_flag: bool,
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
    let mut unflagged_nap = UNFLAGGED_NAP.0;
    let (mut woken, mut timed_out) = (false, false);
    let mut last_slow = Instant::now();
    loop {
        // Back from a sleep: look before announcing the next one. (The waker cleared
        // the flag; setting it again when the data is already there would cost the
        // next writer a needless wake-up.)
        if woken && !timed_out {
            if let Some(v) = check(false) {
                return Waited::Ready(v);
            }
        }
        let mut seen = word.load(Ordering::SeqCst);
        if can_flag && seen & SLEEPERS == 0 {
            match word.compare_exchange(seen, seen | SLEEPERS, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => seen |= SLEEPERS,
                Err(_) => continue, // the word moved: look again
            }
        }
        let slow = timed_out || last_slow.elapsed() >= LIVENESS_TICK;
        if slow {
            last_slow = Instant::now();
        }
        if let Some(v) = check(slow) {
            return Waited::Ready(v);
        }
        let longest = if can_flag {
            LIVENESS_TICK
        } else {
            let nap = unflagged_nap;
            unflagged_nap = (nap * 2).min(UNFLAGGED_NAP.1);
            nap
        };
        let nap = match deadline {
            None => longest,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Waited::TimedOut;
                }
                left.min(longest)
            }
        };
        timed_out = sys::futex_wait(word, seen, Some(nap));
        woken = true;
    }
}

//! The wait/wake rule.
//!
//! Each header word (`seq` for readers waiting for data, `space_seq` for a lossless ring
//! writer waiting for room) counts in steps of 2; its bit 0 says "someone sleeps". A waiter
//! loads its **bell** (below), then the word, sets bit 0 (compare-and-swap; or finds it
//! set), re-checks its condition, and only then sleeps in `FUTEX_WAIT(bell, seen)`. The
//! other side publishes its change (a sequentially consistent read-modify-write), then
//! loads the header word: only if bit 0 is set does it clear it — moving the word on — then
//! move the bell on (+1) and `FUTEX_WAKE` its sleepers, so it makes no system call when
//! nobody sleeps. Either the waker sees the bit, or the waiter's re-check sees the change;
//! a waker that saw the bit — or a waker that cleared it after the waiter found it set —
//! rings the bell after the waiter loaded it, so the sleep returns at once. (The bell must
//! be loaded before the flag is looked at: loaded after, it could already hold the ring of
//! a waker that cleared a flag the waiter had found set, and the waiter would sleep with
//! the flag clear, unseen by the next waker — the loom models find that lost wake-up.)
//! Woken waiters that must wait on set the bit again. The flag heals itself: a waiter
//! killed in its sleep leaves it set, which costs one needless wake at the next change, not
//! one on every change (a waiter count would stay wrong for good).
//!
//! **Where waiters sleep.** The bells are in the stream's lock object (layout 3,
//! `liveness::Doorbells`: the data bell at offset 0, the room bell at 64), not in the
//! header. Every reader maps the header, and anyone who maps a futex word can
//! `FUTEX_WAKE` its sleepers as often as it likes; the lock object can be opened only
//! by the classes that may write the stream. So a read-only user cannot wake anyone who
//! sleeps on a bell: a flood from it costs a writable waiter neither CPU nor latency.
//! The announce flag stays in the header: a writer then needs only the header, which it
//! maps anyway, to learn that nobody waits (the common case costs nothing more than
//! before), and maps the lock object's page only on its first commit that finds a
//! waiter announced; a writable waiter maps it on its first wait (opens stay as cheap as
//! before). A read-only user cannot set the flag either (it maps the header read-only),
//! so it cannot make writers ring. A handle that cannot map the page (a read-only one,
//! or a writable one whose lock object cannot be opened or is too small) cannot
//! announce itself: it sleeps on the header word in naps growing from 100 µs to 10 ms,
//! polling, as a read-only handle always has.
//!
//! **Replicas** (a stream an importer such as `fshm-tunnel` mirrors, `FLAG_REPLICA`)
//! are the exception: every guest is read-only there, so every follower would poll.
//! Their owner therefore moves the header word `seq` on and `FUTEX_WAKE`s it after
//! every commit, whether anyone announced a sleep or not ([`wake_unannounced`]: one
//! system call per commit, which an importer makes once per batch of bytes it applies);
//! a read-only waiter on a replica sleeps on that word for a whole [`LIVENESS_TICK`]
//! and is woken by the commit. This adds no power to a read-only user: it could always
//! `FUTEX_WAKE` the header word, and still cannot move it (it maps the header
//! read-only), so its wake-ups find the word unchanged and are treated as below — at
//! worst a flood makes the replica's followers deaf, looking every [`DEAF_LOOK`]
//! (10 ms), which is no slower than the polling they would do otherwise.
//!
//! The futex is shared (not private), so it works across processes that map the word at
//! different addresses. Sleeps are bounded by [`LIVENESS_TICK`] so that a waiter notices
//! an owner that died without waking anyone, and the slow checks (liveness) run at least
//! once per tick whatever wake-ups arrive: a process that may map the word can wake its
//! sleepers as often as it likes, and must not thereby hide a death.
//!
//! **Wake-ups that change nothing.** Every honest wake-up moves the word slept on first
//! (the waker rings the bell, or the closing owner moves the header word on), so a
//! waiter woken with the word still at the value it slept on was woken by somebody else
//! — any process that maps the header, read-only included, may call `FUTEX_WAKE` on a
//! header word, which read-only waiters nap on; only writers can reach a bell. Such a
//! wake-up goes back to sleep for the rest of the nap without a look at the stream
//! ([`wait_on`]'s sleep; the reactor's threads and io_uring requests do the same,
//! `reactor/`), and naps — and so the liveness re-checks — end on time whatever arrives.
//! A flood of them on one word (more than [`SPURIOUS_BUDGET`] in a tick) makes the
//! waiter on that word deaf for a while ([`Deafness`]; in the reactor, that registration
//! alone, its thread listening on to its other words): it sleeps in plain timed sleeps
//! that no wake-up ends and looks at its word every [`DEAF_LOOK`] (10 ms), so that the
//! flood costs it about 110 wake-ups a second at most, and a real change reaches it
//! within 10 ms meanwhile (`tests/wake_spam.rs`). Deafness stays for the bells too, as a
//! CPU bound against a writer that floods them: writers are trusted with the stream's
//! contents, not with other processes' CPU, and it costs nothing while no flood comes.
//!
//! The rule lives here once, as [`Announce`]: one step announces, re-checks and says
//! what to sleep on and for how long. The blocking waiter ([`wait_on`]) sleeps in
//! `FUTEX_WAIT`; the async one (`AsyncWait`, `reactor/mod.rs`) registers the same word, value and nap
//! with the reactor (`reactor/mod.rs`), whose threads sleep for many waiters in one
//! `futex_waitv`, and returns `Pending`.
//! The reactor may lengthen an async data wait's nap to a second while the owner's
//! process is watched through a pidfd, which ends the nap at once when that process
//! ends (`reactor/owners.rs`): still a bounded period, now with an event behind it.

use crate::sync::AtomicU32;
use crate::sys;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Longest single sleep: how soon a waiter notices an owner that died.
pub(crate) const LIVENESS_TICK: Duration = Duration::from_millis(50);

/// Bit 0 of a futex word: someone sleeps on it.
const SLEEPERS: u32 = 1;

/// After a change the other side waits for: wakes every sleeper announced on `word`, if
/// any, by ringing their bell (`bell()`: the lock object's word, mapped now if this is
/// the first time; `None` if it cannot be, and the sleepers then notice at their nap's
/// end).
#[inline]
pub(crate) fn notify<'a>(word: &AtomicU32, bell: impl FnOnce() -> Option<&'a AtomicU32>) {
    // After the caller's publication (`sync.rs`).
    crate::sync::seqcst_write_then_load();
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
                ring(bell());
                return;
            }
            Err(now) => seen = now,
        }
    }
}

/// Moves `bell` on and wakes its sleepers.
#[inline]
fn ring(bell: Option<&AtomicU32>) {
    if let Some(bell) = bell {
        bell.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake_all(bell);
    }
}

/// A replica's owner after a commit (module docs, "Replicas"): moves `word` on by one
/// step, keeping bit 0 (announced sleepers, if any, were woken by [`notify`] already),
/// and wakes every sleeper on `word` itself — the read-only waiters, who cannot announce
/// themselves.
#[inline]
pub(crate) fn wake_unannounced(word: &AtomicU32) {
    word.fetch_add(2, Ordering::SeqCst);
    sys::futex_wake_all(word);
}

/// Wakes every sleeper on `word` unconditionally (the owner closing), clearing bit 0 and
/// moving the word on: read-only waiters, which nap on `word` itself, and announced
/// ones, through `bell()` (asked only if bit 0 was set).
pub(crate) fn wake<'a>(word: &AtomicU32, bell: impl FnOnce() -> Option<&'a AtomicU32>) {
    let before = word.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
        Some((w | SLEEPERS).wrapping_add(1))
    });
    sys::futex_wake_all(word);
    if before.is_ok_and(|w| w & SLEEPERS != 0) {
        ring(bell());
    }
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

/// One waiter's progress through the announce/re-check rule (module docs), shared by
/// the blocking waiter ([`wait_on`]) and the async one (`AsyncWait`, `reactor/mod.rs`): they differ only
/// in how they sleep between two [`Announce::step`]s.
pub(crate) struct Announce {
    can_flag: bool,
    /// The writer wakes `word` after every commit (a replica): no need to poll.
    woken_always: bool,
    unflagged_nap: Duration,
    woken: bool,
    timed_out: bool,
    last_slow: Instant,
}

/// What one [`Announce::step`] decided.
pub(crate) enum Step<T> {
    /// The condition gave a value.
    Ready(T),
    /// Sleep while `word` holds `seen`, for at most `nap` (then call
    /// [`Announce::slept`]).
    Sleep { seen: u32, nap: Duration },
}

impl Announce {
    /// A waiter about to sleep for the first time; `can_flag`: it has a bell to sleep on
    /// (as in [`wait_on`]); `woken_always`: the writer wakes the header word after every
    /// commit (a replica's owner, module docs), so a waiter that cannot announce itself
    /// need not poll.
    pub(crate) fn new(can_flag: bool, woken_always: bool) -> Announce {
        Announce {
            can_flag,
            woken_always,
            unflagged_nap: UNFLAGGED_NAP.0,
            woken: false,
            timed_out: false,
            last_slow: Instant::now(),
        }
    }

    /// Announces the sleep (sets bit 0 when allowed), re-checks the condition, and
    /// either answers or says what to sleep on and for how long.
    /// `word` is the header word; a waiter that can announce itself sleeps on `bell`
    /// (module docs, "Where waiters sleep"), and `seen` is then the bell's value, loaded
    /// before the announcement.
    pub(crate) fn step<T>(
        &mut self,
        word: &AtomicU32,
        bell: Option<&AtomicU32>,
        check: &mut impl FnMut(bool) -> Option<T>,
    ) -> Step<T> {
        loop {
            // Back from a sleep: look before announcing the next one. (The waker cleared
            // the flag; setting it again when the data is already there would cost the
            // next writer a needless wake-up.)
            if self.woken && !self.timed_out {
                if let Some(v) = check(false) {
                    return Step::Ready(v);
                }
            }
            // The bell before the announcement: a waker that clears the flag — even one
            // this waiter found set already, by another waiter or an earlier wait of
            // its own — rings the bell after that, so the sleep below returns at once.
            // (Loaded after the announcement, the bell could already hold that ring
            // while the flag is cleared: the next commit would wake nobody.)
            let rung = match (self.can_flag, bell) {
                (true, Some(bell)) => Some(bell.load(Ordering::SeqCst)),
                _ => None,
            };
            let mut seen = word.load(Ordering::SeqCst);
            if self.can_flag && seen & SLEEPERS == 0 {
                match word.compare_exchange(
                    seen,
                    seen | SLEEPERS,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => seen |= SLEEPERS,
                    Err(_) => continue, // the word moved: look again
                }
            }
            if let Some(rung) = rung {
                seen = rung;
            }
            // After the announcement, before the re-check (`sync.rs`).
            crate::sync::seqcst_write_then_load();
            let slow = self.timed_out || self.last_slow.elapsed() >= LIVENESS_TICK;
            if slow {
                self.last_slow = Instant::now();
            }
            if let Some(v) = check(slow) {
                return Step::Ready(v);
            }
            let nap = if self.can_flag || self.woken_always {
                LIVENESS_TICK
            } else {
                let nap = self.unflagged_nap;
                self.unflagged_nap = (nap * 2).min(UNFLAGGED_NAP.1);
                nap
            };
            return Step::Sleep { seen, nap };
        }
    }

    /// Back from a sleep; `timed_out` if it ran its full nap without a wake-up.
    pub(crate) fn slept(&mut self, timed_out: bool) {
        self.woken = true;
        self.timed_out = timed_out;
    }
}

/// Waits on `word` until `check` returns `Some`, or `deadline` passes.
///
/// A wake-up that leaves the word unchanged sleeps on without calling `check` (module
/// docs, "Wake-ups that change nothing").
///
/// `check(slow_ok)` runs while spinning, after announcing a sleep and after every
/// wake-up; `slow_ok` is `true` after a sleep that ran its full time without a wake-up,
/// and at least once per [`LIVENESS_TICK`] of waiting however many wake-ups come — the
/// place for slower tests such as liveness (a dead owner or reader wakes nobody), which
/// would otherwise cost a system call on every wake-up. Before sleeping, `check(false)`
/// runs in a loop until it answers or `spin` has passed.
///
/// A waiter with a `bell` (a writable handle: the lock object's word matching `word`,
/// module docs) announces itself on `word` and sleeps on the bell. A handle that maps
/// the header read-only cannot announce itself (`bell == None`): it still sleeps on
/// `word`, but since wakers do not look for it, its naps grow from 100 µs to at most
/// 10 ms, so it notices a change within 10 ms at a cost of at most 100 wake-ups a
/// second — unless `woken_always` (a replica, whose owner wakes `word` after every
/// commit: module docs): it then sleeps for whole ticks until woken.
pub(crate) fn wait_on<T>(
    word: &AtomicU32,
    bell: Option<&AtomicU32>,
    woken_always: bool,
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
    let mut announce = Announce::new(bell.is_some(), woken_always);
    let mut deafness = Deafness::new();
    let sleep_word = bell.unwrap_or(word);
    loop {
        let (seen, longest) = match announce.step(word, bell, &mut check) {
            Step::Ready(v) => return Waited::Ready(v),
            Step::Sleep { seen, nap } => (seen, nap),
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
        announce.slept(sleep_on(sleep_word, seen, nap, &mut deafness));
    }
}

/// Sleeps on `word` while it holds `seen`, for `nap` in all: `true` if the nap ran its
/// full time with the word unchanged. A wake-up that finds the word unchanged (anyone
/// who maps it may wake it: module docs, "Wake-ups that change nothing") sleeps on for
/// the rest of the nap without a look at the stream; a flood of them makes the waiter
/// deaf for a while ([`Deafness`]): it then looks at the word every [`DEAF_LOOK`]
/// instead of listening.
fn sleep_on(word: &AtomicU32, seen: u32, nap: Duration, deafness: &mut Deafness) -> bool {
    let end = Instant::now() + nap;
    loop {
        let now = Instant::now();
        let left = end.saturating_duration_since(now);
        if left.is_zero() {
            return true;
        }
        if deafness.is_deaf(now) {
            // A plain sleep: no futex wake-up can end it.
            std::thread::sleep(left.min(DEAF_LOOK));
            if word.load(Ordering::SeqCst) != seen {
                return false;
            }
            continue;
        }
        if sys::futex_wait(word, seen, Some(left)) {
            return true;
        }
        // Woken, interrupted, or the word had moved already.
        if word.load(Ordering::SeqCst) != seen {
            return false;
        }
        deafness.spurious(Instant::now());
    }
}

/// Wake-ups that changed nothing tolerated per [`LIVENESS_TICK`] before a waiter stops
/// listening ([`Deafness`]).
pub(crate) const SPURIOUS_BUDGET: u32 = 8;

/// How often a deaf waiter looks at its word: its latency while a flood lasts.
pub(crate) const DEAF_LOOK: Duration = Duration::from_millis(10);

/// Longest deaf period.
const DEAF_MAX: Duration = Duration::from_secs(1);

/// A waiter's (or a reactor thread's) defence against a flood of wake-ups that change
/// nothing: more than [`SPURIOUS_BUDGET`] of them within a [`LIVENESS_TICK`] make it deaf
/// for a period — it sleeps in plain timed sleeps and looks at its word(s) every
/// [`DEAF_LOOK`] — that doubles from one tick up to [`DEAF_MAX`] while floods follow one
/// another, and starts again at one tick after a quiet period. So a flood costs a waiter
/// at most about `SPURIOUS_BUDGET + 1 s / DEAF_LOOK` wake-ups a second (idle: 20), and
/// a real change reaches it within [`DEAF_LOOK`] meanwhile. Naps, and so the liveness
/// re-checks, end on time whatever the mode.
pub(crate) struct Deafness {
    count: u32,
    since: Instant,
    period: Duration,
    until: Option<Instant>,
    /// When the last deaf period ended.
    ended: Option<Instant>,
}

impl Deafness {
    pub(crate) fn new() -> Deafness {
        Deafness {
            count: 0,
            since: Instant::now(),
            period: Duration::ZERO,
            until: None,
            ended: None,
        }
    }

    /// Whether to stop listening now.
    pub(crate) fn is_deaf(&mut self, now: Instant) -> bool {
        match self.until {
            Some(u) if now < u => true,
            Some(u) => {
                self.until = None;
                self.ended = Some(u);
                self.count = 0;
                self.since = now;
                false
            }
            None => false,
        }
    }

    /// A wake-up that changed nothing, at `now`.
    pub(crate) fn spurious(&mut self, now: Instant) {
        if now.saturating_duration_since(self.since) >= LIVENESS_TICK {
            self.count = 0;
            self.since = now;
        }
        self.count += 1;
        if self.count > SPURIOUS_BUDGET {
            // Quiet for as long as the last period since it ended: start afresh.
            if self.ended.is_some_and(|e| now >= e + self.period) {
                self.period = Duration::ZERO;
            }
            self.period = (self.period * 2).clamp(LIVENESS_TICK, DEAF_MAX);
            self.until = Some(now + self.period);
            self.count = 0;
        }
    }
}

//! The reactor: one process-wide mechanism that sleeps for every async waiter.
//!
//! A waiter that would block (`wait.rs`; [`AsyncWait`], below) has
//! already announced its sleep on the futex word and re-checked its condition, exactly
//! like a blocking waiter; instead of `FUTEX_WAIT` it registers `(word, value seen,
//! longest nap, waker)` here and returns `Pending`. So writers still make no system call
//! while nobody waits, and wake an async waiter exactly as they wake a blocking one.
//!
//! **Threads.** Registrations live in shards of at most [`PER_THREAD`] (127); each shard
//! has one thread that sleeps in one `futex_waitv(2)` call on all its words (shared
//! futexes) plus a private control word of its own, which a new registration moves to
//! make the thread take it into its next call. A thread is started when every shard is
//! full, so 1,000 waiters use 8 threads, one waiter one thread. A thread whose shard has
//! been empty for [`LINGER`] ends (a wait that follows soon after another reuses it).
//!
//! **Firing.** After every return from `futex_waitv` — a wake-up, a word that had
//! already moved (`EAGAIN`), the timeout, a signal — the thread loads every word of its
//! shard: each registration whose word no longer holds the value seen, or whose nap has
//! run out, is removed and its waker woken (after the shard's lock is released). Loads
//! are what count: a wake-up that leaves a word as it was fires nothing and wakes no
//! task. A flood of such wake-ups on one word (more than
//! [`SPURIOUS_BUDGET`](crate::wait::SPURIOUS_BUDGET) in a tick) makes that
//! *registration* deaf for a while, as a blocking waiter (`wait.rs`, `Deafness`): its
//! word leaves the thread's `futex_waitv` set for the deaf period and is looked at every
//! 10 ms (the thread's sleeps are bounded by that while any registration is deaf), so its
//! change fires within 10 ms and its nap ends on time, while the thread goes on
//! listening to every other word of its shard at full speed: a flood on one stream
//! delays no waiter of another. Since layout 3 the words writable waiters sleep on are
//! in the stream's lock object, which read-only users cannot open (`wait.rs`): a reader
//! can flood only the header words that read-only waiters poll.
//!
//! **Naps and liveness.** The thread sleeps until the earliest registration's nap ends,
//! plus a slack of a quarter of that nap, so that naps ending close together end in one
//! wake-up (1,000 followers of quiet streams fall into step and cost one wake-up per
//! thread per tick). A flagged waiter's nap is the liveness tick. When it ends without a
//! change, the waiter's slow check is due: a wait for data asks whether the owner still
//! lives (a dead owner wakes nobody), and the thread runs that probe itself
//! ([`Probe`]: one `fcntl` on the stream's fd) — while the owner lives it renews the
//! nap without waking the task; otherwise the task is woken, re-checks (`wait.rs`) and
//! ends. Other waits (a lossless writer's, which probes its readers) are woken at the
//! nap's end. Where the owner's process can be watched ([`owners`]: a pidfd in one
//! epoll thread), the probe runs every [`owners::WATCHED_NAP`] instead of every tick,
//! and at once, for every owner wait, when a watched process ends. A read-only handle, which cannot set the flag, naps 100 µs growing to
//! 10 ms, exactly as a blocking one, and is woken at each nap's end to look.
//!
//! **Memory.** A registration holds its word's address. The thread loads a word only
//! under its shard's lock, and a registration leaves the shard before its word's mapping
//! can go: the future's drop removes it, and a handle's close ([`forget_words`]) removes
//! whatever a leaked future left. Between building its list and entering the kernel the
//! thread holds no lock; a word unmapped in that gap is read by the kernel alone, which
//! reports `EFAULT` (the thread then rebuilds its list).
//!
//! **Without `futex_waitv`** (kernels before 5.16, or a seccomp filter that refuses it:
//! `ENOSYS`), the threads poll their words instead: each sleeps on its control word for
//! naps growing from 100 µs to 10 ms, reset whenever something fired. Correct, but a
//! wake-up may then take up to 10 ms and an idle thread wakes 100 times a second.
//!
//! **Fork.** The reactor belongs to the process that started it; a forked child that
//! waits asynchronously starts its own (the parent's threads do not exist there). Waits
//! pending at the fork belong to the parent's reactor, whose locks another thread may
//! have held at the fork: as with an async runtime's own state, the child must not poll
//! or drop them (exit with `_exit`, or exec).

use crate::sys::{self, FutexWaitv};
use crate::wait::{Announce, Step};
use parking_lot::Mutex;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub(crate) mod owners;
#[cfg(feature = "tokio")]
pub(crate) mod uring;

/// Registrations per thread: a `futex_waitv` call takes 128 words, one is the thread's
/// control word.
pub(crate) const PER_THREAD: usize = 127;

/// How long a thread with nothing to wait for stays before it ends.
const LINGER: Duration = Duration::from_secs(1);

/// A thread's shortest and longest poll without `futex_waitv`.
const POLL_NAP: (Duration, Duration) = (Duration::from_micros(100), Duration::from_millis(10));

/// Bit 0 of a control word: the thread is about to sleep, or sleeps.
const SLEEPING: u32 = 1;

/// How a registration ended.
const PENDING: u8 = 0;
const WOKEN: u8 = 1;
const TIMED_OUT: u8 = 2;

/// What a registration and its future share: how it ended, and whom to wake.
struct Slot {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    fn fire(&self, how: u8) {
        self.state.store(how, Ordering::SeqCst);
        let waker = self.waker.lock().take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What the thread may check by itself when a registration's nap ends, instead of
/// waking its task: the slow check of a wait for data, the owner's liveness.
#[derive(Clone)]
pub(crate) enum Probe {
    /// Nothing: the task is woken and checks for itself.
    None,
    /// The owner's liveness token on the stream's fd: while the owner lives, the nap is
    /// renewed; once it is dead (or the kernel does not answer) the task is woken. With
    /// the owner's process watched, the nap is [`owners::WATCHED_NAP`] while the watch
    /// stands.
    Owner(RawFd, Option<Arc<owners::OwnerWatch>>),
    /// The waiter is the owner itself, alive by definition: the nap is renewed.
    Renew,
}

impl Probe {
    /// The nap of a registration asking for `nap`.
    fn nap(&self, nap: Duration) -> Duration {
        match self {
            Probe::Owner(_, Some(w)) if w.stands() => nap.max(owners::WATCHED_NAP),
            _ => nap,
        }
    }
}

/// One registered sleep.
struct Reg {
    id: u64,
    /// The word's address (see "Memory" in the module docs).
    word: usize,
    expected: u32,
    nap: Duration,
    /// When the nap ends, and the latest the thread may notice it.
    deadline: Instant,
    latest: Instant,
    probe: Probe,
    slot: Arc<Slot>,
    /// The thread sleeps on the word too (`false`: an io_uring request does, `uring.rs`;
    /// the thread still looks at the word whenever it wakes).
    word_waited: bool,
    /// This registration's defence against wake-ups of its word that change nothing:
    /// while deaf, its word is left out of the thread's `futex_waitv` set and looked at
    /// every [`DEAF_LOOK`](crate::wait::DEAF_LOOK) instead ("Firing" in the module docs).
    deafness: crate::wait::Deafness,
}

impl Reg {
    /// The word's value now.
    fn load(&self) -> u32 {
        // SAFETY: the word is a live, aligned `AtomicU32`: a registration leaves its
        // shard (under the shard's lock, which the caller holds) before the mapping that
        // holds its word can be unmapped — the future's drop removes it, and the
        // handle's close removes what a leaked future left (`forget_words`).
        unsafe { &*(self.word as *const AtomicU32) }.load(Ordering::SeqCst)
    }

    /// The nap ended without a change: whether the probe says to sleep on. The caller
    /// holds the shard's lock.
    fn renew(&mut self, now: Instant) -> bool {
        let again = match self.probe {
            Probe::None => false,
            Probe::Renew => true,
            Probe::Owner(fd, _) => {
                // SAFETY: the descriptor belongs to the handle whose header holds the
                // word, and stays open while the registration exists: the handle's
                // close removes its registrations (`forget_words`, under the shard
                // locks, one of which the caller holds) before the descriptor closes.
                let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                crate::liveness::probe_owner(fd) == crate::OwnerState::Alive
            }
        };
        if again {
            let nap = self.probe.nap(self.nap);
            self.deadline = now + nap;
            self.latest = self.deadline + nap / 4;
        }
        again
    }
}

/// The registrations one thread sleeps on.
struct Shard {
    /// Moved on (by 2) by every new registration; bit 0: the thread sleeps.
    ctl: AtomicU32,
    regs: Mutex<Vec<Reg>>,
    /// A watched owner's process ended: probe every owner wait now.
    probe_now: AtomicBool,
    /// When the thread's sleep ends at the latest, in ns since the reactor began (set
    /// under `regs`' lock with the list it sleeps on): a registration whose word an
    /// io_uring request waits on needs the thread only if its nap ends before that.
    sleep_until: AtomicU64,
}

impl Shard {
    /// Makes the thread look at its registrations again, waking it if it sleeps.
    fn poke(&self) {
        if self.ctl.fetch_add(2, Ordering::SeqCst) & SLEEPING != 0 {
            sys::futex_wake_private(&self.ctl);
        }
    }
}

/// The process's reactor.
struct Reactor {
    /// The process it belongs to.
    pid: u32,
    /// Whether the kernel has `futex_waitv`.
    waitv: bool,
    shards: Mutex<Vec<Arc<Shard>>>,
    next_id: AtomicU64,
    /// What `Shard::sleep_until` counts from.
    began: Instant,
    /// Most threads alive at once, and threads started, since the process began.
    peak_threads: AtomicUsize,
    started_threads: AtomicUsize,
}

static REACTOR: AtomicPtr<Reactor> = AtomicPtr::new(std::ptr::null_mut());

/// Test hook: a reactor started after this is set polls as without `futex_waitv`.
pub(crate) static FORCE_POLLING: AtomicBool = AtomicBool::new(false);

/// This process's reactor, if it has started one.
fn current() -> Option<&'static Reactor> {
    let p = REACTOR.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null pointer was published by `reactor()` from a leaked box and is
    // never freed.
    let r = unsafe { &*p };
    (r.pid == std::process::id()).then_some(r)
}

/// This process's reactor, started now if needed.
fn reactor() -> &'static Reactor {
    loop {
        let p = REACTOR.load(Ordering::Acquire);
        if let Some(r) = current() {
            return r;
        }
        // None yet, or the parent's in a forked child: leave that one as it is (its
        // locks may have been held by threads that do not exist here).
        let fresh = Box::into_raw(Box::new(Reactor {
            pid: std::process::id(),
            waitv: has_futex_waitv(),
            shards: Mutex::new(Vec::new()),
            began: Instant::now(),
            next_id: AtomicU64::new(1),
            peak_threads: AtomicUsize::new(0),
            started_threads: AtomicUsize::new(0),
        }));
        if REACTOR
            .compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `fresh` came from `Box::into_raw` above and was never published.
            drop(unsafe { Box::from_raw(fresh) });
        }
    }
}

/// Whether `futex_waitv` works here: a call on a word that does not hold the value
/// given returns `EAGAIN` at once; a kernel without it says `ENOSYS`.
fn has_futex_waitv() -> bool {
    if FORCE_POLLING.load(Ordering::Relaxed) {
        return false;
    }
    let word = AtomicU32::new(1);
    let entry = [FutexWaitv::new(&word, 0, true)];
    !matches!(
        sys::futex_waitv(&entry, Some(Duration::ZERO)),
        Err(libc::ENOSYS | libc::EINVAL | libc::EPERM)
    )
}

/// A registered sleep, as its future holds it. Dropping it removes the registration.
pub(crate) struct Registration {
    shard: Arc<Shard>,
    id: u64,
    slot: Arc<Slot>,
    /// The io_uring request that sleeps on the word, if one does.
    #[cfg(feature = "tokio")]
    ring: Option<Arc<uring::Ring>>,
}

/// Registers a sleep on `word` while it holds `expected`, for at most `nap`: `waker` is
/// woken when the word moves or the nap ends. (`word` is a header word or a bell in the
/// lock object's page, `wait.rs`, whose type is
/// `std`'s `AtomicU32` except in a `loom` model, `sync.rs`, which registers nothing.)
/// With `one_hop` (an `AsyncStream`'s wait on a word writers wake), an io_uring request
/// of the task's tokio runtime sleeps on the word where it can (`uring.rs`), and the
/// reactor keeps only the nap.
pub(crate) fn register(
    word: &crate::sync::AtomicU32,
    expected: u32,
    nap: Duration,
    probe: Probe,
    one_hop: bool,
    waker: &Waker,
) -> Registration {
    let r = reactor();
    let slot = Arc::new(Slot {
        state: AtomicU8::new(PENDING),
        waker: Mutex::new(Some(waker.clone())),
    });
    let now = Instant::now();
    let id = r.next_id.fetch_add(1, Ordering::Relaxed);
    #[cfg(feature = "tokio")]
    let ring = if one_hop {
        uring::ring().filter(|ring| ring.wait(word, expected, id, &slot))
    } else {
        None
    };
    #[cfg(feature = "tokio")]
    let word_waited = ring.is_none();
    #[cfg(not(feature = "tokio"))]
    let word_waited = {
        let _ = one_hop;
        true
    };
    let first_nap = probe.nap(nap);
    let latest = now + first_nap + first_nap / 4;
    let mut reg = Some(Reg {
        id,
        word: word as *const crate::sync::AtomicU32 as usize,
        expected,
        nap,
        deadline: now + first_nap,
        latest,
        probe,
        slot: slot.clone(),
        word_waited,
        deafness: crate::wait::Deafness::new(),
    });
    let ns = |t: Instant| t.saturating_duration_since(r.began).as_nanos() as u64;
    let mut no_thread = false;
    // Whether the shard's thread must look at its list again: for a word it sleeps on,
    // always; for a nap alone, only if it ends before the thread's sleep does.
    let mut poke = true;
    let shard = {
        let mut shards = r.shards.lock();
        let mut chosen = None;
        for s in shards.iter() {
            let mut regs = s.regs.lock();
            if regs.len() < PER_THREAD {
                regs.extend(reg.take());
                poke = word_waited || ns(latest) < s.sleep_until.load(Ordering::SeqCst);
                chosen = Some(s.clone());
                break;
            }
        }
        match chosen {
            Some(s) => s,
            None => {
                let s = Arc::new(Shard {
                    ctl: AtomicU32::new(0),
                    regs: Mutex::new(reg.take().into_iter().collect()),
                    probe_now: AtomicBool::new(false),
                    sleep_until: AtomicU64::new(0),
                });
                let for_thread = s.clone();
                let spawned = std::thread::Builder::new()
                    .name("fshm-reactor".into())
                    .spawn(move || run(r, for_thread));
                if spawned.is_ok() {
                    shards.push(s.clone());
                    r.started_threads.fetch_add(1, Ordering::Relaxed);
                    r.peak_threads.fetch_max(shards.len(), Ordering::Relaxed);
                } else {
                    s.regs.lock().clear();
                    no_thread = true;
                }
                s
            }
        }
    };
    #[cfg(feature = "tokio")]
    if let Some(ring) = &ring {
        ring.attach(id, &shard);
    }
    if no_thread {
        // No thread could be started to sleep for it: end the nap at once, so the
        // waiter looks again (and registers again) rather than hang.
        slot.fire(TIMED_OUT);
    } else if poke {
        shard.poke();
    }
    Registration {
        shard,
        id,
        slot,
        #[cfg(feature = "tokio")]
        ring,
    }
}

impl Registration {
    /// `Ready(timed_out)` once the registration fired (the word moved, or the nap
    /// ended: `timed_out`); otherwise remembers `cx`'s waker.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let fired = |s: u8| (s != PENDING).then_some(s == TIMED_OUT);
        if let Some(t) = fired(self.slot.state.load(Ordering::SeqCst)) {
            return Poll::Ready(t);
        }
        {
            let mut w = self.slot.waker.lock();
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        // Fired while the waker was replaced: the thread may have taken the old one.
        match fired(self.slot.state.load(Ordering::SeqCst)) {
            Some(t) => Poll::Ready(t),
            None => Poll::Pending,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Fired by the thread, the registration has left its shard already; fired by an
        // io_uring request, or not at all, it has not.
        self.shard.regs.lock().retain(|r| r.id != self.id);
        #[cfg(feature = "tokio")]
        if let Some(ring) = &self.ring {
            // Fired by the thread (its nap, its handle's close) rather than by the
            // request: the request may still sleep.
            ring.cancel(self.id);
        }
    }
}

/// A handle closes: removes every registration on a word in `[start, start + len)` (its
/// header, or its lock object's page of bells), which only a leaked future can have
/// left, before the mapping goes.
pub(crate) fn forget_words(start: usize, len: usize) {
    let Some(r) = current() else { return };
    let mut gone = Vec::new();
    for s in r.shards.lock().iter() {
        s.regs.lock().retain(|reg| {
            let inside = reg.word >= start && reg.word < start + len;
            if inside {
                gone.push(reg.slot.clone());
            }
            !inside
        });
    }
    #[cfg(feature = "tokio")]
    gone.extend(uring::forget_words(start, len));
    for slot in gone {
        slot.fire(TIMED_OUT);
    }
}

/// An io_uring request gave up its word to a flood of wake-ups that change nothing
/// (`uring.rs`): registration `id`'s thread sleeps on the word itself from now on.
#[cfg(feature = "tokio")]
fn hand_over(shard: &Shard, id: u64) {
    let mut regs = shard.regs.lock();
    if let Some(reg) = regs.iter_mut().find(|r| r.id == id) {
        reg.word_waited = true;
        drop(regs);
        shard.poke();
    }
}

/// The thread of one shard.
fn run(r: &'static Reactor, shard: Arc<Shard>) {
    let mut fired: Vec<(Arc<Slot>, u8)> = Vec::new();
    let mut entries: Vec<FutexWaitv> = Vec::with_capacity(PER_THREAD + 1);
    // The registration behind each entry after the first (the control word's).
    let mut entry_ids: Vec<u64> = Vec::with_capacity(PER_THREAD);
    let mut empty_since: Option<Instant> = None;
    let mut poll_nap = POLL_NAP.0;
    let mut waitv = r.waitv;
    // The registration whose word ended the last sleep, if one did.
    let mut woken_by: Option<u64> = None;
    loop {
        let (expected_ctl, until, any_deaf) = {
            let mut regs = shard.regs.lock();
            let now = Instant::now();
            let probe_owners = shard.probe_now.swap(false, Ordering::SeqCst);
            let woken_by = woken_by.take();
            regs.retain_mut(|reg| {
                let due =
                    reg.deadline <= now || (probe_owners && matches!(reg.probe, Probe::Owner(..)));
                let how = if reg.load() != reg.expected {
                    WOKEN
                } else if due && !reg.renew(now) {
                    TIMED_OUT
                } else {
                    if woken_by == Some(reg.id) {
                        // Woken on a word that did not move: a wake-up that changes
                        // nothing ("Firing" in the module docs), counted against this
                        // registration alone.
                        reg.deafness.spurious(now);
                    }
                    return true;
                };
                fired.push((reg.slot.clone(), how));
                false
            });
            if !fired.is_empty() {
                (0, None, false)
            } else {
                let until = if regs.is_empty() {
                    let since = *empty_since.get_or_insert(now);
                    if now >= since + LINGER {
                        drop(regs);
                        if retire(r, &shard) {
                            return;
                        }
                        empty_since = None;
                        continue;
                    }
                    since + LINGER
                } else {
                    empty_since = None;
                    regs.iter().map(|reg| reg.latest).min().unwrap_or(now)
                };
                shard.sleep_until.store(
                    until.saturating_duration_since(r.began).as_nanos() as u64,
                    Ordering::SeqCst,
                );
                // Announce the sleep under the lock: a registration added after this
                // moves the control word, so the sleep below returns at once.
                let ctl = shard.ctl.fetch_or(SLEEPING, Ordering::SeqCst) | SLEEPING;
                entries.clear();
                entry_ids.clear();
                entries.push(FutexWaitv::new(&shard.ctl, ctl, true));
                let mut any_deaf = false;
                for reg in regs.iter_mut().filter(|reg| reg.word_waited) {
                    if reg.deafness.is_deaf(now) {
                        // Out of the set for its deaf period: looked at every
                        // `DEAF_LOOK` (the sleep below is bounded by it).
                        any_deaf = true;
                        continue;
                    }
                    entries.push(reg_entry(reg));
                    entry_ids.push(reg.id);
                }
                (ctl, Some(until), any_deaf)
            }
        };
        if !fired.is_empty() {
            for (slot, how) in fired.drain(..) {
                slot.fire(how);
            }
            poll_nap = POLL_NAP.0;
            continue;
        }
        let now = Instant::now();
        let mut timeout = until.map_or(Duration::ZERO, |u| u.saturating_duration_since(now));
        if any_deaf {
            timeout = timeout.min(crate::wait::DEAF_LOOK);
        }
        if waitv {
            match sys::futex_waitv(&entries, Some(timeout)) {
                Err(libc::ENOSYS | libc::EINVAL | libc::EPERM) => waitv = false,
                Ok(i) if i > 0 => woken_by = entry_ids.get(i - 1).copied(),
                _ => {}
            }
        } else {
            sys::futex_wait_private(&shard.ctl, expected_ctl, timeout.min(poll_nap));
            poll_nap = (poll_nap * 2).min(POLL_NAP.1);
        }
        shard.ctl.fetch_and(!SLEEPING, Ordering::SeqCst);
    }
}

/// A watched owner's process ended ([`owners`]): every thread probes its owner waits
/// now (the dead owner's followers end; the others sleep on).
fn probe_owners_now() {
    let Some(r) = current() else { return };
    for s in r.shards.lock().iter() {
        s.probe_now.store(true, Ordering::SeqCst);
        s.poke();
    }
}

/// The `futex_waitv` entry of a registration: a shared futex.
fn reg_entry(reg: &Reg) -> FutexWaitv {
    // SAFETY: as in `Reg::load`: the caller holds the shard's lock.
    let word = unsafe { &*(reg.word as *const AtomicU32) };
    FutexWaitv::new(word, reg.expected, false)
}

/// Ends a shard whose thread found it empty for [`LINGER`]: removes it from the
/// reactor, unless a registration arrived meanwhile (then `false`).
fn retire(r: &Reactor, shard: &Arc<Shard>) -> bool {
    let mut shards = r.shards.lock();
    let regs = shard.regs.lock();
    if !regs.is_empty() {
        return false;
    }
    shards.retain(|s| !Arc::ptr_eq(s, shard));
    true
}

/// Registrations pending in this process (a test hook).
#[cfg(feature = "__reactor-stats")]
pub(crate) fn registrations() -> usize {
    current().map_or(0, |r| {
        r.shards.lock().iter().map(|s| s.regs.lock().len()).sum()
    })
}

/// Reactor threads alive now, the most alive at once, and how many were started, in
/// this process.
#[cfg(feature = "__reactor-stats")]
pub(crate) fn thread_counts() -> (usize, usize, usize) {
    current().map_or((0, 0, 0), |r| {
        (
            r.shards.lock().len(),
            r.peak_threads.load(Ordering::Relaxed),
            r.started_threads.load(Ordering::Relaxed),
        )
    })
}

/// Whether this process's reactor sleeps in `futex_waitv` (`false`: it polls).
#[cfg(feature = "__reactor-stats")]
pub(crate) fn uses_futex_waitv() -> bool {
    reactor().waitv
}

/// The async form of [`wait_on`](crate::wait::wait_on): the same announce/re-check rule, but instead of
/// sleeping in `FUTEX_WAIT` the waiter registers `(word, seen, nap)` with the process's
/// reactor (this module), whose threads sleep on many words at once and wake the
/// task's `Waker` when the word moves or the nap ends. No deadline: a caller that wants
/// one races the future against its runtime's timer.
///
/// Dropping it (or [`AsyncWait::reset`]) removes its registration.
#[derive(Default)]
pub(crate) struct AsyncWait {
    announce: Option<Announce>,
    reg: Option<Registration>,
    word: usize,
}

impl AsyncWait {
    /// Polls the wait on `word` for `check` (as in [`wait_on`](crate::wait::wait_on)). `Pending` leaves a
    /// registration that wakes `cx`'s waker.
    ///
    /// `bell`: the word a writable handle sleeps on (its lock object's page, which only
    /// writers can map; `None` for a read-only handle, which naps on `word`);
    /// `woken_always`: the writer wakes `word` after every commit (a replica,
    /// `wait.rs`), so such a nap lasts a whole tick instead of polling. `probe`
    /// gives (when the wait registers) what the reactor may check itself when a nap ends
    /// without a change, instead of waking the task: the liveness part of `check(true)`.
    /// The task is woken only if the probe fails; its own `check(true)` then decides.
    /// `one_hop`: an io_uring request of the task's tokio runtime may sleep on the bell
    /// (`reactor/uring.rs`; only with a bell, since writers ring bells only).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn poll<T>(
        &mut self,
        word: &crate::sync::AtomicU32,
        bell: Option<&crate::sync::AtomicU32>,
        woken_always: bool,
        probe: impl FnOnce() -> Probe,
        one_hop: bool,
        cx: &mut Context<'_>,
        mut check: impl FnMut(bool) -> Option<T>,
    ) -> Poll<T> {
        let can_flag = bell.is_some();
        let sleep_word = bell.unwrap_or(word);
        let addr = sleep_word as *const crate::sync::AtomicU32 as usize;
        if self.word != addr {
            // Another word than last time (the waiter moved to another stream).
            self.reset();
            self.word = addr;
        }
        if let Some(reg) = &self.reg {
            match reg.poll(cx) {
                Poll::Pending => {
                    // Polled before the reactor fired (by the runtime for another reason,
                    // or by a caller that polls on its own): answer if the answer is there.
                    if let Some(v) = check(false) {
                        self.reset();
                        return Poll::Ready(v);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(timed_out) => {
                    self.reg = None;
                    if let Some(a) = &mut self.announce {
                        a.slept(timed_out);
                    }
                }
            }
        }
        let announce = self
            .announce
            .get_or_insert_with(|| Announce::new(can_flag, woken_always));
        match announce.step(word, bell, &mut check) {
            Step::Ready(v) => {
                self.announce = None;
                Poll::Ready(v)
            }
            Step::Sleep { seen, nap } => {
                self.reg = Some(register(
                    sleep_word,
                    seen,
                    nap,
                    probe(),
                    one_hop && can_flag,
                    cx.waker(),
                ));
                Poll::Pending
            }
        }
    }

    /// Forgets the wait in progress, removing its registration.
    pub(crate) fn reset(&mut self) {
        self.reg = None;
        self.announce = None;
    }
}

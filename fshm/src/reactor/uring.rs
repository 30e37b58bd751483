//! One wake-up instead of two for tokio (feature `tokio`): an [`AsyncStream`]'s waits
//! for data also sleep in io_uring `FUTEX_WAIT` requests (Linux 6.7+) whose completions
//! the runtime's own poller sees.
//!
//! Through the reactor threads alone, a writer's `FUTEX_WAKE` wakes a reactor thread,
//! which wakes the runtime's thread: two wake-ups in a row, and on an unpinned machine
//! they often land on different CPUs (BENCHMARKS.md, "Async"). Here each tokio runtime
//! has one io_uring instance ([`Ring`]) whose descriptor sits in the runtime's I/O driver
//! (`AsyncFd`): the writer's `FUTEX_WAKE` completes the request, the ring's descriptor
//! becomes readable, and the runtime's thread — asleep in its `epoll_wait` — wakes
//! directly, runs the ring's reaper task, which wakes the waiting task. The reactor
//! still holds the wait, without its word ([`super::register`]): for the nap, the
//! owner's liveness probe and the read-only handles, exactly as before.
//!
//! Only waits that announce themselves on the word (writable handles; a writer wakes
//! the word only then) go through a ring, and only an `AsyncStream`'s: its contract is
//! tokio's, whose I/O types need a runtime with I/O enabled; the runtime-agnostic
//! [`AsyncWaiter`](crate::AsyncWaiter) never touches one. Where io_uring or its
//! `FUTEX_WAIT` is missing (older kernels, a seccomp filter, `io_uring_disabled`), the
//! first attempt says so and every wait uses the reactor threads alone.
//!
//! A request completes whenever anyone wakes its word, a process with read-only access
//! included; only a completion that finds the word moved wakes the task. One that finds
//! it unchanged is made again at once, without waking the task; after more than
//! [`SPURIOUS_BUDGET`] of those the wait leaves the ring and its reactor thread sleeps on
//! the word instead, where a flood makes the thread deaf for a while (`reactor/mod.rs`,
//! "Firing"): so a flood of wake-ups costs neither the task nor the runtime's thread.
//!
//! A request's user data is its registration's id. A registration that ends otherwise
//! (dropped, timed out, its handle closed) cancels its request; the completion of a
//! cancelled request finds no wait and is ignored. A runtime that shuts down drops the
//! reaper task, which removes the ring; closing the ring cancels what is left in it.
//!
//! [`AsyncStream`]: crate::AsyncStream

use super::{Shard, Slot, WOKEN};
use crate::sync::AtomicU32;
use crate::sys;
use crate::wait::SPURIOUS_BUDGET;
use io_uring::{opcode, IoUring};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;

/// User data of cancel requests (a registration id never has this bit).
const CANCEL: u64 = 1 << 63;

/// Entries of each ring's submission queue, and of its completion queue: room for the
/// completions of as many waits as a burst of commits may wake at once (a queue that
/// still overflows keeps the rest in the kernel until it is drained, `reap_completions`).
const ENTRIES: u32 = 256;
const CQ_ENTRIES: u32 = 8192;

/// Whether io_uring with `FUTEX_WAIT` works here: unknown, yes, no.
static SUPPORT: AtomicU8 = AtomicU8::new(0);
const YES: u8 = 1;
const NO: u8 = 2;

/// The rings of one process, one per tokio runtime that waited through one.
struct Rings {
    /// The process they belong to.
    pid: u32,
    list: Mutex<Vec<Arc<Ring>>>,
}

/// This process's [`Rings`], made on first use and never freed. A child `fork(2)` made
/// finds its parent's here and makes its own instead: the parent's list and each ring's
/// state are locked by the parent's threads (every handle's close takes the list's
/// lock), and a thread that held one at the fork does not exist in the child, so the
/// child would wait for it forever. The parent's rings are left untouched (leaked): their
/// runtimes do not run in the child.
static RINGS: AtomicPtr<Rings> = AtomicPtr::new(std::ptr::null_mut());

/// This process's list of rings.
fn rings() -> &'static Mutex<Vec<Arc<Ring>>> {
    let pid = std::process::id();
    loop {
        let p = RINGS.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: a non-null pointer was published below from a leaked box and is
            // never freed.
            let r = unsafe { &*p };
            if r.pid == pid {
                return &r.list;
            }
        }
        let fresh = Box::into_raw(Box::new(Rings {
            pid,
            list: Mutex::new(Vec::new()),
        }));
        if RINGS
            .compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `fresh` came from `Box::into_raw` above and was never published.
            drop(unsafe { Box::from_raw(fresh) });
        }
    }
}

/// One runtime's io_uring instance and the waits sleeping in it.
pub(crate) struct Ring {
    runtime: tokio::runtime::Id,
    /// The `IoUring`'s descriptor (owned by it).
    fd: RawFd,
    state: Mutex<State>,
    /// The reaper task runs (false once its runtime shut down).
    alive: AtomicBool,
}

struct State {
    uring: IoUring,
    waits: HashMap<u64, Wait>,
}

/// A wait asleep in a request.
struct Wait {
    slot: Arc<Slot>,
    /// The word's address and the value the request sleeps while it holds.
    word: usize,
    expected: u32,
    /// Completions that found the word unchanged (re-armed).
    spurious: u32,
    /// The reactor shard that holds the registration (set once `register` chose it).
    shard: Option<Arc<Shard>>,
}

impl Wait {
    /// Whether the word still holds the value the request slept on.
    fn unchanged(&self) -> bool {
        // SAFETY: the word is a live, aligned `AtomicU32`: a wait leaves `waits` (under
        // the state's lock, which the caller holds) before the mapping that holds its
        // word can be unmapped — the registration's drop cancels it (`Ring::cancel`),
        // and the handle's close removes what a leaked future left (`forget_words`).
        unsafe { &*(self.word as *const AtomicU32) }.load(Ordering::SeqCst) == self.expected
    }
}

/// The request that sleeps on `word` while it holds `expected`, as registration `id`.
fn futex_wait_entry(word: usize, expected: u32, id: u64) -> io_uring::squeue::Entry {
    opcode::FutexWait::new(
        word as *const u32,
        u64::from(expected),
        u64::from(u32::MAX),
        // A 32-bit word, shared between processes.
        sys::FUTEX2_SIZE_U32,
    )
    .build()
    .user_data(id)
}

/// The ring of the calling task's runtime, made (with its reaper task) on first use;
/// `None` outside a tokio runtime or where io_uring cannot wait on futexes.
///
/// # Panics
/// Inside a tokio runtime built without I/O (`enable_io`), as tokio's I/O types do.
pub(crate) fn ring() -> Option<Arc<Ring>> {
    if SUPPORT.load(Ordering::Relaxed) == NO {
        return None;
    }
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let id = handle.id();
    let mut rings = rings().lock();
    if let Some(r) = rings
        .iter()
        .find(|r| r.runtime == id && r.alive.load(Ordering::Acquire))
    {
        return Some(r.clone());
    }
    let Some(uring) = new_uring() else {
        SUPPORT.store(NO, Ordering::Relaxed);
        return None;
    };
    SUPPORT.store(YES, Ordering::Relaxed);
    let ring = Arc::new(Ring {
        runtime: id,
        fd: uring.as_raw_fd(),
        state: Mutex::new(State {
            uring,
            waits: HashMap::new(),
        }),
        alive: AtomicBool::new(true),
    });
    // SAFETY: `RingFd` holds the ring, whose `IoUring` owns the descriptor: it stays
    // open, the same description, for as long as the `AsyncFd` holds the `RingFd`.
    let readable = unsafe {
        AsyncFd::register_with_interest(RingFd(ring.clone()), tokio::io::Interest::READABLE)
    }
    .ok()?;
    rings.push(ring.clone());
    drop(rings);
    handle.spawn(reap(ring.clone(), readable));
    Some(ring)
}

/// A ring that supports `FUTEX_WAIT`, or `None`.
fn new_uring() -> Option<IoUring> {
    let uring = IoUring::builder()
        .setup_cqsize(CQ_ENTRIES)
        .build(ENTRIES)
        .ok()?;
    let mut probe = io_uring::Probe::new();
    uring.submitter().register_probe(&mut probe).ok()?;
    (probe.is_supported(opcode::FutexWait::CODE) && probe.is_supported(opcode::AsyncCancel::CODE))
        .then_some(uring)
}

/// The ring's descriptor as the runtime's I/O driver watches it; holding the ring keeps
/// it open.
struct RingFd(Arc<Ring>);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd
    }
}

impl Ring {
    /// Sleeps `slot` on `word` while it holds `expected`, as registration `id`; `false`
    /// if the request could not be made (the reactor then waits on the word itself).
    pub(super) fn wait(&self, word: &AtomicU32, expected: u32, id: u64, slot: &Arc<Slot>) -> bool {
        debug_assert_eq!(id & CANCEL, 0);
        let word = word as *const AtomicU32 as usize;
        let entry = futex_wait_entry(word, expected, id);
        let mut st = self.state.lock();
        // SAFETY: the request names the word's address, which the kernel reads once
        // when it takes the request (and never writes): the word lives in the
        // handle's mapping, which outlives the request's submission — the caller holds
        // the handle; a request still pending when the mapping goes only stays asleep
        // until cancelled (`cancel`) or the ring closes.
        if unsafe { push(&mut st.uring, &entry) }.is_err() {
            return false;
        }
        st.waits.insert(
            id,
            Wait {
                slot: slot.clone(),
                word,
                expected,
                spurious: 0,
                shard: None,
            },
        );
        if submit(&mut st.uring).is_err() {
            st.waits.remove(&id);
            return false;
        }
        true
    }

    /// Ends registration `id`'s request, if it is still asleep.
    pub(crate) fn cancel(&self, id: u64) {
        let mut st = self.state.lock();
        if st.waits.remove(&id).is_none() {
            return;
        }
        let entry = opcode::AsyncCancel::new(id).build().user_data(CANCEL | id);
        // SAFETY: a cancel request refers to no memory.
        if unsafe { push(&mut st.uring, &entry) }.is_ok() {
            let _ = submit(&mut st.uring);
        }
    }

    /// Registration `id` belongs to `shard` (where a flooded request hands its word
    /// over, [`Ring::reap_completions`]).
    pub(super) fn attach(&self, id: u64, shard: &Arc<Shard>) {
        if let Some(w) = self.state.lock().waits.get_mut(&id) {
            w.shard = Some(shard.clone());
        }
    }

    /// Takes every completion: the waits whose request completed are woken (woken by a
    /// writer, or the word moved before the request slept; anything else — an error —
    /// also wakes: the task looks again). A wake-up that left the word unchanged
    /// (anyone who maps it may wake it) wakes nothing: the request is made again; after
    /// more than [`SPURIOUS_BUDGET`] of those the wait leaves the ring and its reactor
    /// thread sleeps on the word instead, deaf to a flood (`wait.rs`, `Deafness`).
    fn reap_completions(&self) -> Vec<Arc<Slot>> {
        let mut st = self.state.lock();
        let completion = |c: io_uring::cqueue::Entry| (c.user_data(), c.result());
        let mut done: Vec<(u64, i32)> = st.uring.completion().map(completion).collect();
        // Completions the full queue could not take wait in the kernel; entering it moves
        // them into the room just made, as many as fit each time.
        while st.uring.submission().cq_overflow() && submit(&mut st.uring).is_ok() {
            let before = done.len();
            done.extend(st.uring.completion().map(completion));
            if done.len() == before {
                break;
            }
        }
        let mut woken = Vec::new();
        let mut rearmed = Vec::new();
        let mut handed = Vec::new();
        for (id, res) in done {
            if id & CANCEL != 0 {
                continue;
            }
            let Some(w) = st.waits.get_mut(&id) else {
                continue;
            };
            if res == 0 && w.unchanged() {
                w.spurious += 1;
                if w.spurious <= SPURIOUS_BUDGET {
                    let entry = futex_wait_entry(w.word, w.expected, id);
                    // SAFETY: as in `wait`: the word's mapping outlives the wait's
                    // entry in `waits`, and the request is cancelled when that goes.
                    if unsafe { push(&mut st.uring, &entry) }.is_ok() {
                        rearmed.push(id);
                        continue;
                    }
                } else if let Some(w) = st.waits.remove(&id) {
                    if let Some(shard) = w.shard {
                        handed.push((shard, id));
                        continue;
                    }
                    woken.push(w.slot);
                    continue;
                }
            }
            woken.extend(st.waits.remove(&id).map(|w| w.slot));
        }
        if !rearmed.is_empty() && submit(&mut st.uring).is_err() {
            // Not asleep after all: the tasks look again.
            woken.extend(
                rearmed
                    .iter()
                    .filter_map(|id| st.waits.remove(id).map(|w| w.slot)),
            );
        }
        drop(st);
        for (shard, id) in handed {
            super::hand_over(&shard, id);
        }
        woken
    }

    /// A handle closes: ends the requests of waits on a word in `[start, start + len)`
    /// (its header), which only a leaked future can have left, before the mapping goes.
    fn forget_words(&self, start: usize, len: usize) -> Vec<Arc<Slot>> {
        let mut st = self.state.lock();
        let ids: Vec<u64> = st
            .waits
            .iter()
            .filter(|(_, w)| w.word >= start && w.word < start + len)
            .map(|(id, _)| *id)
            .collect();
        let mut gone = Vec::new();
        for id in ids {
            gone.extend(st.waits.remove(&id).map(|w| w.slot));
            let entry = opcode::AsyncCancel::new(id).build().user_data(CANCEL | id);
            // SAFETY: a cancel request refers to no memory.
            let _ = unsafe { push(&mut st.uring, &entry) };
        }
        if !gone.is_empty() {
            let _ = submit(&mut st.uring);
        }
        gone
    }
}

/// Submits what is queued (`io_uring_enter`), again if a signal interrupted it.
fn submit(uring: &mut IoUring) -> std::io::Result<usize> {
    loop {
        match uring.submit() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Pushes `entry`, making room by submitting what is queued if the queue is full.
///
/// # Safety
/// As for `io_uring::SubmissionQueue::push`: the memory `entry` refers to stays valid
/// while the kernel may read it.
unsafe fn push(uring: &mut IoUring, entry: &io_uring::squeue::Entry) -> Result<(), ()> {
    // SAFETY: the caller's promise.
    if unsafe { uring.submission().push(entry) }.is_ok() {
        return Ok(());
    }
    submit(uring).map_err(drop)?;
    // SAFETY: the caller's promise.
    unsafe { uring.submission().push(entry) }.map_err(drop)
}

/// The reaper task of a ring: wakes the waits whose requests completed. Dropped with its
/// runtime: the ring then leaves the list, and its pending waits are ended.
async fn reap(ring: Arc<Ring>, readable: AsyncFd<RingFd>) {
    struct Gone(Arc<Ring>);
    impl Drop for Gone {
        fn drop(&mut self) {
            self.0.alive.store(false, Ordering::Release);
            rings().lock().retain(|r| !Arc::ptr_eq(r, &self.0));
            let left: Vec<Arc<Slot>> = self
                .0
                .state
                .lock()
                .waits
                .drain()
                .map(|(_, w)| w.slot)
                .collect();
            for slot in left {
                slot.fire(super::TIMED_OUT);
            }
        }
    }
    let _gone = Gone(ring.clone());
    loop {
        let Ok(mut ready) = readable.readable().await else {
            return;
        };
        // Cleared before the completions are taken: one that comes after is a new edge.
        ready.clear_ready();
        for slot in ring.reap_completions() {
            slot.fire(WOKEN);
        }
    }
}

/// A handle closes: every ring forgets the waits on its header's words (see
/// [`Ring::forget_words`]); returns their slots, to be woken.
pub(super) fn forget_words(start: usize, len: usize) -> Vec<Arc<Slot>> {
    let rings: Vec<Arc<Ring>> = rings().lock().clone();
    rings
        .iter()
        .flat_map(|r| r.forget_words(start, len))
        .collect()
}

/// Waits asleep in rings, in this process (a test hook).
#[cfg(feature = "__reactor-stats")]
pub(crate) fn pending() -> usize {
    rings()
        .lock()
        .iter()
        .map(|r| r.state.lock().waits.len())
        .sum()
}

/// Whether waits go through io_uring here (`None`: not tried yet).
#[cfg(feature = "__reactor-stats")]
pub(crate) fn supported() -> Option<bool> {
    match SUPPORT.load(Ordering::Relaxed) {
        YES => Some(true),
        NO => Some(false),
        _ => None,
    }
}

/// Runs `f` with this process's list of rings locked (a test hook).
#[cfg(feature = "__test-hooks")]
pub(crate) fn with_list_locked<R>(f: impl FnOnce() -> R) -> R {
    let _held = rings().lock();
    f()
}

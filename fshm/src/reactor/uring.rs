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
//! [`AsyncWaiter`](super::future::AsyncWaiter) never touches one. Where io_uring or its
//! `FUTEX_WAIT` is missing (older kernels, a seccomp filter, `io_uring_disabled`), the
//! first attempt says so and every wait uses the reactor threads alone.
//!
//! A request's user data is its registration's id. A registration that ends otherwise
//! (dropped, timed out, its handle closed) cancels its request; the completion of a
//! cancelled request finds no wait and is ignored. A runtime that shuts down drops the
//! reaper task, which removes the ring; closing the ring cancels what is left in it.
//!
//! [`AsyncStream`]: crate::AsyncStream

use super::{Slot, WOKEN};
use crate::sync::AtomicU32;
use crate::sys;
use io_uring::{opcode, IoUring};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
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

/// The rings, one per tokio runtime that waited through one.
static RINGS: Mutex<Vec<Arc<Ring>>> = Mutex::new(Vec::new());

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
    waits: HashMap<u64, Arc<Slot>>,
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
    let mut rings = RINGS.lock();
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
        let entry = opcode::FutexWait::new(
            word as *const AtomicU32 as *const u32,
            u64::from(expected),
            u64::from(u32::MAX),
            // A 32-bit word, shared between processes.
            sys::FUTEX2_SIZE_U32,
        )
        .build()
        .user_data(id);
        let mut st = self.state.lock();
        // SAFETY: the request names the word's address, which the kernel reads once
        // when it takes the request (and never writes): the word lives in the
        // handle's mapping, which outlives the request's submission — the caller holds
        // the handle; a request still pending when the mapping goes only stays asleep
        // until cancelled (`cancel`) or the ring closes.
        if unsafe { push(&mut st.uring, &entry) }.is_err() {
            return false;
        }
        st.waits.insert(id, slot.clone());
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

    /// Takes every completion: the waits whose request completed are woken (woken by a
    /// writer, or the word moved before the request slept; anything else — an error —
    /// also wakes: the task looks again).
    fn reap_completions(&self) -> Vec<Arc<Slot>> {
        let mut st = self.state.lock();
        let mut done: Vec<u64> = st.uring.completion().map(|c| c.user_data()).collect();
        // Completions the full queue could not take wait in the kernel; entering it moves
        // them into the room just made, as many as fit each time.
        while st.uring.submission().cq_overflow() && submit(&mut st.uring).is_ok() {
            let before = done.len();
            done.extend(st.uring.completion().map(|c| c.user_data()));
            if done.len() == before {
                break;
            }
        }
        done.into_iter()
            .filter(|id| id & CANCEL == 0)
            .filter_map(|id| st.waits.remove(&id))
            .collect()
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
            RINGS.lock().retain(|r| !Arc::ptr_eq(r, &self.0));
            let left: Vec<Arc<Slot>> = self.0.state.lock().waits.drain().map(|(_, s)| s).collect();
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

/// Waits asleep in rings, in this process (a test hook).
#[cfg(feature = "__reactor-stats")]
pub(crate) fn pending() -> usize {
    RINGS
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

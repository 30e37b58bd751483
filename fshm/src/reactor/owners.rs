//! Watching owners die: one `epoll` thread over the owners' pidfds, so that idle async
//! followers need not probe every tick.
//!
//! The owner token (`liveness.rs`) is what says whether an owner lives; a probe of it is
//! one `fcntl`, which 1,000 idle followers would make 20,000 times a second at the
//! liveness tick. The header also records the owner's pid and pid namespace (a hint a
//! trusted writer wrote, never proof). A handle that waits asynchronously for data opens
//! a pidfd for that pid once ([`watch`]) — only if its pid namespace is the owner's, and
//! only if the token is held right after the pidfd exists, so the pidfd names a process
//! that was alive while the owner lived — and adds it to this process's epoll instance.
//! Handles whose owners are one process share one watch (one pidfd); at most 1,024
//! processes, and an eighth of the descriptor limit, are watched at once (owners past
//! that are probed every tick, as before).
//! While that pidfd has not fired, the reactor probes the token of such a follower only
//! every [`WATCHED_NAP`] instead of every tick.
//!
//! When a watched process ends, the thread here marks its watch fired and makes every
//! reactor thread probe all its owner waits at once: a dead owner's followers end within
//! a wake-up. A fired watch is not trusted again: if the token is still held (the pid
//! was the parent of a fork that kept the owner's descriptor, or a writer wrote a wrong
//! pid) its followers go back to probing every tick. The cases the pidfd cannot see — a
//! token released while the recorded process lives (its descriptor closed without a
//! clean close, across an `exec`), or a wrong pid that stays alive — are caught by the
//! bounded probe every [`WATCHED_NAP`]: the rule that every wait rechecks liveness on a
//! bounded period holds, with a longer period for watched owners.

use crate::liveness::{probe_owner, OwnerState};
use crate::sys;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often a follower whose owner is watched probes the token anyway.
pub(crate) const WATCHED_NAP: Duration = Duration::from_secs(1);

/// At most this many owner processes are watched at once, and at most an eighth of the
/// process's descriptor limit: each is a descriptor the application did not open
/// itself. Owners past that are probed every tick, as without a watch.
const MOST_WATCHED: usize = 1024;

/// One owner process, watched for the handles whose streams it owns.
pub(crate) struct OwnerWatch {
    /// The owner's pid, the watch's key.
    owner: u32,
    pidfd: OwnedFd,
    /// The process whose watcher holds it (a forked child's handles are not watched).
    pid: u32,
    /// The process ended (or its watch could not be kept): probe every tick again.
    fired: AtomicBool,
}

impl OwnerWatch {
    /// Whether the watch still stands for the owner in this process: the long nap
    /// applies.
    pub(crate) fn stands(&self) -> bool {
        !self.fired.load(Ordering::Acquire) && self.pid == std::process::id()
    }
}

impl Drop for OwnerWatch {
    fn drop(&mut self) {
        if let Some(w) = current() {
            if w.pid == self.pid {
                let mut watches = w.watches.lock();
                // Only if the entry is this watch (a fired one was replaced).
                if watches
                    .get(&self.owner)
                    .is_some_and(|e| std::ptr::eq(e.as_ptr(), self))
                {
                    watches.remove(&self.owner);
                }
                sys::epoll_del(w.epoll.as_fd(), self.pidfd.as_fd());
            }
        }
    }
}

/// The process's watcher: an epoll instance and the thread that waits on it.
struct Watcher {
    pid: u32,
    epoll: OwnedFd,
    /// The standing watches by owner pid (the epoll tag of their pidfd).
    watches: Mutex<HashMap<u32, Weak<OwnerWatch>>>,
}

/// The watcher of the process that started it, published once (the same lock-free
/// pattern as the reactor's: a forked child must not take a lock another thread of its
/// parent may have held at the fork).
static WATCHER: AtomicPtr<Watcher> = AtomicPtr::new(std::ptr::null_mut());

/// This process's watcher if it started one.
fn current() -> Option<&'static Watcher> {
    let p = WATCHER.load(Ordering::Acquire);
    // SAFETY: a non-null pointer was published by `watcher()` from a leaked box and is
    // never freed.
    let w = unsafe { p.as_ref() }?;
    (w.pid == std::process::id()).then_some(w)
}

/// This process's watcher, started on first use; `None` where it cannot run (no epoll).
/// Should its thread not start, the watches it takes never fire: their followers keep
/// the probe every [`WATCHED_NAP`].
fn watcher() -> Option<&'static Watcher> {
    loop {
        if let Some(w) = current() {
            return Some(w);
        }
        // None yet, or the parent's in a forked child (its thread does not run here).
        let old = WATCHER.load(Ordering::Acquire);
        let fresh = Box::into_raw(Box::new(Watcher {
            pid: std::process::id(),
            epoll: sys::epoll_create().ok()?,
            watches: Mutex::new(HashMap::new()),
        }));
        if WATCHER
            .compare_exchange(old, fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `fresh` came from `Box::into_raw` above and was never published.
            drop(unsafe { Box::from_raw(fresh) });
            continue;
        }
        // SAFETY: just published from a leaked box; never freed.
        let w: &'static Watcher = unsafe { &*fresh };
        let _ = std::thread::Builder::new()
            .name("fshm-owners".into())
            .spawn(move || run(w));
        return Some(w);
    }
}

/// Watches the owner whose pid and pid namespace a stream's header records, for the
/// handle on `stream_fd`; `None` if it cannot be watched (see the module docs), and the
/// handle then probes every tick.
pub(crate) fn watch(pid: u32, pidns: u64, stream_fd: BorrowedFd<'_>) -> Option<Arc<OwnerWatch>> {
    if pid == 0 || pidns == 0 || pidns != sys::pid_namespace() {
        return None;
    }
    let w = watcher()?;
    let (known, watched) = {
        let watches = w.watches.lock();
        (watches.get(&pid).and_then(Weak::upgrade), watches.len())
    };
    if let Some(watch) = known.filter(|k| k.stands()) {
        // The token held now, while that process has not ended: it is the owner.
        return (probe_owner(stream_fd) == OwnerState::Alive).then_some(watch);
    }
    let most = sys::nofile_limit().map_or(64, |n| (n / 8) as usize);
    if watched >= MOST_WATCHED.min(most) {
        return None;
    }
    let pidfd = sys::pidfd_open(pid).ok()?;
    // The token held now, after the pidfd exists: the recorded pid was not reused by
    // another process after the owner died (that would have released the token first).
    if probe_owner(stream_fd) != OwnerState::Alive {
        return None;
    }
    let watch = Arc::new(OwnerWatch {
        owner: pid,
        pidfd,
        pid: w.pid,
        fired: AtomicBool::new(false),
    });
    let mut watches = w.watches.lock();
    // Let go of after the lock: the last reference's drop takes it.
    let other = watches.get(&pid).and_then(Weak::upgrade);
    if let Some(o) = &other {
        if o.stands() {
            // Another handle watched it meanwhile: share that one.
            drop(watches);
            return other;
        }
        // A fired watch still in the map (its process ended): this one replaces it.
        sys::epoll_del(w.epoll.as_fd(), o.pidfd.as_fd());
    }
    let added = sys::epoll_add(w.epoll.as_fd(), watch.pidfd.as_fd(), u64::from(pid)).is_ok();
    if added {
        watches.insert(pid, Arc::downgrade(&watch));
    }
    drop(watches);
    drop(other);
    added.then_some(watch)
}

/// The watcher's thread: marks the watches of ended processes fired and has every
/// reactor thread probe its owner waits.
fn run(w: &'static Watcher) {
    let mut ids = Vec::new();
    loop {
        let failed = sys::epoll_wait(w.epoll.as_fd(), &mut ids).is_err();
        // The watches fired, taken out of the lock before they are let go: the last
        // reference's drop takes the lock.
        let fired: Vec<Arc<OwnerWatch>> = {
            let watches = w.watches.lock();
            if failed {
                // Nothing can go wrong with a valid instance and buffer; should it, stop
                // watching rather than spin: every watch falls back to the tick.
                watches.values().filter_map(Weak::upgrade).collect()
            } else {
                ids.iter()
                    .filter_map(|&pid| watches.get(&(pid as u32)).and_then(Weak::upgrade))
                    .collect()
            }
        };
        for watch in &fired {
            watch.fired.store(true, Ordering::Release);
            // Level-triggered: an ended process stays readable.
            sys::epoll_del(w.epoll.as_fd(), watch.pidfd.as_fd());
        }
        drop(fired);
        super::probe_owners_now();
        if failed {
            return;
        }
    }
}

/// Watches in this process that still stand (a test hook).
#[cfg(feature = "__reactor-stats")]
pub(crate) fn standing() -> usize {
    let Some(w) = current() else { return 0 };
    let all: Vec<Arc<OwnerWatch>> = w
        .watches
        .lock()
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    all.iter().filter(|w| w.stands()).count()
}

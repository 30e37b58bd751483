//! What the handles of one process on one stream object share: the process-local
//! rules that no protocol over shared memory can keep, because the kernel and the
//! header cannot tell this process's handles apart from each other in time.
//!
//! One [`Local`] exists per object (its device and inode, so two names of one object
//! share it) while a handle of this process holds it; handles look it up on first need
//! (a guest that never writes never asks).
//!
//! **One ring writer per process.** A ring's write claims the bytes past the committed
//! length without a lock (`ring.rs`); two handles writing at once claim the same bytes.
//! Across processes that is the documented rule "a ring has one writer" (processes
//! with write access are trusted). In this process it would let safe code hold two
//! `&mut [u8]` over one byte (two [`Reservation`](crate::Reservation)s), or copy into
//! bytes a reservation lends. So the handles of this process that write one ring are
//! either one handle without append mode, or any number of handles in append mode
//! (whose claims the append token serialises): a handle joins on its first write or
//! reservation and stays until it closes; one that would break the rule gets `EBUSY`.
//!
//! **The append token held by a reservation.** A reservation under the append token
//! holds it until commit. The token is an OFD lock, and another handle of this process
//! holds another open file description: its append in the same thread would wait for
//! itself forever. So the thread whose reservation holds the token is recorded here,
//! and an append or a reservation of another handle in that thread fails with
//! `EDEADLK` instead (other threads wait, as other processes do).
//!
//! **Forks.** A child made by `fork(2)` is another process: it starts with no writers
//! and no token recorded ([`generation`] moves on in the child, and every record of an
//! older generation counts as none). Its copies of its parent's handles join again on
//! their first write, as the child's own handles do, so the rules hold in the child as
//! they do in the parent.

use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// The process-local state of one stream object.
#[derive(Debug)]
pub(crate) struct Local {
    /// (device, inode) of the object.
    identity: (u64, u64),
    /// The process [`generation`] it describes.
    generation: u64,
    /// The handles of this process writing the object as a ring.
    ring_writers: Mutex<RingWriters>,
    /// [`thread_key`] of the thread whose reservation holds the append token through a
    /// handle of this process; 0: none does.
    token_thread: AtomicU64,
}

/// Which handles of this process write a ring.
#[derive(Debug, Default)]
struct RingWriters {
    /// A handle without append mode writes it.
    plain: bool,
    /// How many handles in append mode write it.
    appenders: u32,
}

/// Why a handle may not write a ring.
pub(crate) enum Refused {
    /// Another handle of this process writes it without append mode.
    PlainWriter,
    /// Handles of this process append to it, and this one writes without append mode.
    Appenders,
}

impl Refused {
    pub(crate) fn message(&self) -> &'static str {
        match self {
            Refused::PlainWriter => {
                "another handle of this process writes this ring without append mode: a \
                 ring has one writer (close it, or write through it)"
            }
            Refused::Appenders => {
                "handles of this process append to this ring: a handle without append \
                 mode would write over their claims (open this one with append mode)"
            }
        }
    }
}

impl Local {
    /// Whether it describes this process (not a parent's state a fork copied).
    pub(crate) fn is_current(&self) -> bool {
        self.generation == generation()
    }

    /// Joins the ring's writers of this process: a handle in append mode (`append`) or
    /// not. Called once per handle; [`leave_ring_writers`](Self::leave_ring_writers)
    /// undoes it when the handle closes.
    pub(crate) fn join_ring_writers(&self, append: bool) -> Result<(), Refused> {
        let mut w = self.ring_writers.lock();
        if w.plain {
            return Err(Refused::PlainWriter);
        }
        if append {
            w.appenders += 1;
        } else if w.appenders > 0 {
            return Err(Refused::Appenders);
        } else {
            w.plain = true;
        }
        Ok(())
    }

    pub(crate) fn leave_ring_writers(&self, append: bool) {
        let mut w = self.ring_writers.lock();
        if append {
            w.appenders = w.appenders.saturating_sub(1);
        } else {
            w.plain = false;
        }
    }

    /// Whether a reservation made in this thread holds the append token through a
    /// handle of this process.
    pub(crate) fn token_held_by_this_thread(&self) -> bool {
        self.token_thread.load(Ordering::Acquire) == thread_key()
    }

    /// Records that a reservation made in this thread now holds the append token.
    pub(crate) fn token_taken_by_reservation(&self) {
        self.token_thread.store(thread_key(), Ordering::Release);
    }

    /// Records that the reservation holding the append token gave it back; called
    /// before the token is released, so that the next holder's record stands.
    pub(crate) fn token_released_by_reservation(&self) {
        self.token_thread.store(0, Ordering::Release);
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let mut registry = REGISTRY.lock();
        // A handle may have registered a new `Local` under this identity since the last
        // strong reference went: only a dead entry is removed.
        if registry
            .get(&self.identity)
            .is_some_and(|w| w.strong_count() == 0)
        {
            registry.remove(&self.identity);
        }
    }
}

/// Every object a handle of this process holds a [`Local`] of.
static REGISTRY: Lazy<Mutex<Registry>> = Lazy::new(Mutex::default);

/// Objects by (device, inode).
type Registry = HashMap<(u64, u64), Weak<Local>>;

/// The process-local state of the object `identity` (device, inode).
pub(crate) fn of(identity: (u64, u64)) -> Arc<Local> {
    watch_forks();
    let mut registry = REGISTRY.lock();
    // A parent's state a fork copied is replaced; it is dropped once the registry is
    // unlocked (its drop locks the registry).
    let stale = match registry.get(&identity).and_then(Weak::upgrade) {
        Some(local) if local.is_current() => return local,
        other => other,
    };
    let local = Arc::new(Local {
        identity,
        generation: generation(),
        ring_writers: Mutex::default(),
        token_thread: AtomicU64::new(0),
    });
    registry.insert(identity, Arc::downgrade(&local));
    drop(registry);
    drop(stale);
    local
}

/// This process's generation: 1 in the process that loaded the library, one more in
/// each child `fork(2)` makes (ahead of anything the child runs).
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// This process's generation (see [`GENERATION`]); never 0.
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// [`generation`], with the fork handlers installed first, for a record that a child
/// must tell from its own (a reader slot's).
pub(crate) fn watched_generation() -> u64 {
    watch_forks();
    generation()
}

/// Installs, once, the fork handlers: the registry is locked across a fork (so that the
/// child never finds it locked by a thread it does not have), and the child's
/// generation moves on.
fn watch_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" fn prepare() {
        std::mem::forget(REGISTRY.lock());
    }
    extern "C" fn parent() {
        // SAFETY: `prepare` locked the registry in this thread and forgot the guard.
        unsafe { REGISTRY.force_unlock() };
    }
    extern "C" fn child() {
        GENERATION.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as in `parent`: the child's only thread is the one that forked.
        unsafe { REGISTRY.force_unlock() };
    }
    ONCE.call_once(|| {
        // The registry exists before a handler can lock it.
        Lazy::force(&REGISTRY);
        // SAFETY: three functions that only touch this module's statics; registering
        // them fails only for lack of memory, and then forks keep the parent's records
        // (the child's own writers may then be refused: never too many admitted).
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

/// A number unique to the calling thread among this process's live and past threads
/// (never 0).
pub(crate) fn thread_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static KEY: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    KEY.with(|k| *k)
}

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
//! **Ring bytes a reservation holds, and this process's racing readers.** A lossy
//! ring reader, or a reader of a lossless ring not attached to a slot, copies bytes a
//! writer may be overwriting with relaxed atomic loads (`Window::read_shared`) and
//! checks for an overrun afterwards. fshm's own writes store atomically, but a
//! [`Reservation`](crate::Reservation) lends `&mut [u8]`, which the caller fills with
//! plain stores: an atomic load racing with a plain store is a data race in Rust's
//! memory model, whatever the overrun check does with the value afterwards. So the
//! ring bytes a reservation of this process holds open are recorded here
//! ([`RingReservation`]): the claim records them under a lock before it lends the
//! pointer and the reservation's commit or drop clears them; each such copy of this
//! process runs under the same lock and copies nothing that aliases the recorded
//! bytes (see [`plan_racing_copy`]). There is at most one: a ring is written in a
//! process by one handle without append mode, which holds one reservation at a time,
//! or by appenders, whose reservations hold the append token. Other processes' stores
//! are outside this process's memory model (crate docs, "Safety of in-place reads").
//!
//! **Forks.** A child made by `fork(2)` is another process: it starts with no writers
//! and no token recorded ([`generation`] moves on in the child, and every record of an
//! older generation counts as none). Its copies of its parent's handles join again on
//! their first write, as the child's own handles do, so the rules hold in the child as
//! they do in the parent.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// The ring bytes a reservation of this process holds open ("Ring bytes a
    /// reservation holds" above).
    pub(crate) ring_reservation: RingReservation,
}

/// The ring positions `[pos, end)` a reservation of this process holds open (`None`:
/// none), behind the lock that this process's racing ring copies hold (shared, so they
/// do not wait for each other) while they copy.
#[derive(Debug, Default)]
pub(crate) struct RingReservation {
    range: RwLock<Option<(u64, u64)>>,
    /// Whether a reservation of this process ever opened on the object. Until then,
    /// racing copies skip the lock and announce themselves in their thread's
    /// [`COPYING`] flag instead ([`copy_with`](Self::copy_with)).
    reserved_ever: AtomicBool,
}

impl RingReservation {
    /// Records the reservation of positions `[pos, end)`; called after the claim raised
    /// `hwm` to `end` and before the bytes are lent. Waits for a copy in progress.
    pub(crate) fn open(&self, pos: u64, end: u64) {
        if !self.reserved_ever.swap(true, Ordering::SeqCst) {
            // The first: copies that began without the lock (having seen no
            // reservation) must end before any byte is lent.
            wait_for_lock_free_copies();
        }
        *self.range.write() = Some((pos, end));
    }

    /// Clears the record; called once the reservation's bytes are filled (its commit or
    /// drop, in the thread that filled them or after it), so a copy that takes the lock
    /// afterwards happens after every store to them.
    pub(crate) fn close(&self) {
        *self.range.write() = None;
    }

    /// Runs `copy` for a racing copy of ring positions `[pos, pos + n)` (ring of
    /// `capacity` bytes) so that no reservation of this process opens, and so no bytes
    /// are lent, while it copies. `copy` gets the plan.
    ///
    /// Until a reservation of this process opens on the object, without the lock: the
    /// copy sets its thread's [`COPYING`] flag, then looks at `reserved_ever`, and the
    /// first reservation sets `reserved_ever`, then waits for every thread's flag to
    /// drop (Dekker's pattern, all four accesses sequentially consistent). In their
    /// single total order either the copy's look comes after the reservation's store,
    /// and it sees the reservation and takes the lock, or the copy's flag store comes
    /// before the reservation's look at the flag, which it then waits out; the flag's
    /// release store after the copy makes the copy happen before the bytes are lent.
    /// So objects this process never reserves in pay one swap of a thread-local word per
    /// copy, not a lock shared with the other readers.
    #[inline]
    pub(crate) fn copy_with<T>(
        &self,
        pos: u64,
        n: u64,
        capacity: u64,
        copy: impl FnOnce(Plan) -> T,
    ) -> T {
        let mut copy = Some(copy);
        if !self.reserved_ever.load(Ordering::Relaxed) {
            let lock_free = COPYING.try_with(|flag| {
                flag.swap(true, Ordering::SeqCst);
                if self.reserved_ever.load(Ordering::SeqCst) {
                    flag.store(false, Ordering::Release);
                    return None;
                }
                let copy = copy.take().expect("not run yet");
                let r = copy(Plan::Copy(n));
                flag.store(false, Ordering::Release);
                Some(r)
            });
            if let Ok(Some(r)) = lock_free {
                return r;
            }
        }
        let range = self.range.read();
        let copy = copy.take().expect("not run yet");
        copy(plan_racing_copy(*range, pos, n, capacity))
    }
}

/// The in-flight flags of this process's threads' racing ring copies made without the
/// reservation lock ([`RingReservation::copy_with`]), registered on a thread's first
/// such copy; a thread's entry dies with it.
/// Made at compile time (no lazy initialisation a fork could interrupt).
static COPIERS: Mutex<Vec<Weak<AtomicBool>>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's flag in [`COPIERS`]: set while it copies racing ring bytes without
    /// the reservation lock.
    static COPYING: Arc<AtomicBool> = {
        let flag = Arc::new(AtomicBool::new(false));
        COPIERS.lock().push(Arc::downgrade(&flag));
        flag
    };
}

/// Waits until every thread's copy without the reservation lock in progress has ended
/// (their [`COPYING`] flags drop). Called by the first reservation of an object, after
/// it set `reserved_ever`; copies that start later see that and take the lock (a thread
/// that registers its flag later does so after this look, by the lock of [`COPIERS`],
/// and so sees `reserved_ever` set).
fn wait_for_lock_free_copies() {
    let flags: Vec<Arc<AtomicBool>> = {
        let mut copiers = COPIERS.lock();
        copiers.retain(|f| f.strong_count() > 0);
        copiers.iter().filter_map(Weak::upgrade).collect()
    };
    for flag in flags {
        // A copy of at most a ring's capacity: short.
        while flag.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
    }
}

/// What a racing ring copy may do beside a reservation of its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Copy the first `n` bytes (all asked for, or the part before bytes reserved).
    Copy(u64),
    /// Copy nothing: the reader's position lies below `end - capacity` of the open
    /// reservation, whose claim raised `hwm` to `end` before the bytes were lent, so
    /// the reader is overrun (`ring.rs`, "Reading") and the copy would be discarded.
    Overrun,
    /// Copy nothing: the byte at the position is one the reservation is filling,
    /// although the position is not below `end - capacity` — committed by a writer
    /// that broke the one-writer rule (another process writing over this process's
    /// claim). Those bytes are lost: resume at the position given, past them.
    Skip(u64),
}

/// The plan for a racing copy of ring positions `[pos, pos + n)` (`n` at most the
/// capacity) while `reserved`, positions `[rpos, rend)` (at most the capacity), may be
/// being filled with plain stores.
///
/// Position `x` lives at offset `x % capacity`, so the copy touches reserved bytes
/// exactly where some `x` in `[pos, pos + n)` is congruent to some `y` in
/// `[rpos, rend)`. An honest reader's bytes lie below the length, which the reservation
/// starts at (`pos + n <= rpos`); such an `x` is then `y - capacity < rend - capacity`,
/// so the copy can meet reserved bytes only if `pos < rend - capacity`. And then the
/// reader is overrun whatever it copies: the claim raised `hwm` to `rend` before it
/// recorded the reservation, the reader took the lock after that and so sees it, and
/// `pos < hwm - capacity` is the overrun check's condition. So `Overrun` is exactly the
/// answer the copy would have got, without the copy. Past that bound an honest copy
/// meets nothing reserved and copies everything; a dishonest writer's bytes are copied
/// up to the first reserved one.
pub(crate) fn plan_racing_copy(
    reserved: Option<(u64, u64)>,
    pos: u64,
    n: u64,
    capacity: u64,
) -> Plan {
    let Some((rpos, rend)) = reserved else {
        return Plan::Copy(n);
    };
    if capacity == 0 || n == 0 || rend <= rpos {
        return Plan::Copy(n);
    }
    if pos < rend.saturating_sub(capacity) {
        return Plan::Overrun;
    }
    // The first copied byte whose offset lies in the reserved offsets, if any.
    let (a, b, rlen) = (pos % capacity, rpos % capacity, rend - rpos);
    if (a + capacity - b) % capacity < rlen {
        // The byte at `pos` is reserved: it is the reserved position `y`, and the ones
        // after it up to `rend` are reserved too.
        let y = rpos + (a + capacity - b) % capacity;
        return Plan::Skip(pos + (rend - y));
    }
    // Else the reserved offsets start `(b - a) mod capacity` bytes into the copy.
    Plan::Copy(n.min((b + capacity - a) % capacity))
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
        let mut guard = REGISTRY.lock();
        let registry = guard.get_or_insert_with(HashMap::new);
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

/// Every object a handle of this process holds a [`Local`] of (`None` until the first).
/// Made at compile time: a lazy initialisation that a fork interrupted would leave the
/// child waiting for a thread it does not have.
static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// Objects by (device, inode).
type Registry = HashMap<(u64, u64), Weak<Local>>;

/// The process-local state of the object `identity` (device, inode).
pub(crate) fn of(identity: (u64, u64)) -> Arc<Local> {
    watch_forks();
    let mut guard = REGISTRY.lock();
    let registry = guard.get_or_insert_with(HashMap::new);
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
        ring_reservation: RingReservation::default(),
    });
    registry.insert(identity, Arc::downgrade(&local));
    drop(guard);
    drop(stale);
    local
}

/// The C layer's table of the `FILE*`s it made (`FILE` address → its cookie's address),
/// kept here so that the fork handlers lock it with the registry: a child forked while
/// another thread of its parent opened, used or closed a `FILE*` (each takes the table
/// for a moment) would otherwise find it locked by a thread it does not have, and wait
/// forever at its first call on any stream it inherited. Made at compile time.
///
/// Reentrant: a `pthread_atfork` handler a program registered before the library's
/// runs inside the fork, in the thread whose `prepare` holds the table, and may call
/// the C API (a plain mutex would wait for itself there).
#[cfg(feature = "__c-layer")]
static FILE_TABLE: parking_lot::ReentrantMutex<
    std::cell::RefCell<std::collections::BTreeMap<usize, usize>>,
> = parking_lot::ReentrantMutex::new(std::cell::RefCell::new(std::collections::BTreeMap::new()));

/// Runs `f` on [`FILE_TABLE`], locked (the fork handlers installed first). `f` must
/// not use the table again (it would find it borrowed and panic).
#[cfg(feature = "__c-layer")]
pub(crate) fn with_file_table<R>(
    f: impl FnOnce(&mut std::collections::BTreeMap<usize, usize>) -> R,
) -> R {
    watch_forks();
    let table = FILE_TABLE.lock();
    let mut t = table.borrow_mut();
    f(&mut t)
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

/// Installs, once, the fork handlers: the registry (and the C layer's table of `FILE*`s)
/// is locked across a fork (so that the child never finds it locked by a thread it does
/// not have), and the child's generation moves on.
///
/// No `Once`: a child forked while another thread of its parent was inside one would
/// wait for that thread forever. A thread that finds the handlers being installed by
/// another thread of its process waits for it (a few microseconds); one that finds them
/// being installed by a thread of a parent it was forked from — which does not exist
/// here — installs them again. The handlers nest, so a process that inherited a
/// registration its parent completed just before the fork and made a second one locks
/// and unlocks once per fork all the same.
fn watch_forks() {
    /// 0: not installed; `INSTALLING | pid`: being installed by process `pid`'s thread;
    /// `INSTALLED`: done (inherited by children, whose copy of the registration stands).
    static STATE: AtomicU64 = AtomicU64::new(0);
    const INSTALLING: u64 = 1 << 32;
    const INSTALLED: u64 = 2 << 32;
    thread_local! {
        /// This thread's handlers that have run `prepare` without their `parent` or
        /// `child` yet (per thread: a fork in another thread must still wait for the
        /// locks this one's fork holds).
        static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    /// Moves this thread's depth by `by`; the depth before.
    fn depth(by: i32) -> u32 {
        DEPTH.with(|d| {
            let before = d.get();
            d.set(before.wrapping_add_signed(by));
            before
        })
    }
    extern "C" fn prepare() {
        if depth(1) == 0 {
            // In one fixed order, the C layer's table first (no path takes it while
            // holding the registry or the copiers' list).
            #[cfg(feature = "__c-layer")]
            std::mem::forget(FILE_TABLE.lock());
            std::mem::forget(REGISTRY.lock());
            std::mem::forget(COPIERS.lock());
        }
    }
    extern "C" fn parent() {
        if depth(-1) == 1 {
            // SAFETY: the first `prepare` locked both in this thread (the forking one;
            // `parent` runs in it) and forgot the guards.
            unsafe {
                COPIERS.force_unlock();
                REGISTRY.force_unlock();
                #[cfg(feature = "__c-layer")]
                FILE_TABLE.force_unlock();
            }
        }
    }
    extern "C" fn child() {
        if depth(-1) != 1 {
            return;
        }
        GENERATION.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as in `parent`: the child's only thread is the one that forked, and
        // `prepare` holds the lock of `COPIERS` for it. The parent's other threads do
        // not exist here: a flag one of them left set mid-copy would be waited for
        // forever, so set flags are dropped (the forking thread's is clear: it forks).
        unsafe {
            (*COPIERS.data_ptr())
                .retain(|f| f.upgrade().is_some_and(|f| !f.load(Ordering::Relaxed)));
            COPIERS.force_unlock();
            REGISTRY.force_unlock();
            #[cfg(feature = "__c-layer")]
            FILE_TABLE.force_unlock();
        }
    }
    let me = INSTALLING | u64::from(std::process::id());
    loop {
        match STATE.load(Ordering::Acquire) {
            INSTALLED => return,
            s if s == me => std::thread::yield_now(),
            s => {
                if STATE
                    .compare_exchange(s, me, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    // SAFETY: three functions that only touch this module's statics;
                    // registering them fails only for lack of memory, and then forks
                    // keep the parent's records (the child's own writers may then be
                    // refused: never too many admitted).
                    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
                    STATE.store(INSTALLED, Ordering::Release);
                    return;
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::{plan_racing_copy, Plan};

    /// A lossy reader's atomic copy of ring bytes beside a reservation of the same
    /// process that fills them through `&mut [u8]` with plain stores: the copy runs
    /// under the process's reservation lock (`local.rs`, "Ring bytes a reservation
    /// holds") and never touches bytes lent for plain stores, so Miri finds no data
    /// race (`ci/miri.sh`). Without the lock and the plan it reported "Data race
    /// detected between non-atomic write and atomic load". A ring of 64 bytes holding
    /// positions `0..64`; the reservation claims `64..128` (all of it, every round) or
    /// `64..80` (offsets `0..16`), and the reader copies positions `0..64` or `20..64`.
    #[test]
    fn lossy_copy_racing_a_reservations_plain_stores() {
        use super::{Plan, RingReservation};
        use crate::window::copy_shared;
        use std::mem::MaybeUninit;
        struct Shared(*mut u8);
        // SAFETY: the pointer outlives both threads, and every access to the bytes
        // behind it below is ordered by the reservation lock or atomic.
        unsafe impl Send for Shared {}
        // SAFETY: as above.
        unsafe impl Sync for Shared {}
        const CAP: u64 = 64;
        let rounds = if cfg!(miri) { 20 } else { 2000 };
        for (reserved, (pos, n), expect_copy) in [
            (CAP, (0, CAP), None),          // the reader is overrun while it is open
            (16, (20, CAP - 20), Some(44)), // disjoint offsets: copies beside it
        ] {
            let mut ring = vec![0u8; CAP as usize];
            let p = Shared(ring.as_mut_ptr());
            let (p, res) = (&p, &RingReservation::default());
            std::thread::scope(|s| {
                s.spawn(move || {
                    for round in 0..rounds {
                        // The claim (`hwm` raised to 64 + reserved), then the record,
                        // then the bytes lent.
                        res.open(CAP, CAP + reserved);
                        // SAFETY: what `Reservation::deref_mut` lends: offsets
                        // `0..reserved` of the ring.
                        let lent =
                            unsafe { std::slice::from_raw_parts_mut(p.0, reserved as usize) };
                        lent.fill(round as u8);
                        res.close();
                    }
                });
                s.spawn(move || {
                    for _ in 0..rounds {
                        let mut dst = [MaybeUninit::new(0u8); CAP as usize];
                        let plan = res.copy_with(pos, n, CAP, |plan| {
                            if let Plan::Copy(k) = plan {
                                // SAFETY: positions `pos..pos + k` lie in the 64 bytes;
                                // the plan keeps the copy off bytes lent for plain
                                // stores.
                                unsafe {
                                    copy_shared(p.0.add(pos as usize), &mut dst[..k as usize])
                                };
                            }
                            plan
                        });
                        match (plan, expect_copy) {
                            (Plan::Copy(k), _) => assert_eq!(k, n),
                            (Plan::Overrun, None) => {}
                            (other, _) => panic!("unexpected plan {other:?}"),
                        }
                    }
                });
            });
            drop(ring);
        }
    }

    const CAP: u64 = 64;

    #[test]
    fn a_racing_copy_with_no_reservation_copies_everything() {
        assert_eq!(plan_racing_copy(None, 5, 59, CAP), Plan::Copy(59));
    }

    #[test]
    fn a_reader_below_the_reservations_end_minus_capacity_is_overrun_uncopied() {
        // Reservation 100..140 overwrites positions 36..76 of the old data.
        assert_eq!(
            plan_racing_copy(Some((100, 140)), 40, 60, CAP),
            Plan::Overrun
        );
        assert_eq!(
            plan_racing_copy(Some((100, 140)), 75, 25, CAP),
            Plan::Overrun
        );
    }

    #[test]
    fn an_honest_reader_past_the_bound_copies_everything_beside_the_reservation() {
        // Positions 76..100 do not share an offset with 100..140.
        assert_eq!(
            plan_racing_copy(Some((100, 140)), 76, 24, CAP),
            Plan::Copy(24)
        );
        // A whole-capacity reservation leaves nothing old to read but its own past.
        assert_eq!(
            plan_racing_copy(Some((128, 192)), 128, 0, CAP),
            Plan::Copy(0)
        );
    }

    #[test]
    fn bytes_a_rule_breaking_writer_committed_over_the_reservation_are_skipped() {
        // Reservation 100..110 (offsets 36..46); another writer committed up to 120.
        // A copy from 90 stops before 100; one from 104 skips to 110.
        assert_eq!(
            plan_racing_copy(Some((100, 110)), 90, 30, CAP),
            Plan::Copy(10)
        );
        assert_eq!(
            plan_racing_copy(Some((100, 110)), 104, 16, CAP),
            Plan::Skip(110)
        );
        // And a copy past the reservation, wrapping onto its offsets a lap later.
        assert_eq!(
            plan_racing_copy(Some((100, 110)), 150, 30, CAP),
            Plan::Copy(14)
        );
        assert_eq!(
            plan_racing_copy(Some((100, 110)), 166, 10, CAP),
            Plan::Skip(174)
        );
    }
}

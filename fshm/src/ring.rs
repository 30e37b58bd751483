//! Ring streams: the most recent `capacity` bytes of an endless, append-only stream.
//!
//! Positions are absolute and monotonic; byte `p` lives at data offset `p % capacity`.
//! The data pages are mapped twice back to back (see [`Window`](crate::window)), so
//! every copy of up to `capacity` bytes is one contiguous `memcpy`, also across the wrap.
//!
//! **Writing** a chunk `[len, end)`: (lossless only) wait until every attached live
//! reader's slot position is at least `end - capacity`; raise `hwm` (the end of the
//! write in progress) to `end`; copy; publish `len = end` and wake readers. A writer
//! killed mid-write leaves `len` at the last whole write. The steps before the copy are
//! `Core::ring_claim`, the publication `Core::ring_publish`; an in-place write
//! (`inplace.rs`) runs the same two with the caller's fill in place of the copy, and
//! may publish less than it claimed (then `hwm` stands past `len`, as after a writer
//! killed mid-write).
//!
//! A writer learns `len` without touching its cache line (which every follower polls)
//! while the header's `ring_writer` holds its handle's token: the token says no other
//! handle wrote since this one's last write, whose committed length the handle
//! remembers. A handle that finds another token stores its own, then loads `len`.
//! The publication is then one compare-and-swap from the remembered length, the only
//! access to the length's line; should it fail, `len` is raised to `end` as before and
//! the remembered length is dropped. Writes to a ring by several handles at once are
//! only whole in append mode (whose lock serialises them); without it, as on a file,
//! overlapping writes may overwrite each other's bytes.
//!
//! **Reading** `[p, p + k)`: copy, then (after an acquire fence) load `hwm`; bytes below
//! `hwm - capacity` may have been overwritten during the copy, so if `p` is below it the
//! copy is discarded and the read fails with an [`Overrun`](crate::Overrun) that says
//! how many bytes were lost, moving the position to the oldest byte still held. The
//! reader copies with relaxed atomic loads and writers store with relaxed atomic stores
//! after a release fence (`Window::read_shared`, `Window::write`), so a byte read from a
//! write in progress carries that write's `hwm` with it (`overrun_after_copy`).
//!
//! **Lossless readers** attach to one of the header's 32 slots: the slot is owned
//! through an OFD write lock on byte `2 + k` of the stream's lock object (`liveness.rs`;
//! released by the kernel when the process dies, so a dead reader never blocks the
//! writer for longer than a liveness tick, and out of reach of read-only users) and its
//! position is published in `slot[k].pos` after every read. Attaching needs a writable
//! handle; read-only guests read a lossless ring as lossy readers.
//!
//! **Attaching** races with writes in flight: a write that checked the slots before a
//! reader attached would overwrite what the reader chose to start at. So the two sides
//! follow Dekker's pattern over sequentially consistent accesses. The reader stores its
//! slot (position and token), bumps `slot_gen`, then loads `hwm` and starts no lower
//! than `hwm - capacity`. A lossless writer raises `hwm` to the end of its write (a
//! read-modify-write), then loads `slot_gen`; if it moved since the writer last looked
//! at the slots, it looks again (and waits for the new reader) before copying. In the
//! total order one of the two comes first: either the reader's load sees the write's
//! `hwm` — and starts past what the write overwrites — or the writer's load sees the
//! bump, and with it the slot. So a lossless reader is never overrun, also while it
//! joins a ring that is full and written without pause. To keep the writer's side free
//! of a full fence on every write, the fence is asymmetric where the kernel allows: a
//! writer's process registers for `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` and then
//! orders its `hwm` store and `slot_gen` load with a compiler fence only, while the
//! attaching reader, between its bump and its load, calls `membarrier`, which makes every
//! running thread of every registered process execute a full barrier (membarrier(2):
//! compiler barriers on the fast side become memory barriers). A writer whose process
//! could not register uses the read-modify-write.
//!
//! **Trusted reads.** An attached reader reading at or past its start, at its own
//! published position `p`, needs no overrun check — so it never loads `hwm`, the
//! writer's line: by the rule above no write overwrites it before it has read it. So
//! reads at positions `>= max(start, p)` are trusted (`RingReader::trust_from`), with one
//! exception: a seek back lets writers still overwrite up to where the reader had been
//! (a writer remembers the lowest reader position it saw), so `trust_from` rises to
//! that. (A handle's own writes, which its slot does not hold back, move its position
//! to their end: they never overwrite what it still reads. Its claim first moves the
//! position, and the slot, to at least the claim's end minus the capacity, so a
//! reservation committed with less, or dropped, leaves nothing unwritten behind it.)

use crate::error::{invalid, os, overrun, Result};
use crate::handle::{Core, Cursor};
use crate::header::{Header, LOCK_APPEND, LOCK_SLOT0, READER_SLOTS};
use crate::local::Plan;
use crate::sync::fence;
use crate::sys;
use crate::wait::{self, Waited};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, Ordering};

/// A ring-writer token unique among live handles: the process id and a per-process
/// counter (never 0).
pub(crate) fn new_writer_token() -> u64 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    (u64::from(std::process::id()) << 32) | u64::from(NEXT.fetch_add(1, Ordering::Relaxed).max(1))
}

impl Core {
    /// Ring writer: moves the end to `pos` (not below it) without writing; see
    /// [`Stream::skip_to`](crate::Stream::skip_to).
    pub(crate) fn ring_skip_to(&self, c: &mut Cursor, pos: u64) -> Result<u64> {
        if !self.writable {
            return Err(self.ebadf());
        }
        let window = self.window()?;
        let h = window.header();
        let len = h.len.load(Ordering::Acquire);
        if pos <= len {
            return Ok(0);
        }
        if pos > u64::MAX / 2 {
            return Err(crate::error::invalid(
                self.name(),
                "skip position past 2^63",
            ));
        }
        // The floor first: a reader that sees the new length sees the floor that makes
        // every position below it an overrun, so no slot's stale bytes pass for data.
        h.floor.fetch_max(pos, Ordering::SeqCst);
        h.hwm.fetch_max(pos, Ordering::SeqCst);
        c.writer.ring_len = None;
        crate::handle::publish_len(h, pos, true, || self.data_bell());
        self.wake_replica_readers();
        c.pos = pos;
        Ok(pos - len)
    }

    pub(crate) fn ring_read(
        &self,
        c: &mut Cursor,
        pos: u64,
        buf: &mut [MaybeUninit<u8>],
    ) -> Result<usize> {
        let cap = self.capacity();
        let h = self.header();
        let len = h.len.load(Ordering::Acquire);
        if pos >= len || buf.is_empty() {
            return Ok(0);
        }
        let oldest = len.saturating_sub(cap);
        // `floor`: positions skipped (`skip_to`) were never written here; it is raised
        // before the length that passes them is published.
        if pos < oldest || pos < h.floor.load(Ordering::Relaxed) {
            return Err(self.overrun(c, pos, 0));
        }
        let mut n = (len - pos).min(buf.len() as u64).min(cap);
        self.ensure_readable(c, cap)?;
        let trusted = c.own_slot().is_some() && pos >= c.reader.trust_from && pos >= c.pos;
        let window = self.window()?;
        let dst = &mut buf[..n as usize];
        if trusted {
            // SAFETY: `pos % cap + n <= 2 * cap`, the double-mapped window; the object
            // holds the whole ring (verified just above); no write overwrites these bytes
            // before this reader consumed them ("Trusted reads").
            unsafe { window.read_stable(pos % cap, dst) };
        } else {
            // Under this process's reservation lock ("Ring bytes a reservation holds",
            // `local.rs`): no bytes are lent for plain stores while the atomic loads
            // run, and none that were are copied.
            let plan = self.with_local(|local| {
                local.ring_reservation.copy_with(pos, n, cap, |plan| {
                    if let Plan::Copy(k) = plan {
                        // SAFETY: as above for the range (`k <= n`); writers of other
                        // processes, and this process's own writes (atomic stores), may
                        // overwrite the bytes during the copy, which the check below
                        // detects; no reservation of this process fills them (`plan`).
                        unsafe { window.read_shared(pos % cap, &mut dst[..k as usize]) };
                    }
                    plan
                })
            })?;
            match plan {
                Plan::Copy(k) => n = k,
                Plan::Overrun => return Err(self.overrun(c, pos, 0)),
                Plan::Skip(resume) => return Err(self.overrun(c, pos, resume)),
            }
        }
        #[cfg(feature = "__test-hooks")]
        if let Some(hook) = crate::test_hooks::ring_read_pause() {
            hook();
        }
        if !trusted && overrun_after_copy(h, pos, cap) {
            // A writer overwrote some of these bytes while we copied them.
            return Err(self.overrun(c, pos, 0));
        }
        Ok(n as usize)
    }

    /// The overrun error for a reader at `pos`; moves the position to the oldest byte
    /// still held (and at least to `at_least`) and counts the loss.
    pub(crate) fn overrun(&self, c: &mut Cursor, pos: u64, at_least: u64) -> std::io::Error {
        let len = self.header().len.load(Ordering::Acquire);
        let resume = self.ring_oldest(len).max(pos).max(at_least);
        let lost = resume - pos;
        c.pos = resume;
        // Saturating: a hostile header can claim overruns of nearly 2^64 bytes, again and
        // again (found by fshm/tests/fuzz_header.rs: `+=` overflowed, a panic in debug).
        c.reader.lost = c.reader.lost.saturating_add(lost);
        self.publish_slot(c);
        overrun(self.name(), lost, resume)
    }

    /// Appends `buf` (at most one capacity) to the ring. Returns the bytes written.
    pub(crate) fn ring_write(&self, c: &mut Cursor, buf: &[u8]) -> Result<usize> {
        if !self.writable {
            return Err(self.ebadf());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let cap = self.capacity();
        if self.append {
            if buf.len() as u64 > cap {
                return Err(self.past_ring_capacity("an atomic append", buf.len() as u64));
            }
            let lock = self.lock_object()?;
            sys::ofd_lock_wait(lock, LOCK_APPEND)
                .map_err(|e| os(self.name(), e, "cannot take the append lock"))?;
            let r = self.ring_write_chunk(c, buf);
            let _ = sys::ofd_unlock(lock, LOCK_APPEND);
            r
        } else {
            let n = buf.len().min(cap as usize);
            self.ring_write_chunk(c, &buf[..n])
        }
    }

    fn ring_write_chunk(&self, c: &mut Cursor, buf: &[u8]) -> Result<usize> {
        let cap = self.capacity();
        let pos = self.ring_claim(c, buf.len() as u64)?;
        // SAFETY: `pos % cap + len <= 2 * cap` inside the double-mapped window; the
        // object holds the whole ring (`ring_claim` verified it); the handle is writable.
        unsafe { self.window()?.write(pos % cap, buf) };
        #[cfg(feature = "__test-hooks")]
        if self.append {
            if let Some(hook) = crate::test_hooks::append_pause() {
                hook();
            }
        }
        self.ring_publish(c, pos, pos + buf.len() as u64);
        Ok(buf.len())
    }

    /// The first half of a ring write of `n` bytes (at most the capacity): learns the
    /// length, waits for room (lossless), raises `hwm` to the write's end and returns
    /// the position the write lands at. From then on the bytes `[pos, pos + n)` are the
    /// caller's to fill, until [`ring_publish`](Self::ring_publish) (or nothing, which
    /// commits nothing).
    #[inline(always)]
    pub(crate) fn ring_claim(&self, c: &mut Cursor, n: u64) -> Result<u64> {
        let cap = self.capacity();
        // The real header: a handle that could not map writes nothing, not even the
        // stand-in's `ring_writer`.
        let window = self.window()?;
        let h = window.header();
        if c.writer.token == 0 {
            c.writer.token = new_writer_token();
        }
        let (pos, sole) = match c.writer.ring_len {
            Some(len) if h.ring_writer.load(Ordering::Acquire) == c.writer.token => (len, true),
            _ => {
                if h.ring_writer.load(Ordering::Relaxed) != c.writer.token {
                    h.ring_writer.store(c.writer.token, Ordering::SeqCst);
                }
                (h.len.load(Ordering::Acquire), false)
            }
        };
        // Checked: a hostile header's length can be near 2^64 (found by
        // fshm/tests/fuzz_header.rs: `pos + len` overflowed, a panic in debug builds).
        let Some(end) = pos.checked_add(n) else {
            return Err(crate::error::not_fshm(
                self.name(),
                "malformed header (length near 2^64)",
            ));
        };
        self.ensure_readable(c, cap)?;
        if self.is_lossless() && end > cap {
            self.make_room(c, end - cap)?;
        }
        // A reader that caught up holds both the line of the length and the line the
        // bytes go to; fetch the second while the first is being taken. Small writes
        // also fetch the line 512 bytes on, which a reader has likely left long ago:
        // eight 64-byte writes later it is owned when the copy needs it (the
        // compare-and-swap below waits for the copy's stores; 64-byte writes to a
        // followed ring ran 1.16× faster, median of 10 runs, BENCHMARKS.md).
        window.prefetch_write(pos % cap);
        window.prefetch_write((pos % cap + 512) % cap);
        let lossless = self.is_lossless() && end > cap;
        // A lossless writer's `hwm` and its look at `slot_gen` are the fast side of the
        // "Attaching" fence: with this process registered for the attacher's
        // `membarrier`, a compiler fence orders them; else a sequentially consistent
        // read-modify-write does.
        let fast_fence = sole && (!lossless || sys::membarrier_registered());
        if announce_write(h, end, fast_fence, lossless, c.writer.slot_gen_seen) {
            // A reader attached since `make_room` looked ("Attaching" above): it chose
            // its start after this write's `hwm`, or this write sees its slot now.
            self.make_room(c, end - cap)?;
        }
        if lossless {
            // This handle's own slot holds nothing back from its own claims (it would
            // wait for itself): the positions the claim overwrites, below
            // `end - capacity`, are given up once the claim succeeded and before the
            // bytes are written — its position moves past them and is published, as
            // its writes move it to their end ("Trusted reads"). A claim then committed
            // with less, or nothing, leaves the position there: it never lends or
            // trusts a byte the claim lent out.
            if let Some(k) = c.own_slot() {
                if c.pos < end - cap {
                    c.pos = end - cap;
                    publish_slot_pos(h, k, c.pos, || self.room_bell());
                }
            }
        }
        Ok(pos)
    }

    /// The second half of a ring write: publishes `[pos, end)` (claimed by
    /// [`ring_claim`](Self::ring_claim), `end` no further than it claimed) as committed
    /// and wakes readers.
    #[inline(always)]
    pub(crate) fn ring_publish(&self, c: &mut Cursor, pos: u64, end: u64) {
        c.writer.ring_len =
            publish_ring_len(self.header(), pos, end, || self.data_bell()).then_some(end);
        self.wake_replica_readers();
        c.pos = end;
        if c.own_slot().is_some() {
            // An attached writer: its slot follows its position, or other writers would
            // wait for bytes it has skipped.
            self.publish_slot(c);
        }
    }

    /// Lossless: waits until no attached live reader still needs a position below
    /// `need`. The writer remembers the lowest reader position it last saw (`room`)
    /// and the attach generation, and scans the slots again only when it must.
    #[inline(always)]
    fn make_room(&self, c: &mut Cursor, need: u64) -> Result<()> {
        match room_known(self.header(), need, c.writer.room, c.writer.slot_gen_seen) {
            Ok(()) => Ok(()),
            Err(gen) => self.make_room_slow(c, need, gen),
        }
    }

    /// [`make_room`](Self::make_room) once the remembered view no longer shows room.
    #[cold]
    fn make_room_slow(&self, c: &mut Cursor, need: u64, gen: u32) -> Result<()> {
        let h = self.header();
        // Probing readers' liveness needs the lock object; a writer that cannot open it
        // cannot tell a dead reader from a slow one, and says so.
        let lock = self.lock_object()?;
        let alive = |k: u32| sys::ofd_write_locked(lock, LOCK_SLOT0 + u64::from(k)).unwrap_or(true);
        let own = c.own_slot();
        let Some(room) = wait_for_room(h, need, own, &alive, c.write_deadline(), self.room_bell())
        else {
            return Err(os(
                self.name(),
                libc::ETIMEDOUT,
                "attached readers did not make room within the write timeout",
            ));
        };
        c.writer.room = room;
        c.writer.slot_gen_seen = gen;
        Ok(())
    }

    /// Lossless ring writer (async): whether no attached live reader still needs a
    /// position below `need` (the condition `make_room` waits for). With `slow_ok`, a
    /// lagging reader's liveness is probed (dead readers' slots are released).
    pub(crate) fn has_room(&self, own: Option<u32>, need: u64, slow_ok: bool) -> Result<bool> {
        let lock = if slow_ok {
            Some(self.lock_object()?)
        } else {
            None
        };
        let alive = |k: u32| match lock {
            Some(lock) => sys::ofd_write_locked(lock, LOCK_SLOT0 + u64::from(k)).unwrap_or(true),
            None => true,
        };
        let probe: Option<&dyn Fn(u32) -> bool> = if slow_ok { Some(&alive) } else { None };
        Ok(scan_slots(self.header(), need, probe, own).is_ok())
    }

    /// Publishes this reader's position in its slot and wakes a waiting writer.
    pub(crate) fn publish_slot(&self, c: &mut Cursor) {
        if let Some(k) = c.own_slot() {
            publish_slot_pos(self.header(), k, c.pos, || self.room_bell());
        }
    }

    pub(crate) fn attach_locked(&self, c: &mut Cursor) -> Result<()> {
        if !self.is_lossless() {
            return Err(invalid(
                self.name(),
                "only lossless ring streams have reader slots",
            ));
        }
        if !self.writable {
            return Err(os(
                self.name(),
                libc::EBADF,
                "a read-only handle cannot attach to a lossless ring",
            ));
        }
        if c.own_slot().is_some() {
            return Ok(());
        }
        // The real header: an attach into the stand-in of a handle that could not map
        // would write a slot no writer sees.
        let h = self.window()?.header();
        let lock = self.lock_object()?;
        for k in 0..READER_SLOTS {
            let got = sys::ofd_try_lock(lock, LOCK_SLOT0 + u64::from(k))
                .map_err(|e| os(self.name(), e, "cannot take a reader slot"))?;
            if got {
                let held_from = attach_slot(h, k, c.pos, self.capacity());
                c.reader.trust_from = c.pos.max(held_from);
                c.reader.slot = Some(k);
                c.reader.slot_generation = crate::local::watched_generation();
                return Ok(());
            }
        }
        Err(os(
            self.name(),
            libc::EBUSY,
            "all 32 reader slots are taken",
        ))
    }

    pub(crate) fn detach_locked(&self, c: &mut Cursor) {
        // A fork's copy of the parent's slot forgets it without touching it.
        let own = c.own_slot();
        c.reader.slot = None;
        c.reader.trust_from = u64::MAX;
        if let Some(k) = own {
            let h = self.header();
            h.slots[k as usize].active.store(0, Ordering::SeqCst);
            if let Ok(lock) = self.lock_object() {
                let _ = sys::ofd_unlock(lock, LOCK_SLOT0 + u64::from(k));
            }
            wait::notify(&h.space_seq, || self.room_bell());
        }
    }
}

// The protocol steps over the header alone, which `Core` runs on a mapped header and the
// `loom` models (`loom_tests.rs`) on one in process memory.

/// A ring writer's announce of a write ending at `end` ("Attaching"): raises `hwm` to
/// `end`, then (`lossless`) looks whether `slot_gen` moved from `slot_gen_seen`; `true`
/// when it did, and the writer must look at the slots again before copying.
/// `fast_fence`: the writer is the only one since its last write and, if `lossless`,
/// its process is registered for the attacher's `membarrier` — a plain store and a
/// compiler fence then do; otherwise a sequentially consistent read-modify-write does.
#[inline]
pub(crate) fn announce_write(
    h: &Header,
    end: u64,
    fast_fence: bool,
    lossless: bool,
    slot_gen_seen: u32,
) -> bool {
    if fast_fence {
        // The only writer since its last write: a store ordered before the copy's
        // stores is enough. (`hwm` may stand higher, left by an appender killed
        // mid-write: it never moves down.)
        if h.hwm.load(Ordering::Relaxed) < end {
            h.hwm.store(end, Ordering::Relaxed);
        }
        fence(Ordering::Release);
        crate::sync::light_fence();
    } else {
        h.hwm.fetch_max(end, Ordering::SeqCst);
        crate::sync::seqcst_write_then_load();
        // A release read-modify-write orders what came before it, not the copy after
        // it: the fence a lossy reader's acquire fence pairs with (`overrun_after_copy`).
        // No instruction on x86_64, where the locked read-modify-write is a full barrier.
        fence(Ordering::Release);
    }
    lossless && h.slot_gen.load(Ordering::SeqCst) != slot_gen_seen
}

/// A lossy reader's check after copying bytes from position `pos` of a ring of
/// `capacity` bytes with relaxed atomic loads (`Window::read_shared`): whether a writer
/// may have overwritten any of them during the copy, and the copy must be discarded.
///
/// Writers raise `hwm` to the end of a write, then a release fence (`announce_write`,
/// or the sequentially consistent read-modify-write), then store the bytes with relaxed
/// atomic stores (`Window::write`). If the copy loaded any byte of a write, the acquire
/// fence here synchronises with that write's release fence, so the load of `hwm` below
/// sees at least that write's end, and a position that write overwrote lies below
/// `hwm - capacity`: reported. (Fence-to-fence synchronisation needs the bytes to be
/// atomics on both sides; with plain stores the pairing proves nothing.) The `loom`
/// model `loom_a_lossy_reader_lapped_by_the_writer_accepts_only_whole_bytes` checks it.
#[inline]
pub(crate) fn overrun_after_copy(h: &Header, pos: u64, capacity: u64) -> bool {
    fence(Ordering::Acquire);
    pos < h.hwm.load(Ordering::Acquire).saturating_sub(capacity)
}

/// A ring writer's publication of `[pos, end)`: one compare-and-swap of the length from
/// `pos` to `end` and a wake of readers; `true` if it succeeded, and the writer may
/// remember `end` as the length. Should another handle have written meanwhile, the
/// length is raised to `end` as by any commit (`false`).
#[inline]
pub(crate) fn publish_ring_len<'a>(
    h: &Header,
    pos: u64,
    end: u64,
    bell: impl FnOnce() -> Option<&'a crate::sync::AtomicU32>,
) -> bool {
    if h.len
        .compare_exchange(pos, end, Ordering::SeqCst, Ordering::Relaxed)
        .is_ok()
    {
        wait::notify(&h.seq, bell);
        true
    } else {
        // Another handle wrote at the same time: as before the token.
        crate::handle::publish_len(h, end, true, bell);
        false
    }
}

/// A lossless writer's remembered view of the slots (the lowest reader position it saw,
/// `room`, at attach generation `slot_gen_seen`): `Ok` if it still shows room up to
/// `need`, else `Err` with the generation to remember after looking again.
#[inline]
pub(crate) fn room_known(
    h: &Header,
    need: u64,
    room: u64,
    slot_gen_seen: u32,
) -> std::result::Result<(), u32> {
    let gen = h.slot_gen.load(Ordering::SeqCst);
    if need <= room && gen == slot_gen_seen {
        Ok(())
    } else {
        Err(gen)
    }
}

/// Waits until no attached live reader (other than slot `own`) still needs a position
/// below `need`, or `deadline` passes (`None`); returns the lowest position an attached
/// reader still needs. `alive(k)` probes the liveness of slot `k`'s reader (a system
/// call), at most once per liveness tick (`wait.rs`).
pub(crate) fn wait_for_room(
    h: &Header,
    need: u64,
    own: Option<u32>,
    alive: &dyn Fn(u32) -> bool,
    deadline: Option<std::time::Instant>,
    bell: Option<&crate::sync::AtomicU32>,
) -> Option<u64> {
    if let Ok(room) = scan_slots(h, need, None, own) {
        return Some(room);
    }
    let r = wait::wait_on(
        &h.space_seq,
        bell,
        false,
        deadline,
        std::time::Duration::ZERO,
        |slow_ok| scan_slots(h, need, slow_ok.then_some(alive), own).ok(),
    );
    match r {
        Waited::Ready(room) => Some(room),
        Waited::TimedOut => None,
    }
}

/// Scans the reader slots: `Ok(room)`, the lowest position an attached reader still
/// needs (at least `need`), or `Err(k)`, a reader that still needs a position below
/// `need`. Given a liveness probe (a system call per lagging slot), a lagging slot whose
/// reader is dead is released and skipped.
pub(crate) fn scan_slots(
    h: &Header,
    need: u64,
    alive: Option<&dyn Fn(u32) -> bool>,
    own: Option<u32>,
) -> std::result::Result<u64, u32> {
    let mut room = u64::MAX;
    for k in 0..READER_SLOTS {
        if own == Some(k) {
            continue; // this handle's own slot: never wait for oneself
        }
        let slot = &h.slots[k as usize];
        let token = slot.active.load(Ordering::SeqCst);
        if token == 0 {
            continue;
        }
        let pos = slot.pos.load(Ordering::SeqCst);
        if pos < need {
            if alive.is_none_or(|alive| alive(k)) {
                return Err(k);
            }
            // Dead reader: free its slot, unless a new reader claimed it meanwhile
            // (then the token differs and the exchange fails).
            let _ = slot
                .active
                .compare_exchange(token, 0, Ordering::SeqCst, Ordering::SeqCst);
            continue;
        }
        room = room.min(pos);
    }
    Ok(room)
}

/// A reader's attach to slot `k` (whose token it holds) at position `pos`, on a ring of
/// `capacity` bytes ("Attaching"): stores the slot, bumps `slot_gen`, then returns the
/// lowest position no write in flight may overwrite — the reader starts no lower.
pub(crate) fn attach_slot(h: &Header, k: u32, pos: u64, capacity: u64) -> u64 {
    let slot = &h.slots[k as usize];
    slot.pos.store(pos, Ordering::SeqCst);
    // A fresh token (never 0); with the bump below it tells writers that their cached
    // view of the slots is stale.
    let token = h.slot_gen.load(Ordering::SeqCst).wrapping_add(1).max(1);
    slot.active.store(token, Ordering::SeqCst);
    h.slot_gen.fetch_add(1, Ordering::SeqCst);
    // The slow side of the fence with writers whose fast side is a compiler fence
    // ("Attaching"). It fails only where the kernel lacks it, and then no writer is
    // registered and all of them take the full fence.
    let _ = sys::membarrier_global();
    // Past what writes in flight may overwrite.
    h.hwm
        .load(Ordering::SeqCst)
        .max(h.len.load(Ordering::SeqCst))
        .saturating_sub(capacity)
}

/// A reader's publication of its position `pos` in slot `k`; wakes a waiting writer.
#[inline]
pub(crate) fn publish_slot_pos<'a>(
    h: &Header,
    k: u32,
    pos: u64,
    bell: impl FnOnce() -> Option<&'a crate::sync::AtomicU32>,
) {
    h.slots[k as usize].pos.store(pos, Ordering::SeqCst);
    wait::notify(&h.space_seq, bell);
}

/// The lossless ring's protocol steps between two threads, on a header in process
/// memory: a unit test that Miri runs too (`ci/miri.sh`), checking the steps' memory
/// accesses for data races and undefined behaviour (the `loom` models in
/// `loom_tests.rs` explore their interleavings).
#[cfg(all(test, not(fshm_loom)))]
mod tests {
    use super::*;
    use crate::header::{Header, FLAG_LOSSLESS};

    #[test]
    fn a_lossless_writer_never_passes_its_reader() {
        const CAP: u64 = 64;
        const WRITES: u64 = if cfg!(miri) { 200 } else { 20_000 };
        let h = Box::new(Header::zero());
        h.flags.store(FLAG_LOSSLESS, Ordering::Relaxed);
        // Slot 0 attached at 0 before the writer starts.
        h.slots[0].active.store(1, Ordering::SeqCst);
        let h: &Header = &h;
        std::thread::scope(|s| {
            s.spawn(|| {
                let (mut room, mut seen, mut pos) = (0u64, 0u32, 0u64);
                for i in 0..WRITES {
                    let end = pos + 8 + i % 9;
                    let need = end.saturating_sub(CAP);
                    while let Err(gen) = room_known(h, need, room, seen) {
                        match scan_slots(h, need, None, None) {
                            Ok(r) => (room, seen) = (r, gen),
                            Err(_) => std::thread::yield_now(),
                        }
                    }
                    let lossless = end > CAP;
                    // A reader attached meanwhile would need a rescan; none does here.
                    assert!(!announce_write(h, end, true, lossless, seen));
                    let reader = h.slots[0].pos.load(Ordering::SeqCst);
                    assert!(
                        end - reader <= CAP,
                        "the write to {end} passes the reader at {reader}"
                    );
                    assert!(publish_ring_len(h, pos, end, || None), "the only writer");
                    pos = end;
                }
            });
            s.spawn(|| {
                let mut pos = 0u64;
                let total: u64 = (0..WRITES).map(|i| 8 + i % 9).sum();
                while pos < total {
                    let len = h.len.load(Ordering::Acquire);
                    if len > pos {
                        pos = len;
                        publish_slot_pos(h, 0, pos, || None);
                    } else {
                        std::thread::yield_now();
                    }
                }
            });
        });
        assert!(h.hwm.load(Ordering::SeqCst) >= h.len.load(Ordering::SeqCst));
    }
}

//! Model checks of the shared-memory protocols under `loom` (see `sync.rs`):
//!
//! ```text
//! RUSTFLAGS="--cfg fshm_loom" cargo test -p fshm --release --lib loom
//! ```
//!
//! Each model builds a header in process memory (`Header::zero`) and a few data bytes in
//! `loom` cells (`loom` atomics for the lossy ring, whose reader races with the writer
//! by design and must then reject what it copied), and runs the protocol steps the stream code runs (`stream::publish_len`,
//! `linear::raise_hwm`/`gap_end`, the `ring.rs` steps, `wait::wait_on`/`notify`) from
//! two or three threads. `loom` explores their interleavings and the values each load
//! may see; a data cell read while a write to it is not ordered before the read (an
//! overrun, or a length published before its bytes) fails the model, and so does a
//! thread that sleeps with nobody left to wake it (a lost wake-up: the modelled futex
//! never times out, `sys.rs`).
//!
//! What the stream code does around these steps (system calls, bounds checks, the
//! cursor) is not modelled; the glue below repeats only the order in which `Core` calls
//! the steps.

use crate::handle::publish_len;
use crate::header::Header;
use crate::linear::{gap_end, raise_hwm};
use crate::ring::{
    announce_write, attach_slot, overrun_after_copy, publish_ring_len, publish_slot_pos,
    room_known, scan_slots, wait_for_room,
};
use crate::wait::{self, Waited};
use loom::cell::UnsafeCell;
use loom::sync::{Arc, Mutex};
use loom::thread;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A stream in process memory: the header and `N` data bytes.
struct Shared<const N: usize> {
    h: Header,
    data: [UnsafeCell<u8>; N],
}

impl<const N: usize> Shared<N> {
    fn new() -> Arc<Self> {
        Arc::new(Shared {
            h: Header::zero(),
            data: std::array::from_fn(|_| UnsafeCell::new(0)),
        })
    }

    /// The copy into the data: a plain write, which `loom` checks is ordered with
    /// every read of the byte.
    fn write(&self, at: u64, byte: u8) {
        // SAFETY: `loom` tracks the access and fails the model on a racing one.
        self.data[at as usize % N].with_mut(|p| unsafe { *p = byte });
    }

    fn read(&self, at: u64) -> u8 {
        // SAFETY: as in `write`.
        self.data[at as usize % N].with(|p| unsafe { *p })
    }
}

/// A bounded model: at most 5 preemptions per execution (`LOOM_MAX_PREEMPTIONS`
/// overrides it); with two or three threads and a few steps each, all models run in
/// seconds.
fn check(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound.get_or_insert(5);
    b.check(f);
}

/// The byte written at position `p` by writer `tag`.
fn byte(tag: u8, p: u64) -> u8 {
    tag.wrapping_mul(16).wrapping_add(p as u8 + 1)
}

/// The data bell: in a stream, the lock object's word writable waiters for data sleep on
/// (`liveness::Doorbells`, `wait.rs`), here next to the model's header.
fn data_bell(h: &Header) -> Option<&crate::sync::AtomicU32> {
    Some(&h.loom_bells[0])
}

/// The room bell, as [`data_bell`].
fn room_bell(h: &Header) -> Option<&crate::sync::AtomicU32> {
    Some(&h.loom_bells[1])
}

/// The readers' wait for data past `pos` (`Core::wait_until`'s rule without the
/// liveness checks, which `slow` runs): the length once it passes `pos`.
fn wait_for_len(h: &Header, pos: u64) -> u64 {
    match wait::wait_on(&h.seq, data_bell(h), false, None, Duration::ZERO, |_slow| {
        let len = h.len.load(Ordering::SeqCst);
        (len > pos).then_some(len)
    }) {
        Waited::Ready(len) => len,
        Waited::TimedOut => unreachable!("no deadline"),
    }
}

/// Length publication: a reader that loads the length sees every byte below it, while
/// a writer writes two chunks (`Core::write_with`: hwm, copy, commit).
#[test]
fn loom_a_reader_sees_every_byte_below_the_published_length() {
    check(|| {
        let s = Shared::<3>::new();
        let w = {
            let s = s.clone();
            thread::spawn(move || {
                let mut hwm_seen = 0;
                for (pos, end) in [(0, 2), (2, 3)] {
                    hwm_seen = raise_hwm(&s.h, end, hwm_seen);
                    for p in pos..end {
                        s.write(p, byte(1, p));
                    }
                    publish_len(&s.h, end, false, || data_bell(&s.h));
                }
            })
        };
        let len = s.h.len.load(Ordering::Acquire);
        for p in 0..len {
            assert_eq!(s.read(p), byte(1, p), "byte {p} below the length {len}");
        }
        w.join().unwrap();
        assert_eq!(s.h.len.load(Ordering::Acquire), 3);
    });
}

/// One append of `n` bytes by writer `tag` under the append lock (`Core::append_locked`
/// and `write_with`); `killed` stops after the copy, so the lock is released (as the
/// kernel releases a dead appender's) without a commit.
fn append<const N: usize>(s: &Shared<N>, lock: &Mutex<()>, tag: u8, n: u64, killed: bool) {
    let _held = lock.lock().unwrap();
    let pos = s.h.len.load(Ordering::Acquire);
    let end = pos + n;
    let len = s.h.len.load(Ordering::Acquire);
    // `clear_gap(len, pos)`.
    for p in len..gap_end(&s.h, pos) {
        s.write(p, 0);
    }
    raise_hwm(&s.h, end, 0);
    for p in pos..end {
        s.write(p, byte(tag, p));
    }
    if !killed {
        publish_len(&s.h, end, false, || data_bell(&s.h));
    }
}

/// The bytes below the length are whole appends of the writers in `tags`, in some
/// order, each `n` bytes long; a reader's view (`len`) never covers a partial one.
fn assert_whole_appends<const N: usize>(s: &Shared<N>, len: u64, n: u64, tags: &[u8]) {
    assert_eq!(len % n, 0, "the length {len} splits an append");
    let mut seen = Vec::new();
    for start in (0..len).step_by(n as usize) {
        let tag = tags
            .iter()
            .copied()
            .find(|&t| s.read(start) == byte(t, start))
            .unwrap_or_else(|| panic!("byte {start} is no committed append's"));
        for p in start..start + n {
            assert_eq!(
                s.read(p),
                byte(tag, p),
                "append of {tag} interleaved at {p}"
            );
        }
        assert!(!seen.contains(&tag), "append of {tag} twice");
        seen.push(tag);
    }
}

/// Appends: two appenders never overlap, and the length never covers an append not
/// yet committed, as a reader sees it at any moment.
#[test]
fn loom_two_appends_never_overlap_and_the_length_covers_only_whole_ones() {
    check(|| {
        let s = Shared::<4>::new();
        let lock = Arc::new(Mutex::new(()));
        let a = {
            let (s, lock) = (s.clone(), lock.clone());
            thread::spawn(move || append(&s, &lock, 1, 2, false))
        };
        let b = {
            let (s, lock) = (s.clone(), lock.clone());
            thread::spawn(move || append(&s, &lock, 2, 2, false))
        };
        let len = s.h.len.load(Ordering::Acquire);
        assert_whole_appends(&s, len, 2, &[1, 2]);
        a.join().unwrap();
        b.join().unwrap();
        let len = s.h.len.load(Ordering::Acquire);
        assert_eq!(len, 4);
        assert_whole_appends(&s, len, 2, &[1, 2]);
    });
}

/// Appends: an appender killed after its copy exposes nothing, the next append lands
/// whole where the killed one would have, and a later write past the length clears
/// what the killed one left in the gap (up to the high-water mark it raised).
#[test]
fn loom_a_killed_appender_exposes_nothing_and_wedges_nobody() {
    check(|| {
        let s = Shared::<4>::new();
        let lock = Arc::new(Mutex::new(()));
        let killed = {
            let (s, lock) = (s.clone(), lock.clone());
            thread::spawn(move || append(&s, &lock, 1, 2, true))
        };
        let b = {
            let (s, lock) = (s.clone(), lock.clone());
            thread::spawn(move || append(&s, &lock, 2, 2, false))
        };
        let len = s.h.len.load(Ordering::Acquire);
        assert_whole_appends(&s, len, 2, &[2]);
        killed.join().unwrap();
        b.join().unwrap();
        let len = s.h.len.load(Ordering::Acquire);
        assert_eq!(len, 2);
        assert_whole_appends(&s, len, 2, &[2]);
        // A write past the length (`write_with` at 3) leaves a gap that reads as zeros,
        // whatever the killed appender left there.
        let len = s.h.len.load(Ordering::Acquire);
        for p in len..gap_end(&s.h, 3) {
            s.write(p, 0);
        }
        raise_hwm(&s.h, 4, 0);
        s.write(3, byte(3, 3));
        publish_len(&s.h, 4, false, || data_bell(&s.h));
        assert_eq!(s.read(2), 0, "the gap shows the killed appender's byte");
    });
}

/// A lossless ring writer's state across writes (`handle::RingWriter`'s `room` and
/// `slot_gen_seen`, and the position it writes at).
struct RingWriter {
    len: u64,
    room: u64,
    slot_gen_seen: u32,
}

/// One lossless ring write of one byte (`Core::ring_claim`, the copy,
/// `Core::ring_publish`), by the only writer; `registered`: its process is registered
/// for the attacher's `membarrier` (the asymmetric fence's fast side), else it takes
/// the read-modify-write (as `sys::membarrier_registered` answers under `loom`).
fn ring_write_byte<const N: usize>(s: &Shared<N>, w: &mut RingWriter, tag: u8, registered: bool) {
    let cap = N as u64;
    let h = &s.h;
    let pos = w.len;
    let end = pos + 1;
    let lossless = end > cap;
    let make_room = |w: &mut RingWriter| {
        if let Err(gen) = room_known(h, end - cap, w.room, w.slot_gen_seen) {
            w.room = wait_for_room(h, end - cap, None, &|_| true, None, room_bell(h)).unwrap();
            w.slot_gen_seen = gen;
        }
    };
    if lossless {
        make_room(w);
    }
    let fast_fence = !lossless || registered || crate::sys::membarrier_registered();
    if announce_write(h, end, fast_fence, lossless, w.slot_gen_seen) {
        make_room(w);
    }
    s.write(pos, byte(tag, pos));
    assert!(publish_ring_len(h, pos, end, || data_bell(h)));
    w.len = end;
}

/// A lossless reader joining a ring (`OpenOptions` for a guest: start at the oldest
/// byte held, attach to slot `k`, start no lower than what writes in flight may
/// overwrite, publish), then reading up to `until` (`ring_read` of trusted bytes, then
/// `publish_slot`). Returns where it started.
fn join_and_read<const N: usize>(s: &Shared<N>, k: u32, until: u64, tag: u8) -> u64 {
    let cap = N as u64;
    let h = &s.h;
    let oldest = h
        .hwm
        .load(Ordering::Acquire)
        .max(h.len.load(Ordering::Acquire))
        .saturating_sub(cap);
    let held_from = attach_slot(h, k, oldest, cap);
    let start = oldest.max(held_from);
    publish_slot_pos(h, k, start, || room_bell(h));
    let mut pos = start;
    while pos < until {
        let len = wait_for_len(h, pos);
        for p in pos..len {
            assert_eq!(s.read(p), byte(tag, p), "reader overrun at {p}");
        }
        pos = len;
        publish_slot_pos(h, k, pos, || room_bell(h));
    }
    start
}

/// A writer writes two bytes into a full lossless ring of 2 while a reader joins and
/// reads to the end.
fn reader_joins_a_busy_ring(registered: bool) {
    const CAP: usize = 2;
    let s = Shared::<CAP>::new();
    // A full ring: positions 0 and 1 written and committed.
    let mut w = RingWriter {
        len: 0,
        room: 0,
        slot_gen_seen: 0,
    };
    for _ in 0..CAP {
        ring_write_byte(&s, &mut w, 1, registered);
    }
    let writer = {
        let s = s.clone();
        thread::spawn(move || {
            for _ in 0..2 {
                ring_write_byte(&s, &mut w, 1, registered);
            }
        })
    };
    let start = join_and_read(&s, 0, 4, 1);
    assert!(start <= 2);
    writer.join().unwrap();
    assert_eq!(s.h.len.load(Ordering::Acquire), 4);
}

/// Ring: a lossless reader that attaches while the writer writes a full ring is never
/// overrun: no write overwrites a position at or past its chosen start before it
/// consumed it (`loom` fails the model if a write of a cell is not ordered after the
/// reader's read of it). The writer takes the read-modify-write.
#[test]
fn loom_a_lossless_reader_attaching_under_a_writer_is_never_overrun() {
    check(|| reader_joins_a_busy_ring(false));
}

/// Ring: the same with a writer whose process is registered for `membarrier`: its
/// side of the fence is the compiler fence, the attacher's the `membarrier`.
#[test]
fn loom_a_lossless_reader_attaching_under_a_registered_writer_is_never_overrun() {
    check(|| reader_joins_a_busy_ring(true));
}

/// A dead reader (token 7, at position 0) in slot 0 of a full ring of 2 bytes, while a
/// new reader joins at position 2 in slot `k` (attach, publish; its OFD lock modelled
/// by a flag) and a writer looks for room up to 1 with `writer`, given the liveness
/// probe. Returns the room the writer found and slot 0's token as the writer sees it
/// afterwards.
fn dead_reader_and_a_new_one(
    k: u32,
    writer: impl Fn(&Header, &dyn Fn(u32) -> bool) -> Option<u64>,
) -> (Option<u64>, u32) {
    let s = Shared::<2>::new();
    let h = &s.h;
    h.slots[0].pos.store(0, Ordering::SeqCst);
    h.slots[0].active.store(7, Ordering::SeqCst);
    h.slot_gen.store(7, Ordering::SeqCst);
    h.len.store(2, Ordering::SeqCst);
    h.hwm.store(2, Ordering::SeqCst);
    let held: Arc<[loom::sync::atomic::AtomicBool; 2]> = Arc::new(Default::default());
    let reader = {
        let (s, held) = (s.clone(), held.clone());
        thread::spawn(move || {
            held[k as usize].store(true, Ordering::SeqCst);
            let start = attach_slot(&s.h, k, 2, 2).max(2);
            publish_slot_pos(&s.h, k, start, || room_bell(&s.h));
        })
    };
    let alive = |k: u32| held[k as usize].load(Ordering::SeqCst);
    let room = writer(h, &alive);
    let token = h.slots[0].active.load(Ordering::SeqCst);
    reader.join().unwrap();
    assert!(
        matches!(room, Some(room) if room >= 1),
        "the writer found room {room:?}, below what it needs"
    );
    (room, token)
}

/// Ring: a dead reader's slot is freed by a writer's scan with liveness probes (a
/// lagging slot whose lock nobody holds), while a new reader attaches to another slot;
/// the writer never waits for either.
#[test]
fn loom_a_dead_readers_slot_is_freed_by_the_scan() {
    check(|| {
        let (_, token) =
            dead_reader_and_a_new_one(1, |h, alive| scan_slots(h, 1, Some(alive), None).ok());
        assert_eq!(token, 0, "the dead reader's slot is still taken");
    });
}

/// Ring: a new reader taking the dead reader's slot while a writer waits for room is
/// never lost and never blocks the writer for good: its publication wakes the writer,
/// whose scan then finds room. (That the scan's compare-and-swap never frees the new
/// reader's token holds by the exchange itself; `loom` cannot check the slot's final
/// token, since it orders a compare-and-swap and a store of other threads only by
/// happens-before, not in one modification order.)
#[test]
fn loom_a_new_reader_in_a_dead_readers_slot_unblocks_the_writer() {
    check(|| {
        dead_reader_and_a_new_one(0, |h, alive| {
            wait_for_room(h, 1, None, alive, None, room_bell(h))
        });
    });
}

/// Wake rule: a reader that announced its sleep is always woken by a commit that
/// follows (a lost wake-up leaves it asleep for good: `loom` reports the deadlock).
#[test]
fn loom_a_waiting_reader_is_always_woken_by_the_next_commit() {
    check(|| {
        let s = Shared::<1>::new();
        let reader = {
            let s = s.clone();
            thread::spawn(move || wait_for_len(&s.h, 0))
        };
        s.write(0, 9);
        publish_len(&s.h, 1, false, || data_bell(&s.h));
        assert_eq!(reader.join().unwrap(), 1);
        assert_eq!(s.read(0), 9);
        assert!(crate::sys::futex_wakes(data_bell(&s.h).unwrap()) <= 1);
    });
}

/// Wake rule: a lossless writer waiting for room is always woken by the reader that
/// makes it (`publish_slot`), the same rule on `space_seq`.
#[test]
fn loom_a_writer_waiting_for_room_is_always_woken_by_the_reader() {
    check(|| {
        let s = Shared::<1>::new();
        s.h.slots[0].pos.store(0, Ordering::SeqCst);
        s.h.slots[0].active.store(1, Ordering::SeqCst);
        let reader = {
            let s = s.clone();
            thread::spawn(move || publish_slot_pos(&s.h, 0, 1, || room_bell(&s.h)))
        };
        assert_eq!(
            wait_for_room(&s.h, 1, None, &|_| true, None, room_bell(&s.h)),
            Some(1)
        );
        reader.join().unwrap();
    });
}

/// Wake rule: a writer makes no wake call when nobody announced a sleep.
#[test]
fn loom_a_commit_with_nobody_waiting_makes_no_wake_call() {
    check(|| {
        let s = Shared::<2>::new();
        let other = {
            let s = s.clone();
            thread::spawn(move || publish_len(&s.h, 1, false, || data_bell(&s.h)))
        };
        publish_len(&s.h, 2, false, || data_bell(&s.h));
        other.join().unwrap();
        publish_slot_pos(&s.h, 0, 2, || room_bell(&s.h));
        for word in [
            &s.h.seq,
            &s.h.space_seq,
            &s.h.loom_bells[0],
            &s.h.loom_bells[1],
        ] {
            assert_eq!(crate::sys::futex_wakes(word), 0);
        }
    });
}

/// A lossy ring in process memory: the header and `N` data bytes as relaxed atomics,
/// as `Window::write` stores them and `Window::read_shared` loads them — a lossy
/// reader's copy races with the writer by design, so the cells may not be plain ones.
struct LossyRing<const N: usize> {
    h: Header,
    data: [loom::sync::atomic::AtomicU8; N],
}

/// One write of `[pos, end)` by the only writer (`Core::ring_claim` without slots, the
/// copy, `Core::ring_publish`); `fast_fence`: the writer's token stood (the plain store
/// of `hwm` and a release fence), else the read-modify-write.
fn lossy_write<const N: usize>(r: &LossyRing<N>, pos: u64, end: u64, fast_fence: bool) {
    assert!(!announce_write(&r.h, end, fast_fence, false, 0));
    for p in pos..end {
        r.data[p as usize % N].store(byte(1, p), Ordering::Relaxed);
    }
    publish_ring_len(&r.h, pos, end, || data_bell(&r.h));
}

/// A lossy read at `pos` (`Core::ring_read` without the cursor): `None` for an overrun,
/// else the bytes it accepts.
fn lossy_read<const N: usize>(r: &LossyRing<N>, pos: u64) -> Option<Vec<u8>> {
    let cap = N as u64;
    let len = r.h.len.load(Ordering::Acquire);
    if pos >= len {
        return Some(Vec::new());
    }
    if pos < len.saturating_sub(cap) {
        return None;
    }
    let n = (len - pos).min(cap);
    let copy: Vec<u8> = (pos..pos + n)
        .map(|p| r.data[p as usize % N].load(Ordering::Relaxed))
        .collect();
    (!overrun_after_copy(&r.h, pos, cap)).then_some(copy)
}

/// A full ring of 2 (positions 0 and 1 committed) that a writer laps with two one-byte
/// writes while a lossy reader reads from position 0.
fn writer_laps_a_lossy_reader(fast_fence: bool) {
    const CAP: usize = 2;
    let r = Arc::new(LossyRing::<CAP> {
        h: Header::zero(),
        data: std::array::from_fn(|_| loom::sync::atomic::AtomicU8::new(0)),
    });
    lossy_write(&r, 0, 2, fast_fence);
    let writer = {
        let r = r.clone();
        thread::spawn(move || {
            lossy_write(&r, 2, 3, fast_fence);
            lossy_write(&r, 3, 4, fast_fence);
        })
    };
    for pos in [0, 1] {
        if let Some(got) = lossy_read(&r, pos) {
            for (p, b) in (pos..).zip(got) {
                assert_eq!(b, byte(1, p), "accepted a byte of another position at {p}");
            }
        }
    }
    writer.join().unwrap();
    assert_eq!(r.h.len.load(Ordering::Acquire), 4);
    assert!(lossy_read(&r, 0).is_none(), "lapped bytes read as whole");
    assert_eq!(lossy_read(&r, 2), Some(vec![byte(1, 2), byte(1, 3)]));
}

/// Ring: a lossy reader lapped by the writer either gets exactly the bytes written for
/// the positions it reads or reports an overrun, never bytes of a later lap that it
/// accepts — the release fence before a writer's relaxed stores pairs with the acquire
/// fence after the reader's relaxed loads (`ring::overrun_after_copy`). The writer's
/// token stood: the plain store of `hwm`.
#[test]
fn loom_a_lossy_reader_lapped_by_the_writer_accepts_only_whole_bytes() {
    check(|| writer_laps_a_lossy_reader(true));
}

/// Ring: the same with a writer that raises `hwm` with the read-modify-write (another
/// handle wrote since its last write).
#[test]
fn loom_a_lossy_reader_lapped_by_a_writer_taking_the_read_modify_write_accepts_only_whole_bytes() {
    check(|| writer_laps_a_lossy_reader(false));
}

//! The shared header at the start of every stream object: its layout, and the checks a
//! process makes before trusting what another process wrote there.
//!
//! # Layout (version 3)
//!
//! All integers are native-endian (little-endian on x86_64). The data starts at
//! [`DATA_OFFSET`] (4096), page-aligned; byte `i` of the stream is at object offset
//! `4096 + i` (for ring streams, at `4096 + i % capacity`). Fields written by different
//! sides sit on separate 64-byte cache lines.
//!
//! | offset | size | field | written by | meaning |
//! |---:|---:|---|---|---|
//! | 0 | 8 | `magic` | owner, once | `b"FSHMSTRM"` as a little-endian u64, set when the header is ready: since version 3 before the stream gets its name (the owner builds it under a creation name and renames it, `open.rs`), so a guest never finds it unset on a new stream; a guest still waits (bounded) for an unset magic while an owner token is held |
//! | 8 | 4 | `version` | owner, once | layout version, `3`. Version 2 named the lock object `<object name>%lock`, which anyone could create first, and had no `lock_key`: a version-2 process would look for the lock object under the wrong name (appends and lossless readers failing with `ENOENT`, reclaims never removing), so the version changed and each side refuses the other's streams with `EPROTO` |
//! | 12 | 4 | `data_offset` | owner, once | `4096` |
//! | 16 | 8 | `max_size` | owner, once | maximum length in bytes (linear) or ring capacity's window |
//! | 24 | 8 | `ring_capacity` | owner, once | `0` for a linear stream, else the ring capacity in bytes |
//! | 32 | 4 | `flags` | owner, once | bit 0 persistent, bit 1 ring, bit 2 lossless ring, bit 3 immutable (linear streams only: committed bytes are never rewritten, every write appends under the append token), bit 4 replica (written only by its owner, an importer mirroring another stream: guests open it read-only; `source` says from where); a reader that meets a bit it does not know refuses the stream |
//! | 36 | 4 | `reader_slots` | owner, once | number of reader slots (`32`) |
//! | 40 | 8 | `lock_ino` | owner, once | inode number of the stream's lock object (`liveness.rs`), never 0 |
//! | 48 | 4 | `owner_pid` | owner, once | the creating process's pid in its pid namespace (`0`: not recorded) — a hint, never the liveness token (`liveness.rs`, "Watching the owner") |
//! | 56 | 8 | `owner_pidns` | owner, once | inode number of that pid namespace (`/proc/self/ns/pid`; `0`: not known); the pid means something only to processes in the same namespace |
//! | 64 | 8 | `len` | writers | committed length; release store after the bytes are written |
//! | 72 | 8 | `lock_key` | owner, once | the random key in the name of the stream's lock object (`liveness.rs`), never 0; read with the fixed fields |
//! | 80 | 8 | `alloc` | writers | data bytes reserved with `fallocate` (a hint; `fstat` is the truth) |
//! | 128 | 4 | `seq` | both | announce word for readers waiting for data: bit 0 set by a writable reader about to sleep on the lock object's data bell; a commit that finds it set clears it (adding 1) and rings the bell (`wait.rs`). Read-only readers, which cannot set it, nap on it. (Until layout 3 was released, writable readers slept here too, where any reader could wake them) |
//! | 192 | 4 | `owner_state` | owner | `0` creating, `1` open, `2` closed |
//! | 196 | 4 | `stale` | owner | replicas (flag bit 4): `1` while the owner (an importer) has lost its source and the replica may be behind it, `0` otherwise ([`Stream::set_stale`](crate::Stream::set_stale)); readers only report it. Added within layout 3 in a byte that was reserved and zero: a process of an earlier release ignores it (it never sees the mark; nothing else changes) |
//! | 256 | 4 | `space_seq` | both | announce word for a lossless ring writer waiting for room, same rule: bit 0 set by the writer, which sleeps on the lock object's room bell; cleared by a reader that made room, which rings the bell |
//! | 320 | 4 | `slot_gen` | readers | bumped by every attach; its new value is the attach's token |
//! | 324 | 4 | `followers` | readers | linear streams: writable handles that have waited for data and are still open — a hint for the writer's choice of write path (`grow.rs`); a follower that died leaves it one too high, which costs speed, never correctness |
//! | 384 | 8 | `hwm` | writers | high-water mark: no byte at or past it was ever written (off the length's line, which followers poll) |
//! | 392 | 8 | `ring_writer` | ring writers | token of the handle that wrote the ring last (`0`: none known); a writer that finds its own token knows the length without loading it (`ring.rs`) |
//! | 448 | 8 | `floor` | ring writers | rings: no position below it is held (`0`: none skipped); raised only by [`Stream::skip_to`](crate::Stream::skip_to), which moves the end past bytes that were never written here (a replica's bytes lost at its source); readers count positions below it as overrun |
//! | 512 | 256 | `source` | owner, once | replicas (flag bit 4): where the stream is mirrored from, UTF-8, NUL-padded (`OpenOptions::replica_of`); written before the stream gets its name |
//! | 1024 + 64·k | 8 | `slot[k].pos` | reader k | position of attached lossless-ring reader `k` |
//! | 1032 + 64·k | 4 | `slot[k].active` | reader k, writer | the attach token while attached, `0` when free (a writer clears it, by compare-and-swap, when it finds the slot's reader dead) |
//!
//! Everything not listed is zero and reserved. Besides the header bytes, fshm uses
//! open-file-description write locks as kernel-released tokens: byte 0 of the stream
//! object is held by the owner while it lives; on the stream's lock object
//! (`<object name>%lock.<lock_key in 16 hex digits>`, a name nobody can know before
//! the owner creates the object, which only processes that may write the stream can open),
//! byte 0 by a process reclaiming the name, byte 1 by an appender while it appends, and
//! byte `2 + k` by the reader attached to slot `k`. The rules are in `liveness.rs`.
//!
//! The lock object is one page (4096 bytes, allocated by the owner at creation), and
//! holds the futex words writable waiters sleep on, out of read-only users' reach
//! (`wait.rs`, "Where waiters sleep"; `liveness::Doorbells`):
//!
//! | lock object offset | size | field | written by | meaning |
//! |---:|---:|---|---|---|
//! | 0 | 4 | data bell | writers | moved on (+1) and woken by a commit that found `seq` flagged |
//! | 64 | 4 | room bell | lossless readers | moved on (+1) and woken by a reader's progress that found `space_seq` flagged |
//!
//! The rest of the page is zero and reserved. A lock object smaller than a page is
//! never mapped (`EPROTO`); its handles then poll as read-only ones do.

use crate::error::not_fshm;
use crate::sync::{AtomicU32, AtomicU64};
use crate::sys;
use std::cell::UnsafeCell;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

/// Object offset where the stream's data begins.
pub const DATA_OFFSET: u64 = 4096;
/// The header magic, `b"FSHMSTRM"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"FSHMSTRM");
/// The layout version this library reads and writes.
pub const VERSION: u32 = 3;
/// Number of reader slots in the header.
#[cfg(not(fshm_loom))]
pub const READER_SLOTS: u32 = 32;
/// Under `loom` (`sync.rs`) a header built in process memory has two reader slots,
/// which is enough for every interleaving the models explore and keeps scans short.
#[cfg(fshm_loom)]
pub const READER_SLOTS: u32 = 2;
/// Largest maximum size a stream may have (16 TiB): bounds the virtual window.
pub const MAX_SIZE_LIMIT: u64 = 1 << 44;

/// Flag: the owner leaves the name in place when it closes.
pub const FLAG_PERSISTENT: u32 = 1;
/// Flag: ring stream.
pub const FLAG_RING: u32 = 2;
/// Flag: lossless ring (writer waits for attached readers).
pub const FLAG_LOSSLESS: u32 = 4;
/// Flag: immutable linear stream (committed bytes are never rewritten; see the crate
/// docs, "Zero-copy").
pub const FLAG_IMMUTABLE: u32 = 8;
/// Flag: a replica of a stream elsewhere, written only by its owner (guests open it
/// read-only; see [`OpenOptions::replica_of`](crate::OpenOptions::replica_of)).
pub const FLAG_REPLICA: u32 = 16;
const KNOWN_FLAGS: u32 =
    FLAG_PERSISTENT | FLAG_RING | FLAG_LOSSLESS | FLAG_IMMUTABLE | FLAG_REPLICA;
/// Offset and size of the replica's `source` field.
pub const SOURCE_AT: u64 = 512;
/// Longest replica source, in bytes.
pub const SOURCE_MAX: usize = 256;

/// `owner_state`: the owner is still setting the header up.
pub const OWNER_CREATING: u32 = 0;
/// `owner_state`: the owner has the stream open.
pub const OWNER_OPEN: u32 = 1;
/// `owner_state`: the owner closed the stream.
pub const OWNER_CLOSED: u32 = 2;

/// End of the header fields a new owner sets (through `owner_state`).
pub(crate) const OWNER_FIELDS_END: usize = 196;
/// Offset of `owner_state`.
pub(crate) const OWNER_STATE_AT: u64 = 192;
/// Offset of `seq` and of `space_seq` (the futex words).
pub(crate) const SEQ_AT: u64 = 128;
pub(crate) const SPACE_SEQ_AT: u64 = 256;

/// OFD lock byte of the stream object held by the owner for its lifetime.
pub const LOCK_OWNER: u64 = 0;
/// OFD lock byte of the lock object held by a process reclaiming the name.
pub const LOCK_RECLAIM: u64 = 0;
/// OFD lock byte of the lock object held by an appender while it appends.
pub const LOCK_APPEND: u64 = 1;
/// First OFD lock byte of the lock object for the reader slots (`LOCK_SLOT0 + k`).
pub const LOCK_SLOT0: u64 = 2;

/// Header bytes fshm never reads or writes but other processes may (padding, reserved
/// fields, fields of later versions): in an `UnsafeCell`, so that no `&Header` asserts
/// they do not change.
#[repr(transparent)]
pub(crate) struct Pad<const N: usize>(UnsafeCell<[u8; N]>);

impl<const N: usize> Pad<N> {
    const fn zero() -> Pad<N> {
        Pad(UnsafeCell::new([0; N]))
    }
}

// SAFETY: no code reaches the bytes through a `Pad` (the field is private and `Pad` has
// no accessor); only a raw byte view of a whole header in process memory
// (`Header::image`) reads them, while no one else can write them.
unsafe impl<const N: usize> Sync for Pad<N> {}

/// One reader slot (64 bytes).
#[repr(C)]
pub(crate) struct Slot {
    pub pos: AtomicU64,
    pub active: AtomicU32,
    _pad: Pad<52>,
}

/// The header as it lies in shared memory. Every field is atomic: other processes
/// change it while we read it. (Under `loom` its atomics are the model checker's, which
/// do not have this layout: such a header lives in process memory only.)
#[repr(C)]
pub(crate) struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub data_offset: AtomicU32,
    pub max_size: AtomicU64,
    pub ring_capacity: AtomicU64,
    pub flags: AtomicU32,
    pub reader_slots: AtomicU32,
    pub lock_ino: AtomicU64,
    pub owner_pid: AtomicU32,
    _pad0: Pad<4>,
    pub owner_pidns: AtomicU64,
    // 64: writer side
    pub len: AtomicU64,
    pub lock_key: AtomicU64,
    pub alloc: AtomicU64,
    _pad1: Pad<40>,
    // 128: reader wake-up
    pub seq: AtomicU32,
    _pad2: Pad<60>,
    // 192: owner
    pub owner_state: AtomicU32,
    pub stale: AtomicU32,
    _pad3: Pad<56>,
    // 256: lossless ring writer wake-up
    pub space_seq: AtomicU32,
    _pad4: Pad<60>,
    // 320: reader attachments
    pub slot_gen: AtomicU32,
    pub followers: AtomicU32,
    _pad5: Pad<56>,
    // 384: writers only (a lossy ring reader loads it after each copy)
    pub hwm: AtomicU64,
    pub ring_writer: AtomicU64,
    _pad6: Pad<48>,
    // 448: raised only by a skip (rings)
    pub floor: AtomicU64,
    _pad7: Pad<56>,
    // 512: replica source (owner, once), read as bytes by `info`
    pub source: Pad<512>,
    // 1024: reader slots
    pub slots: [Slot; READER_SLOTS as usize],
    /// Under `loom` only: the data and room bells, which live in the stream's lock
    /// object (`liveness::Doorbells`), for the models' header in process memory.
    #[cfg(fshm_loom)]
    pub loom_bells: [AtomicU32; 2],
}

#[cfg(not(fshm_loom))]
const _: () = {
    assert!(std::mem::offset_of!(Header, lock_ino) == 40);
    assert!(std::mem::offset_of!(Header, owner_pid) == 48);
    assert!(std::mem::offset_of!(Header, owner_pidns) == 56);
    assert!(std::mem::offset_of!(Header, len) == 64);
    assert!(std::mem::offset_of!(Header, lock_key) == 72);
    assert!(std::mem::offset_of!(Header, lock_key) + 8 <= FIXED_FIELDS);
    assert!(std::mem::offset_of!(Header, seq) == 128);
    assert!(std::mem::offset_of!(Header, owner_state) == 192);
    assert!(std::mem::offset_of!(Header, stale) == 196);
    assert!(std::mem::offset_of!(Header, space_seq) == 256);
    assert!(std::mem::offset_of!(Header, slot_gen) == 320);
    assert!(std::mem::offset_of!(Header, followers) == 324);
    assert!(std::mem::offset_of!(Header, alloc) == 80);
    assert!(std::mem::offset_of!(Header, hwm) == 384);
    assert!(std::mem::offset_of!(Header, ring_writer) == 392);
    assert!(std::mem::offset_of!(Header, floor) == 448);
    assert!(std::mem::offset_of!(Header, source) as u64 == SOURCE_AT);
    assert!(std::mem::offset_of!(Slot, pos) == 0);
    assert!(std::mem::offset_of!(Slot, active) == 8);
    assert!(std::mem::size_of::<Slot>() == 64);
    assert!(std::mem::offset_of!(Header, owner_state) as u64 == OWNER_STATE_AT);
    assert!(std::mem::offset_of!(Header, seq) as u64 == SEQ_AT);
    assert!(std::mem::offset_of!(Header, space_seq) as u64 == SPACE_SEQ_AT);
    assert!(std::mem::offset_of!(Header, owner_state) + 4 == OWNER_FIELDS_END);
    assert!(std::mem::offset_of!(Header, slots) == 1024);
    assert!(std::mem::size_of::<Slot>() == 64);
    assert!(std::mem::size_of::<Header>() == 1024 + 64 * READER_SLOTS as usize);
    assert!(std::mem::size_of::<Header>() as u64 <= DATA_OFFSET);
};

/// The header of zeros, given how to make its slots (`Header::zero`).
macro_rules! zero_header {
    (|| $slots:expr) => {
        Header {
            magic: AtomicU64::new(0),
            version: AtomicU32::new(0),
            data_offset: AtomicU32::new(0),
            max_size: AtomicU64::new(0),
            ring_capacity: AtomicU64::new(0),
            flags: AtomicU32::new(0),
            reader_slots: AtomicU32::new(0),
            lock_ino: AtomicU64::new(0),
            owner_pid: AtomicU32::new(0),
            _pad0: Pad::zero(),
            owner_pidns: AtomicU64::new(0),
            len: AtomicU64::new(0),
            lock_key: AtomicU64::new(0),
            alloc: AtomicU64::new(0),
            _pad1: Pad::zero(),
            seq: AtomicU32::new(0),
            _pad2: Pad::zero(),
            owner_state: AtomicU32::new(0),
            stale: AtomicU32::new(0),
            _pad3: Pad::zero(),
            space_seq: AtomicU32::new(0),
            _pad4: Pad::zero(),
            slot_gen: AtomicU32::new(0),
            followers: AtomicU32::new(0),
            _pad5: Pad::zero(),
            hwm: AtomicU64::new(0),
            ring_writer: AtomicU64::new(0),
            _pad6: Pad::zero(),
            floor: AtomicU64::new(0),
            _pad7: Pad::zero(),
            source: Pad::zero(),
            slots: $slots,
            #[cfg(fshm_loom)]
            loom_bells: [AtomicU32::new(0), AtomicU32::new(0)],
        }
    };
}

/// The fixed part of a header, read once and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub max_size: u64,
    pub ring_capacity: u64,
    pub flags: u32,
    /// Inode number of the stream's lock object.
    pub lock_ino: u64,
    /// The random key in the lock object's name.
    pub lock_key: u64,
    /// The owner's pid and pid namespace as it recorded them (0: not recorded): a hint
    /// for watching its death, never trusted as liveness.
    pub owner_pid: u32,
    pub owner_pidns: u64,
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The magic is not written yet (creation in progress, or not an fshm object).
    NotReady,
    /// Wrong magic: not an fshm stream.
    NotFshm,
    /// An fshm stream of another layout version.
    Version(u32),
    /// A field is out of range.
    Corrupt(&'static str),
}

impl Header {
    /// A replica's source, from a private copy of a header (`read_header`; the `&mut`
    /// says nobody else writes it): `None` when the field is empty or not UTF-8.
    pub(crate) fn copied_source(&mut self) -> Option<String> {
        let bytes = &self.source.0.get_mut()[..SOURCE_MAX];
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(SOURCE_MAX);
        let s = std::str::from_utf8(&bytes[..end]).ok()?;
        (!s.is_empty()).then(|| s.to_owned())
    }

    /// Checks the fixed fields (magic first, with acquire, so the rest is the owner's).
    pub fn layout(&self) -> Result<Layout, Refusal> {
        match self.magic.load(Ordering::Acquire) {
            MAGIC => {}
            0 => return Err(Refusal::NotReady),
            _ => return Err(Refusal::NotFshm),
        }
        let version = self.version.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(Refusal::Version(version));
        }
        if u64::from(self.data_offset.load(Ordering::Relaxed)) != DATA_OFFSET {
            return Err(Refusal::Corrupt("data offset"));
        }
        let max_size = self.max_size.load(Ordering::Relaxed);
        if max_size == 0 || max_size > MAX_SIZE_LIMIT {
            return Err(Refusal::Corrupt("maximum size"));
        }
        let flags = self.flags.load(Ordering::Relaxed);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Refusal::Corrupt("flags"));
        }
        let ring_capacity = self.ring_capacity.load(Ordering::Relaxed);
        let is_ring = flags & FLAG_RING != 0;
        if is_ring != (ring_capacity != 0) || ring_capacity > max_size {
            return Err(Refusal::Corrupt("ring capacity"));
        }
        if flags & FLAG_LOSSLESS != 0 && !is_ring {
            return Err(Refusal::Corrupt("flags"));
        }
        if flags & FLAG_IMMUTABLE != 0 && is_ring {
            return Err(Refusal::Corrupt("flags"));
        }
        if self.reader_slots.load(Ordering::Relaxed) != READER_SLOTS {
            return Err(Refusal::Corrupt("reader slots"));
        }
        let lock_ino = self.lock_ino.load(Ordering::Relaxed);
        let lock_key = self.lock_key.load(Ordering::Relaxed);
        if lock_ino == 0 || lock_key == 0 {
            return Err(Refusal::Corrupt("lock object"));
        }
        Ok(Layout {
            max_size,
            ring_capacity,
            flags,
            lock_ino,
            lock_key,
            owner_pid: self.owner_pid.load(Ordering::Relaxed),
            owner_pidns: self.owner_pidns.load(Ordering::Relaxed),
        })
    }

    /// A header of zeros, for a handle whose mapping could not be made (its reads then
    /// see an empty stream; its data accesses fail with the mapping's error).
    #[cfg(not(fshm_loom))]
    pub(crate) const fn zero() -> Header {
        zero_header!(|| [const {
            Slot {
                pos: AtomicU64::new(0),
                active: AtomicU32::new(0),
                _pad: Pad::zero(),
            }
        }; READER_SLOTS as usize])
    }

    /// A header of zeros in process memory, for a `loom` model (whose atomics cannot be
    /// made in a constant, nor outside a model).
    #[cfg(fshm_loom)]
    #[cfg_attr(not(test), allow(dead_code))] // the models are tests
    pub(crate) fn zero() -> Header {
        zero_header!(|| std::array::from_fn(|_| Slot {
            pos: AtomicU64::new(0),
            active: AtomicU32::new(0),
            _pad: Pad::zero(),
        }))
    }

    /// The bytes a new owner writes at offset 0 of a zeroed object, in two parts: first
    /// `image[8..]` (every field but the magic), then `image[..8]` (the magic, which
    /// makes the header valid). Only the first `OWNER_FIELDS_END` bytes can be non-zero.
    #[cfg(not(fshm_loom))]
    pub(crate) fn image(layout: Layout) -> [u8; OWNER_FIELDS_END] {
        let h = Header::zero();
        h.init(layout);
        let mut out = [0u8; OWNER_FIELDS_END];
        // SAFETY: `Header` is `repr(C)` plain data (atomics and `Pad`s, byte arrays in
        // `UnsafeCell`s) at least `OWNER_FIELDS_END` bytes long; `h` is a local nobody
        // else touches, so no byte changes while the view lives.
        let bytes = unsafe {
            std::slice::from_raw_parts((&h as *const Header).cast::<u8>(), OWNER_FIELDS_END)
        };
        out.copy_from_slice(bytes);
        out
    }

    /// Under `loom` the header's atomics do not have the layout: a model has no image.
    #[cfg(fshm_loom)]
    pub(crate) fn image(_layout: Layout) -> [u8; OWNER_FIELDS_END] {
        unreachable!("a loom model builds its header in process memory")
    }

    /// Fills a zeroed header and publishes it (magic last, with release).
    pub fn init(&self, layout: Layout) {
        self.version.store(VERSION, Ordering::Relaxed);
        self.data_offset
            .store(DATA_OFFSET as u32, Ordering::Relaxed);
        self.max_size.store(layout.max_size, Ordering::Relaxed);
        self.ring_capacity
            .store(layout.ring_capacity, Ordering::Relaxed);
        self.flags.store(layout.flags, Ordering::Relaxed);
        self.reader_slots.store(READER_SLOTS, Ordering::Relaxed);
        self.lock_ino.store(layout.lock_ino, Ordering::Relaxed);
        self.lock_key.store(layout.lock_key, Ordering::Relaxed);
        self.owner_pid.store(layout.owner_pid, Ordering::Relaxed);
        self.owner_pidns
            .store(layout.owner_pidns, Ordering::Relaxed);
        self.owner_state.store(OWNER_OPEN, Ordering::Relaxed);
        self.magic.store(MAGIC, Ordering::Release);
    }
}

/// Bytes of the header holding its fixed fields: its first cache line and `lock_key`.
pub(crate) const FIXED_FIELDS: usize = 80;

/// Reads the header of an open object into a private copy (one `pread`, straight into
/// it). Only the first `upto` bytes are read (the rest stay zero): opening needs just the
/// fixed fields ([`FIXED_FIELDS`]); an object shorter than that reads as zeros past its
/// end (or as what the short read gave).
#[cfg(not(fshm_loom))]
pub(crate) fn read_header(fd: &OwnedFd, upto: usize) -> Result<Box<Header>, sys::Errno> {
    use std::os::fd::AsFd;
    let mut h = Box::new(Header::zero());
    let size = std::mem::size_of::<Header>().min(upto);
    // SAFETY: the box is ours alone and `size` is within it; `Header` is `repr(C)` and
    // made of atomics and `Pad`s (byte arrays in `UnsafeCell`s), for which every bit
    // pattern the read stores is valid, and the view only ever receives initialised
    // bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            (&mut *h as *mut Header).cast::<std::mem::MaybeUninit<u8>>(),
            size,
        )
    };
    match sys::pread_exact_uninit(fd.as_fd(), bytes, 0) {
        Ok(()) | Err(libc::EIO) => Ok(h), // EIO: the object ended first
        Err(e) => Err(e),
    }
}

/// Under `loom` the header's atomics do not have the layout: a model reads no header.
#[cfg(fshm_loom)]
pub(crate) fn read_header(_fd: &OwnedFd, _upto: usize) -> Result<Box<Header>, sys::Errno> {
    unreachable!("a loom model builds its header in process memory")
}

/// The error for a refused header, naming stream `n`.
pub(crate) fn refusal_error(n: &str, r: Refusal) -> std::io::Error {
    match r {
        Refusal::NotReady => not_fshm(n, "not an fshm stream (no header)"),
        Refusal::NotFshm => not_fshm(n, "not an fshm stream (wrong magic)"),
        Refusal::Version(v) => not_fshm(n, format!("unsupported fshm layout version {v}")),
        Refusal::Corrupt(what) => not_fshm(n, format!("malformed header ({what})")),
    }
}

/// Unit tests that Miri runs too (`ci/miri.sh`): the header's byte image, built by
/// viewing the `repr(C)` struct of atomics as bytes, and the checks on it.
#[cfg(all(test, not(fshm_loom)))]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            max_size: 1 << 20,
            ring_capacity: 0,
            flags: FLAG_PERSISTENT,
            lock_ino: 77,
            lock_key: 0x0123_4567_89ab_cdef,
            owner_pid: 4242,
            owner_pidns: 4_026_531_836,
        }
    }

    #[test]
    fn an_initialised_header_reads_back_its_layout() {
        let h = Box::new(Header::zero());
        assert_eq!(h.layout(), Err(Refusal::NotReady));
        h.init(layout());
        assert_eq!(h.layout(), Ok(layout()));
        assert_eq!(h.owner_state.load(Ordering::Relaxed), OWNER_OPEN);
    }

    #[test]
    fn the_image_holds_every_field_at_its_offset() {
        let img = Header::image(layout());
        let u32_at = |o: usize| u32::from_ne_bytes(img[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_ne_bytes(img[o..o + 8].try_into().unwrap());
        assert_eq!(u64_at(0), MAGIC);
        assert_eq!(u32_at(8), VERSION);
        assert_eq!(u64::from(u32_at(12)), DATA_OFFSET);
        assert_eq!(u64_at(16), 1 << 20);
        assert_eq!(u32_at(32), FLAG_PERSISTENT);
        assert_eq!(u32_at(36), READER_SLOTS);
        assert_eq!(u64_at(40), 77);
        assert_eq!(u32_at(48), 4242);
        assert_eq!(u64_at(56), 4_026_531_836);
        assert_eq!(u64_at(72), 0x0123_4567_89ab_cdef);
        assert_eq!(u32_at(OWNER_STATE_AT as usize), OWNER_OPEN);
        // Everything else the owner writes is zero.
        assert!(img[64..72].iter().all(|&b| b == 0));
        assert!(img[80..OWNER_STATE_AT as usize].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_bad_header_is_refused() {
        let h = Box::new(Header::zero());
        h.init(layout());
        h.version.store(VERSION + 1, Ordering::Relaxed);
        assert_eq!(h.layout(), Err(Refusal::Version(VERSION + 1)));
        h.version.store(VERSION, Ordering::Relaxed);
        h.flags.store(FLAG_LOSSLESS, Ordering::Relaxed);
        assert_eq!(h.layout(), Err(Refusal::Corrupt("flags")));
        h.flags.store(0, Ordering::Relaxed);
        h.lock_ino.store(0, Ordering::Relaxed);
        assert_eq!(h.layout(), Err(Refusal::Corrupt("lock object")));
        h.lock_ino.store(77, Ordering::Relaxed);
        h.lock_key.store(0, Ordering::Relaxed);
        assert_eq!(h.layout(), Err(Refusal::Corrupt("lock object")));
        h.magic.store(1, Ordering::Relaxed);
        assert_eq!(h.layout(), Err(Refusal::NotFshm));
    }
}

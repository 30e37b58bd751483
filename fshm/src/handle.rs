//! A handle's state: [`Core`], what every operation of every mode reads (the name,
//! descriptor, window, layout, flags), and [`Cursor`], the handle's own state behind its
//! lock; the length publication; closing. The modes' operations (`linear.rs`,
//! `ring.rs`, `inplace.rs`) are `impl Core` blocks of their own files, above which
//! `stream.rs` dispatches between them.

use crate::error::{not_fshm, os, Result};
use crate::header::{
    Header, Layout, DATA_OFFSET, FLAG_IMMUTABLE, FLAG_LOSSLESS, FLAG_PERSISTENT, OWNER_CLOSED,
    OWNER_STATE_AT, SEQ_AT, SPACE_SEQ_AT,
};
use crate::liveness::{self, OwnerState};
use crate::name::Name;
use crate::sys;
use crate::wait::{self, Waited};
use crate::window::Window;
// Lazily made parts of a handle are `OnceBox`es, not blocking `OnceCell`s: threads
// that race to make one each make it and all but the first drop theirs (a mapping
// unmapped, a descriptor closed), and nobody waits for another thread's
// initialisation — which a child `fork(2)` made while another thread of its parent was
// inside one would do forever, at its first use of the handle.
use once_cell::race::OnceBox;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether a handle created its stream or opened an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Created the name; removes it on close unless the stream is persistent.
    Owner,
    /// Opened an existing name; never removes it.
    Guest,
}

/// What a wait for data ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitStatus {
    /// The stream holds data past the position waited for.
    Data,
    /// No data past the position, and none will come: the owner closed or died.
    Ended,
    /// The timeout passed first.
    TimedOut,
}

/// Per-handle state behind the handle's lock: what every mode uses, then each mode's
/// own state in a type of its own (a handle of a ring may write and read; in-place and
/// C-layer state apply to linear streams and rings alike).
pub(crate) struct Cursor {
    /// The handle's position.
    pub pos: u64,
    /// Object bytes known to exist (size verified with the kernel or grown by us).
    pub(crate) verified: u64,
    /// A lower bound of the shared high-water mark.
    pub(crate) hwm_seen: u64,
    /// Ring reading (`ring.rs`).
    pub(crate) reader: RingReader,
    /// Ring writing (`ring.rs`).
    pub(crate) writer: RingWriter,
    /// In-place reads and writes (`inplace.rs`).
    pub(crate) in_place: InPlaceState,
    /// The C layer's descriptor-offset coherence (`c_layer.rs`).
    pub(crate) c_layer: CLayerState,
}

/// A handle's state as a ring reader.
pub(crate) struct RingReader {
    /// Lossless ring: the reader slot this handle is attached to (read it through
    /// [`Cursor::own_slot`]).
    pub(crate) slot: Option<u32>,
    /// The process generation (`local.rs`) that attached `slot`.
    pub(crate) slot_generation: u64,
    /// Bytes this handle lost to overruns.
    pub(crate) lost: u64,
    /// Attached lossless-ring reader: reads at or past both this and the position need
    /// no overrun check (see `ring.rs`, "Trusted reads"); `u64::MAX` otherwise.
    pub(crate) trust_from: u64,
}

/// A handle's state as a ring writer.
pub(crate) struct RingWriter {
    /// Lossless ring: longest wait of a write for readers to make room.
    pub(crate) write_timeout: Option<Duration>,
    /// Lossless ring: positions below this may be overwritten (the lowest attached
    /// reader position last seen), valid while `slot_gen` is `slot_gen_seen`.
    pub(crate) room: u64,
    pub(crate) slot_gen_seen: u32,
    /// The length this handle's last write committed, valid while the header's
    /// `ring_writer` holds this handle's token (see `ring.rs`, "Writing").
    pub(crate) ring_len: Option<u64>,
    /// This handle's token (unique among live handles), made on its first ring write;
    /// `0` before.
    pub(crate) token: u64,
}

/// A handle's in-place reads and writes (`inplace.rs`).
pub(crate) struct InPlaceState {
    /// The end of the bytes the last `fill_buf` lent.
    pub(crate) lent_end: Option<u64>,
    /// A `consume` asked for more than was lent: (asked, lent), reported by the next
    /// `fill_buf`.
    pub(crate) overconsumed: Option<(u64, u64)>,
    /// The reservation open on this handle.
    pub(crate) reserved: Option<Reserved>,
}

/// A handle's descriptor-offset coherence for the C layer.
pub(crate) struct CLayerState {
    /// The position the fd's offset stands at (`DATA_OFFSET +` it), as far as this
    /// handle knows: set when the fd-coherence layer reads or moves the offset
    /// (`c_layer`), moved on by writes made at it; `None` when unknown.
    pub(crate) fd_at: Option<u64>,
}

impl Cursor {
    /// A new handle's cursor, at position 0, with `verified` object bytes known.
    pub(crate) fn new(verified: u64) -> Cursor {
        Cursor {
            pos: 0,
            verified,
            hwm_seen: 0,
            reader: RingReader {
                slot: None,
                slot_generation: 0,
                lost: 0,
                trust_from: u64::MAX,
            },
            writer: RingWriter {
                write_timeout: None,
                room: 0,
                slot_gen_seen: 0,
                ring_len: None,
                token: 0,
            },
            in_place: InPlaceState {
                lent_end: None,
                overconsumed: None,
                reserved: None,
            },
            c_layer: CLayerState { fd_at: None },
        }
    }

    /// The reader slot this handle holds in this process. A child `fork(2)` made holds
    /// none through its copy of an attached handle: the slot, its lock (an open file
    /// description the fork shares) and the bytes it holds back are the parent's, so
    /// the copy forgets it (and may attach again, to a slot of its own).
    pub(crate) fn own_slot(&mut self) -> Option<u32> {
        if self.reader.slot.is_some() && self.reader.slot_generation != crate::local::generation() {
            self.reader.slot = None;
            self.reader.trust_from = u64::MAX;
        }
        self.reader.slot
    }

    pub(crate) fn write_deadline(&self) -> Option<Instant> {
        self.writer.write_timeout.map(|t| Instant::now() + t)
    }
}

/// A reservation open on a handle: data bytes `[pos, pos + len)` are its own to fill.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reserved {
    pub(crate) pos: u64,
    pub(crate) len: u64,
    /// Whether it holds the append token (released at commit or cancel).
    pub(crate) locked: bool,
    /// The process generation (`local.rs`) that took the token. A child `fork(2)` made
    /// shares the token's open file description with its parent: its copy of the
    /// reservation must not unlock the parent's token when it goes.
    pub(crate) generation: u64,
}

/// Everything of a handle but its cursor: what every operation reads, shared by the
/// owned and the locked paths.
pub(crate) struct Core {
    pub(crate) name: Name,
    // Field order matters for drop: the mapping goes before the descriptor.
    /// The window, mapped on first use (a guest that opens and closes, or an owner that
    /// creates and closes, never maps anything).
    window: OnceBox<Window>,
    pub(crate) fd: OwnedFd,
    /// The descriptor [`AsFd`] hands out when it must not be `fd`: a read-only one of
    /// its own, for a writable handle of a stream whose bytes may be lent or reserved in
    /// place (a ring, an immutable stream; see the crate docs, "Safety of in-place
    /// reads"). `None`: `fd` is handed out.
    lent_fd: Option<OwnedFd>,
    /// The process-local state of the object (`local.rs`), looked up on first need.
    local: OnceBox<std::sync::Arc<crate::local::Local>>,
    /// The process generation (`local.rs`) in which this handle counted itself among
    /// its process's writers of a ring; 0: never (a fork's child counts it again).
    ring_writer_joined: AtomicU64,
    /// The lock object's page of futex words (`liveness::Doorbells`), mapped on a
    /// writable handle's first wait or first wake (before `lock_object` in drop order,
    /// though the mapping does not need the descriptor).
    #[cfg_attr(fshm_loom, allow(dead_code))] // the models have bells of their own
    doorbells: OnceBox<liveness::Doorbells>,
    /// The stream's lock object (`liveness.rs`): the owner's from creation, a writable
    /// guest's from its first append, attach or wait.
    lock_object: OnceBox<OwnedFd>,
    pub(crate) layout: Layout,
    role: Role,
    pub(crate) writable: bool,
    pub(crate) append: bool,
    /// The object's (device, inode), known to owners (which remove the name only if it
    /// still refers to their object); guests do not need it and do not ask the kernel.
    identity: Option<(u64, u64)>,
    /// Whether this handle counts in the header's `followers` (see `grow`).
    counted_follower: AtomicBool,
    /// The owner's process, watched for this handle's async waits for data
    /// (`reactor/owners.rs`); looked for on the first such wait.
    owner_watch: OnceBox<Option<std::sync::Arc<crate::reactor::owners::OwnerWatch>>>,
}

impl Core {
    /// The core of a new handle.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: Name,
        fd: OwnedFd,
        window: Option<Window>,
        layout: Layout,
        role: Role,
        writable: bool,
        append: bool,
        identity: Option<(u64, u64)>,
    ) -> Result<Core> {
        // Bytes of a ring or an immutable stream may be lent as `&[u8]` or `&mut [u8]`
        // in this process: a writable handle keeps its writable descriptor to itself.
        let lends = layout.ring_capacity != 0 || layout.flags & FLAG_IMMUTABLE != 0;
        let lent_fd = if writable && lends {
            Some(read_only_twin(&name, fd.as_fd(), identity)?)
        } else {
            None
        };
        Ok(Core {
            name,
            window: window.map_or_else(OnceBox::new, |w| OnceBox::with_value(Box::new(w))),
            fd,
            lent_fd,
            local: OnceBox::new(),
            ring_writer_joined: AtomicU64::new(0),
            doorbells: OnceBox::new(),
            lock_object: OnceBox::new(),
            layout,
            role,
            writable,
            append,
            identity,
            counted_follower: AtomicBool::new(false),
            owner_watch: OnceBox::new(),
        })
    }

    /// The descriptor [`AsFd`](std::os::fd::AsFd) hands out: `lent_fd` if the handle
    /// has one, else `fd`.
    pub(crate) fn handed_out_fd(&self) -> BorrowedFd<'_> {
        self.lent_fd.as_ref().unwrap_or(&self.fd).as_fd()
    }
}

/// A read-only descriptor of the object open on `fd` (a handle's `lent_fd`): its name
/// opened again read-only where the name still refers to that object (`identity`, or
/// asked of `fd`), else the object itself opened again through `/proc/self/fd`, which
/// costs about a microsecond more (a path walk through procfs). Either is one `open`
/// per writable handle of a ring or an immutable stream (BENCHMARKS.md, "Open +
/// close").
fn read_only_twin(
    name: &Name,
    fd: BorrowedFd<'_>,
    identity: Option<(u64, u64)>,
) -> Result<OwnedFd> {
    let by_name = sys::shm_open(name.as_c(), libc::O_RDONLY, 0)
        .ok()
        .filter(|twin| {
            let id = |fd| sys::fstat(fd).ok().map(|st| (st.dev, st.ino));
            let ours = identity.or_else(|| id(fd));
            ours.is_some() && id(twin.as_fd()) == ours
        });
    match by_name {
        Some(twin) => Ok(twin),
        None => sys::reopen(fd, false)
            .map_err(|e| os(name.as_str(), e, "cannot open a read-only descriptor")),
    }
}

impl Core {
    /// Hands a new owner's lock object to its handle.
    pub(crate) fn set_lock_object(&self, fd: OwnedFd) {
        let _ = self.lock_object.set(Box::new(fd));
    }

    /// The stream's lock object, opened now if this is the first use.
    pub(crate) fn lock_object(&self) -> Result<BorrowedFd<'_>> {
        self.lock_object
            .get_or_try_init(|| {
                liveness::open_lock_object(&self.name, self.fd.as_fd(), &self.layout).map(Box::new)
            })
            // A racing thread's own open failed while another's succeeded: that one.
            .or_else(|e| self.lock_object.get().ok_or(e))
            .map(AsFd::as_fd)
    }

    /// The lock object's futex words (`liveness::Doorbells`), mapped now if this is the
    /// first use; `None` for a read-only handle, or if they cannot be mapped (the lock
    /// object cannot be opened or is too small: the handle then waits as a read-only
    /// one does, polling, and tries again at its next wait).
    #[cfg_attr(fshm_loom, allow(dead_code))] // the models have bells of their own
    fn doorbells(&self) -> Option<&liveness::Doorbells> {
        if !self.writable {
            return None;
        }
        self.doorbells
            .get_or_try_init(|| {
                liveness::Doorbells::map(&self.name, self.lock_object()?).map(Box::new)
            })
            .ok()
            .or_else(|| self.doorbells.get())
    }

    /// The bell a writable waiter for data sleeps on (`wait.rs`, "Where waiters
    /// sleep"), and a commit rings.
    #[cfg(not(fshm_loom))]
    pub(crate) fn data_bell(&self) -> Option<&crate::sync::AtomicU32> {
        self.doorbells().map(liveness::Doorbells::data)
    }

    /// The bell a lossless ring writer waiting for room sleeps on, and a reader's
    /// progress rings.
    #[cfg(not(fshm_loom))]
    pub(crate) fn room_bell(&self) -> Option<&crate::sync::AtomicU32> {
        self.doorbells().map(liveness::Doorbells::room)
    }

    /// Under `loom` (`sync.rs`) the header lives in process memory and has no lock
    /// object: the models give their own bells to the protocol steps.
    #[cfg(fshm_loom)]
    pub(crate) fn data_bell(&self) -> Option<&crate::sync::AtomicU32> {
        None
    }

    /// As [`Core::data_bell`].
    #[cfg(fshm_loom)]
    pub(crate) fn room_bell(&self) -> Option<&crate::sync::AtomicU32> {
        None
    }

    /// The process-local state of the stream's object (`local.rs`), looked up now if
    /// this is the first use (a guest asks the kernel for the object's identity).
    /// In a child `fork(2)` made, a handle it copied looks it up again (its own
    /// generation's).
    pub(crate) fn local(&self) -> Result<std::sync::Arc<crate::local::Local>> {
        let identity = || -> Result<(u64, u64)> {
            match self.identity {
                Some(id) => Ok(id),
                None => {
                    let st =
                        sys::fstat(self.fd.as_fd()).map_err(|e| os(self.name(), e, "fstat"))?;
                    Ok((st.dev, st.ino))
                }
            }
        };
        let local = self
            .local
            .get_or_try_init(|| Ok::<_, io::Error>(Box::new(crate::local::of(identity()?))))?;
        if local.is_current() {
            Ok(local.clone())
        } else {
            Ok(crate::local::of(identity()?))
        }
    }

    /// Runs `f` on the process-local state of the stream's object, as
    /// [`local`](Self::local) finds it, without touching the `Arc`'s count once it is
    /// known (a ring read's path).
    #[inline]
    pub(crate) fn with_local<T>(&self, f: impl FnOnce(&crate::local::Local) -> T) -> Result<T> {
        if let Some(local) = self.local.get() {
            if local.is_current() {
                return Ok(f(local));
            }
        }
        Ok(f(&*self.local()?))
    }

    /// Whether [`AsFd`] hands out a read-only descriptor of the handle's own rather
    /// than `fd`, whose offset is then no business of the C layer's.
    pub(crate) fn hands_out_own_fd(&self) -> bool {
        self.lent_fd.is_some()
    }

    /// Ring: makes this handle one of its process's writers of the ring, once
    /// (`local.rs`, "One ring writer per process").
    ///
    /// # Errors
    /// `EBUSY` where the process's other writers exclude this one.
    #[inline]
    pub(crate) fn join_ring_writers(&self) -> Result<()> {
        if self.ring_writer_joined.load(Ordering::Relaxed) == crate::local::generation() {
            return Ok(());
        }
        self.join_ring_writers_slow()
    }

    #[cold]
    fn join_ring_writers_slow(&self) -> Result<()> {
        let local = self.local()?;
        local
            .join_ring_writers(self.append)
            .map_err(|why| os(self.name(), libc::EBUSY, why.message()))?;
        self.ring_writer_joined
            .store(crate::local::generation(), Ordering::Relaxed);
        Ok(())
    }

    /// Before this handle waits for the append token: fails with `EDEADLK` if a
    /// reservation made in this thread holds it through another handle of this process
    /// (`local.rs`), for which the wait would never end. Only rings and immutable
    /// streams have reservations.
    pub(crate) fn check_token_wait(&self) -> Result<()> {
        if !self.is_ring() && !self.is_immutable() {
            return Ok(());
        }
        if self.local()?.token_held_by_this_thread() {
            return Err(os(
                self.name(),
                libc::EDEADLK,
                "a reservation open in this thread on another handle of this stream holds \
                 the append token: commit or drop it first",
            ));
        }
        Ok(())
    }

    /// The lock object, for a change of the stream's mode or group. A caller who cannot
    /// open it gets the error the change itself would give where that comes first: a
    /// user who does not own the stream gets `EPERM` (as from `fchmod`), found by
    /// setting the stream's mode to what it is, which changes nothing.
    fn lock_object_for_change(&self) -> Result<BorrowedFd<'_>> {
        match self.lock_object() {
            Ok(lock) => Ok(lock),
            Err(e) => {
                let st = sys::fstat(self.fd.as_fd()).map_err(|e| os(self.name(), e, "fstat"))?;
                sys::fchmod(self.fd.as_fd(), st.mode & 0o7777)
                    .map_err(|e| os(self.name(), e, "cannot change the stream's permissions"))?;
                Err(e)
            }
        }
    }

    /// The mapped window, mapping it now if this is the first use.
    pub(crate) fn window(&self) -> Result<&Window> {
        self.window
            .get_or_try_init(|| {
                #[cfg(feature = "__test-hooks")]
                if let Some(hook) = crate::test_hooks::map_pause() {
                    hook();
                }
                crate::window::map_window(&self.fd, self.layout, self.writable)
                    .map(Box::new)
                    .map_err(|e| os(self.name(), e, "cannot map the stream"))
            })
            // A racing thread's own mapping failed while another's succeeded: that one.
            .or_else(|e| self.window.get().ok_or(e))
    }

    /// The window if this handle has mapped it already.
    pub(crate) fn mapped_window(&self) -> Option<&Window> {
        self.window.get()
    }

    /// The shared header (mapping the window if needed). Should the mapping fail, a
    /// header of zeros stands in — an empty stream — while every data access reports
    /// the mapping's error.
    #[cfg(not(fshm_loom))]
    pub(crate) fn header(&self) -> &Header {
        static UNMAPPED: Header = Header::zero();
        self.window().map_or(&UNMAPPED, Window::header)
    }

    /// A `loom` model (`sync.rs`) drives the protocol steps over a header in process
    /// memory, never through a mapped handle.
    #[cfg(fshm_loom)]
    pub(crate) fn header(&self) -> &Header {
        unreachable!("a loom model maps no stream")
    }

    pub(crate) fn name(&self) -> &str {
        self.name.as_str()
    }

    pub(crate) fn role(&self) -> Role {
        self.role
    }

    /// The owner's process watched for this guest's async waits, if it can be
    /// (`reactor/owners.rs`): looked for once per handle.
    pub(crate) fn owner_watch(&self) -> Option<std::sync::Arc<crate::reactor::owners::OwnerWatch>> {
        self.owner_watch
            .get_or_init(|| {
                Box::new(crate::reactor::owners::watch(
                    self.layout.owner_pid,
                    self.layout.owner_pidns,
                    self.fd.as_fd(),
                ))
            })
            .clone()
    }

    pub(crate) fn is_writable(&self) -> bool {
        self.writable
    }

    pub(crate) fn is_append(&self) -> bool {
        self.append
    }

    pub(crate) fn is_persistent(&self) -> bool {
        self.layout.flags & FLAG_PERSISTENT != 0
    }

    /// A replica (`FLAG_REPLICA`): its owner wakes the header word after every commit
    /// and its read-only followers sleep on it (`wait.rs`, "Replicas").
    pub(crate) fn is_replica(&self) -> bool {
        self.layout.flags & crate::header::FLAG_REPLICA != 0
    }

    /// After a commit to a replica: wakes its read-only followers (`wait.rs`,
    /// "Replicas"). Nothing for any other stream.
    #[inline]
    pub(crate) fn wake_replica_readers(&self) {
        if self.is_replica() {
            wait::wake_unannounced(&self.header().seq);
        }
    }

    pub(crate) fn is_immutable(&self) -> bool {
        self.layout.flags & FLAG_IMMUTABLE != 0
    }

    pub(crate) fn len(&self) -> u64 {
        let len = self.header().len.load(Ordering::Acquire);
        if self.is_ring() {
            len
        } else {
            len.min(self.layout.max_size)
        }
    }

    pub(crate) fn is_ring(&self) -> bool {
        self.layout.ring_capacity != 0
    }

    /// A ring's capacity (0: linear).
    pub(crate) fn capacity(&self) -> u64 {
        self.layout.ring_capacity
    }

    pub(crate) fn is_lossless(&self) -> bool {
        self.layout.flags & FLAG_LOSSLESS != 0
    }

    /// A ring's oldest position still held.
    pub(crate) fn ring_oldest(&self, len: u64) -> u64 {
        let h = self.header();
        let reserved = h.hwm.load(Ordering::Acquire).max(len);
        let floor = h.floor.load(Ordering::Acquire).min(len);
        reserved.saturating_sub(self.capacity()).max(floor)
    }

    pub(crate) fn ring_capacity(&self) -> Option<u64> {
        self.is_ring().then_some(self.layout.ring_capacity)
    }

    pub(crate) fn oldest(&self) -> u64 {
        if self.is_ring() {
            self.ring_oldest(self.len())
        } else {
            0
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn max_size(&self) -> u64 {
        self.layout.max_size
    }

    pub(crate) fn owner_state(&self) -> OwnerState {
        if self.header().owner_state.load(Ordering::Acquire) == OWNER_CLOSED {
            return OwnerState::Closed;
        }
        if self.role == Role::Owner {
            return OwnerState::Alive;
        }
        liveness::probe_owner(self.fd.as_fd())
    }

    /// A replica's stale mark (`header.rs`, `stale`): `false` for any other stream.
    pub(crate) fn is_stale(&self) -> bool {
        self.layout.flags & crate::header::FLAG_REPLICA != 0
            && self.header().stale.load(Ordering::Acquire) != 0
    }

    /// Sets or clears a replica's stale mark: its owner only. A refusal changes nothing.
    pub(crate) fn set_stale(&self, stale: bool) -> Result<()> {
        if self.layout.flags & crate::header::FLAG_REPLICA == 0 {
            return Err(crate::error::invalid(
                self.name(),
                "is not a replica: only a replica (`OpenOptions::replica_of`) has a stale mark",
            ));
        }
        if self.role != Role::Owner {
            return Err(os(
                self.name(),
                libc::EPERM,
                "only the replica's owner (the importer that created it) sets its stale mark",
            ));
        }
        self.window()?
            .header()
            .stale
            .store(u32::from(stale), Ordering::Release);
        Ok(())
    }

    pub(crate) fn ebadf(&self) -> io::Error {
        if self.layout.flags & crate::header::FLAG_REPLICA != 0 {
            return os(
                self.name(),
                libc::EROFS,
                "is a replica, written only by the importer that mirrors it (see `fshm stat`): \
                 read-only here; write to its source",
            );
        }
        os(self.name(), libc::EBADF, "handle is read-only")
    }

    pub(crate) fn append_only(&self) -> io::Error {
        crate::error::invalid(self.name(), "ring streams are append-only")
    }

    /// A write of `n` bytes that must land whole (an atomic append, a reservation) on a
    /// ring smaller than it.
    pub(crate) fn past_ring_capacity(&self, what: &str, n: u64) -> io::Error {
        os(
            self.name(),
            libc::EFBIG,
            format!(
                "{what} of {n} bytes exceeds the ring capacity of {}",
                self.capacity()
            ),
        )
    }

    pub(crate) fn efbig(&self) -> io::Error {
        os(
            self.name(),
            libc::EFBIG,
            format!(
                "write past the maximum size of {} bytes",
                self.layout.max_size
            ),
        )
    }

    /// Makes sure object bytes up to `DATA_OFFSET + end` exist before reading them.
    pub(crate) fn ensure_readable(&self, c: &mut Cursor, end: u64) -> Result<()> {
        let need = DATA_OFFSET + end;
        if need <= c.verified {
            return Ok(());
        }
        let st = sys::fstat(self.fd.as_fd()).map_err(|e| os(self.name(), e, "fstat"))?;
        c.verified = c.verified.max(st.size);
        if need <= c.verified {
            Ok(())
        } else {
            Err(not_fshm(
                self.name(),
                "malformed header (length beyond the object's size)",
            ))
        }
    }

    /// The committed length, checked against this handle's window.
    pub(crate) fn checked_len(&self) -> Result<u64> {
        let len = self.header().len.load(Ordering::Acquire);
        if len > self.layout.max_size && !self.is_ring() {
            return Err(not_fshm(
                self.name(),
                "malformed header (length beyond the maximum size)",
            ));
        }
        Ok(len)
    }

    /// Publishes `end` as the length if it extends it, and wakes waiting readers.
    pub(crate) fn commit(&self, end: u64) {
        publish_len(self.header(), end, self.is_ring(), || self.data_bell());
        self.wake_replica_readers();
    }

    pub(crate) fn set_permissions(&self, mode: u32) -> Result<()> {
        if mode & !0o7777 != 0 {
            return Err(crate::error::invalid(
                self.name(),
                "mode has bits outside 0o7777",
            ));
        }
        // The lock object follows (writers only, see `liveness`); opened first, so that
        // a caller who cannot reach it changes nothing.
        let lock = self.lock_object_for_change()?;
        sys::fchmod(self.fd.as_fd(), mode).map_err(|e| os(self.name(), e, "cannot chmod"))?;
        sys::fchmod(lock, liveness::lock_object_mode(mode))
            .map_err(|e| os(self.name(), e, "cannot chmod the lock object"))
    }

    pub(crate) fn set_group(&self, gid: u32) -> Result<()> {
        let lock = self.lock_object_for_change()?;
        sys::fchgrp(self.fd.as_fd(), gid).map_err(|e| os(self.name(), e, "cannot chgrp"))?;
        sys::fchgrp(lock, gid).map_err(|e| os(self.name(), e, "cannot chgrp the lock object"))
    }

    pub(crate) fn wait_for(&self, pos: u64, timeout: Option<Duration>) -> WaitStatus {
        let deadline = timeout.map(|t| Instant::now() + t);
        self.wait_until(pos, deadline, Duration::ZERO)
    }

    /// A writable handle waiting for data on a linear stream counts in the header's
    /// `followers` until it closes (the writer's path choice, see `grow`). A read-only
    /// handle cannot write the header and stays uncounted.
    pub(crate) fn count_as_follower(&self, h: &Header) {
        if self.writable
            && !self.is_ring()
            && self.mapped_window().is_some()
            && !self.counted_follower.load(Ordering::Relaxed)
            && !self.counted_follower.swap(true, Ordering::Relaxed)
        {
            h.followers.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn wait_until(
        &self,
        pos: u64,
        deadline: Option<Instant>,
        spin: Duration,
    ) -> WaitStatus {
        let h = self.header();
        self.count_as_follower(h);
        let mut last_liveness: Option<Instant> = None;
        // A read-only handle maps the header PROT_READ and cannot announce its sleep (found by
        // fshm/tests/permissions.rs: registering was a SIGSEGV); it polls instead.
        let bell = self.data_bell();
        let r = wait::wait_on(&h.seq, bell, self.is_replica(), deadline, spin, |slow_ok| {
            self.data_check(pos, slow_ok, &mut last_liveness)
        });
        match r {
            Waited::Ready(s) => s,
            Waited::TimedOut => WaitStatus::TimedOut,
        }
    }

    /// The condition of a wait for data past `pos` (blocking or async): `Data`, `Ended`
    /// once the owner closed or died, or `None` to wait on.
    ///
    /// Liveness is tested only when `slow_ok` (after a sleep that nobody cut short): a
    /// live owner's commits wake its followers, a dead one wakes nobody. At most once
    /// per tick (`last_liveness`): a read-only handle's naps are shorter.
    pub(crate) fn data_check(
        &self,
        pos: u64,
        slow_ok: bool,
        last_liveness: &mut Option<Instant>,
    ) -> Option<WaitStatus> {
        let h = self.header();
        if h.len.load(Ordering::SeqCst) > pos {
            return Some(WaitStatus::Data);
        }
        // Re-check the length after learning the owner is gone: its last commit
        // happened before it closed or died.
        let ended = || {
            if h.len.load(Ordering::SeqCst) > pos {
                WaitStatus::Data
            } else {
                WaitStatus::Ended
            }
        };
        if h.owner_state.load(Ordering::Acquire) == OWNER_CLOSED {
            return Some(ended());
        }
        if !slow_ok {
            return None;
        }
        if last_liveness.is_none_or(|t| t.elapsed() >= wait::LIVENESS_TICK) {
            *last_liveness = Some(Instant::now());
            if self.owner_state() == OwnerState::Dead {
                return Some(ended());
            }
        }
        None
    }

    /// An owner that never mapped its window marks the stream closed through the fd,
    /// then maps it only if someone sleeps on a futex word and must be woken. (A waiter
    /// that flags its sleep after the read below re-checks the state, which is already
    /// closed.)
    fn close_unmapped(&self) {
        let fd = self.fd.as_fd();
        let _ = sys::pwrite_all(fd, &OWNER_CLOSED.to_ne_bytes(), OWNER_STATE_AT);
        // One read covers both futex words.
        let mut words = [0u8; (SPACE_SEQ_AT - SEQ_AT) as usize + 4];
        let read = sys::pread_exact(fd, &mut words, SEQ_AT).is_ok();
        let sleeping = |at: u64| {
            let i = (at - SEQ_AT) as usize;
            let word = u32::from_ne_bytes([words[i], words[i + 1], words[i + 2], words[i + 3]]);
            read && word & 1 != 0
        };
        if sleeping(SEQ_AT) || sleeping(SPACE_SEQ_AT) {
            if let Ok(w) = self.window() {
                wait::wake(&w.header().seq, || self.data_bell());
                wait::wake(&w.header().space_seq, || self.room_bell());
            }
        }
    }

    /// Whether the name still refers to this handle's object.
    fn name_is_ours(&self) -> bool {
        self.identity.is_some() && sys::shm_identity(self.name.as_c()) == self.identity
    }
}

impl Drop for Core {
    /// An owner marks the stream closed, wakes every waiter (they see end-of-stream)
    /// and, unless the stream is persistent, removes the name — only if the name still
    /// refers to its own object.
    fn drop(&mut self) {
        if *self.ring_writer_joined.get_mut() == crate::local::generation() {
            if let Ok(local) = self.local() {
                local.leave_ring_writers(self.append);
            }
        }
        if let Some(w) = self.window.get() {
            // Registrations of leaked async waits on this header's words go first.
            crate::reactor::forget_words(
                w.header() as *const Header as usize,
                std::mem::size_of::<Header>(),
            );
        }
        if let Some(bells) = self.doorbells.get() {
            // And those on the lock object's bells, before the field unmaps them.
            let (addr, len) = bells.span();
            crate::reactor::forget_words(addr, len);
        }
        if *self.counted_follower.get_mut() {
            if let Some(w) = self.window.get() {
                // Saturating: a hostile header may hold 0 here.
                let _ =
                    w.header()
                        .followers
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            }
        }
        if self.role != Role::Owner {
            return;
        }
        match self.window.get() {
            Some(w) => {
                let h = w.header();
                h.owner_state.store(OWNER_CLOSED, Ordering::SeqCst);
                wait::wake(&h.seq, || self.data_bell());
                wait::wake(&h.space_seq, || self.room_bell());
            }
            None => self.close_unmapped(),
        }
        if !self.is_persistent() && self.name_is_ours() {
            liveness::remove_lock_object(&self.name, self.layout.lock_key);
            let _ = sys::shm_unlink(self.name.as_c());
        }
    }
}

/// The length publication: the bytes below `end` are written, so the length rises to
/// `end` (a sequentially consistent read-modify-write, which readers' acquire loads of
/// the length synchronise with) and readers announced on `seq` are woken through
/// `bell` (`wait.rs`). On a ring (`ring`), no ring writer may trust its remembered
/// length any more (`ring.rs`).
#[inline]
pub(crate) fn publish_len<'a>(
    h: &Header,
    end: u64,
    ring: bool,
    bell: impl FnOnce() -> Option<&'a crate::sync::AtomicU32>,
) {
    if ring {
        h.ring_writer.store(0, Ordering::SeqCst);
    }
    h.len.fetch_max(end, Ordering::SeqCst);
    wait::notify(&h.seq, bell);
}

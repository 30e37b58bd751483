//! The stream handle: positions, reads, writes, seeks, appends, truncation, and close.

use crate::error::{not_fshm, os, Result};

use crate::header::{
    Header, Layout, DATA_OFFSET, FLAG_IMMUTABLE, FLAG_PERSISTENT, OWNER_CLOSED, OWNER_STATE_AT,
    SEQ_AT, SPACE_SEQ_AT,
};
use crate::liveness::{self, OwnerState};
use crate::name::Name;
use crate::sys;
use crate::wait::{self, Waited};
use crate::window::Window;
use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
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

/// Per-handle state behind the handle's lock.
pub(crate) struct Cursor {
    /// The handle's position.
    pub pos: u64,
    /// Object bytes known to exist (size verified with the kernel or grown by us).
    pub(crate) verified: u64,
    /// A lower bound of the shared high-water mark.
    pub(crate) hwm_seen: u64,
    /// The position the fd's offset stands at (`DATA_OFFSET +` it), as far as this
    /// handle knows: set when the fd-coherence layer reads or moves the offset
    /// (`c_layer`), moved on by writes made at it; `None` when unknown.
    pub(crate) fd_at: Option<u64>,
    /// Lossless ring: the reader slot this handle is attached to (read it through
    /// [`Cursor::own_slot`]).
    pub(crate) slot: Option<u32>,
    /// The process generation (`local.rs`) that attached `slot`.
    pub(crate) slot_generation: u64,
    /// Ring: bytes this handle lost to overruns.
    pub(crate) lost: u64,
    /// Lossless ring: longest wait of a write for readers to make room.
    pub(crate) write_timeout: Option<Duration>,
    /// Lossless ring writer: positions below this may be overwritten (the lowest
    /// attached reader position last seen), valid while `slot_gen` is `slot_gen_seen`.
    pub(crate) room: u64,
    pub(crate) slot_gen_seen: u32,
    /// Attached lossless-ring reader: reads at or past both this and the position need
    /// no overrun check (see `ring.rs`, "Trusted reads"); `u64::MAX` otherwise.
    pub(crate) trust_from: u64,
    /// Ring writer: the length this handle's last write committed, valid while the
    /// header's `ring_writer` holds this handle's token (see `ring.rs`, "Writing").
    pub(crate) ring_len: Option<u64>,
    /// Ring writer: this handle's token (unique among live handles), made on its first
    /// ring write; `0` before.
    pub(crate) token: u64,
    /// In-place reads: the end of the bytes the last `fill_buf` lent (`zerocopy.rs`).
    pub(crate) lent_end: Option<u64>,
    /// In-place reads: a `consume` asked for more than was lent: (asked, lent), reported
    /// by the next `fill_buf`.
    pub(crate) overconsumed: Option<(u64, u64)>,
    /// In-place writes: the reservation open on this handle (`zerocopy.rs`).
    pub(crate) reserved: Option<crate::zerocopy::Reserved>,
}

impl Cursor {
    /// The reader slot this handle holds in this process. A child `fork(2)` made holds
    /// none through its copy of an attached handle: the slot, its lock (an open file
    /// description the fork shares) and the bytes it holds back are the parent's, so
    /// the copy forgets it (and may attach again, to a slot of its own).
    pub(crate) fn own_slot(&mut self) -> Option<u32> {
        if self.slot.is_some() && self.slot_generation != crate::local::generation() {
            self.slot = None;
            self.trust_from = u64::MAX;
        }
        self.slot
    }

    pub(crate) fn write_deadline(&self) -> Option<Instant> {
        self.write_timeout.map(|t| Instant::now() + t)
    }
}

/// A handle on a stream: an owner's or a guest's. Reads, writes and seeks move its own
/// position, like a separate `open()` of one file.
///
/// `Read`, `Write` and `Seek` are implemented for `Stream` and for `&Stream`, so one
/// handle can be shared between threads; its position is then shared too.
///
/// # Thread and process safety
///
/// `Stream` is `Send` and `Sync`: the handle's own state (position, cached sizes) sits
/// behind a mutex, and everything in shared memory that several parties change is
/// accessed through atomics. Data bytes are copied with plain memory copies: bytes below
/// the committed length are never written by honest writers of other handles except by
/// explicit overwrites, which race as they would on a file.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::{Read, Seek, SeekFrom, Write};
/// let name = format!("/doc-stream-{}", std::process::id());
/// let mut owner = fshm::Stream::create(&name)?;
/// owner.write_all(b"hello, guest")?;
///
/// let mut guest = fshm::Stream::open(&name)?;
/// guest.seek(SeekFrom::Start(7))?;
/// let mut s = String::new();
/// guest.read_to_string(&mut s)?;
/// assert_eq!(s, "guest");
/// # Ok(()) }
/// ```
pub struct Stream {
    pub(crate) core: Core,
    /// The handle's own state. An owned handle (`&mut Stream`) reaches it through
    /// `Mutex::get_mut`, without locking; a shared one (`&Stream`) locks it per call.
    pub(crate) cursor: Mutex<Cursor>,
}

/// Everything of a handle but its cursor: what every operation reads, shared by the
/// owned and the locked paths.
pub(crate) struct Core {
    name: Name,
    // Field order matters for drop: the mapping goes before the descriptor.
    /// The window, mapped on first use (a guest that opens and closes, or an owner that
    /// creates and closes, never maps anything).
    window: OnceCell<Window>,
    pub(crate) fd: OwnedFd,
    /// The descriptor [`AsFd`] hands out when it must not be `fd`: a read-only one of
    /// its own, for a writable handle of a stream whose bytes may be lent or reserved in
    /// place (a ring, an immutable stream; see the crate docs, "Safety of in-place
    /// reads"). `None`: `fd` is handed out.
    lent_fd: Option<OwnedFd>,
    /// The process-local state of the object (`local.rs`), looked up on first need.
    local: OnceCell<std::sync::Arc<crate::local::Local>>,
    /// The process generation (`local.rs`) in which this handle counted itself among
    /// its process's writers of a ring; 0: never (a fork's child counts it again).
    ring_writer_joined: AtomicU64,
    /// The stream's lock object (`liveness.rs`): the owner's from creation, a writable
    /// guest's from its first append or attach.
    lock_object: OnceCell<OwnedFd>,
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
    owner_watch: OnceCell<Option<std::sync::Arc<crate::reactor::owners::OwnerWatch>>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.core;
        f.debug_struct("Stream")
            .field("name", &s.name.as_str())
            .field("role", &s.role)
            .field("writable", &s.writable)
            .field("append", &s.append)
            .field("ring_capacity", &s.ring_capacity())
            .field("max_size", &s.layout.max_size)
            .finish()
    }
}

impl Stream {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: Name,
        fd: OwnedFd,
        window: Option<Window>,
        layout: Layout,
        role: Role,
        writable: bool,
        append: bool,
        verified: u64,
        identity: Option<(u64, u64)>,
    ) -> Result<Stream> {
        // Bytes of a ring or an immutable stream may be lent as `&[u8]` or `&mut [u8]`
        // in this process: a writable handle keeps its writable descriptor to itself.
        let lends = layout.ring_capacity != 0 || layout.flags & FLAG_IMMUTABLE != 0;
        let lent_fd = if writable && lends {
            Some(read_only_twin(&name, fd.as_fd(), identity)?)
        } else {
            None
        };
        Ok(Stream {
            core: Core {
                name,
                window: window.map_or_else(OnceCell::new, OnceCell::with_value),
                fd,
                lent_fd,
                local: OnceCell::new(),
                ring_writer_joined: AtomicU64::new(0),
                lock_object: OnceCell::new(),
                layout,
                role,
                writable,
                append,
                identity,
                counted_follower: AtomicBool::new(false),
                owner_watch: OnceCell::new(),
            },
            cursor: Mutex::new(Cursor {
                pos: 0,
                verified,
                hwm_seen: 0,
                fd_at: None,
                slot: None,
                slot_generation: 0,
                lost: 0,
                write_timeout: None,
                room: 0,
                slot_gen_seen: 0,
                trust_from: u64::MAX,
                ring_len: None,
                token: 0,
                lent_end: None,
                overconsumed: None,
                reserved: None,
            }),
        })
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
        let _ = self.lock_object.set(fd);
    }

    /// The stream's lock object, opened now if this is the first use.
    pub(crate) fn lock_object(&self) -> Result<BorrowedFd<'_>> {
        self.lock_object
            .get_or_try_init(|| {
                liveness::open_lock_object(&self.name, self.fd.as_fd(), &self.layout)
            })
            .map(AsFd::as_fd)
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
            .get_or_try_init(|| Ok::<_, io::Error>(crate::local::of(identity()?)))?;
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
        self.window.get_or_try_init(|| {
            crate::window::map_window(&self.fd, self.layout, self.writable)
                .map_err(|e| os(self.name(), e, "cannot map the stream"))
        })
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
                crate::reactor::owners::watch(
                    self.layout.owner_pid,
                    self.layout.owner_pidns,
                    self.fd.as_fd(),
                )
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

    pub(crate) fn ebadf(&self) -> io::Error {
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

    pub(crate) fn read_locked(
        &self,
        c: &mut Cursor,
        pos: u64,
        buf: &mut [MaybeUninit<u8>],
    ) -> Result<usize> {
        // A handle whose window cannot be mapped reports the mapping's error, not the
        // empty stream its stand-in header would show.
        self.window()?;
        if self.is_ring() {
            return self.ring_read(c, pos, buf);
        }
        self.linear_read(c, pos, buf)
    }

    /// Publishes `end` as the length if it extends it, and wakes waiting readers.
    pub(crate) fn commit(&self, end: u64) {
        publish_len(self.header(), end, self.is_ring());
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
        let r = wait::wait_on(&h.seq, self.writable, deadline, spin, |slow_ok| {
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
                wait::wake(&w.header().seq);
                wait::wake(&w.header().space_seq);
            }
        }
    }

    /// Whether the name still refers to this handle's object.
    fn name_is_ours(&self) -> bool {
        self.identity.is_some() && sys::shm_identity(self.name.as_c()) == self.identity
    }
}

impl Stream {
    /// Sets the stream's mode bits (`fchmod`); later opens see them.
    #[doc(alias = "fshm_chmod")]
    pub fn set_permissions(&self, mode: u32) -> Result<()> {
        self.core.set_permissions(mode)
    }

    /// Sets the stream's group (`fchown` with the owner unchanged).
    #[doc(alias = "fshm_chgrp")]
    pub fn set_group(&self, gid: u32) -> Result<()> {
        self.core.set_group(gid)
    }

    /// Waits until the stream holds data past `pos`, the owner has closed or died
    /// ([`WaitStatus::Ended`]), or `timeout` passes (`None`: no timeout). Idle waiting
    /// sleeps on a futex; a dead owner is noticed within 50 ms.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::Write;
    /// use std::time::Duration;
    /// let name = format!("/doc-wait-{}", std::process::id());
    /// let mut owner = fshm::Stream::create(&name)?;
    /// let guest = fshm::Stream::open(&name)?;
    /// let t = Some(Duration::from_millis(10));
    /// assert_eq!(guest.wait_for(0, t), fshm::WaitStatus::TimedOut);
    /// owner.write_all(b"x")?;
    /// assert_eq!(guest.wait_for(0, t), fshm::WaitStatus::Data);
    /// drop(owner);                                   // no more data will come
    /// assert_eq!(guest.wait_for(1, None), fshm::WaitStatus::Ended);
    /// # Ok(()) }
    /// ```
    pub fn wait_for(&self, pos: u64, timeout: Option<Duration>) -> WaitStatus {
        self.core.wait_for(pos, timeout)
    }

    /// Bytes this handle lost to ring overruns so far.
    pub fn lost_bytes(&self) -> u64 {
        self.cursor.lock().lost
    }

    /// Lossless ring: the longest a write waits for attached readers to make room;
    /// past it the write fails with `TimedOut` (`ETIMEDOUT`). `None` (the default)
    /// waits without limit, like a pipe.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) {
        self.cursor.lock().write_timeout = timeout;
    }

    /// Whether this handle is attached to a lossless ring's reader slot.
    pub fn is_attached(&self) -> bool {
        self.cursor.lock().own_slot().is_some()
    }

    /// This handle's position.
    pub fn position(&self) -> u64 {
        self.cursor.lock().pos
    }

    /// Opens another handle on the same stream, as a guest (it never removes the name),
    /// with this handle's access, append mode and position. From then on the two
    /// positions are independent, as for two `open()`s of one file (unlike
    /// [`std::fs::File::try_clone`], whose clones share one offset). A writable clone of a
    /// lossless ring attaches, as a new guest does. A clone of a ring's writer without
    /// append mode cannot write while that writer lives (`EBUSY`: in one process a ring
    /// has one such writer; see the crate docs, "Safety of in-place reads").
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::{Read, Write};
    /// let name = format!("/doc-clone-{}", std::process::id());
    /// let mut owner = fshm::Stream::create(&name)?;
    /// owner.write_all(b"abc")?;
    /// let mut clone = owner.try_clone()?;
    /// assert_eq!(clone.role(), fshm::Role::Guest);
    /// assert_eq!(clone.position(), 3);
    /// clone.write_all(b"def")?;
    /// assert_eq!((owner.len(), owner.position()), (6, 3));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The errors of `open(2)` on `/proc/self/fd` (this process's view of the object),
    /// and of attaching for a lossless ring (`EBUSY` when every slot is taken).
    pub fn try_clone(&self) -> Result<Stream> {
        let core = &self.core;
        let fd = sys::reopen(core.fd.as_fd(), core.writable)
            .map_err(|e| os(core.name(), e, "cannot open the stream again"))?;
        let clone = Stream::new(
            core.name.clone(),
            fd,
            None,
            core.layout,
            Role::Guest,
            core.writable,
            core.append,
            0,
            None,
        )?;
        let pos = self.position();
        let mut c = clone.cursor.lock();
        c.pos = pos;
        if core.is_lossless() && core.writable && !core.append {
            clone.core.attach_locked(&mut c)?;
            c.pos = c.trust_from;
            clone.core.publish_slot(&mut c);
        }
        drop(c);
        Ok(clone)
    }

    /// The stream's state as [`inspect`](crate::inspect) reports it, read through this
    /// handle (no new open; the name may since have been removed or reused).
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::Write;
    /// let name = format!("/doc-info-{}", std::process::id());
    /// let mut owner = fshm::OpenOptions::new().mode(0o640).create(&name)?;
    /// owner.write_all(b"hello")?;
    /// let info = owner.info()?;
    /// assert_eq!((info.len, info.mode, info.owner), (5, 0o640, fshm::OwnerState::Alive));
    /// # Ok(()) }
    /// ```
    pub fn info(&self) -> Result<crate::StreamInfo> {
        let mut info = crate::info::info_of(&self.core.name, &self.core.fd)?;
        // The owner's own probe cannot see its own token (locks of one open file
        // description never conflict with each other).
        if self.core.role() == Role::Owner && info.owner != OwnerState::Closed {
            info.owner = OwnerState::Alive;
        }
        Ok(info)
    }

    /// Reads at `pos` without moving the handle's position (like `pread`).
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<usize> {
        let mut c = self.cursor.lock();
        // SAFETY: the read path writes only bytes copied from the stream into the view.
        self.core
            .read_locked(&mut c, pos, unsafe { sys::uninit(buf) })
    }

    /// Writes at `pos` without moving the handle's position (like `pwrite`); ignores
    /// append mode.
    ///
    /// # Errors
    /// `InvalidInput` (`EINVAL`) on a ring or an immutable stream (see
    /// [`OpenOptions::immutable`](crate::OpenOptions::immutable)); as a write otherwise.
    pub fn write_at(&self, pos: u64, buf: &[u8]) -> Result<usize> {
        if self.core.is_ring() {
            return Err(self.core.append_only());
        }
        if self.core.is_immutable() {
            return Err(self.core.immutable_error(format!(
                "a positioned write (at {pos}) could rewrite committed bytes"
            )));
        }
        let mut c = self.cursor.lock();
        self.core.write_locked(&mut c, pos, buf)
    }

    /// Sets the length (a logical truncate or extension; the gap reads as zeros). Never
    /// shrinks the object under other processes' mappings.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/doc-set-len-{}", std::process::id());
    /// let owner = fshm::Stream::create(&name)?;
    /// owner.write_at(0, b"abcdef")?;
    /// owner.set_len(3)?;
    /// owner.set_len(5)?;                             // the gap reads as zeros
    /// let mut buf = [9u8; 5];
    /// assert_eq!(owner.read_at(0, &mut buf)?, 5);
    /// assert_eq!(&buf, b"abc\0\0");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `EBADF` on a read-only handle, `EFBIG` past the maximum size, `InvalidInput`
    /// (`EINVAL`) on a ring or an immutable stream (which never takes back committed
    /// bytes, and never grows but by appends).
    pub fn set_len(&self, new_len: u64) -> Result<()> {
        if !self.core.writable {
            return Err(self.core.ebadf());
        }
        if self.core.is_ring() {
            return Err(self.core.append_only());
        }
        if self.core.is_immutable() {
            return Err(self.core.immutable_error(format!(
                "set_len({new_len}) would truncate or extend it other than by an append"
            )));
        }
        if new_len > self.core.layout.max_size {
            return Err(self.core.efbig());
        }
        self.core.set_len_linear(&mut self.cursor.lock(), new_len)
    }
}

impl Stream {
    /// The stream's name, as `/name`.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// Owner or guest.
    pub fn role(&self) -> Role {
        self.core.role()
    }

    /// Whether this handle may write (a guest the mode bits admit only for reading, or
    /// one opened with [`OpenOptions::read_only`](crate::OpenOptions::read_only), may not).
    pub fn is_writable(&self) -> bool {
        self.core.is_writable()
    }

    /// Whether every write of this handle appends atomically.
    pub fn is_append(&self) -> bool {
        self.core.is_append()
    }

    /// Whether the owner leaves the name in place when it closes.
    pub fn is_persistent(&self) -> bool {
        self.core.is_persistent()
    }

    /// Whether the stream is immutable: its committed bytes are never rewritten (see
    /// [`OpenOptions::immutable`](crate::OpenOptions::immutable)).
    pub fn is_immutable(&self) -> bool {
        self.core.is_immutable()
    }

    /// Committed length in bytes (bounded by [`max_size`](Self::max_size)). For a ring
    /// stream, every byte ever committed.
    pub fn len(&self) -> u64 {
        self.core.len()
    }

    /// Whether this is a ring stream (see [`OpenOptions::ring`](crate::OpenOptions::ring)).
    pub fn is_ring(&self) -> bool {
        self.core.is_ring()
    }

    /// A ring stream's capacity; `None` for a linear stream.
    pub fn ring_capacity(&self) -> Option<u64> {
        self.core.ring_capacity()
    }

    /// A ring stream's oldest position still held (0 for a linear stream).
    pub fn oldest(&self) -> u64 {
        self.core.oldest()
    }

    /// Whether no bytes are committed.
    pub fn is_empty(&self) -> bool {
        self.core.is_empty()
    }

    /// Largest length the stream may reach; writes past it fail with `EFBIG`.
    pub fn max_size(&self) -> u64 {
        self.core.max_size()
    }

    /// Whether the owner has the stream open, closed it, or died.
    pub fn owner_state(&self) -> OwnerState {
        self.core.owner_state()
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the read path writes only bytes copied from the stream into the view.
        let buf = unsafe { sys::uninit(buf) };
        self.core.read_cursor(&mut self.cursor.lock(), buf)
    }
}

impl Core {
    /// `Read::read` with the cursor in hand (locked, or owned through `&mut Stream`),
    /// into a buffer that may be uninitialised: on `Ok(n)`, `buf[..n]` is initialised.
    pub(crate) fn read_cursor(
        &self,
        c: &mut Cursor,
        buf: &mut [MaybeUninit<u8>],
    ) -> io::Result<usize> {
        let pos = c.pos;
        let n = self.read_locked(c, pos, buf)?;
        c.pos += n as u64;
        if c.own_slot().is_some() {
            self.publish_slot(c);
        }
        Ok(n)
    }

    /// `Write::write` with the cursor in hand (locked, or owned through `&mut Stream`).
    pub(crate) fn write_cursor(&self, c: &mut Cursor, buf: &[u8]) -> io::Result<usize> {
        // As for reads; and no write may touch the stand-in header.
        self.window()?;
        if c.reserved.is_some() {
            return Err(self.reservation_open());
        }
        if self.is_ring() {
            if self.writable {
                self.join_ring_writers()?;
                if self.append {
                    self.check_token_wait()?;
                }
            }
            return self.ring_write(c, buf);
        }
        // An immutable stream's writes are appends (`OpenOptions::immutable`).
        if self.append || self.is_immutable() {
            if self.writable {
                self.check_token_wait()?;
            }
            return self.append_locked(c, buf);
        }
        let pos = c.pos;
        let n = self.write_locked(c, pos, buf)?;
        c.pos += n as u64;
        Ok(n)
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.core.write_cursor(&mut self.cursor.lock(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for &Stream {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.core.seek_cursor(&mut self.cursor.lock(), to)
    }
}

impl Core {
    /// `Seek::seek` with the cursor in hand.
    pub(crate) fn seek_cursor(&self, c: &mut Cursor, to: SeekFrom) -> io::Result<u64> {
        if to == SeekFrom::Current(0) {
            // "Where am I" (`stream_position`, C's `ftell`) moves nothing, so it answers
            // also where a ring has overwritten the position: the next read reports the
            // overrun.
            return Ok(c.pos);
        }
        let (base, delta) = match to {
            SeekFrom::Start(p) => (p, 0),
            SeekFrom::Current(d) => (c.pos, d),
            SeekFrom::End(d) => (self.checked_len()?, d),
        };
        let Some(p) = base.checked_add_signed(delta) else {
            return Err(crate::error::invalid(
                self.name(),
                "seek to a negative or overflowing position",
            ));
        };
        if self.is_ring() && p > self.len() {
            return Err(crate::error::invalid(
                self.name(),
                format!(
                    "position {p} is past the ring's end ({}): a ring is append-only",
                    self.len()
                ),
            ));
        }
        if self.is_ring() && p < self.oldest() {
            return Err(crate::error::invalid(
                self.name(),
                format!(
                    "position {p} is no longer held by the ring (oldest: {})",
                    self.oldest()
                ),
            ));
        }
        if p < c.pos {
            // Writers may still overwrite what this reader had passed (ring.rs, "Trusted
            // reads").
            c.trust_from = c.trust_from.max(c.pos);
        }
        c.pos = p;
        if c.own_slot().is_some() {
            self.publish_slot(c);
        }
        Ok(p)
    }
}

// An owned handle reads, writes and seeks without taking its lock: `&mut self` gives
// the cursor through `Mutex::get_mut`, which the compiler checks. (The lock's atomic
// read-modify-writes are full barriers on x86; BENCHMARKS.md has what they cost.)

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the read path writes only bytes copied from the stream into the view.
        let buf = unsafe { sys::uninit(buf) };
        self.core.read_cursor(self.cursor.get_mut(), buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.core.write_cursor(self.cursor.get_mut(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Stream {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.core.seek_cursor(self.cursor.get_mut(), to)
    }
}

/// The handle's descriptor of the stream's shared-memory object, for `fstat`, `poll`-free
/// waits of your own, `fchmod`, passing to a child, and reading with `pread`.
///
/// A writable handle of a ring or of an immutable stream hands out a **read-only**
/// descriptor of its own (the object opened again through `/proc/self/fd` when the
/// handle was made): the bytes of such streams are lent in place, as `&[u8]` by
/// [`fill_buf`](std::io::BufRead::fill_buf) and as `&mut [u8]` by
/// [`Stream::reserve`], and safe code must not be able to write them behind those
/// references (`write`, `pwrite`, `ftruncate` and a writable `mmap` of the descriptor
/// all fail). The handle writes through a descriptor it keeps private. Its offset is
/// its own too (the C layer keeps it at the handle's position). Other handles hand out
/// the descriptor they read and write through. See the crate docs, "Safety of in-place
/// reads".
impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.core.lent_fd.as_ref().unwrap_or(&self.core.fd).as_fd()
    }
}

/// As [`AsFd`]: a read-only descriptor for a writable handle of a ring or an immutable
/// stream.
impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl Drop for Stream {
    /// Closes the handle: detaches it from its reader slot; then the core closes.
    fn drop(&mut self) {
        self.core.cancel_reserved(self.cursor.get_mut());
        self.core.detach_locked(self.cursor.get_mut());
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
                wait::wake(&h.seq);
                wait::wake(&h.space_seq);
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
/// the length synchronise with) and readers sleeping on `seq` are woken. On a ring
/// (`ring`), no ring writer may trust its remembered length any more (`ring.rs`).
#[inline]
pub(crate) fn publish_len(h: &Header, end: u64, ring: bool) {
    if ring {
        h.ring_writer.store(0, Ordering::SeqCst);
    }
    h.len.fetch_max(end, Ordering::SeqCst);
    wait::notify(&h.seq);
}

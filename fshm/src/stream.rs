//! The public handle, [`Stream`]: its `std::io` traits and accessors, and the dispatch
//! of reads, writes and seeks between linear streams (`linear.rs`) and rings
//! (`ring.rs`). A handle's state and closing are in `handle.rs`.

use crate::error::{os, Result};
use crate::handle::{Core, Cursor, Role, WaitStatus};
use crate::header::Layout;
use crate::liveness::OwnerState;
use crate::name::Name;
use crate::sys;
use crate::window::Window;
use parking_lot::Mutex;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

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

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.core;
        f.debug_struct("Stream")
            .field("name", &s.name())
            .field("role", &s.role())
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
        Ok(Stream {
            core: Core::new(name, fd, window, layout, role, writable, append, identity)?,
            cursor: Mutex::new(Cursor::new(verified)),
        })
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

    /// Ring writer: moves the end of the ring to `pos` without writing the bytes before
    /// it, which were never written here — a replica's bytes that its source lost before
    /// they could be mirrored. Every reader counts the positions below `pos` that it has
    /// not read as lost (an [`Overrun`](crate::Overrun), [`lost_bytes`](Self::lost_bytes)),
    /// never as data; [`oldest`](Self::oldest) is then at least `pos`. Returns the bytes
    /// skipped (0 when the end is already at or past `pos`).
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::{Read, Write};
    /// let name = format!("/doc-skip-{}", std::process::id());
    /// let mut w = fshm::OpenOptions::new().ring(4096, fshm::RingPolicy::Lossy).create(&name)?;
    /// w.write_all(b"abc")?;
    /// let mut r = fshm::Stream::open(&name)?;
    /// assert_eq!(w.skip_to(100)?, 97);
    /// w.write_all(b"xyz")?;
    /// let mut buf = [0u8; 8];
    /// let e = r.read(&mut buf).unwrap_err();
    /// assert_eq!(fshm::overrun_of(&e).map(|o| o.lost()), Some(100));
    /// assert_eq!(r.read(&mut buf)?, 3);
    /// assert_eq!(&buf[..3], b"xyz");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` (`EINVAL`) on a linear stream or for `pos` past 2^63; `EBADF` or
    /// `EROFS` (a replica's guest) on a read-only handle.
    pub fn skip_to(&self, pos: u64) -> Result<u64> {
        if !self.is_ring() {
            return Err(crate::error::invalid(
                self.name(),
                "skip_to applies to rings only (a linear stream holds every position)",
            ));
        }
        let mut c = self.cursor.lock();
        self.core.ring_skip_to(&mut c, pos)
    }

    /// A replica's owner (an importer such as `fshm-tunnel`): marks the replica
    /// **stale** (`true`) while it has lost its source — the exporting host's tunnel or
    /// the link is gone, so the replica may be behind its source — and clears the mark
    /// (`false`) once it has caught up again. The replica stays open and readable
    /// meanwhile; readers see the mark in [`StreamInfo::stale`](crate::StreamInfo::stale)
    /// ([`inspect`](crate::inspect), [`info`](Self::info), `fshm stat`, `fshm ls`) and
    /// [`is_stale`](Self::is_stale). The mark says nothing about the bytes the replica
    /// holds, which are its source's either way.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/doc-stale-{}", std::process::id());
    /// let importer = fshm::OpenOptions::new().mode(0o644).replica_of("host-a/x").create(&name)?;
    /// let local = fshm::Stream::open(&name)?;
    /// importer.set_stale(true)?;                         // the link went away
    /// assert!(fshm::inspect(&name)?.stale && local.is_stale());
    /// assert!(local.set_stale(false).is_err());          // only the owner sets it
    /// importer.set_stale(false)?;                        // caught up again
    /// assert!(!local.info()?.stale);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` (`EINVAL`) on a stream that is not a replica; `PermissionDenied`
    /// (`EPERM`) on any handle but the replica's owner (a guest, a clone). A refusal
    /// changes nothing.
    pub fn set_stale(&self, stale: bool) -> Result<()> {
        self.core.set_stale(stale)
    }

    /// Whether the stream is a replica its owner has marked stale
    /// ([`set_stale`](Self::set_stale)); `false` for any other stream.
    pub fn is_stale(&self) -> bool {
        self.core.is_stale()
    }

    /// Bytes this handle lost to ring overruns so far.
    pub fn lost_bytes(&self) -> u64 {
        self.cursor.lock().reader.lost
    }

    /// Lossless ring: the longest a write waits for attached readers to make room;
    /// past it the write fails with `TimedOut` (`ETIMEDOUT`). `None` (the default)
    /// waits without limit, like a pipe.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) {
        self.cursor.lock().writer.write_timeout = timeout;
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
            c.pos = c.reader.trust_from;
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

impl Stream {
    /// Attaches this handle to a reader slot of a lossless ring: from now on the
    /// writer waits for this reader before overwriting what it has not read. A no-op
    /// if already attached.
    ///
    /// # Errors
    /// `InvalidInput` if the stream is not a lossless ring; `EBADF` for a read-only
    /// handle (it cannot publish its position); `EBUSY` if all 32 slots are taken.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/doc-attach-{}", std::process::id());
    /// let owner = fshm::OpenOptions::new()
    ///     .ring(4096, fshm::RingPolicy::Lossless)
    ///     .create(&name)?;
    /// let reader = fshm::Stream::open(&name)?;      // a read-write guest attaches itself
    /// assert!(reader.is_attached());
    /// reader.detach();                               // the writer no longer waits for it
    /// assert!(!reader.is_attached());
    /// reader.attach()?;
    /// assert_eq!(owner.info()?.attached_readers, 1);
    /// # Ok(()) }
    /// ```
    pub fn attach(&self) -> Result<()> {
        self.core.attach_locked(&mut self.cursor.lock())
    }

    /// Detaches this handle from its reader slot; the writer no longer waits for it.
    pub fn detach(&self) {
        self.core.detach_locked(&mut self.cursor.lock());
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the read path writes only bytes copied from the stream into the view.
        let buf = unsafe { sys::uninit(buf) };
        self.core.read_cursor(&mut self.cursor.lock(), buf)
    }
}

/// Reads in place: [`fill_buf`](BufRead::fill_buf) returns the committed bytes at the
/// handle's position as they lie in the shared mapping (empty at the end; it does not
/// wait — see [`Follower`](crate::Follower) for that), [`consume`](BufRead::consume) moves the position.
/// So `lines()`, `read_until()` and parsers read the stream without a copy.
///
/// Only where no honest writer rewrites the bytes lent: on an immutable stream
/// ([`OpenOptions::immutable`](crate::OpenOptions::immutable)), and on a lossless ring
/// for a handle attached to a reader slot (a guest opened read-write; see
/// [`Stream::attach`]), whose slot moves on `consume`, not before: the writer waits
/// for it as for a `read`. The borrow of `&mut self` holds the bytes in place.
///
/// # Errors
/// `fill_buf` fails with `InvalidInput` on any other stream or handle (its bytes may
/// change under a reader); on a ring reader that moved back (a seek) over bytes a
/// writer may already overwrite; and once after a `consume(n)` past the bytes the last
/// `fill_buf` lent, which consumed only those. See the crate docs, "Zero-copy", for the
/// trust boundary that remains.
impl BufRead for Stream {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let (ptr, n) = self.core.lend(self.cursor.get_mut())?;
        // SAFETY: `lend` checked that the `n` bytes at `ptr` lie in this handle's
        // window, in the object's verified size, below the committed length (which only
        // grows for these streams), and that no honest writer rewrites them until this
        // handle consumes them or is dropped; `&mut self` stays borrowed as long as the
        // slice, so neither happens meanwhile, and the window lives as long as `self`.
        // In this process every writer is honest: no descriptor handed out can write
        // these streams (`AsFd`), and a ring's claims come from one writer (`local.rs`);
        // other processes with write access are trusted (crate docs, "Safety of
        // in-place reads"). Shared memory pages always hold initialised bytes.
        Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), n) })
    }

    fn consume(&mut self, n: usize) {
        self.core.consume_clamped(self.cursor.get_mut(), n);
    }
}

impl Core {
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
        if c.in_place.reserved.is_some() {
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
            c.reader.trust_from = c.reader.trust_from.max(c.pos);
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
        self.core.handed_out_fd()
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

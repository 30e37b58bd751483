//! Opening streams: the `OpenOptions` builder, owner creation (with the creation
//! handshake and opt-in reclaim of a dead owner's name) and guest open (with the
//! read-only fallback).

use crate::error::{invalid, not_fshm, open_failed, os, Result};
use crate::handle::Role;
use crate::header::{
    read_header, refusal_error, Header, Layout, DATA_OFFSET, FIXED_FIELDS, FLAG_IMMUTABLE,
    FLAG_LOSSLESS, FLAG_PERSISTENT, FLAG_REPLICA, FLAG_RING, MAX_SIZE_LIMIT, OWNER_FIELDS_END,
    SOURCE_AT, SOURCE_MAX,
};
use crate::info::Reclaim;
use crate::liveness;
use crate::name::Name;
use crate::stream::Stream;
use crate::sys;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

/// Default maximum size of a stream: 1 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;
/// Default mode bits of a new stream: owner read-write only.
pub const DEFAULT_MODE: u32 = 0o600;

/// Ring policy: what the writer does when a reader falls a whole capacity behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingPolicy {
    /// The writer never waits; a reader that falls behind gets an overrun error.
    Lossy,
    /// The writer waits until every attached reader has consumed what it would overwrite.
    Lossless,
}

/// Options for creating (owner) or opening (guest) a stream, in the style of
/// [`std::fs::OpenOptions`].
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::{Read, Write};
/// let name = format!("/doc-options-{}", std::process::id());
/// let mut owner = fshm::OpenOptions::new().mode(0o640).max_size(1 << 20).create(&name)?;
/// owner.write_all(b"hello")?;
/// let mut guest = fshm::OpenOptions::new().read_only(true).open(&name)?;
/// let mut s = String::new();
/// guest.read_to_string(&mut s)?;
/// assert_eq!(s, "hello");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub(crate) mode: u32,
    pub(crate) persist: bool,
    pub(crate) max_size: u64,
    pub(crate) reclaim: bool,
    pub(crate) append: bool,
    pub(crate) read_only: bool,
    pub(crate) ring: Option<(u64, RingPolicy)>,
    pub(crate) immutable: bool,
    pub(crate) owner_uid: Option<u32>,
    pub(crate) replica_of: Option<String>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// Defaults: mode `0o600`, not persistent, maximum size 1 GiB, no reclaim, no
    /// append, read-write, linear, not immutable, any owning user.
    ///
    /// Some options apply to one side only. [`open`](Self::open) fails with
    /// `InvalidInput` (`EINVAL`), naming them, when an option for creating a stream
    /// holds anything but its default: [`mode`](Self::mode),
    /// [`persist`](Self::persist), [`max_size`](Self::max_size),
    /// [`reclaim`](Self::reclaim), [`ring`](Self::ring),
    /// [`immutable`](Self::immutable) — they describe the stream being made, which
    /// open does not make. [`create`](Self::create) fails the same way for the guest
    /// options [`read_only`](Self::read_only) and [`owner_uid`](Self::owner_uid).
    /// [`append`](Self::append) applies to both. Either failure changes nothing.
    ///
    /// ```
    /// let name = format!("/doc-sides-{}", std::process::id());
    /// let e = fshm::OpenOptions::new().persist(true).open(&name).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    /// assert!(e.to_string().contains("persist"));
    /// ```
    pub fn new() -> Self {
        OpenOptions {
            mode: DEFAULT_MODE,
            persist: false,
            max_size: DEFAULT_MAX_SIZE,
            reclaim: false,
            append: false,
            read_only: false,
            ring: None,
            immutable: false,
            owner_uid: None,
            replica_of: None,
        }
    }

    /// Mode bits of a new stream, applied exactly (the umask does not narrow them).
    /// The set-user-ID and set-group-ID bits (`0o6000`) stay only for an owner with
    /// `CAP_FSETID`: the kernel clears them when an unprivileged process writes the
    /// object, as the owner does when it writes the header.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Keep the name when the owner closes (shmfile's `FSHM_PERSIST`).
    pub fn persist(&mut self, persist: bool) -> &mut Self {
        self.persist = persist;
        self
    }

    /// Maximum length of a new stream; writes past it fail with `EFBIG`.
    pub fn max_size(&mut self, max_size: u64) -> &mut Self {
        self.max_size = max_size;
        self
    }

    /// On create: if the name exists, is a non-persistent fshm stream, and its owner is
    /// dead, remove it and create afresh (default: fail with `AlreadyExists`). So is the
    /// leftover of a creator that died before its stream was ready (an empty object, or
    /// a header without its magic, whose owner token nobody holds). The create then fails
    /// with `WouldBlock` (`EAGAIN`) instead of waiting if another process holds the
    /// name's reclaim token for longer than [`RECLAIM_PATIENCE`](crate::RECLAIM_PATIENCE)
    /// (see [`reclaim`](crate::reclaim)).
    pub fn reclaim(&mut self, reclaim: bool) -> &mut Self {
        self.reclaim = reclaim;
        self
    }

    /// Every write of this handle lands whole at the current end, atomically with
    /// respect to appenders in every process.
    pub fn append(&mut self, append: bool) -> &mut Self {
        self.append = append;
        self
    }

    /// Guest only: open read-only even where the mode bits would allow writing.
    pub fn read_only(&mut self, read_only: bool) -> &mut Self {
        self.read_only = read_only;
        self
    }

    /// Guest only: open the stream only if the user `uid` owns it, else fail with
    /// `PermissionDenied` (`EPERM`) and keep nothing open.
    ///
    /// `/dev/shm` is shared by every user, so a name is not a credential: whoever
    /// creates a name first owns what is there, and a guest that opens it by name
    /// writes into (or reads from) that user's stream. A guest that must not hand its
    /// data to anyone else — or must not trust data from anyone else — names the user
    /// it expects, typically the service's account. The check is an `fstat` of the
    /// descriptor that the handle then uses, so nothing can be swapped in between.
    /// It says who owns the stream, not who else may write it: the mode bits say that
    /// ([`Stream::info`]).
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/doc-owner-uid-{}", std::process::id());
    /// let owner = fshm::Stream::create(&name)?;
    /// // SAFETY: geteuid has no preconditions.
    /// let me = unsafe { libc::geteuid() };
    /// let guest = fshm::OpenOptions::new().owner_uid(me).open(&name)?;
    /// let e = fshm::OpenOptions::new().owner_uid(me + 1).open(&name).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    /// assert_eq!(fshm::errno_of(&e), libc::EPERM);
    /// # drop((guest, owner)); Ok(()) }
    /// ```
    pub fn owner_uid(&mut self, uid: u32) -> &mut Self {
        self.owner_uid = Some(uid);
        self
    }

    /// Create a ring stream keeping the last `capacity` bytes, a multiple of the page
    /// size (see the crate docs on ring streams). The maximum size does not apply.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::{Read, Write};
    /// let name = format!("/doc-ring-{}", std::process::id());
    /// let mut owner = fshm::OpenOptions::new()
    ///     .ring(4096, fshm::RingPolicy::Lossy)
    ///     .create(&name)?;
    /// owner.write_all(&[1u8; 5000])?;          // 904 bytes more than the ring holds
    /// let mut guest = fshm::Stream::open(&name)?;
    /// assert_eq!((guest.len(), guest.oldest()), (5000, 904));
    /// let mut held = Vec::new();
    /// guest.read_to_end(&mut held)?;            // starts at the oldest byte held
    /// assert_eq!(held.len(), 4096);
    /// # Ok(()) }
    /// ```
    pub fn ring(&mut self, capacity: u64, policy: RingPolicy) -> &mut Self {
        self.ring = Some((capacity, policy));
        self
    }

    /// Create an **immutable** linear stream: its committed bytes are never rewritten,
    /// so every handle may read them in place ([`BufRead`](std::io::BufRead) on
    /// [`Stream`] and on its followers) and write in place at the end
    /// ([`Stream::reserve`]). Recorded in the header; every handle of every process
    /// keeps the rule:
    ///
    /// - every write appends, serialised with the other writers of every process (the
    ///   append token, as for [`append`](Self::append)); a handle opened without
    ///   `append` must stand at the end to write, so a write after a seek back, or after
    ///   another process appended, fails with `InvalidInput` (`EINVAL`) and commits
    ///   nothing; with `append` it lands at the end, wherever the position stands;
    /// - positioned writes ([`Stream::write_at`]) and truncation ([`Stream::set_len`])
    ///   fail with `InvalidInput` (`EINVAL`): they would rewrite or take back committed
    ///   bytes.
    ///
    /// Rings cannot be immutable (`InvalidInput` on create): a ring reuses its pages;
    /// an attached reader of a lossless ring reads in place instead.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::{BufRead, Seek, SeekFrom, Write};
    /// let name = format!("/doc-immutable-{}", std::process::id());
    /// let mut owner = fshm::OpenOptions::new().immutable(true).create(&name)?;
    /// owner.write_all(b"one\ntwo\n")?;
    /// owner.seek(SeekFrom::Start(0))?;
    /// assert!(owner.write_all(b"ONE").is_err()); // would rewrite committed bytes
    ///
    /// let mut guest = fshm::Stream::open(&name)?;
    /// assert_eq!(guest.fill_buf()?, b"one\ntwo\n"); // in place, no copy
    /// guest.consume(4);
    /// let lines: Vec<String> = guest.lines().collect::<Result<_, _>>()?;
    /// assert_eq!(lines, ["two"]);
    /// # Ok(()) }
    /// ```
    pub fn immutable(&mut self, immutable: bool) -> &mut Self {
        self.immutable = immutable;
        self
    }

    /// Makes the new stream a **replica** of `source` (a description such as
    /// `zenoh:tcp/10.0.0.5:7447/sensors/a`, at most 256 bytes of UTF-8 without NUL): a
    /// stream that its owner, an importer such as `fshm-tunnel`, mirrors from elsewhere
    /// and alone writes. The header records it (flag and source): [`inspect`](crate::inspect)
    /// and [`Stream::info`] report it in [`StreamInfo::replica_of`](crate::StreamInfo::replica_of),
    /// and every guest opens it read-only, its writes failing with `EROFS`
    /// (`ErrorKind::ReadOnlyFilesystem`) naming the source, whatever the mode bits allow.
    /// (Other users are kept out of the owner's writes by the mode bits as for any
    /// stream: give a replica no write bit for them, e.g. `0o644`.) Create only.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::Write;
    /// let name = format!("/doc-replica-{}", std::process::id());
    /// let mut importer = fshm::OpenOptions::new().replica_of("host-a/sensors").create(&name)?;
    /// importer.write_all(b"mirrored")?;
    /// let mut local = fshm::Stream::open(&name)?;
    /// assert!(!local.is_writable());
    /// let e = local.write_all(b"x").unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::ReadOnlyFilesystem);
    /// assert_eq!(local.info()?.replica_of.as_deref(), Some("host-a/sensors"));
    /// # Ok(()) }
    /// ```
    pub fn replica_of(&mut self, source: &str) -> &mut Self {
        self.replica_of = Some(source.to_owned());
        self
    }

    /// Creates the stream `name` as its owner.
    ///
    /// The stream is built whole under a random name of its own (`<object name>%new.<key>`,
    /// `O_CREAT|O_EXCL`), then given its name in one step that fails if the name exists
    /// (`renameat2` with `RENAME_NOREPLACE`): the name never refers to a half-made
    /// stream, and a creator that dies leaves nothing under it. Nothing another user can
    /// put in `/dev/shm` makes a create wait: the stream's object and its lock object are
    /// new objects this call makes, the lock object under a random name recorded in the
    /// header, and a create never waits on a lock another user could hold (with
    /// [`reclaim`](Self::reclaim), at most [`RECLAIM_PATIENCE`](crate::RECLAIM_PATIENCE)
    /// for a reclaim in progress). A failed create leaves nothing behind.
    ///
    /// # Errors
    /// `AlreadyExists` (`EEXIST`) if the name exists (unless reclaimed), naming the
    /// object in `/dev/shm` and its owner; `WouldBlock` (`EAGAIN`) if a reclaim could not
    /// finish in time (see [`reclaim`](Self::reclaim)); `InvalidInput` (`EINVAL`) for a
    /// bad name, mode, size or option; and the errors of `shm_open`, `fallocate`, `mmap`
    /// and `renameat2`.
    #[doc(alias = "fshm_create")]
    pub fn create(&self, name: &str) -> Result<Stream> {
        let name = Name::new(name)?;
        let n = name.as_str();
        let layout = self.check_create(n)?;
        // Reclaims: each removal is followed by a fresh attempt, which another creator
        // may win; a reclaim found in progress is waited for (bounded), then the name
        // looked at again.
        let mut reclaims_left = 4;
        // Reclaims in progress elsewhere are waited for until then, in all.
        let deadline = Instant::now() + crate::RECLAIM_PATIENCE;
        let mut built: Option<Built> = None;
        for _ in 0..16 {
            // A ring's memory is reserved as it is built: a taken name is seen before
            // that work. (The rename settles every race; for a linear stream, whose
            // building is cheap, it is the only look.)
            if layout.ring_capacity != 0 && built.is_none() && sys::shm_lstat(name.as_c()).is_some()
            {
                self.name_taken(&name, &mut reclaims_left, deadline)?;
                continue;
            }
            let b = match built.take() {
                Some(b) => b,
                None => self.build(&name, layout)?,
            };
            match sys::shm_rename_noreplace(&b.temp, name.as_c()) {
                Ok(()) => return b.into_stream(self.append),
                Err(libc::EEXIST) => {
                    built = Some(b);
                    self.name_taken(&name, &mut reclaims_left, deadline)?;
                }
                // Removed by a reclaimer of dead creations that probed it before this
                // process took its owner token (`build`; `info::reclaim_dead_creation`
                // argues the race): made again.
                Err(libc::ENOENT) => {}
                Err(e) => return Err(os(n, e, "cannot give the new stream its name")),
            }
        }
        Err(os(
            n,
            libc::EAGAIN,
            "cannot create: the name kept changing between attempts",
        ))
    }

    /// A create found `name` taken: `Ok` to try again (it reclaimed the name, or another
    /// reclaim of it ended), else the error the create returns.
    fn name_taken(&self, name: &Name, reclaims_left: &mut u32, deadline: Instant) -> Result<()> {
        let n = name.as_str();
        if !self.reclaim || *reclaims_left == 0 {
            return Err(os(
                n,
                libc::EEXIST,
                format!("cannot create: {} exists", taken_by(name)),
            ));
        }
        *reclaims_left -= 1;
        let reclaimed = match crate::info::reclaim_dead(name) {
            // Something that is no stream at all (a FIFO, a directory, ...): taken.
            Err(e) if crate::error::errno_of(&e) == libc::EPROTO => Reclaim::Refused,
            r => r?,
        };
        match reclaimed {
            Reclaim::Removed | Reclaim::Gone => Ok(()),
            Reclaim::Busy(busy) => crate::info::await_reclaim(name, busy, deadline),
            Reclaim::Refused => Err(os(
                n,
                libc::EEXIST,
                format!(
                    "cannot create: {} exists and is not a dead stream's (its owner is \
                     alive, it is persistent, or it is no fshm stream)",
                    taken_by(name)
                ),
            )),
        }
    }

    fn check_create(&self, name: &str) -> Result<Layout> {
        let bad = |what: &str| crate::error::invalid(name, what.to_owned());
        if self.mode & !0o7777 != 0 {
            return Err(bad("mode has bits outside 0o7777"));
        }
        if self.read_only {
            return Err(bad("an owner cannot be read-only"));
        }
        if self.owner_uid.is_some() {
            return Err(bad(
                "owner_uid applies to open only (a created stream is owned by its creator)",
            ));
        }
        let mut flags = if self.persist { FLAG_PERSISTENT } else { 0 };
        if let Some(source) = &self.replica_of {
            if source.is_empty() || source.len() > SOURCE_MAX || source.contains('\0') {
                return Err(bad(
                    "a replica's source must be 1 to 256 bytes of UTF-8 without NUL",
                ));
            }
            flags |= FLAG_REPLICA;
        }
        if self.immutable {
            if self.ring.is_some() {
                return Err(bad(
                    "a ring cannot be immutable (it reuses its pages); attached readers of a \
                     lossless ring read in place",
                ));
            }
            flags |= FLAG_IMMUTABLE;
        }
        let (max_size, ring_capacity) = match self.ring {
            None => (self.max_size, 0),
            Some((cap, policy)) => {
                if cap < sys::page_size() || cap % sys::page_size() != 0 {
                    return Err(bad(
                        "ring capacity must be a non-zero multiple of the page size",
                    ));
                }
                flags |= FLAG_RING;
                if policy == RingPolicy::Lossless {
                    flags |= FLAG_LOSSLESS;
                }
                (cap, cap)
            }
        };
        if max_size == 0 || max_size > MAX_SIZE_LIMIT {
            return Err(bad("maximum size must be between 1 byte and 16 TiB"));
        }
        Ok(Layout {
            max_size,
            ring_capacity,
            flags,
            lock_ino: 0, // set once the lock object exists
            lock_key: 0,
            owner_pid: std::process::id(),
            owner_pidns: sys::pid_namespace(),
        })
    }

    /// Builds the stream `name` under a creation name of its own: a new object
    /// (`O_EXCL`, the owner's bits only), its owner token taken first, then its mode,
    /// lock object, memory and header. A creation name that is taken (never expected:
    /// the key is random), or whose owner token someone else holds, gives a new one.
    /// A reclaimer of dead creations (`info::reclaim_dead_creation`) removes the object
    /// if it probes it before the token is taken; the rename then fails with `ENOENT`
    /// and `create` builds anew.
    ///
    /// The final mode is set here, before publishing, though it lets a user it admits
    /// for reading open the creation object (and hold a read lock there, which no
    /// reclaimer needs to take: it probes): set after the rename, a guest opening the
    /// name at once would find the owner-only bits, and be refused or demoted to
    /// read-only, and a narrower final mode would come too late for a guest that
    /// opened in between.
    fn build(&self, name: &Name, mut layout: Layout) -> Result<Built> {
        let n = name.as_str();
        let mut tries = 4;
        let mut lock_key;
        let mut b = loop {
            tries -= 1;
            // Two keys from one draw: the creation name's, and the lock object's (which
            // the creation name, visible in /dev/shm, must not tell).
            let (key, lock) = liveness::new_keys(n)?;
            lock_key = lock;
            let temp = liveness::creation_name(name, key);
            let fd = match sys::shm_create_excl(&temp, self.mode & 0o700) {
                Ok(fd) => fd,
                Err(libc::EEXIST) if tries > 0 => continue,
                Err(e) => return Err(os(n, e, "cannot create")),
            };
            let st = sys::fstat(fd.as_fd()).map_err(|e| os(n, e, "fstat"))?;
            let b = Built {
                name: name.clone(),
                temp,
                fd: Some(fd),
                ours: (st.dev, st.ino),
                mode: st.mode,
                uid: st.uid,
                lock: None,
                window: None,
                layout,
            };
            // The liveness token first, while only this user can open the object: a
            // reclaimer of dead creations probes it and leaves the object alone from
            // now on.
            match liveness::take_owner_token(b.fd().as_fd()) {
                Ok(true) => break b,
                Ok(false) if tries > 0 => continue,
                Ok(false) => {
                    return Err(os(
                        n,
                        libc::EAGAIN,
                        "cannot create: a reclaimer kept taking the new objects",
                    ))
                }
                Err(e) => return Err(os(n, e, "cannot take the owner lock")),
            }
        };
        // Created with the owner's bits, narrowed by the umask: set the exact mode
        // where it differs.
        if b.mode & 0o7777 != self.mode {
            sys::fchmod(b.fd().as_fd(), self.mode).map_err(|e| os(n, e, "cannot set the mode"))?;
        }
        let (lock_fd, lock_key, lock_ino) =
            liveness::create_lock_object(name, lock_key, self.mode, b.uid)?;
        b.lock = Some((lock_fd, lock_key));
        layout.lock_key = lock_key;
        layout.lock_ino = lock_ino;
        b.layout = layout;
        let fd = b.fd().as_fd();
        // A ring reserves all its memory now; a linear stream only its header, and
        // grows with its first write (see `grow`).
        if layout.ring_capacity != 0 {
            let size = DATA_OFFSET + layout.ring_capacity;
            sys::fallocate(fd, 0, size).map_err(|e| os(n, e, "cannot reserve memory"))?;
            let window = crate::window::map_window(b.fd(), layout, true)
                .map_err(|e| os(n, e, "cannot map the stream"))?;
            window.header().init(layout);
            // Both views of the ring's data, so the writer never takes a page fault.
            // SAFETY: both views of the data map the ring's `capacity` bytes, reserved
            // just above; the owner's mapping is writable.
            unsafe { window.populate(DATA_OFFSET, DATA_OFFSET + window.data_len()) };
            b.window = Some(window);
        } else {
            let fd = b.fd().as_fd();
            // A linear stream's header is written through the fd, so creating and
            // closing a stream maps nothing (the window is mapped on first use): the
            // whole header page, which allocates it (ENOSPC here, never a SIGBUS later)
            // and sets the object's size. One write: nobody opens the stream by its
            // name before the rename that publishes it.
            let mut page = [0u8; DATA_OFFSET as usize];
            page[..OWNER_FIELDS_END].copy_from_slice(&Header::image(layout));
            sys::pwrite_all(fd, &page, 0).map_err(|(_, e)| os(n, e, "cannot write the header"))?;
        }
        if let Some(source) = &self.replica_of {
            // Before the rename that publishes the stream: nobody reads it half-written.
            sys::pwrite_all(b.fd().as_fd(), source.as_bytes(), SOURCE_AT)
                .map_err(|(_, e)| os(n, e, "cannot write the header"))?;
        }
        Ok(b)
    }

    /// Opens the existing stream `name` as a guest: read-write where the mode bits allow,
    /// else read-only (its writes then fail with `EBADF`).
    ///
    /// # Errors
    /// `NotFound` (`ENOENT`) if there is no such name; `PermissionDenied` (`EACCES`);
    /// `InvalidData` (`EPROTO`) if the object is not an fshm stream or its header is
    /// malformed — at once, also for an empty object or a header without its magic
    /// (a stream is published whole, so nothing at a name is a stream being set up);
    /// `PermissionDenied` (`EPERM`) if the stream is not owned by
    /// the user [`owner_uid`](Self::owner_uid) names; `InvalidInput` (`EINVAL`) for a
    /// bad name or an option that applies to create only (see [`new`](Self::new)).
    ///
    /// What is at the name is opened without following a symbolic link and without
    /// waiting (a FIFO would otherwise block the open), and anything but a regular
    /// file — a FIFO, socket, directory, device or symbolic link — is `InvalidData`
    /// (`EPROTO`) at once.
    #[doc(alias = "fshm_guest_open")]
    pub fn open(&self, name: &str) -> Result<Stream> {
        let name = Name::new(name)?;
        let n = name.as_str();
        self.check_open(n)?;
        let (fd, st, writable) = open_existing(&name, self.read_only)?;
        if let Some(uid) = self.owner_uid {
            if st.uid != uid {
                return Err(os(
                    n,
                    libc::EPERM,
                    format!(
                        "owned by uid {}, not by uid {uid} as the open requires",
                        st.uid
                    ),
                ));
            }
        }
        let layout = published_layout(&name, &fd)?;
        // A replica is written by its owner only: every guest reads it.
        let (fd, writable) = if writable && layout.flags & FLAG_REPLICA != 0 {
            let ro = sys::reopen(fd.as_fd(), false)
                .map_err(|e| os(n, e, "cannot open the replica read-only"))?;
            (ro, false)
        } else {
            (fd, writable)
        };
        // A ring is mapped at once (its reader starts at the oldest byte held), so its
        // size is checked now. A linear stream's known size starts at 0, as the copy
        // rule wants (`grow`: reads past it go through the kernel, so a guest that reads
        // once maps nothing); it is asked of the kernel when an access first needs
        // more. A guest that opens and closes makes no system call besides open, the
        // check of what it opened (`fstat`, `fcntl`), read the header, close.
        let verified = if layout.ring_capacity != 0 {
            let need = DATA_OFFSET + layout.ring_capacity;
            let size = if st.size >= need {
                st.size
            } else {
                sys::fstat(fd.as_fd()).map_err(|e| os(n, e, "fstat"))?.size
            };
            if size < need {
                return Err(not_fshm(
                    n,
                    "malformed header (ring larger than the object)",
                ));
            }
            size
        } else {
            0
        };
        // The handle keeps its own copy of the fixed fields (`layout`) and bounds every
        // access by it; its window is mapped on first use, so opening and closing a
        // stream maps nothing.
        let stream = Stream::new(
            name.clone(),
            fd,
            None,
            layout,
            Role::Guest,
            writable,
            self.append,
            verified,
            None,
        )?;
        if stream.is_ring() {
            // A ring reader starts at the oldest byte held; a lossless one attaches
            // first, then starts at the oldest byte held once its slot counts (ring.rs,
            // "Attaching").
            let core = &stream.core;
            let mut c = stream.cursor.lock();
            c.pos = core.oldest();
            if core.is_lossless() && writable && !self.append {
                core.attach_locked(&mut c)?;
                c.pos = c.reader.trust_from;
                core.publish_slot(&mut c);
            }
        }
        Ok(stream)
    }

    /// Refuses the options [`open`](Self::open) cannot honour: those that describe a
    /// stream being created, when they hold anything but their defaults.
    fn check_open(&self, name: &str) -> Result<()> {
        let given: Vec<&str> = [
            (self.mode != DEFAULT_MODE, "mode"),
            (self.persist, "persist"),
            (self.max_size != DEFAULT_MAX_SIZE, "max_size"),
            (self.reclaim, "reclaim"),
            (self.ring.is_some(), "ring"),
            (self.immutable, "immutable"),
            (self.replica_of.is_some(), "replica_of"),
        ]
        .into_iter()
        .filter_map(|(set, option)| set.then_some(option))
        .collect();
        if given.is_empty() {
            return Ok(());
        }
        Err(invalid(
            name,
            format!(
                "option{} {} {} to create only, not to open (the stream exists; its owner \
                 chose these)",
                if given.len() > 1 { "s" } else { "" },
                given.join(", "),
                if given.len() > 1 { "apply" } else { "applies" },
            ),
        ))
    }
}

/// Opens an existing name read-write, falling back to read-only on `EACCES`: the
/// descriptor, its `fstat` (a regular file: see `sys::shm_open`), whether it is
/// writable.
pub(crate) fn open_existing(name: &Name, read_only: bool) -> Result<(OwnedFd, sys::Stat, bool)> {
    let n = name.as_str();
    if !read_only {
        match sys::shm_open_stat(name.as_c(), libc::O_RDWR, 0) {
            Ok((fd, st)) => return Ok((fd, st, true)),
            Err(libc::EACCES) => {}
            Err(e) => return Err(open_failed(n, e, "cannot open")),
        }
    }
    let (fd, st) = sys::shm_open_stat(name.as_c(), libc::O_RDONLY, 0)
        .map_err(|e| open_failed(n, e, "cannot open"))?;
    Ok((fd, st, false))
}

/// A stream built under its creation name, not yet published under its name. Dropped
/// unpublished, it removes what it made (names that still refer to its objects only).
struct Built {
    name: Name,
    temp: CString,
    fd: Option<OwnedFd>,
    ours: (u64, u64),
    mode: u32,
    uid: u32,
    lock: Option<(OwnedFd, u64)>,
    window: Option<crate::window::Window>,
    layout: Layout,
}

impl Built {
    fn fd(&self) -> &OwnedFd {
        self.fd
            .as_ref()
            .expect("a built stream's object is open until published")
    }

    /// The owner's handle of the stream, now published under `name`. If the handle
    /// cannot be made (its read-only descriptor cannot be opened), the published name
    /// and the lock object are removed again, if they are still this stream's.
    fn into_stream(mut self, append: bool) -> Result<Stream> {
        let fd = self
            .fd
            .take()
            .expect("a built stream's object is open until published");
        let (lock_fd, key) = self
            .lock
            .take()
            .expect("a built stream has its lock object");
        let size = DATA_OFFSET + self.layout.ring_capacity;
        match Stream::new(
            self.name.clone(),
            fd,
            self.window.take(),
            self.layout,
            Role::Owner,
            true,
            append,
            size,
            Some(self.ours),
        ) {
            Ok(stream) => {
                stream.core.set_lock_object(lock_fd);
                Ok(stream)
            }
            Err(e) => {
                liveness::remove_lock_object_if(&self.name, key, lock_fd.as_fd());
                if sys::shm_identity(self.name.as_c()) == Some(self.ours) {
                    let _ = sys::shm_unlink(self.name.as_c());
                }
                Err(e)
            }
        }
    }
}

impl Drop for Built {
    fn drop(&mut self) {
        let Some(fd) = self.fd.take() else {
            return;
        };
        if let Some((lock, key)) = &self.lock {
            liveness::remove_lock_object_if(&self.name, *key, lock.as_fd());
        }
        if sys::shm_identity(&self.temp) == Some(self.ours) {
            let _ = sys::shm_unlink(&self.temp);
        }
        drop(fd);
    }
}

/// What a create that found the name taken says about it: the object's path in
/// `/dev/shm` and its owner, as far as this process can see.
fn taken_by(name: &Name) -> String {
    let path = sys::shm_path(name.as_c());
    match sys::shm_lstat(name.as_c()) {
        Some(st) => format!("{path} (owner uid {}, mode {:o})", st.uid, st.mode & 0o7777),
        None => path,
    }
}

/// The header of a stream opened by name, checked: anything that is not a whole fshm
/// header is refused at once with `EPROTO`. A create publishes its stream whole (built
/// under a creation name, then renamed: [`OpenOptions::create`]), so a name never refers
/// to a stream still being set up: an empty object or a header without its magic, or
/// with a half-written one, is never an owner at work, whatever locks are held on it (a
/// squatter's, who would otherwise make every open of the name wait).
fn published_layout(name: &Name, fd: &OwnedFd) -> Result<Layout> {
    let n = name.as_str();
    let h = read_header(fd, FIXED_FIELDS).map_err(|e| os(n, e, "cannot read the header"))?;
    h.layout().map_err(|r| refusal_error(n, r))
}

impl Stream {
    /// Creates `name` as its owner with default options (mode `0o600`, 1 GiB maximum).
    /// See [`OpenOptions::create`].
    #[doc(alias = "fshm_create")]
    pub fn create(name: &str) -> Result<Stream> {
        OpenOptions::new().create(name)
    }

    /// Opens the existing stream `name` as a guest. See [`OpenOptions::open`].
    #[doc(alias = "fshm_guest_open")]
    pub fn open(name: &str) -> Result<Stream> {
        OpenOptions::new().open(name)
    }
}

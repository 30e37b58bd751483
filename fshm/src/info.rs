//! Looking at streams from outside: owner state, `inspect`, `list`, `force_destroy`.

use crate::error::{open_failed, os, Result};
use crate::header::{
    read_header, refusal_error, Header, Layout, DATA_OFFSET, FIXED_FIELDS, FLAG_IMMUTABLE,
    FLAG_LOSSLESS, FLAG_PERSISTENT, FLAG_REPLICA, LOCK_RECLAIM, LOCK_SLOT0, OWNER_CLOSED,
    READER_SLOTS,
};
use crate::liveness::{self, OwnerState};
use crate::name::Name;

use crate::sys;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use crate::sys::SHM_DIR;

/// What [`inspect`] and [`list`] report about a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamInfo {
    /// The stream name in canonical form (`/name`, `/streams/my_stream`).
    pub name: String,
    /// Committed length in bytes (for a ring, every byte ever committed).
    pub len: u64,
    /// Maximum length (for a ring, its capacity).
    pub max_size: u64,
    /// Ring capacity, or `None` for a linear stream.
    pub ring_capacity: Option<u64>,
    /// Whether a ring is lossless.
    pub lossless: bool,
    /// Whether the name outlives the owner.
    pub persistent: bool,
    /// Whether the stream is immutable: committed bytes are never rewritten, every
    /// write appends (see [`OpenOptions::immutable`](crate::OpenOptions::immutable)).
    pub immutable: bool,
    /// Permission bits.
    pub mode: u32,
    /// Owning user.
    pub uid: u32,
    /// Owning group.
    pub gid: u32,
    /// The owner's state.
    pub owner: OwnerState,
    /// Readers attached to a lossless ring's slots.
    pub attached_readers: u32,
    /// Bytes of memory the object holds (its size, header included).
    pub object_size: u64,
    /// For a replica (a stream an importer such as `fshm-tunnel` mirrors from elsewhere
    /// and alone writes; see [`OpenOptions::replica_of`](crate::OpenOptions::replica_of)):
    /// where it comes from. `None` for any other stream.
    pub replica_of: Option<String>,
    /// For a replica: whether its owner has marked it stale — it has lost its source for
    /// now and may be behind it (see [`Stream::set_stale`](crate::Stream::set_stale)).
    /// `false` for any other stream.
    pub stale: bool,
}

/// Reads the state of the stream `name` without joining it (no mapping).
///
/// # Errors
/// `NotFound`, `PermissionDenied` if it cannot be opened even read-only, `InvalidData`
/// (`EPROTO`) if it is not an fshm stream — at once also for a FIFO, socket,
/// directory, device or symbolic link at the name (see [`OpenOptions::open`](crate::OpenOptions::open)).
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::Write;
/// let name = format!("/doc-inspect-{}", std::process::id());
/// let mut owner = fshm::OpenOptions::new().mode(0o640).create(&name)?;
/// owner.write_all(b"12345")?;
/// let info = fshm::inspect(&name)?;
/// assert_eq!((info.len, info.mode, info.owner), (5, 0o640, fshm::OwnerState::Alive));
/// # Ok(()) }
/// ```
pub fn inspect(name: &str) -> Result<StreamInfo> {
    let name = Name::new(name)?;
    let n = name.as_str();
    let fd = sys::shm_open(name.as_c(), libc::O_RDONLY, 0)
        .map_err(|e| open_failed(n, e, "cannot open"))?;
    info_of(&name, &fd)
}

/// What [`inspect`] reports, for the object open on `fd` (a handle's own, for
/// [`Stream::info`](crate::Stream::info)).
pub(crate) fn info_of(name: &Name, fd: &OwnedFd) -> Result<StreamInfo> {
    let n = name.as_str();
    let mut h = read_header(fd, usize::MAX).map_err(|e| os(n, e, "cannot read the header"))?;
    let layout = h.layout().map_err(|r| refusal_error(n, r))?;
    let replica_of = if layout.flags & FLAG_REPLICA != 0 {
        Some(h.copied_source().unwrap_or_default())
    } else {
        None
    };
    let stale = layout.flags & FLAG_REPLICA != 0 && h.stale.load(Ordering::Relaxed) != 0;
    let st = sys::fstat(fd.as_fd()).map_err(|e| os(n, e, "fstat"))?;
    let owner = if h.owner_state.load(Ordering::Relaxed) == OWNER_CLOSED {
        OwnerState::Closed
    } else {
        liveness::probe_owner(fd.as_fd())
    };
    let attached_readers = if layout.flags & FLAG_LOSSLESS != 0 {
        // Readers' tokens are on the lock object, which only writers may open; others
        // count the slots the header marks taken (a dead reader's slot stays marked
        // until a writer finds it dead).
        attached_slots(name, fd, &h, &layout)?.len() as u32
    } else {
        0
    };
    Ok(StreamInfo {
        name: n.to_owned(),
        len: match layout.ring_capacity {
            0 => h.len.load(Ordering::Relaxed).min(layout.max_size),
            _ => h.len.load(Ordering::Relaxed), // a ring counts every byte ever written
        },
        max_size: layout.max_size,
        ring_capacity: (layout.ring_capacity != 0).then_some(layout.ring_capacity),
        lossless: layout.flags & FLAG_LOSSLESS != 0,
        persistent: layout.flags & FLAG_PERSISTENT != 0,
        immutable: layout.flags & FLAG_IMMUTABLE != 0,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        owner,
        attached_readers,
        object_size: st.size,
        replica_of,
        stale,
    })
}

/// The slots of a lossless ring's attached readers (`h` its header, `lock_ino` its lock
/// object's inode). Readers' tokens are on the lock object, which only writers may open;
/// others count the slots the header marks taken (a dead reader's slot stays marked
/// until a writer finds it dead).
fn attached_slots(name: &Name, fd: &OwnedFd, h: &Header, layout: &Layout) -> Result<Vec<usize>> {
    let n = name.as_str();
    let mut slots = Vec::new();
    match liveness::open_lock_object(name, fd.as_fd(), layout) {
        Ok(lock) => {
            for k in 0..READER_SLOTS as usize {
                if sys::ofd_write_locked(lock.as_fd(), LOCK_SLOT0 + k as u64)
                    .map_err(|e| os(n, e, "lock query"))?
                {
                    slots.push(k);
                }
            }
        }
        Err(_) => slots.extend(
            (0..READER_SLOTS as usize).filter(|&k| h.slots[k].active.load(Ordering::Relaxed) != 0),
        ),
    }
    Ok(slots)
}

/// What a monitor (`fshm top`) reads of a stream besides [`StreamInfo`]: the committed
/// length, whether it is immutable, and where its lossless readers are. Read from the
/// header without joining the stream, so each figure is a snapshot that may be stale at
/// once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Committed length in bytes, as [`StreamInfo::len`].
    pub len: u64,
    /// Whether the stream is an immutable linear stream (committed bytes are never
    /// rewritten; see the crate docs, "Zero-copy").
    pub immutable: bool,
    /// For a lossless ring, the position (bytes read since the start of the stream) of
    /// each attached reader, in slot order; empty for other streams. `len - position`
    /// is how far that reader lags.
    pub readers: Vec<u64>,
}

/// Reads [`Progress`] of the stream `name`: its length, immutability and lossless
/// readers' positions. Only reads: it attaches to no slot and wakes nobody.
///
/// # Errors
/// As [`inspect`].
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::{Read, Write};
/// let name = format!("/doc-progress-{}", std::process::id());
/// let mut w = fshm::OpenOptions::new()
///     .ring(64 << 10, fshm::RingPolicy::Lossless)
///     .create(&name)?;
/// let reader = fshm::Stream::open(&name)?;
/// let mut r = reader.follow();
/// w.write_all(b"0123456789")?;
/// let mut buf = [0u8; 4];
/// r.read_exact(&mut buf)?;
/// let p = fshm::progress(&name)?;
/// assert_eq!((p.len, p.readers.as_slice()), (10, &[4][..]));
/// # Ok(()) }
/// ```
pub fn progress(name: &str) -> Result<Progress> {
    let name = Name::new(name)?;
    let n = name.as_str();
    let fd = sys::shm_open(name.as_c(), libc::O_RDONLY, 0)
        .map_err(|e| open_failed(n, e, "cannot open"))?;
    let h = read_header(&fd, usize::MAX).map_err(|e| os(n, e, "cannot read the header"))?;
    let layout = h.layout().map_err(|r| refusal_error(n, r))?;
    let len = h.len.load(Ordering::Relaxed);
    let readers = if layout.flags & FLAG_LOSSLESS != 0 {
        attached_slots(&name, &fd, &h, &layout)?
            .into_iter()
            .map(|k| h.slots[k].pos.load(Ordering::Relaxed))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Progress {
        len: match layout.ring_capacity {
            0 => len.min(layout.max_size),
            _ => len,
        },
        immutable: layout.flags & FLAG_IMMUTABLE != 0,
        readers,
    })
}

/// Lists the fshm streams in [`SHM_DIR`], sorted by name. Objects that are not fshm
/// streams (anything but a regular file among them, also one swapped in while the
/// listing runs: nothing at a name can make it wait), objects whose names are the
/// encoding of no stream name (see the crate docs, "Names"; lock objects and glibc's
/// `sem.*` semaphores among them), and streams this process may not open even
/// read-only, are left out. Each [`StreamInfo::name`] is the stream name
/// (`/streams/my_stream`), not the object name.
pub fn list() -> Result<Vec<StreamInfo>> {
    list_with_prefix("/")
}

/// [`list`], restricted to the streams whose canonical name (`/a/b`) starts with
/// `prefix` (its leading `/` optional): `/streams/` gives the streams under
/// `/streams`; `/streams` also gives `/streams2`. An empty prefix lists every stream.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = format!("/doc-list-{}", std::process::id());
/// let a = fshm::Stream::create(&format!("{dir}/a"))?;
/// let b = fshm::Stream::create(&format!("{dir}/b"))?;
/// let names: Vec<String> = fshm::list_with_prefix(&format!("{dir}/"))?
///     .into_iter()
///     .map(|i| i.name)
///     .collect();
/// assert_eq!(names, [format!("{dir}/a"), format!("{dir}/b")]);
/// # drop((a, b)); Ok(()) }
/// ```
pub fn list_with_prefix(prefix: &str) -> Result<Vec<StreamInfo>> {
    let prefix = format!("/{}", prefix.strip_prefix('/').unwrap_or(prefix));
    let dir = std::fs::read_dir(SHM_DIR)?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Ok(file_name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(name) = Name::from_object(&file_name) else {
            continue;
        };
        if !name.as_str().starts_with(&prefix) {
            continue;
        }
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        let big_enough = entry
            .metadata()
            .map(|m| m.len() >= DATA_OFFSET)
            .unwrap_or(false);
        // A cheap first sort, not a check: the entry may be replaced before `inspect`
        // opens it, which refuses anything but a regular file itself.
        if !is_file || !big_enough {
            continue;
        }
        if let Ok(info) = inspect(name.as_str()) {
            out.push(info);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes the name `name` (`shm_unlink`), whatever it is, and its stream's lock
/// object; processes that have it open keep working, and an owner later closing it
/// leaves a new object of that name alone.
///
/// # Errors
/// `NotFound` if there is no such name, `PermissionDenied`, `InvalidInput` for a bad
/// name, `InvalidData` (`EPROTO`) for a directory at the name (it is not removed).
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::Write;
/// let name = format!("/doc-destroy-{}", std::process::id());
/// let mut owner = fshm::OpenOptions::new().persist(true).create(&name)?;
/// owner.write_all(b"still readable")?;
/// fshm::force_destroy(&name)?;                   // the name is gone ...
/// assert!(fshm::Stream::open(&name).is_err());
/// let mut buf = [0u8; 14];
/// owner.read_at(0, &mut buf)?;                   // ... the open handle keeps working
/// assert_eq!(&buf, b"still readable");
/// # Ok(()) }
/// ```
#[doc(alias = "fshm_force_destroy")]
pub fn force_destroy(name: &str) -> Result<()> {
    let name = Name::new(name)?;
    // The lock objects first, whatever key they have (a header may have been
    // scribbled): a leftover one goes even where the stream's name is gone.
    liveness::remove_lock_objects(&name);
    sys::shm_unlink(name.as_c()).map_err(|e| open_failed(name.as_str(), e, "cannot remove"))
}

/// How long a reclaim waits for another process's reclaim of the same name to end
/// before giving up with `WouldBlock` (`EAGAIN`): the holder of the name's reclaim
/// token may be any process that may write the stream, and it may hold it forever.
pub const RECLAIM_PATIENCE: Duration = Duration::from_secs(1);

/// Removes `name` if it is a non-persistent fshm stream whose owner died; returns
/// whether it removed it. A live owner's stream, a persistent one, and objects that are
/// not fshm streams are never removed, and of two processes racing to reclaim one name,
/// exactly one removes it. What creators of this name that died before publishing the
/// stream left (objects under its creation names, see
/// [`OpenOptions::create`](crate::OpenOptions::create)) is removed too (it is never
/// under the name itself, and does not count in the result; [`reclaim_unfinished`]
/// removes it for every name at once).
///
/// Never takes long: if another process holds the name's reclaim token (it is
/// reclaiming the name, or holds the token to stall others) for longer than
/// [`RECLAIM_PATIENCE`], this fails with `WouldBlock` and removes nothing. The look for
/// dead creators' objects shares that bound: it reads the shm directory once, looks
/// only at the entries named like this name's creation objects, passes over those this
/// process may not remove (another user's, in the sticky `/dev/shm`, without
/// `CAP_FOWNER`: seen from the directory entry, nothing is opened), and stops when the
/// patience is spent (what is left then stays for the next call, or
/// [`reclaim_unfinished`]) — so no number of objects another user puts in `/dev/shm`
/// makes a reclaim take longer.
///
/// # Errors
/// `InvalidInput` for a bad name; `PermissionDenied` if this process may not open it
/// read-write; `WouldBlock` (`EAGAIN`) as above.; `InvalidData` (`EPROTO`) at once for a FIFO,
/// socket, directory, device or symbolic link at the name.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let name = format!("/doc-reclaim-{}", std::process::id());
/// let owner = fshm::Stream::create(&name)?;
/// assert!(!fshm::reclaim(&name)?);               // a live owner's stream stays
/// drop(owner);
/// assert!(!fshm::reclaim(&name)?);               // a closed one is gone already
/// # Ok(()) }
/// ```
pub fn reclaim(name: &str) -> Result<bool> {
    reclaim_within(name, RECLAIM_PATIENCE)
}

/// [`reclaim`], taking at most about `patience` in all: waiting for a reclaim token that
/// another process holds, and looking for dead creators' objects of the name
/// (`Duration::ZERO`: neither; [`reclaim_unfinished`] removes those). `fshm gc` tries
/// every dead stream without waiting first, then gives those it found held one shared
/// second, so that many held streams cannot hold it up longer than one, and looks for
/// dead creations once, for every name ([`reclaim_unfinished`]).
///
/// # Errors
/// As [`reclaim`]: `WouldBlock` (`EAGAIN`) once the patience is spent.
pub fn reclaim_within(name: &str, patience: Duration) -> Result<bool> {
    let name = Name::new(name)?;
    let deadline = Instant::now() + patience;
    reclaim_dead_creations(&name, deadline);
    // A reclaim in progress elsewhere is waited for (bounded), then the name looked at
    // again.
    for _ in 0..4 {
        if sys::shm_identity(name.as_c()).is_none() {
            return Ok(false);
        }
        match reclaim_dead(&name)? {
            Reclaim::Removed => return Ok(true),
            Reclaim::Refused => return Ok(false),
            Reclaim::Busy(busy) => await_reclaim(&name, busy, deadline)?,
            Reclaim::Gone => {}
        }
    }
    Ok(false)
}

/// Reclaim: removes `name` if it is a non-persistent fshm stream whose owner is dead.
/// Returns `Ok(true)` if it removed it. Two racing reclaimers cannot both remove: each
/// must first take the reclaim token on the stream's lock object (which only writers
/// can open, so no reader can hold it off), and the name is removed only if it still
/// refers to the object whose owner was found dead. Never waits: a token held
/// elsewhere gives `Busy`.
pub(crate) fn reclaim_dead(name: &Name) -> Result<Reclaim> {
    let n = name.as_str();
    let fd = match sys::shm_open(
        name.as_c(),
        libc::O_RDWR | libc::O_NONBLOCK | libc::O_NOFOLLOW,
        0,
    ) {
        Ok(fd) => fd,
        Err(libc::ENOENT) => return Ok(Reclaim::Removed),
        // A FIFO, socket, directory, device or symbolic link: `EPROTO` at once
        // (`sys::shm_open`), never removed; a create with reclaim reports the name as
        // taken (`OpenOptions::create`).
        Err(e) => return Err(open_failed(n, e, "cannot open to reclaim")),
    };
    let ours = sys::fstat(fd.as_fd()).map_err(|e| os(n, e, "fstat"))?;
    if ours.mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(Reclaim::Refused);
    }
    let ident = (ours.dev, ours.ino);
    let h = read_header(&fd, FIXED_FIELDS).map_err(|e| os(n, e, "cannot read the header"))?;
    let Ok(layout) = h.layout() else {
        return Ok(Reclaim::Refused);
    };
    if layout.flags & FLAG_PERSISTENT != 0 {
        return Ok(Reclaim::Refused);
    }
    if liveness::probe_owner(fd.as_fd()) != OwnerState::Dead {
        return Ok(Reclaim::Refused);
    }
    let lock_fd = match liveness::open_lock_object(name, fd.as_fd(), &layout) {
        Ok(lock_fd) => lock_fd,
        // Gone or replaced: another reclaimer has just removed the stream's name (it
        // removes the stream's name first, then the lock object's), so look at the name
        // again. (A lock object removed by hand leaves a stream that reclaim cannot
        // remove safely against a racing reclaimer: `force_destroy` removes it.)
        Err(_) => return Ok(Reclaim::Gone),
    };
    if !sys::ofd_try_lock(lock_fd.as_fd(), LOCK_RECLAIM)
        .map_err(|e| os(n, e, "cannot take the reclaim lock"))?
    {
        return Ok(Reclaim::Busy(Busy {
            lock: lock_fd,
            ident,
        }));
    }
    match sys::shm_identity(name.as_c()) {
        Some(id) if id == ident => {}
        _ => return Ok(Reclaim::Refused),
    }
    // The stream's name first: a racing reclaimer that still finds it also finds the
    // lock object, whose token this process holds, and one that finds the lock object
    // gone knows the stream's name is gone too.
    match sys::shm_unlink(name.as_c()) {
        Ok(()) | Err(libc::ENOENT) => {}
        Err(e) => return Err(os(n, e, "cannot remove the dead stream")),
    }
    liveness::remove_lock_object_if(name, layout.lock_key, lock_fd.as_fd());
    Ok(Reclaim::Removed)
}

/// Removes what creators of the stream `name` that died before publishing it left:
/// objects under its creation names (`<object name>%new.<key>`, `open.rs`) whose owner
/// token nobody holds (a creator takes it first thing, so a live one keeps its object),
/// with the lock objects their headers name. Returns how many it removed. Reads the
/// directory once, looks only at entries with the name's creation prefix, passes over
/// those this process may not remove ([`Remover`]), and stops at `deadline`: the cost of
/// a call is bounded whatever other users put in the directory.
pub(crate) fn reclaim_dead_creations(name: &Name, deadline: Instant) -> usize {
    use std::os::unix::ffi::OsStrExt;
    if Instant::now() >= deadline {
        return 0;
    }
    let prefix = liveness::creation_prefix(name);
    let Ok(dir) = std::fs::read_dir(SHM_DIR) else {
        return 0;
    };
    let remover = Remover::new();
    let mut removed = 0;
    for (seen, entry) in dir.flatten().enumerate() {
        // The clock is cheap (vDSO), but not free: looked at every 256 entries, and
        // before each candidate.
        if seen % 256 == 255 && Instant::now() >= deadline {
            break;
        }
        let file_name = entry.file_name();
        if !file_name.as_bytes().starts_with(&prefix) || !remover.may_remove(&entry) {
            continue;
        }
        if Instant::now() >= deadline {
            break;
        }
        let mut object = b"/".to_vec();
        object.extend_from_slice(file_name.as_bytes());
        if let Ok(object) = std::ffi::CString::new(object) {
            removed += usize::from(reclaim_dead_creation(name, &object));
        }
    }
    removed
}

/// Which objects of the shm directory this process may remove, decided from the
/// directory entry (`fstatat` without following links, nothing opened): in a sticky
/// directory (`/dev/shm` is), only its own objects, unless it owns the directory or
/// has `CAP_FOWNER`; and only regular files (nothing else is a creation object).
struct Remover {
    euid: u32,
    any_owner: bool,
}

impl Remover {
    fn new() -> Remover {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        let any_owner = match std::fs::metadata(SHM_DIR) {
            Ok(dir) => dir.mode() & libc::S_ISVTX == 0 || dir.uid() == euid || cap_fowner(),
            Err(_) => true, // then the unlink itself says
        };
        Remover { euid, any_owner }
    }

    fn may_remove(&self, entry: &std::fs::DirEntry) -> bool {
        use std::os::unix::fs::MetadataExt;
        // `DirEntry::metadata` is an `fstatat` on the directory, not following links.
        match entry.metadata() {
            Ok(md) => md.file_type().is_file() && (self.any_owner || md.uid() == self.euid),
            Err(_) => false,
        }
    }
}

/// Whether this process has `CAP_FOWNER` in its effective set (which lets it remove
/// other users' objects in a sticky directory).
fn cap_fowner() -> bool {
    const CAP_FOWNER: u32 = 3;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        // SAFETY: geteuid has no preconditions.
        return unsafe { libc::geteuid() } == 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_FOWNER) != 0)
}

/// Removes the creation object `object` of the stream `name` if its creator is dead
/// (see [`reclaim_dead_creations`]); returns whether it did.
///
/// The creator's liveness is probed, not taken: `F_OFD_GETLK` for a read lock sees the
/// creator's write lock on byte 0 (its owner token) and nothing else, so a user who may
/// only read the object (its final mode is set before it is published) cannot keep it
/// from removal by holding a read lock there, as it could when a reclaimer had to take
/// the write lock itself.
///
/// Without a token, against a live creator: a creator takes its owner token right after
/// making the object (`O_EXCL`) and holds it for the rest of its life, and writes the
/// header only after it. The steps here are: read the header, probe, check that the
/// name still refers to the object read, unlink it, then remove the lock object the
/// header named. A creator seen without its token at the probe had not yet taken it
/// when the header was read, so that header names nothing of it (all zero). If such a
/// creator goes on and publishes (renames) its object before the unlink here, the
/// unlink finds no creation name (creation names are random and never reused) and
/// nothing is removed; if the unlink comes first, the creator's rename fails with
/// `ENOENT` and it builds the stream anew (`OpenOptions::create`), removing its own
/// lock object. Either way no live stream loses anything.
fn reclaim_dead_creation(name: &Name, object: &std::ffi::CStr) -> bool {
    let Ok(fd) = sys::shm_open(
        object,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW,
        0,
    ) else {
        return false;
    };
    let Ok(st) = sys::fstat(fd.as_fd()) else {
        return false;
    };
    if st.mode & libc::S_IFMT != libc::S_IFREG {
        return false;
    }
    let recorded = read_header(&fd, FIXED_FIELDS).ok().map(|h| {
        (
            h.lock_key.load(Ordering::Relaxed),
            h.lock_ino.load(Ordering::Relaxed),
        )
    });
    if liveness::probe_owner(fd.as_fd()) != OwnerState::Dead
        || sys::shm_identity(object) != Some((st.dev, st.ino))
        || sys::shm_unlink(object).is_err()
    {
        return false;
    }
    if let Some((key, ino)) = recorded {
        liveness::remove_recorded_lock_object(name, fd.as_fd(), key, ino);
    }
    true
}

/// Removes what creators killed before publishing their stream left in [`SHM_DIR`] (see
/// [`reclaim`]), for every stream name starting with `prefix` (as for
/// [`list_with_prefix`]); returns the names of the streams whose unfinished creations
/// it removed, sorted. A live creator's object, and objects this process may not remove
/// (another user's, seen from the directory entry without opening it: see
/// [`reclaim`]), are left alone; names too long to be spelled out in a creation name (the object name
/// past 217 bytes) are not found here (`reclaim` of the name finds them). Never waits.
///
/// # Errors
/// The errors of reading [`SHM_DIR`].
pub fn reclaim_unfinished(prefix: &str) -> Result<Vec<String>> {
    use std::os::unix::ffi::OsStrExt;
    let prefix = format!("/{}", prefix.strip_prefix('/').unwrap_or(prefix));
    let mut out = Vec::new();
    let remover = Remover::new();
    for entry in std::fs::read_dir(SHM_DIR)?.flatten() {
        let file_name = entry.file_name();
        let bytes = file_name.as_bytes();
        // `<object name>%new.<16 hex digits>`.
        let Some(stem_len) = bytes.len().checked_sub(liveness::CREATION_MARK.len() + 17) else {
            continue;
        };
        let (stem, tail) = bytes.split_at(stem_len);
        let key = &tail[liveness::CREATION_MARK.len() + 1..];
        if !tail.starts_with(liveness::CREATION_MARK.as_bytes())
            || tail[liveness::CREATION_MARK.len()] != b'.'
            || !key.iter().all(u8::is_ascii_hexdigit)
        {
            continue;
        }
        let Some(name) = std::str::from_utf8(stem).ok().and_then(Name::from_object) else {
            continue;
        };
        if !name.as_str().starts_with(&prefix) || !remover.may_remove(&entry) {
            continue;
        }
        let mut object = b"/".to_vec();
        object.extend_from_slice(bytes);
        let Ok(object) = std::ffi::CString::new(object) else {
            continue;
        };
        if reclaim_dead_creation(&name, &object) {
            out.push(name.as_str().to_owned());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// What a reclaim did.
pub(crate) enum Reclaim {
    /// The dead owner's stream is gone (or the name was free).
    Removed,
    /// Not removed: the owner lives, the stream is persistent, or it is no fshm stream.
    Refused,
    /// The dead stream's lock object is gone or replaced: another reclaimer removed (or
    /// is removing) the stream; look at the name again.
    Gone,
    /// Another process holds the token this reclaim needs.
    Busy(Busy),
}

/// The reclaim token of a dead stream, which another process holds.
pub(crate) struct Busy {
    /// The stream's lock object.
    lock: OwnedFd,
    /// The identity of the stream object.
    ident: (u64, u64),
}

/// Waits, until `deadline` at most, until the reclaim token in `busy` is free or the
/// name no longer refers to that stream: polls with `F_OFD_SETLK` and growing naps,
/// never `F_OFD_SETLKW` (the holder may be any process that may write the stream, and
/// it may never let go).
///
/// # Errors
/// `WouldBlock` (`EAGAIN`) once the deadline has passed.
pub(crate) fn await_reclaim(name: &Name, busy: Busy, deadline: Instant) -> Result<()> {
    let n = name.as_str();
    let fd = busy.lock.as_fd();
    let mut nap = Duration::from_micros(200);
    loop {
        if sys::ofd_try_lock(fd, LOCK_RECLAIM)
            .map_err(|e| os(n, e, "cannot query the reclaim lock"))?
        {
            let _ = sys::ofd_unlock(fd, LOCK_RECLAIM);
            return Ok(());
        }
        if sys::shm_identity(name.as_c()) != Some(busy.ident) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(os(
                n,
                libc::EAGAIN,
                "not reclaimed: another process holds its reclaim token (it is \
                 reclaiming the name, or holding the token), and the patience is spent",
            ));
        }
        std::thread::sleep(nap.min(left));
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

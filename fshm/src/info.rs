//! Looking at streams from outside: owner state, `inspect`, `list`, `force_destroy`.

use crate::error::{os, Result};
use crate::header::{
    read_header, refusal_error, Header, DATA_OFFSET, FIXED_FIELDS, FLAG_IMMUTABLE, FLAG_LOSSLESS,
    FLAG_PERSISTENT, LOCK_RECLAIM, LOCK_SLOT0, OWNER_CLOSED, READER_SLOTS,
};
use crate::liveness::{self, OwnerState};
use crate::name::Name;

use crate::sys;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;

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
}

/// Reads the state of the stream `name` without joining it (no mapping).
///
/// # Errors
/// `NotFound`, `PermissionDenied` if it cannot be opened even read-only, `InvalidData`
/// (`EPROTO`) if it is not an fshm stream.
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
    let fd = sys::shm_open(name.as_c(), libc::O_RDONLY, 0).map_err(|e| os(n, e, "cannot open"))?;
    info_of(&name, &fd)
}

/// What [`inspect`] reports, for the object open on `fd` (a handle's own, for
/// [`Stream::info`](crate::Stream::info)).
pub(crate) fn info_of(name: &Name, fd: &OwnedFd) -> Result<StreamInfo> {
    let n = name.as_str();
    let h = read_header(fd, usize::MAX).map_err(|e| os(n, e, "cannot read the header"))?;
    let layout = h.layout().map_err(|r| refusal_error(n, r))?;
    let st = sys::fstat(fd.as_fd()).map_err(|e| os(n, e, "fstat"))?;
    let owner = if h.owner_state.load(Ordering::Relaxed) == OWNER_CLOSED {
        OwnerState::Closed
    } else {
        liveness::probe_owner(fd.as_fd())
    };
    let attached_readers = if layout.flags & FLAG_LOSSLESS != 0 {
        attached_slots(name, &h, layout.lock_ino)?.len() as u32
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
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        owner,
        attached_readers,
        object_size: st.size,
    })
}

/// The slots of a lossless ring's attached readers (`h` its header, `lock_ino` its lock
/// object's inode). Readers' tokens are on the lock object, which only writers may open;
/// others count the slots the header marks taken (a dead reader's slot stays marked
/// until a writer finds it dead).
fn attached_slots(name: &Name, h: &Header, lock_ino: u64) -> Result<Vec<usize>> {
    let n = name.as_str();
    let mut slots = Vec::new();
    match liveness::open_lock_object(name, lock_ino) {
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
    let fd = sys::shm_open(name.as_c(), libc::O_RDONLY, 0).map_err(|e| os(n, e, "cannot open"))?;
    let h = read_header(&fd, usize::MAX).map_err(|e| os(n, e, "cannot read the header"))?;
    let layout = h.layout().map_err(|r| refusal_error(n, r))?;
    let len = h.len.load(Ordering::Relaxed);
    let readers = if layout.flags & FLAG_LOSSLESS != 0 {
        attached_slots(&name, &h, layout.lock_ino)?
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
/// streams, objects whose names are the encoding of no stream name (see the crate
/// docs, "Names"; lock objects among them), and streams this process may not open
/// even read-only, are left out. Each [`StreamInfo::name`] is the stream name
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
        if file_name.starts_with("sem.") {
            continue;
        }
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
/// name.
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
    // The lock object first: a leftover one goes even where the stream's name is gone.
    liveness::remove_lock_object(&name);
    sys::shm_unlink(name.as_c()).map_err(|e| os(name.as_str(), e, "cannot remove"))
}

/// Removes `name` if it is a non-persistent fshm stream whose owner died; returns
/// whether it removed it. A live owner's stream, a persistent one, and objects that are
/// not fshm streams are never removed, and of two processes racing to reclaim one name,
/// exactly one removes it.
///
/// # Errors
/// `InvalidInput` for a bad name; `PermissionDenied` if this process may not open it
/// read-write.
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
    let name = Name::new(name)?;
    // A reclaim in progress elsewhere is waited for, then the name looked at again.
    for _ in 0..4 {
        if sys::shm_identity(name.as_c()).is_none() {
            return Ok(false);
        }
        match reclaim_dead(&name)? {
            Reclaim::Removed => return Ok(true),
            Reclaim::Refused => return Ok(false),
            Reclaim::Busy(lock) => await_reclaim(&lock),
            Reclaim::Gone => {}
        }
    }
    Ok(false)
}

/// Reclaim: removes `name` if it is a non-persistent fshm stream whose owner is dead.
/// Returns `Ok(true)` if it removed it. Two racing reclaimers cannot both remove: each
/// must first take the reclaim token on the stream's lock object (which only writers
/// can open, so no reader can hold it off), and the name is removed only if it still
/// refers to the object whose owner was found dead.
pub(crate) fn reclaim_dead(name: &Name) -> Result<Reclaim> {
    let n = name.as_str();
    let fd = match sys::shm_open(name.as_c(), libc::O_RDWR, 0) {
        Ok(fd) => fd,
        Err(libc::ENOENT) => return Ok(Reclaim::Removed),
        Err(e) => return Err(os(n, e, "cannot open to reclaim")),
    };
    let h = read_header(&fd, FIXED_FIELDS).map_err(|e| os(n, e, "cannot read the header"))?;
    let layout = match h.layout() {
        Ok(l) => l,
        Err(_) => return Ok(Reclaim::Refused),
    };
    if layout.flags & FLAG_PERSISTENT != 0 {
        return Ok(Reclaim::Refused);
    }
    if liveness::probe_owner(fd.as_fd()) != OwnerState::Dead {
        return Ok(Reclaim::Refused);
    }
    let lock_fd = match liveness::open_lock_object(name, layout.lock_ino) {
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
        return Ok(Reclaim::Busy(lock_fd));
    }
    let ours = sys::fstat(fd.as_fd()).map_err(|e| os(n, e, "fstat"))?;
    match sys::shm_identity(name.as_c()) {
        Some(id) if id == (ours.dev, ours.ino) => {}
        _ => return Ok(Reclaim::Refused),
    }
    // The stream's name first: a racing reclaimer that still finds it also finds the
    // lock object, whose token this process holds (it waits), and one that finds the
    // lock object gone knows the stream's name is gone too.
    match sys::shm_unlink(name.as_c()) {
        Ok(()) | Err(libc::ENOENT) => {}
        Err(e) => return Err(os(n, e, "cannot remove the dead stream")),
    }
    liveness::remove_lock_object_if(name, lock_fd.as_fd());
    Ok(Reclaim::Removed)
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
    /// Another process is reclaiming the name: its lock object, whose reclaim token it
    /// holds.
    Busy(OwnedFd),
}

/// Waits until the reclaim in progress on `lock` (a lock object) has ended.
pub(crate) fn await_reclaim(lock: &OwnedFd) {
    if sys::ofd_lock_wait(lock.as_fd(), LOCK_RECLAIM).is_ok() {
        let _ = sys::ofd_unlock(lock.as_fd(), LOCK_RECLAIM);
    }
}

//! Who is alive: the kernel-released tokens behind owner liveness, appends and reader
//! slots, and the stream's lock object that keeps them out of readers' reach.
//!
//! A token is an open-file-description write lock on one byte (`F_OFD_SETLK` with
//! `F_WRLCK`). The kernel drops it when its open file description goes away — the
//! holder closed its descriptor or died, even by `kill -9` — whatever pid namespace the
//! holder lives in and however pids are reused. Two facts make the tokens trustworthy
//! against a process that may only *read* a stream:
//!
//! - only a descriptor open for writing can take a write lock, and every probe asks the
//!   kernel for a *read* lock (`F_OFD_GETLK` with `F_RDLCK`), which conflicts with write
//!   locks only: a read lock that a reader took is invisible to probes, so it can
//!   neither fake a live holder nor keep a dead one looking alive;
//! - but any process that can open an object can take a read lock on any of its bytes,
//!   and a read lock keeps everyone else from taking a write lock there. So a token
//!   that must be taken while readers have the stream open cannot live on the stream
//!   object. It lives on the stream's **lock object**, a second shm object named
//!   `<object name>%lock.<key>` (no stream name encodes to a name holding `%lock`),
//!   created by the owner with the stream, whose mode admits only the classes (user,
//!   group, other) that may write the stream ([`lock_object_mode`]).
//!
//! The lock object is also where writable waiters sleep: it is one page, allocated by
//! the owner at creation (a full file system fails the create with `ENOSPC`, never a
//! later wait with `SIGBUS`), holding the futex words ([`Doorbells`]: the data bell at
//! offset 0, the room bell at 64) that writable handles sleep on and writers ring
//! (`wait.rs`, "Where waiters sleep"). A read-only user, which cannot open it, cannot
//! wake them. A writable handle maps the page on its first wait, or its first commit
//! that finds a waiter announced, after checking with `fstat` that the object is a
//! whole page (a writer could have truncated it: a smaller one is refused, not mapped).
//!
//! **Nobody else can have made it first.** The key is 64 random bits (`getrandom`),
//! drawn at creation and recorded in the header (`lock_key`), so no one can know the
//! lock object's name before the owner creates it: it is made with `O_CREAT|O_EXCL`
//! (the owner's bits only until its owner and type are checked), so it is an object the
//! owner made, that no other user has opened or locked. A name found taken (never
//! expected) gets a new key, a few times, then a clear error; a create never waits on
//! a lock in an object another user could have made or opened. (Before layout 3 the
//! name was the predictable `<object name>%lock`: another user could create it first
//! and hold a lock on it, and the owner's create waited for good.) Who opens the lock
//! object later (appenders, lossless readers, reclaimers) opens the recorded name and
//! checks that it is the recorded inode, a regular file, of the stream object's owner.
//!
//! The stream itself is built under a name of its own, `<object name>%new.<key>` (its
//! own random key), and given its name when it is ready, in one step that fails if the
//! name exists (`open.rs`): a stream's name never refers to a half-made object, so a
//! creator killed midway leaves nothing that blocks a later create of the name.
//! [`reclaim`](crate::reclaim) removes what it left under its creation name (an object
//! whose owner token nobody holds: a creator takes it first thing).
//!
//! | token | object | byte | holder |
//! |---|---|---:|---|
//! | owner | stream | 0 | the owner, for its lifetime; taken at creation, before the mode admits anyone else |
//! | reclaim | lock object | 0 | a process removing a dead owner's name (others try it for at most [`RECLAIM_PATIENCE`](crate::RECLAIM_PATIENCE), never wait in `F_OFD_SETLKW`) |
//! | append | lock object | 1 | an appender, for one append (others wait for it in `F_OFD_SETLKW`) |
//! | reader slot `k` | lock object | `2 + k` | the reader attached to slot `k` of a lossless ring |
//!
//! The header records the lock object's inode number (`lock_ino`) besides its key: a
//! process opening the lock object by name checks that it is the one made with its
//! stream, not one of a later stream of the same name, nor another user's object.
//!
//! **Every wait on a token another user may hold is bounded.** The reclaim token may be
//! held by any process that may write the stream, forever: a reclaim finding it held
//! polls it (`F_OFD_SETLK`, growing naps) for at most
//! [`RECLAIM_PATIENCE`](crate::RECLAIM_PATIENCE), then fails with `WouldBlock`.
//! (Appenders do wait in `F_OFD_SETLKW` for the append token: only writers can hold it,
//! and what writers can do to each other is outside this model.)
//!
//! Waiting for a token's holder to die is never woken by the holder (a dead process
//! wakes nobody), so every wait re-probes on a bounded period, whatever wake-ups
//! arrive (`wait.rs`): anyone who maps a futex word can wake its sleepers (readers map
//! the header, writers the lock object's page).
//!
//! **Watching the owner.** The header also records the owner's pid and the inode of its
//! pid namespace (`owner_pid`, `owner_pidns`). They are a hint, never a token (a pid
//! alone says nothing once the process is gone and the number reused): an async waiter
//! for data watches that process through a pidfd and, while it runs, probes the token
//! only every second instead of every tick; when it ends, the token is probed at once
//! (`reactor/owners.rs`, which states what the pidfd cannot see and why the bounded
//! probe still covers it).
//!
//! What a process with write permission can do to others is outside this model (it can
//! rewrite the header, truncate the object, or hold the tokens): see the crate's trust
//! section.

use crate::error::{os, Result};
use crate::header::{Layout, LOCK_OWNER};
use crate::name::Name;
use crate::sys::{self, Errno};
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The state of a stream's owner.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let name = format!("/doc-owner-state-{}", std::process::id());
/// let owner = fshm::Stream::create(&name)?;
/// let guest = fshm::Stream::open(&name)?;
/// assert_eq!(guest.owner_state(), fshm::OwnerState::Alive);
/// drop(owner);
/// assert_eq!(guest.owner_state().to_string(), "closed");
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OwnerState {
    /// The owner process has the stream open.
    Alive,
    /// The owner closed the stream (a persistent stream outlives its owner).
    Closed,
    /// The owner process died without closing: the kernel dropped its liveness lock.
    Dead,
    /// The kernel did not answer the liveness probe (the error is not kept).
    Unknown,
}

impl OwnerState {
    /// `"alive"`, `"closed"`, `"dead"` or `"unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerState::Alive => "alive",
            OwnerState::Closed => "closed",
            OwnerState::Dead => "dead",
            OwnerState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for OwnerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Probes the owner token on the stream object: alive, dead, or unknown.
pub(crate) fn probe_owner(stream_fd: BorrowedFd<'_>) -> OwnerState {
    match sys::ofd_write_locked(stream_fd, LOCK_OWNER) {
        Ok(true) => OwnerState::Alive,
        Ok(false) => OwnerState::Dead,
        Err(_) => OwnerState::Unknown,
    }
}

/// Takes the owner token on a stream object nobody else can open yet.
pub(crate) fn take_owner_token(stream_fd: BorrowedFd<'_>) -> std::result::Result<bool, Errno> {
    sys::ofd_try_lock(stream_fd, LOCK_OWNER)
}

/// Marks a lock object's name. `%` followed by anything but `2F` or `25` is never
/// produced by the name encoding, so no stream's object name holds it.
const LOCK_MARK: &str = "%lock";

/// The system's longest file name, which a lock object's name must fit too.
const SYSTEM_NAME_MAX: usize = 255;

/// How many fresh keys a creator tries when a lock object's name is taken (never
/// expected: the keys are random).
const LOCK_NAME_TRIES: u32 = 4;

/// The lock object's name for `shm_open`, given the stream's object name and the key
/// recorded in its header (`lock_key`): the object name, `%lock.` and the key's 16 hex
/// digits; where that would pass 255 bytes, the object name's first 217 bytes, `%lock`,
/// the 16 hex digits of the FNV-1a hash of the whole object name, `.` and the key.
/// The key is random (`getrandom`), so nobody can know the name before the owner
/// creates the object (`create_lock_object`), and the name says whose stream it serves.
pub(crate) fn lock_object_name(name: &Name, key: u64) -> CString {
    keyed_name(name, LOCK_MARK, key)
}

/// Marks the name under which a creator builds a new stream before it publishes it
/// under the stream's name (`open.rs`): like the lock object's, no stream name encodes
/// to it.
pub(crate) const CREATION_MARK: &str = "%new";

/// The name under which a creator builds the stream `name` (`open.rs`), with a random
/// `key`: as [`lock_object_name`], with `%new` for `%lock`.
pub(crate) fn creation_name(name: &Name, key: u64) -> CString {
    keyed_name(name, CREATION_MARK, key)
}

/// What every lock object name of the stream `name` starts with, without the leading
/// `/` (everything before the key's hex digits).
pub(crate) fn lock_object_prefix(name: &Name) -> Vec<u8> {
    let mut out = keyed_name(name, LOCK_MARK, 0).into_bytes();
    out.truncate(out.len() - 16);
    out.remove(0);
    out
}

/// Removes every lock object name of the stream `name` in the shm directory (each
/// `<object name>%lock.<16 hex digits>`, whatever key: the recorded one, and those that
/// earlier streams of the name left), as far as this process may (the sticky
/// `/dev/shm` keeps it from removing other users' objects).
pub(crate) fn remove_lock_objects(name: &Name) {
    use std::os::unix::ffi::OsStrExt;
    let prefix = lock_object_prefix(name);
    let Ok(dir) = std::fs::read_dir(sys::SHM_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let file_name = entry.file_name();
        let bytes = file_name.as_bytes();
        let Some(key) = bytes.strip_prefix(prefix.as_slice()) else {
            continue;
        };
        if key.len() != 16 || !key.iter().all(u8::is_ascii_hexdigit) {
            continue;
        }
        let mut object = b"/".to_vec();
        object.extend_from_slice(bytes);
        if let Ok(object) = CString::new(object) {
            let _ = sys::shm_unlink(&object);
        }
    }
}

/// What every creation name of the stream `name` starts with, without the leading `/`
/// (everything before the key's hex digits), for finding what dead creators left.
pub(crate) fn creation_prefix(name: &Name) -> Vec<u8> {
    let mut out = keyed_name(name, CREATION_MARK, 0).into_bytes();
    out.truncate(out.len() - 16);
    out.remove(0);
    out
}

/// `/` + the object name + `mark` + `.` + 16 hex digits of `key`, or, where that would
/// pass 255 bytes, the object name's first bytes, `mark`, the hash of the whole object
/// name in 16 hex digits, `.` and the key.
fn keyed_name(name: &Name, mark: &str, key: u64) -> CString {
    let object = name.as_c().to_bytes();
    let bare = object.strip_prefix(b"/").unwrap_or(object);
    let tail = format!(".{key:016x}");
    let mut out = b"/".to_vec();
    if bare.len() + mark.len() + tail.len() <= SYSTEM_NAME_MAX {
        out.extend_from_slice(bare);
        out.extend_from_slice(mark.as_bytes());
    } else {
        let keep = SYSTEM_NAME_MAX - mark.len() - 16 - tail.len();
        out.extend_from_slice(&bare[..keep]);
        out.extend_from_slice(mark.as_bytes());
        out.extend_from_slice(format!("{:016x}", fnv1a(bare)).as_bytes());
    }
    out.extend_from_slice(tail.as_bytes());
    // The stream's object name holds no NUL (checked by `Name`), nor does the rest.
    CString::new(out).unwrap_or_default()
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The lock object's mode for a stream of mode `stream_mode`: read-write for the owning
/// user, and for the group and others exactly where they may write the stream; nothing
/// else (no read-only access: a reader must not be able to open it at all).
pub(crate) fn lock_object_mode(stream_mode: u32) -> u32 {
    let mut mode = 0o600;
    if stream_mode & 0o020 != 0 {
        mode |= 0o060;
    }
    if stream_mode & 0o002 != 0 {
        mode |= 0o006;
    }
    mode
}

/// A new lock object key: random, never 0 (0 marks "none" in the header).
pub(crate) fn new_lock_key(n: &str) -> Result<u64> {
    loop {
        match sys::random_u64() {
            Ok(0) => {}
            Ok(key) => return Ok(key),
            Err(e) => return Err(os(n, e, "cannot draw the lock object's random name")),
        }
    }
}

/// Two random keys, never 0: a creation name's and a lock object's.
pub(crate) fn new_keys(n: &str) -> Result<(u64, u64)> {
    loop {
        match sys::random_u128() {
            Ok(r) if r as u64 != 0 && (r >> 64) as u64 != 0 => {
                return Ok((r as u64, (r >> 64) as u64))
            }
            Ok(_) => {}
            Err(e) => return Err(os(n, e, "cannot draw the stream's random names")),
        }
    }
}

/// Creates the lock object of a stream whose name this process has just created, under
/// the name of `key` (`O_CREAT|O_EXCL`, so the object is one this process made: no other
/// user can have opened it or locked any of its bytes). Made with the owner's bits only,
/// then given [`lock_object_mode`] of `stream_mode` once its owner and type are
/// checked (a regular file of `owner_uid`, the user who made the stream's object). A
/// name already taken (never expected: the key is random) is retried with a new key a
/// few times, never waited on and never removed. Returns the descriptor, the
/// key it used and the inode number to record in the header.
pub(crate) fn create_lock_object(
    name: &Name,
    mut key: u64,
    stream_mode: u32,
    owner_uid: u32,
) -> Result<(OwnedFd, u64, u64)> {
    let n = name.as_str();
    let mode = lock_object_mode(stream_mode);
    let mut tries = LOCK_NAME_TRIES;
    let fd = loop {
        let lock_name = lock_object_name(name, key);
        match sys::shm_create_excl(&lock_name, 0o600) {
            Ok(fd) => break fd,
            Err(libc::EEXIST) if tries > 1 => {
                tries -= 1;
                key = new_lock_key(n)?;
            }
            Err(libc::EEXIST) => {
                return Err(os(
                    n,
                    libc::EEXIST,
                    format!(
                        "cannot create the stream's lock object: {LOCK_NAME_TRIES} random \
                         names were all taken (last {})",
                        sys::shm_path(&lock_name)
                    ),
                ))
            }
            Err(e) => return Err(os(n, e, "cannot create the stream's lock object")),
        }
    };
    let made = (|| {
        let st = sys::fstat(fd.as_fd()).map_err(|e| os(n, e, "fstat"))?;
        if st.mode & libc::S_IFMT != libc::S_IFREG || st.uid != owner_uid {
            return Err(os(
                n,
                libc::EPROTO,
                "the stream's new lock object is not a regular file of this user",
            ));
        }
        // Its page of futex words (`Doorbells`), allocated now: a full shm file system
        // fails this create (`ENOSPC`), never a later wait with `SIGBUS`.
        sys::fallocate(fd.as_fd(), 0, LOCK_OBJECT_SIZE)
            .map_err(|e| os(n, e, "cannot size the stream's lock object"))?;
        if st.mode & 0o7777 != mode {
            sys::fchmod(fd.as_fd(), mode)
                .map_err(|e| os(n, e, "cannot set the lock object's mode"))?;
        }
        Ok(st.ino)
    })();
    match made {
        Ok(ino) => Ok((fd, key, ino)),
        Err(e) => {
            remove_lock_object_if(name, key, fd.as_fd());
            Err(e)
        }
    }
}

/// Opens the lock object of the stream open on `stream`, whose header records
/// `layout.lock_key` and `layout.lock_ino`, and checks that it is the one made with
/// the stream: that inode, a regular file, of the stream object's owner.
///
/// # Errors
/// `PermissionDenied` for a process that may not write the stream (the lock object's
/// mode admits writers only); `NotFound` if the lock object is gone or is not the
/// stream's (this stream was removed, or another user put an object there).
pub(crate) fn open_lock_object(
    name: &Name,
    stream: BorrowedFd<'_>,
    layout: &Layout,
) -> Result<OwnedFd> {
    let n = name.as_str();
    let fd = sys::shm_open(
        &lock_object_name(name, layout.lock_key),
        libc::O_RDWR | libc::O_NONBLOCK | libc::O_NOFOLLOW,
        0,
    )
    .map_err(|e| os(n, e, "cannot open the stream's lock object"))?;
    let st = sys::fstat(fd.as_fd()).map_err(|e| os(n, e, "fstat"))?;
    let owner = sys::fstat(stream).map_err(|e| os(n, e, "fstat"))?.uid;
    if st.ino != layout.lock_ino || st.mode & libc::S_IFMT != libc::S_IFREG || st.uid != owner {
        return Err(os(
            n,
            libc::ENOENT,
            "the object under the stream's lock object name is not its lock object (the \
             stream was removed, or another user's object is there)",
        ));
    }
    Ok(fd)
}

/// Size of the lock object: one page, whose first bytes are the futex words writable
/// waiters sleep on ([`Doorbells`]); the rest is zero and reserved.
pub(crate) const LOCK_OBJECT_SIZE: u64 = 4096;
/// Offset in the lock object of the data doorbell (writable waiters for data).
#[cfg_attr(fshm_loom, allow(dead_code))] // the models have bells of their own
pub(crate) const DATA_BELL_AT: usize = 0;
/// Offset in the lock object of the room doorbell (a lossless ring writer waiting for
/// room), on a cache line of its own.
#[cfg_attr(fshm_loom, allow(dead_code))]
pub(crate) const ROOM_BELL_AT: usize = 64;

/// The lock object's page of futex words, mapped read-write by a writable handle on its
/// first wait, or its first commit that finds a waiter announced (`wait.rs`, "Where
/// waiters sleep"): the words writable waiters sleep on, in an object that only
/// processes that may write the stream can open, so a read-only user cannot wake them.
///
/// | offset | size | word | meaning |
/// |---:|---:|---|---|
/// | 0 | 4 | data bell | moved on (+1) and woken by a writer whose commit found the header's `seq` flagged |
/// | 64 | 4 | room bell | moved on (+1) and woken by a lossless reader whose progress found `space_seq` flagged |
///
/// Dropping it removes the reactor's registrations on its words, then unmaps it.
pub(crate) struct Doorbells {
    base: std::ptr::NonNull<u8>,
}

// SAFETY: the page holds atomics only, which any thread may access; the mapping lives
// as long as the value.
unsafe impl Send for Doorbells {}
// SAFETY: as above.
unsafe impl Sync for Doorbells {}

#[cfg_attr(fshm_loom, allow(dead_code))] // the models have bells of their own
impl Doorbells {
    /// Maps the page of the lock object open on `lock` (read-write). A lock object
    /// smaller than a page (another writer truncated it) is refused with `EPROTO`
    /// rather than mapped: a touch past its end would be a `SIGBUS`.
    pub(crate) fn map(name: &Name, lock: BorrowedFd<'_>) -> Result<Doorbells> {
        let n = name.as_str();
        let st = sys::fstat(lock).map_err(|e| os(n, e, "fstat"))?;
        if st.size < LOCK_OBJECT_SIZE {
            return Err(os(
                n,
                libc::EPROTO,
                format!(
                    "the stream's lock object is {} bytes, not {LOCK_OBJECT_SIZE}: no \
                     place for the futex words",
                    st.size
                ),
            ));
        }
        let base = sys::mmap_shared(lock, LOCK_OBJECT_SIZE as usize, true)
            .map_err(|e| os(n, e, "cannot map the stream's lock object"))?;
        let base = std::ptr::NonNull::new(base)
            .ok_or_else(|| os(n, libc::EINVAL, "cannot map the stream's lock object"))?;
        Ok(Doorbells { base })
    }

    fn word(&self, at: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: `at` is 0 or 64, inside the page mapped read-write for as long as
        // `self` lives, 4-aligned; other processes change the word only atomically.
        // (Only a writer truncating the object could take the page away: what writers
        // do to each other is outside the trust model, module docs.)
        unsafe {
            &*self
                .base
                .as_ptr()
                .add(at)
                .cast::<std::sync::atomic::AtomicU32>()
        }
    }

    /// The data bell.
    pub(crate) fn data(&self) -> &std::sync::atomic::AtomicU32 {
        self.word(DATA_BELL_AT)
    }

    /// The room bell.
    pub(crate) fn room(&self) -> &std::sync::atomic::AtomicU32 {
        self.word(ROOM_BELL_AT)
    }
}

impl Doorbells {
    /// The mapped page's address and length: what the handle that owns these bells
    /// removes the reactor's registrations of (`reactor::forget_words`) before it drops
    /// them (`handle.rs`, `Drop for Core`).
    pub(crate) fn span(&self) -> (usize, usize) {
        (self.base.as_ptr() as usize, LOCK_OBJECT_SIZE as usize)
    }
}

impl Drop for Doorbells {
    fn drop(&mut self) {
        // Registrations of leaked async waits on these words are gone by now: the
        // handle that owns the bells removed them first (`Doorbells::span`).
        // SAFETY: the page `map` mapped; every reference to its words borrows `self`.
        unsafe { sys::munmap(self.base.as_ptr(), LOCK_OBJECT_SIZE as usize) };
    }
}

/// Removes the lock object's name of `key` (its owner's close, once it found the
/// stream's name still its own: the random name is its lock object's, and the sticky
/// `/dev/shm` keeps an owner from removing another user's object).
pub(crate) fn remove_lock_object(name: &Name, key: u64) {
    let _ = sys::shm_unlink(&lock_object_name(name, key));
}

/// Removes the lock object's name of `key` if it still refers to the object open on
/// `lock` (the lock object this process made or checked).
pub(crate) fn remove_lock_object_if(name: &Name, key: u64, lock: BorrowedFd<'_>) {
    let lock_name = lock_object_name(name, key);
    let ours = sys::fstat(lock).map(|st| (st.dev, st.ino));
    if ours.is_ok() && sys::shm_identity(&lock_name) == ours.ok() {
        let _ = sys::shm_unlink(&lock_name);
    }
}

/// Removes the lock object that the header of the stream open on `stream` names, if
/// it is that stream's: a regular file of the stream object's owner, of the recorded
/// inode where one is recorded (`lock_ino`, 0 while a creator had not recorded it).
pub(crate) fn remove_recorded_lock_object(
    name: &Name,
    stream: BorrowedFd<'_>,
    key: u64,
    lock_ino: u64,
) {
    if key == 0 {
        return;
    }
    let Ok(owner) = sys::fstat(stream).map(|st| st.uid) else {
        return;
    };
    let lock_name = lock_object_name(name, key);
    let Ok(fd) = sys::shm_open(
        &lock_name,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW,
        0,
    ) else {
        return;
    };
    let Ok(st) = sys::fstat(fd.as_fd()) else {
        return;
    };
    if st.mode & libc::S_IFMT == libc::S_IFREG
        && st.uid == owner
        && (lock_ino == 0 || st.ino == lock_ino)
    {
        remove_lock_object_if(name, key, fd.as_fd());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_object_names_fit_and_decode_to_no_stream() {
        // The longest stream name's lock object still fits a file name, and no lock
        // object's name decodes to a stream's.
        let nested = format!("{}/{}", "a".repeat(120), "b".repeat(127));
        let n = Name::new(&nested).unwrap();
        let lock = lock_object_name(&n, u64::MAX);
        assert!(lock.as_bytes().len() <= 255 + 1);
        let n = Name::new("/x/y").unwrap();
        let lock = lock_object_name(&n, 0x1234);
        assert_eq!(lock.to_str().unwrap(), "/x%2Fy%lock.0000000000001234");
        assert_eq!(crate::name::stream_name(lock.to_str().unwrap()), None);
    }

    #[test]
    fn the_lock_object_admits_exactly_the_classes_that_may_write() {
        assert_eq!(lock_object_mode(0o600), 0o600);
        assert_eq!(lock_object_mode(0o644), 0o600);
        assert_eq!(lock_object_mode(0o640), 0o600);
        assert_eq!(lock_object_mode(0o660), 0o660);
        assert_eq!(lock_object_mode(0o664), 0o660);
        assert_eq!(lock_object_mode(0o666), 0o666);
        assert_eq!(lock_object_mode(0o622), 0o666);
        assert_eq!(lock_object_mode(0o400), 0o600);
    }

    #[test]
    fn lock_object_names_are_marked_keyed_and_fit_the_system_limit() {
        let name = Name::new("/x").unwrap();
        assert_eq!(
            lock_object_name(&name, 0xab).to_str().unwrap(),
            "/x%lock.00000000000000ab"
        );
        // No lock object's name decodes to a stream name: listings leave them out.
        assert_eq!(crate::name::stream_name("x%lock.00000000000000ab"), None);
        let fits = "f".repeat(233);
        let lock = lock_object_name(&Name::new(&fits).unwrap(), 1);
        assert_eq!(lock.to_bytes().len(), 1 + 255);
        assert!(lock
            .to_str()
            .unwrap()
            .starts_with(&format!("/{fits}%lock.")));
        let (a, b) = ("a".repeat(255), format!("{}b", "a".repeat(254)));
        let (la, lb) = (
            lock_object_name(&Name::new(&a).unwrap(), 7),
            lock_object_name(&Name::new(&b).unwrap(), 7),
        );
        assert_eq!(la.to_bytes().len(), 1 + 255);
        assert_ne!(
            la, lb,
            "long names differing only at the end get distinct lock objects"
        );
        assert!(la.to_str().unwrap().ends_with(".0000000000000007"));
        assert_eq!(crate::name::stream_name(la.to_str().unwrap()), None);
        assert_ne!(
            lock_object_name(&name, 1),
            lock_object_name(&name, 2),
            "the key is in the name"
        );
        assert_eq!(
            creation_name(&name, 0xab).to_str().unwrap(),
            "/x%new.00000000000000ab"
        );
        assert_eq!(creation_prefix(&name), b"x%new.");
        assert_eq!(lock_object_prefix(&name), b"x%lock.");
        let long = Name::new(&a).unwrap();
        let made = creation_name(&long, 0x77);
        assert!(made.to_bytes()[1..].starts_with(&creation_prefix(&long)));
        assert_eq!(made.to_bytes().len(), 1 + 255);
        assert_eq!(crate::name::stream_name(made.to_str().unwrap()), None);
    }

    #[test]
    fn lock_keys_are_random_and_never_zero() {
        let keys: std::collections::HashSet<u64> =
            (0..64).map(|_| new_lock_key("/x").unwrap()).collect();
        assert_eq!(keys.len(), 64);
        assert!(!keys.contains(&0));
    }
}

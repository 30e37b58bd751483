//! Thin, safe wrappers over the system calls fshm makes (shm objects, mappings, OFD
//! locks, futexes). Each returns the raw `errno` on failure; callers add the stream name.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// An `errno` value.
pub(crate) type Errno = i32;

fn last_errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Retries `f` while it fails with `EINTR`.
fn retry<T: PartialEq + Copy>(fail: T, mut f: impl FnMut() -> T) -> Result<T, Errno> {
    loop {
        let r = f();
        if r != fail {
            return Ok(r);
        }
        let e = last_errno();
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// `shm_open(name, oflag | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, mode)`: the one
/// place that opens a shm object by name, so nothing at a stream's name can make an
/// open hang or open something else than a stream. (The open is `open(2)` of the
/// object's file in [`SHM_DIR`], which is what `shm_open` does on Linux.)
///
/// Another user can put anything at a name in the world-writable `/dev/shm` before
/// the caller comes, or swap it in between two calls (`renameat2(RENAME_EXCHANGE)`):
/// - a FIFO: `O_NONBLOCK` makes its open return at once (a plain read-only open would
///   wait for a writer forever);
/// - a symbolic link: `O_NOFOLLOW` refuses it (`ELOOP`), whatever it points to;
/// - a socket (`ENXIO`), a directory (`EISDIR` for writing), a device without a
///   driver (`ENXIO`, `ENODEV`): refused by the open itself;
/// - and whatever does open (a FIFO, a directory opened for reading, a device node —
///   which only a process with `CAP_MKNOD` can make) is refused by an `fstat` of the
///   descriptor just opened: only a regular file passes. Checking the path first and
///   opening after would be a race; the descriptor is what every later call uses.
///
/// Each refusal is `EPROTO`, the errno of "not an fshm stream". An object this call
/// creates (`O_CREAT|O_EXCL`) is a new regular file by the kernel's rule (an existing
/// name of any kind, a symbolic link included, is `EEXIST`), so it is not looked at
/// again. Once the object is known to be a regular file, `O_NONBLOCK` is cleared
/// again: the descriptor (which C callers get from `fileno`, Rust ones through
/// `AsFd`) has the flags the caller asked for, so that, e.g., io_uring reads of it do
/// not fail with `EAGAIN` where a page must be brought back from swap.
pub(crate) fn shm_open(name: &CStr, oflag: i32, mode: u32) -> Result<OwnedFd, Errno> {
    let excl = libc::O_CREAT | libc::O_EXCL;
    if oflag & excl == excl {
        return shm_open_unchecked(name, oflag, mode);
    }
    shm_open_stat(name, oflag, mode).map(|(fd, _)| fd)
}

/// [`shm_open`], also returning the `fstat` of the descriptor it checked (always a
/// regular file).
pub(crate) fn shm_open_stat(name: &CStr, oflag: i32, mode: u32) -> Result<(OwnedFd, Stat), Errno> {
    let fd = shm_open_unchecked(name, oflag, mode)?;
    let st = fstat(fd.as_fd())?;
    if st.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(libc::EPROTO);
    }
    // The file status flags the caller asked for, without `O_NONBLOCK` (the others
    // `F_SETFL` sets, such as `O_APPEND`, from `oflag` as they were).
    let settable = libc::O_APPEND | libc::O_ASYNC | libc::O_DIRECT | libc::O_NOATIME;
    // SAFETY: plain system call on the descriptor just opened.
    retry(-1, || unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, oflag & settable)
    })?;
    Ok((fd, st))
}

/// The open of [`shm_open`], without the `fstat`: `open(2)` of the object's file in
/// [`SHM_DIR`], as the C library's `shm_open` does, but with the kernel's errors as
/// they are (glibc's `shm_open` reports a directory as `EINVAL`, which would read as
/// a bad name).
fn shm_open_unchecked(name: &CStr, oflag: i32, mode: u32) -> Result<OwnedFd, Errno> {
    let path = shm_file(name)?;
    let flags = oflag | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let fd = retry(-1, || {
        // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
        unsafe { libc::open(path.as_ptr(), flags, mode as libc::c_uint) }
    })
    .map_err(|e| match e {
        // The object name holds no '/' (checked in `shm_path`), so `ELOOP` can only
        // be `O_NOFOLLOW` refusing a symbolic link at the name itself.
        libc::ELOOP | libc::EISDIR | libc::ENXIO | libc::ENODEV => libc::EPROTO,
        e => e,
    })?;
    // SAFETY: `open` returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, mode)`: a new object that
/// this call made, never one that was there before (nor a link to one).
pub(crate) fn shm_create_excl(name: &CStr, mode: u32) -> Result<OwnedFd, Errno> {
    let oflag = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = retry(-1, || {
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
        unsafe { libc::shm_open(name.as_ptr(), oflag, mode as libc::mode_t) }
    })?;
    // SAFETY: `shm_open` returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Eight bytes from the kernel's random source (`getrandom`, which blocks only until
/// the source is first seeded at boot).
pub(crate) fn random_u64() -> Result<u64, Errno> {
    random_u128().map(|r| r as u64)
}

/// Sixteen bytes from the kernel's random source, as [`random_u64`].
pub(crate) fn random_u128() -> Result<u128, Errno> {
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: writes at most `buf.len() - got` bytes into the unfilled tail of `buf`.
        let r = retry(-1, || unsafe {
            libc::getrandom(buf[got..].as_mut_ptr().cast(), buf.len() - got, 0)
        })?;
        got += r as usize;
    }
    Ok(u128::from_ne_bytes(buf))
}

/// Gives the shm object `from` the name `to` if no object has it (`renameat2` with
/// `RENAME_NOREPLACE` in the shm directory): one step, so `to` never names a half-made
/// object, and `EEXIST` if `to` exists, whatever it is.
pub(crate) fn shm_rename_noreplace(from: &CStr, to: &CStr) -> Result<(), Errno> {
    let path = |object: &CStr| {
        let mut p = SHM_DIR.as_bytes().to_vec();
        p.extend_from_slice(object.to_bytes());
        std::ffi::CString::new(p).map_err(|_| libc::EINVAL)
    };
    let (from, to) = (path(from)?, path(to)?);
    // SAFETY: both paths are NUL-terminated and live for the duration of the call.
    let renamed = retry(-1, || unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    });
    match renamed {
        Ok(_) => Ok(()),
        // A kernel or file system without RENAME_NOREPLACE (or a filter refusing the
        // call): `link` also fails if `to` exists, then the first name goes.
        Err(libc::EINVAL | libc::ENOSYS | libc::EPERM) => {
            // SAFETY: both paths are NUL-terminated and live for the duration of the call.
            retry(-1, || unsafe { libc::link(from.as_ptr(), to.as_ptr()) })?;
            // SAFETY: as above.
            let _ = retry(-1, || unsafe { libc::unlink(from.as_ptr()) });
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The file of the shm object `name` (`/x`): `/dev/shm/x`. `EINVAL` for a name that is
/// empty or holds a `/` past its first byte, `ENAMETOOLONG` past `NAME_MAX`, as
/// `shm_open` reports them.
fn shm_file(name: &CStr) -> Result<std::ffi::CString, Errno> {
    let bytes = name.to_bytes();
    let bare = bytes.strip_prefix(b"/").unwrap_or(bytes);
    if bare.is_empty() || bare.contains(&b'/') {
        return Err(libc::EINVAL);
    }
    if bare.len() > 255 {
        return Err(libc::ENAMETOOLONG);
    }
    let mut path = Vec::with_capacity(SHM_DIR.len() + 1 + bare.len() + 1);
    path.extend_from_slice(SHM_DIR.as_bytes());
    path.push(b'/');
    path.extend_from_slice(bare);
    // No NUL inside: `bare` comes from a `CStr`.
    std::ffi::CString::new(path).map_err(|_| libc::EINVAL)
}

/// `shm_unlink(name)`.
pub(crate) fn shm_unlink(name: &CStr) -> Result<(), Errno> {
    // SAFETY: `name` is a valid NUL-terminated string.
    match retry(-1, || unsafe { libc::shm_unlink(name.as_ptr()) }) {
        Ok(_) => Ok(()),
        // Another user's object in the sticky /dev/shm: glibc reports the kernel's
        // EPERM as EACCES, musl passes it on; fshm reports EACCES on both.
        Err(libc::EPERM) => Err(libc::EACCES),
        // A directory at the name: not a stream (and not removable as one).
        Err(libc::EISDIR) => Err(libc::EPROTO),
        Err(e) => Err(e),
    }
}

/// The fields of `fstat` that fshm uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stat {
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub dev: u64,
    pub ino: u64,
}

impl Stat {
    /// The fields fshm uses of a `stat` the kernel filled.
    fn of(st: &libc::stat) -> Stat {
        Stat {
            size: st.st_size as u64,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// `fstat(fd)`.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> Result<Stat, Errno> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is a valid out-pointer.
    retry(-1, || unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(Stat::of(&st))
}

/// `fchmod(fd, mode)`.
pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> Result<(), Errno> {
    // SAFETY: plain system call on an open descriptor.
    retry(-1, || unsafe {
        libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t)
    })
    .map(drop)
}

/// `fchown(fd, -1, gid)`.
pub(crate) fn fchgrp(fd: BorrowedFd<'_>, gid: u32) -> Result<(), Errno> {
    // SAFETY: plain system call on an open descriptor; `uid_t::MAX` means "unchanged".
    retry(-1, || unsafe {
        libc::fchown(fd.as_raw_fd(), libc::uid_t::MAX, gid as libc::gid_t)
    })
    .map(drop)
}

/// `fallocate(fd, 0, offset, len)`: reserves pages and extends the size if needed.
pub(crate) fn fallocate(fd: BorrowedFd<'_>, offset: u64, len: u64) -> Result<(), Errno> {
    // SAFETY: plain system call on an open descriptor.
    retry(-1, || unsafe {
        libc::fallocate(fd.as_raw_fd(), 0, offset as libc::off_t, len as libc::off_t)
    })
    .map(drop)
}

/// Writes all of `buf` with `op(tail, done)` (a `write`-like call on the unwritten tail,
/// `done` bytes in), retrying short writes and `EINTR`. On failure, how much was written
/// before the error, and the error (`ENOSPC` for a write of 0 bytes).
fn write_fully(
    buf: &[u8],
    mut op: impl FnMut(&[u8], usize) -> isize,
) -> Result<usize, (usize, Errno)> {
    let mut done = 0;
    while done < buf.len() {
        let r = op(&buf[done..], done);
        if r > 0 {
            done += r as usize;
        } else if r == 0 {
            return Err((done, libc::ENOSPC));
        } else {
            let e = last_errno();
            if e != libc::EINTR {
                return Err((done, e));
            }
        }
    }
    Ok(done)
}

/// `write`s all of `buf` at the fd's current offset (moving it); failures as
/// [`pwrite_all`].
pub(crate) fn write_all(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, (usize, Errno)> {
    write_fully(buf, |tail, _| {
        // SAFETY: `tail` is a valid slice; the kernel only reads it.
        unsafe { libc::write(fd.as_raw_fd(), tail.as_ptr().cast(), tail.len()) }
    })
}

/// `pwrite`s all of `buf` at `offset`. On failure, returns how much was written before
/// the error, and the error.
pub(crate) fn pwrite_all(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    offset: u64,
) -> Result<usize, (usize, Errno)> {
    write_fully(buf, |tail, done| {
        // SAFETY: `tail` is a valid slice; the kernel only reads it.
        unsafe {
            libc::pwrite(
                fd.as_raw_fd(),
                tail.as_ptr().cast(),
                tail.len(),
                (offset + done as u64) as libc::off_t,
            )
        }
    })
}

/// Protection of a mapping: read-write for a writable handle, else read-only.
fn prot(writable: bool) -> i32 {
    if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    }
}

/// `pread`s exactly `buf.len()` bytes at `offset` (`EIO` if the object is shorter).
pub(crate) fn pread_exact(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> Result<(), Errno> {
    // SAFETY: `pread_exact_uninit` only lets the kernel write bytes into the view.
    pread_exact_uninit(fd, unsafe { uninit(buf) }, offset)
}

/// `pread_exact` into memory that may be uninitialised; on `Ok` every byte of `buf` is
/// initialised.
pub(crate) fn pread_exact_uninit(
    fd: BorrowedFd<'_>,
    buf: &mut [MaybeUninit<u8>],
    offset: u64,
) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the destination is the unfilled tail of a valid slice.
        let r = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf[done..].as_mut_ptr().cast(),
                buf.len() - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        if r > 0 {
            done += r as usize;
        } else if r == 0 {
            return Err(libc::EIO);
        } else {
            let e = last_errno();
            if e != libc::EINTR {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Views an initialised buffer as one that a read may fill.
///
/// # Safety
/// The view must never be used to write an uninitialised byte into `buf` (safe code
/// could then read it as a `u8`): pass it only to fshm's read paths, which copy
/// initialised bytes (from the kernel or the mapping) into the buffers they are given.
pub(crate) unsafe fn uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; that no uninitialised byte is
    // written through the view is the caller's promise.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// Where POSIX shared memory objects live on Linux (glibc's `shm_open` directory).
pub const SHM_DIR: &str = "/dev/shm";

/// Where the shm name `object` (with its leading `/`) lives: `/dev/shm/<object>`, for
/// messages (escaped by the caller's display, as names may hold any byte).
pub(crate) fn shm_path(object: &CStr) -> String {
    format!("{SHM_DIR}{}", object.to_string_lossy())
}

/// `lstat` of the shm name `object` (with its leading `/`), if there is one.
pub(crate) fn shm_lstat(object: &CStr) -> Option<Stat> {
    let mut path = SHM_DIR.as_bytes().to_vec();
    path.extend_from_slice(object.to_bytes());
    let path = std::ffi::CString::new(path).ok()?;
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` a valid out-pointer.
    let r = unsafe { libc::lstat(path.as_ptr(), &mut st) };
    (r == 0).then(|| Stat::of(&st))
}

/// `(st_dev, st_ino)` of the entry that the shm name `object` (with its leading `/`)
/// is now, if any: `lstat`, so a symbolic link at the name is the link itself (never
/// the object it points to), and nothing is opened.
pub(crate) fn shm_identity(object: &CStr) -> Option<(u64, u64)> {
    let mut path = SHM_DIR.as_bytes().to_vec();
    path.extend_from_slice(object.to_bytes());
    let path = std::ffi::CString::new(path).ok()?;
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` a valid out-pointer.
    let r = retry(-1, || unsafe { libc::lstat(path.as_ptr(), &mut st) });
    r.is_ok().then_some((st.st_dev, st.st_ino))
}

/// `mmap(NULL, len, prot, MAP_SHARED, fd, 0)`; returns the base address.
pub(crate) fn mmap_shared(
    fd: BorrowedFd<'_>,
    len: usize,
    writable: bool,
) -> Result<*mut u8, Errno> {
    let prot = prot(writable);
    // SAFETY: a fresh mapping at an address the kernel chooses overlaps nothing we own.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(last_errno())
    } else {
        Ok(p.cast())
    }
}

/// Reserves `len` bytes of address space (`PROT_NONE`, anonymous).
pub(crate) fn mmap_reserve(len: usize) -> Result<*mut u8, Errno> {
    // SAFETY: a fresh anonymous mapping at a kernel-chosen address overlaps nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(last_errno())
    } else {
        Ok(p.cast())
    }
}

/// Maps `len` bytes of `fd` from `offset` over `addr` (`MAP_SHARED | MAP_FIXED`).
///
/// # Safety
/// `addr..addr + len` must lie inside a reservation made by [`mmap_reserve`] that the
/// caller owns and that no reference points into: `MAP_FIXED` replaces whatever was
/// mapped there, so any other range would pull memory out from under its owner.
pub(crate) unsafe fn mmap_fixed(
    addr: *mut u8,
    len: usize,
    fd: BorrowedFd<'_>,
    offset: u64,
    writable: bool,
) -> Result<(), Errno> {
    let prot = prot(writable);
    // SAFETY: the caller guarantees the range is its own unreferenced reservation.
    let p = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            prot,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// `munmap(base, len)`.
///
/// # Safety
/// `base..base+len` must be a mapping made by [`mmap_shared`] that nothing uses any more.
pub(crate) unsafe fn munmap(base: *mut u8, len: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { libc::munmap(base.cast(), len) };
}

/// `madvise(addr, len, MADV_POPULATE_WRITE)`: faults pages in ahead of use. Errors are
/// ignored: it is only a speed hint (older kernels lack it).
///
/// # Safety
/// `addr..addr + len` must lie inside a live shared mapping of the caller's whose
/// pages the object backs (reserved with `fallocate`): populating a range past the
/// object's end would raise `SIGBUS`, and populating for writing a private mapping or
/// one another owner relies on being unpopulated would change its memory.
pub(crate) unsafe fn populate_write(addr: *mut u8, len: usize) {
    // SAFETY: guaranteed by the caller; populating changes no contents.
    unsafe { libc::madvise(addr.cast(), len, libc::MADV_POPULATE_WRITE) };
}

fn flock(kind: i32, byte: u64) -> libc::flock {
    // SAFETY: an all-zero `flock` is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl
}

/// Takes an OFD write lock on one byte without waiting; `Ok(false)` if another open
/// file description holds a lock on it.
pub(crate) fn ofd_try_lock(fd: BorrowedFd<'_>, byte: u64) -> Result<bool, Errno> {
    let fl = flock(libc::F_WRLCK, byte);
    // SAFETY: `fl` is a valid flock for the duration of the call.
    match retry(-1, || unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl)
    }) {
        Ok(_) => Ok(true),
        Err(e) if e == libc::EAGAIN || e == libc::EACCES => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes an exclusive OFD lock on one byte, waiting for it.
pub(crate) fn ofd_lock_wait(fd: BorrowedFd<'_>, byte: u64) -> Result<(), Errno> {
    let fl = flock(libc::F_WRLCK, byte);
    // SAFETY: `fl` is a valid flock for the duration of the call.
    retry(-1, || unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLKW, &fl)
    })
    .map(drop)
}

/// Releases an OFD lock on one byte.
pub(crate) fn ofd_unlock(fd: BorrowedFd<'_>, byte: u64) -> Result<(), Errno> {
    let fl = flock(libc::F_UNLCK, byte);
    // SAFETY: `fl` is a valid flock for the duration of the call.
    retry(-1, || unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl)
    })
    .map(drop)
}

/// Whether another open file description holds a *write* lock on `byte`.
///
/// The probe asks for a read lock, which conflicts only with write locks: a read lock
/// that a process with read-only access took on the byte (every reader can take one)
/// is not seen, so it cannot pass for a live holder. Only a descriptor open for
/// writing can take the write locks fshm uses as liveness tokens.
pub(crate) fn ofd_write_locked(fd: BorrowedFd<'_>, byte: u64) -> Result<bool, Errno> {
    let mut fl = flock(libc::F_RDLCK, byte);
    // SAFETY: `fl` is a valid in/out flock for the duration of the call.
    retry(-1, || unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl)
    })?;
    Ok(fl.l_type as i32 == libc::F_WRLCK)
}

/// `FUTEX_WAIT` (shared, not private) on `word` while it holds `expected`, for at most
/// `timeout`. Returns when woken, on timeout, on a signal, or at once if the value differs;
/// `true` if the timeout passed.
#[cfg(not(fshm_loom))]
pub(crate) fn futex_wait(
    word: &crate::sync::AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) -> bool {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as _,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic in a shared mapping; the kernel
    // only reads it. `tsp` is null or points to a valid timespec.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            tsp,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    r == -1 && last_errno() == libc::ETIMEDOUT
}

/// `FUTEX_WAKE` (shared) of every waiter on `word`.
#[cfg(not(fshm_loom))]
pub(crate) fn futex_wake_all(word: &crate::sync::AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; waking has no memory effects.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}

/// One entry of a `futex_waitv(2)` call (the kernel's `struct futex_waitv`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// `futex_waitv(2)`'s number on every Linux architecture fshm supports (the generic
/// table and x86_64's agree).
const SYS_FUTEX_WAITV: libc::c_long = 449;
/// A 32-bit futex word (`FUTEX2_SIZE_U32`).
pub(crate) const FUTEX2_SIZE_U32: u32 = 0x02;
/// A futex private to this process (`FUTEX2_PRIVATE`, the value of `FUTEX_PRIVATE_FLAG`).
const FUTEX2_PRIVATE: u32 = 128;

impl FutexWaitv {
    /// An entry for `word` holding `expected`; shared across processes unless `private`.
    ///
    /// The entry keeps the word's address only as a number: the kernel reads it during
    /// the call and reports `EFAULT` if it is no longer mapped.
    pub(crate) fn new(word: &AtomicU32, expected: u32, private: bool) -> FutexWaitv {
        FutexWaitv {
            val: u64::from(expected),
            uaddr: word.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32 | if private { FUTEX2_PRIVATE } else { 0 },
            reserved: 0,
        }
    }
}

/// `futex_waitv(2)` (Linux 5.16+): sleeps until one of `entries` is woken, one of them
/// no longer holds its expected value (`EAGAIN` at once), `timeout` passes
/// (`ETIMEDOUT`), or a signal arrives (`EINTR`). `Ok(index)` of a woken entry.
pub(crate) fn futex_waitv(
    entries: &[FutexWaitv],
    timeout: Option<Duration>,
) -> Result<usize, Errno> {
    // The timeout is absolute on CLOCK_MONOTONIC.
    let ts = timeout.map(|d| {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let nanos = now.tv_nsec as u64 + u64::from(d.subsec_nanos());
        libc::timespec {
            tv_sec: now
                .tv_sec
                .saturating_add(d.as_secs().min(i32::MAX as u64) as _)
                .saturating_add((nanos / 1_000_000_000) as _),
            tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
        }
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `entries` is a valid array of `entries.len()` kernel `futex_waitv`
    // structs for the duration of the call; the kernel only reads it, and reads the
    // words it names as user memory (a word no longer mapped is `EFAULT`, not a
    // fault in this process). `tsp` is null or points to a valid timespec.
    let r = unsafe {
        libc::syscall(
            SYS_FUTEX_WAITV,
            entries.as_ptr(),
            entries.len() as libc::c_uint,
            0 as libc::c_uint,
            tsp,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as usize)
    }
}

/// `FUTEX_WAIT_PRIVATE` on a word of this process while it holds `expected`, for at
/// most `timeout`.
pub(crate) fn futex_wait_private(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as _,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic of this process; the kernel only
    // reads it. `ts` is a valid timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}

/// `FUTEX_WAKE_PRIVATE` of every waiter on a word of this process.
pub(crate) fn futex_wake_private(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; waking has no memory effects.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}

/// The futex under `loom` (`sync.rs`): a sleep on a word happens only while the word
/// still holds `expected`, checked under the lock that every wake of that word takes
/// (the kernel's hash-bucket lock), and lasts until a wake of that word. Timeouts are
/// ignored, so a lost wake-up shows as a deadlock, which the model reports.
#[cfg(fshm_loom)]
mod futex_model {
    use crate::sync::AtomicU32;
    use loom::sync::{Condvar, Mutex};
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;

    /// Wakes so far per word (by address), and the sleepers' condition variable.
    pub(super) struct Futexes {
        pub wakes: Mutex<HashMap<usize, u64>>,
        pub woken: Condvar,
    }

    loom::lazy_static! {
        pub(super) static ref FUTEXES: Futexes = Futexes {
            wakes: Mutex::new(HashMap::new()),
            woken: Condvar::new(),
        };
    }

    pub(super) fn key(word: &AtomicU32) -> usize {
        word as *const AtomicU32 as usize
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32) {
        let f = &*FUTEXES;
        let mut wakes = f.wakes.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return;
        }
        let seen = wakes.get(&key(word)).copied().unwrap_or(0);
        while wakes.get(&key(word)).copied().unwrap_or(0) == seen {
            wakes = f.woken.wait(wakes).unwrap();
        }
    }

    pub(super) fn wake_all(word: &AtomicU32) {
        let f = &*FUTEXES;
        *f.wakes.lock().unwrap().entry(key(word)).or_insert(0) += 1;
        f.woken.notify_all();
    }
}

/// How many times `futex_wake_all` was called on `word` in this `loom` execution.
#[cfg(fshm_loom)]
#[cfg_attr(not(test), allow(dead_code))] // the models are tests
pub(crate) fn futex_wakes(word: &crate::sync::AtomicU32) -> u64 {
    let wakes = futex_model::FUTEXES.wakes.lock().unwrap();
    wakes.get(&futex_model::key(word)).copied().unwrap_or(0)
}

/// `FUTEX_WAIT` as modelled under `loom` (see `futex_model`): never times out.
#[cfg(fshm_loom)]
pub(crate) fn futex_wait(
    word: &crate::sync::AtomicU32,
    expected: u32,
    _timeout: Option<Duration>,
) -> bool {
    futex_model::wait(word, expected);
    false
}

/// `FUTEX_WAKE` of every sleeper on `word`, as modelled under `loom`.
#[cfg(fshm_loom)]
pub(crate) fn futex_wake_all(word: &crate::sync::AtomicU32) {
    futex_model::wake_all(word);
}

/// `lseek(fd, off, whence)`: the new offset (the C layer's fd coherence).
#[cfg(feature = "__c-layer")]
pub(crate) fn lseek(fd: BorrowedFd<'_>, off: i64, whence: i32) -> Result<u64, Errno> {
    // SAFETY: plain system call on a descriptor the caller borrows.
    retry(-1, || unsafe { libc::lseek(fd.as_raw_fd(), off, whence) }).map(|r| r as u64)
}

/// Opens the object open on `fd` again, as a new open file description (its own
/// offset and OFD locks), through `/proc/self/fd`. No name in `/dev/shm` is looked
/// up: `/proc/self/fd/N` leads to the very object open on `fd` (a regular file,
/// checked when it was opened), whatever is at its name now.
pub(crate) fn reopen(fd: BorrowedFd<'_>, writable: bool) -> Result<OwnedFd, Errno> {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| libc::EINVAL)?;
    let flags = if writable {
        libc::O_RDWR
    } else {
        libc::O_RDONLY
    } | libc::O_CLOEXEC;
    // SAFETY: `path` is NUL-terminated.
    let new = retry(-1, || unsafe { libc::open(path.as_ptr(), flags) })?;
    // SAFETY: `open` returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `membarrier(2)` commands (linux/membarrier.h).
#[cfg(not(fshm_loom))]
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
#[cfg(not(fshm_loom))]
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;

/// Registers this process for expedited global memory barriers; whether it is
/// registered (kernels since 4.16). The answer is cached in an atomic, not a
/// `OnceLock`: a process forked while another thread was inside a `OnceLock`'s
/// initialisation would wait for it forever (the forking test harnesses' children did).
/// Threads racing to register both make the call, which is idempotent. A forked child
/// keeps the cached answer, as it did with the `OnceLock`: the kernel copies the
/// registration with the address space and clears it only at `exec`.
#[cfg(not(fshm_loom))]
pub(crate) fn membarrier_registered() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;
    static REGISTERED: AtomicU8 = AtomicU8::new(UNKNOWN);
    match REGISTERED.load(Ordering::Acquire) {
        YES => true,
        NO => false,
        _ => {
            // SAFETY: plain system call without pointers.
            let ok = unsafe {
                libc::syscall(
                    libc::SYS_membarrier,
                    MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
                    0,
                    0,
                ) == 0
            };
            REGISTERED.store(if ok { YES } else { NO }, Ordering::Release);
            ok
        }
    }
}

/// Makes every thread of every registered process that is running now execute a full
/// memory barrier before this returns (`MEMBARRIER_CMD_GLOBAL_EXPEDITED`): the slow side
/// of an asymmetric fence whose fast side is a compiler fence. `Err` where the kernel
/// lacks it, in which case no process can have registered either.
#[cfg(not(fshm_loom))]
pub(crate) fn membarrier_global() -> Result<(), Errno> {
    // SAFETY: plain system call without pointers.
    retry(-1, || unsafe {
        libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0)
    })
    .map(drop)
}

/// Under `loom` no process registers for `membarrier`: writers take the sequentially
/// consistent read-modify-write (`ring.rs`, "Attaching").
#[cfg(fshm_loom)]
pub(crate) fn membarrier_registered() -> bool {
    false
}

/// Under `loom`, `membarrier` is the full barrier it executes on the caller (and, for
/// registered writers, on them: `sync::light_fence`).
#[cfg(fshm_loom)]
pub(crate) fn membarrier_global() -> Result<(), Errno> {
    crate::sync::fence(std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// The system page size.
pub(crate) fn page_size() -> u64 {
    // SAFETY: `sysconf` has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as u64
    }
}

/// The inode number of this process's pid namespace (`stat("/proc/self/ns/pid")`), `0`
/// when it cannot be known (no `/proc`). Cached per process (a forked child looks again:
/// it may live in another namespace than its parent).
pub(crate) fn pid_namespace() -> u64 {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    // Atomics, not a lock: a child forked while another thread of its parent held a
    // lock here would wait for it forever. Threads racing to fill it store the same
    // value; the inode is stored before the pid that says whose it is.
    static PID: AtomicU32 = AtomicU32::new(0);
    static INODE: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    if PID.load(Ordering::Acquire) == pid {
        return INODE.load(Ordering::Relaxed);
    }
    let path = c"/proc/self/ns/pid";
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` a valid out-pointer.
    let ok = retry(-1, || unsafe { libc::stat(path.as_ptr(), &mut st) }).is_ok();
    let inode = if ok { st.st_ino } else { 0 };
    INODE.store(inode, Ordering::Relaxed);
    PID.store(pid, Ordering::Release);
    inode
}

/// `pidfd_open(pid, 0)` (Linux 5.3): a descriptor that becomes readable when process
/// `pid` ends.
pub(crate) fn pidfd_open(pid: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain system call without pointers.
    let fd = retry(-1, || unsafe {
        libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0)
    })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub(crate) fn epoll_create() -> Result<OwnedFd, Errno> {
    // SAFETY: plain system call without pointers.
    let fd = retry(-1, || unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds `fd` to epoll instance `ep` for readability, tagged with `data`.
pub(crate) fn epoll_add(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>, data: u64) -> Result<(), Errno> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: data,
    };
    // SAFETY: both descriptors are open; `ev` is a valid event the kernel copies.
    retry(-1, || unsafe {
        libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev)
    })
    .map(drop)
}

/// Removes `fd` from epoll instance `ep`.
pub(crate) fn epoll_del(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>) {
    // SAFETY: both descriptors are open; `EPOLL_CTL_DEL` ignores the event pointer.
    unsafe {
        libc::epoll_ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd.as_raw_fd(),
            std::ptr::null_mut(),
        )
    };
}

/// Waits, without a timeout, for events on `ep`; returns the tags of those that came.
pub(crate) fn epoll_wait(ep: BorrowedFd<'_>, out: &mut Vec<u64>) -> Result<(), Errno> {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 32];
    // SAFETY: `evs` has room for the 32 events passed as its length.
    let n = retry(-1, || unsafe {
        libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), evs.len() as i32, -1)
    })?;
    out.clear();
    out.extend(evs[..n as usize].iter().map(|e| e.u64));
    Ok(())
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), `None` if unknown.
pub(crate) fn nofile_limit() -> Option<u64> {
    // SAFETY: an all-zero `rlimit` is a valid value of this plain C struct.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `rl` is a valid out-pointer.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0).then_some(rl.rlim_cur as u64)
}

/// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`.
pub(crate) fn eventfd() -> Result<OwnedFd, Errno> {
    // SAFETY: plain system call without pointers.
    let fd = retry(-1, || unsafe {
        libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)
    })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd's counter (it becomes readable). A counter at its maximum
/// (`EAGAIN`) is readable already.
pub(crate) fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: `one` is 8 readable bytes; `fd` is open.
    let _ = retry(-1, || unsafe {
        libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8)
    });
}

/// Empties a non-blocking eventfd's counter (it stops being readable); whether it was
/// readable.
pub(crate) fn eventfd_clear(fd: BorrowedFd<'_>) -> bool {
    let mut n: u64 = 0;
    // SAFETY: `n` is 8 writable bytes; `fd` is open and non-blocking (an empty counter
    // gives `EAGAIN`, which is the cleared state).
    let r = retry(-1, || unsafe {
        libc::read(fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8)
    });
    matches!(r, Ok(8)) && n > 0
}

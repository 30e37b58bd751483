//! libshmfile: the shmfile 1.1.0 C API — and its fshm additions — as thin `extern "C"`
//! wrappers over [`fshm`]. Every stream it makes is a real fshm stream that Rust
//! programs can open too.
//!
//! `c/shmfile.h` is the C user's reference. Every exported function runs inside
//! `guard`, so no Rust panic unwinds into C: a panic becomes `EIO` and the function's
//! error value. The library never prints, except `_fshm_printCopyrightVersion`, whose job
//! it is.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod file;

use fshm_sys::libc;
use std::ffi::{c_char, c_int, c_long, c_uchar, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Version of the C API: shmfile 1.1.0 plus additions.
pub const VERSION: (u8, u8, u8) = (1, 2, 0);
const VERSION_EXTRA: &CStr = c"fshm";

/// `fshm_open` flag: create the stream (the caller becomes its owner).
pub const FSHM_OWNER: c_int = 1;
/// `fshm_open` flag: open an existing stream as a guest.
pub const FSHM_GUEST: c_int = 2;
/// `fshm_open` flag: the name outlives the owner's `fclose`.
pub const FSHM_PERSIST: c_int = 4;
/// `fshm_open` flag (addition): every write appends atomically at the end.
pub const FSHM_APPEND: c_int = 8;
/// `fshm_open` flag (addition): owner only; replace a dead owner's non-persistent stream.
pub const FSHM_RECLAIM: c_int = 16;
/// `fshm_open` flag (addition): reads block like a pipe's until data or end-of-stream.
pub const FSHM_BLOCK: c_int = 32;
/// `fshm_open` flag (addition): guest only; open read-only.
pub const FSHM_RDONLY: c_int = 64;
const KNOWN_FLAGS: c_int =
    FSHM_OWNER | FSHM_GUEST | FSHM_PERSIST | FSHM_APPEND | FSHM_RECLAIM | FSHM_BLOCK | FSHM_RDONLY;

pub(crate) fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = e };
}

/// Runs `f`, turning an `Err(errno)` or a panic into `errno` plus `fail`.
pub(crate) fn guard<T>(fail: T, f: impl FnOnce() -> Result<T, c_int>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_errno(e);
            fail
        }
        Err(_) => {
            set_errno(libc::EIO);
            fail
        }
    }
}

/// The name argument as UTF-8 text, or `EINVAL`.
///
/// # Safety
/// `name` is null or a NUL-terminated string.
unsafe fn name_arg<'a>(name: *const c_char) -> Result<&'a str, c_int> {
    if name.is_null() {
        return Err(libc::EINVAL);
    }
    // SAFETY: non-null, and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(name) }
        .to_str()
        .map_err(|_| libc::EINVAL)
}

/// `fshm_options.ring_policy`: the writer never waits; slow readers get `ENOBUFS`.
pub const FSHM_RING_LOSSY: c_int = 0;
/// `fshm_options.ring_policy`: the writer waits for attached readers.
pub const FSHM_RING_LOSSLESS: c_int = 1;

/// Options of [`fshm_open_ex`] (`struct fshm_options` in `shmfile.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FshmOptions {
    /// `sizeof(struct fshm_options)` as the caller compiled it.
    pub size: usize,
    /// Maximum size of a linear stream; 0 for the default (1 GiB).
    pub max_size: u64,
    /// Ring capacity in bytes (a multiple of the page size); 0 for a linear stream.
    pub ring_capacity: u64,
    /// [`FSHM_RING_LOSSY`] or [`FSHM_RING_LOSSLESS`].
    pub ring_policy: c_int,
}

/// Opens or creates the stream `name` and returns a `FILE*` on it (see `shmfile.h`).
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn fshm_open(
    name: *const c_char,
    mode: libc::mode_t,
    fshm_flags: c_int,
) -> *mut libc::FILE {
    // SAFETY: forwarded caller contract; no options.
    unsafe { fshm_open_ex(name, mode, fshm_flags, std::ptr::null()) }
}

/// `fshm_open` with options: maximum size, ring capacity and policy (owner only).
///
/// # Safety
/// `name` is null or a NUL-terminated string; `opts` is null or points to a
/// `struct fshm_options` of `opts->size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn fshm_open_ex(
    name: *const c_char,
    mode: libc::mode_t,
    fshm_flags: c_int,
    opts: *const FshmOptions,
) -> *mut libc::FILE {
    guard(std::ptr::null_mut(), || {
        // SAFETY: forwarded caller contract.
        let name = unsafe { name_arg(name) }?;
        // SAFETY: null or a readable struct (caller's contract); its size is checked
        // before any field is used.
        let opts = match unsafe { opts.as_ref() } {
            None => None,
            Some(o) if o.size < std::mem::size_of::<FshmOptions>() => return Err(libc::EINVAL),
            Some(o) => Some(*o),
        };
        let owner = fshm_flags & FSHM_OWNER != 0;
        let guest = fshm_flags & FSHM_GUEST != 0;
        if fshm_flags & !KNOWN_FLAGS != 0 || owner == guest {
            return Err(libc::EINVAL);
        }
        let mut o = fshm::OpenOptions::new();
        o.append(fshm_flags & FSHM_APPEND != 0);
        if let Some(opts) = opts {
            if !owner && (opts.max_size != 0 || opts.ring_capacity != 0) {
                return Err(libc::EINVAL);
            }
            if opts.max_size != 0 {
                o.max_size(opts.max_size);
            }
            if opts.ring_capacity != 0 {
                let policy = match opts.ring_policy {
                    FSHM_RING_LOSSY => fshm::RingPolicy::Lossy,
                    FSHM_RING_LOSSLESS => fshm::RingPolicy::Lossless,
                    _ => return Err(libc::EINVAL),
                };
                o.ring(opts.ring_capacity, policy);
            }
        }
        let stream = if owner {
            if fshm_flags & FSHM_RDONLY != 0 {
                return Err(libc::EINVAL);
            }
            o.mode(mode)
                .persist(fshm_flags & FSHM_PERSIST != 0)
                .reclaim(fshm_flags & FSHM_RECLAIM != 0)
                .create(name)
        } else {
            // shmfile ignored FSHM_PERSIST for guests; so do we.
            if fshm_flags & FSHM_RECLAIM != 0 {
                return Err(libc::EINVAL);
            }
            o.read_only(fshm_flags & FSHM_RDONLY != 0).open(name)
        }
        .map_err(|e| fshm::errno_of(&e))?;
        file::make_file(stream, fshm_flags & FSHM_BLOCK != 0)
    })
}

/// `fshm_open(name, mode, FSHM_OWNER)`.
///
/// # Safety
/// As [`fshm_open`].
#[no_mangle]
pub unsafe extern "C" fn fshm_create(name: *const c_char, mode: libc::mode_t) -> *mut libc::FILE {
    // SAFETY: forwarded caller contract.
    unsafe { fshm_open(name, mode, FSHM_OWNER) }
}

/// `fshm_open(name, 0, FSHM_GUEST)`.
///
/// # Safety
/// As [`fshm_open`].
#[no_mangle]
pub unsafe extern "C" fn fshm_guest_open(name: *const c_char) -> *mut libc::FILE {
    // SAFETY: forwarded caller contract.
    unsafe { fshm_open(name, 0, FSHM_GUEST) }
}

/// Sets the stream's mode bits. Returns 0, or -1 with `errno`.
///
/// # Safety
/// `f` is null or a `FILE*` (fshm's or not) that is open.
#[no_mangle]
pub unsafe extern "C" fn fshm_chmod(f: *mut libc::FILE, mode: libc::mode_t) -> c_int {
    guard(-1, || {
        file::with_stream(f, |s| {
            s.set_permissions(mode).map_err(|e| fshm::errno_of(&e))
        })?;
        Ok(0)
    })
}

/// Sets the stream's group. Returns 0, or -1 with `errno`.
///
/// # Safety
/// As [`fshm_chmod`].
#[no_mangle]
pub unsafe extern "C" fn fshm_chgrp(f: *mut libc::FILE, gid: libc::gid_t) -> c_int {
    guard(-1, || {
        file::with_stream(f, |s| s.set_group(gid).map_err(|e| fshm::errno_of(&e)))?;
        Ok(0)
    })
}

/// Removes the name `name`. Returns 0, or -1 with `errno`.
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn fshm_force_destroy(name: *const c_char) -> c_int {
    guard(-1, || {
        // SAFETY: forwarded caller contract.
        let name = unsafe { name_arg(name) }?;
        fshm::force_destroy(name).map_err(|e| fshm::errno_of(&e))?;
        Ok(0)
    })
}

/// Waits until `f` has data to read, with a timeout in milliseconds (negative: none).
/// Returns 1 when data is there, 0 at end-of-stream (the owner closed or died), -1 with
/// `errno` (`ETIMEDOUT` when the time ran out).
///
/// # Safety
/// As [`fshm_chmod`].
#[no_mangle]
pub unsafe extern "C" fn fshm_wait(f: *mut libc::FILE, timeout_ms: c_long) -> c_int {
    guard(-1, || file::wait(f, timeout_ms))
}

/// Takes in bytes written with `write(2)` on `fileno(f)`: they join the stream's length
/// now (otherwise at the handle's next stdio call that reaches fshm). Returns 0, or -1.
///
/// # Safety
/// As [`fshm_chmod`].
#[no_mangle]
pub unsafe extern "C" fn fshm_sync(f: *mut libc::FILE) -> c_int {
    guard(-1, || {
        file::with_stream(f, |s| {
            s.absorb_fd_offset().map_err(|e| fshm::errno_of(&e))?;
            s.sync_fd_offset().map_err(|e| fshm::errno_of(&e))
        })?;
        Ok(0)
    })
}

/// The state of the owner of `f`'s stream: 1 alive, 2 closed, 3 dead; -1 with `errno`
/// (`EIO` when the kernel did not answer the liveness probe).
///
/// # Safety
/// As [`fshm_chmod`].
#[no_mangle]
pub unsafe extern "C" fn fshm_owner_state(f: *mut libc::FILE) -> c_int {
    guard(-1, || {
        file::with_stream(f, |s| {
            Ok(match s.owner_state() {
                fshm::OwnerState::Alive => 1,
                fshm::OwnerState::Closed => 2,
                fshm::OwnerState::Dead => 3,
                // The kernel did not answer the liveness probe.
                _ => return Err(libc::EIO),
            })
        })
    })
}

/// Stores in `*lost` the bytes `f` lost to ring overruns so far. 0, or -1 with `errno`.
///
/// # Safety
/// As [`fshm_chmod`]; `lost` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn fshm_lost_bytes(f: *mut libc::FILE, lost: *mut u64) -> c_int {
    guard(-1, || {
        if lost.is_null() {
            return Err(libc::EINVAL);
        }
        let n = file::with_stream(f, |s| Ok(s.lost_bytes()))?;
        // SAFETY: non-null and writable (caller's contract).
        unsafe { *lost = n };
        Ok(0)
    })
}

/// Stores the library version; any pointer may be null.
///
/// # Safety
/// Each pointer is null or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn shmfile_get_version(
    major: *mut c_uchar,
    minor: *mut c_uchar,
    patchlevel: *mut c_uchar,
    extra: *mut *const c_char,
) {
    guard((), || {
        // SAFETY: each pointer is null or writable (caller's contract).
        unsafe {
            if let Some(p) = major.as_mut() {
                *p = VERSION.0;
            }
            if let Some(p) = minor.as_mut() {
                *p = VERSION.1;
            }
            if let Some(p) = patchlevel.as_mut() {
                *p = VERSION.2;
            }
            if let Some(p) = extra.as_mut() {
                *p = VERSION_EXTRA.as_ptr();
            }
        }
        Ok(())
    })
}

/// Prints the product and version to standard output (as shmfile 1.1.0 did), through
/// C stdio so that it keeps its place among the program's own `printf` output.
#[no_mangle]
pub extern "C" fn _fshm_printCopyrightVersion() {
    guard((), || {
        let (a, b, c) = VERSION;
        let line = format!(
            "shmfile {a}.{b}.{c} (fshm {}): named byte streams in POSIX shared memory\n",
            env!("CARGO_PKG_VERSION")
        );
        let line = std::ffi::CString::new(line).map_err(|_| libc::EINVAL)?;
        // SAFETY: a "%s" format with one NUL-terminated string argument.
        unsafe { libc::printf(c"%s".as_ptr(), line.as_ptr()) };
        Ok(())
    })
}

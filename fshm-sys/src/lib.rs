//! Raw bindings used by fshm-ffi: the stdio cookie-stream items that `libc` lacks,
//! glibc's `FILE` layout, and one import path (`fshm_sys::libc`) for the POSIX shm /
//! mman / fcntl calls.
//!
//! fshm hands C callers a `FILE *` made by [`fopencookie`], whose `fileno()` must be
//! the shared-memory fd. The `libc` crate has neither `fopencookie` nor
//! `cookie_io_functions_t`, and its `FILE` is opaque, so this crate provides:
//!
//! * bindgen output for `fopencookie`, [`cookie_io_functions_t`] and its four
//!   callback types, taking this crate's [`FILE`] (the other stdio functions are
//!   `libc`'s: see [`as_libc_file`]);
//! * on glibc only: the real `struct _IO_FILE` ([`FILE`] has its fields), and
//!   [`set_fileno`], which writes `_fileno` through the bindgen struct field, so its
//!   offset comes from the C headers, not a hard-coded number;
//! * [`as_libc_file`] / [`from_libc_file`] to move between this crate's [`FILE`]
//!   and [`libc::FILE`] (both name the same C object);
//! * `pub use libc`, so dependants import the POSIX calls from one place.
//!
//! # Targets and where the bindings come from
//!
//! | target | committed bindings | `FILE` |
//! | --- | --- | --- |
//! | `x86_64-unknown-linux-gnu` | `src/bindings/x86_64_linux_gnu.rs` | glibc's `struct _IO_FILE`, with fields |
//! | `aarch64-unknown-linux-gnu` | `src/bindings/aarch64_linux_gnu.rs` | glibc's `struct _IO_FILE`, with fields |
//! | `x86_64-unknown-linux-musl` | `src/bindings/x86_64_linux_musl.rs` | opaque (musl has no public `FILE` layout) |
//!
//! Each file is bindgen's output for that target's own C headers (see
//! `ci/regen-bindings.sh`); no libclang is needed to build. With the `bindgen` cargo
//! feature, `build.rs` regenerates them from `wrapper.h` into `OUT_DIR` instead (needs
//! libclang). Any other target without that feature fails with a `compile_error!`.
//! `tests/layout.rs` checks every layout this crate relies on against a C probe
//! compiled with the target's C compiler.
//!
//! musl spells the cookie callbacks' types with `off_t` and `ssize_t` (and `off64_t`
//! only as a macro); so that dependants compile unchanged on every target, this crate
//! also names them [`off64_t`], [`__off64_t`] and [`__ssize_t`] there, as glibc does.
#![deny(unsafe_op_in_unsafe_fn)]

pub use libc;

#[cfg(target_env = "gnu")]
use core::ffi::c_int;

/// The attributes every bindings module gets: the names are C's.
macro_rules! bindings_module {
    ($($path:tt)+) => {
        #[allow(
            non_camel_case_types,
            non_upper_case_globals,
            non_snake_case,
            dead_code,
            missing_docs,
            clippy::undocumented_unsafe_blocks
        )]
        mod bindings {
            include!($($path)+);
        }
    };
}

#[cfg(feature = "bindgen")]
bindings_module!(concat!(env!("OUT_DIR"), "/bindings.rs"));

#[cfg(all(
    not(feature = "bindgen"),
    target_os = "linux",
    target_env = "gnu",
    target_arch = "x86_64",
    target_pointer_width = "64"
))]
bindings_module!("bindings/x86_64_linux_gnu.rs");

#[cfg(all(
    not(feature = "bindgen"),
    target_os = "linux",
    target_env = "gnu",
    target_arch = "aarch64",
    target_pointer_width = "64"
))]
bindings_module!("bindings/aarch64_linux_gnu.rs");

#[cfg(all(
    not(feature = "bindgen"),
    target_os = "linux",
    target_env = "musl",
    target_arch = "x86_64",
    target_pointer_width = "64"
))]
bindings_module!("bindings/x86_64_linux_musl.rs");

#[cfg(not(any(
    feature = "bindgen",
    all(
        target_os = "linux",
        target_pointer_width = "64",
        any(
            all(
                target_env = "gnu",
                any(target_arch = "x86_64", target_arch = "aarch64")
            ),
            all(target_env = "musl", target_arch = "x86_64")
        )
    )
)))]
compile_error!(
    "fshm-sys ships pre-generated bindings for x86_64-unknown-linux-gnu, \
     aarch64-unknown-linux-gnu and x86_64-unknown-linux-musl only; for this target \
     regenerate with --features bindgen (needs libclang) or ci/regen-bindings.sh (and \
     commit a bindings file for it)"
);

// Exported: what fshm-ffi uses to make its `FILE *` (the cookie functions and their
// types, `FILE`) and what tests/layout.rs checks. The rest of bindgen's output (other
// stdio functions, glibc's internal `_IO_*` types) stays private: `libc` has them, or
// nobody needs them.
pub use bindings::{
    cookie_close_function_t, cookie_io_functions_t, cookie_read_function_t, cookie_seek_function_t,
    cookie_write_function_t, fopencookie, FILE,
};

#[cfg(target_env = "gnu")]
use bindings::{flockfile, funlockfile};

#[cfg(target_env = "gnu")]
pub use bindings::{__off64_t, __ssize_t, off64_t, _IO_FILE};

#[cfg(target_env = "musl")]
pub use bindings::off_t;

/// musl's `off_t`, which is 64 bits wide and which musl's `off64_t` macro names: the
/// type the cookie seek callback's position has.
#[cfg(target_env = "musl")]
#[allow(non_camel_case_types)]
pub type off64_t = off_t;

/// The glibc name of [`off64_t`], which glibc's callback types use; the same type.
#[cfg(target_env = "musl")]
#[allow(non_camel_case_types)]
pub type __off64_t = off_t;

/// The signed size the cookie read and write callbacks return (`ssize_t`), under the
/// name glibc's callback types use.
#[cfg(target_env = "musl")]
#[allow(non_camel_case_types)]
pub type __ssize_t = isize;

/// Views a stream from these bindings as a [`libc::FILE`] pointer.
///
/// Both types name the same C `FILE` object; only the Rust type differs
/// (`libc::FILE` is opaque, this crate's [`FILE`] has the real fields). This is a
/// plain pointer cast and is safe; using the result is as unsafe as ever.
#[inline]
pub const fn as_libc_file(f: *mut FILE) -> *mut libc::FILE {
    f.cast()
}

/// Views a [`libc::FILE`] pointer as this crate's [`FILE`], whose fields are visible.
///
/// A plain pointer cast, the inverse of [`as_libc_file`]. The pointee must really be
/// a glibc stream for its fields to mean anything.
#[inline]
pub const fn from_libc_file(f: *mut libc::FILE) -> *mut FILE {
    f.cast()
}

/// Sets the file descriptor that glibc stores in the stream (`_fileno`), so that
/// `fileno(f)` returns `fd` afterwards. glibc only.
///
/// Intended for streams made by [`fopencookie`]: glibc does all their I/O through
/// the cookie callbacks (`read`, `write`, `seek`, `close`) and never reads, writes or
/// closes `_fileno` itself; `fopencookie` leaves it at a negative marker (`-2` in
/// glibc), which is why `fileno()` on a fresh cookie stream fails with `EBADF`. After
/// this call `fileno()` reports `fd`, and `fclose` still runs the cookie `close`
/// callback exactly once. The stream does not own `fd`: glibc will not close it, so
/// the cookie's `close` callback (or its owner) must.
///
/// The field is written through the bindgen struct, so its offset comes from the
/// glibc headers; `tests/layout.rs` checks it against a C probe. The write happens
/// with the stream locked (`flockfile`), which is recursive, so the caller may
/// already hold the lock.
///
/// # Example
///
/// ```
/// use core::ffi::{c_char, c_void};
/// use fshm_sys::{__ssize_t, as_libc_file, cookie_io_functions_t, fopencookie, libc, set_fileno};
///
/// unsafe extern "C" fn discard(_: *mut c_void, _: *const c_char, n: usize) -> __ssize_t {
///     n as __ssize_t
/// }
/// let io = cookie_io_functions_t { read: None, write: Some(discard), seek: None, close: None };
/// // SAFETY: `discard` never looks at the (null) cookie; "w" is a C string.
/// let f = unsafe { fopencookie(core::ptr::null_mut(), c"w".as_ptr(), io) };
/// assert!(!f.is_null());
///
/// let fd = 3; // in fshm: the shared-memory fd that the cookie's callbacks use
/// // SAFETY: `f` is an open cookie stream that only this thread knows; fd != -1.
/// unsafe { set_fileno(f, fd) };
/// // SAFETY: `f` is open.
/// assert_eq!(unsafe { libc::fileno(as_libc_file(f)) }, fd);
/// // SAFETY: `f` is open and not used afterwards; glibc does not close `fd`.
/// assert_eq!(unsafe { libc::fclose(as_libc_file(f)) }, 0);
/// ```
///
/// # Safety
///
/// * `f` must be non-null and point to an open glibc stream (not yet passed to
///   `fclose`), and stay open for the duration of the call.
/// * `fd` must not be `-1`: glibc takes `_fileno == -1` to mean "closed", so
///   `fclose` would then skip the final flush and the cookie `close` callback
///   (losing buffered data and leaking the cookie). Use `fd >= 0`, or `-2` to
///   restore a cookie stream's original marker.
/// * On a stream that is *not* a cookie stream (`fopen`, `fdopen`, ...) glibc does
///   its I/O on `_fileno` and `fclose` closes it: changing it there redirects that
///   I/O to `fd` and hands `fd` to the stream. Only do that if that is what you want.
/// * Another thread reading `_fileno` without the stream lock (plain `fileno()` does
///   not lock) at the same time is a data race; set the fd before the stream is
///   shared.
#[cfg(target_env = "gnu")]
pub unsafe fn set_fileno(f: *mut FILE, fd: c_int) {
    debug_assert!(!f.is_null(), "set_fileno: null FILE");
    debug_assert!(fd != -1, "set_fileno: -1 would mark the stream closed");
    // SAFETY: the caller guarantees `f` is an open glibc stream; flockfile accepts
    // any such stream and is recursive, so it is fine if this thread already holds
    // the lock.
    unsafe { flockfile(f) };
    // SAFETY: `f` points to a live `struct _IO_FILE` (caller's contract). Its layout
    // is the bindgen one, generated from the glibc headers and checked against them
    // by tests/layout.rs, so `_fileno` is the real field. `addr_of_mut!` makes no
    // reference to the whole struct, and we hold the stream lock, so no other stdio
    // call on `f` is using the field meanwhile.
    unsafe { core::ptr::addr_of_mut!((*f)._fileno).write(fd) };
    // SAFETY: releases the lock taken above on the same, still open, stream.
    unsafe { funlockfile(f) };
}

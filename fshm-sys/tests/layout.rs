//! Checks every C layout fshm-sys relies on against the target's real libc headers.
//!
//! `probe/layout.c` is compiled by build.rs with the system C compiler (including the
//! same `wrapper.h` as bindgen) and linked into fshm-sys; its functions report
//! `sizeof` / `alignof` / `offsetof` as the C compiler sees them. Each test compares
//! those with the Rust types from the bindings, so a stale or wrong committed
//! bindings file fails here rather than corrupting memory at run time.

use core::ffi::c_int;
use core::mem::{align_of, offset_of, size_of};

#[cfg(target_env = "gnu")]
use fshm_sys::_IO_FILE;
use fshm_sys::{
    __off64_t, __ssize_t, cookie_close_function_t, cookie_io_functions_t, cookie_read_function_t,
    cookie_seek_function_t, cookie_write_function_t, off64_t, FILE,
};

extern "C" {
    fn fshm_probe_sizeof_cookie_io_functions() -> usize;
    fn fshm_probe_alignof_cookie_io_functions() -> usize;
    fn fshm_probe_offsetof_cookie_read() -> usize;
    fn fshm_probe_offsetof_cookie_write() -> usize;
    fn fshm_probe_offsetof_cookie_seek() -> usize;
    fn fshm_probe_offsetof_cookie_close() -> usize;
    fn fshm_probe_sizeof_cookie_read_ptr() -> usize;

    fn fshm_probe_sizeof_off64_t() -> usize;
    fn fshm_probe_alignof_off64_t() -> usize;
    fn fshm_probe_sizeof_ssize_t() -> usize;
    fn fshm_probe_sizeof_size_t() -> usize;
    fn fshm_probe_sizeof_int() -> usize;
    fn fshm_probe_off64_t_is_signed() -> c_int;
    fn fshm_probe_ssize_t_is_signed() -> c_int;

    fn fshm_probe_seek_set() -> c_int;
    fn fshm_probe_seek_cur() -> c_int;
    fn fshm_probe_seek_end() -> c_int;
}

#[cfg(target_env = "gnu")]
extern "C" {
    fn fshm_probe_sizeof_FILE() -> usize;
    fn fshm_probe_alignof_FILE() -> usize;
    fn fshm_probe_offsetof_flags() -> usize;
    fn fshm_probe_offsetof_fileno() -> usize;
    fn fshm_probe_sizeof_fileno() -> usize;
}

/// Calls a probe function. They take no arguments, read no memory and only return a
/// constant, so calling them is always sound.
macro_rules! probe {
    ($f:ident) => {
        // SAFETY: the probe functions are plain C functions of no arguments returning
        // a compile-time constant; the declared signature matches probe/layout.c.
        unsafe { $f() }
    };
}

/// Size of the field a raw pointer points to, without reading it.
#[cfg(target_env = "gnu")]
fn size_of_pointee<T>(_: *const T) -> usize {
    size_of::<T>()
}

#[test]
fn cookie_io_functions_t_matches_c() {
    assert_eq!(
        size_of::<cookie_io_functions_t>(),
        probe!(fshm_probe_sizeof_cookie_io_functions),
        "sizeof(cookie_io_functions_t)"
    );
    assert_eq!(
        align_of::<cookie_io_functions_t>(),
        probe!(fshm_probe_alignof_cookie_io_functions),
        "alignof(cookie_io_functions_t)"
    );
    assert_eq!(
        offset_of!(cookie_io_functions_t, read),
        probe!(fshm_probe_offsetof_cookie_read),
        "offsetof(cookie_io_functions_t, read)"
    );
    assert_eq!(
        offset_of!(cookie_io_functions_t, write),
        probe!(fshm_probe_offsetof_cookie_write),
        "offsetof(cookie_io_functions_t, write)"
    );
    assert_eq!(
        offset_of!(cookie_io_functions_t, seek),
        probe!(fshm_probe_offsetof_cookie_seek),
        "offsetof(cookie_io_functions_t, seek)"
    );
    assert_eq!(
        offset_of!(cookie_io_functions_t, close),
        probe!(fshm_probe_offsetof_cookie_close),
        "offsetof(cookie_io_functions_t, close)"
    );
}

#[test]
fn callback_pointers_are_nullable_c_function_pointers() {
    // Each field is `Option<unsafe extern "C" fn ..>`: `None` must be the C null
    // pointer and the whole thing exactly one C function pointer wide.
    let c_ptr = probe!(fshm_probe_sizeof_cookie_read_ptr);
    assert_eq!(size_of::<cookie_read_function_t>(), c_ptr);
    assert_eq!(size_of::<cookie_write_function_t>(), c_ptr);
    assert_eq!(size_of::<cookie_seek_function_t>(), c_ptr);
    assert_eq!(size_of::<cookie_close_function_t>(), c_ptr);
    let none: cookie_read_function_t = None;
    // SAFETY: `Option<extern fn>` has the same size as `usize` (asserted above) and
    // `None` is guaranteed to be represented as the null pointer.
    let bits = unsafe { core::mem::transmute::<cookie_read_function_t, usize>(none) };
    assert_eq!(bits, 0);
}

#[cfg(target_env = "gnu")]
#[test]
fn io_file_matches_c() {
    assert_eq!(
        size_of::<FILE>(),
        probe!(fshm_probe_sizeof_FILE),
        "sizeof(FILE)"
    );
    assert_eq!(
        align_of::<FILE>(),
        probe!(fshm_probe_alignof_FILE),
        "alignof(FILE)"
    );
    assert_eq!(size_of::<FILE>(), size_of::<_IO_FILE>(), "FILE is _IO_FILE");
    assert_eq!(
        offset_of!(_IO_FILE, _flags),
        probe!(fshm_probe_offsetof_flags),
        "offsetof(struct _IO_FILE, _flags)"
    );
    // The one field fshm writes: set_fileno / raw_fileno.
    assert_eq!(
        offset_of!(_IO_FILE, _fileno),
        probe!(fshm_probe_offsetof_fileno),
        "offsetof(struct _IO_FILE, _fileno)"
    );
    let slot = core::mem::MaybeUninit::<_IO_FILE>::uninit();
    let base = slot.as_ptr();
    // SAFETY: only the field's address is computed; nothing is read.
    let fileno_field = unsafe { core::ptr::addr_of!((*base)._fileno) };
    assert_eq!(
        size_of_pointee(fileno_field),
        probe!(fshm_probe_sizeof_fileno),
        "sizeof(_fileno)"
    );
}

// The Rust sides of the signedness checks below are compile-time facts.
const _: () = assert!(off64_t::MIN < 0, "off64_t is signed in Rust");
const _: () = assert!(__ssize_t::MIN < 0, "ssize_t is signed in Rust");

#[test]
fn scalar_types_in_callback_signatures_match_c() {
    // The seek callback takes `off64_t *`: its pointee must be exactly C's off64_t.
    assert_eq!(
        size_of::<off64_t>(),
        probe!(fshm_probe_sizeof_off64_t),
        "sizeof(off64_t)"
    );
    assert_eq!(
        align_of::<off64_t>(),
        probe!(fshm_probe_alignof_off64_t),
        "alignof(off64_t)"
    );
    assert_eq!(size_of::<__off64_t>(), size_of::<off64_t>());
    assert_eq!(
        probe!(fshm_probe_off64_t_is_signed),
        1,
        "off64_t is signed in C"
    );

    // read/write callbacks return ssize_t and take size_t (bindgen maps it to usize).
    assert_eq!(
        size_of::<__ssize_t>(),
        probe!(fshm_probe_sizeof_ssize_t),
        "sizeof(ssize_t)"
    );
    assert_eq!(
        probe!(fshm_probe_ssize_t_is_signed),
        1,
        "ssize_t is signed in C"
    );
    assert_eq!(
        size_of::<usize>(),
        probe!(fshm_probe_sizeof_size_t),
        "sizeof(size_t)"
    );
    // The seek callback's `whence` and its result.
    assert_eq!(
        size_of::<c_int>(),
        probe!(fshm_probe_sizeof_int),
        "sizeof(int)"
    );

    // `off64_t` is the very type `libc` uses, so seek positions move between the two
    // crates without casts (this line only compiles if the types are equal).
    // `__ssize_t` is `c_long` while `libc::ssize_t` is `isize`: same size, different
    // Rust types, so only the size is checked.
    #[cfg(target_env = "gnu")]
    let same_off64: fn(*mut off64_t) -> *mut fshm_sys::libc::off64_t = |p| p;
    #[cfg(not(target_env = "gnu"))]
    let same_off64: fn(*mut off64_t) -> *mut fshm_sys::libc::off_t = |p| p;
    let _ = same_off64;
    assert_eq!(size_of::<__ssize_t>(), size_of::<fshm_sys::libc::ssize_t>());
}

#[test]
fn seek_whence_values_match_c() {
    assert_eq!(fshm_sys::libc::SEEK_SET, probe!(fshm_probe_seek_set));
    assert_eq!(fshm_sys::libc::SEEK_CUR, probe!(fshm_probe_seek_cur));
    assert_eq!(fshm_sys::libc::SEEK_END, probe!(fshm_probe_seek_end));
}

#[test]
fn libc_file_pointer_round_trips() {
    let p = core::ptr::NonNull::<FILE>::dangling().as_ptr();
    assert_eq!(fshm_sys::from_libc_file(fshm_sys::as_libc_file(p)), p);
}

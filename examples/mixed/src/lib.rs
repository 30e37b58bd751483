//! A mixed Rust/C crate: `build.rs` compiles the C files in `c/` with `cc` against
//! `shmfile.h` (found through `DEP_SHMFILE_INCLUDE`, published by `fshm-ffi`), and the
//! C code shares fshm streams with the Rust code of the same binary, in one process or
//! across processes.
//!
//! - [`c_produce`]: C appends lines to a stream through a `FILE*`;
//! - [`c_consume`]: C follows a stream until its owner closes it, reading through the
//!   stream's fd;
//! - [`c_threads`]: C threads write to one stream, through one shared `FILE*` or a
//!   `FILE*` each (the cases of `shmfile.h`'s THREAD SAFETY paragraph).
//!
//! The binary (`src/main.rs`) runs either side in a process of its own, so that the
//! tests can pair them across processes.

// The C files call libshmfile's functions (fshm_open, fshm_wait, ...), which the crate
// `fshm-ffi` defines; its lib is named `shmfile`. Nothing in Rust names that crate, and
// rustc links only the crates a crate uses: this line makes it link it.
extern crate shmfile;

use std::ffi::{c_char, c_int, c_long, c_uint, CString};
use std::io;
use std::time::Duration;

extern "C" {
    fn mixed_c_produce(name: *const c_char, tag: *const c_char, count: c_uint) -> c_int;
    fn mixed_c_threads(name: *const c_char, shared: c_int, threads: c_uint, lines: c_uint)
        -> c_int;
    fn mixed_c_consume(
        name: *const c_char,
        out: *mut c_char,
        cap: usize,
        timeout_ms: c_long,
    ) -> c_long;
}

fn c_string(what: &str, s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {s:?} holds a NUL byte"),
        )
    })
}

fn c_error(what: &str, name: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what} on stream {name}: {e}"))
}

/// The C producer: opens the existing stream `name` as an appending guest `FILE*` and
/// writes `count` lines `"<tag> <i>\n"`, each whole.
pub fn c_produce(name: &str, tag: &str, count: u32) -> io::Result<()> {
    let c_name = c_string("stream name", name)?;
    let c_tag = c_string("tag", tag)?;
    // SAFETY: both pointers are NUL-terminated strings that outlive the call; the C
    // function keeps neither.
    let r = unsafe { mixed_c_produce(c_name.as_ptr(), c_tag.as_ptr(), count) };
    if r == 0 {
        Ok(())
    } else {
        Err(c_error("C producer", name))
    }
}

/// The C consumer: opens the existing stream `name` read-only and returns its bytes, read
/// through the fd, once its owner has closed it (or died). At most `cap` bytes; waits at
/// most `timeout` for each new byte.
pub fn c_consume(name: &str, cap: usize, timeout: Duration) -> io::Result<Vec<u8>> {
    let c_name = c_string("stream name", name)?;
    let mut out = vec![0u8; cap];
    let timeout_ms = c_long::try_from(timeout.as_millis()).unwrap_or(c_long::MAX);
    // SAFETY: `c_name` is NUL-terminated and outlives the call; `out` has `cap` writable
    // bytes, and the C function writes only inside them and keeps no pointer.
    let n = unsafe { mixed_c_consume(c_name.as_ptr(), out.as_mut_ptr().cast(), cap, timeout_ms) };
    let n = usize::try_from(n).map_err(|_| c_error("C consumer", name))?;
    out.truncate(n);
    Ok(out)
}

/// C threads in this process write to the existing stream `name`: `threads` (at most 16)
/// threads each write `lines` lines `"t<k> <i>\n"`, all through one shared `FILE*` opened
/// with `FSHM_APPEND` (`shared`; one more thread meanwhile calls `fshm_owner_state`,
/// `fshm_lost_bytes`, `fshm_chmod` and, under `flockfile`, `fshm_sync` on it), or each
/// through a `FILE*` of its own.
pub fn c_threads(name: &str, shared: bool, threads: u32, lines: u32) -> io::Result<()> {
    let c_name = c_string("stream name", name)?;
    // SAFETY: `c_name` is NUL-terminated and outlives the call, which joins every thread
    // it starts before it returns.
    let r = unsafe { mixed_c_threads(c_name.as_ptr(), c_int::from(shared), threads, lines) };
    if r == 0 {
        Ok(())
    } else {
        Err(c_error("C threads", name))
    }
}

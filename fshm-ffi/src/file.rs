//! The `FILE*` over a stream: a glibc `fopencookie` stream whose callbacks work on the
//! mapping through [`fshm::Stream`], whose `fileno()` is the stream's real shm fd, and
//! whose fd offset is kept at `DATA_OFFSET + position` (see `fshm`'s `fdpos` rule).
//! A process-wide table records the `FILE*`s made here, so a foreign one is refused.

use crate::guard;
use fshm::{Stream, WaitStatus};
use fshm_sys::libc;
use fshm_sys::{__off64_t, __ssize_t, cookie_io_functions_t};
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_long, c_void};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::Duration;

/// What a `FILE*` made by fshm carries as its cookie.
struct Cookie {
    stream: Stream,
    /// Reads wait for data like a pipe's (`FSHM_BLOCK`).
    block: bool,
    /// The `FILE`'s stdio buffer (glibc would give a cookie stream only 8 KiB, and
    /// every refill or flush costs two `lseek`s for fd coherence). glibc stops using
    /// it before it calls `cookie_close`, which frees it.
    _buffer: Box<[std::mem::MaybeUninit<u8>]>,
}

/// Size of the stdio buffer of a `FILE*` made by fshm.
const FILE_BUFFER: usize = 64 * 1024;

/// `FILE*` address → cookie address, for every open `FILE*` this library made.
static FILES: Lazy<Mutex<HashMap<usize, usize>>> = Lazy::new(|| Mutex::new(HashMap::new()));

fn files() -> std::sync::MutexGuard<'static, HashMap<usize, usize>> {
    FILES.lock().unwrap_or_else(|e| e.into_inner())
}

fn errno(e: &std::io::Error) -> c_int {
    fshm::errno_of(e)
}

/// Wraps `stream` in a new `FILE*`.
pub(crate) fn make_file(stream: Stream, block: bool) -> Result<*mut libc::FILE, c_int> {
    stream.sync_fd_offset().map_err(|e| errno(&e))?;
    let mode: &std::ffi::CStr = match (stream.is_writable(), stream.is_append()) {
        (false, _) => c"r",
        (true, false) => c"r+",
        (true, true) => c"a+",
    };
    let fd = stream.as_raw_fd();
    // Uninitialised: glibc writes every byte of it before it reads that byte.
    let mut buffer = Box::new_uninit_slice(FILE_BUFFER);
    let buf_ptr = buffer.as_mut_ptr();
    let cookie = Box::into_raw(Box::new(Cookie {
        stream,
        block,
        _buffer: buffer,
    }));
    let io = cookie_io_functions_t {
        read: Some(cookie_read),
        write: Some(cookie_write),
        seek: Some(cookie_seek),
        close: Some(cookie_close),
    };
    // SAFETY: `cookie` is a live heap object that the callbacks own until `close`;
    // `mode` is a C string.
    let f = unsafe { fshm_sys::fopencookie(cookie.cast(), mode.as_ptr(), io) };
    if f.is_null() {
        // SAFETY: fopencookie failed, so nothing else holds `cookie`.
        drop(unsafe { Box::from_raw(cookie) });
        return Err(libc::ENOMEM);
    }
    // SAFETY: `f` is a fresh cookie stream that no other thread knows yet; `fd >= 0`.
    unsafe { fshm_sys::set_fileno(f, fd) };
    // SAFETY: `f` is fresh (no I/O yet); the buffer lives in the cookie until
    // `cookie_close`, after which glibc no longer touches it. On failure glibc keeps
    // its own buffer, which is only slower.
    unsafe { fshm_sys::setvbuf(f, buf_ptr.cast(), libc::_IOFBF, FILE_BUFFER) };
    files().insert(f as usize, cookie as usize);
    Ok(fshm_sys::as_libc_file(f))
}

/// Runs `op` on the stream behind `f`, or fails with `EINVAL` (null) / `EBADF` (not
/// made by fshm, or already closed).
pub(crate) fn with_stream<T>(
    f: *mut libc::FILE,
    op: impl FnOnce(&Stream) -> Result<T, c_int>,
) -> Result<T, c_int> {
    if f.is_null() {
        return Err(libc::EINVAL);
    }
    let cookie = *files().get(&(f as usize)).ok_or(libc::EBADF)?;
    // SAFETY: the table holds only cookies of open `FILE*`s; an entry is removed in
    // `cookie_close` before its cookie is freed. Using `f` concurrently with its
    // `fclose` is undefined in C already.
    let cookie = unsafe { &*(cookie as *const Cookie) };
    op(&cookie.stream)
}

/// Bytes already read into `f`'s stdio buffer and not yet consumed.
fn buffered_input(f: *mut libc::FILE) -> usize {
    let f = fshm_sys::from_libc_file(f);
    // SAFETY: `f` is an open glibc stream (checked in the table by the caller); the
    // read pointers are plain fields of its real layout.
    let (ptr, end) = unsafe { ((*f)._IO_read_ptr, (*f)._IO_read_end) };
    if ptr.is_null() || end.is_null() || end <= ptr {
        0
    } else {
        end as usize - ptr as usize
    }
}

pub(crate) fn wait(f: *mut libc::FILE, timeout_ms: c_long) -> Result<c_int, c_int> {
    with_stream(f, |s| {
        if buffered_input(f) > 0 {
            return Ok(1);
        }
        let pos = s.absorb_fd_offset().map_err(|e| errno(&e))?;
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        match s.wait_for(pos, timeout) {
            WaitStatus::Data => Ok(1),
            WaitStatus::Ended => Ok(0),
            WaitStatus::TimedOut => Err(libc::ETIMEDOUT),
        }
    })
}

/// # Safety
/// `cookie` is the live cookie of a `FILE*` made by [`make_file`].
unsafe fn cookie_ref<'a>(cookie: *mut c_void) -> &'a Cookie {
    // SAFETY: guaranteed by the caller (glibc passes back the cookie we gave it).
    unsafe { &*cookie.cast::<Cookie>() }
}

fn io<T>(r: std::io::Result<T>) -> Result<T, c_int> {
    r.map_err(|e| errno(&e))
}

/// Runs a stdio operation on the stream under fshm's fd-coherence rule: take in what
/// was done through the fd, then, success or failure, move the fd's offset to the
/// position. (After a failed read it must follow too: a ring overrun moves the position
/// to the oldest byte held, and the next call must not move it back —
/// c/tests/test_options.c.)
fn coherent<T>(s: &Stream, op: impl FnOnce(&Stream) -> Result<T, c_int>) -> Result<T, c_int> {
    io(s.absorb_fd_offset())?;
    let r = op(s);
    io(s.sync_fd_offset())?;
    r
}

unsafe extern "C" fn cookie_read(cookie: *mut c_void, buf: *mut c_char, size: usize) -> __ssize_t {
    // SAFETY: glibc passes back our cookie.
    let c = unsafe { cookie_ref(cookie) };
    guard(-1, || {
        // SAFETY: glibc gives a writable buffer of `size` bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
        let n = coherent(&c.stream, |s| {
            // FSHM_BLOCK: read like a pipe — wait (spinning briefly, then on the futex)
            // until data arrives or the owner closes or dies.
            io(if c.block {
                s.follow().read(buf)
            } else {
                (&*s).read(buf)
            })
        })?;
        Ok(n as __ssize_t)
    })
}

unsafe extern "C" fn cookie_write(
    cookie: *mut c_void,
    buf: *const c_char,
    size: usize,
) -> __ssize_t {
    // SAFETY: glibc passes back our cookie.
    let c = unsafe { cookie_ref(cookie) };
    guard(-1, || {
        // SAFETY: glibc gives a readable buffer of `size` bytes.
        let buf = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), size) };
        let n = coherent(&c.stream, |s| {
            // Write on until done or an error: glibc takes a short count as an error
            // but leaves errno alone, so the real error (EFBIG at the maximum size) must
            // be left in errno with the short count (c/tests/test_options.c).
            let mut n = io((&*s).write(buf))?;
            while n > 0 && n < size {
                match (&*s).write(&buf[n..]) {
                    Ok(0) => break,
                    Ok(more) => n += more,
                    Err(e) => {
                        crate::set_errno(errno(&e));
                        break;
                    }
                }
            }
            Ok(n)
        })?;
        Ok(n as __ssize_t)
    })
}

unsafe extern "C" fn cookie_seek(
    cookie: *mut c_void,
    offset: *mut __off64_t,
    whence: c_int,
) -> c_int {
    // SAFETY: glibc passes back our cookie.
    let c = unsafe { cookie_ref(cookie) };
    guard(-1, || {
        // SAFETY: glibc passes a valid in/out offset.
        let off = unsafe { *offset };
        let to = match whence {
            libc::SEEK_SET => SeekFrom::Start(u64::try_from(off).map_err(|_| libc::EINVAL)?),
            libc::SEEK_CUR => SeekFrom::Current(off),
            libc::SEEK_END => SeekFrom::End(off),
            _ => return Err(libc::EINVAL),
        };
        let pos = coherent(&c.stream, |s| io((&*s).seek(to)))?;
        // SAFETY: as above.
        unsafe { *offset = pos as __off64_t };
        Ok(0)
    })
}

unsafe extern "C" fn cookie_close(cookie: *mut c_void) -> c_int {
    guard(-1, || {
        let mut table = files();
        table.retain(|_, c| *c != cookie as usize);
        if table.is_empty() {
            // Give the table's memory back, so a program that closed every stream
            // holds nothing of ours (memory checkers report no leak at exit).
            *table = HashMap::new();
        }
        drop(table);
        // SAFETY: glibc calls close once; the cookie came from `Box::into_raw` and the
        // table no longer refers to it.
        let c = unsafe { Box::from_raw(cookie.cast::<Cookie>()) };
        // Bytes written through the fd join the length no later than fclose.
        let _ = c.stream.absorb_fd_offset();
        drop(c);
        Ok(0)
    })
}

//! Drives real cookie streams through the bindings: `fopencookie` with Rust callbacks,
//! stdio calls through `libc` on the same stream, and (glibc only) `set_fileno`.

use core::ffi::{c_char, c_int, c_void};
use core::ptr;

use fshm_sys::libc;
#[cfg(target_env = "gnu")]
use fshm_sys::set_fileno;
use fshm_sys::{__off64_t, __ssize_t, as_libc_file, cookie_io_functions_t, fopencookie, FILE};

/// Write-side cookie: collects what glibc flushes, counts close calls.
#[derive(Default)]
struct Sink {
    data: Vec<u8>,
    closes: usize,
}

unsafe extern "C" fn sink_write(cookie: *mut c_void, buf: *const c_char, len: usize) -> __ssize_t {
    if len == 0 {
        return 0;
    }
    // SAFETY: `cookie` is the `Box<Sink>` pointer the test gave fopencookie; it stays
    // alive until after fclose, glibc runs one callback of a stream at a time, and the
    // test only looks at the Sink between stdio calls.
    let sink = unsafe { &mut *cookie.cast::<Sink>() };
    // SAFETY: glibc passes `len` (> 0) readable bytes at `buf`.
    let bytes = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), len) };
    sink.data.extend_from_slice(bytes);
    len as __ssize_t
}

unsafe extern "C" fn sink_close(cookie: *mut c_void) -> c_int {
    // SAFETY: as in `sink_write`; glibc calls close once, inside fclose.
    let sink = unsafe { &mut *cookie.cast::<Sink>() };
    sink.closes += 1;
    0
}

fn sink_functions() -> cookie_io_functions_t {
    cookie_io_functions_t {
        read: None,
        write: Some(sink_write),
        seek: None,
        close: Some(sink_close),
    }
}

/// Opens a write-only cookie stream over a fresh `Sink`.
fn open_sink() -> (*mut FILE, *mut Sink) {
    let sink = Box::into_raw(Box::<Sink>::default());
    // SAFETY: the cookie outlives the stream (freed only after fclose by the caller),
    // the mode is a NUL-terminated C string, and the callbacks match the C typedefs.
    let f = unsafe { fopencookie(sink.cast(), c"w".as_ptr(), sink_functions()) };
    assert!(!f.is_null(), "fopencookie failed");
    (f, sink)
}

/// Bytes the sink has received so far. Only called between stdio calls.
fn sink_data(sink: *mut Sink) -> Vec<u8> {
    // SAFETY: `sink` is live and no callback runs concurrently (see `sink_write`).
    unsafe { (*sink).data.clone() }
}

fn sink_closes(sink: *mut Sink) -> usize {
    // SAFETY: as in `sink_data`.
    unsafe { (*sink).closes }
}

fn fwrite_all(f: *mut FILE, bytes: &[u8]) {
    // SAFETY: `f` is an open stream and `bytes` is readable for its length.
    let n = unsafe { libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), as_libc_file(f)) };
    assert_eq!(n, bytes.len(), "fwrite");
}

#[test]
fn fopencookie_write_flush_close_reach_the_vec() {
    let (f, sink) = open_sink();

    // Full buffering with a buffer larger than anything written: nothing may reach
    // the cookie before an explicit flush.
    // SAFETY: `f` is open and not yet used; a null buffer lets glibc allocate one.
    let rc = unsafe { libc::setvbuf(as_libc_file(f), ptr::null_mut(), libc::_IOFBF, 4096) };
    assert_eq!(rc, 0, "setvbuf");

    fwrite_all(f, b"hello ");
    assert!(sink_data(sink).is_empty(), "buffered until flushed");

    // SAFETY: `f` is open.
    assert_eq!(unsafe { libc::fflush(as_libc_file(f)) }, 0, "libc::fflush");
    assert_eq!(sink_data(sink), b"hello ");

    fwrite_all(f, b"world");
    // SAFETY: `f` is open.
    assert_eq!(unsafe { libc::fflush(as_libc_file(f)) }, 0, "libc::fflush");
    assert_eq!(sink_data(sink), b"hello world");

    fwrite_all(f, b"!");
    assert_eq!(sink_closes(sink), 0);
    // SAFETY: `f` is open and not used after this.
    assert_eq!(unsafe { libc::fclose(as_libc_file(f)) }, 0, "fclose");
    assert_eq!(sink_data(sink), b"hello world!", "fclose flushes");
    assert_eq!(sink_closes(sink), 1, "close callback runs once");

    // SAFETY: the stream is closed, so glibc holds no copy of the cookie any more.
    drop(unsafe { Box::from_raw(sink) });
}

/// The stream's `_fileno` field as stored (glibc's `-2` marker on a fresh cookie
/// stream), read through the bindgen `struct _IO_FILE` that `set_fileno` writes.
///
/// # Safety
/// `f` is an open glibc stream that no other thread changes meanwhile.
#[cfg(target_env = "gnu")]
unsafe fn raw_fileno(f: *mut FILE) -> c_int {
    // SAFETY: `f` points to a live `struct _IO_FILE` (caller's contract), whose layout
    // tests/layout.rs checks; `addr_of!` reads the one field without a reference.
    unsafe { core::ptr::addr_of!((*f)._fileno).read() }
}

#[cfg(target_env = "gnu")]
/// A file descriptor for a fresh, already unlinked POSIX shared-memory object.
fn shm_fd() -> c_int {
    let name = std::ffi::CString::new(format!("/fshm-sys-test-{}", std::process::id())).unwrap();
    // SAFETY: `name` is NUL-terminated and outlives both calls.
    let fd = unsafe {
        libc::shm_open(
            name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
            0o600,
        )
    };
    assert!(fd >= 0, "shm_open: {}", std::io::Error::last_os_error());
    // SAFETY: as above.
    assert_eq!(unsafe { libc::shm_unlink(name.as_ptr()) }, 0, "shm_unlink");
    fd
}

#[cfg(target_env = "gnu")]
#[test]
fn set_fileno_makes_fileno_report_the_fd() {
    let (f, sink) = open_sink();
    let lf = as_libc_file(f);

    // A fresh cookie stream has no fd: glibc stores -2, and fileno() fails.
    // SAFETY: `f` is open.
    assert_eq!(unsafe { raw_fileno(f) }, -2, "glibc's cookie-stream marker");
    // SAFETY: `f` is open.
    assert_eq!(unsafe { libc::fileno(lf) }, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EBADF)
    );

    let fd = shm_fd();
    // SAFETY: `f` is an open cookie stream used by this thread only; `fd` is >= 0.
    unsafe { set_fileno(f, fd) };
    // SAFETY: `f` is open.
    assert_eq!(unsafe { libc::fileno(lf) }, fd, "libc::fileno");
    // SAFETY: `f` is open.
    assert_eq!(unsafe { raw_fileno(f) }, fd);

    // I/O still goes through the cookie, not the fd, and fclose still runs the
    // close callback once and leaves the fd alone.
    fwrite_all(f, b"via cookie");
    // SAFETY: `f` is open and not used after this.
    assert_eq!(unsafe { libc::fclose(lf) }, 0, "fclose");
    assert_eq!(sink_data(sink), b"via cookie");
    assert_eq!(sink_closes(sink), 1);

    // SAFETY: `libc::stat` is plain old data, valid when zeroed.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `fd` is still ours; `st` is a valid out-parameter.
    let rc = unsafe { libc::fstat(fd, &mut st) };
    assert_eq!(rc, 0, "fd still open after fclose");
    assert_eq!(st.st_size, 0, "glibc wrote nothing to the fd itself");
    // SAFETY: we own `fd` and close it once.
    assert_eq!(unsafe { libc::close(fd) }, 0);

    // SAFETY: the stream is closed, so glibc holds no copy of the cookie any more.
    drop(unsafe { Box::from_raw(sink) });
}

/// Read-side cookie over fixed bytes, recording the seek calls it gets.
struct Source {
    data: &'static [u8],
    pos: usize,
    seeks: Vec<(i64, c_int)>,
}

unsafe extern "C" fn source_read(cookie: *mut c_void, buf: *mut c_char, len: usize) -> __ssize_t {
    // SAFETY: `cookie` is the test's live `Box<Source>`; one callback at a time.
    let src = unsafe { &mut *cookie.cast::<Source>() };
    let n = len.min(src.data.len() - src.pos);
    // SAFETY: glibc passes `len` writable bytes at `buf`; `n <= len`, and the source
    // range is in bounds. The regions cannot overlap (glibc's buffer vs. a static).
    unsafe { ptr::copy_nonoverlapping(src.data.as_ptr().add(src.pos), buf.cast::<u8>(), n) };
    src.pos += n;
    n as __ssize_t
}

unsafe extern "C" fn source_seek(cookie: *mut c_void, pos: *mut __off64_t, whence: c_int) -> c_int {
    // SAFETY: as in `source_read`.
    let src = unsafe { &mut *cookie.cast::<Source>() };
    // SAFETY: glibc passes a valid, writable `off64_t *`.
    let offset = unsafe { *pos };
    src.seeks.push((offset, whence));
    let base = match whence {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => src.pos as i64,
        libc::SEEK_END => src.data.len() as i64,
        _ => return -1,
    };
    let target = base + offset;
    if target < 0 || target > src.data.len() as i64 {
        return -1;
    }
    src.pos = target as usize;
    // SAFETY: as above; the callback reports the new position through `pos`.
    unsafe { *pos = target };
    0
}

#[test]
fn seek_callback_gets_off64_t_in_and_out() {
    let src = Box::into_raw(Box::new(Source {
        data: b"hello world",
        pos: 0,
        seeks: Vec::new(),
    }));
    let funcs = cookie_io_functions_t {
        read: Some(source_read),
        write: None,
        seek: Some(source_seek),
        close: None,
    };
    // SAFETY: the cookie outlives the stream; the mode is a NUL-terminated C string.
    let f = unsafe { fopencookie(src.cast(), c"r".as_ptr(), funcs) };
    assert!(!f.is_null(), "fopencookie");
    let lf = as_libc_file(f);

    // SAFETY: `f` is open.
    assert_eq!(unsafe { libc::fseek(lf, -5, libc::SEEK_END) }, 0, "fseek");
    // SAFETY: the test is between stdio calls, so no callback is running.
    let seeks = unsafe { (*src).seeks.clone() };
    assert!(
        seeks.contains(&(-5, libc::SEEK_END)),
        "seek calls: {seeks:?}"
    );

    let mut buf = [0u8; 16];
    // SAFETY: `buf` is writable for its length; `f` is open.
    let n = unsafe { libc::fread(buf.as_mut_ptr().cast(), 1, buf.len(), lf) };
    assert_eq!(&buf[..n], b"world");
    // SAFETY: `f` is open.
    let at = unsafe { libc::ftell(lf) };
    assert_eq!(at, 11, "ftell after reading to the end");

    // SAFETY: `f` is open and not used after this.
    assert_eq!(unsafe { libc::fclose(lf) }, 0);
    // SAFETY: the stream is closed, so glibc holds no copy of the cookie any more.
    drop(unsafe { Box::from_raw(src) });
}

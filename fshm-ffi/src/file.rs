//! The `FILE*` over a stream: a glibc `fopencookie` stream whose callbacks work on the
//! mapping through [`fshm::Stream`], whose `fileno()` is the stream's real shm fd, and
//! whose fd offset is kept at `DATA_OFFSET + position` (see `fshm`'s `fdpos` rule).
//! A process-wide table records the `FILE*`s made here, so a foreign one is refused.
//!
//! ## Reading in place
//!
//! glibc gives cookie streams `_IO_default_xsgetn`, which copies every byte through the
//! `FILE`'s buffer: read from the mapping into the buffer, then from the buffer into the
//! caller's memory. For a linear stream opened without `FSHM_APPEND`, a refill instead
//! points the `FILE`'s buffer at the committed bytes in the mapping ([`Stream::in_place`]),
//! so `fread` copies once, as `read(2)` on a file does. The rule that keeps glibc's
//! buffer arithmetic right, whatever the caller does next:
//!
//! 1. While the buffer is in the mapping, every pointer glibc holds (buffer, get and put
//!    areas) lies in it, at the address of the stream position it stands for: glibc
//!    computes positions from differences of these pointers.
//! 2. A refill hands out `n - 1` of `n` committed bytes and ends the buffer on the last
//!    one: the get area never reaches the buffer's end, where glibc would "slide" its
//!    put area back to the buffer's start on a switch to writing, and a put area that
//!    starts there stays on committed bytes (writes into it are writes at their
//!    position, committed by the next flush like any other).
//! 3. Every other callback leaves the buffer in our private memory: a seek in get mode
//!    first copies glibc's unread bytes (and the last 64 read, for `ungetc`) into the
//!    private buffer, or a spill buffer when more than 64 KiB of a refill is unread
//!    (glibc does not always re-read its pointers after a seek: `ftell`, and `fflush`
//!    on input); a write moves the buffer back before glibc resets its areas from it.
//!    Refills of 0 or 1 byte, and `FILE*`s whose buffer the caller replaced with
//!    `setvbuf`, copy as before.
//!
//! c/tests/test_inplace.c runs random sequences of stdio calls on a stream and on a
//! plain file and compares every result and byte.
//!
//! ## Writing large chunks
//!
//! glibc's `fwrite` first fills whatever room the buffer has, then writes whole buffers
//! straight from the caller's memory: with 64 KiB `fwrite`s and a 64 KiB buffer, every
//! other chunk was copied into the buffer before being written. When the write
//! callback is handed whole buffers from the caller's memory, it sets glibc's
//! unbuffered flag (while the private buffer stays in place): glibc then leaves no
//! room in the put area after each write, so the next large `fwrite` goes straight to
//! the stream with no copy. The first write callback with bytes out of the buffer (a
//! small `fwrite` or `fputc`, written as its first byte alone) and every read clear
//! the flag again, so small writes are buffered as before at the cost of one 1-byte
//! write. glibc's only other use of the flag: a read on an unbuffered `FILE` first
//! flushes `stdout` if it is line-buffered (a terminal) — once, on the read that ends
//! the mode. Not for `FSHM_APPEND`, where it would split a small write in two appends.
//!
//! Rings are read by copying (a ring reuses its pages; a copy is checked for an overrun
//! after it is made), and so are `FSHM_APPEND` streams (glibc would put bytes written
//! after a read at the read position, in the mapping).
//!
//! ## Where the two modes are used
//!
//! Reading in place and writing large chunks directly rewrite fields of glibc's
//! `FILE` that no manual documents. They are built only for glibc on x86_64 and
//! aarch64 (`cfg(fshm_file_internals)`, set by `build.rs`), where every field used is
//! checked against the C headers (`tests/file_layout.rs`) and the C tests run. With
//! `FSHM_PORTABLE_FILE=1` in the environment (read once, at the first `FILE*`) they are
//! off there too, so that CI runs the C tests in both modes. Without them (the
//! portable mode) stdio buffers as for any cookie stream: each byte is copied once
//! more, through the `FILE`'s buffer. Two glibc facts are used on every glibc target,
//! in both modes: `fileno()` is made the stream's fd (`_fileno`), and `_offset` is
//! cleared before a write (see `cookie_write`); `fshm_wait` reads how much input
//! stdio holds from the `FILE` (glibc) or with `__freadahead` (musl).
//!
//! ## The callbacks' contract
//!
//! As fopencookie(3) and glibc's libio use the return values:
//!
//! - `read` returns the bytes read, 0 at end of stream, -1 with `errno` on error
//!   (stdio sets the error indicator and keeps no byte of that call).
//! - `write` returns the bytes committed, never a negative value: glibc subtracts the
//!   result from what it still has to write, so -1 would make it copy from past the
//!   end of the caller's buffer. Fewer than asked (0 when nothing) sets the error
//!   indicator; `errno` says why (`ENOSPC`, `EFBIG`, ...). The stream's core commits
//!   all the bytes of one of its writes or none (a write cut short at the maximum
//!   size commits what fits), so the count is exact. musl's contract differs: it
//!   sets the error indicator only for a negative result, and a flush of its buffer
//!   that falls short silently drops the rest; there the callback returns -1 with
//!   `errno` when nothing was committed or the bytes were the `FILE`'s buffer's, and
//!   the count for a direct write of the caller's bytes. (musl reads the `read` and
//!   `seek` results as glibc does.)
//! - `seek` returns 0 with the new position in `*offset`, or -1 with `errno` and the
//!   position unchanged: glibc then keeps its buffered bytes, which must still match.
//!   A position `off64_t` cannot hold is `EINVAL`, as for `lseek` on a file, and so
//!   is a ring position past the end.
//! - `close` returns 0, or -1 with `errno` (then `fclose` returns `EOF`); the cookie is
//!   freed either way, as glibc frees the `FILE`.

use crate::{guard, set_errno};
use fshm::c_layer::{with_file_table, CLayer};
use fshm::{Stream, WaitStatus};
use fshm_sys::libc;
use fshm_sys::{__off64_t, __ssize_t, cookie_io_functions_t};
#[cfg(fshm_file_internals)]
use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_long, c_void};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// What a `FILE*` made by fshm carries as its cookie.
struct Cookie {
    stream: Stream,
    /// Reads wait for data like a pipe's (`FSHM_BLOCK`).
    block: bool,
    /// Refills point the `FILE`'s buffer into the mapping (see the module's rule).
    #[cfg(fshm_file_internals)]
    in_place: bool,
    /// Large writes may switch to the direct-write mode (not for `FSHM_APPEND`,
    /// whose every write must stay whole).
    #[cfg(fshm_file_internals)]
    direct: bool,
    /// The `FILE` this cookie belongs to (set once, before any I/O).
    file: AtomicPtr<fshm_sys::FILE>,
    /// The `FILE`'s private stdio buffer (glibc would give a cookie stream only 8 KiB,
    /// and every refill or flush costs fd-coherence `lseek`s). stdio stops
    /// using it before it calls `cookie_close`, which frees it. Only stdio reads it
    /// in the portable mode: the cookie just keeps it alive.
    #[cfg_attr(not(fshm_file_internals), allow(dead_code))]
    buffer: Box<[std::mem::MaybeUninit<u8>]>,
    /// Where a seek moves a get area too large for `buffer` (rule 3), allocated on
    /// first need and kept until `cookie_close`. Touched only inside the `FILE`'s
    /// callbacks, which glibc serialises with the `FILE`'s lock.
    #[cfg(fshm_file_internals)]
    spill: UnsafeCell<Option<Box<[std::mem::MaybeUninit<u8>]>>>,
    /// `fshm_event_fd`'s descriptor, made on first call, closed with the cookie.
    event: Mutex<Option<fshm::EventFd>>,
}

/// Largest refill in place (module rule 2).
#[cfg(fshm_file_internals)]
const IN_PLACE_MAX: usize = 1 << 20;
/// Bytes already read that a seek keeps in the get area (for `ungetc`).
#[cfg(fshm_file_internals)]
const KEEP_READ: usize = 64;
/// Size of the spill buffer: the largest get area a seek moves.
#[cfg(fshm_file_internals)]
const SPILL: usize = IN_PLACE_MAX + KEEP_READ;

/// glibc's `FILE` flag (libio.h) for a get area in the `ungetc` backup buffer, which
/// the in-place rule reads.
#[cfg(fshm_file_internals)]
pub const IO_IN_BACKUP: c_int = 0x0100;
/// glibc's `FILE` flag (libio.h) for a `FILE` in put mode, which the in-place rule
/// reads.
#[cfg(fshm_file_internals)]
pub const IO_CURRENTLY_PUTTING: c_int = 0x0800;
/// glibc's flag for an unbuffered `FILE`, which the direct-write mode borrows.
#[cfg(fshm_file_internals)]
pub const IO_UNBUFFERED: c_int = 0x0002;

/// Whether new `FILE*`s may use the in-place and direct-write modes (built in on this
/// target): not when forced off with `FSHM_PORTABLE_FILE=1`, a testing and diagnostic
/// knob read once per process.
#[cfg(fshm_file_internals)]
fn internals_enabled() -> bool {
    // 0: not read yet, 1: enabled, 2: forced off. Read without a lock or a `Once` (two
    // threads may both read the environment; they agree): a child forked while another
    // thread of its parent was inside a one-time initialisation would wait forever.
    static STATE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let off = std::env::var_os("FSHM_PORTABLE_FILE").is_some_and(|v| v == "1");
            STATE.store(if off { 2 } else { 1 }, Ordering::Relaxed);
            !off
        }
    }
}

#[cfg(fshm_file_internals)]
impl Cookie {
    fn private(&self) -> *mut c_char {
        self.buffer.as_ptr() as *mut c_char
    }

    /// The spill buffer's address, if allocated.
    fn spill(&self) -> *mut c_char {
        // SAFETY: only callbacks write `spill` (serialised by the FILE's lock, and this
        // is called from them or from one thread's setup); no reference is kept.
        unsafe { &*self.spill.get() }
            .as_ref()
            .map_or(std::ptr::null_mut(), |b| b.as_ptr() as *mut c_char)
    }

    /// The spill buffer, allocated now if needed.
    ///
    /// # Safety
    /// Called from one of the `FILE`'s callbacks.
    unsafe fn spill_now(&self) -> *mut c_char {
        // SAFETY: guaranteed by the caller: no other access runs meanwhile.
        let slot = unsafe { &mut *self.spill.get() };
        slot.get_or_insert_with(|| Box::new_uninit_slice(SPILL))
            .as_ptr() as *mut c_char
    }

    /// Whether glibc's buffer `p` is one fshm gave it (private, spill, or the mapping),
    /// the ones the refills and rule 3 manage.
    fn ours(&self, p: *const c_char) -> bool {
        !p.is_null() && (p == self.private() || p == self.spill() || self.in_window(p))
    }

    /// Whether `p .. p + len` lies in the private or the spill buffer.
    fn in_buffers(&self, p: *const c_char, len: usize) -> bool {
        let inside = |base: *mut c_char, size: usize| {
            !base.is_null()
                && p as usize >= base as usize
                && (p as usize).saturating_add(len) <= base as usize + size
        };
        inside(self.private(), FILE_BUFFER) || inside(self.spill(), SPILL)
    }

    /// Turns the direct-write mode on or off (see "Writing large chunks" in the module
    /// documentation), if the `FILE` uses the private buffer.
    ///
    /// # Safety
    /// Called from one of the `FILE`'s callbacks.
    unsafe fn set_direct(&self, on: bool) {
        let f = self.file();
        // SAFETY: as in `set_buffer`: glibc holds the FILE's lock; plain fields.
        unsafe {
            if !self.direct || (*f)._IO_buf_base != self.private() {
                return;
            }
            if on {
                (*f)._flags |= IO_UNBUFFERED;
            } else {
                (*f)._flags &= !IO_UNBUFFERED;
            }
        }
    }

    /// Whether `p` points into the data part of the stream's mapping.
    fn in_window(&self, p: *const c_char) -> bool {
        !p.is_null() && self.stream.position_in_window(p.cast()).is_some()
    }

    /// Makes `base .. base + size` the `FILE`'s buffer, with empty get and put areas at
    /// its start.
    ///
    /// # Safety
    /// Called from one of the `FILE`'s callbacks (glibc holds its lock); `base .. base +
    /// size` stays valid while the `FILE` uses it.
    unsafe fn set_buffer(&self, base: *mut c_char, size: usize) {
        let f = self.file();
        // SAFETY: `f` is our open `FILE` (guaranteed by the caller), and these are plain
        // fields of glibc's real `struct _IO_FILE`.
        unsafe {
            (*f)._IO_buf_base = base;
            (*f)._IO_buf_end = base.add(size);
            (*f)._IO_read_base = base;
            (*f)._IO_read_ptr = base;
            (*f)._IO_read_end = base;
            (*f)._IO_write_base = base;
            (*f)._IO_write_ptr = base;
            (*f)._IO_write_end = base;
        }
    }

    /// Rule 3: before a seek in get mode, moves glibc's buffer out of the mapping,
    /// keeping its unread bytes and the last few read (so that an `ungetc` of the byte
    /// just read still only steps back, as on a plain file). A get area is at most one
    /// refill: it fits the private buffer, or else the spill buffer.
    ///
    /// # Safety
    /// Called from the `FILE`'s seek callback.
    unsafe fn leave_window_for_seek(&self) {
        let f = self.file();
        // SAFETY: as in `set_buffer`.
        let (flags, buf, base, ptr, end) = unsafe {
            (
                (*f)._flags,
                (*f)._IO_buf_base,
                (*f)._IO_read_base,
                (*f)._IO_read_ptr,
                (*f)._IO_read_end,
            )
        };
        if flags & (IO_IN_BACKUP | IO_CURRENTLY_PUTTING) != 0 || !self.in_window(buf) {
            return;
        }
        let sane = self.in_window(base) && base <= ptr && ptr <= end;
        let (from, kept, read) = if sane {
            let read = (ptr as usize - base as usize).min(KEEP_READ);
            let from = ptr.wrapping_sub(read);
            (from, (end as usize - from as usize).min(SPILL), read)
        } else {
            (ptr, 0, 0)
        };
        let (to, size) = if kept <= FILE_BUFFER {
            (self.private(), FILE_BUFFER)
        } else {
            // SAFETY: we are in a callback.
            (unsafe { self.spill_now() }, SPILL)
        };
        // SAFETY: `from .. from + kept` lies in the last refill (committed bytes in the
        // mapping, which another handle may overwrite meanwhile: the per-byte-atomic
        // copy); `to` holds `size >= kept` bytes and is ours.
        unsafe {
            fshm::c_layer::copy_from_mapping(
                from.cast::<u8>(),
                std::slice::from_raw_parts_mut(to.cast::<std::mem::MaybeUninit<u8>>(), kept),
            );
            self.set_buffer(to, size);
            (*f)._IO_read_ptr = to.add(read);
            (*f)._IO_read_end = to.add(kept);
        }
    }
}

impl Cookie {
    /// Whether `bytes` lie in the `FILE`'s private buffer (the bytes of a flush, as
    /// long as the caller did not replace the buffer with `setvbuf`).
    #[cfg(target_env = "musl")]
    fn holds(&self, bytes: &[u8]) -> bool {
        let start = self.buffer.as_ptr() as usize;
        let at = bytes.as_ptr() as usize;
        at >= start && at + bytes.len() <= start + self.buffer.len()
    }

    /// The `FILE` this cookie belongs to.
    fn file(&self) -> *mut fshm_sys::FILE {
        self.file.load(Ordering::Relaxed)
    }
}

/// Size of the stdio buffer of a `FILE*` made by fshm.
const FILE_BUFFER: usize = 64 * 1024;

/// The cookie address of `f` in the table of every open `FILE*` this library made
/// (`FILE*` address → cookie address; the core keeps it, so that its fork handlers lock
/// it across `fork(2)`), or `EBADF`.
fn cookie_of(f: *mut libc::FILE) -> Result<usize, c_int> {
    with_file_table(|t| t.get(&(f as usize)).copied()).ok_or(libc::EBADF)
}

/// Wraps `stream` in a new `FILE*`.
pub(crate) fn make_file(stream: Stream, block: bool) -> Result<*mut libc::FILE, c_int> {
    stream.sync_fd_offset().map_err(|e| fshm::errno_of(&e))?;
    let mode: &std::ffi::CStr = match (stream.is_writable(), stream.is_append()) {
        (false, _) => c"r",
        (true, false) => c"r+",
        (true, true) => c"a+",
    };
    #[cfg(target_env = "gnu")]
    let fd = stream.as_raw_fd();
    #[cfg(fshm_file_internals)]
    let (in_place, direct) = {
        let internals = internals_enabled();
        (
            // Not on an immutable stream: glibc would put bytes written after a read
            // in place, at the read position, over committed bytes.
            internals && !stream.is_ring() && !stream.is_append() && !stream.is_immutable(),
            internals && !stream.is_append(),
        )
    };
    // Uninitialised: stdio writes every byte of it before it reads that byte.
    let mut buffer = Box::new_uninit_slice(FILE_BUFFER);
    let buf_ptr = buffer.as_mut_ptr();
    let cookie = Box::into_raw(Box::new(Cookie {
        stream,
        block,
        #[cfg(fshm_file_internals)]
        in_place,
        #[cfg(fshm_file_internals)]
        direct,
        file: AtomicPtr::new(std::ptr::null_mut()),
        buffer,
        #[cfg(fshm_file_internals)]
        spill: UnsafeCell::new(None),
        event: Mutex::new(None),
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
    // SAFETY: `cookie` is live; no callback has run yet.
    unsafe { (*cookie).file.store(f, Ordering::Relaxed) };
    // SAFETY: `f` is a fresh glibc cookie stream that no other thread knows yet;
    // `fd >= 0`.
    #[cfg(target_env = "gnu")]
    unsafe {
        fshm_sys::set_fileno(f, fd)
    };
    // SAFETY: `f` is fresh (no I/O yet); the buffer lives in the cookie until
    // `cookie_close`, after which stdio no longer touches it. On failure stdio keeps
    // its own buffer, which is only slower.
    unsafe {
        libc::setvbuf(
            fshm_sys::as_libc_file(f),
            buf_ptr.cast(),
            libc::_IOFBF,
            FILE_BUFFER,
        )
    };
    with_file_table(|t| t.insert(f as usize, cookie as usize));
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
    let cookie = cookie_of(f)?;
    // SAFETY: the table holds only cookies of open `FILE*`s; an entry is removed in
    // `cookie_close` before its cookie is freed. Using `f` concurrently with its
    // `fclose` is undefined in C already.
    let cookie = unsafe { &*(cookie as *const Cookie) };
    op(&cookie.stream)
}

/// Bytes already read into `f`'s stdio buffer and not yet consumed.
#[cfg(target_env = "gnu")]
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

/// Bytes already read into `f`'s stdio buffer and not yet consumed.
#[cfg(target_env = "musl")]
fn buffered_input(f: *mut libc::FILE) -> usize {
    extern "C" {
        /// musl's `stdio_ext.h`: bytes buffered for reading.
        fn __freadahead(f: *mut libc::FILE) -> usize;
    }
    // SAFETY: `f` is an open stream (checked in the table by the caller).
    unsafe { __freadahead(f) }
}

/// Bytes already read into `f`'s stdio buffer and not yet consumed: unknown on this
/// C library, taken as none.
#[cfg(not(any(target_env = "gnu", target_env = "musl")))]
fn buffered_input(_f: *mut libc::FILE) -> usize {
    0
}

pub(crate) fn wait(f: *mut libc::FILE, timeout_ms: c_long) -> Result<c_int, c_int> {
    with_stream(f, |s| {
        if buffered_input(f) > 0 {
            return Ok(1);
        }
        let pos = s.absorb_fd_offset().map_err(|e| fshm::errno_of(&e))?;
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        match s.wait_for(pos, timeout) {
            WaitStatus::Data => Ok(1),
            WaitStatus::Ended => Ok(0),
            WaitStatus::TimedOut => Err(libc::ETIMEDOUT),
            // No other outcome exists today; a new one would be reported as an error.
            _ => Err(libc::EIO),
        }
    })
}

impl Cookie {
    /// Re-arms the event descriptor, if `fshm_event_fd` made one, at the handle's
    /// position.
    fn rearm_event(&self) {
        let mut ev = self.event.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ev) = ev.as_mut() {
            ev.arm(&self.stream);
        }
    }
}

/// The position of `f` (the handle's, less what stdio read ahead), after taking in
/// what was done through the fd.
fn file_position(f: *mut libc::FILE, s: &Stream) -> Result<u64, c_int> {
    let pos = s.absorb_fd_offset().map_err(|e| fshm::errno_of(&e))?;
    Ok(pos.saturating_sub(buffered_input(f) as u64))
}

/// `fshm_event_fd`: makes the descriptor on first call, (re-)arms it at `f`'s position.
pub(crate) fn event_fd(f: *mut libc::FILE) -> Result<c_int, c_int> {
    with_cookie(f, |c| {
        let pos = file_position(f, &c.stream)?;
        let mut ev = c.event.lock().unwrap_or_else(|e| e.into_inner());
        let ev = match &mut *ev {
            Some(ev) => ev,
            none => none.insert(c.stream.event_fd().map_err(|e| fshm::errno_of(&e))?),
        };
        ev.arm_at(&c.stream, pos);
        Ok(ev.as_raw_fd())
    })
}

/// `fshm_poll`'s events: data past the position, the end.
pub(crate) const POLL_DATA: i16 = 1;
pub(crate) const POLL_END: i16 = 2;

/// `fshm_poll` over `(FILE*, events)` pairs (a null `FILE*` is skipped); returns the
/// `revents` of each. Every `FILE*` is checked before anything moves.
pub(crate) fn poll(
    entries: &[(*mut libc::FILE, i16)],
    timeout: Option<Duration>,
) -> Result<Vec<i16>, c_int> {
    let mut streams: Vec<(&Stream, u64)> = Vec::with_capacity(entries.len());
    let mut index = Vec::with_capacity(entries.len());
    for (i, &(f, _)) in entries.iter().enumerate() {
        if !f.is_null() {
            // SAFETY: as in `with_stream`; the references live for this call, during
            // which the caller may not fclose its FILE*s.
            streams.push((unsafe { stream_ref(f) }?, 0));
            index.push(i);
        }
    }
    let mut revents = vec![0i16; entries.len()];
    let mut buffered = false;
    for (k, &i) in index.iter().enumerate() {
        let (f, events) = entries[i];
        if events & POLL_DATA != 0 {
            if buffered_input(f) > 0 {
                revents[i] = POLL_DATA;
                buffered = true;
            }
            streams[k].1 = file_position(f, streams[k].0)?;
        } else {
            // The end alone.
            streams[k].1 = u64::MAX;
        }
    }
    // Bytes stdio read ahead are data now: only look at the others.
    let timeout = if buffered {
        Some(Duration::ZERO)
    } else {
        timeout
    };
    for (k, status) in fshm::wait_any_at(&streams, timeout) {
        revents[index[k]] |= match status {
            WaitStatus::Data => POLL_DATA,
            _ => POLL_END,
        };
    }
    Ok(revents)
}

/// The stream behind `f`, or `EINVAL` (null) / `EBADF` (not made by fshm, or closed).
///
/// # Safety
/// `f` is not closed while the reference lives (using a `FILE*` concurrently with its
/// `fclose` is undefined in C already).
unsafe fn stream_ref<'a>(f: *mut libc::FILE) -> Result<&'a Stream, c_int> {
    if f.is_null() {
        return Err(libc::EINVAL);
    }
    let cookie = cookie_of(f)?;
    // SAFETY: the table holds only cookies of open `FILE*`s; the caller keeps `f` open.
    Ok(&unsafe { &*(cookie as *const Cookie) }.stream)
}

/// # Safety
/// `cookie` is the live cookie of a `FILE*` made by [`make_file`].
unsafe fn cookie_ref<'a>(cookie: *mut c_void) -> &'a Cookie {
    // SAFETY: guaranteed by the caller (glibc passes back the cookie we gave it).
    unsafe { &*cookie.cast::<Cookie>() }
}

fn io<T>(r: std::io::Result<T>) -> Result<T, c_int> {
    r.map_err(|e| fshm::errno_of(&e))
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
        // SAFETY: stdio gives a writable buffer of `size` bytes.
        let n = unsafe { read_callback(c, buf, size) }?;
        if n == 0 {
            // Read to the end: the event descriptor re-arms (shmfile.h, fshm_event_fd).
            // stdio's buffer is empty here, so the handle's position is the FILE's.
            c.rearm_event();
        }
        Ok(n)
    })
}

/// `cookie_read`'s work.
///
/// # Safety
/// As `cookie_read`'s: `buf` holds `size` writable bytes.
unsafe fn read_callback(c: &Cookie, buf: *mut c_char, size: usize) -> Result<__ssize_t, c_int> {
    #[cfg(fshm_file_internals)]
    {
        // Reading ends the direct-write mode (module documentation).
        // SAFETY: a read runs inside the FILE's callback.
        unsafe { c.set_direct(false) };
        // glibc refills into its buffer: ours, or (after a refill in place) the
        // mapping.
        if c.in_place && c.ours(buf) {
            // SAFETY: a refill runs inside the FILE's callback.
            return unsafe { refill(c) };
        }
    }
    // SAFETY: stdio gives a writable buffer of `size` bytes (the caller's own, set
    // with setvbuf, or ours), which may be uninitialised: viewed as `MaybeUninit`.
    let buf =
        unsafe { std::slice::from_raw_parts_mut(buf.cast::<std::mem::MaybeUninit<u8>>(), size) };
    read_into(c, buf)
}

/// Reads into `buf` by copying (waiting for data first with `FSHM_BLOCK`).
fn read_into(c: &Cookie, buf: &mut [std::mem::MaybeUninit<u8>]) -> Result<__ssize_t, c_int> {
    let n = coherent(&c.stream, |s| {
        // FSHM_BLOCK: read like a pipe — wait (spinning briefly, then on the futex)
        // until data arrives or the owner closes or dies.
        io(s.read_uninit(buf, c.block))
    })?;
    Ok(n as __ssize_t)
}

/// Refills the `FILE`'s buffer: in place in the mapping when at least two committed
/// bytes are there (rule 2 of the module), else by copying into the private buffer.
/// A refill that fails leaves the (empty) buffer in private memory.
///
/// # Safety
/// Called from the `FILE`'s read callback.
#[cfg(fshm_file_internals)]
unsafe fn refill(c: &Cookie) -> Result<__ssize_t, c_int> {
    let got = coherent(&c.stream, |s| {
        let got = io(s.in_place(IN_PLACE_MAX, c.block))?;
        if got.len >= 2 {
            io((&*s).seek(SeekFrom::Start(got.pos + got.len as u64 - 1)))?;
        }
        Ok(got)
    });
    let got = match got {
        Ok(got) if got.len >= 2 => got,
        other => {
            // SAFETY: the private buffer is ours and holds FILE_BUFFER bytes.
            unsafe { c.set_buffer(c.private(), FILE_BUFFER) };
            other?;
            // SAFETY: the private buffer is ours, FILE_BUFFER bytes that may be
            // uninitialised (viewed as `MaybeUninit`); stdio only reads bytes of it that
            // a refill wrote.
            let private = unsafe {
                std::slice::from_raw_parts_mut(
                    c.private().cast::<std::mem::MaybeUninit<u8>>(),
                    FILE_BUFFER,
                )
            };
            return read_into(c, private);
        }
    };
    // SAFETY: `got.ptr .. + got.len` are committed bytes in the mapping, which lives
    // as long as the stream (closed after glibc's last use of the buffer).
    unsafe { c.set_buffer(got.ptr as *mut c_char, got.len) };
    Ok(got.len as __ssize_t - 1)
}

unsafe extern "C" fn cookie_write(
    cookie: *mut c_void,
    buf: *const c_char,
    size: usize,
) -> __ssize_t {
    // SAFETY: glibc passes back our cookie.
    let c = unsafe { cookie_ref(cookie) };
    // A panic commits nothing as far as stdio may know: 0 for glibc, which must never
    // see a negative value, -1 for musl, which sets the error indicator only then
    // (module documentation, "The callbacks' contract").
    guard(WRITE_FAILED, || {
        // musl's fflush calls with (NULL, 0): nothing to write, and no slice to make
        // from a null pointer.
        if size == 0 || buf.is_null() {
            return Ok(0);
        }
        // SAFETY: stdio gives a readable buffer of `size` bytes.
        let buf = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), size) };
        // glibc's `new_do_write` records the offset of a seek it makes before writing
        // in `_offset` and, for a cookie stream, never adds the bytes written; an
        // `fseek(SEEK_CUR)` that flushed such a write then lands that many bytes short
        // (found by c/tests/test_inplace.c). Unknown, it is asked of us instead.
        // SAFETY: glibc holds the FILE's lock while it runs a callback; `_offset` is a
        // plain field of its real layout (tests/file_layout.rs).
        #[cfg(target_env = "gnu")]
        unsafe {
            (*c.file())._offset = -1
        };
        // SAFETY: a write runs inside the FILE's callback.
        #[cfg(fshm_file_internals)]
        let to_write = unsafe { before_write(c, buf) };
        #[cfg(fshm_file_internals)]
        let buf: &[u8] = &to_write;
        let (n, err) = write_committed(&c.stream, buf);
        if let Some(e) = err {
            set_errno(e);
            // musl keeps quiet about a short count: the error indicator is set only
            // for a negative one, and a flush of the `FILE`'s buffer that falls short
            // drops the rest of it (`fflush` then returns 0). So -1 when nothing was
            // committed, or when the bytes are that buffer's (the committed part stays
            // in the stream, the rest is dropped either way); a direct write of the
            // caller's bytes gets its exact count (`fwrite` returns it).
            #[cfg(target_env = "musl")]
            if n == 0 || c.holds(buf) {
                return Ok(-1);
            }
        }
        Ok(n as __ssize_t)
    })
}

/// What the write callback returns when it fails before committing anything: 0 on
/// glibc (never negative), -1 elsewhere (musl sets the error indicator only then).
const WRITE_FAILED: __ssize_t = if cfg!(target_env = "gnu") { 0 } else { -1 };

/// The in-place and direct-write modes' part of a write of `buf`: returns the bytes
/// to write (copied out if they lie in the mapping).
///
/// # Safety
/// Called from the `FILE`'s write callback.
#[cfg(fshm_file_internals)]
unsafe fn before_write<'a>(c: &Cookie, buf: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    // Bytes glibc put in place in the mapping (module rule 2), or any that overlap
    // it: copied out first, as a write copies into the mapping.
    let in_window = c.stream.overlaps_window(buf.as_ptr(), buf.len());
    let from_buffer = in_window || c.in_buffers(buf.as_ptr().cast(), buf.len());
    // SAFETY: glibc holds the FILE's lock while it runs a callback; a plain field of
    // its real layout (tests/file_layout.rs).
    let base = unsafe { (*c.file())._IO_buf_base };
    if c.in_place && c.ours(base) && base != c.private() {
        // Rule 3: glibc resets its areas from the buffer after this call.
        // SAFETY: called from the write callback (the caller's contract).
        unsafe { c.set_buffer(c.private(), FILE_BUFFER) };
    }
    // Writing large chunks: a write of whole buffers straight from the caller's
    // memory turns the direct mode on, a write out of the buffer turns it off.
    if from_buffer || buf.len() >= FILE_BUFFER {
        // SAFETY: as above.
        unsafe { c.set_direct(!from_buffer) };
    }
    if in_window {
        std::borrow::Cow::Owned(buf.to_vec())
    } else {
        std::borrow::Cow::Borrowed(buf)
    }
}

/// Writes `buf` at the stream's position under the fd-coherence rule, writing on
/// after a short write (the maximum size cuts a write short, and the next one fails
/// with `EFBIG`). Returns the bytes committed and, when fewer than `buf.len()`, the
/// error that stopped them.
fn write_committed(s: &Stream, buf: &[u8]) -> (usize, Option<c_int>) {
    if let Err(e) = s.absorb_fd_offset() {
        return (0, Some(fshm::errno_of(&e)));
    }
    let mut n = 0;
    let mut err = None;
    while n < buf.len() {
        match (&*s).write(&buf[n..]) {
            Ok(0) => {
                err = Some(libc::EIO);
                break;
            }
            Ok(more) => n += more,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                err = Some(fshm::errno_of(&e));
                break;
            }
        }
    }
    if let Err(e) = s.sync_fd_offset() {
        err = err.or(Some(fshm::errno_of(&e)));
    }
    (n, err)
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
        #[cfg(fshm_file_internals)]
        if c.in_place {
            // SAFETY: a seek runs inside the FILE's callback.
            unsafe { c.leave_window_for_seek() };
        }
        let pos = coherent(&c.stream, |s| seek_within_off_t(s, to))?;
        // SAFETY: as above; `pos < i64::MAX`.
        unsafe { *offset = pos as __off64_t };
        Ok(0)
    })
}

/// Seeks to `to`, refusing (`EINVAL`, position unchanged) a position that `off64_t`
/// cannot hold, as `lseek` does on a file (the fd's offset, `DATA_OFFSET` past the
/// position, must hold it too), and on a ring a position past the end, where no byte
/// can be (a ring's length only grows, so one checked here stays valid).
fn seek_within_off_t(s: &Stream, to: SeekFrom) -> Result<u64, c_int> {
    const OFF_MAX: u64 = i64::MAX as u64 - fshm::header::DATA_OFFSET;
    let base = match to {
        SeekFrom::Start(_) => 0,
        SeekFrom::Current(_) => s.position(),
        SeekFrom::End(_) => s.len(),
    };
    let target = match to {
        SeekFrom::Start(p) => Some(p),
        SeekFrom::Current(d) | SeekFrom::End(d) => base.checked_add_signed(d),
    };
    let limit = if s.is_ring() { s.len() } else { OFF_MAX };
    if target.is_none_or(|p| p > limit) {
        return Err(libc::EINVAL);
    }
    let before = s.position();
    let pos = io((&*s).seek(to))?;
    if pos > OFF_MAX {
        // The length grew past the check meanwhile.
        io((&*s).seek(SeekFrom::Start(before)))?;
        return Err(libc::EINVAL);
    }
    Ok(pos)
}

unsafe extern "C" fn cookie_close(cookie: *mut c_void) -> c_int {
    guard(-1, || {
        // SAFETY: glibc passes back our cookie, still live here.
        let file = unsafe { cookie_ref(cookie) }.file();
        // A `BTreeMap` gives its nodes back as they empty: a program that closed every
        // stream holds nothing of ours (memory checkers report no leak at exit).
        with_file_table(|t| t.remove(&(file as usize)));
        // SAFETY: glibc calls close once; the cookie came from `Box::into_raw` and the
        // table no longer refers to it.
        let c = unsafe { Box::from_raw(cookie.cast::<Cookie>()) };
        // Bytes written through the fd join the length no later than fclose (a
        // read-only fd wrote nothing); if they cannot, fclose says so.
        let absorbed = if c.stream.is_writable() {
            c.stream
                .absorb_fd_offset()
                .map(drop)
                .map_err(|e| fshm::errno_of(&e))
        } else {
            Ok(())
        };
        drop(c);
        absorbed.map(|()| 0)
    })
}

/// Empties `f`'s stdio buffers before an in-place operation: buffered output reaches
/// the stream, and unread buffered input is given back (glibc seeks the stream back
/// over it), so that the stream's position is the `FILE`'s.
fn drain_stdio(f: *mut libc::FILE) -> Result<(), c_int> {
    // SAFETY: `f` is an open `FILE*` made by this library (checked in the table by the
    // caller, before and after).
    if unsafe { libc::fflush(f) } != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    Ok(())
}

/// `fshm_read_in_place`: the committed bytes at `f`'s position, in place.
pub(crate) fn read_in_place(f: *mut libc::FILE) -> Result<(*const u8, usize), c_int> {
    with_cookie(f, |_| Ok(()))?;
    drain_stdio(f)?;
    with_cookie(f, |c| {
        let got = coherent(&c.stream, |s| io(s.lend_in_place(c.block)))?;
        Ok((got.ptr, got.len))
    })
}

/// `fshm_consume`.
pub(crate) fn consume(f: *mut libc::FILE, n: usize) -> Result<(), c_int> {
    with_stream(f, |s| coherent(s, |s| io(s.consume_in_place(n))))
}

/// `fshm_reserve` (`timeout` `None`), `fshm_reserve_timeout`.
pub(crate) fn reserve(
    f: *mut libc::FILE,
    n: usize,
    timeout: Option<std::time::Duration>,
) -> Result<*mut u8, c_int> {
    with_cookie(f, |_| Ok(()))?;
    drain_stdio(f)?;
    with_stream(f, |s| coherent(s, |s| io(s.reserve_in_place(n, timeout))))
}

/// `fshm_commit`.
pub(crate) fn commit(f: *mut libc::FILE, n: usize) -> Result<(), c_int> {
    with_stream(f, |s| coherent(s, |s| io(s.commit_in_place(n))))
}

/// Runs `op` on the cookie behind `f`, or fails as [`with_stream`] does.
fn with_cookie<T>(
    f: *mut libc::FILE,
    op: impl FnOnce(&Cookie) -> Result<T, c_int>,
) -> Result<T, c_int> {
    if f.is_null() {
        return Err(libc::EINVAL);
    }
    let cookie = cookie_of(f)?;
    // SAFETY: as in `with_stream`.
    let cookie = unsafe { &*(cookie as *const Cookie) };
    op(cookie)
}

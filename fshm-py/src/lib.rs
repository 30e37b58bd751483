//! `fshm._fshm`: the native half of the Python package `fshm` (PyO3, stable ABI).
//!
//! A thin layer over the `fshm` crate: [`Handle`] wraps a [`fshm::Stream`], [`View`]
//! lends bytes of its mapping through the buffer protocol, [`Waiter`] bridges
//! [`fshm::AsyncWaiter`] to an event loop through an eventfd. The Python package
//! (`python/fshm/__init__.py`) builds the `io.RawIOBase` classes on top. No protocol
//! lives here: every read, write, wait and in-place access is the crate's (the in-place
//! calls go through the crate's binding layer, `fshm::c_layer`, which the C API uses
//! too).
//!
//! # The GIL
//!
//! A call that can wait (a follower's read, a wait, a lossless ring's write, an append
//! handle's write, opening a guest, a large copy) runs with the GIL released
//! (`Python::detach`), so other Python threads run meanwhile. A thread holding the GIL
//! never waits for anything a GIL-less thread may hold: the handle's own lock is held
//! only for an `Arc` clone.
//!
//! # Views
//!
//! A [`View`] holds a strong reference to its [`Handle`] (so the mapping outlives every
//! export), and the handle counts the exports. While views are exported, what would let
//! the bytes change under them raises `BufferError` (as `bytearray` refuses to resize):
//! `close`; `commit` (a reservation's views); on a ring, everything that moves the
//! position (the reader's slot, which keeps the writer off the lent bytes). A view that
//! was not exported when its bytes stopped being valid (consumed, committed, closed)
//! refuses new exports.
#![deny(unsafe_op_in_unsafe_fn)]

use fshm::c_layer::CLayer as _;
use parking_lot::Mutex;
use pyo3::exceptions::{PyBufferError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyMemoryView};
use std::ffi::{c_int, c_void};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Copies larger than this run with the GIL released.
const DETACH_COPY: usize = 64 * 1024;

/// An `io::Error` as the `OSError` subclass Python users catch: `OSError(errno,
/// message, stream name)`, which Python turns into `FileNotFoundError`,
/// `PermissionError`, `FileExistsError`, `TimeoutError`, ... by the errno.
fn py_err(e: io::Error) -> PyErr {
    if let Some(o) = fshm::overrun_of(&e) {
        return overrun_err(&e, o);
    }
    let mut errno = fshm::errno_of(&e);
    if errno == 0 {
        errno = libc::EIO;
    }
    let stream = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<fshm::StreamError>())
        .map(|se| se.stream().to_owned());
    let msg = e.to_string();
    match stream {
        Some(name) => PyOSError::new_err((errno, msg, name)),
        None => PyOSError::new_err((errno, msg)),
    }
}

pyo3::create_exception!(
    _fshm,
    Overrun,
    PyOSError,
    "A ring reader fell more than the capacity behind: `lost` bytes were overwritten \
     before it read them, and its position moved on to `resume_at`, the oldest byte held \
     (the next read goes on from there). `errno` is ENOBUFS."
);

/// A ring overrun as `fshm.Overrun`, with `lost` and `resume_at`.
fn overrun_err(e: &io::Error, o: fshm::Overrun) -> PyErr {
    let stream = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<fshm::StreamError>())
        .map(|se| se.stream().to_owned())
        .unwrap_or_default();
    let errno = fshm::errno_of(e);
    Python::attach(|py| {
        let err = Overrun::new_err((errno, e.to_string(), stream));
        let v = err.value(py);
        if v.setattr("lost", o.lost()).is_err() || v.setattr("resume_at", o.resume_at()).is_err() {
            return PyErr::fetch(py);
        }
        err
    })
}

fn closed_err() -> PyErr {
    PyValueError::new_err("I/O operation on closed stream")
}

fn secs(t: Option<f64>) -> PyResult<Option<Duration>> {
    match t {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => Err(PyValueError::new_err(format!(
            "a timeout must be a finite number of seconds >= 0, not {t}"
        ))),
    }
}

/// A buffer export of any format, as bytes (what `io` files accept: any C-contiguous
/// bytes-like object, a NumPy array of any dtype included). Released on drop, which
/// happens with the GIL held (at the end of the method that made it).
struct RawBuffer(Box<pyo3::ffi::Py_buffer>);

// SAFETY: the export is only read or written through its pointer (by any thread, while
// the exporter keeps it), and released with the GIL held (see `Held`).
unsafe impl Send for RawBuffer {}
// SAFETY: as for `Send`: shared references only read the pointer and length.
unsafe impl Sync for RawBuffer {}

impl Drop for RawBuffer {
    fn drop(&mut self) {
        // SAFETY: the buffer was filled by a successful `PyObject_GetBuffer` and is
        // released once; `Held` values are dropped in the methods that made them, with
        // the GIL held.
        unsafe { pyo3::ffi::PyBuffer_Release(&mut *self.0) }
    }
}

/// A contiguous Python buffer held for one call (its exporter cannot resize it meanwhile).
struct Held {
    /// Keeps a `bytes` object alive (its memory is read without a buffer export).
    _obj: Option<Py<PyAny>>,
    _buf: Option<RawBuffer>,
    ptr: usize,
    len: usize,
}

impl Held {
    /// `obj`'s bytes; `writable` asks for a writable buffer (for `readinto`).
    fn get(obj: &Bound<'_, PyAny>, writable: bool) -> PyResult<Held> {
        if !writable {
            if let Ok(b) = obj.cast::<PyBytes>() {
                let s = b.as_bytes();
                // `bytes` are immutable, and `_obj` keeps the object alive.
                return Ok(Held {
                    _obj: Some(obj.clone().unbind()),
                    _buf: None,
                    ptr: s.as_ptr() as usize,
                    len: s.len(),
                });
            }
        }
        let flags = if writable {
            pyo3::ffi::PyBUF_WRITABLE
        } else {
            pyo3::ffi::PyBUF_SIMPLE
        };
        // SAFETY: an all-zero `Py_buffer` is a valid value to hand to
        // `PyObject_GetBuffer`, which fills it on success.
        let mut raw: Box<pyo3::ffi::Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `obj` is a live object (the GIL is held); `raw` is a writable
        // `Py_buffer`. PyBUF_SIMPLE / PyBUF_WRITABLE ask for contiguous bytes.
        if unsafe { pyo3::ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *raw, flags) } != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        let (ptr, len) = (raw.buf as usize, raw.len as usize);
        Ok(Held {
            _obj: None,
            _buf: Some(RawBuffer(raw)),
            ptr,
            len,
        })
    }
    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr..ptr + len` is the contiguous memory of a buffer export (or of a
        // `bytes` object) that `self` keeps alive, and its exporter cannot resize or free
        // it while exported. Other Python threads may write to a mutable buffer
        // concurrently; the copy then sees some mix of bytes, as `os.write` would.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as for `bytes`, and the export was asked for and checked writable
        // (PyBUF_WRITABLE). An exporter's bytes are initialised memory. Nothing else in
        // this process holds a Rust reference to them; other Python threads may write
        // them concurrently, racing as they would with `os.readv` into the same buffer.
        unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut u8, self.len) }
    }
}

/// A handle on a stream (the Python class `fshm.Stream` wraps it).
#[pyclass(frozen, module = "fshm._fshm")]
pub struct Handle {
    stream: Mutex<Option<Arc<fshm::Stream>>>,
    name: String,
    ring: bool,
    lossless: bool,
    immutable: bool,
    append: bool,
    /// Buffer exports of lent bytes (`read_in_place`) alive now.
    lent_exports: AtomicUsize,
    /// Buffer exports of reservations alive now.
    res_exports: AtomicUsize,
    /// Moves whenever lent or reserved bytes may stop being valid.
    generation: AtomicU64,
}

impl Handle {
    /// A buffer to read into must not be this handle's own mapping (a reservation's
    /// view): the copy would overlap its source.
    fn check_destination(&self, s: &fshm::Stream, h: &Held) -> PyResult<()> {
        if s.overlaps_window(h.ptr as *const u8, h.len) {
            return Err(PyOSError::new_err((
                libc::EINVAL,
                format!(
                    "fshm stream {:?}: cannot read into the stream's own mapping",
                    self.name
                ),
                self.name.clone(),
            )));
        }
        Ok(())
    }

    fn wrap(s: fshm::Stream) -> Handle {
        let lossless = s.is_ring() && s.info().map(|i| i.lossless).unwrap_or(false);
        Handle {
            name: s.name().to_owned(),
            ring: s.is_ring(),
            lossless,
            immutable: s.is_immutable(),
            append: s.is_append(),
            stream: Mutex::new(Some(Arc::new(s))),
            lent_exports: AtomicUsize::new(0),
            res_exports: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
        }
    }

    fn get(&self) -> PyResult<Arc<fshm::Stream>> {
        self.stream.lock().clone().ok_or_else(closed_err)
    }

    /// Before an operation that moves the position: on a ring, refused while lent bytes
    /// are exported (the reader's slot would let the writer overwrite them), and lent
    /// views stop being valid.
    fn moving(&self) -> PyResult<()> {
        if self.ring {
            if self.lent_exports.load(Ordering::Relaxed) > 0 {
                return Err(PyBufferError::new_err(format!(
                    "fshm stream {:?}: views of bytes read in place are still exported; \
                     release them (del the arrays, memoryview.release()) before reading on, \
                     seeking or writing on a ring",
                    self.name
                )));
            }
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether a write or reservation on this handle may wait (for readers to make room,
    /// or for another appender).
    fn write_may_wait(&self) -> bool {
        self.lossless || self.append || self.immutable
    }
}

#[pymethods]
impl Handle {
    /// Creates the stream `name` as its owner.
    #[staticmethod]
    #[pyo3(signature = (name, mode, max_size, ring, lossless, immutable, persist, reclaim))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        name: &str,
        mode: u32,
        max_size: Option<u64>,
        ring: Option<u64>,
        lossless: bool,
        immutable: bool,
        persist: bool,
        reclaim: bool,
    ) -> PyResult<Handle> {
        let mut o = fshm::OpenOptions::new();
        o.mode(mode)
            .persist(persist)
            .reclaim(reclaim)
            .immutable(immutable);
        if let Some(m) = max_size {
            o.max_size(m);
        }
        if let Some(cap) = ring {
            let policy = if lossless {
                fshm::RingPolicy::Lossless
            } else {
                fshm::RingPolicy::Lossy
            };
            o.ring(cap, policy);
        } else if lossless {
            return Err(PyValueError::new_err(
                "lossless=True needs a ring (ring=capacity)",
            ));
        }
        let s = py.detach(|| o.create(name)).map_err(py_err)?;
        Ok(Handle::wrap(s))
    }

    /// Opens the existing stream `name` as a guest; with `owner_uid`, only if that user
    /// owns it (`OpenOptions::owner_uid`: else `PermissionError`, `EPERM`).
    #[staticmethod]
    #[pyo3(signature = (name, append, readonly, owner_uid=None))]
    fn open(
        py: Python<'_>,
        name: &str,
        append: bool,
        readonly: bool,
        owner_uid: Option<u32>,
    ) -> PyResult<Handle> {
        let mut o = fshm::OpenOptions::new();
        o.append(append).read_only(readonly);
        if let Some(uid) = owner_uid {
            o.owner_uid(uid);
        }
        let s = py.detach(|| o.open(name)).map_err(py_err)?;
        Ok(Handle::wrap(s))
    }

    /// Another handle on the stream, as a guest, at this handle's position.
    fn try_clone(&self, py: Python<'_>) -> PyResult<Handle> {
        let s = self.get()?;
        let c = py.detach(|| s.try_clone()).map_err(py_err)?;
        Ok(Handle::wrap(c))
    }

    /// Reads into `buf` without waiting; returns the byte count (0 at the end).
    fn readinto(&self, py: Python<'_>, buf: &Bound<'_, PyAny>) -> PyResult<usize> {
        let s = self.get()?;
        self.moving()?;
        let mut h = Held::get(buf, true)?;
        self.check_destination(&s, &h)?;
        if h.len > DETACH_COPY {
            py.detach(|| (&*s).read(h.bytes_mut()))
        } else {
            (&*s).read(h.bytes_mut())
        }
        .map_err(py_err)
    }

    /// Reads into `buf` as a follower: waits (GIL released) for data or the end.
    #[pyo3(signature = (buf, spin=None, timeout=None))]
    fn follow_readinto(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        spin: Option<f64>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let s = self.get()?;
        self.moving()?;
        let spin = secs(spin)?.unwrap_or(fshm::DEFAULT_SPIN);
        let timeout = secs(timeout)?;
        let mut h = Held::get(buf, true)?;
        self.check_destination(&s, &h)?;
        // A non-waiting look first: data is often there already.
        let n = if h.len <= DETACH_COPY {
            (&*s).read(h.bytes_mut()).map_err(py_err)?
        } else {
            0
        };
        if n > 0 {
            return Ok(n);
        }
        py.detach(|| s.follow().spin(spin).timeout(timeout).read(h.bytes_mut()))
            .map_err(py_err)
    }

    /// Writes `buf`; returns the byte count.
    fn write(&self, py: Python<'_>, buf: &Bound<'_, PyAny>) -> PyResult<usize> {
        let s = self.get()?;
        self.moving()?;
        let h = Held::get(buf, false)?;
        if self.write_may_wait() || h.len > DETACH_COPY {
            py.detach(|| (&*s).write(h.bytes()))
        } else {
            (&*s).write(h.bytes())
        }
        .map_err(py_err)
    }

    /// Writes each buffer of `bufs` in turn (one call for many small messages); returns
    /// the total byte count.
    fn write_many(&self, py: Python<'_>, bufs: &Bound<'_, PyAny>) -> PyResult<usize> {
        let s = self.get()?;
        self.moving()?;
        let mut held = Vec::new();
        for b in bufs.try_iter()? {
            held.push(Held::get(&b?, false)?);
        }
        let run = || -> io::Result<usize> {
            let mut total = 0;
            for h in &held {
                (&*s).write_all(h.bytes())?;
                total += h.len;
            }
            Ok(total)
        };
        if self.write_may_wait() {
            py.detach(run)
        } else {
            run()
        }
        .map_err(py_err)
    }

    /// Moves the position (`whence` 0: from the start, 1: from the position, 2: from
    /// the end); returns the new position.
    fn seek(&self, offset: i64, whence: i32) -> PyResult<u64> {
        let s = self.get()?;
        self.moving()?;
        let to = match whence {
            0 => SeekFrom::Start(u64::try_from(offset).map_err(|_| {
                PyOSError::new_err((libc::EINVAL, "negative seek position", self.name.clone()))
            })?),
            1 => SeekFrom::Current(offset),
            2 => SeekFrom::End(offset),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "invalid whence ({whence}, should be 0, 1 or 2)"
                )))
            }
        };
        (&*s).seek(to).map_err(py_err)
    }

    /// The position.
    fn tell(&self) -> PyResult<u64> {
        Ok(self.get()?.position())
    }

    /// Sets the length (a logical truncate or extension).
    fn set_len(&self, len: u64) -> PyResult<()> {
        self.get()?.set_len(len).map_err(py_err)
    }

    /// Waits (GIL released) for data past `pos`: 0 data, 1 ended, 2 timed out.
    #[pyo3(signature = (pos, timeout=None))]
    fn wait_for(&self, py: Python<'_>, pos: u64, timeout: Option<f64>) -> PyResult<u8> {
        let s = self.get()?;
        let t = secs(timeout)?;
        Ok(match py.detach(|| s.wait_for(pos, t)) {
            fshm::WaitStatus::Data => 0,
            fshm::WaitStatus::Ended => 1,
            _ => 2,
        })
    }

    /// The committed bytes at the position, in place, as a read-only memoryview (empty
    /// at the end); with `wait`, waits (GIL released) for data or the end first.
    #[pyo3(signature = (wait=false))]
    fn read_in_place<'py>(
        slf: &Bound<'py, Self>,
        py: Python<'py>,
        wait: bool,
    ) -> PyResult<Bound<'py, PyMemoryView>> {
        let me = slf.get();
        let s = me.get()?;
        // Sampled before the GIL is released: another thread that moves the position
        // while this one waits and lends (a read, a seek, a consume) moves it on, and
        // the view then refuses to be exported (its bytes may already be overwritten).
        let generation = me.generation.load(Ordering::Relaxed);
        let lend = |wait| s.lend_in_place(wait).map(|g| (g.ptr as usize, g.len));
        let (ptr, len) = if wait {
            py.detach(|| lend(true))
        } else {
            lend(false)
        }
        .map_err(py_err)?;
        let view = View {
            handle: slf.clone().unbind(),
            ptr,
            len: len as isize,
            writable: false,
            // An immutable stream's bytes stay valid while the handle lives.
            generation: (!me.immutable).then_some(generation),
        };
        let view = Bound::new(py, view)?;
        PyMemoryView::from(view.as_any())
    }

    /// Moves the position past `n` of the bytes `read_in_place` lent.
    fn consume(&self, n: usize) -> PyResult<()> {
        let s = self.get()?;
        // On a ring, refused while lent bytes are exported, and lent views are spent;
        // an immutable stream's lent bytes stay valid.
        self.moving()?;
        s.consume_in_place(n).map_err(py_err)
    }

    /// Reserves `n` bytes at the end, as a writable memoryview to fill and `commit`.
    fn reserve<'py>(
        slf: &Bound<'py, Self>,
        py: Python<'py>,
        n: usize,
    ) -> PyResult<Bound<'py, PyMemoryView>> {
        let me = slf.get();
        let s = me.get()?;
        me.moving()?;
        // Sampled before the GIL is released: a commit (or a move) by another thread
        // while this one reserves makes the view refuse to be exported.
        let generation = me.generation.load(Ordering::Relaxed);
        let reserve = || s.reserve_in_place(n, None).map(|p| p as usize);
        let ptr = if me.write_may_wait() {
            py.detach(reserve)
        } else {
            reserve()
        }
        .map_err(py_err)?;
        let view = View {
            handle: slf.clone().unbind(),
            ptr,
            len: n as isize,
            writable: true,
            generation: Some(generation),
        };
        let view = Bound::new(py, view)?;
        PyMemoryView::from(view.as_any())
    }

    /// Commits the first `n` bytes of the open reservation and closes it.
    fn commit(&self, n: usize) -> PyResult<()> {
        let s = self.get()?;
        if self.res_exports.load(Ordering::Relaxed) > 0 {
            return Err(PyBufferError::new_err(format!(
                "fshm stream {:?}: views of the reservation are still exported; release \
                 them (del the arrays, memoryview.release()) before committing",
                self.name
            )));
        }
        self.moving()?;
        self.generation.fetch_add(1, Ordering::Relaxed);
        s.commit_in_place(n).map_err(py_err)
    }

    /// The stream position whose byte this handle's mapping holds at address `addr`, or
    /// None if `addr` is not in the mapping's data.
    fn address_position(&self, addr: usize) -> PyResult<Option<u64>> {
        let s = self.get()?;
        Ok(if s.is_ring() {
            // A ring's data is mapped twice in a row: positions are taken modulo its
            // capacity.
            s.position_in_window(addr as *const u8)
                .map(|p| p % s.ring_capacity().unwrap_or(u64::MAX))
        } else {
            s.position_in_window(addr as *const u8)
        })
    }

    /// Lossless ring: the longest a write waits for readers (None: no limit).
    #[pyo3(signature = (timeout=None))]
    fn set_write_timeout(&self, timeout: Option<f64>) -> PyResult<()> {
        self.get()?.set_write_timeout(secs(timeout)?);
        Ok(())
    }

    /// Closes the handle (the owner removes the name unless the stream persists).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let exported =
            self.lent_exports.load(Ordering::Relaxed) + self.res_exports.load(Ordering::Relaxed);
        if exported > 0 {
            return Err(PyBufferError::new_err(format!(
                "fshm stream {:?}: cannot close while {exported} view(s) of its mapping are \
                 exported",
                self.name
            )));
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
        let s = self.stream.lock().take();
        // The last reference unmaps and (for an owner) removes the name.
        py.detach(|| drop(s));
        Ok(())
    }

    /// Whether the handle is closed.
    #[getter]
    fn closed(&self) -> bool {
        self.stream.lock().is_none()
    }

    /// The descriptor of the stream's shm object.
    fn fileno(&self) -> PyResult<RawFd> {
        Ok(self.get()?.as_raw_fd())
    }

    /// Stream name, canonical (`/name`).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is a ring stream.
    #[getter]
    fn is_ring(&self) -> bool {
        self.ring
    }

    /// Whether this is a lossless ring.
    #[getter]
    fn is_lossless(&self) -> bool {
        self.lossless
    }

    /// Whether committed bytes are never rewritten.
    #[getter]
    fn is_immutable(&self) -> bool {
        self.immutable
    }

    /// Whether every write of this handle appends atomically.
    #[getter]
    fn is_append(&self) -> bool {
        self.append
    }

    /// Whether this handle may write.
    #[getter]
    fn is_writable(&self) -> PyResult<bool> {
        Ok(self.get()?.is_writable())
    }

    /// Whether the name outlives the owner's close.
    #[getter]
    fn is_persistent(&self) -> PyResult<bool> {
        Ok(self.get()?.is_persistent())
    }

    /// Whether this handle created the stream.
    #[getter]
    fn is_owner(&self) -> PyResult<bool> {
        Ok(self.get()?.role() == fshm::Role::Owner)
    }

    /// Whether this handle holds a lossless ring's reader slot.
    #[getter]
    fn is_attached(&self) -> PyResult<bool> {
        Ok(self.get()?.is_attached())
    }

    /// The committed length (for a ring, every byte ever committed).
    #[getter]
    fn length(&self) -> PyResult<u64> {
        Ok(self.get()?.len())
    }

    /// The largest length the stream may reach.
    #[getter]
    fn max_size(&self) -> PyResult<u64> {
        Ok(self.get()?.max_size())
    }

    /// A ring's capacity; None for a linear stream.
    #[getter]
    fn ring_capacity(&self) -> PyResult<Option<u64>> {
        Ok(self.get()?.ring_capacity())
    }

    /// A ring's oldest position still held (0 for a linear stream).
    #[getter]
    fn oldest(&self) -> PyResult<u64> {
        Ok(self.get()?.oldest())
    }

    /// Bytes this handle lost to ring overruns so far.
    #[getter]
    fn lost_bytes(&self) -> PyResult<u64> {
        Ok(self.get()?.lost_bytes())
    }

    /// The owner's state: alive, closed, dead or unknown.
    #[getter]
    fn owner_state(&self) -> PyResult<&'static str> {
        Ok(owner_state(self.get()?.owner_state()))
    }

    /// The stream's state (as `inspect`), read through this handle.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        info_dict(py, &self.get()?.info().map_err(py_err)?)
    }
}

fn owner_state(o: fshm::OwnerState) -> &'static str {
    match o {
        fshm::OwnerState::Alive => "alive",
        fshm::OwnerState::Closed => "closed",
        fshm::OwnerState::Dead => "dead",
        _ => "unknown",
    }
}

fn info_dict<'py>(py: Python<'py>, i: &fshm::StreamInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &i.name)?;
    d.set_item("length", i.len)?;
    d.set_item("max_size", i.max_size)?;
    d.set_item("ring_capacity", i.ring_capacity)?;
    d.set_item("lossless", i.lossless)?;
    d.set_item("persistent", i.persistent)?;
    d.set_item("mode", i.mode)?;
    d.set_item("uid", i.uid)?;
    d.set_item("gid", i.gid)?;
    d.set_item("owner", owner_state(i.owner))?;
    d.set_item("attached_readers", i.attached_readers)?;
    d.set_item("object_size", i.object_size)?;
    d.set_item("replica_of", i.replica_of.as_deref())?;
    d.set_item("stale", i.stale)?;
    Ok(d)
}

/// Bytes of a handle's mapping lent to Python through the buffer protocol: what
/// `Handle.read_in_place` (read-only) and `Handle.reserve` (writable) wrap in a memoryview.
#[pyclass(frozen, module = "fshm._fshm")]
pub struct View {
    /// Keeps the handle, and so its mapping, alive while the view lives.
    handle: Py<Handle>,
    ptr: usize,
    /// The length, where `Py_buffer.shape` points.
    len: isize,
    writable: bool,
    /// The handle's generation the bytes are valid in; `None`: valid while the handle
    /// is open (an immutable stream's committed bytes).
    generation: Option<u64>,
}

impl View {
    fn counter<'a>(&self, h: &'a Handle) -> &'a AtomicUsize {
        if self.writable {
            &h.res_exports
        } else {
            &h.lent_exports
        }
    }
}

/// `Py_buffer.strides` for one-byte items.
static ONE: isize = 1;

#[pymethods]
impl View {
    /// # Safety
    /// Called by Python with a `Py_buffer` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let me = slf.get();
        let h = me.handle.get();
        let valid = !h.closed()
            && me
                .generation
                .is_none_or(|g| g == h.generation.load(Ordering::Relaxed));
        if !valid {
            return Err(PyBufferError::new_err(
                "these bytes are no longer valid (consumed, committed, or the stream closed)",
            ));
        }
        if flags & pyo3::ffi::PyBUF_WRITABLE != 0 && !me.writable {
            return Err(PyBufferError::new_err("bytes read in place are read-only"));
        }
        me.counter(h).fetch_add(1, Ordering::Relaxed);
        let format: *mut std::ffi::c_char = if flags & pyo3::ffi::PyBUF_FORMAT != 0 {
            c"B".as_ptr() as *mut _
        } else {
            std::ptr::null_mut()
        };
        // SAFETY: Python hands us a `Py_buffer` to fill; we fill every field. `obj` takes
        // a new reference to the view, which holds the handle and so the mapping, and
        // the handle refuses to close, commit or (on a ring) move while the export is
        // counted. `shape` and `strides` point into the view object and a static, both
        // alive as long as `obj`; `format` points to a static C string.
        unsafe {
            (*view).obj = slf.clone().into_any().into_ptr();
            (*view).buf = me.ptr as *mut c_void;
            (*view).len = me.len;
            (*view).readonly = c_int::from(!me.writable);
            (*view).itemsize = 1;
            (*view).format = format;
            (*view).ndim = 1;
            (*view).shape = if flags & pyo3::ffi::PyBUF_ND != 0 {
                &me.len as *const isize as *mut isize
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if flags & pyo3::ffi::PyBUF_STRIDES == pyo3::ffi::PyBUF_STRIDES {
                &ONE as *const isize as *mut isize
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }

    /// # Safety
    /// Called by Python once per successful `__getbuffer__`.
    unsafe fn __releasebuffer__(&self, _view: *mut pyo3::ffi::Py_buffer) {
        self.counter(self.handle.get())
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// The address of the first byte (for tests and diagnostics).
    #[getter]
    fn address(&self) -> usize {
        self.ptr
    }

    fn __len__(&self) -> usize {
        self.len as usize
    }
}

/// Wakes an event loop: a waker that signals an eventfd the loop watches.
struct EventFdWake(OwnedFd);

impl Wake for EventFdWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live `u64` to a descriptor this waker owns. A
        // full counter (EAGAIN) already means "woken".
        unsafe {
            libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }
}

/// An async wait for one event loop: an [`fshm::AsyncWaiter`] whose waker signals an
/// eventfd (`fileno()`), which the loop watches (`loop.add_reader`). No thread per
/// stream: the crate's reactor wakes the eventfd when a writer commits or the owner
/// closes or dies.
#[pyclass(module = "fshm._fshm")]
pub struct Waiter {
    // Field order matters for drop: the registration goes before the stream it names.
    waiter: fshm::AsyncWaiter,
    stream: Option<Arc<fshm::Stream>>,
    wake: Arc<EventFdWake>,
}

#[pymethods]
impl Waiter {
    #[new]
    fn new() -> PyResult<Waiter> {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(py_err(io::Error::last_os_error()));
        }
        Ok(Waiter {
            waiter: fshm::AsyncWaiter::new(),
            stream: None,
            // SAFETY: `fd` is a new descriptor that nothing else owns.
            wake: Arc::new(EventFdWake(unsafe { OwnedFd::from_raw_fd(fd) })),
        })
    }

    /// The eventfd to watch for readability.
    fn fileno(&self) -> RawFd {
        self.wake.0.as_raw_fd()
    }

    /// Polls for data past `pos` in `handle`'s stream: True (data), False (ended), or
    /// None (pending: the eventfd becomes readable when it is worth polling again).
    fn poll(&mut self, handle: &Bound<'_, Handle>, pos: u64) -> PyResult<Option<bool>> {
        let mut drained = 0u64;
        // SAFETY: reads 8 bytes into a live `u64` from the eventfd this waiter owns
        // (non-blocking: EAGAIN when nothing was signalled).
        unsafe {
            libc::read(
                self.wake.0.as_raw_fd(),
                (&mut drained as *mut u64).cast(),
                8,
            );
        }
        let s = handle.get().get()?;
        if !self.stream.as_ref().is_some_and(|old| Arc::ptr_eq(old, &s)) {
            self.waiter.cancel();
            self.stream = Some(s);
        }
        let s = self.stream.as_ref().expect("set above");
        let waker = Waker::from(self.wake.clone());
        let mut cx = Context::from_waker(&waker);
        Ok(match self.waiter.poll_wait_for(s, pos, &mut cx) {
            Poll::Ready(fshm::WaitStatus::Data) => Some(true),
            Poll::Ready(fshm::WaitStatus::Ended) => Some(false),
            _ => None,
        })
    }

    /// Ends the wait in progress (removes its registration) and lets go of the stream.
    fn cancel(&mut self) {
        self.waiter.cancel();
        self.stream = None;
    }
}

/// The state of the stream `name`, without joining it.
#[pyfunction]
fn inspect<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    let i = py.detach(|| fshm::inspect(name)).map_err(py_err)?;
    info_dict(py, &i)
}

/// The streams in `/dev/shm` this process may read (those under `prefix` if given).
#[pyfunction]
#[pyo3(signature = (prefix=None))]
fn list_streams<'py>(py: Python<'py>, prefix: Option<&str>) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let all = py
        .detach(|| match prefix {
            Some(p) => fshm::list_with_prefix(p),
            None => fshm::list(),
        })
        .map_err(py_err)?;
    all.iter().map(|i| info_dict(py, i)).collect()
}

/// Removes the stream `name` whatever its owner's state.
#[pyfunction]
fn force_destroy(py: Python<'_>, name: &str) -> PyResult<()> {
    py.detach(|| fshm::force_destroy(name)).map_err(py_err)
}

/// Removes the stream `name` if its owner is gone; whether it did.
#[pyfunction]
fn reclaim(py: Python<'_>, name: &str) -> PyResult<bool> {
    py.detach(|| fshm::reclaim(name)).map_err(py_err)
}

/// The native half of the Python package `fshm`.
#[pymodule]
fn _fshm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Handle>()?;
    m.add_class::<View>()?;
    m.add_class::<Waiter>()?;
    m.add("Overrun", m.py().get_type::<Overrun>())?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(list_streams, m)?)?;
    m.add_function(wrap_pyfunction!(force_destroy, m)?)?;
    m.add_function(wrap_pyfunction!(reclaim, m)?)?;
    m.add("DEFAULT_MODE", fshm::DEFAULT_MODE)?;
    m.add("DEFAULT_MAX_SIZE", fshm::DEFAULT_MAX_SIZE)?;
    m.add("DEFAULT_SPIN", fshm::DEFAULT_SPIN.as_secs_f64())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

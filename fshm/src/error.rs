//! Errors: every failure is an `io::Error` whose message names the stream and whose
//! `errno` (for the C API) can be recovered with [`errno_of`].

use std::fmt;
use std::io;

pub(crate) type Result<T> = io::Result<T>;

/// The inner error of every `io::Error` fshm makes: which stream, what failed, `errno`.
#[derive(Debug)]
pub struct StreamError {
    stream: String,
    what: String,
    errno: i32,
    overrun: Option<Overrun>,
}

impl StreamError {
    /// The stream the error concerns, as given by the caller.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The `errno` value the C API reports for this error.
    pub fn errno(&self) -> i32 {
        self.errno
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fshm stream {:?}: {}", self.stream, self.what)?;
        if self.errno != 0 {
            write!(f, " ({})", io::Error::from_raw_os_error(self.errno))?;
        }
        Ok(())
    }
}

impl std::error::Error for StreamError {}

/// An error about `stream` with `errno` and a message; the kind follows from `errno`.
pub(crate) fn os(stream: &str, errno: i32, what: impl Into<String>) -> io::Error {
    let kind = match errno {
        libc::EFBIG => io::ErrorKind::FileTooLarge,
        libc::EPROTO => io::ErrorKind::InvalidData,
        libc::EINVAL => io::ErrorKind::InvalidInput,
        libc::EBADF => io::ErrorKind::PermissionDenied,
        libc::ETIMEDOUT => io::ErrorKind::TimedOut,
        _ => io::Error::from_raw_os_error(errno).kind(),
    };
    io::Error::new(
        kind,
        StreamError {
            stream: stream.to_owned(),
            what: what.into(),
            errno,
            overrun: None,
        },
    )
}

/// `EINVAL`: bad argument.
pub(crate) fn invalid(stream: &str, what: impl Into<String>) -> io::Error {
    os(stream, libc::EINVAL, what)
}

/// `EPROTO`: the object is not an fshm stream, or its header is malformed.
pub(crate) fn not_fshm(stream: &str, what: impl Into<String>) -> io::Error {
    os(stream, libc::EPROTO, what)
}

/// The error of opening `stream`'s object by name (`sys::shm_open`): `EPROTO` from
/// there means what is at the name is no regular file, which the message says.
pub(crate) fn open_failed(stream: &str, errno: i32, what: &str) -> io::Error {
    if errno == libc::EPROTO {
        not_fshm(
            stream,
            format!(
                "{what}: not an fshm stream (a directory, FIFO, socket, device or symbolic \
                 link is at its name)"
            ),
        )
    } else {
        os(stream, errno, what)
    }
}

/// A ring reader fell more than the capacity behind: `lost` bytes were overwritten
/// before it read them. The inner error of the `io::Error` a ring read returns then
/// (`errno` `ENOBUFS`, as for an overrun netlink socket); see [`overrun_of`]. The
/// handle's position has moved to [`resume_at`](Overrun::resume_at), the oldest byte
/// still held, so the next read resumes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun {
    lost: u64,
    resume_at: u64,
}

impl Overrun {
    /// Bytes lost by this overrun.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The position reading resumes at: the oldest byte still held.
    pub fn resume_at(&self) -> u64 {
        self.resume_at
    }
}

/// The overrun error: an `io::Error` whose inner error is a [`StreamError`] wrapping
/// the figures, recoverable with [`overrun_of`].
pub(crate) fn overrun(stream: &str, lost: u64, resume_at: u64) -> io::Error {
    io::Error::other(StreamError {
            stream: stream.to_owned(),
            what: format!(
                "reader overrun: {lost} bytes were overwritten before they were read; resuming at position {resume_at}"
            ),
            errno: libc::ENOBUFS,
            overrun: Some(Overrun { lost, resume_at }),
    })
}

/// The [`Overrun`] behind `e`, if `e` is a ring reader's overrun error.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::{Read, Write};
/// let name = format!("/doc-overrun-{}", std::process::id());
/// let mut owner = fshm::OpenOptions::new()
///     .ring(4096, fshm::RingPolicy::Lossy)
///     .create(&name)?;
/// let mut reader = fshm::Stream::open(&name)?;   // starts at position 0
/// owner.write_all(&[1u8; 4096])?;
/// owner.write_all(&[2u8; 1000])?;               // overwrites the first 1000 bytes
/// let e = reader.read(&mut [0u8; 10]).unwrap_err();
/// let lost = fshm::overrun_of(&e).expect("an overrun");
/// assert_eq!((lost.lost(), lost.resume_at()), (1000, 1000));
/// assert_eq!(fshm::errno_of(&e), libc::ENOBUFS);
/// # Ok(()) }
/// ```
pub fn overrun_of(e: &io::Error) -> Option<Overrun> {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<StreamError>())
        .and_then(|se| se.overrun)
}

/// The `errno` that stands for `e` in the C API: the inner [`StreamError`]'s, else the
/// OS error's, else `EIO`.
pub fn errno_of(e: &io::Error) -> i32 {
    if let Some(se) = e.get_ref().and_then(|i| i.downcast_ref::<StreamError>()) {
        return se.errno;
    }
    e.raw_os_error().unwrap_or(libc::EIO)
}

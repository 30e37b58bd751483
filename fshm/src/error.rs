//! Errors: every failure is an `io::Error` whose message names the stream and whose
//! `errno` (for the C API) can be recovered with [`errno_of`](crate::errno_of).

use fshm_sys::libc;
use std::fmt;
use std::io;

pub(crate) type Result<T> = io::Result<T>;

/// The inner error of every `io::Error` fshm makes: which stream, what failed, `errno`.
#[derive(Debug)]
pub struct StreamError {
    stream: String,
    what: String,
    errno: i32,
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

/// The `errno` that stands for `e` in the C API: the inner [`StreamError`]'s, else the
/// OS error's, else `EIO`.
pub fn errno_of(e: &io::Error) -> i32 {
    if let Some(se) = e.get_ref().and_then(|i| i.downcast_ref::<StreamError>()) {
        return se.errno;
    }
    e.raw_os_error().unwrap_or(libc::EIO)
}

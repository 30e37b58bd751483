//! Follow readers: `Read` that waits for data like a pipe's and ends when the owner
//! closes or dies.

use crate::error::{invalid, os};
use crate::handle::{Core, WaitStatus};
use crate::inplace::{look, Look};
use crate::stream::Stream;
use std::io::{self, BufRead, Read};
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

/// How long a follower polls the length before it sleeps, by default: 20 µs, about what
/// a sleeping wake-up across cores costs on the machines fshm was measured on (so
/// spinning never costs more than twice the best choice made in hindsight). While both
/// processes have a core, a writer's commit is seen in well under a microsecond. See
/// `BENCHMARKS.md` for the measurements.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// A blocking reader on a [`Stream`]: [`Read::read`] returns data as it is committed,
/// waits (spinning briefly, then sleeping on a futex) while there is none, and returns
/// `Ok(0)` — end-of-stream — once the owner has closed the stream or died and every
/// committed byte has been read. Wrap it in a [`std::io::BufReader`] for `lines()`.
///
/// It reads through its stream's handle, moving that handle's position.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::{BufRead, BufReader, Write};
/// let name = format!("/doc-follow-{}", std::process::id());
/// let mut owner = fshm::Stream::create(&name)?;
/// let guest = fshm::Stream::open(&name)?;
/// let writer = std::thread::spawn(move || {
///     for i in 0..3 {
///         writeln!(owner, "line {i}").unwrap();
///     }
///     // dropping the owner ends the stream for followers
/// });
/// let lines: Vec<String> = BufReader::new(guest.follow()).lines().collect::<Result<_, _>>()?;
/// writer.join().unwrap();
/// assert_eq!(lines, ["line 0", "line 1", "line 2"]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Follower<'a> {
    pub(crate) stream: &'a Stream,
    pub(crate) spin: Duration,
    pub(crate) timeout: Option<Duration>,
}

impl Stream {
    /// A blocking [`Follower`] reading from this handle's position.
    pub fn follow(&self) -> Follower<'_> {
        Follower {
            stream: self,
            spin: DEFAULT_SPIN,
            timeout: None,
        }
    }
}

impl Follower<'_> {
    /// How long to poll before sleeping (`Duration::ZERO`: sleep at once). Spinning
    /// cuts wake-up latency while both processes have a core, at the price of CPU time.
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Longest wait for data in one `read`; past it `read` fails with `TimedOut`
    /// (`ETIMEDOUT`). `None`, the default, waits without limit.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The stream followed.
    pub fn stream(&self) -> &Stream {
        self.stream
    }
}

impl Read for Follower<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `read_uninit` writes only bytes copied from the stream.
        self.read_uninit(unsafe { crate::sys::uninit(buf) })
    }
}

impl Follower<'_> {
    /// `Read::read` into a buffer that may be uninitialised: on `Ok(n)`, `buf[..n]` is
    /// initialised.
    pub(crate) fn read_uninit(&mut self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            // One lock per look: the position to wait from comes with the empty read.
            let pos = {
                let mut c = self.stream.cursor.lock();
                let n = self.stream.core.read_cursor(&mut c, buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                c.pos
            };
            if wait_past(&self.stream.core, pos, deadline, self.spin)? {
                return Ok(0);
            }
        }
    }
}

/// A shared follower reads an immutable stream in place as its handle does (see
/// [`BufRead` for `Stream`](Stream#impl-BufRead-for-Stream)), but
/// [`fill_buf`](BufRead::fill_buf) waits for data like [`Read::read`] does, and
/// returns an empty slice at end-of-stream (the owner closed or died and every
/// committed byte was consumed).
///
/// On a ring use [`FollowerMut`](crate::FollowerMut) ([`Stream::follow_mut`]): a follower made by
/// [`Stream::follow`] shares its handle, whose position (and so the slot that holds the
/// writer back) other users could move while bytes are lent.
///
/// # Errors
/// As for `Stream`; `InvalidInput` on a ring; `TimedOut` (`ETIMEDOUT`) past the
/// follower's timeout.
impl BufRead for Follower<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let core = &self.stream.core;
        if core.is_ring() {
            return Err(invalid(
                core.name(),
                "a shared follower of a ring cannot read in place: use Stream::follow_mut",
            ));
        }
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let mut ended = false;
        loop {
            match look(core, &mut self.stream.cursor.lock(), ended)? {
                Look::Lent(ptr, n) => {
                    // SAFETY: as for `Stream`'s `fill_buf`; on an immutable stream the
                    // bytes never change whoever moves the position, and the window
                    // lives as long as the stream.
                    return Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), n) });
                }
                Look::Wait(pos) => ended = wait_past(core, pos, deadline, self.spin)?,
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.stream
            .core
            .consume_clamped(&mut self.stream.cursor.lock(), n);
    }
}

/// Waits for data past `pos`: `Ok(true)` when the stream ended (bytes committed before
/// the end were seen by the wait: look once more).
pub(crate) fn wait_past(
    core: &Core,
    pos: u64,
    deadline: Option<Instant>,
    spin: Duration,
) -> io::Result<bool> {
    match core.wait_until(pos, deadline, spin) {
        WaitStatus::Data => Ok(false),
        WaitStatus::Ended => Ok(true),
        WaitStatus::TimedOut => Err(os(
            core.name(),
            libc::ETIMEDOUT,
            "no data within the follower's timeout",
        )),
    }
}

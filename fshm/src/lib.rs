//! # fshm — named byte streams in POSIX shared memory
//!
//! A stream is a named byte sequence in shared memory, named like a file: `/metrics`,
//! `/streams/my_stream` (see [Names](#names)). One process, the **owner**, creates it;
//! any number of **guest** processes open it by name. Every handle reads and writes the same bytes through `std::io`'s
//! `Read`, `Write` and `Seek`, with its own position, as with separate `open()`s of one
//! file — plus what files lack for IPC: a reader can wait for new data, and learns when the
//! owner is gone.
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! use std::io::{Read, Write};
//! let name = format!("/doc-crate-{}", std::process::id());
//! let mut owner = fshm::Stream::create(&name)?;      // owner: creates the name
//! owner.write_all(b"temperature=21.5\n")?;
//!
//! let mut guest = fshm::Stream::open(&name)?;        // guest: any process, by name
//! let mut line = String::new();
//! guest.read_to_string(&mut line)?;
//! assert_eq!(line, "temperature=21.5\n");
//! drop(owner);                                        // the owner removes the name
//! assert!(fshm::Stream::open(&name).is_err());
//! # Ok(()) }
//! ```
//!
//! ## Names
//!
//! A stream name is one or more `/`-separated components: `/metrics`,
//! `/streams/my_stream`, `app/shard-3/events`. The leading `/` is optional (`metrics`
//! and `/metrics` are one stream). Refused with `InvalidInput` (`EINVAL`): an empty
//! name, an empty component (`//`, a trailing `/`), a component `.` or `..`, a NUL
//! byte, a name whose object name (below) is longer than [`OBJECT_NAME_MAX`] (255,
//! the system's `NAME_MAX`) bytes, and a name that starts with `sem.` (its object
//! would be in glibc's namespace of named semaphores, `/dev/shm/sem.*`, which
//! `sem_open` uses; `sem`, `/sem/x` and `/x/sem.y` are fine).
//!
//! `shm_open` takes only flat names, and fshm creates no directories in `/dev/shm`
//! (another user could pre-create or swap them), so each name maps to one flat shm
//! object: `/` followed by the components joined by `%2F`, where every `%` inside a
//! component is written `%25`. `/streams/my_stream` is the object `/streams%2Fmy_stream`
//! (the file `/dev/shm/streams%2Fmy_stream`); `/50%` is `/50%25`. The rule is
//! reversible and no two names share an object: the flat name `a%2Fb` is the object
//! `/a%252Fb`, never the stream `/a/b`. [`object_name`] and [`stream_name`] apply it.
//! The limit counts the object name without its leading `/`: each `/` between
//! components and each `%` takes 3 bytes there.
//!
//! Flat names without `%` map to the same objects as they always did, in shmfile 1.1.0
//! and earlier fshm versions alike. **Changed from those:** a flat name holding `%` now
//! maps to another object (`/50%` was the object `/50%`), so a stream that an older
//! program made under such a name is not found by that name. An object whose name holds
//! a `%` followed by anything but `2F` or `25` is the encoding of no stream name:
//! [`list`] leaves such objects out, streams' lock objects (`<object name>%lock.<key>`)
//! and streams being built (`<object name>%new.<key>`) among them.
//!
//! ## Promises
//!
//! - **Length** is the committed byte count, shared through an atomic in the header. A
//!   write becomes visible to other processes only whole: the bytes are copied first, then
//!   the new length is published with a release store; readers load it with acquire.
//!   Reading at or past the length returns 0.
//! - **Positions** are per handle. `SeekFrom::End` is relative to the length. Writing past
//!   the length extends it; the gap reads as zeros.
//! - **Growth**: each handle maps the whole maximum size once (default 1 GiB), on first
//!   use, so nobody remaps when another process grows the stream; opening and closing
//!   without reading or writing maps nothing. Growth reserves pages before they are
//!   touched (`fallocate`, or the kernel's write path for large writes), so a full
//!   `/dev/shm` is `ENOSPC` from the write, not a `SIGBUS` (`fshm/src/grow.rs` has the rule).
//!   Writing past the maximum: `EFBIG`; a write that fails commits nothing.
//! - **Truncation** ([`Stream::set_len`]) is logical: it never shrinks the object under
//!   other processes' mappings.
//! - **Owner liveness**: the owner holds an open-file-description lock on the object,
//!   which the kernel drops when the owner dies; [`Stream::owner_state`] and [`inspect`]
//!   report alive, closed or dead, and waits end when the owner closes or dies.
//!   (A child forked by the owner shares that lock while it keeps the descriptor.)
//! - **Creation is atomic for guests**: a stream is built under a name of its own and
//!   published whole ([`OpenOptions::create`]), so a guest never sees a half-made
//!   header and never waits for one: anything at a name without a whole header (an
//!   empty object, a missing or half-written magic) is refused at once with `EPROTO`.
//!
//! ## Ring streams
//!
//! A linear stream grows until its maximum: right for a file, wrong for a producer that
//! runs for days. A **ring stream** ([`OpenOptions::ring`]) keeps only the last
//! `capacity` bytes and reuses its pages, which stay mapped: bounded memory, and writes
//! at memory speed instead of the cost of fresh pages. Rings are append-only; positions
//! are absolute and keep growing; [`Stream::len`] counts every byte ever committed and
//! [`Stream::oldest`] is the oldest position still held. A new guest starts reading at
//! the oldest byte held.
//!
//! - [`RingPolicy::Lossy`] (broadcast): the writer never waits. A reader that fell more
//!   than the capacity behind gets an [`Overrun`] error (see [`overrun_of`]) saying how
//!   many bytes it lost, and its next read resumes at the oldest byte held. It never
//!   receives bytes that were overwritten while it copied them.
//! - [`RingPolicy::Lossless`] (back-pressure, like a pipe with many readers): the writer
//!   waits until every attached reader has consumed what it would overwrite. A guest
//!   opened read-write (and not for appending) attaches automatically
//!   ([`Stream::attach`], [`Stream::detach`]); a dead reader stops holding the writer
//!   back within 50 ms. Read-only guests read as lossy readers.
//!
//! Writes on a ring always land at the end. Handles opened with
//! [`OpenOptions::append`] serialise with each other across processes; a handle without
//! it writes lock-free and must then be the only writer. Within one process fshm
//! enforces that: a second writer of the other kind gets `EBUSY` (see "Safety of
//! in-place reads"); across processes it is the writers' rule to keep.
//!
//! ## Zero-copy
//!
//! Where the protocol guarantees that committed bytes stay as they are, a reader may see
//! them in place, as `&[u8]` in the shared mapping, and a writer may fill the space at
//! the end in place and commit it in one step:
//!
//! - An **immutable** stream ([`OpenOptions::immutable`], recorded in the header)
//!   never rewrites committed bytes: every write appends under the append token, a
//!   write that does not start at the end (a seek back, a positioned write) and
//!   truncation fail with `InvalidInput` (`EINVAL`). Every handle reads it in place.
//! - A **lossless ring** gives the same guarantee to an attached reader for the bytes
//!   it has not consumed: the writer waits for its slot, which moves on `consume`.
//!
//! In-place reads are [`std::io::BufRead`] on [`Stream`] and on a [`FollowerMut`]
//! ([`Stream::follow_mut`], which waits for data): `fill_buf` returns the committed
//! bytes at the position in the mapping, `consume` moves past them, so `lines()`,
//! `read_until()` and parsers copy nothing. The borrow of the handle holds the bytes.
//! (A shared [`Follower`] reads immutable streams in place too, but not rings: others
//! could move its handle's position, and with it the slot that holds the writer back.) On any other stream `fill_buf`
//! fails with `InvalidInput`: there another handle may rewrite the bytes while they
//! are lent (wrap the handle in a [`std::io::BufReader`] there, which copies).
//!
//! In-place writes are [`Stream::reserve`]: a [`Reservation`] of `n` bytes at the end,
//! a `&mut [u8]` into the mapping, then [`Reservation::commit`] of all or a prefix of
//! it; dropping it commits nothing.
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! use std::io::BufRead;
//! let name = format!("/doc-zerocopy-{}", std::process::id());
//! let mut owner = fshm::OpenOptions::new().immutable(true).create(&name)?;
//! let mut r = owner.reserve(6)?;
//! r.copy_from_slice(b"a\nbc\nd");
//! r.commit_all()?;
//! let mut guest = fshm::Stream::open(&name)?;
//! let mut line = Vec::new();
//! guest.read_until(b'\n', &mut line)?;      // fill_buf and consume, in place
//! assert_eq!(line, b"a\n");
//! assert_eq!(guest.fill_buf()?, b"bc\nd");
//! # Ok(()) }
//! ```
//!
//! In one process, a ring's writers are one handle without append mode or any number
//! of handles with it: a handle that would join the other kind gets `EBUSY`
//! (`ResourceBusy`) — see "Safety of in-place reads". A reservation holding the append
//! token makes another handle's append or reservation in the same thread fail with
//! `EDEADLK` (`Deadlock`) instead of waiting for itself; [`Stream::try_reserve`] and
//! [`Stream::reserve_timeout`] wait less.
//!
//! ## Safety of in-place reads
//!
//! `fill_buf` lends `&[u8]` and [`Stream::reserve`] lends `&mut [u8]` over shared
//! memory. Such a reference promises that nothing writes the bytes while it lives (and,
//! for `&mut`, that nothing else reads them through another path). What keeps the
//! promise, and where it ends:
//!
//! - **Within this process, safe code cannot break it.** Every handle follows the
//!   protocol: an immutable stream's bytes below the length are never written again
//!   (appends only, under the append token; `write_at`, `set_len` and writes not at the
//!   end fail); a reservation claims bytes past the length (under the append token, or
//!   as the ring's only plain writer); a lossless ring's writer waits for an attached
//!   reader's slot, which moves only on `consume`, and `fill_buf` borrows the handle
//!   mutably so nothing else moves it. A ring's non-append writes claim the end
//!   without a lock, so two such writers would claim the same bytes: in one process a
//!   ring is written by one handle without append mode (from its first write or
//!   reservation until it closes; clones, other guests, other threads and append handles
//!   get `EBUSY`) or by any number of append handles (serialised by the append token).
//!   Descriptors: [`AsFd`](std::os::fd::AsFd) and `AsRawFd` of a writable handle of a
//!   ring or an immutable stream give a read-only descriptor of its own, opened when
//!   the handle is made (`write`, `pwrite`, `ftruncate` and a writable shared `mmap`
//!   of it fail with `EBADF`/`EACCES`); the descriptor the handle writes through is
//!   never handed out (there is no `IntoRawFd` or `From<Stream> for OwnedFd`), and
//!   [`Stream::try_clone`] opens its own. The C API's `fileno()` is that read-only
//!   descriptor. A child made by `fork(2)` is another process (below); the rules start
//!   afresh in it, for its own handles and its copies of its parent's alike. What a
//!   fork copies of the parent's in-place state stays the parent's, although the fork
//!   shares its locks' open file descriptions: the child's copy of an open reservation
//!   cannot commit (`InvalidInput`) and goes without releasing the append token, and
//!   its copy of an attached reader holds no slot (it neither moves nor frees the
//!   parent's; it may attach to one of its own).
//! - **Opening the object again by a path is outside**, as it is for every memory map
//!   (memmap2's documentation of `Mmap::map` explains why its constructors are
//!   `unsafe`): `std::fs` can open `/dev/shm/<object name>` or
//!   `/proc/self/fd/<descriptor>` for writing where the mode bits allow, and write the
//!   bytes behind a reference. The standard library counts `/proc/self/mem` and
//!   `/proc/self/fd/*` as entities outside the program, beyond Rust's safety guarantees
//!   ([`std::os::unix::io`], "`/proc/self/mem` and similar OS features"); fshm counts a
//!   stream's object opened by path the same way. Do not write a stream's object but
//!   through fshm.
//! - **Other processes with write access are trusted.** They can write the object
//!   through their own mapping or descriptor and change bytes while this process lends
//!   them; the protocol holds only while they follow it, as the one-writer rule of a
//!   ring across processes does. Bytes whose change by an honest writer is part of the
//!   protocol (a lossy ring reader's copy, which an overrun check follows) are copied
//!   with atomic loads, never lent. Give processes you do not trust read-only mode
//!   bits: a read-only process can neither write the bytes (its mapping is `PROT_READ`)
//!   nor take a reader slot, so it can change nothing another process lends.
//!
//! A ring reader that copies bytes a writer may be overwriting (lossy, or not attached
//! to a slot) copies them with atomic loads, and a reservation's `&mut [u8]` is filled
//! with plain stores. In one process the two never meet: the reservation's bytes are
//! recorded under a per-object lock of this process before they are lent (and cleared
//! at commit or drop), and such a reader copies under that lock and copies none of
//! them. A reader whose bytes the reservation overwrites has been lapped (its position
//! lies below the reservation's end minus the capacity): it gets the overrun its copy
//! would have got, without the copy. Until this process first reserves in the object,
//! such a read takes no lock: it sets a flag of its thread, which that first
//! reservation waits out (one atomic swap per read, about 7 ns on a 64-byte read,
//! `BENCHMARKS.md`); attached readers of a lossless ring, which read without an
//! overrun check, pay nothing.
//!
//! ## Async
//!
//! Waiting for data needs no thread per stream. [`Stream::wait_async`] is a future for
//! "data past a position, or the end", and [`AsyncWaiter`] the same wait as a `poll`
//! function, for any runtime. With the `tokio` feature, `AsyncStream`
//! (`stream.into_async()`) is an async follower (`AsyncRead`, `AsyncBufRead`: data as it
//! is committed, end-of-stream once the owner closes or dies) and an async writer
//! (`AsyncWrite`: a lossless ring writer waits for room without blocking the runtime).
//!
//! An async waiter announces its sleep on the stream's futex word exactly as a blocking
//! one does, so writers still make no system call while nobody waits; then it registers
//! the word with the process's reactor: threads that each sleep in one `futex_waitv(2)`
//! on up to 127 words (1,000 waiting tasks, 8 threads). Those threads also probe each
//! waiter's owner, so a dead owner ends its followers and an idle task is never woken:
//! every tick (50 ms, coalesced up to a quarter more), or — where the owner's process
//! can be watched through a pidfd (same pid namespace, Linux 5.3+) — every second, and
//! at once when that process ends. An `AsyncStream` (feature `tokio`) also sleeps in an
//! io_uring `FUTEX_WAIT` request of its runtime where the kernel has them (Linux 6.7+),
//! so a writer's wake-up reaches the runtime's thread in one hop; like tokio's own I/O
//! types it needs a runtime with I/O enabled. Dropping a
//! future removes its registration. Without `futex_waitv` (Linux before 5.16, `ENOSYS`)
//! the reactor polls its words with naps growing to 10 ms. The costs measured are in
//! `docs/async-and-event-loops.md` ("What it costs") and `BENCHMARKS.md`.
//!
//! Without a runtime, the same waits serve event loops and many streams:
//! [`Stream::event_fd`] gives an [`EventFd`], a descriptor `poll`/`epoll`/`select` (and
//! mio, tokio's `AsyncFd`, ...) wait on, readable while data past the handle's position
//! is committed or once the stream has ended; [`wait_any`] blocks the calling thread
//! until any of many streams has data or has ended.
//!
//! ## Errors
//!
//! Every error is a [`std::io::Error`] with a fitting [`std::io::ErrorKind`] and a message
//! naming the stream; its inner error is a [`StreamError`], and [`errno_of`] gives the
//! `errno` the C API reports. Objects that are not fshm streams, of another layout
//! version, or with a malformed header are refused with `EPROTO`
//! (`ErrorKind::InvalidData`); so is, at once, anything but a regular file at a
//! stream's name (a FIFO, socket, directory, device or symbolic link): objects are
//! opened by name without following links and without waiting, and the descriptor is
//! checked before use.
//!
//! ## Trust
//!
//! Access to a stream is decided by its mode bits, owning user and group, as for a file,
//! when a process opens it; a mode change never revokes a handle already open.
//!
//! - **No access**: cannot open, [`inspect`] or remove the stream; [`list`] leaves it
//!   out. Anyone can see its name, owner and mode in `/dev/shm`. Nothing such a user
//!   puts in `/dev/shm` makes a create wait: the stream is built under a random name of
//!   its own and published in one step, its lock object is a new object (`O_EXCL`)
//!   under a random name recorded in the header; a name already taken fails at once
//!   with `EEXIST` naming the object. A reclaim ([`reclaim`], `fshm gc`, a create with
//!   [`OpenOptions::reclaim`]) waits at most [`RECLAIM_PATIENCE`] for a reclaim token
//!   that someone holds, then fails with `WouldBlock`.
//! - **Read-only** (the mode grants `r` only, or [`OpenOptions::read_only`]): reads,
//!   follows, waits; cannot write by any path (the raw fd included), cannot attach to a
//!   lossless ring, and cannot delay appenders, writers, writable waiters or opens, nor
//!   make a dead owner or reader look alive, nor hide a death by waking futex words
//!   (writable waiters sleep on words in the lock object, which it cannot open; waits
//!   re-check liveness at least every 50 ms whatever wake-ups arrive). The tokens that must be taken while
//!   readers have the stream open (appends, reader slots, reclaim) live on the stream's
//!   lock object, `<object name>%lock.<key>`, which only the classes that may write the stream
//!   can open; liveness probes see write locks only, which a read-only descriptor cannot
//!   take. The owner creates the object with its own bits only and applies the mode after
//!   it holds its token, so nobody else can get in first.
//! - **Writer**: every header value a writer may scribble is checked against this
//!   process's own window and, where it points past what was verified, against the
//!   object's real size (`fstat`) before use: a hostile header gives an error or
//!   end-of-stream, never an out-of-bounds access. Two boundaries remain, both making
//!   other processes' mappings fault (`SIGBUS`) where they copy through them:
//!   `ftruncate` of the object, and holes punched in committed data
//!   (`fallocate(FALLOC_FL_PUNCH_HOLE)`) once `/dev/shm` is full (while memory is left, a
//!   hole reads as zeros). A writer can also hold the append token or reader slots for as
//!   long as it lives, and make a dead owner look alive.
//! - **Owner**: a writer that also changes the mode and group ([`Stream::set_permissions`]
//!   and [`Stream::set_group`] change the lock object too: a `chmod`/`chown` of the
//!   stream's object alone leaves the two disagreeing) and removes the name on close.
//!
//! A name is not a credential: whoever creates a name first owns the stream there, and a
//! guest opening that name writes into, and reads from, that user's stream. A guest that
//! must not ([`OpenOptions::owner_uid`]) names the user it expects.
//!
//! Give untrusted readers read-only mode bits, and write access only to processes you
//! trust not to truncate the object, punch holes in it, or hold its tokens.
//! `RELIABILITY.md` has each line with the test that checks it.
//!
//! The header layout is documented in [`header`].
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "tokio")]
mod asyncstream;
mod asyncwait;
#[cfg(feature = "__c-layer")]
#[doc(hidden)]
pub mod c_layer;
mod error;
mod events;
mod follow;
mod grow;
mod handle;
pub mod header;
mod info;
mod inplace;
mod linear;
mod liveness;
mod local;
#[cfg(all(test, fshm_loom))]
mod loom_tests;
mod name;
mod open;
mod reactor;
mod ring;
mod stream;
mod sync;
mod sys;
#[cfg(feature = "__test-hooks")]
#[doc(hidden)]
pub mod test_hooks;
mod wait;
mod window;
mod zerocopy;

#[cfg(feature = "tokio")]
pub use asyncstream::AsyncStream;
pub use asyncwait::{AsyncWaiter, WaitFuture};
pub use error::{errno_of, overrun_of, Overrun, StreamError};
pub use events::{wait_any, wait_any_at, EventFd};
pub use follow::{Follower, DEFAULT_SPIN};
pub use handle::{Role, WaitStatus};
pub use info::{
    force_destroy, inspect, list, list_with_prefix, progress, reclaim, reclaim_unfinished,
    reclaim_within, Progress, StreamInfo, RECLAIM_PATIENCE, SHM_DIR,
};
pub use liveness::OwnerState;
pub use name::{object_name, stream_name, OBJECT_NAME_MAX};
pub use open::{OpenOptions, RingPolicy, DEFAULT_MAX_SIZE, DEFAULT_MODE};
pub use stream::Stream;
pub use zerocopy::{FollowerMut, Reservation};

/// Async-wait internals for tests and benchmarks (hidden; internal feature
/// `__reactor-stats`, not part of the API): registrations pending in this process's
/// reactor, its threads (alive now, most at once, started), and whether it sleeps in
/// `futex_waitv`.
#[cfg(feature = "__reactor-stats")]
#[doc(hidden)]
pub mod reactor_stats {
    /// Registrations pending in this process.
    pub fn registrations() -> usize {
        crate::reactor::registrations()
    }

    /// Reactor threads: (alive now, most alive at once, started in all).
    pub fn threads() -> (usize, usize, usize) {
        crate::reactor::thread_counts()
    }

    /// Runs `f` while this process's list of io_uring rings is locked, as another
    /// thread's close of a handle holds it for a moment: a child that `f` forks must
    /// not wait for it.
    #[cfg(all(feature = "tokio", feature = "__test-hooks"))]
    pub fn with_ring_list_locked<R>(f: impl FnOnce() -> R) -> R {
        crate::reactor::uring::with_list_locked(f)
    }

    /// Owner processes watched through a pidfd and not yet ended, in this process.
    pub fn watched_owners() -> usize {
        crate::reactor::owners::standing()
    }

    /// Waits asleep in io_uring requests of tokio runtimes (feature `tokio`), in this
    /// process.
    #[cfg(feature = "tokio")]
    pub fn uring_waits() -> usize {
        crate::reactor::uring::pending()
    }

    /// Whether `AsyncStream` waits go through io_uring here (`None`: not tried yet).
    #[cfg(feature = "tokio")]
    pub fn uses_io_uring() -> Option<bool> {
        crate::reactor::uring::supported()
    }

    /// Whether the reactor sleeps in `futex_waitv` (`false`: it polls its words).
    pub fn uses_futex_waitv() -> bool {
        crate::reactor::uses_futex_waitv()
    }

    /// Makes a reactor started after this call poll its words, as it does where the
    /// kernel lacks `futex_waitv` (for tests of that fallback).
    pub fn force_polling() {
        crate::reactor::FORCE_POLLING.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The code blocks of the README and of the guide (`docs/*.md`), compiled and run as
/// doctests so that they cannot go stale: ```` ```rust ```` blocks run (lines starting
/// with `# ` set up unique stream names and stand in for other processes); C and C++
/// blocks are compiled and run by `fshm-ffi/tests/doc_blocks.rs`.
#[cfg(doctest)]
mod doc_blocks {
    macro_rules! pages {
        ($($name:ident = $path:literal;)*) => {
            $(
                #[doc = include_str!($path)]
                pub struct $name;
            )*
        };
    }
    pages! {
        Readme = "../../README.md";
        Names = "../../docs/names.md";
        Rings = "../../docs/rings.md";
        WaitingAndLiveness = "../../docs/waiting-and-liveness.md";
        ZeroCopy = "../../docs/zero-copy.md";
        AsyncAndEventLoops = "../../docs/async-and-event-loops.md";
        Trust = "../../docs/trust.md";
        CAndMixedBuilds = "../../docs/c.md";
        CommandLine = "../../docs/cli.md";
        Python = "../../docs/python.md";
        DecisionsAndLimits = "../../docs/decisions-and-limits.md";
        Workspace = "../../docs/workspace.md";
    }
}

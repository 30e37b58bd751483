"""Named byte streams in POSIX shared memory, as Python files.

A stream is a named byte sequence in shared memory (``/metrics``,
``/streams/my_stream``). One process, the *owner*, creates it with :func:`create`;
any number of *guest* processes open it by name with :func:`open`. Every handle is
a real :class:`io.RawIOBase` (``readinto``, ``write``, ``seek``, ``tell``,
``fileno``, ``close``), so :class:`io.BufferedReader`, :class:`io.TextIOWrapper`,
``json``, ``csv`` and ``gzip`` work on it unchanged.

What files lack for IPC, streams have:

* :meth:`Stream.follow` reads like a pipe: it waits for data (with the GIL
  released) and ends when the owner closes the stream or dies.
* Ring streams (``create(name, ring=capacity)``) keep only the last bytes; a
  lossless ring (``lossless=True``) makes its writer wait for attached readers.
* Zero-copy: :meth:`Stream.read_in_place` lends committed bytes in place as a read-only
  :class:`memoryview` (``numpy.frombuffer`` sees the shared memory itself), and
  :meth:`Stream.reserve` / :meth:`Stream.commit` write in place.
* asyncio: ``await stream.wait(pos)`` and ``async for line in
  stream.async_lines()``, with no thread per stream.
* Errors are :class:`OSError` subclasses (:class:`FileNotFoundError`,
  :class:`PermissionError`, :class:`FileExistsError`, :class:`TimeoutError`, ...)
  carrying ``errno`` and the stream's name in ``filename``; a lossy ring reader
  that fell behind gets :class:`Overrun` (``lost``, ``resume_at``) and reads on.

Example::

    import fshm, io
    with fshm.create("/demo") as owner:
        owner.write(b"temperature=21.5\\n")
        with fshm.open("/demo") as guest:
            print(guest.read())            # b'temperature=21.5\\n'

The protocol, its promises and its limits are those of the Rust crate ``fshm``
that this package wraps (see its documentation and the project's README).
"""

from __future__ import annotations

import asyncio
import enum
import io
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Optional

from . import _fshm
from ._fshm import DEFAULT_MAX_SIZE, DEFAULT_MODE, DEFAULT_SPIN, Overrun

__all__ = [
    "Stream",
    "Follower",
    "AsyncWaiter",
    "WaitStatus",
    "Overrun",
    "StreamInfo",
    "create",
    "open",
    "inspect",
    "list_streams",
    "force_destroy",
    "reclaim",
    "DEFAULT_MODE",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_SPIN",
]

__version__: str = _fshm.__version__

Overrun.__module__ = __name__  # shown as fshm.Overrun

_WHENCE = (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END)


class WaitStatus(enum.Enum):
    """What a wait for data ended with."""

    #: The stream holds data past the position waited for.
    DATA = "data"
    #: No data past the position, and none will come: the owner closed or died.
    ENDED = "ended"
    #: The timeout passed first.
    TIMED_OUT = "timed_out"


_STATUS = (WaitStatus.DATA, WaitStatus.ENDED, WaitStatus.TIMED_OUT)


@dataclass(frozen=True)
class StreamInfo:
    """What :func:`inspect`, :func:`list_streams` and :meth:`Stream.info` report."""

    #: The stream name in canonical form (``/name``).
    name: str
    #: Committed length in bytes (for a ring, every byte ever committed).
    length: int
    #: Maximum length (for a ring, its capacity).
    max_size: int
    #: Ring capacity, or None for a linear stream.
    ring_capacity: Optional[int]
    #: Whether a ring is lossless.
    lossless: bool
    #: Whether the name outlives the owner.
    persistent: bool
    #: Permission bits.
    mode: int
    #: Owning user id.
    uid: int
    #: Owning group id.
    gid: int
    #: The owner's state: ``"alive"``, ``"closed"``, ``"dead"`` or ``"unknown"``.
    owner: str
    #: Readers attached to a lossless ring's slots.
    attached_readers: int
    #: Bytes of memory the object holds (its size, header included).
    object_size: int
    #: For a replica (a stream an importer such as ``fshm-tunnel`` mirrors from
    #: elsewhere; read-only here): where it comes from. None for any other stream.
    replica_of: Optional[str]
    #: For a replica: whether its importer has marked it stale (it has lost its
    #: source for now and may be behind it). False for any other stream.
    stale: bool


class Stream(io.RawIOBase):
    """A handle on a stream: an owner's (from :func:`create`) or a guest's (from
    :func:`open`). Reads, writes and seeks move its own position, like a separate
    ``open()`` of one file. Reading at or past the committed length returns
    ``b""`` at once; :meth:`follow` waits instead.

    A stream is an :class:`io.RawIOBase`: wrap it in :class:`io.BufferedReader`
    or :class:`io.TextIOWrapper` for buffered or text access. Closing the owner's
    handle removes the name (unless the stream persists) and ends followers.
    """

    def __init__(self, handle: _fshm.Handle) -> None:
        """Wraps a native handle; use :func:`create` or :func:`open` instead."""
        super().__init__()
        self._h = handle
        # The hot calls go straight to the native handle (no Python frame between).
        self.readinto = handle.readinto  # type: ignore[method-assign]
        self.write = handle.write  # type: ignore[method-assign]

    # -- io.RawIOBase ------------------------------------------------------------

    def readinto(self, buffer: Any, /) -> int:  # replaced per instance in __init__
        """Reads up to ``len(buffer)`` bytes at the position into ``buffer``, without
        waiting; returns how many (0 at the end of what is committed)."""
        return self._h.readinto(buffer)

    def write(self, data: Any, /) -> int:  # replaced per instance in __init__
        """Writes ``data`` (bytes-like) at the position (at the end for append
        handles and rings) and commits it in one step; returns its length. On a
        lossless ring it waits, with the GIL released, for readers to make room."""
        return self._h.write(data)

    def write_many(self, items: Iterable[Any], /) -> int:
        """Writes each bytes-like object of ``items`` in turn, in one call (fewer
        Python-to-native crossings for many small messages); returns the total."""
        return self._h.write_many(items)

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        """Moves the position; ``SEEK_END`` is relative to the committed length.
        Returns the new position."""
        if whence not in _WHENCE:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        return self._h.seek(offset, whence)

    def tell(self) -> int:
        """The handle's position."""
        return self._h.tell()

    def truncate(self, size: Optional[int] = None, /) -> int:
        """Sets the committed length to ``size`` (default: the position): a
        logical truncation or extension (the gap reads as zeros). Refused on rings
        and immutable streams. Returns the new length."""
        if size is None:
            size = self.tell()
        self._h.set_len(size)
        return size

    def fileno(self) -> int:
        """The descriptor of the stream's shared-memory object (for ``select`` and
        the like; its offset is not the handle's position)."""
        return self._h.fileno()

    def readable(self) -> bool:
        """True: every handle can read."""
        self._check()
        return True

    def writable(self) -> bool:
        """Whether this handle may write (not a read-only guest)."""
        self._check()
        return self._h.is_writable

    def seekable(self) -> bool:
        """True: every handle has a position it can move."""
        self._check()
        return True

    def isatty(self) -> bool:
        """False."""
        self._check()
        return False

    def close(self) -> None:
        """Closes the handle. The owner's close removes the name (unless the stream
        persists) and ends followers. Raises :class:`BufferError` while views from
        :meth:`read_in_place` or :meth:`reserve` are exported."""
        if not self.closed:
            self._h.close()
        super().close()

    def __del__(self) -> None:
        try:
            self.close()
        except BufferError:
            pass  # views keep the native handle alive; it closes with the last one

    @property
    def closed(self) -> bool:
        """Whether the handle is closed."""
        return self._h.closed

    def _check(self) -> None:
        if self._h.closed:
            raise ValueError("I/O operation on closed stream")

    # -- the stream's state --------------------------------------------------------

    @property
    def name(self) -> str:
        """The stream's name in canonical form (``/name``)."""
        return self._h.name

    @property
    def mode(self) -> str:
        """``"rb+"`` for a handle that may write, ``"rb"`` otherwise (as files say)."""
        return "rb+" if self._h.is_writable else "rb"

    @property
    def length(self) -> int:
        """The committed length (for a ring, every byte ever committed)."""
        return self._h.length

    @property
    def max_size(self) -> int:
        """The largest length the stream may reach (``EFBIG`` past it)."""
        return self._h.max_size

    @property
    def is_owner(self) -> bool:
        """Whether this handle created the stream."""
        return self._h.is_owner

    @property
    def is_ring(self) -> bool:
        """Whether this is a ring stream."""
        return self._h.is_ring

    @property
    def is_lossless(self) -> bool:
        """Whether this is a lossless ring (its writer waits for attached readers)."""
        return self._h.is_lossless

    @property
    def is_immutable(self) -> bool:
        """Whether committed bytes are never rewritten (appends only)."""
        return self._h.is_immutable

    @property
    def is_persistent(self) -> bool:
        """Whether the name outlives the owner's close."""
        return self._h.is_persistent

    @property
    def is_append(self) -> bool:
        """Whether every write of this handle appends atomically."""
        return self._h.is_append

    @property
    def is_attached(self) -> bool:
        """Whether this handle holds a lossless ring's reader slot (a guest opened
        read-write does)."""
        return self._h.is_attached

    @property
    def ring_capacity(self) -> Optional[int]:
        """A ring's capacity; None for a linear stream."""
        return self._h.ring_capacity

    @property
    def oldest(self) -> int:
        """A ring's oldest position still held (0 for a linear stream)."""
        return self._h.oldest

    @property
    def lost_bytes(self) -> int:
        """Bytes this handle lost to ring overruns so far."""
        return self._h.lost_bytes

    @property
    def owner_state(self) -> str:
        """``"alive"``, ``"closed"``, ``"dead"`` or ``"unknown"``."""
        return self._h.owner_state

    def info(self) -> StreamInfo:
        """The stream's state, read through this handle."""
        return StreamInfo(**self._h.info())

    def set_write_timeout(self, timeout: Optional[float]) -> None:
        """Lossless ring: the longest a write waits for readers to make room, in
        seconds; past it the write raises :class:`TimeoutError`. None (the
        default) waits without limit, like a pipe."""
        self._h.set_write_timeout(timeout)

    def clone(self) -> "Stream":
        """Another handle on the same stream, as a guest, at this handle's position
        (from then on the two positions are independent)."""
        return Stream(self._h.try_clone())

    # -- waiting -------------------------------------------------------------------

    def follow(self, *, spin: Optional[float] = None, timeout: Optional[float] = None) -> "Follower":
        """A reader that waits like a pipe: see :class:`Follower`. It reads through
        this handle, moving its position. ``spin``: seconds to poll before sleeping
        (default :data:`DEFAULT_SPIN`); ``timeout``: longest wait of one read
        (:class:`TimeoutError` past it; None waits without limit)."""
        self._check()
        return Follower(self, spin, timeout)

    def wait_for(self, pos: Optional[int] = None, timeout: Optional[float] = None) -> WaitStatus:
        """Blocks (GIL released) until the stream holds data past ``pos`` (default:
        the position), the owner has closed or died, or ``timeout`` seconds pass."""
        if pos is None:
            pos = self.tell()
        return _STATUS[self._h.wait_for(pos, timeout)]

    async def wait(self, pos: Optional[int] = None) -> WaitStatus:
        """Waits in the running asyncio loop for data past ``pos`` (default: the
        position): :attr:`WaitStatus.DATA`, or :attr:`WaitStatus.ENDED` once the owner
        has closed or died. No thread is used: see :class:`AsyncWaiter`. For a
        timeout, wrap it in :func:`asyncio.wait_for`."""
        if pos is None:
            pos = self.tell()
        waiter = AsyncWaiter()
        try:
            return await waiter.wait(self, pos)
        finally:
            waiter.close()

    async def async_read(self, size: int = 65536, *, waiter: Optional["AsyncWaiter"] = None) -> bytes:
        """Reads up to ``size`` bytes, waiting in the running asyncio loop while there
        are none; ``b""`` once the owner has closed or died and everything was read."""
        own = waiter is None
        w = waiter if waiter is not None else AsyncWaiter()
        try:
            while True:
                data = self.read(size)
                if data:
                    return data
                if await w.wait(self, self.tell()) is WaitStatus.ENDED:
                    return self.read(size) or b""
        finally:
            if own:
                w.close()

    async def async_lines(self) -> AsyncIterator[bytes]:
        """Iterates over the stream's lines (``bytes``, each with its ``b"\\n"``; the
        last one may lack it) as they are committed, in the running asyncio loop,
        until the owner closes or dies."""
        waiter = AsyncWaiter()
        pending = bytearray()
        try:
            while True:
                chunk = await self.async_read(65536, waiter=waiter)
                if not chunk:
                    break
                pending += chunk
                start = 0
                while True:
                    nl = pending.find(b"\n", start)
                    if nl < 0:
                        break
                    yield bytes(pending[start : nl + 1])
                    start = nl + 1
                del pending[:start]
            if pending:
                yield bytes(pending)
        finally:
            waiter.close()

    def __aiter__(self) -> AsyncIterator[bytes]:
        """``async for line in stream``: :meth:`async_lines`."""
        return self.async_lines()

    # -- zero-copy -----------------------------------------------------------------

    def read_in_place(self, wait: bool = False) -> memoryview:
        """The committed bytes at the position, in place in the shared mapping, as a
        read-only :class:`memoryview` (empty at the end); the position does not move
        until :meth:`consume`. With ``wait``, waits (GIL released) for data or the
        end first, like a follower.

        Only where no honest writer rewrites the bytes lent: on an immutable stream
        (any handle), and on a lossless ring for an attached reader (a guest opened
        read-write); elsewhere it raises :class:`OSError` (``EINVAL``).

        The view holds the handle open. On a ring, while a view (or an array made
        from it) is alive, :meth:`consume`, reads, seeks and writes of this handle
        raise :class:`BufferError`, since they would let the writer reuse the bytes;
        release views first (``del arr``, ``view.release()``). An immutable stream's
        bytes never change: its views stay valid until the handle closes, and
        :meth:`close` raises :class:`BufferError` while any is exported."""
        return self._h.read_in_place(wait)

    def consume(self, n: int) -> None:
        """Moves the position past ``n`` of the bytes the last :meth:`read_in_place` lent (on
        a lossless ring, this lets the writer reuse them)."""
        self._h.consume(n)

    def reserve(self, n: int) -> memoryview:
        """Reserves ``n`` bytes at the end of the stream and returns them as a
        writable :class:`memoryview` to fill in place; :meth:`commit` publishes them
        in one step. Immutable streams and rings only. The reservation holds the
        append token (on an immutable stream or an append handle) until committed:
        fill it promptly. Commit raises :class:`BufferError` while views of the
        reservation are exported: release them first (``view.release()``, or use the
        memoryview as a context manager)."""
        return self._h.reserve(n)

    def commit(self, n: int) -> None:
        """Commits the first ``n`` bytes of the open reservation (0: none) and closes
        it; readers see all of them or none."""
        self._h.commit(n)

    def address_position(self, address: int) -> Optional[int]:
        """The stream position whose byte this handle's mapping holds at
        ``address`` (modulo the capacity on a ring), or None if the address is not in
        the mapping: to check that a view or an array really lies in shared memory."""
        return self._h.address_position(address)

    def __repr__(self) -> str:
        if self.closed:
            return "<fshm.Stream closed>"
        role = "owner" if self._h.is_owner else "guest"
        return f"<fshm.Stream {self.name!r} {role} pos={self.tell()} length={self.length}>"


class Follower(io.RawIOBase):
    """A reader on a :class:`Stream` that waits like a pipe: ``readinto`` returns
    data as it is committed, waits (spinning briefly, then sleeping on a futex, with
    the GIL released) while there is none, and returns 0 (end-of-stream) once the
    owner has closed the stream or died and every committed byte was read.

    ``for line in io.TextIOWrapper(stream.follow()): ...`` reads lines as they come.
    It reads through its stream's handle, moving that handle's position. Closing the
    follower leaves the stream open.
    """

    def __init__(self, stream: Stream, spin: Optional[float], timeout: Optional[float]) -> None:
        """Use :meth:`Stream.follow`."""
        super().__init__()
        self._stream = stream
        self._spin = spin
        self._timeout = timeout

    @property
    def stream(self) -> Stream:
        """The stream followed."""
        return self._stream

    def readinto(self, buffer: Any, /) -> int:
        """Reads up to ``len(buffer)`` bytes, waiting for data; 0 at end-of-stream."""
        if self.closed:
            raise ValueError("I/O operation on closed follower")
        return self._stream._h.follow_readinto(buffer, self._spin, self._timeout)

    def read_in_place(self) -> memoryview:
        """:meth:`Stream.read_in_place` with waiting: the bytes at the position in place, once
        there are some (empty at end-of-stream)."""
        return self._stream.read_in_place(True)

    def consume(self, n: int) -> None:
        """:meth:`Stream.consume`."""
        self._stream.consume(n)

    def readable(self) -> bool:
        """True."""
        return True

    def fileno(self) -> int:
        """The stream's descriptor."""
        return self._stream.fileno()

    @property
    def name(self) -> str:
        """The stream's name."""
        return self._stream.name


class AsyncWaiter:
    """Waits for a stream's data in an asyncio loop, without a thread per stream.

    How: the Rust core's runtime-agnostic async wait (``fshm::AsyncWaiter``)
    registers the wait with the process's reactor (a few threads that sleep in
    ``futex_waitv`` for every async waiter of the process); its waker writes to an
    eventfd this object owns, which the loop watches with ``loop.add_reader``. On
    each wake-up the wait is polled again; the eventfd is drained first. One eventfd
    per waiter; reuse a waiter for many waits on one stream.
    """

    def __init__(self) -> None:
        """A waiter with its eventfd."""
        self._w: Optional[_fshm.Waiter] = _fshm.Waiter()

    async def wait(self, stream: Stream, pos: int) -> WaitStatus:
        """Waits for data past ``pos`` in ``stream``, or its end."""
        w = self._w
        if w is None:
            raise ValueError("the waiter is closed")
        h = stream._h
        ready = w.poll(h, pos)
        if ready is not None:
            return WaitStatus.DATA if ready else WaitStatus.ENDED
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()

        def on_wake() -> None:
            if fut.done():
                return
            try:
                r = w.poll(h, pos)
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
                fut.set_exception(e)
                return
            if r is not None:
                fut.set_result(r)

        fd = w.fileno()
        loop.add_reader(fd, on_wake)
        try:
            result = await fut
        finally:
            loop.remove_reader(fd)
            if not fut.done() or fut.cancelled():
                w.cancel()
        return WaitStatus.DATA if result else WaitStatus.ENDED

    def close(self) -> None:
        """Removes any registration and closes the eventfd."""
        if self._w is not None:
            self._w.cancel()
            self._w = None


def create(
    name: str,
    mode: int = DEFAULT_MODE,
    max_size: Optional[int] = None,
    ring: Optional[int] = None,
    lossless: bool = False,
    immutable: bool = False,
    persist: bool = False,
    reclaim: bool = False,
) -> Stream:
    """Creates the stream ``name`` and returns the owner's handle.

    :param mode: permission bits (default ``0o600``), as for a file.
    :param max_size: largest length (default :data:`DEFAULT_MAX_SIZE`, 1 GiB);
        mapped once, reserved as it grows.
    :param ring: make a ring stream that keeps the last ``ring`` bytes (rounded up
        to whole pages).
    :param lossless: with ``ring``, the writer waits for attached readers
        (back-pressure, like a pipe) instead of overrunning them.
    :param immutable: committed bytes are never rewritten: every write appends, and
        every handle can read in place (:meth:`Stream.read_in_place`).
    :param persist: the name outlives the owner's close.
    :param reclaim: if the name exists but its owner is gone, take it over.
    :raises FileExistsError: the name exists.
    """
    return Stream(_fshm.Handle.create(name, mode, max_size, ring, lossless, immutable, persist, reclaim))


def open(  # noqa: A001
    name: str,
    append: bool = False,
    readonly: bool = False,
    owner_uid: Optional[int] = None,
) -> Stream:
    """Opens the existing stream ``name`` as a guest (starting at position 0, or a
    ring's oldest byte held). A guest opened read-write (not ``readonly``, not
    ``append``) of a lossless ring attaches as a reader the writer waits for.

    :param append: every write appends atomically, serialised with other append
        handles across processes.
    :param readonly: open for reading only (also what the mode bits may impose).
    :param owner_uid: open the stream only if this user owns it. ``/dev/shm`` is
        shared by every user, so a name is no credential: whoever creates a name
        first owns it, and a guest writes into (or reads from) that user's stream.
        A guest that must not hand its data to, or trust data from, anyone else
        names the user it expects (typically the service's account). Checked on the
        descriptor the handle then uses.
    :raises FileNotFoundError: no such stream.
    :raises PermissionError: the mode bits refuse access; or (``errno.EPERM``) the
        stream is not owned by ``owner_uid``.
    :raises OSError: ``errno.EPROTO``: the name holds no fshm stream (refused at
        once: a stream is published whole, so no open waits for one being set up).
    """
    return Stream(_fshm.Handle.open(name, append, readonly, owner_uid))


def inspect(name: str) -> StreamInfo:
    """The state of the stream ``name``, without joining it."""
    return StreamInfo(**_fshm.inspect(name))


def list_streams(prefix: Optional[str] = None) -> list[StreamInfo]:
    """The streams this process may read (those whose name starts with ``prefix``)."""
    return [StreamInfo(**d) for d in _fshm.list_streams(prefix)]


def force_destroy(name: str) -> None:
    """Removes the stream ``name`` whatever its owner's state (handles open on it go
    on working; new opens fail)."""
    _fshm.force_destroy(name)


def reclaim(name: str) -> bool:
    """Removes the stream ``name`` if its owner died or closed it without
    persisting; returns whether it did."""
    return _fshm.reclaim(name)

"""Zero-copy: read_in_place lends the mapping as a memoryview (numpy sees it without a
copy); reservations are writable views committed explicitly; views cannot outlive what
makes them valid."""

from __future__ import annotations

import errno
import gc
import threading

import numpy as np
import pytest

import fshm


def data_address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


def test_immutable_stream_reads_in_place_into_numpy(name):
    values = np.arange(1 << 16, dtype=np.float64)
    with fshm.create(name, immutable=True) as owner:
        owner.write(values.tobytes())
        with fshm.open(name) as guest:
            view = guest.read_in_place()
            assert view.readonly and view.nbytes == values.nbytes
            arr = np.frombuffer(view, dtype=np.float64)
            # The array's bytes are the mapping's: no copy.
            assert guest.address_position(data_address(arr)) == 0
            assert guest.address_position(data_address(arr) + arr.nbytes - 1) == arr.nbytes - 1
            assert np.array_equal(arr, values)
            with pytest.raises(TypeError):
                view[0] = 1  # read-only
            guest.consume(8 * 10)
            second = np.frombuffer(guest.read_in_place(), dtype=np.float64)
            assert guest.address_position(data_address(second)) == 80 and second[0] == 10.0
            # An immutable stream's bytes never change: the first array stays valid...
            assert arr[5] == 5.0
            # ...and keeps the handle open.
            with pytest.raises(BufferError):
                guest.close()
            del arr, second, view
            gc.collect()
            guest.close()


def test_a_view_holds_the_handle(name):
    owner = fshm.create(name, immutable=True)
    owner.write(b"kept alive by the view")
    guest = fshm.open(name)
    view = guest.read_in_place()
    del guest  # the Python object goes; the native handle stays with the view
    gc.collect()
    assert bytes(view) == b"kept alive by the view"
    view.release()
    owner.close()


def test_read_in_place_refused_where_bytes_may_change(name):
    with fshm.create(name) as owner:
        owner.write(b"abc")
        with pytest.raises(OSError) as e:
            owner.read_in_place()  # a linear stream others may rewrite
        assert e.value.errno == errno.EINVAL


def test_lossless_ring_reader_in_place(name):
    with fshm.create(name, ring=1 << 16, lossless=True) as owner:
        reader = fshm.open(name)  # read-write guest: attached
        assert reader.is_attached
        owner.write(np.arange(1000, dtype=np.int32).tobytes())
        view = reader.read_in_place()
        arr = np.frombuffer(view, dtype=np.int32)
        assert reader.address_position(data_address(arr)) == 0
        assert arr[999] == 999
        # While the view is exported, the reader cannot move on: its slot would let
        # the writer overwrite the bytes the array shows.
        with pytest.raises(BufferError):
            reader.consume(4000)
        with pytest.raises(BufferError):
            reader.read(1)
        with pytest.raises(BufferError):
            reader.close()
        lent = view.obj
        del arr
        view.release()
        reader.consume(4000)
        # The view object cannot be exported again: its bytes may be reused now.
        with pytest.raises(BufferError):
            memoryview(lent)
        assert reader.read_in_place().nbytes == 0
        reader.close()


def test_follower_reads_a_lossless_ring_in_place(name):
    total = 200_000
    with fshm.create(name, ring=1 << 14, lossless=True) as owner:
        reader = fshm.open(name)

        def write() -> None:
            data = np.arange(total, dtype=np.uint8).tobytes()
            for i in range(0, total, 1000):
                owner.write(data[i : i + 1000])  # waits for the reader (GIL released)

        t = threading.Thread(target=write)
        t.start()
        f = reader.follow()
        seen = 0
        ok = True
        while seen < total:
            with f.read_in_place() as view:
                n = view.nbytes
                arr = np.frombuffer(view, dtype=np.uint8)
                ok &= bool(np.array_equal(arr, (np.arange(seen, seen + n) % 256).astype(np.uint8)))
                del arr
            f.consume(n)
            seen += n
        t.join()
        assert ok and seen == total
        reader.close()


def test_reservation_is_a_writable_view(name):
    with fshm.create(name, immutable=True) as owner:
        view = owner.reserve(8 * 100)
        assert not view.readonly
        arr = np.frombuffer(view, dtype=np.float64)
        arr[:] = np.linspace(0, 1, 100)
        assert owner.address_position(data_address(arr)) == 0
        guest = fshm.open(name)
        assert guest.read() == b""  # nothing committed yet
        with pytest.raises(BufferError):
            owner.commit(800)  # views still exported
        reserved = view.obj
        del arr
        view.release()
        owner.commit(800)
        with pytest.raises(BufferError):
            memoryview(reserved)  # committed: the reservation's view is spent
        got = np.frombuffer(guest.read(), dtype=np.float64)
        assert np.array_equal(got, np.linspace(0, 1, 100))
        guest.close()


def test_reservation_partial_commit_and_cancel(name):
    with fshm.create(name, ring=4096) as owner:
        with owner.reserve(10) as v:
            v[:3] = b"abc"
        owner.commit(3)
        with owner.reserve(5) as v:
            v[:] = b"zzzzz"
        owner.commit(0)  # commits nothing
        with pytest.raises(OSError):
            owner.commit(1)  # no reservation open
        with pytest.raises(OSError):
            owner.reserve(0)  # bad input: nothing reserved
        with fshm.open(name) as guest:
            assert guest.read() == b"abc"


def test_cannot_read_into_its_own_reservation(name):
    with fshm.create(name, ring=4096) as owner:
        owner.write(b"abc")
        owner.seek(0)
        with owner.reserve(16) as v:
            with pytest.raises(OSError) as e:
                owner.readinto(v)  # the copy would overlap its source
            assert e.value.errno == errno.EINVAL
        owner.commit(0)

"""Streams as Python files: io.RawIOBase, buffered and text layers, json, csv, gzip."""

from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import os

import pytest

import fshm


def test_stream_is_a_raw_io_base(name):
    with fshm.create(name) as owner:
        assert isinstance(owner, io.RawIOBase)
        assert owner.readable() and owner.writable() and owner.seekable()
        assert owner.write(b"hello, guest") == 12
        assert owner.tell() == 12
        assert isinstance(owner.fileno(), int) and owner.fileno() >= 0
        with fshm.open(name) as guest:
            assert guest.tell() == 0
            buf = bytearray(5)
            assert guest.readinto(buf) == 5 and buf == b"hello"
            assert guest.seek(7) == 7
            assert guest.read() == b"guest"
            assert guest.read() == b""  # at the end: no wait
            assert guest.seek(-5, os.SEEK_END) == 7
            assert guest.seek(2, os.SEEK_CUR) == 9
            assert guest.read(100) == b"est"
            assert guest.length == 12 and not guest.is_owner and owner.is_owner
        assert guest.closed
        with pytest.raises(ValueError):
            guest.read()
    assert owner.closed
    with pytest.raises(FileNotFoundError):
        fshm.open(name)  # the owner's close removed the name


def test_buffered_text_lines(name):
    with fshm.create(name) as owner:
        owner.write("ünïcode line 1\nline 2\n".encode())
        with fshm.open(name) as guest:
            text = io.TextIOWrapper(io.BufferedReader(guest), encoding="utf-8")
            assert [line for line in text] == ["ünïcode line 1\n", "line 2\n"]
        with fshm.open(name) as guest:
            assert list(guest) == [b"\xc3\xbcn\xc3\xafcode line 1\n", b"line 2\n"]  # IOBase lines


def test_text_writer_and_json(name):
    with fshm.create(name) as owner:
        w = io.TextIOWrapper(io.BufferedWriter(owner), encoding="utf-8")
        json.dump({"a": [1, 2, 3], "b": "x"}, w)
        w.flush()
        w.detach().detach()  # leave the stream open
        with fshm.open(name) as guest:
            assert json.load(io.TextIOWrapper(io.BufferedReader(guest))) == {"a": [1, 2, 3], "b": "x"}


def test_csv(name):
    with fshm.create(name) as owner:
        w = io.TextIOWrapper(owner, encoding="utf-8", newline="", write_through=True)
        csv.writer(w).writerows([["t", "v"], ["1", "21.5"], ["2", "22.0"]])
        w.detach()
        with fshm.open(name) as guest:
            rows = list(csv.reader(io.TextIOWrapper(guest, encoding="utf-8", newline="")))
        assert rows == [["t", "v"], ["1", "21.5"], ["2", "22.0"]]


def test_gzip_round_trip(name):
    payload = b"".join(b"record %d\n" % i for i in range(10000))
    with fshm.create(name) as owner:
        with gzip.GzipFile(fileobj=owner, mode="wb") as z:
            z.write(payload)
        assert not owner.closed  # GzipFile leaves its fileobj open
        assert owner.length < len(payload) // 4
        with fshm.open(name) as guest:
            with gzip.GzipFile(fileobj=guest, mode="rb") as z:
                assert z.read() == payload


def test_truncate_and_properties(name):
    with fshm.create(name, mode=0o640, max_size=1 << 20) as owner:
        owner.write(b"abcdef")
        assert owner.truncate(3) == 3
        assert owner.length == 3
        owner.truncate(5)
        owner.seek(0)
        assert owner.read() == b"abc\0\0"
        info = owner.info()
        assert (info.mode, info.max_size, info.owner, info.length) == (0o640, 1 << 20, "alive", 5)
        assert (info.replica_of, info.stale) == (None, False)
        assert fshm.inspect(name).length == 5
        assert any(i.name == name for i in fshm.list_streams(name))
        assert owner.max_size == 1 << 20 and not owner.is_ring and owner.ring_capacity is None
        assert owner.owner_state == "alive"
        assert "fshm.Stream" in repr(owner)


def test_readonly_guest_cannot_write(name):
    with fshm.create(name) as owner:
        owner.write(b"x")
        with fshm.open(name, readonly=True) as guest:
            assert not guest.writable()
            with pytest.raises(OSError) as e:
                guest.write(b"y")
            assert e.value.errno == errno.EBADF and e.value.filename == name
            assert guest.read() == b"x"
        assert owner.length == 1  # the refused write changed nothing


def test_append_guests(name):
    with fshm.create(name) as owner:
        a = fshm.open(name, append=True)
        b = fshm.open(name, append=True)
        a.write(b"one ")
        b.write(b"two ")
        a.write(b"three")
        assert a.is_append
        owner.seek(0)
        assert owner.read() == b"one two three"
        a.close()
        b.close()


def test_persist(name):
    owner = fshm.create(name, persist=True)
    owner.write(b"kept")
    owner.close()
    with fshm.open(name) as guest:
        assert guest.is_persistent and guest.owner_state == "closed"
        assert guest.read() == b"kept"
    fshm.force_destroy(name)
    with pytest.raises(FileNotFoundError):
        fshm.open(name)


def test_ring_keeps_the_last_bytes(name):
    with fshm.create(name, ring=4096) as owner:
        assert owner.is_ring and owner.ring_capacity == 4096 and not owner.is_lossless
        for i in range(100):
            owner.write(b"%07d\n" % i)  # 800 bytes
        assert owner.length == 800 and owner.oldest == 0
        with fshm.open(name) as guest:
            assert guest.read().splitlines()[-1] == b"0000099"
        with pytest.raises(OSError) as e:
            owner.truncate(0)  # a ring is append-only
        assert e.value.errno == errno.EINVAL


def test_write_many(name):
    with fshm.create(name) as owner:
        assert owner.write_many([b"ab", bytearray(b"cd"), memoryview(b"ef")]) == 6
        owner.seek(0)
        assert owner.read() == b"abcdef"


def test_bad_input_changes_nothing(name):
    with fshm.create(name) as owner:
        owner.write(b"abc")
        with pytest.raises(ValueError):
            owner.seek(0, 7)
        with pytest.raises(OSError):
            owner.seek(-1)
        with pytest.raises(ValueError):
            fshm.create(name + "-x", lossless=True)  # lossless needs a ring
        with pytest.raises(OSError) as e:
            fshm.create("bad//name")
        assert e.value.errno == errno.EINVAL
        assert owner.tell() == 3 and owner.length == 3
    with pytest.raises(FileNotFoundError):
        fshm.open(name + "-x")


def test_lossy_ring_overrun_is_an_oserror_and_resumes(name):
    with fshm.create(name, ring=4096) as owner, fshm.open(name, readonly=True) as reader:
        owner.write(b"a" * 4096)
        owner.write(b"b" * 4096)  # the reader fell a whole capacity behind
        with pytest.raises(fshm.Overrun) as e:
            reader.read(10)
        assert isinstance(e.value, OSError) and e.value.errno == errno.ENOBUFS
        assert e.value.filename == name
        assert (e.value.lost, e.value.resume_at) == (4096, 4096)
        assert reader.lost_bytes == 4096
        assert reader.read() == b"b" * 4096  # resumed at the oldest byte held

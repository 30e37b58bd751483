"""Followers: wait like a pipe, end at the owner's close or death, release the GIL."""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import signal
import threading

import pytest

import fshm


def _write_lines(name: str, n: int, ready, go) -> None:
    owner = fshm.create(name)
    ready.set()
    go.wait()
    for i in range(n):
        owner.write(b"line %d\n" % i)
    owner.close()  # ends the followers


def _write_then_die(name: str, ready) -> None:
    owner = fshm.create(name)
    owner.write(b"last words\n")
    ready.set()
    signal.pause()  # killed by the test


def test_follow_lines_from_another_process(name):
    ctx = mp.get_context("fork")
    ready, go = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_write_lines, args=(name, 1000, ready, go))
    p.start()
    try:
        assert ready.wait(30)
        stream = fshm.open(name)
        go.set()
        lines = [line for line in io.TextIOWrapper(stream.follow())]
        assert lines == ["line %d\n" % i for i in range(1000)]
        stream.close()
    finally:
        p.join(30)
    assert p.exitcode == 0


def test_follow_ends_when_the_owner_dies(name):
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_write_then_die, args=(name, ready))
    p.start()
    try:
        assert ready.wait(30)
        stream = fshm.open(name)
        f = stream.follow(timeout=30)  # a death must end it long before
        assert f.readline() == b"last words\n"
        os.kill(p.pid, signal.SIGKILL)
        assert f.read() == b""  # end-of-stream, not a timeout
        assert stream.owner_state == "dead"
        stream.close()
    finally:
        p.join(30)


def test_follow_times_out(name):
    with fshm.create(name) as owner, fshm.open(name) as guest:
        with pytest.raises(TimeoutError) as e:
            guest.follow(timeout=0.05).read(10)
        assert e.value.filename == name
        owner.write(b"x")
        assert guest.follow(timeout=0.05).read(10) == b"x"


def test_gil_is_released_while_a_follower_waits(name):
    """Another Python thread runs while a follower waits: the follower's read would
    time out (after 20 s) instead of getting the data if it held the GIL, since the
    data is written by this thread only after it ran Python code meanwhile."""
    owner = fshm.create(name)
    guest = fshm.open(name)
    entering = threading.Event()
    got: list[object] = []

    def follower() -> None:
        entering.set()
        try:
            got.append(guest.follow(timeout=20, spin=0).read(100))
        except BaseException as e:  # noqa: BLE001 - reported below
            got.append(e)

    t = threading.Thread(target=follower)
    t.start()
    assert entering.wait(20)
    progress = 0
    for i in range(2_000_000):  # pure Python work while the follower waits
        progress += i & 1
    assert progress == 1_000_000 and not got  # the follower was still waiting
    owner.write(b"data")
    t.join(30)
    assert got == [b"data"]
    guest.close()
    owner.close()


def test_wait_for(name):
    with fshm.create(name) as owner, fshm.open(name) as guest:
        assert guest.wait_for(0, timeout=0.01) is fshm.WaitStatus.TIMED_OUT
        owner.write(b"x")
        assert guest.wait_for(0, timeout=0.01) is fshm.WaitStatus.DATA
        owner.close()
        assert guest.wait_for(1) is fshm.WaitStatus.ENDED

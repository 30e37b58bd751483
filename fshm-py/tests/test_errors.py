"""Errors are the OSError subclasses Python users catch, with errno and the name."""

from __future__ import annotations

import errno
import os

import pytest

import fshm


def test_not_found(name):
    with pytest.raises(FileNotFoundError) as e:
        fshm.open(name)
    assert e.value.errno == errno.ENOENT and e.value.filename == name
    assert name in str(e.value)


def test_exists(name):
    with fshm.create(name):
        with pytest.raises(FileExistsError) as e:
            fshm.create(name)
        assert e.value.errno == errno.EEXIST and e.value.filename == name


def test_timeout(name):
    with fshm.create(name), fshm.open(name) as guest:
        with pytest.raises(TimeoutError) as e:
            guest.follow(timeout=0.01).read(1)
        assert e.value.errno == errno.ETIMEDOUT and e.value.filename == name


def test_lossless_write_timeout(name):
    with fshm.create(name, ring=4096, lossless=True) as owner, fshm.open(name) as reader:
        assert reader.is_attached
        owner.set_write_timeout(0.01)
        owner.write(b"x" * 4096)
        with pytest.raises(TimeoutError):
            owner.write(b"y")  # the reader has not made room
        assert owner.length == 4096  # nothing committed


def test_too_large(name):
    with fshm.create(name, max_size=4096) as owner:
        assert owner.write(b"x" * 4096) == 4096
        with pytest.raises(OSError) as e:
            owner.write(b"y")
        assert e.value.errno == errno.EFBIG and owner.length == 4096


def test_permission_denied(name):
    """A stream whose mode bits refuse a user: PermissionError for that user (a forked
    child dropped to nobody when run as root; else mode bits 000 refuse the owner's
    own user)."""
    with fshm.create(name, mode=0o600 if os.geteuid() == 0 else 0o000):
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            code = 1
            try:
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                fshm.open(name)
            except PermissionError as e:
                code = 0 if e.errno == errno.EACCES and e.filename == name else 2
            except BaseException:
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def test_closed_stream_is_value_error(name):
    s = fshm.create(name)
    s.close()
    s.close()  # idempotent
    for op in (lambda: s.read(1), lambda: s.write(b"x"), s.tell, s.fileno, lambda: s.seek(0)):
        with pytest.raises(ValueError):
            op()


def test_owner_uid(name):
    """``owner_uid`` opens only a stream the named user owns: another owner is
    PermissionError (EPERM) and nothing stays open. As root, the stream is another
    user's (a forked child dropped to uid 1002 creates it, persistent, and exits);
    else the current user's own, checked against another uid."""
    me = os.geteuid()
    if me == 0:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.setgroups([])
                os.setgid(1002)
                os.setuid(1002)
                fshm.create(name, mode=0o644, persist=True).close()
                code = 0
            except BaseException:
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        owner, other = 1002, 0
        made = None
    else:
        made = fshm.create(name, mode=0o644)
        owner, other = me, me + 1
    try:
        with fshm.open(name, owner_uid=owner) as guest:
            assert guest.info().uid == owner
        with pytest.raises(PermissionError) as e:
            fshm.open(name, owner_uid=other)
        assert e.value.errno == errno.EPERM and e.value.filename == name
        assert f"uid {owner}" in str(e.value)
        with pytest.raises(PermissionError):
            fshm.open(name, readonly=True, owner_uid=other)
    finally:
        if made is not None:
            made.close()

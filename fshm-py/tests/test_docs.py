"""Docstrings for everything public, and the typing markers installed."""

from __future__ import annotations

import inspect
import pydoc
from pathlib import Path

import fshm
from fshm import _fshm


def test_every_public_name_has_a_docstring():
    missing = []
    for name in fshm.__all__:
        obj = getattr(fshm, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if not (obj.__doc__ or "").strip():
                missing.append(name)
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or not (callable(member) or isinstance(member, property)):
                        continue
                    if not (getattr(member, "__doc__", "") or "").strip():
                        missing.append(f"{name}.{attr}")
    for cls in (_fshm.Handle, _fshm.View, _fshm.Waiter):
        for attr in dir(cls):
            if attr.startswith("_"):
                continue
            if not (getattr(cls, attr).__doc__ or "").strip():
                missing.append(f"_fshm.{cls.__name__}.{attr}")
    assert not missing, missing


def test_help_reads_well():
    text = pydoc.render_doc(fshm, renderer=pydoc.plaintext)
    for needle in ("Named byte streams in POSIX shared memory", "class Stream(io.RawIOBase)",
                   "create(name", "follow(self", "read_in_place(self", "async_lines(self",
                   "Creates the stream", "waits like a pipe"):
        assert needle in text, needle


def test_typing_markers_are_installed():
    pkg = Path(fshm.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_fshm.pyi").exists()

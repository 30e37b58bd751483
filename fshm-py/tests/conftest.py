"""Shared fixtures: a unique stream name per test, removed afterwards even on failure."""

from __future__ import annotations

import itertools
import os

import pytest

import fshm

_counter = itertools.count()


def unique_name(tag: str = "t") -> str:
    """A stream name no other test, process or run uses."""
    return f"/fshm-py-{tag}-{os.getpid()}-{next(_counter)}"


@pytest.fixture
def names():
    """Makes unique stream names; removes whatever they name at the end of the test."""
    made: list[str] = []

    def make(tag: str = "t") -> str:
        n = unique_name(tag)
        made.append(n)
        return n

    yield make
    for n in made:
        try:
            fshm.force_destroy(n)
        except FileNotFoundError:
            pass


@pytest.fixture
def name(names):
    """One unique stream name."""
    return names()

"""Interop: Python follows streams written by a C program (libshmfile) and by a Rust
program (the fshm CLI), and the reverse.

The binaries come from the workspace: FSHM_BIN_DIR (default: target/release, else
target/debug, beside this package). Without them these tests skip with one line,
unless FSHM_PY_REQUIRE_INTEROP=1 (as CI sets), where they fail instead."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

import fshm

ROOT = Path(__file__).resolve().parents[2]

C_WRITER = r"""
#include <shmfile.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    FILE *f = fshm_create(argv[1], 0600);
    if (!f) { perror("fshm_create"); return 1; }
    printf("ready\n"); fflush(stdout);
    char go[8];
    if (!fgets(go, sizeof go, stdin)) return 2;   /* the reader has opened */
    int n = atoi(argv[2]);
    for (int i = 0; i < n; i++) {
        fprintf(f, "c line %d\n", i);
        if (i % 100 == 0) fflush(f);
    }
    return fclose(f) == 0 ? 0 : 3;                 /* ends the followers */
}
"""

C_FOLLOWER = r"""
#include <shmfile.h>
#include <stdio.h>
int main(int argc, char **argv) {
    FILE *f = fshm_open(argv[1], 0, FSHM_GUEST | FSHM_BLOCK | FSHM_RDONLY);
    if (!f) { perror("fshm_open"); return 1; }
    printf("ready\n"); fflush(stdout);
    char line[256];
    long n = 0;
    while (fgets(line, sizeof line, f)) n++;
    printf("%ld\n", n);
    return fclose(f) == 0 ? 0 : 3;
}
"""


def _bin_dir() -> Path | None:
    env = os.environ.get("FSHM_BIN_DIR")
    dirs = [Path(env)] if env else [ROOT / "target" / "release", ROOT / "target" / "debug"]
    for d in dirs:
        if (d / "fshm").exists() and (d / "libshmfile.so").exists():
            return d
    return None


def _need_bins() -> Path:
    d = _bin_dir()
    if d is None:
        msg = "the fshm CLI and libshmfile are not built (cargo build --release -p fshm-cli -p fshm-ffi)"
        if os.environ.get("FSHM_PY_REQUIRE_INTEROP") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="module")
def c_programs(tmp_path_factory):
    bins = _need_bins()
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None:
        if os.environ.get("FSHM_PY_REQUIRE_INTEROP") == "1":
            pytest.fail("no C compiler")
        pytest.skip("no C compiler")
    out = tmp_path_factory.mktemp("c")
    # The library's soname is libshmfile.so.<major>: give the loader that name too.
    lib = out / "lib"
    lib.mkdir()
    shutil.copy(bins / "libshmfile.so", lib / "libshmfile.so")
    soname = subprocess.run(["objdump", "-p", str(lib / "libshmfile.so")], capture_output=True,
                            text=True).stdout.split("SONAME", 1)
    if len(soname) == 2:
        os.symlink("libshmfile.so", lib / soname[1].split()[0])
    progs = {}
    for prog, src in (("writer", C_WRITER), ("follower", C_FOLLOWER)):
        (out / f"{prog}.c").write_text(src)
        subprocess.run(
            [cc, "-std=c99", "-Wall", "-Werror", "-I", str(ROOT / "c"), "-o", str(out / prog),
             str(out / f"{prog}.c"), "-L", str(lib), "-lshmfile", f"-Wl,-rpath,{lib}"],
            check=True,
        )
        progs[prog] = out / prog
    return progs


def _open_when_created(name: str, proc: subprocess.Popen, deadline: float = 30) -> fshm.Stream:
    """Opens `name` once the writer process has created it (polling, bounded)."""
    end = time.monotonic() + deadline
    while True:
        try:
            return fshm.open(name)
        except FileNotFoundError:
            if proc.poll() is not None or time.monotonic() > end:
                raise
            time.sleep(0.005)


def test_python_follows_a_c_writer(name, c_programs):
    p = subprocess.Popen([c_programs["writer"], name, "2000"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        stream = fshm.open(name)
        p.stdin.write("go\n")
        p.stdin.flush()
        lines = list(io.TextIOWrapper(stream.follow(timeout=30)))
        assert lines == ["c line %d\n" % i for i in range(2000)]
        stream.close()
    finally:
        p.stdin.close()
        assert p.wait(30) == 0


def test_c_follows_a_python_writer(name, c_programs):
    owner = fshm.create(name)
    p = subprocess.Popen([c_programs["follower"], name], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"  # the C follower has opened the stream
        for i in range(3000):
            owner.write(b"py line %d\n" % i)
        owner.close()  # ends the C follower's fgets loop
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 0 and out == "3000\n"
    finally:
        if p.poll() is None:
            p.kill()


def test_python_follows_the_rust_cli(name):
    bins = _need_bins()
    p = subprocess.Popen([bins / "fshm", "write", "--create", name], stdin=subprocess.PIPE)
    try:
        p.stdin.write(b"rust line 0\n")
        p.stdin.flush()
        stream = _open_when_created(name, p)
        got: list[str] = []
        reader = threading.Thread(
            target=lambda: got.extend(io.TextIOWrapper(stream.follow(timeout=30))))
        reader.start()
        for i in range(1, 1000):
            p.stdin.write(b"rust line %d\n" % i)
        p.stdin.close()  # the CLI owner closes the stream at the end of its input
        reader.join(60)
        assert got == ["rust line %d\n" % i for i in range(1000)]
        stream.close()
    finally:
        assert p.wait(30) == 0


def test_rust_cli_follows_a_python_writer(name):
    bins = _need_bins()
    owner = fshm.create(name)
    owner.write(b"first\n")
    p = subprocess.Popen([bins / "fshm", "tail", "-f", "-n", "1000", name], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"first\n"  # the CLI is following now
        for i in range(500):
            owner.write(b"py %d\n" % i)
        owner.close()
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 0
        assert out.splitlines() == [b"py %d" % i for i in range(500)]
    finally:
        if p.poll() is None:
            p.kill()


def test_rust_cli_cats_a_python_stream(name):
    bins = _need_bins()
    with fshm.create(name) as owner:
        owner.write_many(b"cat %d\n" % i for i in range(100))
        out = subprocess.run([bins / "fshm", "cat", name], capture_output=True, check=True).stdout
        assert out == b"".join(b"cat %d\n" % i for i in range(100))

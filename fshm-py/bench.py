#!/usr/bin/env python3
"""Python writer process -> Python reader process throughput: fshm vs
multiprocessing.Pipe (send_bytes/recv_bytes) vs multiprocessing.Queue, at 64 B, 4 KiB
and 64 KiB messages; and the zero-copy NumPy path at 1 MiB vs copying.

    python bench.py            # full run (256 MiB per case)
    python bench.py --quick    # smoke test (a few MiB per case)

The writer writes each message with one call, as a user writes them (fshm:
``stream.write(msg)``; Pipe: ``send_bytes(msg)``; Queue: ``put(msg)``). The fshm
stream is a lossless ring (8 MiB): the writer waits for the reader like a pipe's. The
reader reads what is there in one call (fshm: a follower's ``readinto`` of a 1 MiB
buffer; Pipe: ``recv_bytes`` per message; Queue: ``get`` per message). Each case runs
in fresh processes (fork); the time runs from the start signal to the reader's end.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np

import fshm

RING = 8 << 20


def fshm_writer(name, size, count, ready, go):
    owner = fshm.create(name, ring=RING, lossless=True)
    ready.set()
    go.wait()
    msg = b"m" * size
    w = owner.write
    for _ in range(count):
        w(msg)
    owner.close()


def fshm_reader(name, ready):
    ready.wait()
    s = fshm.open(name)  # read-write guest: attached, the writer waits for it
    return s


def run_fshm(size, count):
    ctx = mp.get_context("fork")
    name = f"/fshm-py-bench-{os.getpid()}-{size}"
    ready, go = ctx.Event(), ctx.Event()
    p = ctx.Process(target=fshm_writer, args=(name, size, count, ready, go))
    p.start()
    ready.wait()
    s = fshm.open(name)
    f = s.follow()
    buf = bytearray(1 << 20)
    got = 0
    t0 = time.perf_counter()
    go.set()
    readinto = f.readinto
    while True:
        n = readinto(buf)
        if n == 0:
            break
        got += n
    dt = time.perf_counter() - t0
    p.join()
    s.close()
    assert got == size * count, (got, size * count)
    return dt


def pipe_writer(conn, size, count, go):
    go.wait()
    msg = b"m" * size
    send = conn.send_bytes
    for _ in range(count):
        send(msg)
    send(b"")
    conn.close()


def run_pipe(size, count):
    ctx = mp.get_context("fork")
    r, w = ctx.Pipe(duplex=False)
    go = ctx.Event()
    p = ctx.Process(target=pipe_writer, args=(w, size, count, go))
    p.start()
    w.close()
    got = 0
    recv = r.recv_bytes
    t0 = time.perf_counter()
    go.set()
    while True:
        m = recv()
        if not m:
            break
        got += len(m)
    dt = time.perf_counter() - t0
    p.join()
    assert got == size * count
    return dt


def queue_writer(q, size, count, go):
    go.wait()
    msg = b"m" * size
    put = q.put
    for _ in range(count):
        put(msg)
    put(None)


def run_queue(size, count):
    ctx = mp.get_context("fork")
    q = ctx.Queue(maxsize=1024)
    go = ctx.Event()
    p = ctx.Process(target=queue_writer, args=(q, size, count, go))
    p.start()
    got = 0
    get = q.get
    t0 = time.perf_counter()
    go.set()
    while True:
        m = get()
        if m is None:
            break
        got += len(m)
    dt = time.perf_counter() - t0
    p.join()
    assert got == size * count
    return dt


ARRAY = 1 << 20


def numpy_writer(name, count, ready, go):
    owner = fshm.create(name, ring=4 * ARRAY, lossless=True)
    ready.set()
    go.wait()
    arr = np.arange(ARRAY // 8, dtype=np.uint64)
    for _ in range(count):
        owner.write(arr)  # the buffer protocol: no bytes object made
    owner.close()


def run_numpy(count, zero_copy):
    ctx = mp.get_context("fork")
    name = f"/fshm-py-bench-np-{os.getpid()}-{int(zero_copy)}"
    ready, go = ctx.Event(), ctx.Event()
    p = ctx.Process(target=numpy_writer, args=(name, count, ready, go))
    p.start()
    ready.wait()
    s = fshm.open(name)
    f = s.follow()
    total = 0
    checksum = 0
    t0 = time.perf_counter()
    go.set()
    if zero_copy:
        while True:
            with f.read_in_place() as view:  # waits; the ring's bytes in place
                n = view.nbytes
                n -= n % 8
                if n:
                    arr = np.frombuffer(view, dtype=np.uint64, count=n // 8)
                    checksum += int(arr.sum())
                    del arr
            if n == 0:
                break
            f.consume(n)
            total += n
    else:
        buf = bytearray(ARRAY)
        while True:
            n = f.readinto(buf)  # a copy into this process's memory
            if n == 0:
                break
            arr = np.frombuffer(buf, dtype=np.uint64, count=n // 8)
            checksum += int(arr.sum())
            del arr
            total += n
    dt = time.perf_counter() - t0
    p.join()
    s.close()
    assert total == ARRAY * count, (total, ARRAY * count)
    assert checksum == count * (ARRAY // 8) * (ARRAY // 8 - 1) // 2
    return dt


def fmt_rate(nbytes, dt):
    return f"{nbytes / dt / 1e6:,.0f} MB/s"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few MiB per case (smoke test)")
    ap.add_argument("--mib", type=int, default=256, help="MiB per case (default 256)")
    args = ap.parse_args()
    mib = 4 if args.quick else args.mib
    print(f"# fshm Python benchmark: writer process -> reader process, {mib} MiB per case")
    print()
    print("| message | fshm (lossless ring) | multiprocessing.Pipe | multiprocessing.Queue | fshm / Pipe | fshm / Queue |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in (64, 4096, 65536):
        count = mib * (1 << 20) // size
        nbytes = size * count
        t_f = run_fshm(size, count)
        t_p = run_pipe(size, count)
        t_q = run_queue(size, count)
        label = {64: "64 B", 4096: "4 KiB", 65536: "64 KiB"}[size]
        print(
            f"| {label} | {fmt_rate(nbytes, t_f)} ({count / t_f / 1e6:.2f} M msg/s) "
            f"| {fmt_rate(nbytes, t_p)} ({count / t_p / 1e6:.2f} M msg/s) "
            f"| {fmt_rate(nbytes, t_q)} ({count / t_q / 1e6:.2f} M msg/s) "
            f"| {t_p / t_f:.1f}x | {t_q / t_f:.1f}x |",
            flush=True,
        )
    print()
    count = max(4, mib)
    t_z = run_numpy(count, True)
    t_c = run_numpy(count, False)
    nbytes = count * ARRAY
    print("| 1 MiB NumPy arrays (uint64, reader sums each) | throughput |")
    print("|---|---:|")
    print(f"| zero-copy: read_in_place -> numpy.frombuffer | {fmt_rate(nbytes, t_z)} |")
    print(f"| copying: readinto(bytearray) -> numpy.frombuffer | {fmt_rate(nbytes, t_c)} |")
    print(f"| zero-copy / copying | {t_c / t_z:.2f}x |")


if __name__ == "__main__":
    main()

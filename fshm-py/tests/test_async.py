"""asyncio: await stream.wait(pos) and async line iteration, no thread per stream."""

from __future__ import annotations

import asyncio
import os
import threading

import fshm


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_await_wait(name):
    async def main() -> None:
        with fshm.create(name) as owner, fshm.open(name) as guest:
            waiting = asyncio.ensure_future(guest.wait(0))
            await asyncio.sleep(0)  # let it register
            assert not waiting.done()
            asyncio.get_running_loop().call_soon(owner.write, b"x")
            assert await asyncio.wait_for(waiting, 20) is fshm.WaitStatus.DATA
            assert await guest.wait(0) is fshm.WaitStatus.DATA  # at once
            loop = asyncio.get_running_loop()
            loop.call_soon(owner.close)
            assert await asyncio.wait_for(guest.wait(1), 20) is fshm.WaitStatus.ENDED

    asyncio.run(main())


def test_async_lines_from_a_writer_thread(name):
    owner = fshm.create(name)
    guest = fshm.open(name)

    def write() -> None:
        for i in range(500):
            owner.write(b"line %d\n" % i)
        owner.write(b"no newline")
        owner.close()

    async def main() -> list[bytes]:
        t = threading.Thread(target=write)
        t.start()
        got = [line async for line in guest]  # Stream.__aiter__: async_lines()
        t.join()
        return got

    lines = asyncio.run(main())
    assert lines == [b"line %d\n" % i for i in range(500)] + [b"no newline"]
    guest.close()


def test_many_waits_without_a_thread_each(names):
    n = 40
    owners = [fshm.create(names()) for _ in range(n)]
    guests = [fshm.open(o.name) for o in owners]
    before = os_threads()

    async def main() -> list[fshm.WaitStatus]:
        tasks = [asyncio.ensure_future(g.wait(0)) for g in guests]
        for _ in range(3):
            await asyncio.sleep(0)
        assert not any(t.done() for t in tasks)
        during = os_threads()
        # The crate's reactor: a few threads for every waiter of the process.
        assert during - before < n // 4, (before, during)
        for o in owners:
            o.write(b"x")
        return await asyncio.wait_for(asyncio.gather(*tasks), 20)

    assert asyncio.run(main()) == [fshm.WaitStatus.DATA] * n
    for s in guests + owners:
        s.close()


def test_cancelled_wait_leaves_no_reader_behind(name):
    async def main() -> None:
        with fshm.create(name) as owner, fshm.open(name) as guest:
            loop = asyncio.get_running_loop()
            readers_before = len(loop._selector.get_map())  # type: ignore[attr-defined]
            try:
                await asyncio.wait_for(guest.wait(0), 0.05)
            except TimeoutError:
                pass
            assert len(loop._selector.get_map()) == readers_before  # type: ignore[attr-defined]
            owner.write(b"y")
            assert await guest.wait(0) is fshm.WaitStatus.DATA

    asyncio.run(main())

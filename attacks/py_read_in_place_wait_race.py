"""fshm-py: a read-only memoryview from `read_in_place(wait=True)` whose bytes the
writer overwrites while the view is exported.

`read_in_place(wait=True)` releases the GIL while it waits and lends; the view's
validity generation is sampled only after the GIL is back. Another Python thread that
moves the handle's position in between (here `readinto`, which `moving()` allows since no
view is exported yet) publishes the reader's slot past the lent bytes; the view is still
exported (its generation is the new one), and the writer may overwrite what it shows.

Run: PYTHONPATH=<dir holding fshm/ with _fshm.abi3.so> python3 py_read_in_place_wait_race.py
Exit 1 if the exported view's bytes changed (the hole), 0 if read_in_place refused.
"""
import os
import subprocess
import sys
import threading
import time

from fshm import _fshm

CAP = 4096
name = f"/rt-py-wait-race-{os.getpid()}"
W = _fshm.Handle.create(name, 0o600, None, CAP, True, False, False, False)
R = _fshm.Handle.open(name, False, False)
assert R.is_attached

WRITER = (
    "import sys; from fshm import _fshm;"
    "h = _fshm.Handle.open(sys.argv[1], False, False);"
    "h.write(sys.argv[2].encode() * %d); h.close()" % CAP
)


def write_from_another_process(ch):
    subprocess.run([sys.executable, "-c", WRITER, name, ch], check=True)


got = {}


def lender():
    try:
        got["mv"] = R.read_in_place(True)  # GIL released while it waits and lends
    except Exception as e:  # noqa: BLE001
        got["err"] = e


sys.setswitchinterval(0.5)  # the main thread keeps the GIL once it has it
a = threading.Thread(target=lender)
a.start()
time.sleep(0.2)  # the lender waits for data, GIL released
p = subprocess.Popen([sys.executable, "-c", WRITER, name, "A"])
buf = bytearray(CAP)
n = 0
while n == 0:  # holds the GIL: readinto of 4 KiB does not release it
    n = R.readinto(buf)
p.wait()
a.join(5)
try:
    if "err" in got:
        print("read_in_place refused:", got["err"])
        sys.exit(0)
    if "mv" not in got:
        print("inconclusive: the lender lent after the read (rerun)")
        write_from_another_process("B")
        a.join()
        sys.exit(2)
    mv = got["mv"]
    first = bytes(mv[:8])
    print("exported view at position", 0, "shows", first, "len", len(mv))
    write_from_another_process("B")  # room: the reader's slot is past the view
    now = bytes(mv[:8])
    print("after the writer:", now)
    if now != first:
        print("HOLE: bytes changed under an exported read-only view")
        sys.exit(1)
    print("held")
    sys.exit(0)
finally:
    got.pop("mv", None)
    try:
        R.close()
    except Exception:  # noqa: BLE001
        pass
    W.close()

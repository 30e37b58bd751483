#!/usr/bin/env bash
# The Python package (fshm-py): `pip install ./fshm-py` in a fresh virtual environment
# (maturin from the package index builds the extension once, in release mode), then
# `import fshm`, a type check of the installed package and its stubs (mypy --strict),
# the package's tests (pytest, NumPy from the package index; the interop tests use the
# release fshm CLI and libshmfile, built here), and the benchmark in quick mode (no
# thresholds).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=$(mktemp -d /tmp/fshm-py-venv.XXXXXX)
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
echo "python.sh: pip install ./fshm-py"
time "$venv/bin/python" -m pip install -q ./fshm-py
"$venv/bin/python" -c 'import fshm, io; assert issubclass(fshm.Stream, io.RawIOBase); print("python.sh: import fshm", fshm.__version__)'
"$venv/bin/python" -m pip install -q pytest numpy mypy
echo "python.sh: the installed package and its stubs type-check (mypy --strict)"
(cd /tmp && "$venv/bin/python" -m mypy --strict --cache-dir=/dev/null -p fshm)
echo "python.sh: the fshm CLI and libshmfile for the interop tests"
cargo build --release -q -p fshm-cli -p fshm-ffi
export FSHM_BIN_DIR="$PWD/target/release" FSHM_PY_REQUIRE_INTEROP=1
# Run from the tests' directory: `import fshm` must find the installed package, not
# the source tree.
(cd fshm-py/tests && "$venv/bin/python" -m pytest -q -p no:cacheprovider .)
echo "python.sh: benchmark (quick mode, no thresholds)"
"$venv/bin/python" fshm-py/bench.py --quick

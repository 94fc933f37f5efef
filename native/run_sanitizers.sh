#!/usr/bin/env bash
# Builds the kernel library with AddressSanitizer + UndefinedBehaviorSanitizer into a
# separate folder (the installed build is untouched) and runs the kernel tests against it.
# Any sanitizer report aborts the process, so the script exits non-zero.
#
#   bash native/run_sanitizers.sh [extra pytest args]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python}"
if [[ -x "$ROOT/.venv/bin/python" && -z "${VIRTUAL_ENV:-}" ]]; then
    PYTHON="$ROOT/.venv/bin/python"
fi
CC="${CC:-gcc}"
OUT="${SANITIZER_BUILD_DIR:-$(mktemp -d /tmp/skillmill-asan.XXXXXX)}"

echo "== building sanitized kernels in $OUT"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
LIBRARY="$(CC="$CC" SKILLMILL_NATIVE_CFLAGS="$SAN -O1 -g" SKILLMILL_NATIVE_LDFLAGS="$SAN" \
    "$PYTHON" native/build_native.py --out "$OUT" | tail -n 1)"
[[ -f "$LIBRARY" ]] || { echo "sanitized build failed"; exit 1; }

# Python itself is not instrumented, so the runtimes are preloaded; CPython's arenas are
# reported as leaks at exit, which says nothing about the kernels: leak checking is off.
PRELOAD="$("$CC" -print-file-name=libasan.so):$("$CC" -print-file-name=libubsan.so)"
export LD_PRELOAD="$PRELOAD"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export SKILLMILL_NATIVE_LIBRARY="$LIBRARY"

echo "== checking the sanitized build is the one loaded"
"$PYTHON" - <<'PY'
import os, sys
import skillmill.native as n
assert n.available(), n.unavailable_reason()
loaded = sys.modules["skillmill.native._kernels"].__file__
assert os.path.samefile(loaded, os.environ["SKILLMILL_NATIVE_LIBRARY"]), loaded
print("loaded", loaded, "paths:", n.info()["supported_isas"])
PY

# The gate is only worth something if it fires: a deliberate out-of-bounds write (ASan) and
# a misaligned float access on the scalar path (UBSan) must each kill the process.
echo "== self-check: deliberate bugs must be reported"
for bug in overflow misaligned; do
    if "$PYTHON" - "$bug" >/dev/null 2>&1 <<'PY'; then
import sys
import numpy as np
import skillmill.native as n
from skillmill.native._lib import ffi, lib
a = np.ones(64, np.float32)
if sys.argv[1] == "overflow":
    small = np.empty(8, np.float32)
    lib.skm_add(ffi.from_buffer("float[]", a), ffi.from_buffer("float[]", a),
                ffi.from_buffer("float[]", small, require_writable=True), 1, 64, 0)
else:
    n.set_isa("scalar")
    raw = np.zeros(300, np.uint8)
    p = ffi.cast("float *", ffi.cast("uintptr_t", ffi.from_buffer(raw)) + 1)
    lib.skm_add(p, p, p, 1, 64, 0)
PY
        echo "sanitizers did not report the deliberate '$bug' bug"; exit 1
    fi
    echo "   $bug: reported"
done

echo "== kernel tests under ASan+UBSan (every runnable ISA path)"
# tests/ir/test_plan.py: the IR executor's plans hand the kernels raw pointers (arena views,
# offsets into fused q|k|v rows) with the checks done once at plan time; run them sanitized too
"$PYTHON" -m pytest tests/native tests/ir/test_plan.py -q -p no:cacheprovider -x "$@"
status=$?
[[ -z "${SANITIZER_BUILD_DIR:-}" ]] && rm -rf "$OUT"
exit $status

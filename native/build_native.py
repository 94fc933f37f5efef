"""cffi builder for the kernel library (API / out-of-line mode).

setup.py runs this through ``cffi_modules``; it can also be run by hand for a quick rebuild
in place: ``python native/build_native.py``.  The C declarations come verbatim from
``src/skm_api.h`` so the header and the binding cannot drift apart.

Environment:
  SKILLMILL_NATIVE_CFLAGS  extra compiler flags (run_sanitizers.sh passes -fsanitize=...)
  SKILLMILL_NATIVE_SCALAR_ONLY=1  build without the vector paths (tests the fallback)
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
SOURCES = [
    "dispatch.c",
    "threadpool.c",
    "arena.c",
    "common.c",
    "isa_scalar.c",
    "isa_avx2.c",
    "isa_avx512.c",
    "isa_neon.c",
]
MODULE = "skillmill.native._kernels"


def compile_args() -> list[str]:
    """Portable flags only: no -march=native, since one build must serve every CPU."""
    if sys.platform == "win32":
        return ["/O2"]
    # -fno-math-errno / -fno-trapping-math let sqrtf and friends inline; no -ffast-math, which
    # would break NaN/inf semantics the tests rely on.  gnu11 keeps FMA contraction legal.
    args = ["-O3", "-std=gnu11", "-fno-math-errno", "-fno-trapping-math", "-pthread"]
    if os.environ.get("SKILLMILL_NATIVE_SCALAR_ONLY") == "1":
        args.append("-DSKM_NO_SIMD")
    args += shlex.split(os.environ.get("SKILLMILL_NATIVE_CFLAGS", ""))
    return args


def link_args() -> list[str]:
    if sys.platform == "win32":
        return []
    return ["-pthread"] + shlex.split(os.environ.get("SKILLMILL_NATIVE_LDFLAGS", ""))


def make_builder(module: str = MODULE, root: Path | None = None) -> FFI:
    """root: make source paths relative to it (setuptools rejects absolute ones and runs from
    the project root); None gives absolute paths, for building from anywhere."""
    src = SRC if root is None else SRC.relative_to(root)
    builder = FFI()
    builder.cdef((SRC / "skm_api.h").read_text())
    builder.set_source(
        module,
        '#include "skm.h"',
        sources=[str(src / name) for name in SOURCES],
        include_dirs=[str(src)],
        extra_compile_args=compile_args(),
        extra_link_args=link_args(),
        libraries=[] if sys.platform == "win32" else ["m"],
    )
    return builder


ffibuilder = make_builder(root=HERE.parent if Path.cwd().resolve() == HERE.parent else None)

if __name__ == "__main__":
    # Default: rebuild in place, under the file name pip's build uses (cffi builds for the
    # stable ABI), so one replaces the other.  --out DIR builds elsewhere (sanitizer builds).
    import argparse

    parser = argparse.ArgumentParser(description="build skillmill.native._kernels")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    args = parser.parse_args()
    name = "_kernels.pyd" if sys.platform == "win32" else "_kernels.abi3.so"
    out_dir = (args.out or HERE).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "_tmp" if args.out else HERE / "_build"
    print(make_builder().compile(tmpdir=str(tmp), target=str(out_dir / name)))

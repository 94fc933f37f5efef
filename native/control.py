"""Library state: which ISA path runs, how many threads, the scratch arena, and info()."""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator

from . import _lib
from ._lib import check_rc, require

ISAS = {"scalar": 0, "avx2": 1, "avx512": 2, "neon": 3}
_ISA_NAMES = {v: k for k, v in ISAS.items()}
_FEATURES = {1: "avx2", 2: "fma", 4: "avx512f", 8: "neon", 16: "avx512bw", 32: "avx512_vnni"}
_notes: list[str] = []


def available() -> bool:
    return _lib.lib is not None


def unavailable_reason() -> str | None:
    """None when the kernels load, else e.g. 'unavailable: no C compiler'."""
    return _lib.reason


def cpu_features() -> list[str]:
    require()
    bits = _lib.lib.skm_cpu_features()
    return [name for bit, name in _FEATURES.items() if bits & bit]


def supported_isas() -> list[str]:
    """ISA paths built into this library *and* runnable on this CPU."""
    require()
    return [name for name, i in ISAS.items() if _lib.lib.skm_isa_supported(i)]


def get_isa() -> str:
    require()
    return _ISA_NAMES[_lib.lib.skm_active_isa()]


def set_isa(name: str) -> None:
    """Forces a path: 'auto' (best for this CPU), 'scalar', 'avx2', 'avx512' or 'neon'.
    Raises ValueError for a path this CPU or build cannot run."""
    require()
    if name == "auto":
        check_rc(_lib.lib.skm_set_isa(-1), "set_isa")
        return
    if name not in ISAS:
        raise ValueError(f"unknown ISA {name!r}; choose from auto, {', '.join(ISAS)}")
    if not _lib.lib.skm_isa_supported(ISAS[name]):
        raise ValueError(
            f"ISA {name!r} is not available here (supported: {', '.join(supported_isas())}; "
            f"CPU features: {', '.join(cpu_features()) or 'none'})"
        )
    check_rc(_lib.lib.skm_set_isa(ISAS[name]), "set_isa")


@contextlib.contextmanager
def using_isa(name: str) -> Iterator[None]:
    """Runs the block on one ISA path and restores the previous one (tests use this)."""
    before = get_isa()
    set_isa(name)
    try:
        yield
    finally:
        set_isa(before)


def set_num_threads(n: int) -> None:
    require()
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
        raise ValueError(f"threads must be an int in [1, 64], got {n!r}")
    check_rc(_lib.lib.skm_set_num_threads(n), "set_num_threads")


def get_num_threads() -> int:
    require()
    return int(_lib.lib.skm_get_num_threads())


def reset_arena() -> None:
    """Call between inferences: frees overflow scratch blocks and sizes one block to the
    high-water mark, so the next inference does not allocate."""
    require()
    _lib.lib.skm_arena_reset()


def arena_stats() -> dict[str, int]:
    require()
    buf = _lib.ffi.new("int64_t[4]")
    _lib.lib.skm_arena_stats(buf)
    return {
        "reserved_bytes": buf[0],
        "highwater_bytes": buf[1],
        "system_allocs": buf[2],
        "blocks": buf[3],
    }


def get_gemm_blocking(isa: str | None = None) -> dict[str, int]:
    require()
    isa_id = ISAS[isa or get_isa()]
    buf = _lib.ffi.new("int64_t[3]")
    tile = _lib.ffi.new("int64_t[2]")
    check_rc(_lib.lib.skm_gemm_get_blocking(isa_id, buf), "get_gemm_blocking")
    check_rc(_lib.lib.skm_gemm_tile(isa_id, tile), "get_gemm_blocking")
    return {"mr": tile[0], "nr": tile[1], "mc": buf[0], "kc": buf[1], "nc": buf[2]}


def set_gemm_blocking(mc: int, kc: int, nc: int, isa: str | None = None) -> None:
    """Cache blocking is data: tune MC/KC/NC per machine (MC % MR == 0, NC % NR == 0)."""
    require()
    rc = _lib.lib.skm_gemm_set_blocking(ISAS[isa or get_isa()], mc, kc, nc)
    if rc == -1:
        tile = get_gemm_blocking(isa)
        raise ValueError(f"need mc % {tile['mr']} == 0 and nc % {tile['nr']} == 0, all > 0")
    check_rc(rc, "set_gemm_blocking")


def peak_gflops(threads: int = 1, seconds: float = 0.2) -> float:
    """Measured FMA-only throughput of the active path (GFLOP/s over `threads` threads)."""
    require()
    lib = _lib.lib
    probe = 2_000_000
    rate = lib.skm_fma_peak_gflops(probe, threads) * 1e9 / max(threads, 1)
    iters = max(probe, int(rate * seconds / (24.0 * _lanes())))
    return float(lib.skm_fma_peak_gflops(iters, threads))


def _lanes() -> int:
    return {"scalar": 1, "avx2": 8, "avx512": 16, "neon": 4}[get_isa()]


def info() -> dict:
    """What runs: availability, active/best ISA, CPU features, threads, GEMM tiling, arena."""
    if not available():
        return {"available": False, "reason": unavailable_reason()}
    return {
        "available": True,
        "reason": None,
        "isa": get_isa(),
        "best_isa": _ISA_NAMES[_lib.lib.skm_best_isa()],
        "supported_isas": supported_isas(),
        "compiled_isas": [n for n, i in ISAS.items() if _lib.lib.skm_compiled_isas() & (1 << i)],
        "cpu_features": cpu_features(),
        "threads": get_num_threads(),
        "gemm": get_gemm_blocking(),
        "arena": arena_stats(),
        "notes": list(_notes),
    }


def _default_threads() -> int:
    try:
        return max(1, min(64, len(os.sched_getaffinity(0))))
    except (AttributeError, OSError):
        return max(1, min(64, os.cpu_count() or 1))


def configure_from_env() -> None:
    """SKILLMILL_NATIVE_ISA and SKILLMILL_NATIVE_THREADS, read once at import.  A bad value
    must not break importing a skill: it falls back and says why (warning + info()['notes'])."""
    if not available():
        return
    isa = os.environ.get("SKILLMILL_NATIVE_ISA", "").strip().lower()
    if isa:
        try:
            set_isa(isa)
        except ValueError as exc:
            note = f"SKILLMILL_NATIVE_ISA={isa!r} ignored, using {get_isa()}: {exc}"
            _notes.append(note)
            warnings.warn(note, RuntimeWarning, stacklevel=2)
    threads = os.environ.get("SKILLMILL_NATIVE_THREADS", "").strip()
    try:
        set_num_threads(int(threads) if threads else _default_threads())
    except ValueError as exc:
        note = f"SKILLMILL_NATIVE_THREADS={threads!r} ignored: {exc}"
        _notes.append(note)
        warnings.warn(note, RuntimeWarning, stacklevel=2)
        set_num_threads(_default_threads())

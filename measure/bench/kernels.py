"""Kernel benchmark: native SGEMM vs numpy's BLAS vs torch.matmul, the machine's measured
FMA peak, and per-call times of the small fused ops vs torch eager, all in one run.

    python -m skillmill.measure.bench.kernels [--threads 2] [--repeats 5] [--quick] [--json]
    generate-skills bench kernels [--threads 2] [--repeats 5] [--quick]

Candidates are timed interleaved (native, numpy, torch, native, ...) and the best time of
each is kept, so a burst of load from another process hits all of them alike instead of
whichever happened to run at that moment; between samples each library's spinning worker
threads are given time to go idle.  Medians are reported alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Callable

import numpy as np

from skillmill.native import control, linalg, nn

from .. import machine

GEMM_SIZES = [
    (128, 384, 1536),
    (128, 1536, 384),
    (512, 512, 512),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
]
FLOOR_VS_LIBS = 0.8  # native >= 0.8x the better of numpy and torch at 512^3 and above
FLOOR_VS_PEAK = 0.7  # native >= 70% of the measured peak FMA throughput


def _time_calls(fn: Callable[[], object], min_seconds: float) -> float:
    """Seconds per call, looping until the sample lasts min_seconds (timer resolution)."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def _interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, min_seconds: float, settle: float = 0.12
) -> dict[str, dict[str, float]]:
    """Round-robin over the candidates.  Before each sample the previous library's worker
    threads are given `settle` seconds to go idle: OpenBLAS and OpenMP spin for up to ~0.1 s
    after a call, and on two cores a spinning neighbour halves whoever runs next."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            time.sleep(settle)
            _time_calls(fn, 0.02)  # wake and ramp up this library's threads, page in buffers
            samples[name].append(_time_calls(fn, min_seconds))
    return {n: {"best_s": min(s), "median_s": statistics.median(s)} for n, s in samples.items()}


def _limit_numpy_threads(threads: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None, "threadpoolctl not installed: numpy's BLAS used its default thread count"
    return threadpool_limits(limits=threads), None


def _gemm_rows(sizes, threads, repeats, torch, peak) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for m, k, n in sizes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        outs = {name: np.empty((m, n), np.float32) for name in ("native", "numpy", "torch")}
        fns = {
            "native": lambda: linalg.matmul(a, b, out=outs["native"]),
            "numpy": lambda: np.matmul(a, b, out=outs["numpy"]),
        }
        if torch is not None:
            ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(outs["torch"])
            fns["torch"] = lambda: torch.matmul(ta, tb, out=tc)
        flops = 2.0 * m * n * k
        min_seconds = 0.002 if flops < 1e9 else 0.0
        times = _interleaved(fns, repeats, min_seconds)
        row = {"m": m, "k": k, "n": n}
        for name, t in times.items():
            row[f"{name}_gflops"] = flops / t["best_s"] / 1e9
            row[f"{name}_gflops_median"] = flops / t["median_s"] / 1e9
        best_lib = max(row.get("numpy_gflops", 0.0), row.get("torch_gflops", 0.0))
        row["ratio_vs_best_lib"] = row["native_gflops"] / best_lib if best_lib else float("nan")
        row["fraction_of_peak"] = row["native_gflops"] / peak if peak else float("nan")
        row["floor_applies"] = m * n * k >= 512**3
        rows.append(row)
    return rows


def _op_rows(repeats, torch) -> list[dict]:
    """MiniLM-L6 sizes: batch 1, seq 128, hidden 384, 12 heads, intermediate 1536."""
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((1, 12, 128, 128), dtype=np.float32)
    hidden = rng.standard_normal((1, 128, 384), dtype=np.float32)
    inter = rng.standard_normal((1, 128, 1536), dtype=np.float32)
    w, bias = np.ones(384, np.float32), np.zeros(384, np.float32)
    cases = {
        "softmax [1,12,128,128]": (
            lambda: nn.softmax(scores),
            lambda t: t.nn.functional.softmax(T["scores"], dim=-1),
        ),
        "layer_norm [1,128,384]": (
            lambda: nn.layer_norm(hidden, w, bias, 1e-12),
            lambda t: t.nn.functional.layer_norm(T["hidden"], (384,), T["w"], T["b"], 1e-12),
        ),
        "gelu [1,128,1536]": (lambda: nn.gelu(inter), lambda t: t.nn.functional.gelu(T["inter"])),
        "gelu [1,128,384]": (lambda: nn.gelu(hidden), lambda t: t.nn.functional.gelu(T["hidden"])),
    }
    T = {}
    if torch is not None:
        T = {
            "scores": torch.from_numpy(scores),
            "hidden": torch.from_numpy(hidden),
            "inter": torch.from_numpy(inter),
            "w": torch.from_numpy(w),
            "b": torch.from_numpy(bias),
        }
    rows = []
    for name, (native_fn, torch_fn) in cases.items():
        fns = {"native": native_fn}
        if torch is not None:
            fns["torch"] = lambda f=torch_fn: f(torch)
        times = _interleaved(fns, repeats, 0.01)
        row = {
            "op": name,
            "native_us": times["native"]["best_s"] * 1e6,
            "native_us_median": times["native"]["median_s"] * 1e6,
        }
        if "torch" in times:
            row["torch_us"] = times["torch"]["best_s"] * 1e6
            row["torch_us_median"] = times["torch"]["median_s"] * 1e6
            row["speedup_vs_torch"] = row["torch_us"] / row["native_us"]
        rows.append(row)
    return rows


def run_kernel_benchmarks(threads: int = 2, repeats: int = 5, quick: bool = False) -> dict:
    """Measures everything in one run and returns plain data (see format_report)."""
    control.set_num_threads(threads)
    notes: list[str] = []
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        torch = None
        notes.append("torch not installed: torch columns missing")
    limiter, note = _limit_numpy_threads(threads)
    if note:
        notes.append(note)
    sizes = GEMM_SIZES[:-1] if quick else GEMM_SIZES
    repeats = max(1, min(repeats, 2) if quick else repeats)
    try:
        peak = machine.fma_peak(threads, rounds=max(10, 6 * repeats))
        gemm = _gemm_rows(sizes, threads, repeats, torch, peak["peak_gflops"])
        ops = _op_rows(max(3, repeats), torch)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    floor_rows = [r for r in gemm if r["floor_applies"]]
    floors = {
        "gemm_vs_libs": all(r["ratio_vs_best_lib"] >= FLOOR_VS_LIBS for r in floor_rows),
        "gemm_vs_peak": all(r["fraction_of_peak"] >= FLOOR_VS_PEAK for r in floor_rows),
        "small_ops_beat_torch": all(r.get("speedup_vs_torch", 0) > 1.0 for r in ops),
    }
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "threads": threads,
        "repeats": repeats,
        "quick": quick,
        "isa": control.get_isa(),
        "machine": machine.describe_machine(threads, peak),
        "load_average": load,
        "peak": peak,
        "gemm": gemm,
        "ops": ops,
        "floors": floors,
        "notes": notes,
    }


def format_report(result: dict) -> str:
    p = result["peak"]
    lines = [
        machine.machine_line(result["machine"]),
        f"skillmill.native kernels: isa={result['isa']} threads={result['threads']} "
        f"repeats={result['repeats']} load={result['load_average']}",
        f"measured FMA peak: {p['per_core_gflops']:.1f} GFLOP/s per core x {result['threads']} "
        f"= {p['peak_gflops']:.1f} (all threads at once: {p['threads_gflops']:.1f})",
        "",
        "SGEMM GFLOP/s (best of interleaved runs; median in brackets)",
        f"{'M,K,N':>16} {'native':>14} {'numpy':>14} {'torch':>14} {'vs best lib':>12} {'of peak':>8}",
    ]
    for r in result["gemm"]:

        def cell(name):
            if f"{name}_gflops" not in r:
                return f"{'-':>14}"
            return f"{r[f'{name}_gflops']:7.1f} ({r[f'{name}_gflops_median']:5.1f})"

        lines.append(
            f"{r['m']:>5},{r['k']:>4},{r['n']:>5} {cell('native')} {cell('numpy')} "
            f"{cell('torch')} {r['ratio_vs_best_lib']:11.2f}x {r['fraction_of_peak']:7.0%}"
        )
    lines += [
        "",
        "Small ops at MiniLM sizes, microseconds per call (best; median in brackets)",
        f"{'op':<24} {'native':>16} {'torch eager':>16} {'speedup':>8}",
    ]
    for r in result["ops"]:
        torch_cell = (
            f"{r['torch_us']:7.1f} ({r['torch_us_median']:6.1f})"
            if "torch_us" in r
            else f"{'-':>16}"
        )
        speed = f"{r['speedup_vs_torch']:7.2f}x" if "speedup_vs_torch" in r else f"{'-':>8}"
        lines.append(
            f"{r['op']:<24} {r['native_us']:7.1f} ({r['native_us_median']:6.1f}) "
            f"{torch_cell} {speed}"
        )
    f = result["floors"]
    lines += [
        "",
        "Floors (issue 3):",
        f"  SGEMM >= {FLOOR_VS_LIBS}x best of numpy/torch at >= 512^3: "
        f"{'met' if f['gemm_vs_libs'] else 'NOT met'}",
        f"  SGEMM >= {FLOOR_VS_PEAK:.0%} of measured peak at >= 512^3: "
        f"{'met' if f['gemm_vs_peak'] else 'NOT met'}",
        f"  small fused ops faster than torch eager: "
        f"{'met' if f['small_ops_beat_torch'] else 'NOT met'}",
    ]
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args(argv)
    result = run_kernel_benchmarks(args.threads, args.repeats, args.quick)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What a benchmark ran on, measured in the same run: the CPU, its SIMD features, the kernel
path the native library dispatched to, and the FMA peak of that path.  Every benchmark prints
``machine_line`` first and stores ``describe_machine`` beside its figures, so a table always
says which machine it came from (the project's machines change between sessions)."""

from __future__ import annotations

import os
from typing import Any

from skillmill.native import control
from skillmill.runtime.cpu_features import cpu_features, cpu_model


def fma_peak(threads: int, rounds: int = 10) -> dict[str, float]:
    """Best of many short windows of the dispatched path's FMA loop: long windows on a shared
    machine mostly measure the other processes."""
    one = max(control.peak_gflops(1, seconds=0.004) for _ in range(rounds))
    many = max(control.peak_gflops(threads, seconds=0.004) for _ in range(rounds))
    return {"per_core_gflops": one, "threads_gflops": many, "peak_gflops": one * threads}


def describe_machine(threads: int, peak: dict[str, float] | None = None) -> dict[str, Any]:
    """{"cpu", "cores", "simd" (the CPU's features), "isa" (the native path in use), "peak"}."""
    control.require()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "simd": [name for name, present in cpu_features().items() if present],
        "isa": control.get_isa(),
        "threads": threads,
        "peak": peak or fma_peak(threads),
        "load_average": load,
    }


def machine_line(machine: dict[str, Any]) -> str:
    peak = machine["peak"]
    return (f"machine: {machine['cpu']}, {machine['cores']} cores; SIMD {' '.join(machine['simd']) or 'none'}; "
            f"native kernels on {machine['isa']}; measured FMA peak {peak['per_core_gflops']:.0f} GFLOP/s "
            f"per core, {peak['peak_gflops']:.0f} for {machine['threads']} threads")  # fmt: skip

"""The benchmark runs end to end (quick mode) and reports every row the issue asks for."""

from __future__ import annotations

from native_helpers import native  # noqa: F401  (skips the module when the kernels are missing)

from skillmill.measure.bench import kernels as bench


def test_quick_benchmark_report():
    result = bench.run_kernel_benchmarks(threads=1, repeats=1, quick=True)
    assert [(r["m"], r["k"], r["n"]) for r in result["gemm"]] == bench.GEMM_SIZES[:-1]
    for row in result["gemm"]:
        assert row["native_gflops"] > 0 and row["numpy_gflops"] > 0
        assert "ratio_vs_best_lib" in row and "fraction_of_peak" in row
    assert {r["op"].split()[0] for r in result["ops"]} == {"softmax", "layer_norm", "gelu"}
    assert result["peak"]["per_core_gflops"] > 0
    text = bench.format_report(result)
    assert "SGEMM GFLOP/s" in text and "Floors" in text and "softmax" in text
    # the report names its machine: the CPU, the native path in use and the peak measured here
    machine = result["machine"]
    assert machine["cpu"] and machine["isa"] == result["isa"] and machine["peak"] == result["peak"]
    assert text.startswith(f"machine: {machine['cpu']}") and f"native kernels on {machine['isa']}" in text


def test_machine_line_names_the_cpu_simd_path_and_peak():
    from skillmill.native import control
    from skillmill.measure.machine import describe_machine, machine_line

    info = describe_machine(1, peak={"per_core_gflops": 123.4, "threads_gflops": 123.4, "peak_gflops": 123.4})
    assert info["isa"] == control.get_isa() and info["cores"] >= 1 and info["threads"] == 1
    line = machine_line(info)
    assert "measured FMA peak 123 GFLOP/s per core" in line and info["cpu"] in line

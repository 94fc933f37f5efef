"""The Modular benchmark's ratios: each backend against PyTorch eager on its own device."""

from skillmill.measure.bench import modular as bench


def _results(latency):
    return {"shapes": ["1x16"], "rounds": 1, "repeats": 1, "errors": {}, "compile": {},
            "latency": {b: {"1x16": {"median_ms": ms}} for b, ms in latency.items()}}  # fmt: skip


def test_gpu_backends_are_compared_with_torch_on_the_gpu_and_cpu_ones_with_torch_on_the_cpu():
    results = _results({"max": 4.0, "torch": 8.0, "max-gpu": 1.0, "torch-cuda": 3.0})
    bench.add_speedups(results)
    rows = results["latency"]
    assert rows["max"]["1x16"]["speedup_vs_torch"] == 2.0
    assert rows["max-gpu"]["1x16"]["speedup_vs_torch_cuda"] == 3.0
    assert "speedup_vs_torch" not in rows["max-gpu"]["1x16"]
    report = bench.format_report({**results, "floors": bench.check_floors(results)})
    assert "(3.00x)" in report and "(2.00x)" in report


def test_a_cpu_run_does_not_report_gpu_compile_floors():
    results = _results({"max": 4.0, "torch": 8.0})
    bench.add_speedups(results)
    floors = bench.check_floors(results)
    assert floors["max 1x16 >= 2.0x torch"] == "met (2.00x)"
    assert not [k for k in floors if k.startswith("max_gpu")]
    gpu = {**results, "compile": {"max_gpu_cold": {"seconds": 127.8}}}
    assert bench.check_floors(gpu)["max_gpu_cold < 300 s"] == "met (127.8 s)"

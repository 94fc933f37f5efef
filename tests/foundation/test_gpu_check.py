"""gpu_check on a machine without a GPU: the real MiniLM skill asked for cuda falls back to the
CPU path, says why, and its embeddings are compared with the CPU's for real."""

import torch

from skillmill.measure import gpu_check


def test_gpu_check_reports_the_fallback_and_a_measured_difference(monkeypatch):
    monkeypatch.setattr(gpu_check, "WARM_CALLS", 1)
    report = gpu_check.check(("cuda",))
    cpu, cuda = report["rows"]
    assert cpu["requested"] == "cpu" and cpu["fallback_reason"] is None
    assert cpu["max_abs_diff_vs_cpu"] is None  # the reference, not a comparison
    if torch.cuda.is_available():
        assert cuda["backend"] == "cuda" and cuda["max_abs_diff_vs_cpu"] < 1e-4
    else:
        assert cuda["backend"] != "cuda" and cuda["fallback_reason"].startswith("cuda: not present")
        # a fallback ran the CPU path again: comparing it with the CPU would prove nothing
        assert cuda["max_abs_diff_vs_cpu"] is None
    assert cuda["warm_median_ms"] > 0

"""`bench models` (issue 25): FLOP counts, the workloads the issue asks for, the precision each
engine really ran, and verdicts that never count a bf16 run as a float32 peer."""

import pytest

from skillmill.measure.bench import models


def test_flops_match_the_issue_for_minilm_at_32x128():
    from transformers import BertConfig

    minilm = BertConfig(hidden_size=384, intermediate_size=1536, num_hidden_layers=6)
    assert models.encoder_flops(minilm, 32, 128) / 1e9 == pytest.approx(91.8, abs=0.05)
    # attention's seq^2 term: at (8, 512) the same 4,096 tokens cost more than at (32, 128)
    assert models.encoder_flops(minilm, 8, 512) > models.encoder_flops(minilm, 32, 128)


def test_the_workloads_are_the_ones_asked_for():
    asked = {("minilm", 1, 16), ("minilm", 1, 128), ("minilm", 32, 128), ("minilm", 1, 512),
             ("minilm", 8, 512), ("bert-base", 1, 128), ("bert-base", 32, 128)}  # fmt: skip
    assert set(models.WORKLOADS) == asked
    assert models.select_workloads(("bert-base",)) == (
        ("bert-base", 1, 128),
        ("bert-base", 32, 128),
    )
    with pytest.raises(ValueError, match="unknown models nope"):
        models.select_workloads(("nope",))


def _row(ms, precision="float32", memory=10.0):
    return {
        "median_ms": ms,
        "precision": precision,
        "share_of_peak": 0.5,
        "peak_above_load_mib": memory,
    }


def test_a_bf16_run_is_not_a_float32_peer():
    results = {"backends": {
        "native": {"minilm 1x16": _row(2.0, memory=5)},
        "openvino": {"minilm 1x16": _row(1.0, "bfloat16", memory=1)},  # faster, but not fp32
        "openvino-f32": {"minilm 1x16": _row(3.0)},
        "onnxruntime": {"minilm 1x16": {"error": "boom"}},  # a failed row is nobody's peer
    }}  # fmt: skip
    verdict = models.fp32_verdicts(results)["minilm 1x16"]
    assert verdict.startswith("fastest fp32: native")
    assert "best of ORT/OpenVINO-f32 / native = 1.50x" in verdict
    assert verdict.endswith("least peak RSS: native")
    results["backends"]["openvino-f32"]["minilm 1x16"] = _row(1.5)
    assert models.fp32_verdicts(results)["minilm 1x16"].startswith("fastest fp32: openvino-f32")


@pytest.mark.slow  # ~45 s: an ONNX export, a .mojomodel and two worker processes
def test_a_real_run_says_its_precision_and_rate(minilm_dir):
    """MiniLM at (1, 16) on the native engine and OpenVINO held to f32, each in its own process."""
    results = models.run_ir_benchmarks(
        (("minilm", 1, 16),), backends=("native", "openvino-f32"), repeats=3
    )
    for backend in ("native", "openvino-f32"):
        row = results["backends"][backend]["minilm 1x16"]
        assert "median_ms" in row, row
        assert row["precision"] == "float32"
        assert row["gflops"] > 0 and 0 < row["share_of_peak"] < 1.5
    assert results["verdicts"]["minilm 1x16"].startswith("fastest fp32: ")
    report = models.format_report(results)
    assert "minilm 1x16" in report and "GFLOP/s" in report and "measured FMA peak" in report

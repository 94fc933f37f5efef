"""The ONNX coverage sweep (measure/sweeps/onnx.py): each base type's tiny model exported with
engines/onnxruntime/export.py and validated with ONNX Runtime against PyTorch on three shapes;
failures keep their first line as the reason and a cause with the model's own names and numbers
taken out, so rows cluster by cause."""

from __future__ import annotations

import pytest

from skillmill.measure.sweeps import BACKENDS, load_report
from skillmill.measure.sweeps.onnx import VALIDATION_SHAPES, cause_of, check_onnx

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("model_type", ["bert", "llama", "vit"])
def test_a_type_exports_and_matches_on_every_shape(model_type):
    row = check_onnx(model_type)
    assert row["status"] == "pass", row
    assert row["shapes"] == len(VALIDATION_SHAPES) == 3 and row["opset"] == 17
    assert 0 < row["max_rel_err"] <= 1e-4 and row["seconds"] > 0


def test_a_moe_type_exports_with_its_experts_as_a_loop():
    # transformers' grouped experts count tokens per expert with torch.histc, which the
    # TorchScript exporter has no symbolic for; export_onnx traces the eager loop instead
    row = check_onnx("afmoe")
    assert row["status"] == "pass", row


def test_causes_cluster_rows_that_failed_for_one_reason():
    a = ("torch.onnx.export could not export AfmoeModel at opset 17: UnsupportedOperatorError: Exporting "
         "the operator 'aten::histc' to ONNX opset version 17 is not supported.")  # fmt: skip
    b = a.replace("AfmoeModel", "Glm4MoeModel")
    assert cause_of(a) == cause_of(b) and "aten::histc" in cause_of(a) and "Afmoe" not in cause_of(a)
    assert cause_of("input_ids 3x11, output 'last_hidden_state': relative error 3.10e-03 > 0.0001") == \
        cause_of("pixel_values 1x3x64x64, output 'pooler_output': relative error 2.00e-02 > 0.0001")
    row = check_onnx("not_a_type")
    assert row["status"] == "error" and row["reason"] == "registry has no base class" and row["cause"]


def test_onnx_is_a_coverage_backend_with_its_own_report():
    backend = BACKENDS["onnx"]
    assert backend.engine == "onnx" and backend.report.name == "onnx.yaml"
    report = load_report("onnx")
    assert report["total"] == 605 and report["passed"] == sum(
        r["status"] == "pass" for r in report["model_types"].values())
    assert report["model_types"]["bert"]["status"] == "pass"

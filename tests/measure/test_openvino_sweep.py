"""The OpenVINO coverage sweep (measure/sweeps/openvino.py) and the family fix it measured:
decoders, encoder-decoders and two-tower models convert once the traced module answers with a
flat tuple of tensors and the KV cache is off (engines/openvino/runner.py:TensorsOut)."""

from __future__ import annotations

import pytest

from skillmill import load_skill
from skillmill.measure.sweeps import BACKENDS
from skillmill.measure.sweeps.openvino import check_openvino, conversion_failure


@pytest.mark.parametrize("model_type", ["llama", "t5", "clip"])
def test_the_families_that_failed_to_trace_now_pass(model_type):
    row = check_openvino(model_type)
    assert row["status"] == "pass", row
    assert row["max_rel_err"] <= 1e-4 and row["seconds"] > 0


def test_a_decoder_skill_runs_on_openvino_and_proves_itself():
    skill = load_skill("GPT2Model", model="tiny", device="openvino")
    result = skill.process(dict(skill.example_inputs()))
    assert (result.engine, result.precision) == ("openvino", "float32"), result.fallback_reason
    assert result.parity.error <= result.parity.tolerance


def test_a_failure_row_names_what_openvino_could_not_convert():
    message = "Model wasn't fully converted.\n...\nSummary:\n-- Conversion is failed for: prim::Constant\n"
    assert conversion_failure(RuntimeError(message)) == "OpenVINO could not convert prim::Constant"
    message = ("Check 'false' failed\nModel wasn't fully converted.\nSummary:\n-- No conversion rule found for "
               "operations: aten::histc\n-- Conversion is failed for: aten::cat\n")  # fmt: skip
    assert conversion_failure(RuntimeError(message)) == "OpenVINO no rule for aten::histc; could not convert aten::cat"
    row = check_openvino("not_a_type")
    assert row["status"] == "error" and row["reason"] == "registry has no base class" and "seconds" in row


def test_openvino_is_a_coverage_backend_with_its_own_report():
    backend = BACKENDS["openvino"]
    assert backend.engine == "openvino" and backend.report.name == "openvino.yaml"


def test_mixture_of_experts_converts_without_histc():
    """transformers' grouped experts count tokens with torch.histc, which OpenVINO cannot
    convert; the batched_mm experts compute the same function (53 types failed on it)."""
    row = check_openvino("qwen3_moe")
    assert row["status"] == "pass", row
    assert row["max_rel_err"] <= 1e-4


def test_a_model_the_tracer_fails_on_converts_from_its_torch_export_program(monkeypatch):
    """The TorchScript path refused (as it does for SequenceMark, prim::Constant, tracer
    asserts): the program torch.export produces is converted instead, and proven the same way."""
    import openvino
    import torch

    real = openvino.convert_model
    seen = []

    def traced_fails(model, **kwargs):
        seen.append(type(model).__name__)
        if isinstance(model, torch.nn.Module):
            raise RuntimeError("Summary:\n-- Conversion is failed for: prim::Constant\n")
        return real(model, **kwargs)

    monkeypatch.setattr(openvino, "convert_model", traced_fails)
    row = check_openvino("bert")
    assert seen == ["TensorsOut", "ExportedProgram"]
    assert row["status"] == "pass" and row["max_rel_err"] <= 1e-4, row


def test_a_row_names_what_each_frontend_stopped_at(monkeypatch):
    import openvino

    def refuses(model, **kwargs):
        raise RuntimeError("Summary:\n-- No conversion rule found for operations: aten::x\n")

    monkeypatch.setattr(openvino, "convert_model", refuses)
    row = check_openvino("bert")
    assert row["status"] == "export_failed"
    refused = "OpenVINO no rule for aten::x"
    assert row["reason"] == f"TorchScript: {refused}; torch.export: {refused}"

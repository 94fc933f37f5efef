"""A skill asked for quantized weights (``load_skill(..., quantize=...)``): the native executor
runs the scheme and the result says so; every engine that cannot run it declines with the
reason; bad requests are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skillmill import load_skill
from skillmill.engines import parity
from skillmill.runtime.precision import PARITY_TOLERANCE, UnknownPrecisionError


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(5)
    return {"input_ids": torch.randint(1, 90, (2, 9), generator=gen),
            "attention_mask": torch.ones(2, 9, dtype=torch.int64)}  # fmt: skip


@pytest.mark.parametrize("scheme", ["int8", "q4_0", "q8_0"])
def test_the_cpu_target_runs_the_scheme_on_the_native_executor(batch, scheme):
    reference = load_skill("BertModel", model="tiny", device="cpu", native=False).process(batch)
    skill = load_skill("BertModel", model="tiny", device="cpu", quantize=scheme, native="all")
    result = skill.process(batch)
    assert (result.engine, result.precision) == ("native", scheme)
    assert result.parity.precision == scheme and result.parity.tolerance == PARITY_TOLERANCE[scheme]
    assert 0 < result.parity.error <= result.parity.tolerance
    want, got = reference.outputs["last_hidden_state"], result.outputs["last_hidden_state"]
    assert not torch.equal(want, got)  # quantized weights really ran
    cos = torch.nn.functional.cosine_similarity(want.flatten(1), got.flatten(1))
    assert cos.min() > (0.98 if scheme == "q4_0" else 0.999), cos
    prepared = next(v for v in parity.verdicts(skill, "native executor").values() if not isinstance(v, str))
    assert f"quantize_{scheme}" in prepared.model.optimization["optimizations_applied"]


def test_auto_skips_engines_that_cannot_run_int8_with_their_reasons(batch):
    result = load_skill("BertModel", model="tiny", quantize="int8", native="all").process(batch)
    assert (result.engine, result.precision) == ("native", "int8")
    assert "int8 was asked (quantize=int8)" in result.skipped["openvino"]


def test_engines_without_q8_0_decline_it_by_name(batch):
    """OpenVINO, MAX and ONNX Runtime compute at float32 (or bf16): asked for q8_0 they decline
    with the reason, never run float32 under the q8_0 label."""
    skill = load_skill("BertModel", model="tiny", quantize="q8_0", native="all")
    result = skill.process(batch)
    assert (result.engine, result.precision) == ("native", "q8_0")
    assert "q8_0 was asked (quantize=q8_0)" in result.skipped["openvino"]
    # MAX / Mojo / ONNX Runtime share this verdict (engines/modular, engines/onnxruntime)
    assert parity.float32_only(skill) == "computes at float32 only; q8_0 was asked (quantize=q8_0)"
    fallback = load_skill(
        "BertModel", model="tiny", device="cpu", quantize="q8_0", native=False
    ).process(batch)
    assert (fallback.engine, fallback.precision) == ("torch", "float32")
    assert "PyTorch eager does not run q8_0 weights" in fallback.fallback_reason


def test_without_an_engine_for_the_scheme_pytorch_runs_float32_and_says_so(batch):
    result = load_skill("BertModel", model="tiny", device="cpu", quantize="int8", native=False).process(batch)
    assert (result.engine, result.precision) == ("torch", "float32")
    assert "PyTorch eager does not run int8 weights" in result.fallback_reason
    assert "ran PyTorch eager at float32" in result.fallback_reason


def test_a_model_with_nothing_to_quantize_falls_back_with_that_reason():
    skill = load_skill("ResNetModel", model="tiny", device="cpu", quantize="int8", native="all")
    result = skill.process({"pixel_values": torch.randn(1, 3, 32, 32)})
    if result.engine == "native":  # ResNet's Linear-free graph must not pass as quantized
        pytest.fail(f"ran natively at {result.precision} without a layer to quantize")
    assert result.precision == "float32"
    assert "nothing to quantize" in result.fallback_reason, result.fallback_reason


@pytest.mark.parametrize("kwargs, match", [
    ({"quantize": "int3"}, "unknown quantization scheme 'int3'"),
    ({"quantize": "int8", "precision": "bf16"}, "contradict"),
    ({"quantize": 8}, "unknown quantization scheme 8"),
])  # fmt: skip
def test_bad_quantize_requests_are_refused_by_name(kwargs, match):
    with pytest.raises(UnknownPrecisionError, match=match):
        load_skill("BertModel", model="tiny", device="cpu", **kwargs)


def test_quantize_agrees_with_an_explicit_float32_precision(batch):
    skill = load_skill("BertModel", model="tiny", device="cpu", quantize="q4", precision="float32", native="all")
    assert (skill.precision, skill.precision_source) == ("q4_0", "quantize=q4")
    assert load_skill("BertModel", model="tiny", device="cpu", quantize="Q8").precision == "q8_0"
    assert np.isfinite(skill.process(batch).outputs["last_hidden_state"].numpy()).all()


@pytest.mark.parametrize("scheme", ["int8", "q8_0"])
def test_the_server_serves_a_quantized_skill_and_says_so_in_health(scheme):
    """`generate-skills serve --quantize int8`: the same options reach load_skill."""
    from fastapi.testclient import TestClient

    from skillmill.serving.app import create_app
    from skillmill.serving.commands import _served_model

    served = _served_model("BertModel", "tiny", "cpu", None, 4, precision=None, quantize=scheme)
    assert (served.precision, served.engine) == (scheme, "native")
    with TestClient(create_app(served)) as client:
        health = client.get("/health").json()
        assert (health["precision"], health["engine"]) == (scheme, "native")
        answer = client.post("/v1/embeddings", json={"model": served.id, "input": ["a b c"]})
        assert answer.status_code == 200 and len(answer.json()["data"][0]["embedding"]) == 32

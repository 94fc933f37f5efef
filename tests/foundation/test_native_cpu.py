"""The cpu target's native executor: used when the model converts, equal to PyTorch eager, and a
fallback to PyTorch with the reason in the result when it cannot be used."""

import numpy as np
import pytest
import torch

from skillmill import load_skill
from skillmill.ir.numerics import relative_error
from skillmill.engines import parity
from skillmill.engines.native import runner as native_runner

TOL = 1e-4


def torch_eager(skill, inputs):
    with torch.inference_mode():
        return skill.model(**inputs)


@pytest.fixture(scope="module")
def bert_skill():
    return load_skill("BertModel", model="tiny", device="cpu")


def test_tiny_bert_runs_native_and_equals_torch(bert_skill, monkeypatch):
    monkeypatch.delenv(native_runner.ENV_SWITCH, raising=False)
    for batch, seq in ((2, 8), (3, 13)):  # the second shape reuses the conversion
        inputs = bert_skill.example_inputs(batch_size=batch, seq_len=seq)
        result = bert_skill.process(dict(inputs))
        assert (result.backend, result.engine, result.fallback_reason) == ("cpu", "native", None)
        want = torch_eager(bert_skill, inputs)
        assert list(result.outputs) == ["last_hidden_state", "pooler_output"]
        for name in result.outputs:
            assert result[name].dtype == torch.float32
            assert relative_error(result[name].numpy(), want[name].numpy()) <= TOL, name
    assert len(parity.verdicts(bert_skill, native_runner.PREFIX)) == 1  # one conversion for both shapes
    assert result.summary()["engine"] == "native"


def test_switch_off_gives_torch_with_the_reason(bert_skill, monkeypatch):
    monkeypatch.setenv(native_runner.ENV_SWITCH, "0")
    inputs = bert_skill.example_inputs(batch_size=1, seq_len=5)
    result = bert_skill.process(dict(inputs))
    assert (result.backend, result.engine) == ("cpu", "torch")
    assert "SKILLMILL_NATIVE=0" in result.fallback_reason
    torch.testing.assert_close(result["last_hidden_state"], torch_eager(bert_skill, inputs)[0])


def test_skill_option_turns_it_off():
    skill = load_skill("BertModel", model="tiny", device="cpu", native=False)
    result = skill.process(dict(skill.example_inputs()))
    assert result.engine == "torch" and "native=False" in result.fallback_reason
    assert not parity.verdicts(skill, native_runner.PREFIX)  # nothing was converted


def test_type_the_sweep_failed_is_not_converted():
    from skillmill.registry import support

    verdicts = support.verdicts(native_runner.ENGINE, "float32")
    failed = sorted(t for t, v in verdicts.items() if v != "pass")
    assert failed, "the native sweep passes every type: pick another fallback example"
    from skillmill.registry import load_registry

    # a text model the sweep failed (cheap to build), run through its skill
    registry = load_registry()
    from skillmill.measure.sweeps import load_report

    runs_on_torch = {t for t, r in load_report("skill")["model_types"].items() if r["status"] == "pass"}
    records = {t: registry.classes.get(registry.base_classes[t]) for t in failed if t in runs_on_torch}
    text_failed = [t for t, r in records.items() if r is not None and r.modality == "text"]
    model_type = text_failed[0]
    skill = load_skill(registry.base_classes[model_type], model="tiny", device="cpu")
    result = skill.process(dict(skill.example_inputs()))
    assert result.engine == "torch"
    assert "native coverage sweep failed it" in result.fallback_reason
    assert verdicts[model_type] in result.fallback_reason
    assert not parity.verdicts(skill, native_runner.PREFIX)


def test_conversion_failure_falls_back_with_the_reason(monkeypatch):
    """A model whose conversion fails: the reason names the op, and it is paid once."""
    from skillmill.ir.frontends import pytorch as frontend

    # Take away the lowering of one ATen op BERT needs: the converter must name it, not drop it.
    monkeypatch.delitem(frontend.ATEN, "aten.gelu.default")
    skill = load_skill("BertModel", model="tiny", device="cpu")
    inputs = skill.example_inputs(batch_size=2, seq_len=6)
    first = skill.process(dict(inputs))
    assert first.engine == "torch"
    assert ("native executor: cannot run BertModel at float32: IR conversion failed: unsupported op "
            "'aten.gelu.default'") in first.fallback_reason
    torch.testing.assert_close(first["last_hidden_state"], torch_eager(skill, inputs)[0])
    monkeypatch.undo()  # the op is back, but the failed conversion is remembered, not retried
    second = skill.process(dict(inputs))
    assert second.engine == "torch" and second.fallback_reason == first.fallback_reason


def test_minilm_cpu_native_equals_sentence_transformers(minilm_dir, monkeypatch):
    st = pytest.importorskip("sentence_transformers")
    monkeypatch.delenv(native_runner.ENV_SWITCH, raising=False)
    sentences = ["A man is eating food.", "A man is riding a horse.", "The new movie is awesome",
                 "Two men pushed carts through the woods, one of them whistling a long song."]
    skill = load_skill("BertModel", model=minilm_dir, device="cpu")
    result = skill.process(sentences)
    assert (result.engine, result.fallback_reason) == ("native", None)
    theirs = st.SentenceTransformer(minilm_dir, device="cpu").encode(sentences)
    assert result.embeddings.shape == (4, 384)
    assert np.abs(result.embeddings - theirs).max() <= TOL

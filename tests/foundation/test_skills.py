"""Skills run for real: equal to transformers, clear errors on bad input, honest fallbacks."""

import json

import numpy as np
import pytest
import torch

from skillmill import load_skill
from skillmill.measure.sweeps.skill import check_skill
from skillmill.runtime.decisions import Constraints
from skillmill.runtime.errors import SkillInputError, SkillLoadError, UnknownDeviceError

# One or more per modality and family; the full sweep is `generate-skills coverage`.
REPRESENTATIVE = ["bert", "gpt2", "llama", "t5", "bart", "vit", "resnet", "convnext", "whisper",
                  "wav2vec2", "clip", "llava", "videomae", "patchtst", "mixtral", "mamba"]


@pytest.mark.parametrize("model_type", REPRESENTATIVE)
def test_tiny_model_through_skill_equals_transformers(model_type):
    row = check_skill(model_type)
    assert row["status"] == "pass", row


def test_the_skill_sweep_pins_pytorch_eager_whatever_auto_would_run(monkeypatch):
    """The skill sweep measures the wiring on PyTorch eager on the cpu target: even where auto
    would convert (SKILLMILL_NATIVE=all asks for the native executor, so auto keeps the fixed
    order with its conversions), a row runs eager and says so."""
    monkeypatch.setenv("SKILLMILL_NATIVE", "all")
    row = check_skill("bert")
    assert row["status"] == "pass", row
    assert (row["backend"], row["engine"]) == ("cpu", "torch")


def test_minilm_embeddings_equal_sentence_transformers(minilm_dir):
    st = pytest.importorskip("sentence_transformers")
    sentences = ["The cat sits outside", "A man is playing guitar", "The new movie is awesome"]
    skill = load_skill("BertModel", model=minilm_dir, device="cpu")
    ours = skill.process(sentences).embeddings
    theirs = st.SentenceTransformer(minilm_dir, device="cpu").encode(sentences)
    assert ours.shape == (3, 384)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_result_carries_backend_device_latency_and_postprocessing():
    skill = load_skill("BertForSequenceClassification", model="tiny", device="cpu")
    result = skill.process(["good", "bad movie"])
    assert (result.backend, result.device) == ("cpu", "cpu")
    # bert passed the native coverage sweep, so the cpu target's native executor runs it,
    # proven against PyTorch eager float32 on this first call.
    assert (result.engine, result.precision, result.fallback_reason) == ("native", "float32", None)
    assert result.parity.error <= result.parity.tolerance == 1e-4
    assert result.latency_ms > 0
    probs = result["probabilities"]
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    expected = torch.softmax(result["logits"], -1).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    assert result.skipped == {}  # device="cpu" asks for nothing else


def test_causal_lm_reports_next_token_top_k():
    skill = load_skill("GPT2LMHeadModel", model="tiny")
    result = skill.process(skill.example_inputs(batch_size=2, seq_len=8))
    top = result["next_token_top_k"]
    assert top["token_ids"].shape == (2, 5)
    want = torch.softmax(result["logits"][:, -1], -1).topk(5)
    np.testing.assert_array_equal(top["token_ids"], want.indices.numpy())


def test_example_inputs_match_the_modality():
    assert "pixel_values" in load_skill("ViTModel", model="tiny").example_inputs()
    llava = load_skill("LlavaModel", model="tiny").example_inputs()
    assert {"input_ids", "pixel_values"} <= set(llava)  # real image inputs, not text alone


def test_raw_image_and_waveform_inputs():
    vit = load_skill("ViTModel", model="tiny")
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    assert vit.process(image)["last_hidden_state"].shape[0] == 1
    wav2vec = load_skill("Wav2Vec2Model", model="tiny")
    assert wav2vec.process(np.zeros(4000, dtype=np.float32))["last_hidden_state"].dim() == 3


def test_use_mojo_max_target_falls_back_with_the_reason(monkeypatch):
    # MAX/Mojo that cannot run this model (tests/modular runs them for real)
    from skillmill.engines.modular import runner
    from skillmill.runtime.errors import BackendUnavailable

    def unavailable(target):
        def run(skill, batch):
            raise BackendUnavailable(target, "simulated: cannot run here")

        return run

    monkeypatch.setattr(runner, "run_max", unavailable("max"))
    monkeypatch.setattr(runner, "run_mojo", unavailable("mojo"))
    monkeypatch.setenv("USE_MOJO_MAX_TARGET", "1")
    skill = load_skill("BertModel", model="tiny")
    assert skill.preferred_order()[:2] == ["max", "mojo"]
    # Unmeasured, under the default start-up budget: neither is started (each compiles).
    result = skill.process(["hello"])
    assert (result.backend, result.fallback_reason) == ("cpu", None)
    assert "not started: max, mojo" in result.choice
    # Without a budget, auto tries them in order and says why each could not run.
    unbudgeted = load_skill("BertModel", model=skill.model,
                            constraints=Constraints(startup_budget_s=None))  # fmt: skip
    result = unbudgeted.process(["hello"])
    assert result.backend not in ("max", "mojo")
    assert "max:" in result.fallback_reason and "mojo:" in result.fallback_reason
    direct = skill.process_with_mojo_max(["hello"])
    assert direct.backend == "cpu" and "max" in direct.fallback_reason
    assert skill.process_with_pytorch(["hello"]).backend == "cpu"


def test_explicit_device_that_is_absent_falls_back_and_says_why():
    skill = load_skill("BertModel", model="tiny", device="cuda")
    result = skill.process(["hello"])
    assert result.backend == "cpu"
    assert result.fallback_reason.startswith("cuda: not present")


def test_model_moves_to_another_device_once_with_its_weights():
    """The cuda/rocm/mps paths move a copy of the loaded model (the meta device stands in for a
    GPU here: it needs none).  A PreTrainedModel class has no public from_config, which crashed
    the first real H100 run before any weight moved."""
    skill = load_skill("BertModel", model="tiny")
    moved = skill.model_on(torch.device("meta"))
    assert moved is skill.model_on(torch.device("meta"))
    assert all(p.device.type == "meta" for p in moved.parameters())
    assert all(p.device.type == "cpu" for p in skill.model.parameters())
    assert not moved.training
    assert [n for n, _ in moved.named_parameters()] == [n for n, _ in skill.model.named_parameters()]


# ---- bad input: clear errors that name the problem -----------------------------------------


def test_missing_model_directory(tmp_path):
    with pytest.raises(SkillLoadError, match="does not exist"):
        load_skill("BertModel", model=str(tmp_path / "nope"))


def test_directory_without_config_or_weights(tmp_path):
    with pytest.raises(SkillLoadError, match="no config.json"):
        load_skill("BertModel", model=str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(SkillLoadError, match="no weights"):
        load_skill("BertModel", model=str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(SkillLoadError, match="not valid JSON"):
        load_skill("BertModel", model=str(tmp_path))


def test_config_for_another_model_type_or_with_missing_fields(tmp_path, minilm_dir):
    with pytest.raises(SkillLoadError, match="model type 'gpt2'"):
        load_skill("BertModel", model={"model_type": "gpt2"})
    # A config.json without its size fields gets defaults that do not fit the weights.
    import shutil

    shutil.copy(f"{minilm_dir}/model.safetensors", tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(SkillLoadError, match="do not fit BertModel"):
        load_skill("BertModel", model=str(tmp_path))


def test_no_model_and_unknown_device():
    with pytest.raises(SkillLoadError, match="no model given"):
        load_skill("BertModel")
    with pytest.raises(UnknownDeviceError, match="unknown device 'tpu'"):
        load_skill("BertModel", model="tiny", device="tpu")
    with pytest.raises(KeyError, match="BertModel"):
        load_skill("BertModle", model="tiny")


def test_wrong_inputs_are_named():
    skill = load_skill("BertModel", model="tiny")
    with pytest.raises(SkillInputError, match="no input 'pixel_values'"):
        skill.process({"pixel_values": torch.zeros(1, 3, 8, 8)})
    with pytest.raises(SkillInputError, match="must be integers"):
        skill.process({"input_ids": torch.zeros(1, 4)})
    with pytest.raises(SkillInputError, match=r"must lie in \[0, "):
        skill.process({"input_ids": torch.tensor([[1, 10**6]])})
    with pytest.raises(SkillInputError, match="does not match input_ids"):
        skill.process({"input_ids": torch.ones(1, 4, dtype=torch.long),
                       "attention_mask": torch.ones(1, 5, dtype=torch.long)})
    with pytest.raises(SkillInputError, match="takes a string"):
        skill.process(42)
    vit = load_skill("ViTModel", model="tiny")
    with pytest.raises(SkillInputError, match="rejected the inputs"):
        vit.process({"pixel_values": torch.zeros(1, 5, 7, 7)})

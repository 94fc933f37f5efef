"""Fast checks of the tiny-model registry: normalized configs, tiny configs, dummy inputs and a
representative forward pass per modality (the full sweep is `python -m skillmill.measure.sweeps.tiny`).
"""

from __future__ import annotations

import pytest
import torch
from skillmill.registry.dummy_inputs import UnknownInputError, dummy_inputs
from skillmill.registry.normalized_config import NormalizedConfig
from skillmill.registry.tiny import param_count, tiny_config, tiny_model
from skillmill.measure.sweeps.tiny import check_model_type

REPRESENTATIVE = [
    "bert",
    "gpt2",
    "llama",
    "t5",
    "bart",
    "vit",
    "convnext",
    "resnet",
    "whisper",
    "wav2vec2",
    "clip",
    "llava",
    "qwen2_vl",
    "patchtst",
    "time_series_transformer",
    "layoutlm",
    "detr",
    "sam",
    "idefics3",
    "blip-2",
    "rt_detr",
    "mamba",
    "jamba",
    "mixtral",
    "deepseek_v3",
    "swin",
    "videomae",
    "speech_to_text",
]


@pytest.mark.parametrize(
    "model_type, expected",
    [
        (
            "bert",
            {"hidden_size": 768, "num_layers": 12, "num_attention_heads": 12, "vocab_size": 30522},
        ),
        (
            "gpt2",
            {
                "hidden_size": 768,
                "num_layers": 12,
                "num_attention_heads": 12,
                "max_positions": 1024,
            },
        ),
        ("t5", {"hidden_size": 512, "intermediate_size": 2048, "head_dim": 64}),
        ("whisper", {"num_mel_bins": 80, "max_positions": 1500, "num_decoder_layers": 4}),
        ("vit", {"image_size": 224, "patch_size": 16, "num_channels": 3}),
    ],
)
def test_normalized_config_spellings(model_type, expected):
    from transformers import CONFIG_MAPPING

    nc = NormalizedConfig(CONFIG_MAPPING[model_type]())
    for name, value in expected.items():
        assert getattr(nc, name) == value, name


def test_normalized_config_missing_is_none_and_subconfigs():
    from transformers import CLIPConfig

    nc = NormalizedConfig(CLIPConfig())
    assert nc.sampling_rate is None
    assert nc.definitely_not_an_attribute is None
    assert nc.text.vocab_size == 49408
    assert nc.vision.image_size == 224
    assert nc.audio is None
    assert nc.first("hidden_size") == 512


@pytest.mark.parametrize("model_type", ["bert", "llama", "clip", "whisper", "mixtral", "qwen2_vl"])
def test_tiny_configs_are_small(model_type):
    model = tiny_model(tiny_model_class(model_type))
    assert param_count(model) < 2_000_000
    nc = NormalizedConfig(model.config)
    for part in (nc, nc.text, nc.vision, nc.audio):
        if part is not None and isinstance(part.hidden_size, int):
            assert part.hidden_size <= 64


def tiny_model_class(model_type):
    from skillmill.measure.sweeps.tiny import base_model_types

    return base_model_types()[model_type]


def test_hybrid_keeps_every_layer_kind():
    config = tiny_config("jamba")
    assert set(config.layers_block_type) == {"mamba", "attention"}
    config = tiny_config("gemma3")
    kinds = set(config.text_config.layer_types)
    assert kinds == {"sliding_attention", "full_attention"}


def test_determinism_same_seed_same_weights_and_inputs():
    a = tiny_model("BertModel", seed=3)
    b = tiny_model("BertModel", seed=3)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)  # every parameter, by name (zip would stop at the shorter one)
    assert all(torch.equal(sa[name], sb[name]) for name in sa)
    ia, ib = dummy_inputs(a, seed=1), dummy_inputs(b, seed=1)
    assert ia.keys() == ib.keys()
    assert all(torch.equal(ia[k], ib[k]) for k in ia)


def test_unknown_input_name_is_a_clear_error():
    model = tiny_model("BertModel")
    with pytest.raises(UnknownInputError, match="no_such_input"):
        dummy_inputs(model, input_names=["input_ids", "no_such_input"])


def test_multimodal_gets_real_images_and_placeholders():
    model = tiny_model("LlavaModel")
    inputs = dummy_inputs(model)
    assert inputs["pixel_values"].dim() == 4
    assert (inputs["input_ids"] == model.config.image_token_id).sum() > 0


@pytest.mark.parametrize("model_type", REPRESENTATIVE)
def test_representative_forward(model_type):
    result = check_model_type(model_type)
    assert result["status"] == "ok", result.get("reason")

"""VQ-image language models (Chameleon, Emu3) get a synthetic image-token vocabulary map in their
tiny config (registry/image_vocabulary.py), so they build and run through their skills."""

from __future__ import annotations

import pytest
from skillmill.measure.sweeps.skill import check_skill
from skillmill.registry.tiny import tiny_config

FAMILIES = ["chameleon", "emu3"]


@pytest.mark.parametrize("model_type", FAMILIES)
def test_every_code_has_its_own_id_inside_the_text_vocabulary(model_type):
    config = tiny_config(model_type)
    vq = config.vq_config
    codebook = getattr(vq, "num_embeddings", None) or vq.codebook_size
    ids = list(config.vocabulary_map.values())
    vocab = getattr(config, "text_config", config).vocab_size
    assert len(set(ids)) == len(ids) >= codebook + 1
    assert all(0 <= i < vocab for i in ids)
    assert config.image_token_id == config.vocabulary_map["<image>"]


def test_naming_schemes_are_the_tokenizers():
    chameleon = tiny_config("chameleon").vocabulary_map
    assert "IMGIMGBCZ" in chameleon  # code 12: digits as letters
    assert "<|visual token000012|>" in tiny_config("emu3").vocabulary_map


@pytest.mark.parametrize("model_type", FAMILIES)
def test_family_through_skill_equals_transformers(model_type):
    row = check_skill(model_type)
    assert row["status"] == "pass", row

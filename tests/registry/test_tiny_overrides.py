"""The per-family knowledge in tiny_overrides.yaml is well-formed data, the quiet block is scoped,
and a few families that need it (timm towers, random inputs given as inputs, codebook ids, tiled
images, float boxes) really run through their skills equal to transformers."""

from __future__ import annotations

import logging
import warnings

import pytest
import yaml
from skillmill.measure.sweeps.skill import check_skill
from skillmill.registry.dummy_inputs import IMAGE_LAYOUTS, INPUT_OPTIONS
from skillmill.registry.tiny import OVERRIDES_PATH, quiet_config_warnings, tiny_config

# One per kind of family knowledge; each is a few seconds.
FAMILIES = [
    "timm_wrapper",  # a timm architecture (needs timm + torchvision)
    "vit_mae",  # random masking noise given as an input
    "musicgen",  # input_ids one row per codebook under a (batch, seq) mask
    "mllama",  # tiled images with aspect-ratio ids and cross-attention masks
    "udop",  # float page-fraction boxes
    "gemma3n_audio",  # audio_mel input with a bool padding mask
]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice (PyYAML keeps the last one silently)."""


def _construct_mapping(loader, node, deep=False):
    merge = "tag:yaml.org,2002:merge"  # `<<: *anchor` merges are not repeated keys
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value if k.tag != merge]
    dupes = sorted({k for k in keys if keys.count(k) > 1}, key=str)
    if dupes:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {dupes}", node.start_mark
        )
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@pytest.fixture(scope="module")
def overrides():
    with OVERRIDES_PATH.open() as f:
        return yaml.load(f, Loader=_UniqueKeyLoader)


def test_overrides_name_known_model_types_once(overrides):
    from transformers import CONFIG_MAPPING

    unknown = sorted(t for t in overrides if t not in CONFIG_MAPPING)
    assert (
        not unknown
    ), f"tiny_overrides.yaml names model types transformers does not have: {unknown}"


def test_input_options_are_declared(overrides):
    for model_type, entry in overrides.items():
        options = entry.get("_inputs") or {}
        assert set(options) <= set(INPUT_OPTIONS), (
            model_type,
            sorted(set(options) - set(INPUT_OPTIONS)),
        )
        layout = options.get("image_layout")
        assert layout is None or layout in IMAGE_LAYOUTS, (model_type, layout)


def test_unshrunk_and_overrides_build_configs(overrides):
    for model_type, entry in overrides.items():
        if entry.get("_unshrunk"):
            tiny_config(model_type)  # raises KeyError naming a path the defaults do not have


def test_quiet_block_restores_warning_filters_and_log_level():
    logger = logging.getLogger("transformers")
    level, filters = logger.level, list(warnings.filters)
    with quiet_config_warnings():
        assert logger.level == logging.ERROR
    assert logger.level == level
    assert warnings.filters == filters


@pytest.mark.parametrize("model_type", FAMILIES)
def test_family_through_skill_equals_transformers(model_type):
    row = check_skill(model_type)
    assert row["status"] == "pass", row

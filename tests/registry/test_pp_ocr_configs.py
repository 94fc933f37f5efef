"""PP-OCR's default configs are not self-consistent (a recognizer backbone under the detectors,
None for the medium detector's neck blocks, square strides for a text-line recognizer); the
released checkpoints' values in tiny_overrides.yaml make the tiny models run through their skills."""

from __future__ import annotations

import pytest
from skillmill.measure.sweeps.skill import check_skill
from skillmill.registry.tiny import tiny_config


@pytest.mark.parametrize("model_type", ["pp_ocrv6_small_det", "pp_ocrv6_medium_det"])
def test_detector_backbones_feed_four_halving_stages(model_type):
    backbone = tiny_config(model_type).backbone_config
    assert backbone.out_features == ["stage1", "stage2", "stage3", "stage4"]
    assert backbone.stage_out_channels == [blocks[-1][2] for blocks in backbone.block_configs]


@pytest.mark.parametrize("model_type", ["pp_ocrv5_mobile_rec", "pp_ocrv6_small_det", "pp_ocrv6_medium_det"])
def test_family_through_skill_equals_transformers(model_type):
    row = check_skill(model_type)
    assert row["status"] == "pass", row

"""Video trackers (SAM 2 / SAM 3 / EdgeTAM video) take a processor-built inference session, not
tensors: the dummy inputs build one (frames, one prompt on frame 0), the skill passes it to
forward as it is, and the sweep's reference gets its own copy (forward updates the session)."""

from __future__ import annotations

import pytest
import torch
from skillmill import load_skill
from skillmill.measure.sweeps.skill import check_skill
from skillmill.registry.tiny import tiny_config

TRACKERS = ["sam2_video", "edgetam_video", "sam3_tracker_video", "sam3_video"]


@pytest.fixture(scope="module")
def sam2_video_skill():
    return load_skill("Sam2VideoModel", model=tiny_config("sam2_video"), device="cpu", native=False)


def test_inputs_are_a_prompted_session_and_the_frame_to_track(sam2_video_skill):
    inputs = sam2_video_skill.example_inputs()
    assert set(inputs) == {"inference_session", "frame_idx"} and inputs["frame_idx"] == 0
    session = inputs["inference_session"]
    assert session.num_frames == 2 and session.obj_ids == [1]
    assert session.point_inputs_per_obj[0][0]["point_labels"].tolist() == [[[1]]]


def test_the_skill_passes_the_session_through_and_forward_updates_it(sam2_video_skill):
    inputs = sam2_video_skill.example_inputs()
    result = sam2_video_skill.process(inputs)
    assert result.outputs["pred_masks"].shape[:2] == (1, 1)
    # forward stored frame 0's masks in the session: a second run on it would replay them,
    # which is why the sweep's reference runs on a copy taken before the skill's run
    assert 0 in inputs["inference_session"].output_dict_per_obj[0]["cond_frame_outputs"]


def test_a_session_is_not_taken_for_a_tensor_elsewhere(sam2_video_skill):
    from skillmill.runtime.errors import SkillInputError
    from skillmill.runtime.inputs import to_tensor

    with pytest.raises(SkillInputError):
        to_tensor("pixel_values", object())
    assert to_tensor("inference_session", [1.0]).dtype == torch.float32  # lists still convert


@pytest.mark.parametrize("model_type", TRACKERS)
def test_tracker_through_skill_equals_transformers(model_type):
    row = check_skill(model_type)
    assert row["status"] == "pass", row

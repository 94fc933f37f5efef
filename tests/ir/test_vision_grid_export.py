"""The Qwen-VL family's vision grid helpers (transformers.vision_utils) export and run natively:
the stand-ins in ir/frontends/export_patches.py give the originals' values, and a module that
turns ``grid_thw`` into patch positions converts and stays right for other grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

vision_utils = pytest.importorskip("transformers.vision_utils")
if not hasattr(vision_utils, "get_vision_interpolation_indices_and_weights"):
    pytest.skip("transformers without the shared vision grid helpers", allow_module_level=True)

from skillmill.ir.executor import NativeModel  # noqa: E402
from skillmill.ir.frontends import export_patches  # noqa: E402
from skillmill.ir.frontends.pytorch import export_model  # noqa: E402

RAGGED = torch.tensor([[1, 4, 6], [2, 2, 4], [3, 6, 2]])


@pytest.mark.parametrize("merge", [1, 2])
def test_stand_ins_equal_the_originals(merge):
    for temporal in (False, True):
        want = vision_utils.get_vision_position_ids(RAGGED, merge, include_temporal=temporal)
        got = export_patches.position_ids(RAGGED, merge, include_temporal=temporal)
        assert got.dtype == want.dtype and torch.equal(got, want)
    per_image = torch.tensor([2, 1, 2])
    assert torch.equal(export_patches.position_ids(RAGGED, per_image),
                       vision_utils.get_vision_position_ids(RAGGED, per_image))  # fmt: skip
    for mode in ("bilinear", "bicubic"):
        for corners in (False, True):
            want = vision_utils.get_vision_interpolation_indices_and_weights(
                RAGGED, 8, mode=mode, align_corners=corners, spatial_merge_size=merge)
            got = export_patches.interpolation_indices_and_weights(
                RAGGED, 8, mode=mode, align_corners=corners, spatial_merge_size=merge)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    for temporal in (False, True):
        want = vision_utils.get_vision_cu_seqlens(RAGGED, temporal)
        got = export_patches.cu_seqlens(RAGGED, temporal)
        assert got.dtype == want.dtype and torch.equal(got, want)


class GridPositions(torch.nn.Module):
    """What a Qwen3-VL vision encoder computes from grid_thw before its first layer: the
    learned position table resampled per patch, rotary positions and attention segments, and
    then, as its eager attention does, one chunk per segment (``split(lengths.tolist())``: a
    data-dependent split that sends the export to draft_export, where the originals fail)."""

    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(64, 4)

    def forward(self, grid_thw):
        indices, weights = vision_utils.get_vision_interpolation_indices_and_weights(
            grid_thw, 8, spatial_merge_size=2)
        embedded = (self.table(indices) * weights[..., None]).sum(1)
        positions = vision_utils.get_vision_position_ids(grid_thw, 2)
        cu_seqlens = vision_utils.get_vision_cu_seqlens(grid_thw)
        chunks = torch.split(embedded, (cu_seqlens[1:] - cu_seqlens[:-1]).tolist())
        pooled = torch.cat([chunk.mean(0, keepdim=True) for chunk in chunks])
        return {"embedded": embedded, "positions": positions, "cu_seqlens": cu_seqlens, "pooled": pooled}


def test_grid_helpers_export_and_run_for_other_grids():
    model = GridPositions().eval()
    example = torch.tensor([[1, 4, 4], [1, 4, 4]])
    native = NativeModel.from_torch(model, {"grid_thw": example})
    # draft_export specialises the split to the example's segments (two, of 16): other grids
    # with those segments, laid out differently, must still get their own positions
    for grid in (example, torch.tensor([[1, 2, 8], [1, 8, 2]])):
        with torch.no_grad():
            want = model(grid_thw=grid)
        got = native.run({"grid_thw": grid.numpy()})
        for name, value in want.items():
            assert got[name].shape == tuple(value.shape), name
            np.testing.assert_allclose(got[name], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_originals_are_restored():
    with export_patches.vision_grid_helpers() as swapped:
        assert swapped and vision_utils.get_vision_cu_seqlens is export_patches.cu_seqlens
    assert vision_utils.get_vision_cu_seqlens is not export_patches.cu_seqlens
    assert export_model  # the frontend that applies them imports cleanly

"""The Qwen-VL family's multimodal RoPE positions (``get_rope_index``, a Python loop over each
row's token types) export and run natively: ``export_patches.rope_index`` gives every listed
model's original values on ragged, padded batches of images and videos, and a module that turns
token types and grids into positions converts (the original cannot be traced) and stays right
for other token layouts."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from skillmill.ir.executor import NativeModel  # noqa: E402
from skillmill.ir.frontends import export_patches  # noqa: E402
from skillmill.ir.frontends.pytorch import export_model  # noqa: E402

MERGE = 2


def _original(family: str):
    """The class of ``family``'s modeling module that defines ``get_rope_index``, or None."""
    try:
        module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    except Exception:  # noqa: BLE001 — not in this transformers
        return None
    for cls in vars(module).values():
        if isinstance(cls, type) and "get_rope_index" in cls.__dict__:
            if cls.__dict__["get_rope_index"].__module__ == module.__name__:
                return cls
    return None


def _fake_self(cls):
    """What get_rope_index reads from ``self``: the vision config and the position helper."""
    vision = SimpleNamespace(spatial_merge_size=MERGE, tokens_per_second=3)
    attrs = {"config": SimpleNamespace(vision_config=vision)}
    if "get_vision_position_ids" in dir(cls):
        attrs["get_vision_position_ids"] = getattr(cls, "get_vision_position_ids")
    return type("Fake", (), attrs)()


def _batch(seed: int, frames: bool, videos: bool = True):
    """Rows of text, image spans and video spans (one span per frame with ``frames``, text
    between spans), left- or right-padded; grids in order across the batch."""
    rng = np.random.default_rng(seed)
    rows, images, video_grids = [], [], []
    for _ in range(3):
        types = [0] * int(rng.integers(0, 3))
        for _ in range(int(rng.integers(1, 4))):
            if rng.random() < 0.5 or not videos:
                grid = [1, int(rng.choice([2, 4, 6])), int(rng.choice([2, 4, 8]))]
                images.append(grid)
                types += [1] * (grid[1] * grid[2] // MERGE**2)
            else:
                grid = [int(rng.integers(1, 4)), int(rng.choice([2, 4])), int(rng.choice([2, 6]))]
                video_grids.append(grid)
                per_frame = grid[1] * grid[2] // MERGE**2
                if frames:
                    for _ in range(grid[0]):
                        types += [2] * per_frame + [0]
                else:
                    types += [2] * (grid[0] * per_frame)
            types += [0] * int(rng.integers(1, 4))
        rows.append(types)
    seq = max(len(r) for r in rows) + 2
    kinds = torch.zeros(len(rows), seq, dtype=torch.long)
    mask = torch.zeros(len(rows), seq, dtype=torch.long)
    for i, types in enumerate(rows):
        at = 0 if i % 2 else seq - len(types)  # right and left padding
        kinds[i, at : at + len(types)] = torch.tensor(types)
        mask[i, at : at + len(types)] = 1
    ids = torch.randint(0, 100, kinds.shape, generator=torch.Generator().manual_seed(seed))
    grid = lambda g: torch.tensor(g, dtype=torch.long) if g else None  # noqa: E731
    return ids, kinds, grid(images), grid(video_grids), mask


@pytest.mark.parametrize("family", sorted(export_patches.ROPE_INDEX))
def test_rope_index_equals_the_original(family):
    cls = _original(family)
    if cls is None:
        pytest.skip(f"{family} not in this transformers")
    options = export_patches.ROPE_INDEX[family]
    fake = _fake_self(cls)
    for seed in range(6):
        ids, kinds, images, videos, mask = _batch(seed, options.get("frames", False))
        extra = {}
        if options.get("seconds") and videos is not None and seed % 2:
            extra["second_per_grid_ts"] = torch.rand(len(videos)) * 2
        for attention in (mask, None if mask.all() else mask):
            args = dict(mm_token_type_ids=kinds, image_grid_thw=images, video_grid_thw=videos,
                        attention_mask=attention, **extra)  # fmt: skip
            want = cls.get_rope_index(fake, ids, **args)
            got = export_patches.rope_index(fake, ids, **args, **options)
            for g, w in zip(got, want):
                assert g.dtype == w.dtype and g.shape == w.shape, (family, seed)
                assert torch.equal(g, w), (family, seed)


class RopePositions(torch.nn.Module):
    """The text side of a Qwen3-VL model before its first layer: positions from token types
    and image grids through ``Qwen3VLModel.get_rope_index``, looked up at call time (so the
    frontend's swap applies, as it does to the model's own ``self.get_rope_index``)."""

    def __init__(self, cls):
        super().__init__()
        self.cls = cls
        self.config = _fake_self(cls).config
        self.scale = torch.nn.Parameter(torch.ones(1))

    def get_vision_position_ids(self, *args, **kwargs):
        return self.cls.get_vision_position_ids(self, *args, **kwargs)

    def forward(self, input_ids, mm_token_type_ids, image_grid_thw, attention_mask):
        positions, deltas = self.cls.get_rope_index(
            self, input_ids, mm_token_type_ids, image_grid_thw, attention_mask=attention_mask
        )
        return {"positions": positions.float() * self.scale, "deltas": deltas}


def test_rope_index_exports_and_runs_for_other_layouts():
    cls = _original("qwen3_vl")
    if cls is None:
        pytest.skip("qwen3_vl not in this transformers")
    model = RopePositions(cls).eval()

    def feeds(seed):
        ids, kinds, images, _, mask = _batch(seed, True, videos=False)
        return {"input_ids": ids, "mm_token_type_ids": kinds, "image_grid_thw": images,
                "attention_mask": mask}  # fmt: skip

    example = feeds(0)
    dims = {k: {0: "batch", 1: "seq"} for k in ("input_ids", "mm_token_type_ids", "attention_mask")}
    shapes = {k: {d: torch.export.Dim.DYNAMIC for d in dims.get(k, {})} or None for k in example}
    with pytest.raises(Exception, match="SymInt|data-dependent"):  # the original loop
        torch.export.export(model, (), example, dynamic_shapes=shapes, strict=False)
    native = NativeModel.from_torch(model, example)
    for seed in (0, 3, 4):  # other spans, grids, padding and lengths
        inputs = feeds(seed)
        with torch.no_grad():
            want = model(**inputs)
        got = native.run({k: v.numpy() for k, v in inputs.items()})
        for name, value in want.items():
            np.testing.assert_array_equal(got[name], value.numpy(), err_msg=f"{name} {seed}")


def test_rope_index_swapped_and_restored():
    cls = _original("qwen3_vl")
    if cls is None:
        pytest.skip("qwen3_vl not in this transformers")
    original = cls.__dict__["get_rope_index"]
    with export_patches.vision_grid_helpers() as swapped:
        assert swapped and cls.__dict__["get_rope_index"] is not original
    assert cls.__dict__["get_rope_index"] is original
    assert export_model  # the frontend that applies the swap imports cleanly

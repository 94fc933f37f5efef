"""Export-friendly stand-ins for transformers' vision grid helpers (``transformers.vision_utils``),
swapped in only while ``torch.export`` traces.

The helpers turn ``grid_thw`` (per image: frames, rows, columns) into patch positions with
``repeat_interleave`` and ``arange(counts.sum())``.  Traced, each of those sizes becomes its own
unbacked symbol (u1, u4, ...), so ``arange(total) - starts`` needs the guard ``u4 == u1``, which
no example can settle: the export fails (PendingUnbackedSymbolNotFound, or a metadata mismatch
under draft_export's real-tensor propagation) for the whole Qwen-VL family (qwen3_vl, qwen3_5,
kimi_k25, paddleocr_vl, cohere_compass, ...).  The stand-ins read the total once with ``.item()``
and hand it to every ``repeat_interleave`` as ``output_size``: one symbol, no guard, the same
values.  The graph still computes them from ``grid_thw`` at run time, so any grid is correct.

The full vision-language models' text side has the same problem one step later:
``get_rope_index`` walks each row's token types with ``itertools.groupby(....tolist())`` and
takes one grid per vision span with ``next(iter(grid_thw))``, which cannot be traced at all
("unhashable type: non-nested SymInt").  ``rope_index`` computes the same multimodal RoPE
positions with cumulative sums over the token types (see ``ROPE_INDEX``), swapped in on the
model classes by ``vision_grid_helpers`` too.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator


def cu_seqlens(grid_thw: Any, merge_temporal: bool = False, kwargs: dict | None = None) -> Any:
    """``get_vision_cu_seqlens``: cumulative patch counts per attention segment, int32."""
    import torch
    import torch.nn.functional as F

    if kwargs is not None and (given := kwargs.pop("cu_seqlens", None)) is not None:
        return given
    per_frame = grid_thw[:, 1] * grid_thw[:, 2]
    if merge_temporal:
        seqlens = grid_thw[:, 0] * per_frame
    else:
        seqlens = torch.repeat_interleave(per_frame, grid_thw[:, 0], output_size=_total(grid_thw[:, 0]))
    return F.pad(seqlens.cumsum(dim=0).to(torch.int32), (1, 0), value=0)


def interpolation_indices_and_weights(grid_thw: Any, num_grid_per_side: int, mode: str = "bilinear",
                                      align_corners: bool = False, spatial_merge_size: int = 1,
                                      padding: str = "border", kwargs: dict | None = None) -> Any:  # fmt: skip
    """``get_vision_interpolation_indices_and_weights``, the same arithmetic with one total."""
    import torch
    import torch.nn.functional as F
    from transformers.vision_utils import _interpolation_axis_taps_weights as taps_weights

    if kwargs is not None:
        indices, weights = kwargs.pop("interp_indices", None), kwargs.pop("interp_weights", None)
        if indices is not None and weights is not None:
            return indices, weights
    side, merge = num_grid_per_side, spatial_merge_size
    counts = grid_thw[:, 0] * grid_thw[:, 1] * grid_thw[:, 2]
    total = _total(counts)
    heights = torch.repeat_interleave(grid_thw[:, 1], counts, output_size=total)
    widths = torch.repeat_interleave(grid_thw[:, 2], counts, output_size=total)
    starts = torch.repeat_interleave(F.pad(counts.cumsum(0)[:-1], (1, 0)), counts, output_size=total)
    within = (torch.arange(total, device=grid_thw.device) - starts) % (heights * widths)
    row, col = _block_order(within, widths, merge)
    h_taps, h_weights = taps_weights(row, heights, side, mode, align_corners, padding)
    w_taps, w_weights = taps_weights(col, widths, side, mode, align_corners, padding)
    n = h_taps.shape[1]
    indices = (h_taps[:, :, None] * side + w_taps[:, None, :]).reshape(-1, n * n)
    weights = (h_weights[:, :, None] * w_weights[:, None, :]).reshape(-1, n * n)
    return indices, weights


def position_ids(grid_thw: Any, spatial_merge_size: Any, include_temporal: bool = False,
                 kwargs: dict | None = None) -> Any:  # fmt: skip
    """``get_vision_position_ids``: (row, column) per patch in merge-block order, (frame, row,
    column) with ``include_temporal``; vectorised instead of a Python loop over ``tolist()``."""
    import torch

    if kwargs is not None and (given := kwargs.pop("position_ids", None)) is not None:
        return given
    counts = grid_thw[:, 0] * grid_thw[:, 1] * grid_thw[:, 2]
    total = _total(counts)
    per_frame = grid_thw[:, 1] * grid_thw[:, 2]
    merge = spatial_merge_size
    if isinstance(merge, torch.Tensor):
        merge = torch.repeat_interleave(merge.to(grid_thw.dtype), counts, output_size=total)
    widths, per_frame, starts = (torch.repeat_interleave(v, counts, output_size=total) for v in (
        grid_thw[:, 2], per_frame, counts.cumsum(0) - counts))  # fmt: skip
    offset = torch.arange(total, device=grid_thw.device) - starts
    row, col = _block_order(offset % per_frame, widths, merge)
    columns = [row, col] if not include_temporal else [_div(offset, per_frame), row, col]
    return torch.stack(columns, dim=-1)


def _block_order(within: Any, widths: Any, merge: Any) -> tuple[Any, Any]:
    """(row, column) of the ``within``-th patch of a frame laid out block-major over merge x
    merge blocks: (block row, block column, row in block, column in block)."""
    blocks_w = _div(widths, merge)
    row = _div(within, merge * merge * blocks_w) * merge + _div(within, merge) % merge
    col = _div(within, merge * merge) % blocks_w * merge + within % merge
    return row, col


def _div(a: Any, b: Any) -> Any:
    """``a // b`` for the non-negative positions and sizes here, rounding toward zero: under
    draft_export, floor division of a tensor with an unbacked length leaves a dangling unbacked
    symbol (PendingUnbackedSymbolNotFound, torch 2.13); truncation does not."""
    import torch

    return torch.div(a, b, rounding_mode="trunc")


def _total(counts: Any) -> Any:
    """``counts.sum()`` as one (unbacked, when traced) size every caller shares."""
    import torch

    total = counts.sum().item()
    torch._check(total >= 0)
    return total


def rope_index(self: Any, input_ids: Any, mm_token_type_ids: Any, image_grid_thw: Any = None,
               video_grid_thw: Any = None, attention_mask: Any = None,
               second_per_grid_ts: Any = None, *, frames: bool = False, seconds: bool = False,
               **kwargs: Any) -> tuple[Any, Any]:  # fmt: skip
    """Qwen2-VL's ``get_rope_index`` without a Python loop: (3, batch, seq) positions and the
    (batch, 1) deltas.  Per row, over the unmasked tokens in order: a text token's position is
    the running position (all three axes); a vision span (one grid, taken in order across the
    batch, images and videos separately) is placed at the running position ``p`` as
    (p + t * interval, p + h, p + w) over its merged (t, h, w) grid, and moves the running
    position on by max(h, w).  ``frames``: each video frame is its own grid (Qwen3-VL and
    GLM-4V's timestamps between frames); ``seconds``: a video's temporal step is
    ``tokens_per_second * second_per_grid_ts`` (Qwen2.5-VL)."""
    import torch
    import torch.nn.functional as F

    batch, seq = input_ids.shape
    merge = self.config.vision_config.spatial_merge_size
    mask = (torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None
            else attention_mask.bool())  # fmt: skip
    # the unmasked tokens moved to the front of each row (masked ones to a dropped column),
    # as the original drops them before grouping
    compact = mask.long().cumsum(-1) - 1
    slot = torch.where(mask, compact, seq)
    kinds = torch.full((batch, seq + 1), -1, dtype=torch.long, device=input_ids.device)
    kinds = kinds.scatter(1, slot, mm_token_type_ids.long())[:, :seq]
    starts = kinds != F.pad(kinds[:, :-1], (1, 0), value=-1)  # a span's first token
    advance = (kinds == 0).long()
    spans = []  # (mask of the modality's tokens, first-token mask, grid per token, interval, step)
    for kind, grid in ((1, image_grid_thw), (2, video_grid_thw)):
        if grid is None:
            continue
        interval = None
        if kind == 2 and frames:
            grid = torch.repeat_interleave(grid, grid[:, 0], dim=0, output_size=_total(grid[:, 0]))
            grid = torch.stack([torch.ones_like(grid[:, 0]), grid[:, 1], grid[:, 2]], dim=-1)
        if kind == 2 and seconds:
            tokens_per_second = self.config.vision_config.tokens_per_second
            interval = (tokens_per_second * second_per_grid_ts if second_per_grid_ts is not None
                        else torch.full((grid.shape[0],), tokens_per_second, device=grid.device))  # fmt: skip
        t, h, w = grid[:, 0], _div(grid[:, 1], merge), _div(grid[:, 2], merge)
        tokens, step = t * h * w, torch.maximum(h, w)
        this = kinds == kind
        # spans and tokens are numbered across the whole batch: the original takes grids from
        # one iterator over all rows
        item = ((starts & this).flatten().cumsum(0) - 1).clamp(min=0).view(batch, seq)
        item = item.clamp(max=grid.shape[0] - 1)
        rank = this.flatten().long().cumsum(0).view(batch, seq) - 1
        local = (rank - (tokens.cumsum(0) - tokens)[item]).clamp(min=0)
        hi, wi = h[item], w[item]
        per_token = (_div(local, hi * wi), _div(local, wi) % hi, local % wi)
        gap = None if interval is None else interval[item]
        spans.append((this, starts & this, per_token, gap, step[item]))
        advance = advance + torch.where(starts & this, step[item], 0)
    before = advance.cumsum(-1) - advance  # the running position at each token
    positions = before.unsqueeze(0).expand(3, batch, seq)
    for this, first, (ti, hi, wi), gap, step in spans:
        at = before - torch.where(first, 0, step)  # the running position at the span's start
        ti = ti if gap is None else (ti.to(gap.dtype) * gap).long()
        placed = torch.stack([at + ti, at + hi, at + wi])
        positions = torch.where(this.unsqueeze(0), placed, positions)
    valid = torch.arange(seq, device=input_ids.device) < mask.sum(-1, keepdim=True)
    top = torch.where(valid.unsqueeze(0), positions, -1).amax(dim=(0, 2))
    deltas = (top + 1 - mask.sum(-1)).unsqueeze(1)
    back = torch.gather(positions, 2, compact.clamp(min=0).unsqueeze(0).expand(3, batch, seq))
    position_ids = torch.where(mask.unsqueeze(0), back, 0).to(input_ids.dtype)
    return position_ids, deltas


# The transformers models whose ``get_rope_index`` ``rope_index`` reproduces (module name under
# transformers.models -> options), each checked value for value in tests/ir/test_rope_index_export.py.
ROPE_INDEX = {
    "qwen2_vl": {},
    "paddleocr_vl": {},
    "qwen2_5_vl": {"seconds": True},
    **{name: {"frames": True} for name in (
        "qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe", "qwen4_exp", "glm4v", "glm4v_moe",
        "glm46v", "glm_ocr", "cohere_compass", "cosmos3_omni", "cosmos3_edge")},  # fmt: skip
}


def _rope_index_for(options: dict[str, bool]) -> Any:
    def get_rope_index(self: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return rope_index(self, *args, **kwargs, **options)

    return get_rope_index


STAND_INS = {
    "get_vision_cu_seqlens": cu_seqlens,
    "get_vision_interpolation_indices_and_weights": interpolation_indices_and_weights,
    "get_vision_position_ids": position_ids,
}


@contextmanager
def vision_grid_helpers() -> Iterator[int]:
    """Swap the stand-ins in for the originals wherever transformers' modules imported them
    (``from ...vision_utils import get_vision_cu_seqlens`` binds a name per module); restored
    on exit.  Yields how many names were swapped."""
    try:
        import transformers.vision_utils as vision_utils
    except ImportError:  # an older transformers without the shared helpers
        yield 0
        return
    originals = {name: getattr(vision_utils, name, None) for name in STAND_INS}
    swapped: list[tuple[Any, str, Any]] = []
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("transformers") or module is None:
            continue
        for name, original in originals.items():
            if original is not None and getattr(module, name, None) is original:
                swapped.append((module, name, original))
                setattr(module, name, STAND_INS[name])
    prefix = "transformers.models."
    for module_name, module in list(sys.modules.items()):
        family = module_name[len(prefix):].split(".")[0] if module_name.startswith(prefix) else ""
        if family not in ROPE_INDEX or not module_name.endswith(f".modeling_{family}"):
            continue
        for cls in list(vars(module).values()):
            original = isinstance(cls, type) and cls.__dict__.get("get_rope_index")
            if original and getattr(original, "__module__", None) == module_name:
                swapped.append((cls, "get_rope_index", original))
                setattr(cls, "get_rope_index", _rope_index_for(ROPE_INDEX[family]))
    try:
        yield len(swapped)
    finally:
        for module, name, original in swapped:
            setattr(module, name, original)

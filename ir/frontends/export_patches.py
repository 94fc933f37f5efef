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
    try:
        yield len(swapped)
    finally:
        for module, name, original in swapped:
            setattr(module, name, original)

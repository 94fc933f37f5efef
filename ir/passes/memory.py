"""Memory planning: tensor lifetimes -> offsets in one arena, with the planned peak.

Views (Reshape, Transpose, Expand, Slice, Select, Squeeze/Unsqueeze, Identity) share their
source's buffer, so a buffer lives until the last use of any view of it.  Buffers are placed
greedily, largest first, at the lowest 64-byte-aligned offset that does not overlap a buffer
whose lifetime intersects.  Graph inputs and weights are not planned (the caller owns them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..graph import Graph, numpy_dtype
from .infer import infer_concrete

VIEW_OPS = {"Reshape", "Transpose", "Expand", "Slice", "Select", "Squeeze", "Unsqueeze", "Identity"}
ALIGN = 64


@dataclass
class Buffer:
    value: str
    size: int
    first: int
    last: int
    offset: int = 0


def assign_offsets(buffers: list[Buffer]) -> int:
    """Places each buffer (size already a multiple of ALIGN) at the lowest offset that overlaps
    no buffer whose lifetime [first, last] intersects its own, largest first; returns the arena
    size.  Lifetimes are inclusive, so a kernel's output never shares bytes with its inputs."""
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first)):
        live = sorted((p for p in placed if p.first <= buf.last and buf.first <= p.last),
                      key=lambda p: p.offset)  # fmt: skip
        offset = 0
        for other in live:
            if offset + buf.size <= other.offset:
                break
            offset = max(offset, other.offset + other.size)
        buf.offset = offset
        placed.append(buf)
    return max((b.offset + b.size for b in placed), default=0)


def plan_memory(graph: Graph, bindings: dict[str, int]) -> dict[str, Any]:
    specs = infer_concrete(graph, bindings)
    root: dict[str, str] = {}
    for node in graph.nodes:
        for out in node.outputs:
            if out:
                root[out] = out
        if node.op in VIEW_OPS and node.inputs and node.inputs[0] in root:
            root[node.outputs[0]] = root[node.inputs[0]]
    buffers: dict[str, Buffer] = {}
    for index, node in enumerate(graph.nodes):
        for out in node.outputs:
            if out and root.get(out) == out and out in specs:
                spec = specs[out]
                nbytes = int(np.prod(spec.shape, dtype=np.int64)) * numpy_dtype(spec.dtype).itemsize
                buffers[out] = Buffer(out, -(-max(nbytes, 1) // ALIGN) * ALIGN, index, index)
        for name in node.uses():
            base = root.get(name)
            if base in buffers:
                buffers[base].last = max(buffers[base].last, index)
    end = len(graph.nodes)
    for name in graph.outputs:
        base = root.get(name)
        if base in buffers:
            buffers[base].last = end
    placed = list(buffers.values())
    arena = assign_offsets(placed)
    # the lower bound: the most bytes live at any one step
    live_peak = 0
    for index in range(end + 1):
        live_peak = max(live_peak, sum(b.size for b in placed if b.first <= index <= b.last))
    return {
        "bindings": dict(bindings),
        "buffers": len(placed),
        "arena_bytes": int(arena),
        "live_peak_bytes": int(live_peak),
        "unplanned_bytes": int(sum(b.size for b in placed)),
        "offsets": {b.value: b.offset for b in placed},
    }

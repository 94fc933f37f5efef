"""Constant folding: a node whose inputs are all weights (and whose attributes need no runtime
scalar) is evaluated once at optimisation time and becomes a weight."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, attr_refs
from ..ops import run_reference

MAX_FOLDED_ELEMENTS = 1 << 22
_NEVER_FOLD = {"SymSize", "Scalar", "TensorToScalar", "Shape", "Size"}


def fold_constants(graph: Graph) -> int:
    folded = 0
    kept = []
    for node in graph.nodes:
        foldable = (
            node.op not in _NEVER_FOLD
            and all(name in graph.weights for name in node.inputs if name)
            and not any(True for _ in attr_refs(node.attrs))
            and not any(out in graph.outputs for out in node.outputs)
        )
        if foldable:
            try:
                values = run_reference(node.op, [graph.weights[n] if n else None for n in node.inputs], node.attrs)
            except Exception:
                values = None
            if values is not None and all(
                isinstance(v, (np.ndarray, np.generic)) and np.size(v) <= MAX_FOLDED_ELEMENTS for v in values
            ):
                for out, value in zip(node.outputs, values):
                    if out:
                        # np.array, not np.ascontiguousarray: that one makes a 0-d value 1-d
                        graph.weights[out] = np.array(value, order="C")
                        graph.value_info.pop(out, None)
                folded += 1
                continue
        kept.append(node)
    graph.nodes = kept
    return folded

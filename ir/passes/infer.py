"""Shape and dtype inference.

``infer_types(graph)`` fills ``value_info`` symbolically (dims stay "batch", "seq" or "?") from the
op table's infer functions, for values a frontend left undescribed.  ``infer_concrete(graph,
bindings)`` propagates concrete shapes for one binding of the symbols (e.g. batch=1, seq=128),
evaluating the runtime scalar ops (SymSize, Scalar) on the way; memory planning uses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..graph import Graph, TensorSpec, attr_refs, numpy_dtype, resolve_attr
from ..ops import OPS, infer_node, run_reference
from ..ops.base import spec_of

_SCALAR_OPS = {"SymSize", "Scalar", "TensorToScalar", "Shape", "Size"}
_SMALL = 1 << 16  # tensors up to this many elements are evaluated for their values


def infer_types(graph: Graph) -> int:
    """Symbolic inference into ``value_info``; returns how many values gained a spec."""
    added = 0
    for node in graph.nodes:
        if node.op not in OPS:
            continue
        specs = [graph.spec(name) if name else None for name in node.inputs]
        try:
            outs = infer_node(node, specs)
        except Exception:
            continue
        for name, spec in zip(node.outputs, outs):
            if name and spec is not None and name not in graph.value_info:
                graph.value_info[name] = spec
                added += 1
    return added


def infer_concrete(graph: Graph, bindings: dict[str, int]) -> dict[str, TensorSpec]:
    """Concrete spec of every value for one binding of the symbolic dims."""
    specs: dict[str, TensorSpec] = {}
    values: dict[str, Any] = {name: array for name, array in graph.weights.items() if array.size <= _SMALL}
    for name, array in graph.weights.items():
        specs[name] = spec_of(array)
    for name, spec in graph.inputs.items():
        shape = [bindings.get(d, d) if isinstance(d, str) else d for d in spec.shape or []]
        if any(isinstance(d, str) for d in shape):
            raise ValueError(f"no binding for the dims of input {name}: {spec}")
        specs[name] = TensorSpec(spec.dtype, shape)
    for node in graph.nodes:
        in_specs = [specs.get(name) if name else None for name in node.inputs]
        refs = list(attr_refs(node.attrs))
        attrs = resolve_attr(node.attrs, values) if all(r in values for r in refs) else node.attrs
        known = all(not name or name in values for name in node.inputs) and all(r in values for r in refs)
        outs: list[TensorSpec | None] = []
        if known and (node.op in _SCALAR_OPS or all(s is None or np.prod(s.shape or [1]) <= _SMALL
                                                     for s in in_specs)):  # fmt: skip
            try:
                results = run_reference(node.op, [values[n] if n else None for n in node.inputs], attrs)
                for name, result in zip(node.outputs, results):
                    if name and result is not None and np.size(result) <= _SMALL:
                        values[name] = result
                outs = [spec_of(np.asarray(r)) if r is not None else None for r in results]
            except Exception:
                outs = []
        if node.op in _SCALAR_OPS and node.op != "Shape" and not outs:
            if node.op == "SymSize" and in_specs[0] is not None:
                values[node.outputs[0]] = in_specs[0].shape[attrs["dim"]]
                outs = [TensorSpec("int64", [])]
        if not outs or any(o is None for o in outs[:1]):
            try:
                outs = infer_node(node, in_specs, attrs)
            except Exception:
                outs = [None] * len(node.outputs)
            if any(o is not None and not o.is_concrete() for o in outs) or not outs or outs[0] is None:
                dummies = [np.zeros(s.shape, numpy_dtype(s.dtype)) if s is not None else None for s in in_specs]
                dummies = [values.get(n, d) if n else d for n, d in zip(node.inputs, dummies)]
                results = run_reference(node.op, dummies, attrs)
                outs = [spec_of(np.asarray(r)) if r is not None else None for r in results]
        for name, spec in zip(node.outputs, outs):
            if name and spec is not None:
                specs[name] = spec
    return specs

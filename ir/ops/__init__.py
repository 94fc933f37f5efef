"""The one op table: op name -> OpDef (numpy reference, shape/dtype inference, docs).

Native kernel bindings live beside it in ``ir/ops/native.py``; frontends lower onto these names
and nothing else, so every executor and backend sees the same vocabulary.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..graph import Node, TensorSpec, numpy_dtype
from . import elementwise, extended, nn, quantized, shape
from .base import OpDef, spec_of

OPS: dict[str, OpDef] = {**elementwise.build(), **shape.build(), **nn.build(), **extended.build(),
                       **quantized.build()}


def run_reference(op: str, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """Run an op's numpy reference; always returns a list of outputs."""
    result = OPS[op].reference(inputs, **attrs)
    return list(result) if isinstance(result, tuple) else [result]


def infer_node(node: Node, specs: list[TensorSpec | None], attrs: dict[str, Any] | None = None
               ) -> list[TensorSpec | None]:  # fmt: skip
    """Output specs of ``node`` from its input specs.  ``attrs`` are the resolved attributes
    (defaults to the node's own); unresolved ``$ref`` slots make dims unknown ("?")."""
    opdef = OPS[node.op]
    attrs = node.attrs if attrs is None else attrs
    if opdef.infer is not None:
        specs_out = opdef.infer(specs, **attrs)
        return list(specs_out) + [None] * (len(node.outputs) - len(specs_out))
    if all(s is None or s.is_concrete() for s in specs) and not _has_refs(attrs):
        dummies = [None if s is None else np.zeros(s.shape, dtype=numpy_dtype(s.dtype)) for s in specs]
        try:
            return [spec_of(np.asarray(out)) for out in run_reference(node.op, dummies, attrs)]
        except Exception:
            return [None] * len(node.outputs)
    return [None] * len(node.outputs)


def _has_refs(value: Any) -> bool:
    from ..graph import attr_refs

    return any(True for _ in attr_refs(value))


__all__ = ["OPS", "OpDef", "infer_node", "run_reference"]

"""What one op-table entry holds, and the helpers the entries share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..graph import Dim, TensorSpec, dtype_name, numpy_dtype

Reference = Callable[..., Any]  # (inputs: list, **attrs) -> array | tuple of arrays
Infer = Callable[..., list[TensorSpec | None]]  # (specs: list[TensorSpec|None], **attrs)


@dataclass
class OpDef:
    """One op: numpy reference semantics, shape/dtype inference, and documentation.

    ``reference`` is the ground truth every other implementation (native kernels, a future MAX
    lowering) is tested against.  ``infer`` may be None: shape inference then evaluates the
    reference on zero-filled inputs of the given shapes.
    """

    name: str
    reference: Reference
    infer: Infer | None = None
    doc: str = ""
    num_outputs: int = 1
    elementwise: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)  # attribute name -> default
    # Never removed by dead-code elimination although nothing reads its output: a runtime
    # assertion that guards what the export assumed.
    keep: bool = False


def broadcast_shapes(*shapes: list[Dim] | None) -> list[Dim] | None:
    """numpy broadcasting over dims that may be symbol names."""
    if any(s is None for s in shapes):
        return None
    rank = max((len(s) for s in shapes), default=0)
    result: list[Dim] = []
    for axis in range(rank):
        dims = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        chosen: Dim = 1
        for d in dims:
            if d == 1:
                continue
            if chosen == 1:
                chosen = d
            elif chosen != d:
                if isinstance(chosen, int) and isinstance(d, int):
                    raise ValueError(f"shapes {shapes} do not broadcast")
                chosen = d if isinstance(d, int) else chosen
        result.append(chosen)
    return result


def norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def as_array(value: Any) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else np.asarray(value)


def cast_to(array: Any, dtype: str | None) -> Any:
    if dtype is None:
        return array
    target = numpy_dtype(dtype)
    array = as_array(array)
    return array if array.dtype == target else array.astype(target)


def spec_of(array: np.ndarray) -> TensorSpec:
    return TensorSpec(dtype_name(array.dtype), list(np.shape(array)))


def same_as_first(specs: list[TensorSpec | None], **attrs: Any) -> list[TensorSpec | None]:
    first = specs[0]
    if first is None:
        return [None]
    return [TensorSpec(attrs.get("dtype") or first.dtype, first.shape)]

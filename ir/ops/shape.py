"""Layout, indexing and tensor-creation ops, plus the runtime scalar ops that symbolic shapes need.

Shape-like attributes may hold ``{"$ref": name}`` entries (resolved by the executor) so that a
reshape to ``[batch * seq, 384]`` stays valid for every batch and sequence length.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from ..graph import TensorSpec, dtype_name, numpy_dtype
from .base import OpDef, cast_to, norm_axis


def _ints(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1).tolist()]


# -- layout -----------------------------------------------------------------------------------
def _reshape(inputs, shape=None, copy_zero=False, allowzero=0):
    x = np.asarray(inputs[0])
    target = _ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else list(shape)
    if copy_zero and not allowzero:  # ONNX: 0 copies the input dim
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return x.reshape(target)


def _reshape_infer(specs, shape=None, copy_zero=False, allowzero=0):
    x = specs[0]
    if shape is None or x is None:
        return [None]
    dims = [d if isinstance(d, int) else "?" for d in shape]
    if -1 in dims and x.is_concrete() and "?" not in dims:
        known = math.prod(d for d in dims if d != -1)
        total = math.prod(x.shape)
        dims = [total // known if known and d == -1 else d for d in dims]
    return [TensorSpec(x.dtype, ["?" if d == -1 else d for d in dims])]


def _transpose(inputs, perm=None):
    return np.transpose(np.asarray(inputs[0]), perm)


def _transpose_infer(specs, perm=None):
    x = specs[0]
    if x is None or x.shape is None:
        return [x]
    perm = perm if perm is not None else list(reversed(range(len(x.shape))))
    return [TensorSpec(x.dtype, [x.shape[p] for p in perm])]


def _expand(inputs, shape=None, bidirectional=False):
    x = np.asarray(inputs[0])
    target = _ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else list(shape)
    if bidirectional:  # ONNX Expand: broadcast both ways
        return x * np.ones(target, dtype=x.dtype) if x.dtype != bool else np.broadcast_to(
            x, np.broadcast_shapes(x.shape, tuple(target))
        )
    lead = len(target) - x.ndim
    full = [x.shape[i - lead] if d == -1 else d for i, d in enumerate(target)]
    return np.broadcast_to(x, full)


def _unsqueeze(inputs, axes=None):
    x = np.asarray(inputs[0])
    axes = _ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else list(axes)
    rank = x.ndim + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = np.expand_dims(x, axis)
    return x


def _unsqueeze_infer(specs, axes=None):
    x = specs[0]
    if x is None or x.shape is None or axes is None:
        return [None]
    rank = len(x.shape) + len(axes)
    shape = list(x.shape)
    for axis in sorted(a % rank for a in axes):
        shape.insert(axis, 1)
    return [TensorSpec(x.dtype, shape)]


def _squeeze(inputs, axes=None):
    x = np.asarray(inputs[0])
    if len(inputs) > 1 and inputs[1] is not None:
        axes = _ints(inputs[1])
    if axes is None:
        return np.squeeze(x)
    axes = tuple(a % x.ndim for a in axes if x.shape[a % x.ndim] == 1) if x.ndim else ()
    return np.squeeze(x, axis=axes)


def _slice(inputs, dim=0, start=None, end=None, step=1):
    x = np.asarray(inputs[0])
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, end, step)
    return x[tuple(index)]


def _slice_infer(specs, dim=0, start=None, end=None, step=1):
    x = specs[0]
    if x is None or x.shape is None:
        return [None]
    shape = list(x.shape)
    size = shape[dim]
    if isinstance(size, int) and all(isinstance(v, (int, type(None))) for v in (start, end, step)):
        shape[dim] = len(range(*slice(start, end, step).indices(size)))
    elif start in (0, None) and (end is None or (isinstance(end, int) and end >= 2**62)) and step == 1:
        pass
    else:
        shape[dim] = "?"
    return [TensorSpec(x.dtype, shape)]


def _onnx_slice(inputs, **attrs):
    """ONNX Slice: starts, ends[, axes[, steps]] as inputs, ONNX clamping rules."""
    x = np.asarray(inputs[0])
    starts, ends = _ints(inputs[1]), _ints(inputs[2])
    axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis % x.ndim
        size = x.shape[axis]
        start = start + size if start < 0 else start
        end = end + size if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), size), min(max(end, 0), size)
        else:
            start, end = min(max(start, 0), size - 1), min(max(end, -1), size - 1)
        index[axis] = slice(start, None if end < 0 else end, step)
    return x[tuple(index)]


def _select(inputs, dim=0, index=0):
    return np.take(np.asarray(inputs[0]), index, axis=dim)


def _concat(inputs, axis=0):
    arrays = [np.asarray(a) for a in inputs if a is not None]
    # torch.cat skips legacy empty 1-D tensors
    keep = [a for a in arrays if not (a.ndim == 1 and a.size == 0)] or arrays
    return np.concatenate(keep, axis=axis)


def _concat_infer(specs, axis=0):
    if any(s is None or s.shape is None for s in specs):
        return [None]
    specs = [s for s in specs if not (len(s.shape) == 1 and s.shape[0] == 0)] or specs
    shape = list(specs[0].shape)
    axis = norm_axis(axis, len(shape))
    sizes = [s.shape[axis] for s in specs]
    shape[axis] = sum(sizes) if all(isinstance(d, int) for d in sizes) else "?"
    return [TensorSpec(specs[0].dtype, shape)]


def _split(inputs, axis=0, sizes=None, num_outputs=None):
    x = np.asarray(inputs[0])
    if len(inputs) > 1 and inputs[1] is not None:
        sizes = _ints(inputs[1])
    if sizes is None:
        n = num_outputs
        chunk = -(-x.shape[axis] // n)
        sizes = [min(chunk, x.shape[axis] - i * chunk) for i in range(n)]
    bounds = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, bounds, axis=axis))


def _gather(inputs, dim=0):
    """torch.gather: out[i][j] = x[index[i][j]][j] along ``dim``; the index may be smaller than
    x in the other dims (only that leading block of x is read)."""
    x, idx = np.asarray(inputs[0]), np.asarray(inputs[1])
    dim = norm_axis(dim, x.ndim)
    block = tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(idx.shape))
    return np.take_along_axis(x[block], idx, axis=dim)


def _take(inputs, axis=0):
    """ONNX Gather / numpy take; negative indices wrap."""
    x, idx = np.asarray(inputs[0]), np.asarray(inputs[1]).astype(np.int64)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return np.take(x, idx, axis=axis)


def _take_infer(specs, axis=0):
    x, idx = specs
    if x is None or idx is None or x.shape is None or idx.shape is None:
        return [None]
    axis = norm_axis(axis, len(x.shape))
    return [TensorSpec(x.dtype, x.shape[:axis] + idx.shape + x.shape[axis + 1 :])]


def _embedding(inputs, padding_idx=None):
    weight, ids = np.asarray(inputs[0]), np.asarray(inputs[1])
    return np.take(weight, ids, axis=0)


def _embedding_infer(specs, padding_idx=None):
    weight, ids = specs
    if weight is None or ids is None or ids.shape is None or weight.shape is None:
        return [None]
    return [TensorSpec(weight.dtype, list(ids.shape) + list(weight.shape[1:]))]


def _index_tuple(ndim: int, positions, indices) -> tuple:
    """The numpy index for torch's x[..., idx, ...]: ``positions`` are places in torch's
    indices list (a boolean index of rank k there covers k dims); the dims after the last one
    are taken whole."""
    given = dict(zip(positions, indices))
    index: list[Any] = []
    for position in range(max(given, default=-1) + 1):
        if position not in given:
            index.append(slice(None))
            continue
        idx = np.asarray(given[position])
        index.append(idx if idx.dtype == bool else idx.astype(np.int64))
    return tuple(index)


def _index(inputs, positions=None):
    """torch advanced indexing x[..., idx, ...]: ``positions`` lists the indexed dims."""
    x = np.asarray(inputs[0])
    return x[_index_tuple(x.ndim, positions, inputs[1:])]


def _index_put(inputs, positions=None, accumulate=False):
    x = np.array(inputs[0], copy=True)
    values = np.asarray(inputs[-1])
    index = list(_index_tuple(x.ndim, positions, inputs[1:-1]))
    if accumulate:
        np.add.at(x, tuple(index), values)
    else:
        x[tuple(index)] = values
    return x


def _scatter(inputs, dim=0, reduce=None):
    x = np.array(inputs[0], copy=True)
    idx, src = np.asarray(inputs[1]), np.asarray(inputs[2], dtype=x.dtype)
    if src.ndim == idx.ndim:  # torch: src may be larger than the index; its leading block is read
        src = src[tuple(slice(0, n) for n in idx.shape)]
    src = np.broadcast_to(src, idx.shape)
    grids = list(np.indices(idx.shape, sparse=True))
    grids[dim] = np.where(idx < 0, idx + x.shape[dim], idx)
    if reduce in ("add", "sum"):
        np.add.at(x, tuple(grids), src)
    elif reduce in ("mul", "prod", "multiply"):
        np.multiply.at(x, tuple(grids), src)
    elif reduce == "max":
        np.maximum.at(x, tuple(grids), src)
    elif reduce == "min":
        np.minimum.at(x, tuple(grids), src)
    else:
        x[tuple(grids)] = src
    return x


# -- creation ---------------------------------------------------------------------------------
def _full(inputs, shape=(), value=0.0, dtype="float32"):
    return np.full(shape, value, dtype=numpy_dtype(dtype))


def _full_infer(specs, shape=(), value=0.0, dtype="float32"):
    return [TensorSpec(dtype, [d if isinstance(d, int) else "?" for d in shape])]


def _full_like(inputs, value=0.0, dtype=None):
    x = np.asarray(inputs[0])
    return np.full(x.shape, value, dtype=numpy_dtype(dtype) if dtype else x.dtype)


def _arange(inputs, start=0, end=None, step=1, dtype="int64"):
    if inputs and len(inputs) == 3:  # ONNX Range(start, limit, delta), typed like start
        dtype = dtype or dtype_name(np.asarray(inputs[0]).dtype)
        start, end, step = (np.asarray(v).item() for v in inputs)
    return np.arange(start, end, step).astype(numpy_dtype(dtype or "int64"))


def _flatten(inputs, axis=1):
    x = np.asarray(inputs[0])
    axis = axis + x.ndim if axis < 0 else axis  # ONNX: axis in [-rank, rank]; rank gives [N, 1]
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1) if x.size else x.reshape(
        int(np.prod(x.shape[:axis], dtype=np.int64)), int(np.prod(x.shape[axis:], dtype=np.int64)))


def _gather_onnx(inputs, dim=0):
    x, idx = np.asarray(inputs[0]), np.asarray(inputs[1]).astype(np.int64)
    idx = np.where(idx < 0, idx + x.shape[dim], idx)
    return np.take_along_axis(x, idx, axis=dim)


def _einsum(inputs, equation=""):
    arrays = [np.asarray(a) for a in inputs]
    # numpy's einsum refuses ml_dtypes' extension types (bfloat16: kind "V"): compute in
    # float32 and round the result back to the operands' type
    narrow = next((a.dtype for a in arrays if a.dtype.kind == "V"), None)
    if narrow is None:
        return np.einsum(equation, *arrays)
    return np.einsum(equation, *[a.astype(np.float32) for a in arrays]).astype(narrow)


def _constant_of_shape(inputs, value=0.0, dtype="float32"):
    return np.full(_ints(inputs[0]), value, dtype=numpy_dtype(dtype))


def _shape(inputs, start=0, end=None):
    return np.asarray(np.shape(inputs[0])[start:end], dtype=np.int64)


def _size(inputs):
    return np.asarray(np.size(inputs[0]), dtype=np.int64)


def _sym_size(inputs, dim=0):
    return int(np.shape(inputs[0])[dim])


def _sym_size_infer(specs, dim=0):
    return [TensorSpec("int64", [])]


def _tile(inputs, repeats=None):
    x = np.asarray(inputs[0])
    reps = _ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else list(repeats)
    return np.tile(x, reps)


def _flip(inputs, dims=()):
    return np.flip(np.asarray(inputs[0]), axis=tuple(dims))


def _triangle(upper: bool):
    def reference(inputs, diagonal=0):
        x = np.asarray(inputs[0])
        k = int(np.asarray(inputs[1]).item()) if len(inputs) > 1 and inputs[1] is not None else diagonal
        return np.triu(x, k) if upper else np.tril(x, k)

    return reference


def _pad(inputs, pads=(), mode="constant", value=0.0):
    """``pads`` in numpy order: [(before, after) per dim]."""
    x = np.asarray(inputs[0])
    widths = [tuple(p) for p in pads]
    if mode == "constant":
        # negative pads crop, as in torch.constant_pad_nd / ONNX Pad
        crop = tuple(slice(max(-b, 0), x.shape[i] - max(-a, 0)) for i, (b, a) in enumerate(widths))
        x = x[crop]
        widths = [(max(b, 0), max(a, 0)) for b, a in widths]
        return np.pad(x, widths, mode="constant", constant_values=value)
    return np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


def _cumsum(inputs, axis=0, exclusive=False, reverse=False, dtype=None):
    x = np.asarray(inputs[0])
    if len(inputs) > 1 and inputs[1] is not None:
        axis = int(np.asarray(inputs[1]).item())
    if reverse:
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis, dtype=numpy_dtype(dtype) if dtype else x.dtype)
    if exclusive:
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=axis)),
                              np.take(out, range(out.shape[axis] - 1), axis=axis)], axis=axis)  # fmt: skip
    return np.flip(out, axis) if reverse else out


def _one_hot(inputs, num_classes=-1, dtype="int64"):
    idx = np.asarray(inputs[0]).astype(np.int64)
    n = int(idx.max()) + 1 if num_classes < 0 else num_classes
    return np.eye(n, dtype=numpy_dtype(dtype))[idx]


# -- runtime scalars --------------------------------------------------------------------------
SCALAR_FNS = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
    "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow, "neg": operator.neg,
    "max": max, "min": min, "eq": operator.eq, "ne": operator.ne, "lt": operator.lt,
    "le": operator.le, "gt": operator.gt, "ge": operator.ge, "and": operator.and_,
    "or": operator.or_, "not": operator.not_, "float": float, "int": int, "ceil": math.ceil,
    "floor": math.floor, "sqrt": math.sqrt, "abs": abs,
    "ite": lambda condition, if_true, if_false: if_true if condition else if_false,
}  # fmt: skip


def scalar_operands(inputs, a=None, b=None, args=None) -> list:
    """A Scalar node's operands: the attribute ``args`` when it lists every operand (constants
    and resolved refs, in order), else the inputs with the constants ``a`` before and ``b``
    after.  One rule for every backend (the MAX lowering uses it too)."""
    if args is not None:
        operands = list(args)
    else:
        operands = list(inputs)
        if a is not None:
            operands.insert(0, a)
        if b is not None:
            operands.append(b)
    return [v.item() if isinstance(v, np.ndarray) else v for v in operands]


def _scalar(inputs, fn="add", a=None, b=None, args=None):
    """Python-scalar arithmetic on runtime scalars (symbolic sizes): fn(a, b), or fn(*args)."""
    return SCALAR_FNS[fn](*scalar_operands(inputs, a, b, args))


def _scalar_infer(specs, fn="add", a=None, b=None, args=None):
    constants = (a, b) if args is None else tuple(args)
    is_float = fn in ("truediv", "float", "sqrt") or any(isinstance(v, float) for v in constants)
    is_float = is_float or any(s is not None and s.dtype.startswith("float") for s in specs)
    is_bool = fn in ("eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not")
    return [TensorSpec("bool" if is_bool else "float64" if is_float else "int64", [])]


def _scalar_to_tensor(inputs, dtype="int64"):
    return np.asarray(inputs[0], dtype=numpy_dtype(dtype))


def _tensor_to_scalar(inputs):
    return np.asarray(inputs[0]).item()


def build() -> dict[str, OpDef]:
    ops = [
        OpDef("Reshape", _reshape, _reshape_infer, doc="reshape to attr shape or input 1"),
        OpDef("Transpose", _transpose, _transpose_infer, doc="permute dims"),
        OpDef("Expand", _expand, doc="broadcast to shape; -1 keeps a dim"),
        OpDef("Unsqueeze", _unsqueeze, _unsqueeze_infer),
        OpDef("Squeeze", _squeeze),
        OpDef("Slice", _slice, _slice_infer, doc="python slicing along one dim"),
        OpDef("SliceOnnx", _onnx_slice, doc="ONNX Slice with tensor starts/ends/axes/steps"),
        OpDef("Select", _select, doc="index one position of a dim, dropping it"),
        OpDef("Concat", _concat, _concat_infer),
        OpDef("Split", _split, num_outputs=-1),
        OpDef("Gather", _gather, doc="torch.gather along dim"),
        OpDef("GatherOnnx", _gather_onnx, doc="ONNX GatherElements (negative indices wrap)"),
        OpDef("Flatten", _flatten, doc="2-D [prod(dims[:axis]), prod(dims[axis:])]"),
        OpDef("Einsum", _einsum, doc="numpy einsum"),
        OpDef("Take", _take, _take_infer, doc="numpy take / ONNX Gather"),
        OpDef("Embedding", _embedding, _embedding_infer, doc="rows of weight[ids]"),
        OpDef("Index", _index, doc="advanced indexing on the listed positions"),
        OpDef("IndexPut", _index_put),
        OpDef("Scatter", _scatter),
        OpDef("Full", _full, _full_infer),
        OpDef("FullLike", _full_like),
        OpDef("Arange", _arange),
        OpDef("ConstantOfShape", _constant_of_shape),
        OpDef("Shape", _shape),
        OpDef("Size", _size),
        OpDef("SymSize", _sym_size, _sym_size_infer, doc="one dim of a tensor as a runtime scalar"),
        OpDef("Scalar", _scalar, _scalar_infer, doc="python arithmetic on runtime scalars"),
        OpDef("ScalarToTensor", _scalar_to_tensor),
        OpDef("TensorToScalar", _tensor_to_scalar),
        OpDef("Tile", _tile),
        OpDef("Flip", _flip),
        OpDef("Triu", _triangle(True)),
        OpDef("Tril", _triangle(False)),
        OpDef("Pad", _pad),
        OpDef("CumSum", _cumsum),
        OpDef("OneHot", _one_hot),
    ]
    return {op.name: op for op in ops}


__all__ = ["build", "cast_to"]

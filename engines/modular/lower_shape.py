"""MAX lowerings of the IR's layout, indexing and creation ops, and of its runtime scalars.

Runtime scalars (``SymSize``, ``Scalar``) are evaluated while lowering: to ints where the dim is
static and to MAX ``Dim`` expressions where it is symbolic, so shapes stay symbolic in the
compiled graph.  What depends on tensor *values* (a boolean-mask index, a reshape to a computed
tensor) has no static MAX shape and raises ``MaxLoweringError``."""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from skillmill.ir.graph import Node
from skillmill.ir.ops.shape import SCALAR_FNS, scalar_operands

from . import adapter
from .adapter import ops
from .lowering import Lowering, MaxLoweringError

INT64_MAX = 2**63 - 1


def _is_static(value: Any) -> bool:
    return adapter.static_int(value) is not None


def norm_axis(axis: int, rank: int) -> int:
    return axis % rank if rank else 0


def _const_ints(lw: Lowering, node: Node, index: int) -> list[int] | None:
    """Values of a tensor input that is a graph constant (ONNX passes shapes as tensors)."""
    if len(node.inputs) <= index or not node.inputs[index]:
        return None
    name = node.inputs[index]
    if name in lw.graph.weights:
        return [int(v) for v in np.asarray(lw.graph.weights[name]).reshape(-1)]
    raise MaxLoweringError(node.op, node.name, f"input {name!r} is computed at run time; MAX needs "
                           "it as a constant to know the output shape")  # fmt: skip


def slice_dim(lw: Lowering, x: Any, dim: int, start: Any, end: Any, step: Any = 1) -> Any:
    """numpy ``x[..., start:end:step, ...]`` along ``dim``; start/end may be symbolic."""
    shape = lw.shape(x)
    rank = len(shape)
    dim = norm_axis(dim, rank)
    size = shape[dim]
    step = 1 if step is None else step
    index: list[Any] = [slice(None)] * rank
    if isinstance(size, int) and all(v is None or _is_static(v) for v in (start, end)):
        s = None if start is None else adapter.static_int(start)
        e = None if end is None else adapter.static_int(end)
        rng = range(*slice(s, e, step).indices(size))
        index[dim] = slice(rng.start, rng.stop if rng.stop >= 0 else None, rng.step)
        if len(rng) == 0:
            raise MaxLoweringError("Slice", "?", "empty slice")
        return ops.slice_tensor(x, index)
    if step != 1:
        raise MaxLoweringError("Slice", "?", "strided slice of a symbolic dim")
    start = 0 if start is None else start
    if _negative(start):  # torch wraps a negative bound, a symbolic one too (mask[:, -seq:])
        start = size + start
    if end is None or (isinstance(end, int) and end >= 2**62):
        end = size
    elif _negative(end):
        end = size + end
    if start == 0 and end == size:  # the whole dim (-seq: too, once wrapped: MAX folds seq - seq)
        return x  # no op: a dynamic-bound slice would cost a kernel
    out_dim = end if start == 0 else end - start
    # MAX takes a run-time slice bound as a host tensor, on a GPU graph too
    to_tensor = lambda v: v if isinstance(v, int) else lw.scalar_tensor(v, "int64", on_host=True)  # noqa: E731
    index[dim] = (slice(to_tensor(start), to_tensor(end), 1), out_dim)
    return ops.slice_tensor(x, index)


def _negative(bound: Any) -> bool:
    """A negative int, or a symbolic bound that is minus a dim (``-seq``)."""
    if isinstance(bound, int):
        return bound < 0
    return adapter.is_minus_symbol(bound)


# -- layout ----------------------------------------------------------------------------------
def _reshape(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    shape = attrs.get("shape")
    if len(node.inputs) > 1 and node.inputs[1]:
        shape = _const_ints(lw, node, 1)
    if attrs.get("copy_zero") and not attrs.get("allowzero"):
        in_shape = lw.shape(x)
        shape = [in_shape[i] if d == 0 else d for i, d in enumerate(shape)]
    try:
        return [ops.reshape(x, list(shape))]
    except ValueError:
        # MAX checks that the element counts agree symbolically and cannot prove, e.g., that
        # (batch // 4) * 4 == batch.  Flatten, assert the count at run time (rebind), reshape.
        shape, count = list(shape), math.prod(lw.shape(x))  # math.prod multiplies MAX Dims too
        unknown = [i for i, d in enumerate(shape) if _is_static(d) and adapter.static_int(d) == -1]
        if len(unknown) > 1:
            raise
        if unknown:  # the -1 dim, as MAX would infer it
            shape[unknown[0]] = count // math.prod(d for i, d in enumerate(shape) if i != unknown[0])
        flat = ops.rebind(ops.reshape(x, [count]), [math.prod(shape)],
                          message=f"{node.name}: reshape changes the element count")  # fmt: skip
        return [ops.reshape(flat, shape)]


def _transpose(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    perm = attrs.get("perm")
    rank = len(x.shape)
    perm = list(reversed(range(rank))) if perm is None else [norm_axis(p, rank) for p in perm]
    if perm == list(range(rank)):
        return [x]
    return [ops.permute(x, perm)]


def _expand(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    target = attrs.get("shape")
    if len(node.inputs) > 1 and node.inputs[1]:
        target = _const_ints(lw, node, 1)
    target = list(target)
    in_shape = lw.shape(x)
    if attrs.get("bidirectional"):
        rank = max(len(target), len(in_shape))
        a = [1] * (rank - len(in_shape)) + in_shape
        b = [1] * (rank - len(target)) + target
        target = [bi if ai == 1 else ai for ai, bi in zip(a, b)]
    else:
        lead = len(target) - len(in_shape)
        target = [in_shape[i - lead] if (isinstance(d, int) and d == -1) else d for i, d in enumerate(target)]
    return [ops.broadcast_to(x, target)]


def _unsqueeze(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    axes = attrs.get("axes")
    if len(node.inputs) > 1 and node.inputs[1]:
        axes = _const_ints(lw, node, 1)
    rank = len(x.shape) + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = ops.unsqueeze(x, axis)
    return [x]


def _squeeze(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    axes = attrs.get("axes")
    if len(node.inputs) > 1 and node.inputs[1]:
        axes = _const_ints(lw, node, 1)
    shape = lw.shape(x)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    else:
        axes = [norm_axis(a, len(shape)) for a in axes if shape[norm_axis(a, len(shape))] == 1]
    for axis in sorted(axes, reverse=True):
        x = ops.squeeze(x, axis)
    return [x]


def _slice(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    return [slice_dim(lw, x, attrs.get("dim", 0), attrs.get("start"), attrs.get("end"), attrs.get("step", 1))]


def _slice_onnx(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    starts, ends = _const_ints(lw, node, 1), _const_ints(lw, node, 2)
    rank = len(x.shape)
    axes = _const_ints(lw, node, 3) or list(range(len(starts)))
    steps = _const_ints(lw, node, 4) or [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step < 0:
            raise MaxLoweringError(node.op, node.name, "negative slice steps have no MAX lowering")
        x = slice_dim(lw, x, norm_axis(axis, rank), start, min(end, 2**62), step)
    return [x]


def _select(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    dim = norm_axis(attrs.get("dim", 0), len(x.shape))
    index = attrs.get("index", 0)
    if not isinstance(index, int):
        raise MaxLoweringError(node.op, node.name, "select at a symbolic index")
    end = index + 1 if index != -1 else None
    return [ops.squeeze(slice_dim(lw, x, dim, index, end), dim)]


def _concat(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    tensors = [lw.tensor(n) for n in node.inputs if n]
    # torch.cat skips legacy empty 1-D tensors
    keep = [t for t in tensors if not (len(t.shape) == 1 and adapter.static_int(t.shape[0]) == 0)] or tensors
    if len(keep) == 1:
        return [keep[0]]
    dtype = keep[0].dtype
    keep = [t if t.dtype == dtype else ops.cast(t, dtype) for t in keep]
    return [ops.concat(keep, axis=attrs.get("axis", 0))]


def _split(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    axis = norm_axis(attrs.get("axis", 0), len(x.shape))
    sizes = attrs.get("sizes")
    if len(node.inputs) > 1 and node.inputs[1]:
        sizes = _const_ints(lw, node, 1)
    size = lw.shape(x)[axis]
    if sizes is None:
        n = attrs.get("num_outputs") or len(node.outputs)
        if not isinstance(size, int):
            raise MaxLoweringError(node.op, node.name, "even split of a symbolic dim")
        chunk = -(-size // n)
        sizes = [min(chunk, size - i * chunk) for i in range(n)]
    return list(ops.split(x, list(sizes), axis=axis))


def _take(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """numpy take / ONNX Gather; negative indices wrap."""
    x = lw.tensor(node.inputs[0])
    axis = norm_axis(attrs.get("axis", 0), len(x.shape))
    idx = wrap_negative(lw, lw.tensor(node.inputs[1]), lw.shape(x)[axis])
    if len(idx.shape) == 0:
        return [ops.squeeze(ops.gather(x, ops.reshape(idx, [1]), axis=axis), axis)]
    return [ops.gather(x, idx, axis=axis)]


def _gather_elements(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """torch.gather / ONNX GatherElements (take_along_axis): gather_nd over index grids."""
    x = lw.tensor(node.inputs[0])
    rank = len(x.shape)
    dim = norm_axis(attrs.get("dim", 0), rank)
    idx = wrap_negative(lw, lw.tensor(node.inputs[1]), lw.shape(x)[dim])
    target = lw.shape(idx)
    coords = []
    for axis in range(rank):
        if axis == dim:
            coords.append(idx)
            continue
        grid = _range_of(lw, target[axis])
        view = [1] * rank
        view[axis] = target[axis]
        coords.append(ops.broadcast_to(ops.reshape(grid, view), target))
    return [ops.gather_nd(x, ops.stack(coords, axis=-1))]


def _embedding(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    weight = lw.tensor(node.inputs[0])
    ids = lw.cast(lw.tensor(node.inputs[1]), "int64")
    return [ops.gather(weight, ids, axis=0)]


def _index(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """torch advanced indexing (index tensors at ``positions``), by gather_nd over broadcast
    indices."""
    x = lw.tensor(node.inputs[0])
    positions = list(attrs.get("positions") or [])
    indices = [lw.tensor(n) for n in node.inputs[1:]]
    if any(lw.tdtype(i) == "bool" for i in indices):
        raise MaxLoweringError(node.op, node.name, "boolean-mask indexing has a data-dependent shape")
    rank = len(x.shape)
    positions = [norm_axis(p, rank) for p in positions]
    if len(set(positions)) != len(positions):
        raise MaxLoweringError(node.op, node.name, f"repeated index positions {positions}")
    if len(positions) == 1:  # one index tensor anywhere: a gather on that axis
        return [ops.gather(x, wrap_negative(lw, indices[0], lw.shape(x)[positions[0]]), axis=positions[0])]
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    indices, positions = [indices[i] for i in order], sorted(positions)
    if positions == list(range(len(positions))):
        return [_index_leading(lw, x, indices)]
    # elsewhere: move the indexed axes to the front, index there, then put the indexed dims
    # where torch does (in place of the first position when adjacent, first when not)
    rest = [a for a in range(rank) if a not in positions]
    y = _index_leading(lw, ops.permute(x, positions + rest), indices)
    if positions != list(range(positions[0], positions[-1] + 1)):
        return [y]
    index_rank, before = len(y.shape) - len(rest), positions[0]
    perm = list(range(index_rank, index_rank + before)) + list(range(index_rank)) + \
        list(range(index_rank + before, len(y.shape)))  # fmt: skip
    return [ops.permute(y, perm)]


def wrap_negative(lw: Lowering, idx: Any, size: Any) -> Any:
    """Indices as int64, the negative ones counted from the end (numpy's and torch's rule)."""
    idx = lw.cast(idx, "int64")
    return ops.where(ops.greater(lw.const(0, "int64"), idx), idx + lw.scalar_tensor(size, "int64"), idx)


def broadcast_dims(lw: Lowering, tensors: list[Any]) -> list[Any]:
    """The shape the tensors broadcast to (a symbolic dim wins over a static 1)."""
    shapes = [lw.shape(t) for t in tensors]
    rank = max(len(s) for s in shapes)
    padded = [[1] * (rank - len(s)) + s for s in shapes]
    return [next((d for d in dims if not (isinstance(d, int) and d == 1)), 1) for dims in zip(*padded)]


def _index_leading(lw: Lowering, x: Any, indices: list[Any]) -> Any:
    """x[i0, i1, ...] with index tensors on the leading axes (broadcast together)."""
    target = broadcast_dims(lw, indices)
    wrapped = [ops.broadcast_to(wrap_negative(lw, idx, lw.shape(x)[k]), target) for k, idx in enumerate(indices)]
    return ops.gather_nd(x, ops.stack(wrapped, axis=-1))


def _slice_scatter(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """A copy of x with x[..., start:end:step, ...] = src: every position of the dim decides
    whether it lies in the slice and which source row it takes, then one gather and a where
    (no data-dependent shape, symbolic sizes fine)."""
    x, src = lw.tensor(node.inputs[0]), lw.cast(lw.tensor(node.inputs[1]), lw.tdtype(lw.tensor(node.inputs[0])))
    rank = len(x.shape)
    dim = norm_axis(attrs.get("dim", 0), rank)
    step = int(attrs.get("step") or 1)
    if step < 1:
        raise MaxLoweringError(node.op, node.name, f"slice step {step}")
    size = lw.shape(x)[dim]
    size_t = lw.scalar_tensor(size, "int64")
    zero = lw.const(0, "int64")

    def bound(value: Any, default: Any) -> Any:
        if value is None or (isinstance(value, int) and value >= 2**62):
            return default
        t = lw.scalar_tensor(value, "int64") if not isinstance(value, int) else lw.const(value, "int64")
        t = ops.where(ops.greater(zero, t), t + size_t, t)  # negative: from the end
        return ops.min(ops.max(t, zero), size_t)

    start, end = bound(attrs.get("start"), zero), bound(attrs.get("end"), size_t)
    pos = _range_of(lw, size)
    offset = pos - start
    inside = ops.logical_and(ops.logical_and(ops.greater_equal(pos, start), ops.greater(end, pos)),
                             ops.equal(ops.mod(offset, lw.const(step, "int64")), zero))  # fmt: skip
    src_len = lw.scalar_tensor(lw.shape(src)[dim], "int64")
    row = ops.min(ops.max(ops.floor_div(offset, lw.const(step, "int64")), zero), src_len - lw.const(1, "int64"))
    taken = ops.gather(src, row, axis=dim)
    view = [1] * rank
    view[dim] = size
    return [ops.where(ops.reshape(inside, view), taken, x)]


def _masked_scatter(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """torch.masked_scatter: the k-th true position (row-major) takes the source's k-th element.
    A running count over the flattened mask gives each position its source index."""
    x = lw.tensor(node.inputs[0])
    shape = lw.shape(x)
    mask = ops.broadcast_to(lw.cast(lw.tensor(node.inputs[1]), "bool"), shape)
    flat_mask = ops.reshape(mask, [-1])
    source = ops.reshape(lw.cast(lw.tensor(node.inputs[2]), lw.tdtype(x)), [-1])
    count = ops.cumsum(ops.cast(flat_mask, adapter.dtype_of("int64")), axis=0)
    last = lw.scalar_tensor(source.shape[0], "int64") - lw.const(1, "int64")
    # clamped so a short source can never read out of bounds; the graph's AssertScalar (torch's
    # "features and tokens do not match") is what reports that case
    where_from = ops.min(ops.max(count - lw.const(1, "int64"), lw.const(0, "int64")), last)
    taken = ops.gather(source, where_from, axis=0)
    return [ops.reshape(ops.where(flat_mask, taken, ops.reshape(x, [-1])), shape)]


def _assert_scalar(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """MAX graphs cannot raise: the condition becomes a value, which MaxModel returns as an extra
    output and checks after every run (see max_model.run_time_checks)."""
    return [lw.cast(lw.tensor(node.inputs[0]), "bool")]


def _full(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    dtype = attrs.get("dtype", "float32")
    value = lw.const(attrs.get("value", 0.0), dtype)
    shape = list(attrs.get("shape", ()))
    return [ops.broadcast_to(value, shape) if shape else value]


def _full_like(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    dtype = attrs.get("dtype") or lw.tdtype(x)
    value = lw.const(attrs.get("value", 0.0), dtype)
    return [ops.broadcast_to(value, lw.shape(x)) if len(x.shape) else value]


def _constant_of_shape(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    shape = _const_ints(lw, node, 0)
    dtype = attrs.get("dtype", "float32")
    return [lw.const(np.full(shape, attrs.get("value", 0.0)), dtype)]


def _arange(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    dtype = attrs.get("dtype") or "int64"
    if len(node.inputs) == 3:
        values = [_const_ints(lw, node, i) for i in range(3)]
        start, end, step = (v[0] for v in values)
    else:
        start, end, step = attrs.get("start", 0), attrs.get("end"), attrs.get("step", 1)
    if all(_is_static(v) or isinstance(v, float) for v in (start, end, step)):
        s, e, st = (adapter.static_int(v) if _is_static(v) else v for v in (start, end, step))
        return [lw.const(np.arange(s, e, st), dtype)]
    if step != 1:
        raise MaxLoweringError(node.op, node.name, "arange with a symbolic bound and step != 1")
    out_dim = end if start == 0 else end - start
    r = ops.range(start, end, 1, out_dim=out_dim, dtype=adapter.dtype_of("int64"), device=lw.builder.device)  # fmt: skip
    return [lw.cast(r, dtype)]


def _flatten(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    shape = lw.shape(x)
    axis = norm_axis(attrs.get("axis", 1), len(shape)) if shape else 0
    lead = _product(shape[:axis])
    return [ops.reshape(x, [lead, -1])]


def _product(dims: list[Any]) -> Any:
    total: Any = 1
    for d in dims:
        total = total * d
    return total


def _shape(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    dims = lw.shape(x)[attrs.get("start", 0) : attrs.get("end")]
    if all(isinstance(d, int) for d in dims):
        return [lw.const(np.asarray(dims, dtype=np.int64), "int64")]
    return [lw.shape_tensor(dims)]


def _size(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    return [_product(lw.shape(x))]


def _sym_size(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    value = args[0]
    if isinstance(value, np.ndarray):
        return [int(value.shape[attrs.get("dim", 0)])]
    if not isinstance(value, adapter.TensorValue):
        raise MaxLoweringError(node.op, node.name, "SymSize of a runtime scalar")
    shape = lw.shape(value)
    return [shape[norm_axis(attrs.get("dim", 0), len(shape))]]


_DIM_FNS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
            "floordiv": operator.floordiv, "neg": operator.neg,
            # MAX's Dim has no %: a - (a // b) * b, Python's mod for the divisor > 0 that
            # Mamba's chunk padding (seq + (256 - seq % 256) % 256) uses; see _scalar
            "mod": lambda a, b: a - (a // b) * b}  # fmt: skip


def _scalar(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """Arithmetic on runtime scalars: python values where static, Dim algebra where symbolic."""
    fn = attrs.get("fn", "add")
    values = scalar_operands(args, attrs.get("a"), attrs.get("b"), attrs.get("args"))
    if any(isinstance(v, adapter.TensorValue) for v in values):
        return [_scalar_as_tensor(lw, node, fn, values)]  # a value read from a tensor
    values = [adapter.static_int(v) if adapter.is_dim(v) and _is_static(v) else v for v in values]
    if not any(adapter.is_dim(v) for v in values):
        return [SCALAR_FNS[fn](*values)]
    if fn in ("max", "min") and len(values) == 2 and 1 in values and fn == "max":
        return [next(v for v in values if v != 1)]  # max(seq, 1): symbolic dims are >= 1
    positive_divisor = fn != "mod" or (isinstance(values[1], int) and values[1] > 0)
    if fn not in _DIM_FNS or not positive_divisor or any(isinstance(v, float) for v in values):
        # no Dim algebra for it (a comparison, say): computed at run time as a 0-d tensor, which
        # serves a condition (AssertScalar, a where) but not a shape
        return [_scalar_as_tensor(lw, node, fn, values)]
    return [_DIM_FNS[fn](*values)]


_TENSOR_FNS = {
    "add": ops.add, "sub": ops.sub, "mul": ops.mul, "floordiv": ops.floor_div, "mod": ops.mod,
    "max": ops.max, "min": ops.min, "neg": ops.negate, "eq": ops.equal, "ne": ops.not_equal,
    "gt": ops.greater, "ge": ops.greater_equal, "lt": lambda a, b: ops.greater(b, a),
    "le": lambda a, b: ops.greater_equal(b, a), "and": ops.logical_and, "or": ops.logical_or,
    "not": ops.logical_not,
}


def _scalar_as_tensor(lw: Lowering, node: Node, fn: str, values: list[Any]) -> Any:
    """Scalar arithmetic whose operands are only known at run time, as 0-d tensors."""
    def as_tensor(v: Any, dtype: str) -> Any:
        if isinstance(v, adapter.TensorValue):
            return lw.cast(ops.reshape(v, []) if len(v.shape) else v, dtype)
        return lw.scalar_tensor(v, dtype)

    def common(vs: list[Any]) -> str:
        floats = any(isinstance(v, float) or (isinstance(v, adapter.TensorValue)
                                              and lw.tdtype(v).startswith(("float", "bfloat"))) for v in vs)  # fmt: skip
        return "float32" if floats else "int64"

    if fn == "ite":
        condition, if_true, if_false = values
        dtype = common([if_true, if_false])
        return ops.where(as_tensor(condition, "bool"), as_tensor(if_true, dtype), as_tensor(if_false, dtype))
    if fn not in _TENSOR_FNS:
        raise MaxLoweringError(node.op, node.name, f"run-time scalar arithmetic {fn!r}")
    dtype = "bool" if fn in ("and", "or", "not") else common(values)
    return _TENSOR_FNS[fn](*[as_tensor(v, dtype) for v in values])


def _scalar_to_tensor(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    value = args[0]
    dtype = attrs.get("dtype", "int64")
    if isinstance(value, np.ndarray):
        value = lw.tensor(node.inputs[0])
    if isinstance(value, adapter.TensorValue):
        return [lw.cast(value, dtype)]
    return [lw.scalar_tensor(value, dtype)]


def _tensor_to_scalar(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    name = node.inputs[0]
    if name in lw.graph.weights:
        return [np.asarray(lw.graph.weights[name]).item()]
    # a run-time value: kept as a 0-d tensor for conditions and arithmetic; a lowering that
    # needs it as a shape refuses it (MAX shapes cannot depend on data)
    t = lw.tensor(name)
    return [ops.reshape(t, []) if len(t.shape) else t]


def _tile(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    reps = attrs.get("repeats")
    if len(node.inputs) > 1 and node.inputs[1]:
        reps = _const_ints(lw, node, 1)
    reps = list(reps)
    while len(reps) < len(x.shape):
        reps.insert(0, 1)
    while len(x.shape) < len(reps):
        x = ops.unsqueeze(x, 0)
    return [ops.tile(x, reps)]


def _flip(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    shape = lw.shape(x)
    for axis in attrs.get("dims", ()):
        axis = norm_axis(axis, len(shape))
        size = shape[axis]
        if not isinstance(size, int):
            raise MaxLoweringError(node.op, node.name, "flip along a symbolic dim")
        x = ops.gather(x, lw.const(np.arange(size - 1, -1, -1), "int64"), axis=axis)
    return [x]


def _triangle(upper: bool) -> Any:
    def lower(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = lw.tensor(node.inputs[0])
        k = attrs.get("diagonal", 0)
        if len(node.inputs) > 1 and node.inputs[1]:
            k = _const_ints(lw, node, 1)[0]
        rows, cols = lw.shape(x)[-2:]
        r = _range_of(lw, rows)
        c = _range_of(lw, cols)
        diff = ops.unsqueeze(c, 0) - ops.unsqueeze(r, 1)  # col - row
        keep = ops.greater_equal(diff, lw.const(k, "int64")) if upper else ops.greater_equal(
            lw.const(k, "int64"), diff)  # fmt: skip
        return [ops.where(keep, x, lw.const(0, lw.tdtype(x)))]

    return lower


def _range_of(lw: Lowering, size: Any) -> Any:
    if isinstance(size, int):
        return lw.const(np.arange(size), "int64")
    return ops.range(0, size, 1, out_dim=size,
                     dtype=adapter.dtype_of("int64"), device=lw.builder.device)  # fmt: skip


def _pad(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    widths = [tuple(p) for p in attrs.get("pads", ())]
    mode = attrs.get("mode", "constant")
    if any(adapter.static_int(v) is None for pair in widths for v in pair):
        # MAX's pad takes ints (Mamba pads the sequence to a chunk multiple, seq-dependent)
        raise MaxLoweringError(node.op, node.name, "a pad by an amount known only at run time")
    widths = [(adapter.static_int(b), adapter.static_int(a)) for b, a in widths]
    for axis, (before, after) in enumerate(widths):  # negative pads crop
        if before < 0 or after < 0:
            end = -after if after < 0 else None
            x = slice_dim(lw, x, axis, max(-before, 0), end)
    widths = [(max(b, 0), max(a, 0)) for b, a in widths]
    if not any(b or a for b, a in widths):
        return [x]
    flat = [v for pair in widths for v in pair]
    if mode == "constant":
        # a Python scalar: MAX 26.7's pad wants a 0-d fill, and a graph constant comes out [1]
        value = attrs.get("value", 0.0)
        kind = "f" if lw.tdtype(x) == "bfloat16" else np.dtype(lw.tdtype(x)).kind
        value = float(value) if kind in "fc" else bool(value) if kind == "b" else int(value)
        return [ops.pad(x, flat, mode="constant", value=value)]
    if mode in ("reflect", "edge"):
        return [ops.pad(x, flat, mode=mode)]
    raise MaxLoweringError(node.op, node.name, f"pad mode {mode!r}")


def _cumsum(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    axis = attrs.get("axis", 0)
    if len(node.inputs) > 1 and node.inputs[1]:
        axis = _const_ints(lw, node, 1)[0]
    dtype = attrs.get("dtype")
    if dtype:
        x = lw.cast(x, dtype)
    if lw.tdtype(x) == "bool":
        x = lw.cast(x, "int64")
    return [ops.cumsum(x, axis=axis, exclusive=bool(attrs.get("exclusive")), reverse=bool(attrs.get("reverse")))]


def _one_hot(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    n = attrs.get("num_classes", -1)
    if n < 0:
        raise MaxLoweringError(node.op, node.name, "one_hot without num_classes is data-dependent")
    idx = ops.unsqueeze(lw.cast(lw.tensor(node.inputs[0]), "int64"), -1)
    eq = ops.equal(idx, lw.const(np.arange(n), "int64"))
    return [lw.cast(eq, attrs.get("dtype", "int64"))]


def _unfold(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """Tensor.unfold(dim, size, step) (PatchTST's patching): one gather of a static [windows,
    size] index grid along ``dim``, then the window axis moved last, as torch lays it out."""
    x = lw.tensor(node.inputs[0])
    rank = len(x.shape)
    dim = norm_axis(attrs.get("dim", 0), rank)
    size, step = int(attrs.get("size", 1)), int(attrs.get("step", 1))
    length = adapter.static_int(lw.shape(x)[dim])
    if length is None:
        raise MaxLoweringError(node.op, node.name, "unfold along a symbolic dim")
    count = (length - size) // step + 1
    if count < 1:
        raise MaxLoweringError(node.op, node.name, f"unfold of size {size} over {length}")
    grid = np.arange(count)[:, None] * step + np.arange(size)[None, :]
    windows = ops.gather(x, lw.const(grid, "int64"), axis=dim)  # [..., count, size, ...]
    perm = [a for a in range(rank + 1) if a != dim + 1] + [dim + 1]
    return [ops.permute(windows, perm)]


TABLE: dict[str, Any] = {
    "Reshape": _reshape, "Transpose": _transpose, "Expand": _expand, "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze, "Slice": _slice, "SliceOnnx": _slice_onnx, "Select": _select,
    "Concat": _concat, "Split": _split, "Take": _take, "Gather": _gather_elements,
    "GatherOnnx": _gather_elements, "Embedding": _embedding, "Index": _index,
    "Full": _full, "FullLike": _full_like, "ConstantOfShape": _constant_of_shape,
    "Arange": _arange, "Flatten": _flatten, "Shape": _shape, "Size": _size,
    "SymSize": _sym_size, "Scalar": _scalar, "ScalarToTensor": _scalar_to_tensor,
    "TensorToScalar": _tensor_to_scalar, "Tile": _tile, "Flip": _flip,
    "Triu": _triangle(True), "Tril": _triangle(False), "Pad": _pad, "CumSum": _cumsum,
    "OneHot": _one_hot, "SliceScatter": _slice_scatter, "MaskedScatter": _masked_scatter,
    "AssertScalar": _assert_scalar, "Unfold": _unfold,
}  # fmt: skip

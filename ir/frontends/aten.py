"""The ATen op table of the PyTorch frontend: how each op of an exported, core-ATen FX graph
becomes IR nodes.  ``pytorch.py`` exports the model and walks the graph; this module holds only
the lowerings.

``ATEN`` maps an op's name as the export spells it (``aten.add.Tensor``; symbolic-size
arithmetic as ``operator.mul``, ``torch.sym_max``, ``math.ceil``) to a lowering called as
``fn(cx, node, *node.args, **node.kwargs)``.  ``cx`` is the walk (``pytorch._Lowering``): its
``value``/``attr`` turn FX operands into IR value names and attributes (symbolic ones into
``$ref``s), ``emit`` adds the node's IR node (its first output takes the FX name), ``temp`` adds
a helper node, ``out_dtype`` gives the result's dtype.  A lowering returns the IR output names: a
list, one per output, ``""`` for an output the IR does not compute (reading it is an error).

To add an op: write its lowering here under ``@lowers("aten.<op>.<overload>", ...)``, onto an IR
op from ``ir/ops/`` (add the IR op there first if none fits).  An op missing from ``ATEN`` raises
``UnsupportedOp(op, model_name)``.  This module does not import ``pytorch.py`` at run time, so
the walk can import the table without a cycle.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConversionError, UnsupportedOp
from ..graph import ref

if TYPE_CHECKING:
    from .pytorch import _Lowering

Lowering = Callable[..., Any]
ATEN: dict[str, Lowering] = {}


def lowers(*names: str) -> Callable[[Lowering], Lowering]:
    def register(fn: Lowering) -> Lowering:
        for name in names:
            ATEN[name] = fn
        return fn

    return register


def _binary(op: str, swap: bool = False) -> Lowering:
    def lower(cx: _Lowering, node, a, b, *rest, **kwargs):
        alpha = kwargs.get("alpha", rest[0] if rest else 1)
        if swap:
            a, b = b, a
        dtype = cx.out_dtype(node)
        if alpha != 1:
            if cx.is_tensor(b):
                b = cx.temp(node, "Mul", [cx.value(b)], {"b": cx.attr(alpha)})
                b_is_value = True
            else:
                b, b_is_value = b * alpha, False
        else:
            b_is_value = cx.is_tensor(b)
            if b_is_value:
                b = cx.value(b)
        if cx.is_tensor(a):
            if b_is_value:
                return cx.emit(node, op, [cx.value(a), b], {"dtype": dtype})
            return cx.emit(node, op, [cx.value(a)], {"b": cx.attr(b), "dtype": dtype})
        if b_is_value:
            return cx.emit(node, op, [b], {"a": cx.attr(a), "dtype": dtype})
        raise ConversionError(f"{cx.model_name}: {node.target} with no tensor operand")

    return lower


for _aten, _op in {
    "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
    "minimum": "Min", "eq": "Equal", "ne": "NotEqual", "lt": "Less", "le": "LessEqual",
    "gt": "Greater", "ge": "GreaterEqual", "logical_and": "And", "logical_or": "Or",
    "logical_xor": "Xor", "bitwise_and": "BitwiseAnd", "bitwise_or": "BitwiseOr",
    "bitwise_xor": "BitwiseXor", "remainder": "Mod", "fmod": "Fmod", "floor_divide": "FloorDiv",
    "atan2": "Atan2",
}.items():  # fmt: skip
    lowers(*(f"aten.{_aten}.{v}" for v in ("Tensor", "Scalar", "Tensor_Scalar", "Tensor_Tensor",
                                           "Scalar_Tensor", "default")))(_binary(_op))  # fmt: skip
lowers("aten.rsub.Scalar", "aten.rsub.Tensor")(_binary("Sub", swap=True))


@lowers("aten.div.Tensor_mode", "aten.div.Scalar_mode")
def _div_mode(cx, node, a, b, rounding_mode=None):
    if rounding_mode is None:
        return _binary("Div")(cx, node, a, b)
    inputs, attrs = [cx.value(a)], {}
    if cx.is_tensor(b):
        inputs.append(cx.value(b))
    else:
        attrs["b"] = b
    if rounding_mode == "floor" and cx.out_dtype(node) not in ("float32", "float64", "float16"):
        return cx.emit(node, "FloorDiv", inputs, {**attrs, "dtype": cx.out_dtype(node)})
    quotient = cx.temp(node, "Div", inputs, {**attrs, "dtype": "float64"})
    fn = "Floor" if rounding_mode == "floor" else "Trunc"
    return cx.emit(node, fn, [quotient], {"dtype": cx.out_dtype(node)})


_UNARY = {
    "neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "rsqrt": "Rsqrt",
    "reciprocal": "Reciprocal", "sin": "Sin", "cos": "Cos", "tan": "Tan", "tanh": "Tanh",
    "sigmoid": "Sigmoid", "relu": "Relu", "erf": "Erf", "floor": "Floor", "ceil": "Ceil",
    "round": "Round", "trunc": "Trunc", "sign": "Sign", "isnan": "IsNaN", "isinf": "IsInf",
    "log1p": "Log1p", "expm1": "Expm1", "logical_not": "Not", "bitwise_not": "BitwiseNot",
    "asin": "Asin", "acos": "Acos", "atan": "Atan", "sinh": "Sinh", "cosh": "Cosh",
    "silu": "Silu", "asinh": "Asinh", "acosh": "Acosh", "atanh": "Atanh",
}  # fmt: skip


def _unary(op: str) -> Lowering:
    def lower(cx, node, x, *args, **kwargs):
        if op == "BitwiseNot" and cx.out_dtype(node) == "bool":
            return cx.emit(node, "Not", [cx.value(x)])
        return cx.emit(node, op, [cx.value(x)], {"dtype": cx.out_dtype(node)})

    return lower


for _aten, _op in _UNARY.items():
    lowers(f"aten.{_aten}.default")(_unary(_op))


def _log_base(base: float) -> Lowering:
    """log2 / log10 as ln(x) times a constant: no new IR op for what two existing ones say."""

    def lower(cx, node, x):
        natural = cx.temp(node, "Log", [cx.value(x)], {"dtype": cx.out_dtype(node)})
        return cx.emit(node, "Mul", [natural], {"b": 1.0 / math.log(base)})

    return lower


lowers("aten.log2.default")(_log_base(2.0))
lowers("aten.log10.default")(_log_base(10.0))


@lowers("aten.gelu.default")
def _gelu(cx, node, x, approximate="none"):
    return cx.emit(node, "Gelu", [cx.value(x)], {"approximate": approximate})


@lowers("aten.clamp.default", "aten.hardtanh.default", "aten.clamp.Tensor")
def _clamp(cx, node, x, low=None, high=None):
    if cx.is_tensor(low) or cx.is_tensor(high):
        inputs = [cx.value(x), cx.value(low) if low is not None else "",
                  cx.value(high) if high is not None else ""]  # fmt: skip
        return cx.emit(node, "Clip", inputs)
    if node.target.__name__.startswith("hardtanh"):
        low, high = (-1.0 if low is None else low), (1.0 if high is None else high)
    return cx.emit(node, "Clip", [cx.value(x)], {"min": cx.attr(low), "max": cx.attr(high)})


@lowers("aten.clamp_min.default")
def _clamp_min(cx, node, x, low):
    return cx.emit(node, "Clip", [cx.value(x)], {"min": cx.attr(low)})


@lowers("aten.clamp_max.default")
def _clamp_max(cx, node, x, high):
    return cx.emit(node, "Clip", [cx.value(x)], {"max": cx.attr(high)})


@lowers("aten.leaky_relu.default")
def _leaky_relu(cx, node, x, slope=0.01):
    return cx.emit(node, "LeakyRelu", [cx.value(x)], {"alpha": slope})


@lowers("aten.elu.default")
def _elu(cx, node, x, alpha=1.0, scale=1.0, input_scale=1.0):
    if scale != 1.0 or input_scale != 1.0:
        raise UnsupportedOp("aten.elu.default(scale)", cx.model_name)
    return cx.emit(node, "Elu", [cx.value(x)], {"alpha": alpha})


@lowers("aten.hardsigmoid.default")
def _hardsigmoid(cx, node, x):
    return cx.emit(node, "HardSigmoid", [cx.value(x)], {"alpha": 1 / 6, "beta": 0.5})


@lowers("aten.hardswish.default")
def _hardswish(cx, node, x):
    return cx.emit(node, "HardSwish", [cx.value(x)])


@lowers("aten.where.self", "aten.where.ScalarSelf", "aten.where.ScalarOther", "aten.where.Scalar")
def _where(cx, node, cond, a, b):
    inputs, attrs = [cx.value(cond)], {"dtype": cx.out_dtype(node)}
    if cx.is_tensor(a):
        inputs.append(cx.value(a))
    else:
        attrs["a"] = cx.attr(a)
    if cx.is_tensor(b):
        inputs.append(cx.value(b))
    else:
        attrs["b"] = cx.attr(b)
    return cx.emit(node, "Where", inputs, attrs)


@lowers("aten._to_copy.default", "aten.to.dtype", "aten._to_dtype.default")
def _to_copy(cx, node, x, *args, **kwargs):
    dtype = cx.out_dtype(node)
    return cx.emit(node, "Cast", [cx.value(x)], {"to": dtype})


@lowers("aten.clone.default", "aten.alias.default", "aten.detach.default",
        "aten.lift_fresh_copy.default", "aten.contiguous.default")  # fmt: skip
def _identity(cx, node, x, *args, **kwargs):
    return cx.emit(node, "Identity", [cx.value(x)])


@lowers("aten.copy.default")
def _copy(cx, node, dst, src, non_blocking=False):
    shape = [cx.attr(d) for d in _shape_args(cx, dst)]
    cast = cx.temp(node, "Cast", [cx.value(src)], {"to": cx.out_dtype(node)})
    return cx.emit(node, "Expand", [cast], {"shape": shape})


def _shape_args(cx, x) -> list[Any]:
    """Shape of an fx tensor as attribute entries; symbolic dims become SymSize refs."""
    shape = []
    for axis, size in enumerate(x.meta["val"].shape):
        if isinstance(size, int):
            shape.append(size)
        else:
            name = cx.graph.fresh_name(f"{x.name}_size{axis}")
            cx.graph.add_node("SymSize", [cx.value(x)], attrs={"dim": axis}, name=name, outputs=[name])
            shape.append(ref(name))
    return shape


@lowers("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default",
        "aten.view_copy.default")  # fmt: skip
def _view(cx, node, x, shape):
    return cx.emit(node, "Reshape", [cx.value(x)], {"shape": cx.attr(list(shape))})


@lowers("aten.permute.default", "aten.permute_copy.default")
def _permute(cx, node, x, dims):
    rank = len(dims)
    return cx.emit(node, "Transpose", [cx.value(x)], {"perm": [d % rank for d in dims]})


@lowers("aten.t.default", "aten.numpy_T.default")
def _t(cx, node, x):
    return cx.emit(node, "Transpose", [cx.value(x)], {"perm": None})


@lowers("aten.transpose.int")
def _transpose(cx, node, x, a, b):
    rank = x.meta["val"].dim()
    perm = list(range(rank))
    perm[a % rank], perm[b % rank] = perm[b % rank], perm[a % rank]
    return cx.emit(node, "Transpose", [cx.value(x)], {"perm": perm})


@lowers("aten.expand.default", "aten.expand_copy.default")
def _expand(cx, node, x, shape, implicit=False):
    return cx.emit(node, "Expand", [cx.value(x)], {"shape": cx.attr(list(shape))})


@lowers("aten.unsqueeze.default", "aten.unsqueeze_copy.default")
def _unsqueeze(cx, node, x, dim):
    return cx.emit(node, "Unsqueeze", [cx.value(x)], {"axes": [dim]})


@lowers("aten.squeeze.dims", "aten.squeeze.dim", "aten.squeeze.default", "aten.squeeze_copy.dims")
def _squeeze(cx, node, x, dims=None):
    if isinstance(dims, int):
        dims = [dims]
    return cx.emit(node, "Squeeze", [cx.value(x)], {"axes": list(dims) if dims is not None else None})


@lowers("aten.slice.Tensor", "aten.slice_copy.Tensor")
def _slice(cx, node, x, dim=0, start=None, end=None, step=1):
    if end is not None and not hasattr(end, "meta") and end >= 2**62:
        end = None
    attrs = {"dim": dim, "start": cx.attr(start), "end": cx.attr(end), "step": cx.attr(step)}
    return cx.emit(node, "Slice", [cx.value(x)], attrs)


@lowers("aten.select.int", "aten.select_copy.int")
def _select(cx, node, x, dim, index):
    return cx.emit(node, "Select", [cx.value(x)], {"dim": dim, "index": cx.attr(index)})


@lowers("aten.cat.default", "aten.concat.default")
def _cat(cx, node, tensors, dim=0):
    return cx.emit(node, "Concat", [cx.value(t) for t in tensors], {"axis": dim})


@lowers("aten.stack.default")
def _stack(cx, node, tensors, dim=0):
    rank = tensors[0].meta["val"].dim() + 1
    parts = [cx.temp(node, "Unsqueeze", [cx.value(t)], {"axes": [dim % rank]}) for t in tensors]
    return cx.emit(node, "Concat", parts, {"axis": dim % rank})


@lowers("aten.split_with_sizes.default", "aten.split_with_sizes_copy.default")
def _split_sizes(cx, node, x, sizes, dim=0):
    return cx.emit(node, "Split", [cx.value(x)], {"axis": dim, "sizes": cx.attr(list(sizes))},
                   num_outputs=len(sizes))  # fmt: skip


@lowers("aten.split.Tensor", "aten.split_copy.Tensor")
def _split(cx, node, x, size, dim=0):
    parts = node.meta["val"]
    sizes = [p.shape[dim] for p in parts]
    if not all(isinstance(s, int) for s in sizes):
        raise UnsupportedOp("aten.split.Tensor(symbolic)", cx.model_name)
    return cx.emit(node, "Split", [cx.value(x)], {"axis": dim, "sizes": sizes}, num_outputs=len(sizes))


@lowers("aten.unbind.int")
def _unbind(cx, node, x, dim=0):
    count = x.meta["val"].shape[dim]
    parts = cx.emit(node, "Split", [cx.value(x)], {"axis": dim, "sizes": [1] * count}, num_outputs=count)
    return [cx.temp(node, "Squeeze", [p], {"axes": [dim]}) for p in parts]


@lowers("aten.gather.default")
def _gather(cx, node, x, dim, index, sparse_grad=False):
    return cx.emit(node, "Gather", [cx.value(x), cx.value(index)], {"dim": dim})


@lowers("aten.repeat_interleave.Tensor")
def _repeat_index(cx, node, repeats, output_size=None):
    return cx.emit(node, "RepeatIndex", [cx.value(repeats)])


@lowers("aten.nonzero.default")
def _nonzero(cx, node, x):
    return cx.emit(node, "NonZero", [cx.value(x)])


@lowers("aten._embedding_bag.default", "aten._embedding_bag_forward_only.default")
def _embedding_bag(cx, node, weight, indices, offsets, scale_grad_by_freq=False, mode=0, sparse=False,
                   per_sample_weights=None, include_last_offset=False, padding_idx=-1):  # fmt: skip
    inputs = [cx.value(weight), cx.value(indices), cx.value(offsets)]
    inputs += [cx.value(per_sample_weights)] if per_sample_weights is not None else []
    attrs = {"mode": int(mode), "include_last_offset": bool(include_last_offset), "padding_idx": int(padding_idx)}
    return cx.emit(node, "EmbeddingBag", inputs, attrs, num_outputs=4)


@lowers("aten.unique_consecutive.default")
def _unique_consecutive(cx, node, x, return_inverse=False, return_counts=False, dim=None):
    if dim is not None:
        raise UnsupportedOp("aten.unique_consecutive(dim)", cx.model_name)
    return cx.emit(node, "UniqueConsecutive", [cx.value(x)], num_outputs=3)


@lowers("aten.index_select.default")
def _index_select(cx, node, x, dim, index):
    return cx.emit(node, "Take", [cx.value(x), cx.value(index)], {"axis": dim})


@lowers("aten.index.Tensor", "aten._unsafe_index.Tensor")
def _index(cx, node, x, indices):
    positions = [i for i, idx in enumerate(indices) if idx is not None]
    inputs = [cx.value(x)] + [cx.value(indices[i]) for i in positions]
    return cx.emit(node, "Index", inputs, {"positions": positions})


@lowers("aten.index_put.default", "aten._unsafe_index_put.default")
def _index_put(cx, node, x, indices, values, accumulate=False):
    positions = [i for i, idx in enumerate(indices) if idx is not None]
    inputs = [cx.value(x)] + [cx.value(indices[i]) for i in positions] + [cx.value(values)]
    return cx.emit(node, "IndexPut", inputs, {"positions": positions, "accumulate": accumulate})


@lowers("aten.scatter.src", "aten.scatter.value", "aten.scatter_add.default",
        "aten.scatter.reduce", "aten.scatter.value_reduce")  # fmt: skip
def _scatter(cx, node, x, dim, index, src, reduce=None):
    reduce = "add" if "scatter_add" in str(node.target) else reduce
    if cx.is_tensor(src):
        return cx.emit(node, "Scatter", [cx.value(x), cx.value(index), cx.value(src)],
                       {"dim": dim, "reduce": reduce})  # fmt: skip
    full = cx.temp(node, "FullLike", [cx.value(index)], {"value": src, "dtype": cx.out_dtype(node)})
    return cx.emit(node, "Scatter", [cx.value(x), cx.value(index), full], {"dim": dim, "reduce": reduce})


@lowers("aten.embedding.default")
def _embedding(cx, node, weight, ids, padding_idx=-1, scale_grad=False, sparse=False):
    return cx.emit(node, "Embedding", [cx.value(weight), cx.value(ids)])


@lowers("aten.full.default", "aten.full.names")
def _full(cx, node, size, value, **kwargs):
    return cx.emit(node, "Full", [], {"shape": cx.attr(list(size)), "value": cx.attr(value),
                                      "dtype": cx.out_dtype(node)})  # fmt: skip


@lowers("aten.zeros.default", "aten.ones.default", "aten.empty.memory_format")
def _zeros(cx, node, size, **kwargs):
    value = 1 if "ones" in str(node.target) else 0
    return cx.emit(node, "Full", [], {"shape": cx.attr(list(size)), "value": value,
                                      "dtype": cx.out_dtype(node)})  # fmt: skip


@lowers("aten.scalar_tensor.default")
def _scalar_tensor(cx, node, value, **kwargs):
    return cx.emit(node, "Full", [], {"shape": [], "value": cx.attr(value), "dtype": cx.out_dtype(node)})


@lowers("aten.full_like.default", "aten.zeros_like.default", "aten.ones_like.default",
        "aten.empty_like.default")  # fmt: skip
def _full_like(cx, node, x, value=None, **kwargs):
    target = str(node.target)
    if value is None:
        value = 1 if "ones" in target else 0
    return cx.emit(node, "FullLike", [cx.value(x)], {"value": cx.attr(value), "dtype": cx.out_dtype(node)})


@lowers("aten.arange.start_step", "aten.arange.default", "aten.arange.start")
def _arange(cx, node, *args, **kwargs):
    numbers = [a for a in args]
    if len(numbers) == 1:
        start, end, step = 0, numbers[0], 1
    elif len(numbers) == 2:
        start, end, step = numbers[0], numbers[1], 1
    else:
        start, end, step = numbers[:3]
    attrs = {"start": cx.attr(start), "end": cx.attr(end), "step": cx.attr(step),
             "dtype": cx.out_dtype(node)}  # fmt: skip
    return cx.emit(node, "Arange", [], attrs)


@lowers("aten.mm.default", "aten.bmm.default", "aten.matmul.default")
def _mm(cx, node, a, b):
    return cx.emit(node, "MatMul", [cx.value(a), cx.value(b)])


@lowers("aten.addmm.default")
def _addmm(cx, node, bias, a, b, beta=1, alpha=1):
    product = cx.temp(node, "MatMul", [cx.value(a), cx.value(b)])
    if alpha != 1:
        product = cx.temp(node, "Mul", [product], {"b": alpha})
    bias_value = cx.value(bias)
    if beta != 1:
        bias_value = cx.temp(node, "Mul", [bias_value], {"b": beta})
    return cx.emit(node, "Add", [product, bias_value])


@lowers("aten._softmax.default", "aten.softmax.int")
def _softmax(cx, node, x, dim, half_to_float=False):
    return cx.emit(node, "Softmax", [cx.value(x)], {"axis": dim})


@lowers("aten._log_softmax.default", "aten.log_softmax.int")
def _log_softmax(cx, node, x, dim, half_to_float=False):
    return cx.emit(node, "LogSoftmax", [cx.value(x)], {"axis": dim})


@lowers("aten.native_layer_norm.default")
def _layer_norm(cx, node, x, normalized_shape, weight, bias, eps):
    inputs = [cx.value(x), cx.value(weight) if weight is not None else "",
              cx.value(bias) if bias is not None else ""]  # fmt: skip
    outs = cx.emit(node, "LayerNorm", inputs, {"axis": -len(normalized_shape), "eps": eps}, num_outputs=3)
    return outs


@lowers("aten.native_group_norm.default")
def _group_norm(cx, node, x, weight, bias, n, c, hw, groups, eps):
    inputs = [cx.value(x), cx.value(weight) if weight is not None else "",
              cx.value(bias) if bias is not None else ""]  # fmt: skip
    out = cx.emit(node, "GroupNorm", inputs, {"groups": groups, "eps": eps})
    return [out[0], "", ""]


@lowers("aten._native_batch_norm_legit_no_training.default")
def _batch_norm(cx, node, x, weight, bias, mean, var, momentum, eps):
    inputs = [cx.value(x), cx.value(weight) if weight is not None else "",
              cx.value(bias) if bias is not None else "", cx.value(mean), cx.value(var)]  # fmt: skip
    out = cx.emit(node, "BatchNorm", inputs, {"eps": eps})
    return [out[0], "", ""]


def _reduction(op: str) -> Lowering:
    def lower(cx, node, x, dims=None, keepdim=False, **kwargs):
        if isinstance(dims, int):
            dims = [dims]
        attrs = {"axes": list(dims) if dims else None, "keepdims": bool(keepdim)}
        if op in ("ReduceSum", "ReduceMean", "ReduceProd") or kwargs.get("dtype") is not None:
            attrs["dtype"] = cx.out_dtype(node)
        return cx.emit(node, op, [cx.value(x)], attrs)

    return lower


for _name, _op in {"mean": "ReduceMean", "sum": "ReduceSum", "amax": "ReduceMax",
                   "amin": "ReduceMin", "prod": "ReduceProd", "any": "ReduceAny",
                   "all": "ReduceAll"}.items():  # fmt: skip
    _variants = ("dim", "dims", "default", "dim_IntList", "int", "dim_int")
    lowers(*(f"aten.{_name}.{v}" for v in _variants))(_reduction(_op))


@lowers("aten.max.default", "aten.min.default")
def _max_all(cx, node, x):
    op = "ReduceMax" if "max" in str(node.target) else "ReduceMin"
    return cx.emit(node, op, [cx.value(x)], {"axes": None, "keepdims": False})


@lowers("aten.max.dim", "aten.min.dim")
def _max_dim(cx, node, x, dim, keepdim=False):
    is_max = "max" in str(node.target)
    values = cx.emit(node, "ReduceMax" if is_max else "ReduceMin", [cx.value(x)],
                     {"axes": [dim], "keepdims": keepdim})[0]  # fmt: skip
    indices = cx.temp(node, "ArgMax" if is_max else "ArgMin", [cx.value(x)],
                      {"axis": dim, "keepdims": keepdim})  # fmt: skip
    return [values, indices]


@lowers("aten.argmax.default", "aten.argmin.default")
def _argmax(cx, node, x, dim=None, keepdim=False):
    op = "ArgMax" if "argmax" in str(node.target) else "ArgMin"
    return cx.emit(node, op, [cx.value(x)], {"axis": dim, "keepdims": keepdim})


@lowers("aten.var.correction", "aten.var.dim")
def _var(cx, node, x, dims=None, correction=None, keepdim=False, **kwargs):
    if "unbiased" in kwargs:
        correction = 1 if kwargs["unbiased"] else 0
    return cx.emit(node, "Var", [cx.value(x)], {"axes": dims, "correction": 1 if correction is None
                                                 else correction, "keepdims": keepdim})  # fmt: skip


@lowers("aten.topk.default")
def _topk(cx, node, x, k, dim=-1, largest=True, sorted=True):
    return cx.emit(node, "TopK", [cx.value(x)], {"k": cx.attr(k), "axis": dim, "largest": largest},
                   num_outputs=2)  # fmt: skip


@lowers("aten.cumsum.default")
def _cumsum(cx, node, x, dim, dtype=None):
    return cx.emit(node, "CumSum", [cx.value(x)], {"axis": dim, "dtype": cx.out_dtype(node)})


@lowers("aten.tril.default", "aten.triu.default")
def _tri(cx, node, x, diagonal=0):
    op = "Tril" if "tril" in str(node.target) else "Triu"
    return cx.emit(node, op, [cx.value(x)], {"diagonal": diagonal})


@lowers("aten.flip.default")
def _flip(cx, node, x, dims):
    return cx.emit(node, "Flip", [cx.value(x)], {"dims": list(dims)})


@lowers("aten.repeat.default")
def _repeat(cx, node, x, repeats):
    return cx.emit(node, "Tile", [cx.value(x)], {"repeats": cx.attr(list(repeats))})


@lowers("aten.constant_pad_nd.default")
def _pad(cx, node, x, pad, value=0):
    rank = x.meta["val"].dim()
    pairs = [(0, 0)] * rank
    for i in range(len(pad) // 2):
        # a symbolic amount (Mamba pads the sequence to a chunk multiple) is a runtime scalar
        pairs[rank - 1 - i] = (cx.attr(pad[2 * i]), cx.attr(pad[2 * i + 1]))
    return cx.emit(node, "Pad", [cx.value(x)], {"pads": [list(p) for p in pairs], "value": cx.attr(value)})


@lowers("aten.convolution.default")
def _convolution(cx, node, x, w, b, stride, padding, dilation, transposed, output_padding, groups):
    inputs = [cx.value(x), cx.value(w)] + ([cx.value(b)] if b is not None else [])
    attrs = {"stride": list(stride), "padding": list(padding), "dilation": list(dilation),
             "groups": groups}  # fmt: skip
    if transposed:
        attrs["output_padding"] = list(output_padding)
        return cx.emit(node, "ConvTranspose", inputs, attrs)
    return cx.emit(node, "Conv", inputs, attrs)


@lowers("aten.max_pool2d_with_indices.default", "aten.max_pool1d_with_indices.default",
        "aten.max_pool3d_with_indices.default")  # fmt: skip
def _max_pool(cx, node, x, kernel, stride=None, padding=0, dilation=1, ceil_mode=False):
    out = cx.emit(node, "MaxPool", [cx.value(x)], {"kernel": list(kernel), "stride": list(stride or kernel),
                                                   "padding": _listify(padding), "dilation": _listify(dilation),
                                                   "ceil_mode": ceil_mode})  # fmt: skip
    return [out[0], ""]


@lowers("aten.avg_pool2d.default", "aten.avg_pool1d.default", "aten.avg_pool3d.default")
def _avg_pool(cx, node, x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
              divisor_override=None):  # fmt: skip
    return cx.emit(node, "AvgPool", [cx.value(x)], {
        "kernel": list(kernel), "stride": list(stride or kernel), "padding": _listify(padding),
        "ceil_mode": ceil_mode, "count_include_pad": count_include_pad,
        "divisor_override": divisor_override})  # fmt: skip


@lowers("aten._adaptive_avg_pool2d.default", "aten._adaptive_avg_pool1d.default",
        "aten.adaptive_avg_pool1d.default", "aten._adaptive_avg_pool3d.default")  # fmt: skip
def _adaptive_avg_pool(cx, node, x, output_size):
    return cx.emit(node, "AdaptiveAvgPool", [cx.value(x)], {"output_size": list(output_size)})


def _listify(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


@lowers("aten.sym_size.int")
def _sym_size(cx, node, x, dim):
    return cx.emit(node, "SymSize", [cx.value(x)], {"dim": dim})


@lowers("aten.sym_numel.default")
def _sym_numel(cx, node, x):
    # the element count as a scalar, as sym_size gives one dim (Inkling2's patch count)
    return cx.emit(node, "TensorToScalar", [cx.temp(node, "Size", [cx.value(x)])])


@lowers("aten._local_scalar_dense.default", "aten.item.default")
def _item(cx, node, x):
    return cx.emit(node, "TensorToScalar", [cx.value(x)])


def _scalar_op(fn: str) -> Lowering:
    def lower(cx, node, *args):
        inputs, attrs = [], {"fn": fn}
        if len(args) == 2:
            a, b = args
            if hasattr(a, "meta"):
                inputs.append(cx.value(a))
            else:
                attrs["a"] = a
            if hasattr(b, "meta"):
                inputs.append(cx.value(b))
            else:
                attrs["b"] = b
        elif all(hasattr(a, "meta") for a in args):
            inputs = [cx.value(a) for a in args]
        else:  # constants among three or more operands (sym_ite(cond, 1, 0)): all in order
            attrs["args"] = [cx.attr(a) for a in args]
        return cx.emit(node, "Scalar", inputs, attrs)

    return lower


for _pyname, _fn in {"mul": "mul", "add": "add", "sub": "sub", "floordiv": "floordiv",
                     "truediv": "truediv", "mod": "mod", "pow": "pow", "neg": "neg", "eq": "eq",
                     "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge",
                     "and_": "and", "or_": "or"}.items():  # fmt: skip
    ATEN[f"operator.{_pyname}"] = _scalar_op(_fn)
for _pyname, _fn in {"sym_float": "float", "sym_int": "int", "sym_max": "max", "sym_min": "min",
                     "sym_not": "not", "sym_sqrt": "sqrt", "sym_ite": "ite"}.items():  # fmt: skip
    ATEN[f"torch.{_pyname}"] = _scalar_op(_fn)
ATEN["math.ceil"] = _scalar_op("ceil")
ATEN["math.floor"] = _scalar_op("floor")
ATEN["aten.sym_float.default"] = _scalar_op("float")


# -- lowerings added for registry coverage (sorting, scatters, resizing, norms) ------------------
@lowers("aten.sort.default", "aten.sort.stable")
def _sort(cx, node, x, *args, **kwargs):
    if "aten.sort.stable" in str(node.target):
        dim, descending = kwargs.get("dim", -1), kwargs.get("descending", False)
    else:
        dim = args[0] if args else kwargs.get("dim", -1)
        descending = args[1] if len(args) > 1 else kwargs.get("descending", False)
    return cx.emit(node, "Sort", [cx.value(x)], {"axis": dim, "descending": bool(descending)},
                   num_outputs=2)  # fmt: skip


@lowers("aten.slice_scatter.default")
def _slice_scatter(cx, node, x, src, dim=0, start=None, end=None, step=1):
    if end is not None and not hasattr(end, "meta") and end >= 2**62:
        end = None
    attrs = {"dim": dim, "start": cx.attr(start), "end": cx.attr(end), "step": cx.attr(step)}
    return cx.emit(node, "SliceScatter", [cx.value(x), cx.value(src)], attrs)


@lowers("aten.masked_scatter.default")
def _masked_scatter(cx, node, x, mask, source):
    return cx.emit(node, "MaskedScatter", [cx.value(x), cx.value(mask), cx.value(source)])


def _resize_lowering(mode: str, has_align: bool, vec: bool, antialias: bool = False) -> Lowering:
    """aten.upsample_{nearest,linear,bilinear,trilinear}{1,2,3}d in their .vec and .default
    forms, and the antialiased _upsample_{bilinear,bicubic}2d_aa -> Resize (torch's
    source-index rules, see ir/ops/extended.py)."""

    def lower(cx, node, x, output_size, *rest):
        rest = list(rest)
        align = bool(rest.pop(0)) if has_align and rest else False
        if vec:
            scales = rest[0] if rest else None
        else:
            scales = [s for s in rest if s is not None] or None
        attrs = {"size": cx.attr(list(output_size)) if output_size is not None else None,
                 "scales": list(scales) if scales else None, "mode": mode,
                 "align_corners": align}  # fmt: skip
        if antialias:
            attrs["antialias"] = True
        return cx.emit(node, "Resize", [cx.value(x)], attrs)

    return lower


for _rank in ("1d", "2d", "3d"):
    lowers(f"aten.upsample_nearest{_rank}.vec")(_resize_lowering("nearest", False, True))
    lowers(f"aten.upsample_nearest{_rank}.default")(_resize_lowering("nearest", False, False))
for _name in ("upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d"):
    lowers(f"aten.{_name}.vec")(_resize_lowering("linear", True, True))
    lowers(f"aten.{_name}.default")(_resize_lowering("linear", True, False))
for _name, _mode in (("bilinear", "linear"), ("bicubic", "cubic")):
    for _form, _vec in (("vec", True), ("default", False)):
        lowers(f"aten._upsample_{_name}2d_aa.{_form}")(_resize_lowering(_mode, True, _vec, True))


@lowers("aten.linalg_vector_norm.default")
def _vector_norm(cx, node, x, ord=2, dim=None, keepdim=False, dtype=None):
    axes = [dim] if isinstance(dim, int) else (list(dim) if dim else None)
    attrs = {"axes": axes, "keepdims": bool(keepdim)}
    if ord == 2:
        return cx.emit(node, "ReduceL2", [cx.value(x)], attrs)
    if ord == 1:
        return cx.emit(node, "ReduceL1", [cx.value(x)], attrs)
    if ord == float("inf"):
        return cx.emit(node, "ReduceMax", [cx.temp(node, "Abs", [cx.value(x)])], attrs)
    raise UnsupportedOp(f"aten.linalg_vector_norm.default(ord={ord})", cx.model_name)


@lowers("aten._is_all_true.default", "aten._is_any_true.default")
def _is_all_true(cx, node, x):
    op = "ReduceAll" if "all" in str(node.target) else "ReduceAny"
    return cx.emit(node, op, [cx.value(x)], {"axes": None, "keepdims": False})


@lowers("aten._native_batch_norm_legit.no_stats", "aten._native_batch_norm_legit.default",
        "aten._native_batch_norm_legit_functional.default")  # fmt: skip
def _batch_norm_batch_stats(cx, node, x, weight, bias, *rest):
    """Batch norm over the batch's own statistics (training=True, or no running stats)."""
    if "no_stats" not in str(node.target):
        running_mean, running_var, training = rest[0], rest[1], rest[2]
        if not training:  # eval with running statistics: the ordinary op
            return _batch_norm(cx, node, x, weight, bias, running_mean, running_var, rest[3], rest[4])
        if "functional" in str(node.target):
            raise UnsupportedOp(str(node.target), cx.model_name, "updates running statistics")
    eps = rest[-1]
    rank = x.meta["val"].dim()
    axes = [0] + list(range(2, rank))
    channel_shape = [1, -1] + [1] * (rank - 2)
    mean = cx.temp(node, "ReduceMean", [cx.value(x)], {"axes": axes, "keepdims": True})
    var = cx.temp(node, "Var", [cx.value(x)], {"axes": axes, "correction": 0, "keepdims": True})
    rstd = cx.temp(node, "Rsqrt", [cx.temp(node, "Add", [var], {"b": eps})])
    y = cx.temp(node, "Mul", [cx.temp(node, "Sub", [cx.value(x), mean]), rstd])
    if weight is not None:
        y = cx.temp(node, "Mul", [y, cx.temp(node, "Reshape", [cx.value(weight)], {"shape": channel_shape})])
    out = cx.emit(node, "Add" if bias is not None else "Identity",
                  [y] + ([cx.temp(node, "Reshape", [cx.value(bias)], {"shape": channel_shape})]
                         if bias is not None else []))[0]  # fmt: skip
    return [out, "", ""]


@lowers("aten.histc.default")
def _histc(cx, node, x, bins=100, min=0, max=0):  # noqa: A002
    return cx.emit(node, "Histc", [cx.value(x)], {"bins": bins, "min": cx.attr(min), "max": cx.attr(max)})


@lowers("transformers.grouped_mm_fallback.default")
def _grouped_mm_fallback(cx, node, x, weight, offs):
    return cx.emit(node, "GroupedMatMul", [cx.value(x), cx.value(weight), cx.value(offs)])


@lowers("aten._grouped_mm.default")
def _grouped_mm(cx, node, x, weight, offs=None, bias=None, out_dtype=None):
    if offs is None or bias is not None or x.meta["val"].dim() != 2 or weight.meta["val"].dim() != 3:
        raise UnsupportedOp("aten._grouped_mm.default", cx.model_name, "only 2-D x 3-D with offsets")
    return cx.emit(node, "GroupedMatMul", [cx.value(x), cx.value(weight), cx.value(offs)])


@lowers("aten.empty_permuted.default", "aten.empty_strided.default", "aten.new_empty.default",
        "aten.new_empty_strided.default", "aten.new_zeros.default")  # fmt: skip
def _empty_like_layout(cx, node, *args, **kwargs):
    """Uninitialised (or zero) tensors of a given size; the layout/strides do not matter to
    values, and zeros stand in for uninitialised memory the model overwrites."""
    size = args[1] if "new_" in str(node.target) else args[0]
    return cx.emit(node, "Full", [], {"shape": cx.attr(list(size)), "value": 0, "dtype": cx.out_dtype(node)})


@lowers("aten.bucketize.Tensor")
def _bucketize(cx, node, x, boundaries, out_int32=False, right=False):
    if boundaries.meta["val"].dim() != 1:
        raise UnsupportedOp("aten.bucketize.Tensor", cx.model_name, "boundaries must be 1-D")
    return cx.emit(node, "Bucketize", [cx.value(x), cx.value(boundaries)],
                   {"right": bool(right), "out_int32": bool(out_int32)})  # fmt: skip


@lowers("aten.grid_sampler_2d.default")
def _grid_sampler_2d(cx, node, x, grid, interpolation_mode, padding_mode, align_corners):
    modes, paddings = {0: "bilinear", 1: "nearest", 2: "bicubic"}, {0: "zeros", 1: "border"}
    if interpolation_mode not in modes or padding_mode not in paddings:
        raise UnsupportedOp("aten.grid_sampler_2d.default", cx.model_name,
                            f"mode {interpolation_mode}, padding {padding_mode}")  # fmt: skip
    attrs = {"mode": modes[interpolation_mode], "padding_mode": paddings[padding_mode],
             "align_corners": bool(align_corners)}  # fmt: skip
    return cx.emit(node, "GridSample", [cx.value(x), cx.value(grid)], attrs)


@lowers("aten._assert_scalar.default")
def _assert_scalar(cx, node, condition, message=""):
    if not hasattr(condition, "meta"):  # decided while tracing
        if not condition:
            raise ConversionError(f"{cx.model_name}: the export proved false: {message}")
        return []
    return cx.emit(node, "AssertScalar", [cx.value(condition)], {"msg": str(message)})


@lowers("aten.unfold.default")
def _unfold(cx, node, x, dim, size, step):
    return cx.emit(node, "Unfold", [cx.value(x)], {"dim": dim, "size": cx.attr(size), "step": cx.attr(step)})


@lowers("aten.erfinv.default")
def _erfinv(cx, node, x):
    return cx.emit(node, "Erfinv", [cx.value(x)])


@lowers("aten.cummax.default", "aten.cummin.default")
def _cummax(cx, node, x, dim):
    op = "CumMax" if "cummax" in str(node.target) else "CumMin"
    return cx.emit(node, op, [cx.value(x)], {"axis": dim}, num_outputs=2)


@lowers("aten.as_strided.default", "aten.as_strided_copy.default")
def _as_strided(cx, node, x, size, stride, storage_offset=None):
    attrs = {"size": cx.attr(list(size)), "stride": cx.attr(list(stride)), "offset": cx.attr(storage_offset or 0)}
    return cx.emit(node, "AsStrided", [cx.value(x)], attrs)


@lowers("aten.randn.default", "aten.randn.generator", "aten.randn_like.default",
        "aten.rand.default", "aten.rand.generator", "aten.rand_like.default",
        "aten.normal.Tensor_float", "aten.normal.float_Tensor", "aten.normal.Tensor_Tensor",
        "aten.normal_functional.default", "aten.bernoulli.default", "aten.bernoulli.p",
        "aten.randint.low", "aten.randint.default", "aten.randperm.default")  # fmt: skip
def _random(cx, node, *args, **kwargs):
    # A sample from torch's generator (VITS's prior noise, Reformer's LSH rotations, a VAE's
    # latent noise): no executor can give the same numbers, so the graph cannot match PyTorch.
    raise UnsupportedOp(str(node.target), cx.model_name,
                        "the output depends on torch's random generator (a sampled value)")  # fmt: skip

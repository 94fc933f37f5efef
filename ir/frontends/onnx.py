"""ONNX frontend: an ONNX ModelProto (file or object) lowered onto the IR's op table.

``CLAIMED_OPS`` lists the ONNX ops this frontend converts; anything else raises
``UnsupportedOp(op, model_name)``.  Attribute combinations a lowering does not handle raise
the same error naming the attribute, never a silent approximation.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ..errors import ConversionError, MissingDependency, UnsupportedOp
from ..graph import Graph, TensorSpec, dtype_name


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise MissingDependency("convert_from_onnx needs onnx: pip install 'skillmill[onnx]'") from exc
    return onnx, numpy_helper


def onnx_dtype(elem_type: int) -> str:
    from onnx import helper

    return dtype_name(helper.tensor_dtype_to_np_dtype(elem_type))


def convert_from_onnx(model: Any, input_shapes: dict[str, Any] | None = None,
                      model_name: str | None = None) -> Graph:  # fmt: skip
    """``model``: path or ModelProto.  ``input_shapes`` overrides graph-input shapes (a symbol
    name or int per dim)."""
    onnx, numpy_helper = _onnx()
    if isinstance(model, (str, os.PathLike)):
        name = model_name or os.path.basename(str(model))
        try:
            model = onnx.load(str(model))
        except Exception as exc:
            raise ConversionError(f"cannot read ONNX model {name}: {exc}") from exc
    else:
        name = model_name or (model.graph.name or "onnx_model")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)
    g = model.graph
    graph = Graph(name=g.name or "onnx_model")
    graph.metadata.update({"source": "onnx", "model_name": name, "opset": opset})
    for init in g.initializer:
        graph.weights[init.name] = numpy_helper.to_array(init).copy()
    for value in g.input:
        if value.name in graph.weights:
            continue
        graph.inputs[value.name] = _spec(value, (input_shapes or {}).get(value.name))
    for value in list(g.value_info) + list(g.output):
        if value.type.HasField("tensor_type"):
            graph.value_info[value.name] = _spec(value, None)
    lowering = _Lowering(graph, name, opset, numpy_helper)
    for node in g.node:
        lowering.lower(node)
    graph.outputs = [o.name for o in g.output]
    for out in graph.outputs:
        if out in graph.inputs or out in graph.weights:
            alias = f"{out}__out"
            graph.add_node("Identity", [out], name=alias, outputs=[alias])
            graph.outputs[graph.outputs.index(out)] = alias
    return graph


def _spec(value: Any, override: Any) -> TensorSpec:
    t = value.type.tensor_type
    dtype = onnx_dtype(t.elem_type) if t.elem_type else "float32"
    if override is not None:
        return TensorSpec(dtype, list(override))
    if not t.HasField("shape"):
        return TensorSpec(dtype, None)
    dims: list[Any] = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return TensorSpec(dtype, dims)


class _Lowering:
    def __init__(self, graph: Graph, model_name: str, opset: int, numpy_helper: Any):
        self.graph = graph
        self.model_name = model_name
        self.opset = opset
        self.numpy_helper = numpy_helper
        self.counter = 0

    def attrs(self, node: Any) -> dict[str, Any]:
        from onnx import helper

        out = {}
        for a in node.attribute:
            value = helper.get_attribute_value(a)
            if isinstance(value, bytes):
                value = value.decode()
            elif hasattr(value, "dims") and hasattr(value, "data_type"):
                value = self.numpy_helper.to_array(value)
            elif isinstance(value, list) and value and isinstance(value[0], bytes):
                value = [v.decode() for v in value]
            out[a.name] = value
        return out

    def emit(self, op: str, inputs: list[str], outputs: list[str], attrs: dict | None = None) -> None:
        self.counter += 1
        name = f"{op.lower()}_{self.counter}"
        while name in self.graph.value_info or any(n.name == name for n in self.graph.nodes[-3:]):
            self.counter += 1
            name = f"{op.lower()}_{self.counter}"
        self.graph.add_node(op, inputs, attrs=attrs, name=name, outputs=outputs)

    def temp(self, op: str, inputs: list[str], attrs: dict | None = None) -> str:
        self.counter += 1
        name = f"_t{self.counter}_{op.lower()}"
        self.graph.add_node(op, inputs, attrs=attrs, name=name, outputs=[name])
        return name

    def unsupported(self, node: Any, why: str) -> UnsupportedOp:
        return UnsupportedOp(node.op_type, self.model_name, why)

    def lower(self, node: Any) -> None:
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOp(f"{node.domain}.{node.op_type}", self.model_name)
        handler = ONNX_OPS.get(node.op_type)
        if handler is None:
            raise UnsupportedOp(node.op_type, self.model_name)
        handler(self, node, list(node.input), list(node.output), self.attrs(node))


Handler = Callable[[_Lowering, Any, list, list, dict], None]
ONNX_OPS: dict[str, Handler] = {}


def _simple(op: str, allowed: tuple[str, ...] = ()) -> Handler:
    def handle(cx, node, ins, outs, attrs):
        extra = set(attrs) - set(allowed)
        if extra:
            raise cx.unsupported(node, f"attributes {sorted(extra)}")
        cx.emit(op, ins, outs, {k: attrs[k] for k in allowed if k in attrs})

    return handle


for _name in ("Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Sin", "Cos", "Tan", "Asin", "Acos",
              "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Tanh", "Sigmoid", "Relu", "Erf",
              "Floor", "Ceil", "Round", "Sign", "Not", "IsNaN", "Softplus", "Identity",
              "BitwiseNot", "HardSwish"):  # fmt: skip
    ONNX_OPS[_name] = _simple(_name)
for _name, _op in {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Equal": "Equal", "Less": "Less",
                   "LessOrEqual": "LessEqual", "Greater": "Greater", "GreaterOrEqual": "GreaterEqual",
                   "And": "And", "Or": "Or", "Xor": "Xor", "BitwiseAnd": "BitwiseAnd",
                   "BitwiseOr": "BitwiseOr", "BitwiseXor": "BitwiseXor", "MatMul": "MatMul",
                   "Where": "Where"}.items():  # fmt: skip
    ONNX_OPS[_name] = _simple(_op)


def _div(cx, node, ins, outs, attrs):
    cx.emit("DivTrunc", ins, outs)


def _pow(cx, node, ins, outs, attrs):
    cx.emit("Pow", ins, outs, {"keep_dtype": True})


def _mod(cx, node, ins, outs, attrs):
    cx.emit("Fmod" if attrs.get("fmod", 0) else "Mod", ins, outs)


def _variadic(op: str, mean: bool = False) -> Handler:
    def handle(cx, node, ins, outs, attrs):
        if len(ins) == 1:
            cx.emit("Identity", ins, outs)
            return
        acc = ins[0]
        for i, other in enumerate(ins[1:]):
            last = i == len(ins) - 2 and not mean
            if last:
                cx.emit(op, [acc, other], outs)
            else:
                acc = cx.temp(op, [acc, other])
        if mean:
            cx.emit("Div", [acc], outs, {"b": float(len(ins)), "keep_dtype": True})

    return handle


ONNX_OPS.update({"Div": _div, "Pow": _pow, "Mod": _mod, "Max": _variadic("Max"),
                 "Min": _variadic("Min"), "Sum": _variadic("Add"), "Mean": _variadic("Add", True)})  # fmt: skip


def _cast(cx, node, ins, outs, attrs):
    if attrs.get("saturate", 1) != 1 or "round_mode" in attrs:
        raise cx.unsupported(node, "saturate/round_mode")
    to = onnx_dtype(attrs["to"])
    if to in ("string",) or to.startswith("float8") or to in ("complex64", "complex128"):
        raise cx.unsupported(node, f"cast to {to}")
    cx.emit("Cast", ins[:1], outs, {"to": to})


def _isinf(cx, node, ins, outs, attrs):
    pos, neg = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
    if pos and neg:
        cx.emit("IsInf", ins, outs)
    elif pos:
        cx.emit("Equal", ins, outs, {"b": float("inf")})
    elif neg:
        cx.emit("Equal", ins, outs, {"b": float("-inf")})
    else:
        cx.emit("FullLike", ins, outs, {"value": False, "dtype": "bool"})


def _reshape(cx, node, ins, outs, attrs):
    cx.emit("Reshape", ins, outs, {"copy_zero": True, "allowzero": attrs.get("allowzero", 0)})


def _axes_op(op: str) -> Handler:
    def handle(cx, node, ins, outs, attrs):
        if "axes" in attrs:
            cx.emit(op, ins[:1], outs, {"axes": list(attrs["axes"])})
        elif len(ins) > 1 and ins[1]:
            cx.emit(op, ins[:2], outs)
        else:
            cx.emit(op, ins[:1], outs, {"axes": None})

    return handle


def _transpose(cx, node, ins, outs, attrs):
    cx.emit("Transpose", ins, outs, {"perm": list(attrs["perm"]) if "perm" in attrs else None})


def _flatten(cx, node, ins, outs, attrs):
    cx.emit("Flatten", ins, outs, {"axis": attrs.get("axis", 1)})


def _concat(cx, node, ins, outs, attrs):
    cx.emit("Concat", ins, outs, {"axis": attrs["axis"]})


def _split(cx, node, ins, outs, attrs):
    axis = attrs.get("axis", 0)
    if "split" in attrs:
        cx.emit("Split", ins[:1], outs, {"axis": axis, "sizes": list(attrs["split"])})
    elif len(ins) > 1 and ins[1]:
        cx.emit("Split", ins[:2], outs, {"axis": axis})
    else:
        cx.emit("Split", ins[:1], outs, {"axis": axis, "num_outputs": len(outs)})


def _slice(cx, node, ins, outs, attrs):
    if "starts" in attrs:  # opset < 10
        raise cx.unsupported(node, "attribute-form Slice (opset < 10)")
    cx.emit("SliceOnnx", ins, outs)


def _gather(cx, node, ins, outs, attrs):
    cx.emit("Take", ins, outs, {"axis": attrs.get("axis", 0)})


def _gather_elements(cx, node, ins, outs, attrs):
    cx.emit("GatherOnnx", ins, outs, {"dim": attrs.get("axis", 0)})


def _expand(cx, node, ins, outs, attrs):
    cx.emit("Expand", ins, outs, {"bidirectional": True})


def _shape(cx, node, ins, outs, attrs):
    cx.emit("Shape", ins, outs, {"start": attrs.get("start", 0), "end": attrs.get("end")})


def _constant_of_shape(cx, node, ins, outs, attrs):
    value = attrs.get("value", np.zeros(1, np.float32))
    cx.emit("ConstantOfShape", ins, outs, {"value": np.asarray(value).reshape(-1)[0].item(),
                                           "dtype": dtype_name(np.asarray(value).dtype)})  # fmt: skip


def _constant(cx, node, ins, outs, attrs):
    if "value" in attrs:
        array = np.asarray(attrs["value"])
    elif "value_float" in attrs:
        array = np.asarray(attrs["value_float"], np.float32)
    elif "value_floats" in attrs:
        array = np.asarray(attrs["value_floats"], np.float32)
    elif "value_int" in attrs:
        array = np.asarray(attrs["value_int"], np.int64)
    elif "value_ints" in attrs:
        array = np.asarray(attrs["value_ints"], np.int64)
    else:
        raise cx.unsupported(node, f"attributes {sorted(attrs)}")
    cx.graph.weights[outs[0]] = array


def _range(cx, node, ins, outs, attrs):
    cx.emit("Arange", ins, outs, {"dtype": None})


def _softmax(op: str) -> Handler:
    def handle(cx, node, ins, outs, attrs):
        if cx.opset < 13:
            raise cx.unsupported(node, "opset < 13 (2-D coerced softmax)")
        cx.emit(op, ins, outs, {"axis": attrs.get("axis", -1)})

    return handle


def _reduce(op: str) -> Handler:
    def handle(cx, node, ins, outs, attrs):
        keep = bool(attrs.get("keepdims", 1))
        noop = attrs.get("noop_with_empty_axes", 0)
        if "axes" in attrs:
            cx.emit(op, ins[:1], outs, {"axes": list(attrs["axes"]), "keepdims": keep})
        elif len(ins) > 1 and ins[1]:
            cx.emit(op, ins[:2], outs, {"keepdims": keep, "noop_with_empty_axes": noop})
        elif noop:
            cx.emit("Identity", ins[:1], outs)
        else:
            cx.emit(op, ins[:1], outs, {"axes": None, "keepdims": keep})

    return handle


def _arg(op: str) -> Handler:
    def handle(cx, node, ins, outs, attrs):
        cx.emit(op, ins, outs, {"axis": attrs.get("axis", 0), "keepdims": bool(attrs.get("keepdims", 1)),
                                "select_last_index": attrs.get("select_last_index", 0)})  # fmt: skip

    return handle


def _gemm(cx, node, ins, outs, attrs):
    a, b = ins[0], ins[1]
    if attrs.get("transA", 0):
        a = cx.temp("Transpose", [a], {"perm": [1, 0]})
    if not attrs.get("transB", 0):
        b = cx.temp("Transpose", [b], {"perm": [1, 0]})
    inputs = [a, b] + ([ins[2]] if len(ins) > 2 and ins[2] else [])
    cx.emit("Linear", inputs, outs, {"alpha": attrs.get("alpha", 1.0), "beta": attrs.get("beta", 1.0)})


def _layer_norm(cx, node, ins, outs, attrs):
    if attrs.get("stash_type", 1) != 1:
        raise cx.unsupported(node, "stash_type")
    outs = outs + [""] * (3 - len(outs))
    cx.emit("LayerNorm", ins, outs, {"axis": attrs.get("axis", -1), "eps": attrs.get("epsilon", 1e-5)})


def _batch_norm(cx, node, ins, outs, attrs):
    eps = attrs.get("epsilon", 1e-5)
    if not attrs.get("training_mode", 0):
        if len(outs) > 1 and any(outs[1:]):
            raise cx.unsupported(node, "statistics outputs without training_mode (opset < 14)")
        cx.emit("BatchNorm", ins, outs, {"eps": eps})
        return
    _batch_norm_training(cx, node, ins, outs, eps, attrs.get("momentum", 0.9))


def _batch_norm_training(cx, node, ins, outs, eps: float, momentum: float) -> None:
    """training_mode=1: Y is normalised by the batch's own mean and population variance over
    every axis but the channel one; the running statistics move towards them by ``momentum``
    (the population variance there too, as onnx's reference and test data have it)."""
    spec = cx.graph.spec(ins[0])
    if spec is None or spec.shape is None:
        raise cx.unsupported(node, "training_mode with an input of unknown rank")
    axes = [a for a in range(len(spec.shape)) if a != 1]
    batch_mean = cx.temp("ReduceMean", ins[:1], {"axes": axes, "keepdims": False})
    batch_var = cx.temp("Var", ins[:1], {"axes": axes, "correction": 0, "keepdims": False})
    cx.emit("BatchNorm", ins[:3] + [batch_mean, batch_var], outs[:1], {"eps": eps})
    for running, batch, out in zip(ins[3:5], (batch_mean, batch_var), outs[1:3]):
        if not out:
            continue
        kept = cx.temp("Mul", [running], {"b": float(momentum), "keep_dtype": True})
        moved = cx.temp("Mul", [batch], {"b": float(1.0 - momentum), "keep_dtype": True})
        cx.emit("Add", [kept, moved], [out])


def _pads(attrs: dict, nsp: int, node: Any, cx, x: str = "", kernel: list[int] | None = None) -> list[list[int]] | None:
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return _same_pads(auto, attrs, nsp, node, cx, x, kernel)
    if auto not in ("NOTSET", "VALID"):
        raise cx.unsupported(node, f"auto_pad={auto}")
    if auto == "VALID":
        return [[0, 0] for _ in range(nsp)]
    pads = list(attrs.get("pads", [0] * (2 * nsp)))
    return [[pads[i], pads[i + nsp]] for i in range(nsp)]


def _same_pads(auto: str, attrs: dict, nsp: int, node: Any, cx, x: str,
               kernel: list[int] | None) -> list[list[int]]:  # fmt: skip
    """ONNX SAME_UPPER / SAME_LOWER: output size ceil(in / stride), the total padding split
    evenly, the odd one at the end (UPPER) or the beginning (LOWER).  Needs static spatial dims."""
    spec = cx.graph.spec(x) if x else None
    dims = list(spec.shape[-nsp:]) if spec is not None and spec.shape is not None else []
    if kernel is None or len(dims) != nsp or not all(isinstance(d, int) for d in dims):
        raise cx.unsupported(node, f"auto_pad={auto} with symbolic spatial dims")
    strides = list(attrs.get("strides", [1] * nsp))
    dilations = list(attrs.get("dilations", [1] * nsp))
    pads = []
    for size, k, st, dl in zip(dims, kernel, strides, dilations):
        out = -(-size // st)
        total = max((out - 1) * st + (k - 1) * dl + 1 - size, 0)
        small, large = total // 2, total - total // 2
        pads.append([small, large] if auto == "SAME_UPPER" else [large, small])
    return pads


def _conv(cx, node, ins, outs, attrs):
    kernel = attrs.get("kernel_shape")
    nsp = len(kernel) if kernel else None
    if nsp is None:
        w = cx.graph.weights.get(ins[1])
        if w is None:
            raise cx.unsupported(node, "kernel_shape missing and weight not constant")
        nsp = w.ndim - 2
    cx.emit("Conv", [i for i in ins if i], outs, {
        "stride": list(attrs.get("strides", [1] * nsp)), "dilation": list(attrs.get("dilations", [1] * nsp)),
        "groups": attrs.get("group", 1), "pads": _pads(attrs, nsp, node, cx, ins[0], kernel or _kernel_of(cx, ins[1]))})  # fmt: skip


def _kernel_of(cx, weight: str) -> list[int] | None:
    w = cx.graph.weights.get(weight)
    if w is not None:
        return list(w.shape[2:])
    spec = cx.graph.spec(weight)
    return list(spec.shape[2:]) if spec is not None and spec.shape is not None else None


def _pool(op: str) -> Handler:
    def handle(cx, node, ins, outs, attrs):
        kernel = list(attrs["kernel_shape"])
        nsp = len(kernel)
        dilation = list(attrs.get("dilations", [1] * nsp))
        out = {"kernel": kernel, "stride": list(attrs.get("strides", [1] * nsp)),
               "ceil_mode": bool(attrs.get("ceil_mode", 0)), "pads": _pads(attrs, nsp, node, cx, ins[0], kernel)}  # fmt: skip
        if op == "MaxPool" or any(d != 1 for d in dilation):  # undilated AvgPool nodes as before
            out["dilation"] = dilation
        indices = op == "MaxPool" and len(outs) > 1 and bool(outs[1])
        if op == "AvgPool":
            out["count_include_pad"] = bool(attrs.get("count_include_pad", 0))
        elif indices:  # storage_order only orders the Indices output
            out.update(return_indices=True, storage_order=attrs.get("storage_order", 0))
        cx.emit(op, ins[:1], outs[:2] if indices else outs[:1], out)

    return handle


def _global_pool(op: str) -> Handler:
    def handle(cx, node, ins, outs, attrs):
        cx.emit(op, ins, outs, {"axes": "spatial", "keepdims": True})

    return handle


def _clip(cx, node, ins, outs, attrs):
    if "min" in attrs or "max" in attrs:
        cx.emit("Clip", ins[:1], outs, {"min": attrs.get("min"), "max": attrs.get("max")})
    else:
        cx.emit("Clip", ins, outs)


def _leaky(cx, node, ins, outs, attrs):
    cx.emit("LeakyRelu", ins, outs, {"alpha": attrs.get("alpha", 0.01)})


def _elu(cx, node, ins, outs, attrs):
    cx.emit("Elu", ins, outs, {"alpha": attrs.get("alpha", 1.0)})


def _hard_sigmoid(cx, node, ins, outs, attrs):
    cx.emit("HardSigmoid", ins, outs, {"alpha": attrs.get("alpha", 0.2), "beta": attrs.get("beta", 0.5)})


def _gelu(cx, node, ins, outs, attrs):
    cx.emit("Gelu", ins, outs, {"approximate": attrs.get("approximate", "none")})


def _tile(cx, node, ins, outs, attrs):
    cx.emit("Tile", ins, outs)


def _trilu(cx, node, ins, outs, attrs):
    cx.emit("Triu" if attrs.get("upper", 1) else "Tril", ins, outs)


def _cumsum(cx, node, ins, outs, attrs):
    cx.emit("CumSum", ins, outs, {"exclusive": bool(attrs.get("exclusive", 0)),
                                  "reverse": bool(attrs.get("reverse", 0))})  # fmt: skip


def _topk(cx, node, ins, outs, attrs):
    cx.emit("TopK", ins, outs, {"axis": attrs.get("axis", -1), "largest": bool(attrs.get("largest", 1))})


def _einsum(cx, node, ins, outs, attrs):
    cx.emit("Einsum", ins, outs, {"equation": attrs["equation"]})


def _dropout(cx, node, ins, outs, attrs):
    if len(ins) > 2 and ins[2]:
        raise cx.unsupported(node, "training_mode input")
    cx.emit("Identity", ins[:1], outs[:1])
    if len(outs) > 1 and outs[1]:  # inference keeps every element: the mask is all true
        cx.emit("FullLike", ins[:1], outs[1:2], {"value": True, "dtype": "bool"})


def _size(cx, node, ins, outs, attrs):
    cx.emit("Size", ins, outs)


ONNX_OPS.update({
    "Cast": _cast, "IsInf": _isinf, "Reshape": _reshape, "Unsqueeze": _axes_op("Unsqueeze"),
    "Squeeze": _axes_op("Squeeze"), "Transpose": _transpose, "Flatten": _flatten, "Concat": _concat,
    "Split": _split, "Slice": _slice, "Gather": _gather, "GatherElements": _gather_elements,
    "Expand": _expand, "Shape": _shape, "Size": _size, "ConstantOfShape": _constant_of_shape,
    "Constant": _constant, "Range": _range, "Softmax": _softmax("Softmax"),
    "LogSoftmax": _softmax("LogSoftmax"), "ReduceSum": _reduce("ReduceSum"),
    "ReduceMean": _reduce("ReduceMean"), "ReduceMax": _reduce("ReduceMax"),
    "ReduceMin": _reduce("ReduceMin"), "ReduceProd": _reduce("ReduceProd"),
    "ReduceL1": _reduce("ReduceL1"), "ReduceL2": _reduce("ReduceL2"),
    "ReduceSumSquare": _reduce("ReduceSumSquare"), "ReduceLogSum": _reduce("ReduceLogSum"),
    "ReduceLogSumExp": _reduce("ReduceLogSumExp"), "ArgMax": _arg("ArgMax"), "ArgMin": _arg("ArgMin"),
    "Gemm": _gemm, "LayerNormalization": _layer_norm, "BatchNormalization": _batch_norm,
    "Conv": _conv, "MaxPool": _pool("MaxPool"), "AveragePool": _pool("AvgPool"),
    "GlobalAveragePool": _global_pool("ReduceMean"), "GlobalMaxPool": _global_pool("ReduceMax"),
    "Clip": _clip, "LeakyRelu": _leaky, "Elu": _elu, "HardSigmoid": _hard_sigmoid, "Gelu": _gelu,
    "Tile": _tile, "Trilu": _trilu, "CumSum": _cumsum, "TopK": _topk, "Einsum": _einsum,
    "Dropout": _dropout,
})  # fmt: skip

CLAIMED_OPS = tuple(sorted(ONNX_OPS))

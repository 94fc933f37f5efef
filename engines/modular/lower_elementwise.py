"""MAX lowerings of the IR's elementwise ops: unary maths, activations, binary arithmetic and
comparisons with numpy broadcasting, Where, Cast, Clip.

Types follow the IR: an op's result dtype is the graph's declared one (``attrs["dtype"]`` or the
inferred spec); operands are cast to the compute type first, because MAX does not promote
int64 and float32 implicitly the way numpy does."""

from __future__ import annotations

import math
from typing import Any

from skillmill.ir.graph import Node

from .adapter import ops
from .lowering import (FLOAT_TYPES, Lowering, MaxLoweringError, broadcasts, materialise_value,
                       numpy_result_type, outer_broadcast)


def _float_input(lw: Lowering, x: Any) -> Any:
    """Integer/bool inputs of float-valued functions are computed in float32 (as the IR does)."""
    return x if lw.tdtype(x) in FLOAT_TYPES else lw.cast(x, "float32")


def _softplus(lw: Lowering, x: Any) -> Any:
    # max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|
    zero = lw.const(0, lw.tdtype(x))
    return ops.max(x, zero) + ops.log1p(ops.exp(-ops.abs(x)))


def _sign(lw: Lowering, x: Any) -> Any:
    dtype = lw.tdtype(x)
    zero = lw.const(0, dtype)
    pos = lw.cast(ops.greater(x, zero), dtype)
    neg = lw.cast(ops.greater(zero, x), dtype)
    return pos - neg


def _round_half_even(lw: Lowering, x: Any) -> Any:
    # numpy/torch round half to even: floor(x + 0.5), minus one where x + 0.5 is an odd integer
    half = lw.const(0.5, lw.tdtype(x))
    r = ops.floor(x + half)
    is_tie = ops.equal(r - x, half)
    odd = ops.not_equal(ops.mod(r, lw.const(2.0, lw.tdtype(x))), lw.const(0.0, lw.tdtype(x)))
    return ops.where(ops.logical_and(is_tie, odd), r - lw.const(1.0, lw.tdtype(x)), r)


def _gelu(lw: Lowering, x: Any, approximate: str = "none") -> Any:
    if approximate == "tanh":
        c = lw.const(math.sqrt(2.0 / math.pi), lw.tdtype(x))
        inner = c * (x + lw.const(0.044715, lw.tdtype(x)) * x * x * x)
        return lw.const(0.5, lw.tdtype(x)) * x * (lw.const(1.0, lw.tdtype(x)) + ops.tanh(inner))
    return lw.const(0.5, lw.tdtype(x)) * x * (
        lw.const(1.0, lw.tdtype(x)) + ops.erf(x * lw.const(1.0 / math.sqrt(2.0), lw.tdtype(x)))
    )


def activation(lw: Lowering, x: Any, name: str) -> Any:
    """The IR's ``Linear`` activations (none|relu|gelu|gelu_tanh|silu|tanh|sigmoid)."""
    if name == "none":
        return x
    if name == "relu":
        return ops.relu(x)
    if name == "gelu":
        return _gelu(lw, x)
    if name == "gelu_tanh":
        return _gelu(lw, x, "tanh")
    if name == "silu":
        return x * ops.sigmoid(x)
    if name == "tanh":
        return ops.tanh(x)
    if name == "sigmoid":
        return ops.sigmoid(x)
    raise MaxLoweringError("Linear", "?", f"unknown activation {name!r}")


_FLOAT_UNARY = {
    "Exp": lambda lw, x: ops.exp(x),
    "Log": lambda lw, x: ops.log(x),
    "Log1p": lambda lw, x: ops.log1p(x),
    "Expm1": lambda lw, x: ops.exp(x) - lw.const(1.0, lw.tdtype(x)),
    "Sqrt": lambda lw, x: ops.sqrt(x),
    "Rsqrt": lambda lw, x: ops.rsqrt(x),
    "Reciprocal": lambda lw, x: lw.const(1.0, lw.tdtype(x)) / x,
    "Sin": lambda lw, x: ops.sin(x),
    "Cos": lambda lw, x: ops.cos(x),
    "Tan": lambda lw, x: ops.sin(x) / ops.cos(x),
    "Acos": lambda lw, x: ops.acos(x),
    "Atanh": lambda lw, x: ops.atanh(x),
    "Sinh": lambda lw, x: (ops.exp(x) - ops.exp(-x)) * lw.const(0.5, lw.tdtype(x)),
    "Cosh": lambda lw, x: (ops.exp(x) + ops.exp(-x)) * lw.const(0.5, lw.tdtype(x)),
    "Tanh": lambda lw, x: ops.tanh(x),
    "Sigmoid": lambda lw, x: ops.sigmoid(x),
    "Silu": lambda lw, x: x * ops.sigmoid(x),
    "Erf": lambda lw, x: ops.erf(x),
    "Softplus": _softplus,
}

_SAME_TYPE_UNARY = {
    "Neg": lambda lw, x: -x,
    "Abs": lambda lw, x: ops.abs(x),
    "Relu": lambda lw, x: ops.relu(x) if lw.tdtype(x) in FLOAT_TYPES else ops.max(x, lw.const(0, lw.tdtype(x))),
    "Floor": lambda lw, x: ops.floor(x) if lw.tdtype(x) in FLOAT_TYPES else x,
    "Ceil": lambda lw, x: -ops.floor(-x) if lw.tdtype(x) in FLOAT_TYPES else x,
    "Trunc": lambda lw, x: ops.trunc(x) if lw.tdtype(x) in FLOAT_TYPES else x,
    "Round": lambda lw, x: _round_half_even(lw, x) if lw.tdtype(x) in FLOAT_TYPES else x,
    "Sign": _sign,
    "Identity": lambda lw, x: x,
}


def _unary(op: str) -> Any:
    def lower(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = lw.tensor(node.inputs[0])
        if op in _FLOAT_UNARY:
            y = _FLOAT_UNARY[op](lw, _float_input(lw, x))
        else:
            y = _SAME_TYPE_UNARY[op](lw, x)
        dtype = attrs.get("dtype") or lw.out_dtype(node)
        return [lw.cast(y, dtype) if dtype else y]

    return lower


def _logical_unary(op: str) -> Any:
    def lower(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = lw.tensor(node.inputs[0])
        if op in ("Not", "BitwiseNot"):
            if op == "BitwiseNot" and lw.tdtype(x) != "bool":
                raise MaxLoweringError(op, node.name, "bitwise not of integers has no MAX op")
            return [ops.logical_not(lw.cast(x, "bool"))]
        if lw.tdtype(x) not in FLOAT_TYPES:
            return [lw.cast(x * lw.const(0, lw.tdtype(x)), "bool")]  # integers are never NaN/inf
        return [ops.is_nan(x) if op == "IsNaN" else ops.is_inf(x)]

    return lower


def _scalar_activation(op: str) -> Any:
    def lower(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = _float_input(lw, lw.tensor(node.inputs[0]))
        dt = lw.tdtype(x)
        c = lambda v: lw.const(v, dt)  # noqa: E731
        if op == "Gelu":
            y = _gelu(lw, x, attrs.get("approximate", "none"))
        elif op == "LeakyRelu":
            y = ops.where(ops.greater_equal(x, c(0.0)), x, x * c(attrs.get("alpha", 0.01)))
        elif op == "Elu":
            y = ops.where(ops.greater(x, c(0.0)), x, c(attrs.get("alpha", 1.0)) * (ops.exp(x) - c(1.0)))
        elif op == "HardSigmoid":
            y = ops.min(ops.max(c(attrs.get("alpha", 1 / 6)) * x + c(attrs.get("beta", 0.5)), c(0.0)), c(1.0))
        else:  # HardSwish
            y = x * ops.min(ops.max(x / c(6.0) + c(0.5), c(0.0)), c(1.0))
        return [y]

    return lower


def _clip(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    dt = lw.tdtype(x)
    lo = node.inputs[1] if len(node.inputs) > 1 and node.inputs[1] else None
    hi = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    lo_v = lw.cast(lw.tensor(lo), dt) if lo else (lw.const(attrs["min"], dt) if attrs.get("min") is not None else None)
    hi_v = lw.cast(lw.tensor(hi), dt) if hi else (lw.const(attrs["max"], dt) if attrs.get("max") is not None else None)
    if lo_v is not None:
        x = ops.max(x, lo_v)
    if hi_v is not None:
        x = ops.min(x, hi_v)
    dtype = attrs.get("dtype")
    return [lw.cast(x, dtype) if dtype else x]


# -- binary ---------------------------------------------------------------------------------
_COMPARE = {"Equal": ops.equal, "NotEqual": ops.not_equal, "Greater": ops.greater,
            "GreaterEqual": ops.greater_equal,
            "Less": lambda a, b: ops.greater(b, a), "LessEqual": lambda a, b: ops.greater_equal(b, a)}  # fmt: skip
_LOGICAL = {"And": ops.logical_and, "Or": ops.logical_or, "Xor": ops.logical_xor,
            "BitwiseAnd": ops.logical_and, "BitwiseOr": ops.logical_or, "BitwiseXor": ops.logical_xor}  # fmt: skip


def _operand_dtype(lw: Lowering, name: str | None, scalar: Any) -> str:
    if name is not None:
        return lw.tdtype(lw.tensor(name))
    if isinstance(scalar, bool):
        return "bool"
    return "int64" if isinstance(scalar, int) else "float32"


def _operands(lw: Lowering, node: Node, attrs: dict[str, Any]) -> tuple[Any, Any, str, str]:
    """(a, b, dtype a, dtype b); a python scalar operand stays a python value for now."""
    if "a" in attrs:
        a, an = attrs["a"], None
        b, bn = None, node.inputs[0]
    elif "b" in attrs:
        a, an = None, node.inputs[0]
        b, bn = attrs["b"], None
    else:
        a = b = None
        an, bn = node.inputs[0], node.inputs[1]
    da, db = _operand_dtype(lw, an, a), _operand_dtype(lw, bn, b)
    ta = lw.tensor(an) if an else a
    tb = lw.tensor(bn) if bn else b
    return ta, tb, da, db


def _binary_compute_type(op: str, da: str, db: str, a_scalar: bool, b_scalar: bool) -> str:
    """numpy's rule, except that a python scalar does not widen a tensor's type (torch's)."""
    if a_scalar and not b_scalar:
        if da == "float32" and db not in FLOAT_TYPES:
            return "float32"
        return db if not (da == "float32" and db == "bool") else "float32"
    if b_scalar and not a_scalar:
        if db == "float32" and da not in FLOAT_TYPES:
            return "float32"
        return da if not (db == "float32" and da == "bool") else "float32"
    return numpy_result_type(da, db)


def settled(lw: Lowering, name: str, t: Any, other: Any) -> Any:
    """A computed operand that ``other`` broadcasts, materialised once (memoised by IR name).
    MAX 26.7 miscomputes broadcasting chains fused into a consumer: T5's decoder scores plus
    an expanded causal mask, GPT-2's causal-and-padding mask (see ``lowering.materialise``).
    Weights and graph inputs are buffers already; broadcast operands are the smaller side, so
    the copy is cheap."""
    if lw.is_weight(name) or name in lw.graph.inputs or not t.shape or not broadcasts(t, other):
        return t
    key = ("settled", name)
    if key not in lw.memo:
        lw.memo[key] = materialise_value(t)
    return lw.memo[key]


def _binary(op: str) -> Any:
    def lower(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
        a, b, da, db = _operands(lw, node, attrs)
        a_scalar, b_scalar = "a" in attrs, "b" in attrs
        if not (a_scalar or b_scalar):
            a, b = settled(lw, node.inputs[0], a, b), settled(lw, node.inputs[1], b, a)
        compute = _binary_compute_type(op, da, db, a_scalar, b_scalar)
        out = attrs.get("dtype")
        if attrs.get("keep_dtype"):
            out = da
        if out is None:
            out = lw.out_dtype(node)
        if op in ("Div",) and compute not in FLOAT_TYPES:
            compute = out if out in FLOAT_TYPES else "float32"
        if op in _LOGICAL:
            compute = "bool"
            if op.startswith("Bitwise") and (da != "bool" or db != "bool"):
                raise MaxLoweringError(op, node.name, "bitwise ops on integers have no MAX op")
        if op not in _COMPARE and op not in _LOGICAL and out in FLOAT_TYPES and compute not in FLOAT_TYPES:
            compute = out  # torch: int tensor * float scalar computes in float
        ta = lw.const(a, compute) if a_scalar else lw.cast(a, compute)
        result = None
        if op == "Pow" and b_scalar and compute in FLOAT_TYPES:
            result = _power_by_scalar(lw, ta, float(b))
        if result is None:
            tb = lw.const(b, compute) if b_scalar else lw.cast(b, compute)
            result = _apply(lw, op, node, ta, tb, compute)
            if not (a_scalar or b_scalar) and outer_broadcast(ta, tb):
                result = materialise_value(result)
        return [lw.cast(result, out) if out else result]

    return lower


def _apply(lw: Lowering, op: str, node: Node, a: Any, b: Any, dtype: str) -> Any:
    if op in _COMPARE:
        return _COMPARE[op](a, b)
    if op in _LOGICAL:
        return _LOGICAL[op](a, b)
    is_float = dtype in FLOAT_TYPES
    if op == "Add":
        return ops.add(a, b)
    if op == "Sub":
        return ops.sub(a, b)
    if op == "Mul":
        return ops.mul(a, b)
    if op == "Div":
        return ops.div(a, b)
    if op == "Max":
        return ops.max(a, b)
    if op == "Min":
        return ops.min(a, b)
    if op == "Pow":
        if not is_float:
            raise MaxLoweringError(op, node.name, "integer power has no MAX op")
        return ops.pow(a, b)
    if op == "FloorDiv":
        return ops.floor(ops.div(a, b)) if is_float else ops.floor_div(a, b)
    if op == "Mod":  # python semantics: the sign of the divisor
        if is_float:
            return a - ops.floor(ops.div(a, b)) * b
        return a - ops.floor_div(a, b) * b
    if op == "Fmod":  # C semantics: the sign of the dividend
        if not is_float:
            raise MaxLoweringError(op, node.name, "integer fmod has no MAX lowering")
        return a - ops.trunc(ops.div(a, b)) * b
    if op == "DivTrunc":
        if is_float:
            return ops.div(a, b)
        q = ops.div(lw.cast(a, "float64"), lw.cast(b, "float64"))
        return lw.cast(ops.trunc(q), dtype)
    raise MaxLoweringError(op, node.name, "binary op has no MAX lowering")


def _power_by_scalar(lw: Lowering, x: Any, exponent: float) -> Any | None:
    """x ** c for a small integer or half-integer c by multiplication / sqrt: MAX's pow goes
    through exp(c * log(x)), which is NaN for a negative base (x ** 3 in GPT-2's gelu)."""
    if exponent != int(exponent) and exponent != 0.5:
        return None
    if exponent == 0.5:
        return ops.sqrt(x)
    n = int(exponent)
    if not 0 <= abs(n) <= 8:
        return None
    result = lw.const(1.0, lw.tdtype(x)) if n == 0 else None
    for _ in range(abs(n)):
        result = x if result is None else result * x
    return lw.const(1.0, lw.tdtype(x)) / result if n < 0 else result


def _where(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    cond = lw.cast(lw.tensor(node.inputs[0]), "bool")
    names = [n for n in node.inputs[1:] if n]
    dtypes = [lw.tdtype(lw.tensor(n)) for n in names]
    out = attrs.get("dtype") or lw.out_dtype(node) or (dtypes[0] if dtypes else "float32")
    if "a" in attrs:
        x = lw.const(attrs["a"], out)
        y = lw.cast(lw.tensor(node.inputs[1]), out) if "b" not in attrs else lw.const(attrs["b"], out)
    else:
        x = lw.cast(lw.tensor(node.inputs[1]), out)
        y = lw.const(attrs["b"], out) if "b" in attrs else lw.cast(lw.tensor(node.inputs[-1]), out)
    return [ops.where(cond, x, y)]


def _cast(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    to = attrs["to"]
    if to == "string":
        raise MaxLoweringError("Cast", node.name, "string tensors have no MAX dtype")
    if to not in FLOAT_TYPES and to != "bool" and lw.tdtype(x) in FLOAT_TYPES:
        x = ops.trunc(x)  # float -> int truncates toward zero
    return [lw.cast(x, to)]


TABLE: dict[str, Any] = {
    **{op: _unary(op) for op in [*_FLOAT_UNARY, *_SAME_TYPE_UNARY]},
    **{op: _logical_unary(op) for op in ("Not", "BitwiseNot", "IsNaN", "IsInf")},
    **{op: _scalar_activation(op) for op in ("Gelu", "LeakyRelu", "Elu", "HardSigmoid", "HardSwish")},
    **{op: _binary(op) for op in ("Add", "Sub", "Mul", "Div", "FloorDiv", "DivTrunc", "Mod", "Fmod",
                                  "Pow", "Max", "Min", *_COMPARE, *_LOGICAL)},  # fmt: skip
    "Where": _where,
    "Cast": _cast,
    "Clip": _clip,
}

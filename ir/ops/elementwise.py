"""Elementwise ops: unary maths, binary arithmetic/comparison with numpy broadcasting, Where, Cast.

Binary ops take two tensor inputs, or one tensor and a python scalar in attribute ``b`` (or ``a``
for scalar-first forms such as ``1 - x``).  An optional ``dtype`` attribute fixes the result type,
which is how frontends carry their own type-promotion rules (torch: int tensor * float scalar ->
float32; numpy would give float64).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..graph import TensorSpec, dtype_name
from .base import OpDef, broadcast_shapes, cast_to

try:  # scipy's erf is exact to float64; the fallback below is good to ~1e-7 relative.
    from scipy.special import erf as _scipy_erf
except ImportError:  # pragma: no cover - depends on the environment
    _scipy_erf = None


def erf(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if _scipy_erf is not None:
        return _scipy_erf(x).astype(x.dtype, copy=False)
    # Chebyshev fit of erfc (fractional error < 1.2e-7 everywhere), evaluated in float64.
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))  # fmt: skip
    erfc = t * np.exp(poly)
    result = np.where(x >= 0, 1.0 - erfc, erfc - 1.0)
    return result.astype(x.dtype if x.dtype.kind == "f" else np.float64)


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
        return (0.5 * x * (1.0 + np.tanh(inner))).astype(x.dtype, copy=False)
    return (0.5 * x * (1.0 + erf(x * np.asarray(1.0 / math.sqrt(2.0), x.dtype)))).astype(
        x.dtype, copy=False
    )


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype, copy=False)


def _float(fn: Callable) -> Callable:
    def run(x):
        x = np.asarray(x)
        if x.dtype.kind in "iub":
            x = x.astype(np.float32)
        with np.errstate(all="ignore"):
            return fn(x)

    return run


UNARY: dict[str, Callable[..., Any]] = {
    "Neg": np.negative,
    "Abs": np.abs,
    "Exp": _float(np.exp),
    "Log": _float(np.log),
    "Log1p": _float(np.log1p),
    "Expm1": _float(np.expm1),
    "Sqrt": _float(np.sqrt),
    "Rsqrt": _float(lambda x: (1.0 / np.sqrt(x)).astype(x.dtype, copy=False)),
    "Reciprocal": _float(lambda x: (1.0 / x).astype(x.dtype, copy=False)),
    "Sin": _float(np.sin),
    "Cos": _float(np.cos),
    "Tan": _float(np.tan),
    "Asin": _float(np.arcsin),
    "Acos": _float(np.arccos),
    "Atan": _float(np.arctan),
    "Sinh": _float(np.sinh),
    "Cosh": _float(np.cosh),
    "Asinh": _float(np.arcsinh),
    "Acosh": _float(np.arccosh),
    "Atanh": _float(np.arctanh),
    "Tanh": _float(np.tanh),
    "Sigmoid": _float(sigmoid),
    "Relu": lambda x: np.maximum(x, np.zeros((), x.dtype)),
    "Silu": _float(lambda x: x * sigmoid(x)),
    "Erf": _float(erf),
    "Floor": np.floor,
    "Ceil": np.ceil,
    "Round": np.round,
    "Trunc": np.trunc,
    "Sign": np.sign,
    "Not": np.logical_not,
    "BitwiseNot": np.invert,
    "IsNaN": np.isnan,
    "IsInf": np.isinf,
    "Softplus": _float(lambda x: np.logaddexp(np.zeros((), x.dtype), x).astype(x.dtype)),
    "Identity": lambda x: x,
}

_BOOL_RESULT = {"Not", "IsNaN", "IsInf"}


def _integers(a, b) -> bool:
    return np.asarray(a).dtype.kind in "iu" and np.asarray(b).dtype.kind in "iu"


# A python scalar operand (attr a/b) is passed on as it is, not as a 0-d float64 array: numpy
# then lets the tensor's type decide (float32 / 2.0 is float32, as in torch and as
# _binary_infer says), where a 0-d float64 array would make the result float64.
def _div(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        if _integers(a, b):
            return np.true_divide(a, b).astype(np.float32)
        return np.true_divide(a, b)


def _div_trunc(a, b):
    """ONNX Div: integer division truncates toward zero; floats divide."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if _integers(a, b):
            a, b = np.asarray(a), np.asarray(b)
            return (np.trunc(a.astype(np.float64) / b)).astype(np.result_type(a, b))
        return np.asarray(np.true_divide(a, b))


def _floor_div(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.floor_divide(a, b)


def _pow(a, b):
    if _integers(a, b):
        a, b = np.asarray(a), np.asarray(b)
        return np.power(a, np.abs(b)) * (b >= 0)  # torch/onnx: negative int exponent -> 0 or 1
    with np.errstate(all="ignore"):
        return np.power(a, b)


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": _div,
    "FloorDiv": _floor_div,
    "DivTrunc": _div_trunc,
    "Mod": np.mod,  # python/torch.remainder semantics: sign of divisor
    "Fmod": np.fmod,  # C semantics: sign of dividend
    "Pow": _pow,
    "Max": np.maximum,
    "Min": np.minimum,
    "Equal": np.equal,
    "NotEqual": np.not_equal,
    "Less": np.less,
    "LessEqual": np.less_equal,
    "Greater": np.greater,
    "GreaterEqual": np.greater_equal,
    "And": np.logical_and,
    "Or": np.logical_or,
    "Xor": np.logical_xor,
    "BitwiseAnd": np.bitwise_and,
    "BitwiseOr": np.bitwise_or,
    "BitwiseXor": np.bitwise_xor,
    "Atan2": np.arctan2,
}

_COMPARISONS = {"Equal", "NotEqual", "Less", "LessEqual", "Greater", "GreaterEqual", "And", "Or",
                "Xor"}  # fmt: skip


def _unary_reference(fn: Callable) -> Callable:
    def reference(inputs, dtype=None, **attrs):
        x = np.asarray(inputs[0])
        return cast_to(fn(x, **attrs), dtype)

    return reference


def _binary_operands(inputs: list, attrs: dict) -> tuple[Any, Any]:
    if "a" in attrs:
        return attrs["a"], inputs[0]
    if "b" in attrs:
        return inputs[0], attrs["b"]
    return inputs[0], inputs[1]


def _binary_reference(fn: Callable) -> Callable:
    def reference(inputs, dtype=None, keep_dtype=False, **attrs):
        a, b = _binary_operands(inputs, attrs)
        with np.errstate(all="ignore"):
            result = fn(a, b)
        if not isinstance(result, np.ndarray):
            result = np.asarray(result)
        if keep_dtype:  # ONNX: the result has the first operand's type
            dtype = dtype_name(np.asarray(a).dtype)
        return cast_to(result, dtype)

    return reference


def _unary_infer(op: str):
    def infer(specs, dtype=None, **attrs):
        x = specs[0]
        if x is None:
            return [None]
        out = dtype or ("bool" if op in _BOOL_RESULT else x.dtype)
        if out in ("int64", "int32", "bool") and op in _FLOAT_RESULT:
            out = "float32"
        return [TensorSpec(out, x.shape)]

    return infer


_FLOAT_RESULT = {"Exp", "Log", "Sqrt", "Rsqrt", "Reciprocal", "Sin", "Cos", "Tanh", "Sigmoid",
                 "Silu", "Erf", "Log1p", "Expm1", "Softplus", "Tan", "Gelu"}  # fmt: skip


def _scalar_dtype(value: Any, like: str) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return like if like != "bool" else "int64"
    return like if like.startswith("float") or like == "bfloat16" else "float32"


def _binary_infer(op: str):
    def infer(specs, dtype=None, keep_dtype=False, **attrs):
        if keep_dtype and specs[0] is not None:
            dtype = specs[0].dtype
        if "a" in attrs or "b" in attrs:
            x = specs[0]
            if x is None:
                return [None]
            scalar = attrs.get("a", attrs.get("b"))
            shape, base = x.shape, _scalar_dtype(scalar, x.dtype)
        else:
            if specs[0] is None or specs[1] is None:
                return [None]
            shape = broadcast_shapes(specs[0].shape, specs[1].shape)
            base = dtype_name(np.result_type(*(np.dtype(_np_name(s.dtype)) for s in specs[:2])))
        if op in _COMPARISONS:
            base = "bool"
        elif op == "Div" and base in ("int64", "int32", "int16", "int8", "uint8", "bool"):
            base = "float32"
        return [TensorSpec(dtype or base, shape)]

    return infer


def _np_name(dtype: str) -> str:
    return "float32" if dtype == "bfloat16" else ("object" if dtype == "string" else dtype)


def _where_reference(inputs, dtype=None, **attrs):
    cond = np.asarray(inputs[0]).astype(bool, copy=False)
    a = attrs["a"] if "a" in attrs else inputs[1]
    b = attrs["b"] if "b" in attrs else inputs[-1]
    return cast_to(np.where(cond, a, b), dtype)


def _where_infer(specs, dtype=None, **attrs):
    shapes = [s.shape if s is not None else None for s in specs]
    tensors = [s for s in specs[1:] if s is not None]
    base = dtype or (tensors[0].dtype if tensors else "float32")
    return [TensorSpec(base, broadcast_shapes(*shapes))]


def _cast_reference(inputs, to: str, **attrs):
    x = np.asarray(inputs[0])
    if to == "bool":
        return x.astype(bool)
    if np.dtype(_np_name(to)).kind in "iu" and x.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            return np.trunc(x).astype(_np_name(to))
    return cast_to(x, to)


def _cast_infer(specs, to: str, **attrs):
    return [TensorSpec(to, specs[0].shape if specs[0] is not None else None)]


def _clip_reference(inputs, min=None, max=None, dtype=None):
    x = np.asarray(inputs[0])
    lo = inputs[1] if len(inputs) > 1 and inputs[1] is not None else min
    hi = inputs[2] if len(inputs) > 2 and inputs[2] is not None else max
    if lo is not None:
        x = np.maximum(x, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        x = np.minimum(x, np.asarray(hi, dtype=x.dtype))
    return cast_to(x, dtype)


def _gelu_reference(inputs, approximate="none", dtype=None):
    x = np.asarray(inputs[0])
    return cast_to(gelu(x, approximate), dtype)


def _leaky_relu_reference(inputs, alpha=0.01, dtype=None):
    x = np.asarray(inputs[0])
    return np.where(x >= 0, x, x * np.asarray(alpha, x.dtype))


def _elu_reference(inputs, alpha=1.0, dtype=None):
    x = np.asarray(inputs[0])
    with np.errstate(over="ignore"):
        return np.where(x > 0, x, (alpha * (np.exp(x) - 1)).astype(x.dtype))


def _hard_sigmoid_reference(inputs, alpha=1 / 6, beta=0.5, dtype=None):
    x = np.asarray(inputs[0])
    return np.clip(alpha * x + beta, 0, 1).astype(x.dtype)


def _hardswish_reference(inputs, dtype=None):
    x = np.asarray(inputs[0])
    return (x * np.clip(x / 6 + 0.5, 0, 1)).astype(x.dtype)


def build() -> dict[str, OpDef]:
    ops: dict[str, OpDef] = {}
    for name, fn in UNARY.items():
        ops[name] = OpDef(name, _unary_reference(fn), _unary_infer(name), elementwise=True,
                          doc=f"elementwise {name.lower()}")  # fmt: skip
    for name, fn in BINARY.items():
        ops[name] = OpDef(name, _binary_reference(fn), _binary_infer(name), elementwise=True,
                          doc=f"broadcasting {name.lower()}; scalar operand in attr a or b")  # fmt: skip
    ops["Gelu"] = OpDef("Gelu", _gelu_reference, _unary_infer("Gelu"), elementwise=True,
                        doc="GELU; approximate='none' (erf) or 'tanh'")  # fmt: skip
    ops["LeakyRelu"] = OpDef("LeakyRelu", _leaky_relu_reference, _unary_infer("LeakyRelu"), elementwise=True)
    ops["Elu"] = OpDef("Elu", _elu_reference, _unary_infer("Elu"), elementwise=True)
    ops["HardSigmoid"] = OpDef("HardSigmoid", _hard_sigmoid_reference, _unary_infer("HardSigmoid"),
                               elementwise=True)  # fmt: skip
    ops["HardSwish"] = OpDef("HardSwish", _hardswish_reference, _unary_infer("HardSwish"), elementwise=True)
    ops["Where"] = OpDef("Where", _where_reference, _where_infer, elementwise=True,
                         doc="select(cond, a, b); a/b may be scalars in attrs")  # fmt: skip
    ops["Cast"] = OpDef("Cast", _cast_reference, _cast_infer, elementwise=True, doc="convert dtype")
    ops["Clip"] = OpDef("Clip", _clip_reference, _unary_infer("Clip"), elementwise=True)
    return ops

"""Bindings from op-table entries to ``skillmill.native`` kernels, when the library is built.

``bind_native(op, attrs)`` returns ``kernel(inputs, attrs) -> output`` or None when the library
is missing, lacks the kernel, or the node's attributes fall outside what the kernel does.  A
bound kernel checks dtypes/layouts at run time and, for inputs outside its contract (float64, an
unsupported broadcast), runs the numpy reference instead, so a binding never changes results.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from . import OPS

Kernel = Callable[[list[Any], dict[str, Any]], Any]
_F32 = np.dtype(np.float32)


@functools.lru_cache(maxsize=1)
def native_module() -> Any | None:
    try:
        from skillmill import native
    except Exception:
        return None
    try:
        return native if native.available() else None
    except Exception:
        return None


def _f32(*arrays: Any) -> bool:
    return all(isinstance(a, np.ndarray) and a.dtype == _F32 for a in arrays)


def _c(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _with_fallback(op: str, fast: Callable[[list[Any], dict[str, Any]], Any | None]) -> Kernel:
    reference = OPS[op].reference

    def kernel(inputs: list[Any], attrs: dict[str, Any]) -> Any:
        result = fast(inputs, attrs)
        if result is None:  # declined these arguments: numpy runs it, and a profile says so
            kernel.fallbacks += 1  # type: ignore[attr-defined]
            return reference(inputs, **attrs)
        return result

    kernel.native_op = op  # type: ignore[attr-defined]
    kernel.fallbacks = 0  # type: ignore[attr-defined]
    return kernel


def bind_native(op: str, attrs: dict[str, Any], outputs: list[str] | None = None) -> Kernel | None:
    lib = native_module()
    if op == "LayerNorm" and outputs and any(outputs[1:]):
        return None  # the kernel does not return mean/rstd
    if lib is None:
        return None
    maker = _BINDERS.get(op)
    if maker is None:
        return None
    fast = maker(lib, attrs)
    return None if fast is None else _with_fallback(op, fast)


# -- one binder per op: (lib, attrs) -> fast(inputs, attrs) -> result | None ---------------------
def _linear(lib, attrs):
    if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        return None
    if attrs.get("activation", "none") not in ("none", "relu", "gelu", "gelu_tanh", "silu", "tanh"):
        return None

    def fast(inputs, attrs):
        x, w = inputs[0], inputs[1]
        bias = inputs[2] if len(inputs) > 2 else None
        residual = inputs[3] if len(inputs) > 3 else None
        if not _f32(x, w) or (bias is not None and (not _f32(bias) or bias.shape != w.shape[:1])) or x.ndim < 1:
            return None
        y = lib.linear(_c(x), _c(w), None if bias is None else _c(bias), attrs.get("activation", "none"))
        if residual is not None:
            if not _f32(residual) or residual.shape != y.shape:
                return None
            lib.add(y, _c(residual), out=y)
        return y

    return fast


def _matmul(lib, attrs):
    if attrs.get("dtype") not in (None, "float32"):
        return None

    def fast(inputs, attrs):
        a, b = inputs
        if not _f32(a, b) or a.ndim < 2 or b.ndim < 2:
            return None
        return lib.matmul(_c(a), _c(b))

    return fast


def _softmax(lib, attrs):
    def fast(inputs, attrs):
        x = inputs[0]
        if not _f32(x) or x.ndim == 0 or attrs.get("axis", -1) % x.ndim != x.ndim - 1:
            return None
        return lib.softmax(_c(x))

    return fast


def _layer_norm(lib, attrs):
    if attrs.get("axis", -1) != -1:
        return None

    def fast(inputs, attrs):
        x = inputs[0]
        w = inputs[1] if len(inputs) > 1 else None
        b = inputs[2] if len(inputs) > 2 else None
        if not _f32(x) or any(t is not None and not _f32(t) for t in (w, b)):
            return None
        y = lib.layer_norm(_c(x), w, b, eps=float(attrs.get("eps", 1e-5)))
        return (y, None, None)

    return fast


def _rms_norm(lib, attrs):
    if attrs.get("offset", 0.0):
        return None

    def fast(inputs, attrs):
        x = inputs[0]
        w = inputs[1] if len(inputs) > 1 else None
        if not _f32(x) or (w is not None and not _f32(w)):
            return None
        return lib.rms_norm(_c(x), w, eps=float(attrs.get("eps", 1e-6)))

    return fast


def _attention(lib, attrs):
    def fast(inputs, attrs):
        q, k, v = inputs[:3]
        mask = inputs[3] if len(inputs) > 3 else None
        if not _f32(q, k, v) or q.ndim != 4 or k.ndim != 4:
            return None
        if mask is not None and not (isinstance(mask, np.ndarray) and mask.dtype in (_F32, np.bool_)):
            return None
        return lib.attention(_c(q), _c(k), _c(v), mask, causal=bool(attrs.get("causal", False)),
                             scale=attrs.get("scale"))  # fmt: skip

    return fast


def _qkv_attention(lib, attrs):
    def fast(inputs, attrs):
        qkv = inputs[0]
        mask = inputs[1] if len(inputs) > 1 else None
        if not _f32(qkv) or qkv.ndim != 3:
            return None
        if mask is not None and not (isinstance(mask, np.ndarray) and mask.dtype in (_F32, np.bool_)):
            return None
        return lib.qkv_attention(_c(qkv), int(attrs["heads"]), mask, causal=bool(attrs.get("causal", False)),
                                 scale=attrs.get("scale"))  # fmt: skip

    return fast


def _activation(kind: str):
    def binder(lib, attrs):
        if attrs.get("dtype") not in (None, "float32"):
            return None
        if kind == "gelu" and attrs.get("approximate", "none") not in ("none", "tanh"):
            return None

        def fast(inputs, attrs):
            x = inputs[0]
            if not _f32(x):
                return None
            name = kind if kind != "gelu" else ("gelu_tanh" if attrs.get("approximate") == "tanh" else "gelu")
            return lib.activation(_c(x), name)

        return fast

    return binder


def _add(lib, attrs):
    if "a" in attrs or "b" in attrs or attrs.get("dtype") not in (None, "float32"):
        return None

    def fast(inputs, attrs):
        a, b = inputs
        if not _f32(a, b):
            return None
        if a.shape == b.shape or (b.ndim == 1 and a.ndim >= 1 and b.shape == a.shape[-1:]):
            return lib.add(_c(a), _c(b))
        if a.ndim == 1 and b.ndim >= 1 and a.shape == b.shape[-1:]:
            return lib.add(_c(b), _c(a))
        return None

    return fast


def _embedding(lib, attrs):
    def fast(inputs, attrs):
        table, ids = inputs
        if not _f32(table) or table.ndim != 2 or not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu":
            return None
        if ids.size and (ids.min() < 0 or ids.max() >= table.shape[0]):
            return None
        return lib.embedding(ids, _c(table))

    return fast


def _conv(lib, attrs):
    def fast(inputs, attrs):
        x, w = inputs[0], inputs[1]
        bias = inputs[2] if len(inputs) > 2 else None
        if not _f32(x, w) or x.ndim not in (3, 4) or w.ndim != x.ndim:
            return None
        if bias is not None and not _f32(bias):
            return None
        nsp = x.ndim - 2
        stride, dilation = _per_dim(attrs.get("stride", [1]), nsp), _per_dim(attrs.get("dilation", [1]), nsp)
        pads = attrs.get("pads")
        pads = [tuple(p) for p in pads] if pads is not None else [(p, p) for p in _per_dim(attrs.get("padding", [0]), nsp)]
        if len(pads) != nsp or len(stride) != nsp or len(dilation) != nsp or min(min(p) for p in pads) < 0:
            return None  # negative pads crop (ONNX): numpy's reference does that
        if any(before != after for before, after in pads):  # uneven (ONNX's SAME, a causal pad):
            x = np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads])  # pad once, then convolve exactly
            pads = [(0, 0)] * nsp
        padding = [before for before, _ in pads]
        if nsp == 1:  # a 1-D conv is the 2-D kernel over a height of one: the same sums, in order
            x, w = x[:, :, None, :], w[:, :, None, :]
            stride, padding, dilation = [1, *stride], [0, *padding], [1, *dilation]
        y = lib.conv2d(_c(x), _c(w), None if bias is None else _c(bias), stride=tuple(stride),
                       padding=tuple(padding), dilation=tuple(dilation),
                       groups=int(attrs.get("groups", 1)))  # fmt: skip
        return y.reshape(y.shape[0], y.shape[1], y.shape[3]) if nsp == 1 else y

    return fast


def _per_dim(value: Any, n: int) -> list[int]:
    value = [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]
    return value * n if len(value) == 1 else value


def _qlinear(lib, attrs):
    # int8: activations quantized per token too (the scheme's definition, ir/ops/quantized.py).
    matmul = {"int8": lib.linear_int8_dynamic, "q4_0": lib.matmul_q4_0,
              "q8_0": lib.matmul_q8_0}.get(attrs.get("scheme"))  # fmt: skip
    activation = attrs.get("activation", "none")
    if matmul is None or activation not in ("none", "relu", "gelu", "gelu_tanh", "silu", "tanh"):
        return None

    packed: dict[tuple, tuple] = {}  # (id(q), isa) -> (q, its int8 panels): repacked once, not per call

    def weight(q):
        if attrs.get("scheme") != "int8" or not isinstance(q, np.ndarray):
            return q
        key = (id(q), lib.get_isa())
        if key not in packed:
            packed[key] = (q, lib.pack_int8_weight(q))
        return packed[key][1]

    def fast(inputs, attrs):
        x, q, scales = inputs[0], weight(inputs[1]), inputs[2]
        bias = inputs[3] if len(inputs) > 3 and inputs[3] is not None else None
        residual = inputs[4] if len(inputs) > 4 else None
        if not _f32(x) or x.ndim < 1 or (bias is not None and not _f32(bias)):
            return None
        if x.shape[-1] != int(attrs.get("in_features", -1)):
            return None
        # The wrappers check the weight's layout against x; a mismatch is an error, not a fallback.
        y = matmul(_c(x), q, scales, None if bias is None else _c(bias), activation)
        if residual is not None:
            if not _f32(residual) or residual.shape != y.shape:
                return None
            y += residual  # the kernel has no residual epilogue; one pass over y
        return y

    return fast


_BINDERS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "Linear": _linear,
    "QLinear": _qlinear,
    "MatMul": _matmul,
    "Softmax": _softmax,
    "LayerNorm": _layer_norm,
    "RMSNorm": _rms_norm,
    "Attention": _attention,
    "QKVAttention": _qkv_attention,
    "Gelu": _activation("gelu"),
    "Silu": _activation("silu"),
    "Tanh": _activation("tanh"),
    "Relu": _activation("relu"),
    "Add": _add,
    "Embedding": _embedding,
    "Conv": _conv,
}

NATIVE_OPS = tuple(sorted(_BINDERS))

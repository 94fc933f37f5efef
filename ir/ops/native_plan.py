"""Native kernels compiled into an execution plan: one fixed C call per node.

``compile_native(node, attrs, shapes, constants, packed)`` looks at a node whose input and output
shapes, dtypes and layouts are known (a plan is specialised to one input signature) and returns a
``CCall``: the C function and its arguments, with every check the public ``skillmill.native``
wrappers make done here, once.  What a wrapper would check per call and a plan cannot know in
advance (a value computed at run time) is named as a ``Ptr`` and guarded per run by the plan.
None means "not here": the node then runs through its ordinary kernel (``ops/native.py`` or the
numpy reference), so compiling never changes what a node computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from skillmill.native._checks import ACTIVATIONS as _NATIVE_ACTIVATIONS

from .native import native_module

_F32 = np.dtype(np.float32)
_I64 = np.dtype(np.int64)
# The C kernels' activation enum, from its one Python spelling (native/_checks.py, beside skm_api.h).
ACTIVATION_IDS = {name: code for name, code in _NATIVE_ACTIVATIONS.items() if name != "gelu_erf"}


@dataclass(frozen=True)
class Meta:
    """What a plan knows about a value: shape, dtype, C-contiguity."""

    shape: tuple[int, ...]
    dtype: np.dtype
    contiguous: bool

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Ptr:
    """Pointer to a value's first element, plus ``offset`` elements."""

    name: str
    offset: int = 0


@dataclass(frozen=True)
class Out:
    """Pointer to the node's output number ``index``."""

    index: int = 0


@dataclass
class CCall:
    fn: Callable[..., int]
    args: list[Any]
    keep: list[Any] = field(default_factory=list)  # arrays the literal pointers point into


Compiler = Callable[..., "CCall | None"]


def compile_native(node: Any, attrs: dict[str, Any], meta: dict[str, Meta], constants: dict[str, np.ndarray],
                   packed: Callable[[str], Any]) -> CCall | None:  # fmt: skip
    """``meta`` covers the node's inputs and outputs; ``constants`` holds the values fixed for
    the plan's lifetime (weights, shape-only values); ``packed(name)`` packs a constant
    [out, in] weight for the active ISA once and returns the PackedLinearWeight (None: no room)."""
    compiler = _COMPILERS.get(node.op)
    if native_module() is None or compiler is None:
        return None
    from skillmill.native._lib import lib

    if any(not name or meta.get(name) is None for name in node.outputs[:1]):
        return None
    ins = [meta.get(name) if name else None for name in node.inputs]
    if any(name and m is None for name, m in zip(node.inputs, ins)):
        return None
    outs = [meta[name] for name in node.outputs if name]
    if any(m.size == 0 for m in outs) or any(m is not None and m.size == 0 for m in ins):
        return None  # empty tensors: the ordinary kernels handle them
    return compiler(lib, node, attrs, ins, outs, constants, packed)


def _f32(*metas: Meta | None) -> bool:
    return all(m is not None and m.dtype == _F32 and m.contiguous for m in metas)


def _optional(node: Any, index: int) -> str:
    return node.inputs[index] if len(node.inputs) > index else ""


def _linear(lib, node, attrs, ins, outs, constants, packed):
    act = ACTIVATION_IDS.get(attrs.get("activation", "none"))
    if act is None or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        return None
    x, w = ins[0], ins[1]
    weight = node.inputs[1]
    if (
        not _f32(x)
        or weight not in constants
        or w.dtype != _F32
        or len(w.shape) != 2
        or not x.shape
    ):
        return None
    n, k = w.shape
    if x.shape[-1] != k or outs[0].shape != x.shape[:-1] + (n,) or outs[0].dtype != _F32:
        return None
    bias, residual = _optional(node, 2), _optional(node, 3)
    if bias and (not _f32(ins[2]) or ins[2].shape != (n,)):
        return None
    if residual and (not _f32(ins[3]) or ins[3].shape != outs[0].shape):
        return None
    pw = packed(weight)
    if pw is None:  # over the executor's budget for packed copies
        return None
    args = [pw.isa_id, Ptr(node.inputs[0]), _lit_ptr(pw.data), Ptr(bias) if bias else None,
            Ptr(residual) if residual else None, Out(0), math.prod(x.shape[:-1]), n, k, act]  # fmt: skip
    return CCall(lib.skm_linear_packed, args, [pw])


_I8 = np.dtype(np.int8)
_U8 = np.dtype(np.uint8)


def _qlinear_blocks(node, attrs, ins, outs, constants, fn, q_dtype, q_width):
    """A weight-only block QLinear (32 values a block, one float32 scale each; q [out,
    ceil(K/32), q_width] of q_dtype) onto its C linear: a decoded token is one small call per
    layer, so the Python wrapper's checks are done here, once, against the recorded layouts."""
    act = ACTIVATION_IDS.get(attrs.get("activation", "none"))
    x, q, scales = ins[0], ins[1], ins[2]
    names = node.inputs
    if act is None or len(names) > 4 or not _f32(x) or not x.shape:
        return None
    if names[1] not in constants or names[2] not in constants:
        return None
    if not np.isfinite(constants[names[2]]).all():  # the wrapper's check, made once
        return None
    k = x.shape[-1]
    blocks = -(-k // 32)
    if q.dtype != q_dtype or len(q.shape) != 3 or q.shape[1:] != (blocks, q_width):
        return None
    if not q.contiguous:
        return None
    n = q.shape[0]
    if not _f32(scales) or scales.shape != (n, blocks) or outs[0].shape != x.shape[:-1] + (n,) \
            or outs[0].dtype != _F32:  # fmt: skip
        return None
    bias = _optional(node, 3)
    if bias and (not _f32(ins[3]) or ins[3].shape != (n,)):
        return None
    args = [Ptr(names[0]), Ptr(names[1]), Ptr(names[2]), Ptr(bias) if bias else None, Out(0),
            math.prod(x.shape[:-1]), n, k, act]  # fmt: skip
    return CCall(fn, args)


def _qlinear_q8_0(lib, node, attrs, ins, outs, constants):
    """q8_0 QLinear onto skm_linear_q8_0 (q int8 [out, blocks, 32])."""
    return _qlinear_blocks(node, attrs, ins, outs, constants, lib.skm_linear_q8_0, _I8, 32)


def _qlinear_q4_0(lib, node, attrs, ins, outs, constants):
    """q4_0 QLinear onto skm_linear_q4_0 (q uint8 [out, blocks, 16], two values a byte)."""
    return _qlinear_blocks(node, attrs, ins, outs, constants, lib.skm_linear_q4_0, _U8, 16)


def _qlinear(lib, node, attrs, ins, outs, constants, packed):
    """int8 QLinear (activations quantized per token) onto skm_linear_int8_dynamic, its weight
    packed for this plan's ISA once; a residual stays its own Add (the pass splits it off)."""
    act = ACTIVATION_IDS.get(attrs.get("activation", "none"))
    if attrs.get("scheme") == "q8_0":
        return _qlinear_q8_0(lib, node, attrs, ins, outs, constants)
    if attrs.get("scheme") == "q4_0":
        return _qlinear_q4_0(lib, node, attrs, ins, outs, constants)
    if attrs.get("scheme") != "int8" or act is None or len(node.inputs) > 4:
        return None
    x, q, scales = ins[0], ins[1], ins[2]
    names = node.inputs
    if not _f32(x) or not x.shape or names[1] not in constants or names[2] not in constants:
        return None
    if q.dtype != _I8 or len(q.shape) != 2 or not q.contiguous or not _f32(scales) or scales.shape != q.shape[:1]:
        return None
    n, k = q.shape
    if x.shape[-1] != k or outs[0].shape != x.shape[:-1] + (n,) or outs[0].dtype != _F32:
        return None
    bias = _optional(node, 3)
    if bias and (not _f32(ins[3]) or ins[3].shape != (n,)):
        return None
    from skillmill import native

    if k > native.INT8_MAX_K:
        return None
    weight = native.pack_int8_weight(constants[names[1]])
    panels = _lit_ptr(weight.panels, "int16_t[]") if weight.panels is not None else None
    args = [Ptr(names[0]), Ptr(names[1]), panels, weight.isa_id, Ptr(names[2]), Ptr(bias) if bias else None,
            Out(0), math.prod(x.shape[:-1]), n, k, act]  # fmt: skip
    return CCall(lib.skm_linear_int8_dynamic, args, [weight])


def _mask_strides(mask: Meta | None, shape: tuple[int, int, int, int]) -> list[int] | None:
    """Element strides over (batch, head, query row) of a contiguous float mask broadcast to
    ``shape``; None when it does not broadcast or would need its key axis copied."""
    if mask is None or mask.dtype != _F32 or not mask.contiguous or len(mask.shape) > 4:
        return None
    dims = (1,) * (4 - len(mask.shape)) + mask.shape
    if dims[3] != shape[3] or any(d not in (1, s) for d, s in zip(dims, shape)):
        return None
    strides, step = [0, 0, 0, 0], 1
    for axis in range(3, -1, -1):
        strides[axis] = step if dims[axis] != 1 else 0
        step *= dims[axis]
    return strides[:3]


def _qkv_attention(lib, node, attrs, ins, outs, constants, packed):
    qkv = ins[0]
    if not _f32(qkv) or len(qkv.shape) != 3:
        return None
    b, s, e3 = qkv.shape
    heads = int(attrs.get("heads", 1))
    if heads < 1 or e3 % (3 * heads) or outs[0].shape != (b, s, e3 // 3):
        return None
    e = e3 // 3
    d = e // heads
    strides = np.array([s * e3, d, e3] * 3 + [s * e, d, e], np.int64)
    mask = _mask_args(node, 1, ins, (b, heads, s, s))
    if mask is None:
        return None
    scale = attrs.get("scale")
    scale = float(1.0 / math.sqrt(d) if scale is None else scale)
    if not math.isfinite(scale):
        return None
    source = node.inputs[0]
    args = [Ptr(source), Ptr(source, e), Ptr(source, 2 * e), Out(0), _lit_ptr(strides, "int64_t[]"), b, heads, heads,
            s, s, d, d, mask[0], mask[1], int(bool(attrs.get("causal", False))), scale]  # fmt: skip
    return CCall(lib.skm_attention_strided, args, [strides] + mask[2])


def _attention(lib, node, attrs, ins, outs, constants, packed):
    q, k, v = ins[:3]
    if not _f32(q, k, v) or len(q.shape) != 4 or len(k.shape) != 4 or len(v.shape) != 4:
        return None
    b, hq, sq, d = q.shape
    bk, hkv, sk, dk = k.shape
    if bk != b or dk != d or v.shape[:3] != k.shape[:3] or hkv == 0 or hq % hkv:
        return None
    dv = v.shape[3]
    if outs[0].shape != (b, hq, sq, dv):
        return None
    mask = _mask_args(node, 3, ins, (b, hq, sq, sk))
    if mask is None:
        return None
    scale = attrs.get("scale")
    scale = float(
        1.0 / math.sqrt(d) if scale is None and d > 0 else (1.0 if scale is None else scale)
    )
    if not math.isfinite(scale):
        return None
    args = [Ptr(node.inputs[0]), Ptr(node.inputs[1]), Ptr(node.inputs[2]), Out(0), b, hq, hkv, sq, sk,
            d, dv, mask[0], mask[1], int(bool(attrs.get("causal", False))), scale]  # fmt: skip
    return CCall(lib.skm_attention, args, mask[2])


def _mask_args(node, index, ins, shape):
    """[mask pointer, strides pointer, keep] for the optional mask input; None to decline."""
    name = _optional(node, index)
    if not name:
        return [None, None, []]
    strides = _mask_strides(ins[index], shape)
    if strides is None:
        return None
    array = np.array(strides, np.int64)
    return [Ptr(name), _lit_ptr(array, "int64_t[]"), [array]]


def _layer_norm(lib, node, attrs, ins, outs, constants, packed):
    if attrs.get("axis", -1) != -1 or any(node.outputs[1:]):
        return None
    return _norm(lib.skm_layer_norm, node, ins, outs, float(attrs.get("eps", 1e-5)), bias=True)


def _rms_norm(lib, node, attrs, ins, outs, constants, packed):
    if attrs.get("offset", 0.0):
        return None
    return _norm(lib.skm_rms_norm, node, ins, outs, float(attrs.get("eps", 1e-6)), bias=False)


def _norm(fn, node, ins, outs, eps, bias):
    x = ins[0]
    if not _f32(x) or not x.shape or outs[0].shape != x.shape or not math.isfinite(eps):
        return None
    h = x.shape[-1]
    params = [_optional(node, 1)] + ([_optional(node, 2)] if bias else [])
    for i, name in enumerate(params, start=1):
        if name and (not _f32(ins[i]) or ins[i].shape != (h,)):
            return None
    args = [Ptr(node.inputs[0])] + [Ptr(p) if p else None for p in params]
    return CCall(fn, args + [Out(0), x.size // h, h, eps])


def _add(lib, node, attrs, ins, outs, constants, packed):
    if "a" in attrs or "b" in attrs or attrs.get("dtype") not in (None, "float32") or len(ins) != 2:
        return None
    a, b = ins
    if not _f32(a, b) or outs[0].dtype != _F32:
        return None
    first, second = node.inputs
    if a.size < b.size:  # the kernel adds the smaller operand to the bigger one
        a, b, first, second = b, a, second, first
    if outs[0].shape != a.shape:
        return None
    if a.shape == b.shape:
        return CCall(lib.skm_add, [Ptr(first), Ptr(second), Out(0), 1, a.size, 0])
    dims = (1,) * (len(a.shape) - len(b.shape)) + b.shape
    lead = 0  # b is a block repeated over a's leading dims: ones, then a's trailing shape
    while lead < len(dims) and dims[lead] == 1 and a.shape[lead] != 1:
        lead += 1
    if dims[lead:] != a.shape[lead:]:
        return None
    rows = math.prod(a.shape[:lead])
    return CCall(lib.skm_add, [Ptr(first), Ptr(second), Out(0), rows, a.size // rows, 1])


def _embedding(lib, node, attrs, ins, outs, constants, packed):
    table, ids = ins
    if node.inputs[0] not in constants or not _f32(table) or len(table.shape) != 2:
        return None
    if ids.dtype != _I64 or not ids.contiguous or outs[0].shape != ids.shape + table.shape[1:]:
        return None
    # the kernel refuses an id outside [0, vocab) before reading anything; the plan then
    # reruns the node through the checked wrapper, which raises the IndexError
    return CCall(
        lib.skm_embedding,
        [Ptr(node.inputs[1]), ids.size, Ptr(node.inputs[0]), *table.shape, Out(0)],
    )


def _activation(kind: str):
    def compiler(lib, node, attrs, ins, outs, constants, packed):
        if (
            attrs.get("dtype") not in (None, "float32")
            or not _f32(ins[0])
            or outs[0].shape != ins[0].shape
        ):
            return None
        name = kind
        if kind == "gelu":
            approximate = attrs.get("approximate", "none")
            if approximate not in ("none", "tanh"):
                return None
            name = "gelu_tanh" if approximate == "tanh" else "gelu"
        return CCall(
            lib.skm_activation, [Ptr(node.inputs[0]), Out(0), ins[0].size, ACTIVATION_IDS[name]]
        )

    return compiler


def _softmax(lib, node, attrs, ins, outs, constants, packed):
    x = ins[0]
    if attrs.get("dtype") not in (None, "float32") or not _f32(x) or not x.shape:
        return None
    if attrs.get("axis", -1) % len(x.shape) != len(x.shape) - 1 or outs[0].shape != x.shape:
        return None
    n = x.shape[-1]
    return CCall(
        lib.skm_softmax, [Ptr(node.inputs[0]), Out(0), x.size // n, n, None, None, 0, 1, 1.0]
    )


class _Literal:
    """A pointer fixed at compile time (packed weights, stride tables)."""

    def __init__(self, array: np.ndarray, ctype: str):
        self.array = array
        self.ctype = ctype


def _lit_ptr(array: np.ndarray, ctype: str = "float[]") -> _Literal:
    return _Literal(array, ctype)


_COMPILERS: dict[str, Compiler] = {
    "Linear": _linear,
    "QLinear": _qlinear,
    "QKVAttention": _qkv_attention,
    "Attention": _attention,
    "LayerNorm": _layer_norm,
    "RMSNorm": _rms_norm,
    "Add": _add,
    "Embedding": _embedding,
    "Gelu": _activation("gelu"),
    "Silu": _activation("silu"),
    "Tanh": _activation("tanh"),
    "Relu": _activation("relu"),
    "Softmax": _softmax,
}

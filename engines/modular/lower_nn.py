"""MAX lowerings of the IR's neural-network ops: matmul and the fused Linear, softmax, the norms,
attention (also the fused QKV form), convolution, pooling and reductions.

Layouts: the IR is channels-first (torch); MAX's conv and pool kernels are channels-last, so a
2-D conv runs as permute -> conv2d (NHWC, RSCF filter) -> permute, with the filter re-laid out
once in numpy as its own external weight."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from skillmill.ir.graph import Node

from . import adapter
from .adapter import ops
from .lower_elementwise import activation
from .lower_shape import _range_of, norm_axis, slice_dim
from .lowering import FLOAT_TYPES, Lowering, MaxLoweringError, materialise


def _opt(node: Node, index: int) -> str | None:
    return node.inputs[index] if len(node.inputs) > index and node.inputs[index] else None


# -- matmul family ---------------------------------------------------------------------------
def _matmul(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = lw.tensor(node.inputs[0]), lw.tensor(node.inputs[1])
    if lw.tdtype(a) not in FLOAT_TYPES or lw.tdtype(b) not in FLOAT_TYPES:
        raise MaxLoweringError(node.op, node.name, "integer matmul has no MAX kernel")
    b = lw.cast(b, lw.tdtype(a))
    squeeze_a = squeeze_b = False
    if len(a.shape) == 1:
        a, squeeze_a = ops.unsqueeze(a, 0), True
    if len(b.shape) == 1:
        b, squeeze_b = ops.unsqueeze(b, 1), True
    y = ops.matmul(a, b)
    if squeeze_b:
        y = ops.squeeze(y, -1)
    if squeeze_a:
        y = ops.squeeze(y, -2 if len(y.shape) > 1 else 0)
    dtype = attrs.get("dtype")
    return [lw.cast(y, dtype) if dtype else y]


def _linear(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """act(alpha * x @ w.T + beta * b) + residual, w stored [out, in]."""
    x = lw.tensor(node.inputs[0])
    w_name = node.inputs[1]
    custom = lw.custom_kernels.get("Linear")
    if custom is not None:
        y = custom(lw, node, attrs)
        if y is not None:
            return [y]
    if lw.is_weight(w_name) and len(lw.graph.weights[w_name].shape) == 2:
        w_t = lw.derived_weight(w_name, "T", lambda a: a.T)
    else:
        w = lw.tensor(w_name)
        w_t = ops.transpose(w, -1, -2)
    y = ops.matmul(x, lw.cast(w_t, lw.tdtype(x)))
    dt = lw.tdtype(y)
    if attrs.get("alpha", 1.0) != 1.0:
        y = y * lw.const(attrs["alpha"], dt)
    bias = _opt(node, 2)
    if bias:
        b = lw.tensor(bias)
        if attrs.get("beta", 1.0) != 1.0:
            b = b * lw.const(attrs["beta"], dt)
        y = y + b
    y = activation(lw, y, attrs.get("activation", "none"))
    residual = _opt(node, 3)
    if residual:
        y = y + lw.tensor(residual)
    return [y]


# -- softmax and normalisation ---------------------------------------------------------------
def _softmax(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    if lw.tdtype(x) not in FLOAT_TYPES:
        x = lw.cast(x, "float32")
    axis = norm_axis(attrs.get("axis", -1), len(x.shape))
    y = _along_last(x, axis, lambda t: ops.softmax(t) if node.op == "Softmax" else ops.logsoftmax(t))
    dtype = attrs.get("dtype")
    return [lw.cast(y, dtype) if dtype else y]


def _along_last(x: Any, axis: int, fn: Any) -> Any:
    """Apply a last-axis op along ``axis`` (permuting there and back)."""
    rank = len(x.shape)
    if axis == rank - 1:
        return fn(x)
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    return ops.permute(fn(ops.permute(x, perm)), perm)


def _layer_norm(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    rank = len(x.shape)
    axis = norm_axis(attrs.get("axis", -1), rank)
    eps = float(attrs.get("eps", 1e-5))
    w, b = _opt(node, 1), _opt(node, 2)
    stats_used = any(node.outputs[1:])
    dt = lw.tdtype(x)
    custom = lw.custom_kernels.get("LayerNorm")
    if axis == rank - 1 and not stats_used:
        if custom is not None:
            y = custom(lw, node, attrs)
            if y is not None:
                return [y, None, None]
        size = lw.shape(x)[-1]
        if isinstance(size, int) and size > 0:
            gamma = lw.tensor(w) if w else lw.const(np.ones(size), dt)
            beta = lw.tensor(b) if b else lw.const(np.zeros(size), dt)
            return [ops.layer_norm(x, gamma, beta, eps), None, None]
    axes = list(range(axis, rank))
    mean = x
    for a in axes:
        mean = ops.mean(mean, axis=a)
    centred = x - mean
    var = centred * centred
    for a in axes:
        var = ops.mean(var, axis=a)
    rstd = ops.rsqrt(var + lw.const(eps, dt))
    y = centred * rstd
    if w:
        y = y * lw.tensor(w)
    if b:
        y = y + lw.tensor(b)
    return [y, mean, rstd]


def _rms_norm(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    eps = float(attrs.get("eps", 1e-6))
    offset = float(attrs.get("offset", 0.0))
    w = _opt(node, 1)
    dt = lw.tdtype(x)
    if w and len(lw.tensor(w).shape) == 1:
        return [ops.rms_norm(x, lw.cast(lw.tensor(w), dt), eps, weight_offset=offset)]
    rstd = ops.rsqrt(ops.mean(x * x, axis=-1) + lw.const(eps, dt))
    y = x * rstd
    if w:
        weight = lw.tensor(w)
        y = (weight + lw.const(offset, lw.tdtype(weight)) if offset else weight) * y
    return [y]


def _channel_view(lw: Lowering, t: Any, rank: int, axis: int = 1) -> Any:
    view = [1] * rank
    view[axis] = -1
    return ops.reshape(t, view)


def _group_norm(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    groups = int(attrs.get("groups", 1))
    eps = float(attrs.get("eps", 1e-5))
    shape = lw.shape(x)
    g = ops.reshape(x, [shape[0], groups, -1])
    mean = ops.mean(g, axis=-1)
    centred = g - mean
    var = ops.mean(centred * centred, axis=-1)
    y = ops.reshape(centred * ops.rsqrt(var + lw.const(eps, lw.tdtype(x))), shape)
    if _opt(node, 1):
        y = y * _channel_view(lw, lw.tensor(node.inputs[1]), len(shape))
    if _opt(node, 2):
        y = y + _channel_view(lw, lw.tensor(node.inputs[2]), len(shape))
    return [y]


def _batch_norm(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """Inference batch norm: (x - running_mean) * rsqrt(running_var + eps) * w + b."""
    x = lw.tensor(node.inputs[0])
    rank = len(x.shape)
    axis = norm_axis(attrs.get("axis", 1), rank)
    eps = float(attrs.get("eps", 1e-5))
    dt = lw.tdtype(x)
    mean = _channel_view(lw, lw.tensor(node.inputs[3]), rank, axis)
    var = _channel_view(lw, lw.tensor(node.inputs[4]), rank, axis)
    scale = ops.rsqrt(var + lw.const(eps, dt))
    if _opt(node, 1):
        scale = scale * _channel_view(lw, lw.tensor(node.inputs[1]), rank, axis)
    y = (x - mean) * scale
    if _opt(node, 2):
        y = y + _channel_view(lw, lw.tensor(node.inputs[2]), rank, axis)
    return [y]


# -- attention -------------------------------------------------------------------------------
def attention(lw: Lowering, q: Any, k: Any, v: Any, mask: Any, scale: float | None, causal: bool,
              mask_key: str | None = None) -> Any:
    """softmax(q k^T * scale + mask) v over [B, H, S, D]; GQA by broadcasting k/v heads; a query
    row with no key to attend to yields zeros (as the IR's reference does).  ``mask_key`` (the
    mask's IR name) lets every layer share one materialised mask and its dead-row factor."""
    heads, kv_heads = lw.shape(q)[-3], lw.shape(k)[-3]
    if heads != kv_heads:
        if not (isinstance(heads, int) and isinstance(kv_heads, int)):
            raise MaxLoweringError("Attention", "?", "grouped-query attention with symbolic heads")
        k, v = (_repeat_heads(lw, t, heads // kv_heads) for t in (k, v))
    dt = lw.tdtype(q)
    scale = 1.0 / math.sqrt(adapter.static_int(lw.shape(q)[-1])) if scale is None else scale
    scores = ops.matmul(q, ops.transpose(k, -1, -2))
    if scale != 1.0:
        scores = scores * lw.const(scale, dt)
    keep = None
    if mask is not None or causal:
        s, t = lw.shape(scores)[-2:]
        additive, keep = _mask_terms(lw, mask, causal, s, t, dt, mask_key)
        scores = scores + additive
    out = ops.matmul(ops.softmax(scores), v)
    if keep is not None:  # a fully masked row yields zeros
        out = out * keep
    return out


def _mask_terms(lw: Lowering, mask: Any, causal: bool, s: Any, t: Any, dt: str,
                mask_key: str | None) -> tuple[Any, Any]:  # fmt: skip
    """(additive mask, keep) for the attention of every layer, computed once per (mask, causal,
    S, T): the padding and causal parts combined, and ``keep`` [..., S, 1], 0.0 for a query row
    with no key to attend to and 1.0 otherwise.  A dead row's mask row is zeroed, so its softmax
    stays finite (no NaN) and ``out * keep`` zeroes it.  Read off the mask, which has no head
    axis, this costs one small reduction per graph instead of passes over the [B, H, S, T]
    scores in every layer.  Both are materialised: MAX 26.7 miscompiles a shared broadcasting
    compare/where chain fused into matmul epilogues (see ``lowering.materialise``)."""
    memo_key = ("attention_mask", mask_key, causal, str(s), str(t), dt)
    shareable = mask is None or mask_key is not None  # an unnamed mask cannot be told apart
    if shareable and memo_key in lw.memo:
        return lw.memo[memo_key]
    additive = None
    if mask is not None:
        if lw.tdtype(mask) == "bool":
            mask = ops.where(mask, lw.const(0.0, dt), lw.const(-np.inf, dt))
        additive = lw.cast(mask, dt)
    if causal:
        rows, cols = _range_of(lw, s), _range_of(lw, t)
        offset = lw.scalar_tensor(t, "int64") - lw.scalar_tensor(s, "int64")
        allowed = ops.greater_equal(ops.unsqueeze(rows, 1) + offset, ops.unsqueeze(cols, 0))
        causal_add = ops.where(allowed, lw.const(0.0, dt), lw.const(-np.inf, dt))
        additive = causal_add if additive is None else additive + causal_add
    additive = materialise(additive)
    dead = ops.equal(ops.max(additive, axis=-1), lw.const(-np.inf, dt))
    zero, one = lw.const(0.0, dt), lw.const(1.0, dt)
    terms = (materialise(ops.where(dead, zero, additive)), materialise(ops.where(dead, zero, one)))
    if shareable:
        lw.memo[memo_key] = terms
    return terms


def _repeat_heads(lw: Lowering, t: Any, times: int) -> Any:
    b, h, s, d = lw.shape(t)
    t = ops.broadcast_to(ops.unsqueeze(t, 2), [b, h, times, s, d])
    return ops.reshape(t, [b, h * times, s, d])


def _attention(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    custom = lw.custom_kernels.get("Attention")
    if custom is not None:
        y = custom(lw, node, attrs)
        if y is not None:
            return [y]
    q, k, v = (lw.tensor(n) for n in node.inputs[:3])
    mask = lw.tensor(node.inputs[3]) if _opt(node, 3) else None
    return [attention(lw, q, k, v, mask, attrs.get("scale"), bool(attrs.get("causal")), _opt(node, 3))]


def _qkv_attention(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    custom = lw.custom_kernels.get("QKVAttention")
    if custom is not None:
        y = custom(lw, node, attrs)
        if y is not None:
            return [y]
    qkv = lw.tensor(node.inputs[0])
    mask = lw.tensor(node.inputs[1]) if _opt(node, 1) else None
    heads = int(attrs.get("heads", 1))
    b, s, e3 = lw.shape(qkv)
    if not isinstance(e3, int):
        raise MaxLoweringError(node.op, node.name, "symbolic hidden size")
    e = e3 // 3
    parts = []
    for i in range(3):
        part = slice_dim(lw, qkv, 2, i * e, (i + 1) * e)
        parts.append(ops.permute(ops.reshape(part, [b, s, heads, e // heads]), [0, 2, 1, 3]))
    out = attention(lw, *parts, mask, attrs.get("scale"), bool(attrs.get("causal")), _opt(node, 1))
    return [ops.reshape(ops.permute(out, [0, 2, 1, 3]), [b, s, e])]


# -- convolution and pooling -----------------------------------------------------------------
def _per_dim(value: Any, n: int) -> list[int]:
    value = list(value) if isinstance(value, (list, tuple)) else [value]
    return [int(v) for v in (value * n if len(value) == 1 else value)]


def _conv(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    w_name = node.inputs[1]
    nsp = len(x.shape) - 2
    if nsp not in (1, 2):
        raise MaxLoweringError(node.op, node.name, f"{nsp}-d convolution")
    stride, dilation = _per_dim(attrs.get("stride", 1), nsp), _per_dim(attrs.get("dilation", 1), nsp)
    pads = attrs.get("pads") or [(p, p) for p in _per_dim(attrs.get("padding", 0), nsp)]
    pads = [tuple(int(v) for v in p) for p in pads]
    groups = int(attrs.get("groups", 1))
    if nsp == 1:  # a 1-d conv is a 2-d conv over a height of one
        x = ops.unsqueeze(x, 2)
        stride, dilation, pads = [1] + stride, [1] + dilation, [(0, 0)] + pads
    if lw.is_weight(w_name):  # re-laid out once in numpy: no transpose in the graph
        if nsp == 1:
            filt = lw.derived_weight(w_name, "RSCF1", lambda a: a[:, :, None, :].transpose(2, 3, 1, 0), True)
        else:
            filt = lw.derived_weight(w_name, "RSCF", lambda a: a.transpose(2, 3, 1, 0), True)
    else:  # a filter computed in the graph (a folded reshape, say): permute it there
        filt = lw.tensor(w_name)
        if nsp == 1:
            filt = ops.unsqueeze(filt, 2)
        filt = ops.permute(filt, [2, 3, 1, 0])
    nhwc = ops.permute(x, [0, 2, 3, 1])
    bias = lw.tensor(node.inputs[2]) if _opt(node, 2) else None
    y = ops.conv2d(nhwc, lw.cast(filt, lw.tdtype(x)), stride=tuple(stride), dilation=tuple(dilation),
                   padding=(pads[0][0], pads[0][1], pads[1][0], pads[1][1]), groups=groups,
                   bias=bias)  # fmt: skip
    y = ops.permute(y, [0, 3, 1, 2])
    return [ops.squeeze(y, 2) if nsp == 1 else y]


def _conv_transpose(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """A transposed convolution as the forward convolution it is the gradient of: the input with
    stride-1 zeros between its pixels, padded by dilation*(kernel-1) - padding (output_padding
    more on the right; a negative amount crops), convolved with the filter flipped and its
    in/out channels swapped per group.  MAX's own conv2d_transpose has no groups and no
    output padding; conv2d is the op the Conv lowering already checks."""
    x = lw.tensor(node.inputs[0])
    w_name = node.inputs[1]
    nsp = len(x.shape) - 2
    if nsp not in (1, 2):
        raise MaxLoweringError(node.op, node.name, f"{nsp}-d transposed convolution")
    if not lw.is_weight(w_name):
        raise MaxLoweringError(node.op, node.name, "a filter computed at run time")
    stride, dilation = _per_dim(attrs.get("stride", 1), nsp), _per_dim(attrs.get("dilation", 1), nsp)
    padding, extra = _per_dim(attrs.get("padding", 0), nsp), _per_dim(attrs.get("output_padding", 0), nsp)
    groups = int(attrs.get("groups", 1))
    kernel = list(lw.graph.weights[w_name].shape[2:])
    if nsp == 1:  # a height of one, as in _conv
        x = ops.unsqueeze(x, 2)
        stride, dilation, padding, extra, kernel = [1] + stride, [1] + dilation, [0] + padding, [0] + extra, [1] + kernel

    def forward_filter(w: np.ndarray) -> np.ndarray:  # [Cin, Cout/g, *k] -> RSCF [kh, kw, Cin/g, Cout]
        w = w.reshape(w.shape[0], w.shape[1], *kernel)
        cin, cout_g = w.shape[:2]
        w = w.reshape(groups, cin // groups, cout_g, *kernel)[..., ::-1, ::-1]
        return w.transpose(3, 4, 1, 0, 2).reshape(kernel[0], kernel[1], cin // groups, groups * cout_g)

    filt = lw.derived_weight(w_name, f"flipped RSCF g{groups}", forward_filter, True)
    nhwc = ops.permute(x, [0, 2, 3, 1])
    n, h, w_, c = lw.shape(nhwc)
    if stride != [1, 1]:  # [N, H, 1, W, 1, C] padded to [N, H, sh, W, sw, C]: zeros after each pixel
        spread = ops.reshape(nhwc, [n, h, 1, w_, 1, c])
        spread = ops.pad(spread, [0, 0, 0, 0, 0, stride[0] - 1, 0, 0, 0, stride[1] - 1, 0, 0],
                         mode="constant", value=0.0)  # fmt: skip
        nhwc = ops.reshape(spread, [n, h * stride[0], w_ * stride[1], c])
    flat = [0, 0]
    for axis, (k, s, d, p, e) in enumerate(zip(kernel, stride, dilation, padding, extra)):
        before = d * (k - 1) - p
        after = d * (k - 1) - p + e - (s - 1)  # the spread left s - 1 zeros after the last pixel
        if before < 0 or after < 0:  # a padding wider than the kernel's reach crops instead
            size = lw.shape(nhwc)[1 + axis]
            nhwc = slice_dim(lw, nhwc, 1 + axis, max(-before, 0), size - max(-after, 0))
        flat += [max(before, 0), max(after, 0)]
    flat += [0, 0]
    if any(flat):
        nhwc = ops.pad(nhwc, flat, mode="constant", value=0.0)
    bias = lw.tensor(node.inputs[2]) if _opt(node, 2) else None
    y = ops.conv2d(nhwc, lw.cast(filt, lw.tdtype(x)), dilation=tuple(dilation), groups=groups, bias=bias)
    return [_from_nhwc(y, nsp)]


def _pool(kind: str) -> Any:
    def lower(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = lw.tensor(node.inputs[0])
        nsp = len(x.shape) - 2
        if nsp not in (1, 2):
            raise MaxLoweringError(node.op, node.name, f"{nsp}-d pooling")
        kernel = _per_dim(attrs.get("kernel", 1), nsp)
        stride = _per_dim(attrs.get("stride") or kernel, nsp)
        dilation = _per_dim(attrs.get("dilation", 1), nsp)
        pads = attrs.get("pads") or [(p, p) for p in _per_dim(attrs.get("padding", 0), nsp)]
        pads = [tuple(int(v) for v in p) for p in pads]
        if kind == "avg" and attrs.get("divisor_override"):
            raise MaxLoweringError(node.op, node.name, "avg pool divisor_override")
        if kind == "avg" and any(d != 1 for d in dilation):  # MAX's avg_pool2d has no dilation
            raise MaxLoweringError(node.op, node.name, "dilated average pooling")
        if attrs.get("return_indices") or (len(node.outputs) > 1 and node.outputs[1]):
            raise MaxLoweringError(node.op, node.name, "max pooling's indices output")
        if nsp == 1:
            x = ops.unsqueeze(x, 2)
            kernel, stride, dilation, pads = [1] + kernel, [1] + stride, [1] + dilation, [(0, 0)] + pads
        nhwc = ops.permute(x, [0, 2, 3, 1])
        symmetric = all(a == b for a, b in pads)
        if not symmetric:
            if kind == "avg":
                raise MaxLoweringError(node.op, node.name, "asymmetric padding in average pooling")
            flat = [0, 0] + [v for p in pads for v in p] + [0, 0]
            nhwc = ops.pad(nhwc, flat, mode="constant", value=float("-inf"))  # a 0-d fill (see _pad)
            padding = (0, 0)
        else:
            padding = (pads[0][0], pads[1][0])
        ceil_mode = bool(attrs.get("ceil_mode", False))
        if kind == "avg":
            count_pad = bool(attrs.get("count_include_pad", True))
            return [_from_nhwc(_avg_pool(lw, node, nhwc, kernel, stride, padding, ceil_mode, count_pad), nsp)]
        y = ops.max_pool2d(nhwc, tuple(kernel), tuple(stride), tuple(dilation), padding, ceil_mode)
        return [_from_nhwc(y, nsp)]

    return lower


def _from_nhwc(y: Any, nsp: int) -> Any:
    y = ops.permute(y, [0, 3, 1, 2])
    return ops.squeeze(y, 2) if nsp == 1 else y


def _floor_out_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _ceil_out_size(size: int, k: int, s: int, p: int) -> int:
    out = -(-(size + 2 * p - k) // s) + 1
    return out - 1 if (out - 1) * s >= size + p else out  # the last window must start inside


def _ceil_overhangs(sizes: list[Any], kernel: list[int], stride: list[int], padding: tuple) -> bool:
    """Whether ceil mode adds a window that runs past the padded input; a symbolic size is
    assumed to."""
    for size, k, s, p in zip(sizes, kernel, stride, padding):
        if not isinstance(size, int) or _ceil_out_size(size, k, s, p) != _floor_out_size(size, k, s, p):
            return True
    return False


def _avg_pool(lw: Lowering, node: Node, nhwc: Any, kernel: list[int], stride: list[int],
              padding: tuple, ceil_mode: bool, count_pad: bool) -> Any:
    """Average pooling with torch's and ONNX's divisor: the positions of the window inside the
    padding (count_include_pad) or inside the input, a ceil-mode overhang never counting.

    MAX 26.7's avg_pool2d gets that divisor wrong whenever a window is partial: with
    count_boundary it divides by the whole window (ALIGN's ceil-mode 128x128 pool over a 1x1 map
    came out 1/16384 of the mean), without it the last window of a padded row is off (3x3,
    stride 2, pad 1 over 8: divided by 2 instead of 3).  So MAX only ever takes whole-window
    means here: zero-pad until every window is whole, then rescale by a divisor map computed from
    the static sizes."""
    sizes = lw.shape(nhwc)[1:3]
    ceil = ceil_mode and _ceil_overhangs(sizes, kernel, stride, padding)
    whole_windows = not ceil and (count_pad or not any(padding))
    if whole_windows:  # every window's divisor is k*k: no map needed, symbolic sizes fine
        flat = [0, 0, padding[0], padding[0], padding[1], padding[1], 0, 0]
        x = ops.pad(nhwc, flat, mode="constant", value=0.0) if any(padding) else nhwc
        return ops.avg_pool2d(x, tuple(kernel), tuple(stride), 1, (0, 0), False, count_boundary=True)
    if not all(isinstance(n, int) for n in sizes):
        raise MaxLoweringError(node.op, node.name, "average pooling with partial windows over a symbolic spatial size")
    outs, counts, flat = [], [], [0, 0]
    for size, k, s, p in zip(sizes, kernel, stride, padding):
        n = (_ceil_out_size if ceil else _floor_out_size)(size, k, s, p)
        start = np.arange(n) * s - p
        stop = np.minimum(start + k, size + p)
        if not count_pad:
            start, stop = np.maximum(start, 0), np.minimum(stop, size)
        outs.append(n)
        counts.append((stop - start).astype(np.float64))
        flat += [p, max((n - 1) * s + k - size - p, 0)]
    flat += [0, 0]
    padded = ops.pad(nhwc, flat, mode="constant", value=0.0)
    mean = ops.avg_pool2d(padded, tuple(kernel), tuple(stride), 1, (0, 0), False, count_boundary=True)
    scale = kernel[0] * kernel[1] / np.outer(counts[0], counts[1])
    return mean * lw.const(scale.reshape(1, outs[0], outs[1], 1), lw.tdtype(nhwc))


def _resize(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """torch's upsample rules (nearest, and linear per axis) as gathers at source positions the
    IR's own reference computes from the static sizes: exactly its semantics, no reliance on how
    MAX's resize ops map coordinates. Antialiased (linear or cubic): one matmul per axis by the
    reference's own weight matrix."""
    from skillmill.ir.ops.extended import _source_positions, antialias_weights

    x = lw.tensor(node.inputs[0])
    mode, size, scales = attrs.get("mode", "nearest"), attrs.get("size"), attrs.get("scales")
    antialias = bool(attrs.get("antialias"))
    plain = ("nearest", "linear", "bilinear", "trilinear")
    if mode not in (("linear", "cubic") if antialias else plain):
        raise MaxLoweringError(node.op, node.name, f"resize mode {mode!r}")
    shape = lw.shape(x)
    spatial = len(size) if size is not None else len(scales or [])
    in_sizes = shape[len(shape) - spatial:]
    if not spatial or not all(isinstance(n, int) for n in in_sizes):
        raise MaxLoweringError(node.op, node.name, "resize of a symbolic spatial size")
    if size is None:
        size = [int(np.floor(n * s)) for n, s in zip(in_sizes, scales)]
    size = [adapter.static_int(n) for n in size]
    if None in size:
        raise MaxLoweringError(node.op, node.name, "resize to a size computed at run time")
    dtype = lw.tdtype(x)
    for i, (out_size, in_size) in enumerate(zip(size, in_sizes)):
        axis = len(shape) - spatial + i
        if antialias:  # every output pixel weighs a window of inputs: one matmul per axis
            w = antialias_weights(out_size, in_size, scales[i] if scales else None, mode,
                                  bool(attrs.get("align_corners")))  # fmt: skip
            w_t = lw.const(w.T.astype(np.float32), "float32")
            x = lw.cast(_along_last(lw.cast(x, "float32"), axis, lambda t: t @ w_t), dtype)
            continue
        src = _source_positions(out_size, in_size, scales[i] if scales else None,
                                "nearest" if mode == "nearest" else "linear", bool(attrs.get("align_corners")))  # fmt: skip
        if mode == "nearest":
            x = ops.gather(x, lw.const(src.astype(np.int64), "int64"), axis=axis)
            continue
        low = np.floor(src).astype(np.int64)
        high = np.minimum(low + 1, in_size - 1)
        weight = (src - low).reshape([-1 if d == axis else 1 for d in range(len(shape))])
        w = lw.const(weight.astype(np.float32), "float32")
        x0 = ops.gather(x, lw.const(low, "int64"), axis=axis)
        x1 = ops.gather(x, lw.const(high, "int64"), axis=axis)
        x = lw.cast(lw.cast(x0, "float32") * (lw.const(1.0, "float32") - w) + lw.cast(x1, "float32") * w, dtype)
    return [x]


def _grid_sample(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """torch's grid_sample (4-D; bilinear or nearest; zeros or border) as gathers: each output
    pixel fetches its corner pixels from the NHWC input with gather_nd, a corner outside the
    image counting zero, exactly as the IR's reference (ir/ops/extended.py) does."""
    x, grid = lw.tensor(node.inputs[0]), lw.tensor(node.inputs[1])
    mode, padding_mode = attrs.get("mode", "bilinear"), attrs.get("padding_mode", "zeros")
    if len(x.shape) != 4 or mode not in ("bilinear", "nearest") or padding_mode not in ("zeros", "border"):
        raise MaxLoweringError(node.op, node.name, f"{len(x.shape)}-d grid_sample, {mode}, {padding_mode}")
    n, _, height, width = lw.shape(x)
    if not isinstance(height, int) or not isinstance(width, int):
        raise MaxLoweringError(node.op, node.name, "grid_sample over a symbolic image size")
    dtype = lw.tdtype(x)
    nhwc = ops.permute(x, [0, 2, 3, 1])
    grid = lw.cast(grid, "float32")
    one = lw.const(1.0, "float32")
    coords = []
    for k, size in ((0, width), (1, height)):
        g = ops.squeeze(slice_dim(lw, grid, -1, k, k + 1), -1)  # [N, Ho, Wo]
        if attrs.get("align_corners"):
            g = (g + one) * lw.const((size - 1) / 2, "float32")
        else:
            g = ((g + one) * lw.const(float(size), "float32") - one) * lw.const(0.5, "float32")
        if padding_mode == "border":
            g = ops.min(ops.max(g, lw.const(0.0, "float32")), lw.const(float(size - 1), "float32"))
        coords.append(g)
    gx, gy = coords
    out_shape = lw.shape(gx)
    batch = ops.broadcast_to(ops.reshape(_range_of(lw, n), [n, 1, 1]), out_shape)

    def fetch(iy: Any, ix: Any) -> Any:  # [N, Ho, Wo, C]; zero outside the image
        inside = (ix >= lw.const(0, "int64")) & (ix < lw.const(width, "int64"))
        inside = inside & (iy >= lw.const(0, "int64")) & (iy < lw.const(height, "int64"))
        clip = [ops.min(ops.max(i, lw.const(0, "int64")), lw.const(size - 1, "int64"))
                for i, size in ((iy, height), (ix, width))]  # fmt: skip
        values = lw.cast(ops.gather_nd(nhwc, ops.stack([batch, *clip], axis=-1)), "float32")
        return values * ops.unsqueeze(lw.cast(inside, "float32"), -1)

    if mode == "nearest":
        out = fetch(lw.cast(ops.round(gy), "int64"), lw.cast(ops.round(gx), "int64"))
    else:
        fx, fy = ops.floor(gx), ops.floor(gy)
        x0, y0 = lw.cast(fx, "int64"), lw.cast(fy, "int64")
        x1, y1 = x0 + lw.const(1, "int64"), y0 + lw.const(1, "int64")
        wx, wy = ops.unsqueeze(gx - fx, -1), ops.unsqueeze(gy - fy, -1)
        out = (fetch(y0, x0) * (one - wx) * (one - wy) + fetch(y0, x1) * wx * (one - wy)
               + fetch(y1, x0) * (one - wx) * wy + fetch(y1, x1) * wx * wy)  # fmt: skip
    return [lw.cast(ops.permute(out, [0, 3, 1, 2]), dtype)]


def _adaptive_avg_pool(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    shape = lw.shape(x)
    nsp = len(shape) - 2
    out = _per_dim(attrs.get("output_size", 1), nsp)
    if all(o == 1 for o in out):
        for axis in range(2, len(shape)):
            x = ops.mean(x, axis=axis)
        return [x]
    sizes = shape[2:]
    if nsp == 2 and all(isinstance(s, int) and s % o == 0 for s, o in zip(sizes, out)):
        kernel = tuple(s // o for s, o in zip(sizes, out))
        y = ops.avg_pool2d(ops.permute(x, [0, 2, 3, 1]), kernel, kernel)
        return [ops.permute(y, [0, 3, 1, 2])]
    raise MaxLoweringError(node.op, node.name, f"adaptive pooling {sizes} -> {out} with uneven windows")


# -- reductions ------------------------------------------------------------------------------
def _axes(lw: Lowering, node: Node, x: Any, attrs: dict[str, Any]) -> list[int] | None:
    rank = len(x.shape)
    axes = attrs.get("axes")
    if len(node.inputs) > 1 and node.inputs[1]:
        from .lower_shape import _const_ints

        axes = _const_ints(lw, node, 1)
        if not axes and attrs.get("noop_with_empty_axes"):
            return None
    if axes is None or (isinstance(axes, (list, tuple)) and len(axes) == 0):
        return list(range(rank))
    if axes == "spatial":
        return list(range(2, rank))
    if isinstance(axes, int):
        axes = [axes]
    return sorted({norm_axis(a, rank) for a in axes})


def _reduce_axes(x: Any, axes: list[int], fn: Any, keepdims: bool) -> Any:
    for axis in axes:
        x = fn(x, axis)
    if not keepdims:
        for axis in sorted(axes, reverse=True):
            x = ops.squeeze(x, axis)
    return x


def _reduce(kind: str) -> Any:
    def lower(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = lw.tensor(node.inputs[0])
        axes = _axes(lw, node, x, attrs)
        if axes is None:
            return [x]
        keep = bool(attrs.get("keepdims", False))
        dtype = attrs.get("dtype")
        if kind in ("any", "all"):
            y = _reduce_axes(lw.cast(x, "int32"), axes,
                             (lambda t, a: ops.max(t, axis=a)) if kind == "any" else (lambda t, a: ops.min(t, axis=a)),
                             keep)  # fmt: skip
            return [lw.cast(y, "bool")]
        if dtype:
            x = lw.cast(x, dtype)
        elif lw.tdtype(x) == "bool" and kind in ("sum", "prod"):
            x = lw.cast(x, "int64")
        if kind == "mean" and lw.tdtype(x) not in FLOAT_TYPES:
            x = lw.cast(x, "float64")
        dt = lw.tdtype(x)
        if kind == "logsumexp":
            m = _reduce_axes(x, axes, lambda t, a: ops.max(t, axis=a), True)
            m = ops.where(ops.is_inf(m), lw.const(0.0, dt), m)
            y = ops.log(_reduce_axes(ops.exp(x - m), axes, lambda t, a: ops.sum(t, axis=a), True)) + m
            return [_reduce_axes(y, axes, lambda t, a: t, keep)]
        pre = {"l2": lambda t: t * t, "l1": ops.abs, "sumsquare": lambda t: t * t}.get(kind)
        if pre is not None:
            x = pre(x)
        fns = {
            "sum": lambda t, a: ops.sum(t, axis=a), "mean": lambda t, a: ops.mean(t, axis=a),
            "max": lambda t, a: ops.max(t, axis=a), "min": lambda t, a: ops.min(t, axis=a),
            "prod": lambda t, a: ops.prod(t, axis=a),
        }  # fmt: skip
        base = {"l2": "sum", "l1": "sum", "sumsquare": "sum", "logsum": "sum"}.get(kind, kind)
        y = _reduce_axes(x, axes, fns[base], keep)
        if kind == "l2":
            y = ops.sqrt(y)
        elif kind == "logsum":
            y = ops.log(y)
        return [y]

    return lower


def _var(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    axes = _axes(lw, node, x, attrs) or []
    correction = attrs.get("correction", 1)
    dt = lw.tdtype(x)
    mean = _reduce_axes(x, axes, lambda t, a: ops.mean(t, axis=a), True)
    centred = x - mean
    total = _reduce_axes(centred * centred, axes, lambda t, a: ops.sum(t, axis=a), bool(attrs.get("keepdims")))
    count: Any = 1
    for a in axes:
        count = count * lw.shape(x)[a]
    n = lw.cast(lw.scalar_tensor(count, "int64"), dt) - lw.const(correction, dt)
    return [total / n]


def _arg_reduce(largest: bool) -> Any:
    def lower(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = lw.tensor(node.inputs[0])
        if attrs.get("select_last_index"):
            raise MaxLoweringError(node.op, node.name, "select_last_index")
        axis = attrs.get("axis")
        if axis is None:
            x, axis = ops.reshape(x, [-1]), 0
        axis = norm_axis(axis, len(x.shape))
        if not largest:
            x = -x if lw.tdtype(x) != "bool" else ops.logical_not(x)
        y = lw.cast(ops.argmax(x, axis=axis), "int64")
        return [y if attrs.get("keepdims") else ops.squeeze(y, axis)]

    return lower


def _topk(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = lw.tensor(node.inputs[0])
    k = attrs.get("k", 1)
    if _opt(node, 1):
        from .lower_shape import _const_ints

        k = _const_ints(lw, node, 1)[0]
    axis = norm_axis(attrs.get("axis", -1), len(x.shape))
    largest = attrs.get("largest", True)
    values, indices = _along_last_pair(x if largest else -x, axis, lambda t: ops.top_k(t, int(k), -1))
    return [values if largest else -values, lw.cast(indices, "int64")]


def _along_last_pair(x: Any, axis: int, fn: Any) -> tuple[Any, Any]:
    rank = len(x.shape)
    if axis == rank - 1:
        return fn(x)
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    a, b = fn(ops.permute(x, perm))
    return ops.permute(a, perm), ops.permute(b, perm)


REDUCTIONS = {
    "ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min",
    "ReduceProd": "prod", "ReduceAny": "any", "ReduceAll": "all", "ReduceL2": "l2",
    "ReduceL1": "l1", "ReduceSumSquare": "sumsquare", "ReduceLogSum": "logsum",
    "ReduceLogSumExp": "logsumexp",
}  # fmt: skip

TABLE: dict[str, Any] = {
    "MatMul": _matmul, "Linear": _linear, "Softmax": _softmax, "LogSoftmax": _softmax,
    "LayerNorm": _layer_norm, "RMSNorm": _rms_norm, "GroupNorm": _group_norm,
    "BatchNorm": _batch_norm, "Attention": _attention, "QKVAttention": _qkv_attention,
    "Conv": _conv, "ConvTranspose": _conv_transpose, "MaxPool": _pool("max"), "AvgPool": _pool("avg"),
    "AdaptiveAvgPool": _adaptive_avg_pool, "Resize": _resize, "GridSample": _grid_sample,
    "Var": _var, "ArgMax": _arg_reduce(True), "ArgMin": _arg_reduce(False), "TopK": _topk,
    **{op: _reduce(kind) for op, kind in REDUCTIONS.items()},
}  # fmt: skip

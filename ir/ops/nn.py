"""Neural-network ops: matmul/linear, normalisation, softmax, attention, convolution, pooling,
and reductions.  Fused ops (Linear with activation, RMSNorm, Attention) are what the fusion passes
produce; their references are the unfused maths, so fused and unfused graphs agree."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..graph import TensorSpec, numpy_dtype
from .base import OpDef, broadcast_shapes, cast_to, norm_axis
from .elementwise import UNARY, gelu

ACTIVATIONS = {
    "none": lambda x: x,
    "relu": UNARY["Relu"],
    "gelu": lambda x: gelu(x, "none"),
    "gelu_tanh": lambda x: gelu(x, "tanh"),
    "silu": UNARY["Silu"],
    "tanh": UNARY["Tanh"],
    "sigmoid": UNARY["Sigmoid"],
}


# -- matmul family ----------------------------------------------------------------------------
def _matmul(inputs, dtype=None):
    a, b = np.asarray(inputs[0]), np.asarray(inputs[1])
    return cast_to(np.matmul(a, b), dtype)


def _matmul_infer(specs, dtype=None):
    a, b = specs
    if a is None or b is None or a.shape is None or b.shape is None:
        return [None]
    sa, sb = list(a.shape), list(b.shape)
    if len(sa) == 1 and len(sb) == 1:
        return [TensorSpec(a.dtype, [])]
    if len(sa) == 1:
        return [TensorSpec(a.dtype, sb[:-2] + [sb[-1]])]
    if len(sb) == 1:
        return [TensorSpec(a.dtype, sa[:-1])]
    ka, kb = sa[-1], sb[-2]
    if isinstance(ka, int) and isinstance(kb, int) and ka != kb:
        raise ValueError(f"matmul inner dims differ: {a} @ {b}")
    batch = broadcast_shapes(sa[:-2], sb[:-2])
    return [TensorSpec(dtype or a.dtype, batch + [sa[-2], sb[-1]])]


def _linear(inputs, activation="none", alpha=1.0, beta=1.0):
    """y = act(alpha * x @ w.T + beta * b) with w stored [out, in] as in torch.nn.Linear."""
    x, w = np.asarray(inputs[0]), np.asarray(inputs[1])
    y = np.matmul(x, w.T)
    if alpha != 1.0:
        y = y * np.asarray(alpha, y.dtype)
    if len(inputs) > 2 and inputs[2] is not None:
        bias = np.asarray(inputs[2])
        y = y + (bias if beta == 1.0 else bias * np.asarray(beta, y.dtype))
    y = ACTIVATIONS[activation](y)
    if len(inputs) > 3 and inputs[3] is not None:  # fused residual add
        y = y + inputs[3]
    return y


def _linear_infer(specs, activation="none", alpha=1.0, beta=1.0):
    x, w = specs[0], specs[1]
    if x is None or w is None or x.shape is None or w.shape is None:
        return [None]
    return [TensorSpec(x.dtype, list(x.shape[:-1]) + [w.shape[0]])]


# -- softmax and normalisation ----------------------------------------------------------------
def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        e = np.exp(shifted)
        return e / np.sum(e, axis=axis, keepdims=True)


def _softmax(inputs, axis=-1, dtype=None):
    x = np.asarray(inputs[0])
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    return cast_to(softmax(x, axis), dtype)


def _log_softmax(inputs, axis=-1, dtype=None):
    x = np.asarray(inputs[0])
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        return cast_to(shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True)), dtype)


def _layer_norm(inputs, axis=-1, eps=1e-5):
    """Normalise over dims [axis, ...]; outputs (y, mean, rstd) with mean/rstd kept as dims."""
    x = np.asarray(inputs[0])
    axes = tuple(range(axis % x.ndim, x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=axes, keepdims=True)
    rstd = (1.0 / np.sqrt(var + np.asarray(eps, x.dtype))).astype(x.dtype)
    y = centred * rstd
    if len(inputs) > 1 and inputs[1] is not None:
        y = y * inputs[1]
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + inputs[2]
    return y, mean, rstd


def _layer_norm_infer(specs, axis=-1, eps=1e-5):
    x = specs[0]
    if x is None or x.shape is None:
        return [x, None, None]
    start = axis % len(x.shape)
    stat = TensorSpec(x.dtype, list(x.shape[:start]) + [1] * (len(x.shape) - start))
    return [TensorSpec(x.dtype, x.shape), stat, stat]


def _rms_norm(inputs, eps=1e-6, offset=0.0):
    """y = x / sqrt(mean(x^2) + eps) * (offset + weight); Gemma uses offset 1."""
    x = np.asarray(inputs[0])
    rstd = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.asarray(eps, x.dtype))
    y = x * rstd.astype(x.dtype)
    if len(inputs) > 1 and inputs[1] is not None:
        w = np.asarray(inputs[1])
        y = (w + np.asarray(offset, w.dtype) if offset else w) * y
    return y


def _group_norm(inputs, groups=1, eps=1e-5):
    x = np.asarray(inputs[0])
    n, c = x.shape[:2]
    g = x.reshape(n, groups, -1)
    mean = g.mean(axis=-1, keepdims=True)
    var = ((g - mean) ** 2).mean(axis=-1, keepdims=True)
    y = ((g - mean) / np.sqrt(var + eps)).reshape(x.shape).astype(x.dtype)
    shape = [1, c] + [1] * (x.ndim - 2)
    if len(inputs) > 1 and inputs[1] is not None:
        y = y * np.asarray(inputs[1]).reshape(shape)
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + np.asarray(inputs[2]).reshape(shape)
    return y


def _batch_norm(inputs, eps=1e-5, axis=1):
    """Inference batch norm: inputs x, weight, bias, running_mean, running_var."""
    x, w, b, mean, var = (np.asarray(v) if v is not None else None for v in inputs[:5])
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    scale = 1.0 / np.sqrt(var + eps)
    if w is not None:
        scale = scale * w
    y = (x - mean.reshape(shape)) * scale.reshape(shape).astype(x.dtype)
    if b is not None:
        y = y + b.reshape(shape)
    return y.astype(x.dtype)


# -- attention --------------------------------------------------------------------------------
def attention(q, k, v, mask=None, scale=None, causal=False):
    """softmax(q @ k^T * scale + mask) @ v over [batch, heads, seq, head_dim]; GQA by repeat."""
    heads, kv_heads = q.shape[-3], k.shape[-3]
    if kv_heads != heads:
        k = np.repeat(k, heads // kv_heads, axis=-3)
        v = np.repeat(v, heads // kv_heads, axis=-3)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = np.matmul(q, np.swapaxes(k, -1, -2))
    if scale != 1.0:
        scores = scores * np.asarray(scale, scores.dtype)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype == bool:
            scores = np.where(mask, scores, np.asarray(-np.inf, scores.dtype))
        else:
            scores = scores + mask
    if causal:
        s, t = scores.shape[-2], scores.shape[-1]
        allowed = np.tril(np.ones((s, t), dtype=bool), t - s)
        scores = np.where(allowed, scores, np.asarray(-np.inf, scores.dtype))
    probs = softmax(scores, axis=-1)
    # a query row with no key to attend to (all -inf) yields zeros, not NaN
    dead = np.isneginf(scores).all(axis=-1, keepdims=True)
    if dead.any():
        probs = np.where(dead, np.zeros((), probs.dtype), probs)
    return np.matmul(probs, v)


def _attention(inputs, scale=None, causal=False):
    q, k, v = (np.asarray(t) for t in inputs[:3])
    mask = inputs[3] if len(inputs) > 3 else None
    return attention(q, k, v, mask, scale, causal)


def _attention_infer(specs, scale=None, causal=False):
    q, v = specs[0], specs[2]
    if q is None or v is None or q.shape is None or v.shape is None:
        return [None]
    return [TensorSpec(q.dtype, list(q.shape[:-1]) + [v.shape[-1]])]


def _qkv_attention(inputs, heads=1, scale=None, causal=False):
    """Self-attention over a fused projection: qkv [B, S, 3E] is q | k | v along the last axis,
    each E = heads * D split head-major; the result is [B, S, E] (heads side by side)."""
    qkv = np.asarray(inputs[0])
    mask = inputs[1] if len(inputs) > 1 else None
    b, s, e3 = qkv.shape
    e = e3 // 3
    q, k, v = (qkv[..., i * e : (i + 1) * e].reshape(b, s, heads, e // heads).transpose(0, 2, 1, 3)
               for i in range(3))  # fmt: skip
    return attention(q, k, v, mask, scale, causal).transpose(0, 2, 1, 3).reshape(b, s, e)


def _qkv_attention_infer(specs, heads=1, scale=None, causal=False):
    qkv = specs[0]
    if qkv is None or qkv.shape is None or len(qkv.shape) != 3:
        return [None]
    e3 = qkv.shape[2]
    if isinstance(e3, int) and e3 % (3 * heads):
        raise ValueError(f"QKVAttention: last dim {e3} is not 3 * heads({heads}) * head_dim")
    return [TensorSpec(qkv.dtype, list(qkv.shape[:2]) + [e3 // 3 if isinstance(e3, int) else "?"])]


# -- convolution and pooling ------------------------------------------------------------------
def _pad_spatial(x: np.ndarray, pads: list[tuple[int, int]], value: float = 0.0) -> np.ndarray:
    if not any(a or b for a, b in pads):
        return x
    return np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads], constant_values=value)


def _conv(inputs, stride=(1,), padding=(0,), dilation=(1,), groups=1, pads=None):
    """N-d convolution (NC + spatial) by im2col; ``pads`` [(before, after)] overrides padding."""
    x, w = np.asarray(inputs[0]), np.asarray(inputs[1])
    bias = inputs[2] if len(inputs) > 2 else None
    nsp = x.ndim - 2
    stride, dilation = _per_dim(stride, nsp), _per_dim(dilation, nsp)
    pads = pads if pads is not None else [(p, p) for p in _per_dim(padding, nsp)]
    x = _pad_spatial(x, pads)
    kernel = w.shape[2:]
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    windows = sliding_window_view(x, span, axis=tuple(range(2, x.ndim)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
    index += tuple(slice(None, None, d) for d in dilation)
    windows = windows[index]  # [N, C, *out, *kernel]
    c_in, c_out = x.shape[1], w.shape[0]
    per_group_in, per_group_out = c_in // groups, c_out // groups
    if groups > 1:  # every group in one contraction: a Python loop over a depthwise conv's
        # thousands of channels (Mamba's conv1d) took 100x the arithmetic's time
        out_dims, kernel_dims = "pqrs"[:nsp], "uvwx"[:nsp]
        grouped = windows.reshape(windows.shape[:1] + (groups, per_group_in) + windows.shape[2:])
        wg = w.reshape((groups, per_group_out) + w.shape[1:])
        y = np.einsum(f"ngc{out_dims}{kernel_dims},goc{kernel_dims}->ngo{out_dims}", grouped, wg, optimize=True)
        y = y.reshape((y.shape[0], c_out) + y.shape[3:])
        if bias is not None:
            y = y + np.asarray(bias).reshape([1, -1] + [1] * nsp)
        return np.ascontiguousarray(y.astype(x.dtype, copy=False))
    outs = []
    sp_axes = list(range(2 + nsp, 2 + 2 * nsp))
    for g in range(groups):
        patch = windows[:, g * per_group_in : (g + 1) * per_group_in]
        wg = w[g * per_group_out : (g + 1) * per_group_out]
        # contract channel + kernel dims -> [N, *out, C_out_g]
        out = np.tensordot(patch, wg, axes=([1] + sp_axes, [1] + list(range(2, 2 + nsp))))
        outs.append(np.moveaxis(out, -1, 1))
    y = np.concatenate(outs, axis=1) if groups > 1 else outs[0]
    if bias is not None:
        y = y + np.asarray(bias).reshape([1, -1] + [1] * nsp)
    return np.ascontiguousarray(y.astype(x.dtype, copy=False))


def _conv_transpose(inputs, stride=(1,), padding=(0,), dilation=(1,), groups=1,
                    output_padding=(0,)):  # fmt: skip
    """Transposed convolution by scattering each input pixel's kernel contribution."""
    x, w = np.asarray(inputs[0]), np.asarray(inputs[1])
    bias = inputs[2] if len(inputs) > 2 else None
    nsp = x.ndim - 2
    stride, dilation = _per_dim(stride, nsp), _per_dim(dilation, nsp)
    padding, output_padding = _per_dim(padding, nsp), _per_dim(output_padding, nsp)
    n, c_in = x.shape[:2]
    per_group_in, per_group_out = c_in // groups, w.shape[1]
    kernel = w.shape[2:]
    full = [(i - 1) * s + (k - 1) * d + 1 + op
            for i, s, k, d, op in zip(x.shape[2:], stride, kernel, dilation, output_padding)]  # fmt: skip
    y = np.zeros([n, per_group_out * groups] + full, dtype=x.dtype)
    for g in range(groups):
        xg = x[:, g * per_group_in : (g + 1) * per_group_in]
        wg = w[g * per_group_in : (g + 1) * per_group_in]
        contrib = np.tensordot(xg, wg, axes=([1], [0]))  # [N, *in, C_out_g, *kernel]
        for kidx in np.ndindex(*kernel):
            sl = (slice(None),) + (slice(None),) * nsp + (slice(None),) + kidx
            part = np.moveaxis(contrib[sl], -1, 1)  # [N, C_out_g, *in]
            target = [slice(None), slice(g * per_group_out, (g + 1) * per_group_out)]
            for i, (ki, s, d) in enumerate(zip(kidx, stride, dilation)):
                start = ki * d
                target.append(slice(start, start + (x.shape[2 + i] - 1) * s + 1, s))
            y[tuple(target)] += part
    crop = [slice(None), slice(None)] + [slice(p, f - p) for p, f in zip(padding, full)]
    y = y[tuple(crop)]
    if bias is not None:
        y = y + np.asarray(bias).reshape([1, -1] + [1] * nsp)
    return np.ascontiguousarray(y.astype(x.dtype, copy=False))


def _per_dim(value: Any, n: int) -> list[int]:
    value = list(value) if isinstance(value, (list, tuple)) else [value]
    return value * n if len(value) == 1 else value


def _pool_windows(x, kernel, stride, pads, dilation, ceil_mode, pad_value, overhang_value=None):
    """Pooling windows [N, C, *out, *kernel] of ``x`` padded by ``pads`` with ``pad_value``;
    a ceil-mode overhang past the right padding holds ``overhang_value`` (default: the same)."""
    nsp = len(kernel)
    padded = _pad_spatial(x, pads, pad_value)
    extra = []
    for i in range(nsp):
        size = padded.shape[2 + i]
        span = (kernel[i] - 1) * dilation[i] + 1
        out = (size - span) // stride[i] + 1
        if ceil_mode:
            ceil_out = -(-(size - span) // stride[i]) + 1
            # the last window must start inside the input or left padding
            if (ceil_out - 1) * stride[i] >= x.shape[2 + i] + pads[i][0]:
                ceil_out -= 1
            extra.append((ceil_out - out) * stride[i])
        else:
            extra.append(0)
    if any(extra):
        fill = pad_value if overhang_value is None else overhang_value
        padded = np.pad(padded, [(0, 0), (0, 0)] + [(0, e) for e in extra], constant_values=fill)
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    windows = sliding_window_view(padded, span, axis=tuple(range(2, x.ndim)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
    index += tuple(slice(None, None, d) for d in dilation)
    return windows[index], extra


def _max_pool(inputs, kernel=(1,), stride=None, padding=(0,), dilation=(1,), ceil_mode=False,
              pads=None, return_indices=False, storage_order=0):  # fmt: skip
    """Max pooling; with ``return_indices`` also the ONNX Indices output (see _argmax_indices)."""
    x = np.asarray(inputs[0])
    nsp = x.ndim - 2
    kernel = _per_dim(kernel, nsp)
    stride = _per_dim(stride or kernel, nsp)
    dilation = _per_dim(dilation, nsp)
    pads = pads if pads is not None else [(p, p) for p in _per_dim(padding, nsp)]
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    windows, _ = _pool_windows(x, kernel, stride, pads, dilation, ceil_mode, low)
    y = windows.max(axis=tuple(range(-nsp, 0)))
    if not return_indices:
        return y
    where = _flat_positions(x.shape, storage_order)
    where_windows, _ = _pool_windows(where, kernel, stride, pads, dilation, ceil_mode, -1)
    return y, _argmax_indices(windows, where_windows, y)


def _flat_positions(shape: tuple[int, ...], storage_order: int) -> np.ndarray:
    """Each element's ONNX MaxPool index: row-major over (N, C), then over the spatial dims in
    row-major (storage_order 0) or column-major (1) order -- the offset of the (n, c) plane is
    part of the index, so it addresses the whole input."""
    spatial = shape[2:]
    plane = int(np.prod(spatial, dtype=np.int64))
    within = np.arange(plane, dtype=np.int64).reshape(spatial, order="F" if storage_order else "C")
    planes = np.arange(shape[0] * shape[1], dtype=np.int64).reshape(shape[:2] + (1,) * len(spatial))
    return planes * plane + within


def _argmax_indices(windows: np.ndarray, where_windows: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The position of each window's maximum, the first one in scan order on ties; padding
    (position -1) never wins over a real element of equal value."""
    nsp = y.ndim - 2
    flat = windows.reshape(windows.shape[: 2 + nsp] + (-1,))
    where = where_windows.reshape(flat.shape)
    hit = (flat == y[..., None]) & (where >= 0)
    pick = np.argmax(hit, axis=-1)[..., None]
    return np.take_along_axis(where, pick, axis=-1)[..., 0]


def _avg_pool(inputs, kernel=(1,), stride=None, padding=(0,), dilation=(1,), ceil_mode=False,
              count_include_pad=True, divisor_override=None, pads=None):  # fmt: skip
    x = np.asarray(inputs[0])
    nsp = x.ndim - 2
    kernel = _per_dim(kernel, nsp)
    stride = _per_dim(stride or kernel, nsp)
    dilation = _per_dim(dilation, nsp)
    pads = pads if pads is not None else [(p, p) for p in _per_dim(padding, nsp)]
    windows, _ = _pool_windows(x, kernel, stride, pads, dilation, ceil_mode, 0.0)
    axes = tuple(range(-nsp, 0))
    total = windows.sum(axis=axes)
    if divisor_override:
        return (total / divisor_override).astype(x.dtype)
    # the divisor counts the window's taps that land on the input, and on the explicit padding
    # when count_include_pad; a ceil-mode overhang past the padding never counts (ONNX, torch)
    ones = np.ones((1, 1) + x.shape[2:], dtype=x.dtype)
    counted, _ = _pool_windows(ones, kernel, stride, pads, dilation, ceil_mode,
                               1.0 if count_include_pad else 0.0, overhang_value=0.0)  # fmt: skip
    counts = counted.sum(axis=axes)
    return (total / np.maximum(counts, 1)).astype(x.dtype)


def _adaptive_avg_pool(inputs, output_size=(1,)):
    x = np.asarray(inputs[0])
    nsp = x.ndim - 2
    output_size = _per_dim(output_size, nsp)
    if all(o == 1 for o in output_size):
        return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)
    out = np.empty(list(x.shape[:2]) + output_size, dtype=x.dtype)
    for idx in np.ndindex(*output_size):
        sl = [slice(None), slice(None)]
        for i, o in enumerate(idx):
            size = x.shape[2 + i]
            sl.append(slice((o * size) // output_size[i], -(-((o + 1) * size) // output_size[i])))
        out[(slice(None), slice(None)) + idx] = x[tuple(sl)].mean(axis=tuple(range(2, x.ndim)))
    return out


# -- reductions -------------------------------------------------------------------------------
def _axes(x: np.ndarray, axes: Any) -> tuple[int, ...] | None:
    if axes is None or (isinstance(axes, (list, tuple)) and len(axes) == 0):
        return None
    if axes == "spatial":  # global pooling: every dim after N, C
        return tuple(range(2, x.ndim))
    if isinstance(axes, int):
        axes = [axes]
    return tuple(a % max(x.ndim, 1) for a in axes)


def _reduce(fn_name: str):
    def reference(inputs, axes=None, keepdims=False, dtype=None, noop_with_empty_axes=0):
        x = np.asarray(inputs[0])
        if len(inputs) > 1 and inputs[1] is not None:
            axes = [int(a) for a in np.asarray(inputs[1]).reshape(-1)]
            if not axes and noop_with_empty_axes:
                return x
        ax = _axes(x, axes)
        with np.errstate(all="ignore"):
            if fn_name == "mean":
                result = np.mean(x, axis=ax, keepdims=keepdims, dtype=numpy_dtype(dtype) if dtype else None)
                result = result.astype(x.dtype) if dtype is None and x.dtype.kind == "f" else result
            elif fn_name == "sum":
                result = np.sum(x, axis=ax, keepdims=keepdims,
                                dtype=numpy_dtype(dtype) if dtype else (np.int64 if x.dtype == bool else None))  # fmt: skip
            elif fn_name == "l2":
                result = np.sqrt(np.sum(x * x, axis=ax, keepdims=keepdims))
            elif fn_name == "l1":
                result = np.sum(np.abs(x), axis=ax, keepdims=keepdims)
            elif fn_name == "sumsquare":
                result = np.sum(x * x, axis=ax, keepdims=keepdims)
            elif fn_name == "logsum":
                result = np.log(np.sum(x, axis=ax, keepdims=keepdims))
            elif fn_name == "logsumexp" and x.size == 0:  # log(sum of nothing) = log(0)
                shape = [1 if (ax is None or i in ax) else d for i, d in enumerate(x.shape)]
                result = np.full(shape, -np.inf, dtype=x.dtype)
                if not keepdims:
                    result = result.reshape([d for i, d in enumerate(shape) if ax is not None and i not in ax])
            elif fn_name == "logsumexp":
                m = np.max(x, axis=ax, keepdims=True)
                m = np.where(np.isfinite(m), m, 0)
                result = np.log(np.sum(np.exp(x - m), axis=ax, keepdims=True)) + m
                if not keepdims:
                    result = np.squeeze(result, axis=ax) if ax is not None else result.reshape(())
            elif x.size == 0 and fn_name in ("max", "min"):
                shape = [1 if (ax is None or i in ax) else d for i, d in enumerate(x.shape)]
                fill = -np.inf if fn_name == "max" else np.inf
                if x.dtype.kind in "iu":
                    info = np.iinfo(x.dtype)
                    fill = info.min if fn_name == "max" else info.max
                elif x.dtype == bool:  # the identity of any / all
                    fill = fn_name == "min"
                result = np.full(shape, fill, dtype=x.dtype)
                if not keepdims:
                    result = result.reshape([d for i, d in enumerate(shape) if ax is not None and i not in ax])
            else:
                result = getattr(np, fn_name)(x, axis=ax, keepdims=keepdims)
        return cast_to(np.asarray(result), dtype) if fn_name != "mean" else np.asarray(result)

    return reference


def _reduce_infer(specs, axes=None, keepdims=False, dtype=None, noop_with_empty_axes=0):
    x = specs[0]
    if x is None or x.shape is None or len(specs) > 1:
        return [None]
    rank = len(x.shape)
    ax = set(range(rank)) if not axes else {a % max(rank, 1) for a in ([axes] if isinstance(axes, int) else axes)}
    shape = [1 if i in ax else d for i, d in enumerate(x.shape)] if keepdims else [
        d for i, d in enumerate(x.shape) if i not in ax
    ]
    return [TensorSpec(dtype or x.dtype, shape)]


def _arg_reduce(fn):
    def reference(inputs, axis=None, keepdims=False, select_last_index=0):
        x = np.asarray(inputs[0])
        if axis is None:
            return np.asarray(fn(x.reshape(-1)), dtype=np.int64)
        if select_last_index:
            flipped = np.flip(x, axis)
            result = x.shape[axis] - 1 - fn(flipped, axis=axis)
        else:
            result = fn(x, axis=axis)
        result = np.asarray(result, dtype=np.int64)
        return np.expand_dims(result, axis) if keepdims else result

    return reference


def _var(inputs, axes=None, correction=1, keepdims=False):
    x = np.asarray(inputs[0])
    return np.var(x, axis=_axes(x, axes), ddof=correction, keepdims=keepdims).astype(x.dtype)


def _topk(inputs, k=1, axis=-1, largest=True, sorted=True):
    x = np.asarray(inputs[0])
    if len(inputs) > 1 and inputs[1] is not None:
        k = int(np.asarray(inputs[1]).reshape(-1)[0])
    if largest and x.dtype.kind in "ub":  # negating an unsigned value wraps: order by its complement
        key = ~x
    else:
        key = -x if largest else x
    order = np.argsort(key, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)


def build() -> dict[str, OpDef]:
    ops = [
        OpDef("MatMul", _matmul, _matmul_infer, doc="numpy matmul with batch broadcasting"),
        OpDef("Linear", _linear, _linear_infer,
              doc="act(x @ w.T + b), w [out, in]; activation none|relu|gelu|gelu_tanh|silu|tanh"),
        OpDef("Softmax", _softmax, lambda specs, axis=-1, dtype=None: [
            TensorSpec(dtype or specs[0].dtype, specs[0].shape) if specs[0] else None]),
        OpDef("LogSoftmax", _log_softmax),
        OpDef("LayerNorm", _layer_norm, _layer_norm_infer, num_outputs=3,
              doc="normalise dims [axis:], outputs (y, mean, rstd); unused outputs are ''"),
        OpDef("RMSNorm", _rms_norm, lambda specs, **a: [specs[0]], doc="x*rsqrt(mean(x^2)+eps)*(offset+w)"),
        OpDef("GroupNorm", _group_norm),
        OpDef("BatchNorm", _batch_norm, lambda specs, **a: [specs[0]]),
        OpDef("Attention", _attention, _attention_infer,
              doc="softmax(q k^T * scale + mask) v; GQA when k/v have fewer heads; causal flag"),
        OpDef("QKVAttention", _qkv_attention, _qkv_attention_infer,
              doc="self-attention over qkv [B, S, 3*heads*D] (q|k|v on the last axis) -> [B, S, heads*D]"),
        OpDef("Conv", _conv),
        OpDef("ConvTranspose", _conv_transpose),
        OpDef("MaxPool", _max_pool,
              doc="max pooling; return_indices adds ONNX's flat argmax Indices as a second output"),
        OpDef("AvgPool", _avg_pool, doc="average pooling: dilation, count_include_pad, ceil_mode"),
        OpDef("AdaptiveAvgPool", _adaptive_avg_pool),
        OpDef("Var", _var),
        OpDef("ArgMax", _arg_reduce(np.argmax)),
        OpDef("ArgMin", _arg_reduce(np.argmin)),
        OpDef("TopK", _topk, num_outputs=2),
    ]
    reductions = {
        "ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min",
        "ReduceProd": "prod", "ReduceAny": "any", "ReduceAll": "all", "ReduceL2": "l2",
        "ReduceL1": "l1", "ReduceSumSquare": "sumsquare", "ReduceLogSum": "logsum",
        "ReduceLogSumExp": "logsumexp",
    }  # fmt: skip
    for name, fn in reductions.items():
        ops.append(OpDef(name, _reduce(fn), _reduce_infer, doc=f"reduce {fn} over axes"))
    return {op.name: op for op in ops}

"""Ops added for wider PyTorch coverage: sorting, slice and masked scatter, and resizing
(nearest / linear over the trailing spatial dims, torch's index rules).  Numpy references only;
the executor counts them as numpy nodes."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import OpDef, norm_axis


def _sort(inputs, axis=-1, descending=False, stable=False):
    """(values, int64 indices) along ``axis``; ties keep their order (torch's stable sort)."""
    x = np.asarray(inputs[0])
    if x.ndim == 0:
        return x.copy(), np.zeros((), dtype=np.int64)
    axis = norm_axis(axis, x.ndim)
    if descending:
        # a stable descending sort: stable ascending on the reversed axis, mapped back
        flipped = np.flip(x, axis)
        order = np.flip(np.argsort(flipped, axis=axis, kind="stable"), axis)
        order = x.shape[axis] - 1 - order
        # nan sorts first in torch's descending order, as in numpy's reversed ascending
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    return np.take_along_axis(x, order, axis=axis), order.astype(np.int64)


def _slice_scatter(inputs, dim=0, start=None, end=None, step=1):
    """A copy of ``inputs[0]`` with ``x[..., start:end:step, ...] = src`` along ``dim``."""
    x = np.array(inputs[0], copy=True)
    src = np.asarray(inputs[1])
    dim = norm_axis(dim, x.ndim)
    index: list[Any] = [slice(None)] * x.ndim
    index[dim] = slice(start, end, step)
    x[tuple(index)] = src.astype(x.dtype, copy=False)
    return x


def _masked_scatter(inputs):
    """torch.masked_scatter: positions where the (broadcast) mask is true take the source's
    elements in row-major order."""
    x = np.array(inputs[0], copy=True)
    mask = np.broadcast_to(np.asarray(inputs[1], dtype=bool), x.shape)
    x, mask = np.broadcast_arrays(x, mask)
    x = np.array(x, copy=True)
    count = int(mask.sum())
    source = np.asarray(inputs[2]).reshape(-1)
    if source.size < count:
        raise ValueError(f"masked_scatter: mask selects {count} elements, source has {source.size}")
    x[mask] = source[:count].astype(x.dtype, copy=False)
    return x


def _input_step(out_size: int, in_size: int, scale: float | None, align_corners: bool) -> float:
    """Input pixels per output pixel (aten's ``area_pixel_compute_scale``): corners aligned,
    the given scale factor, or the size ratio."""
    if align_corners:
        return (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    return (1.0 / scale) if scale else in_size / out_size


def _source_positions(out_size: int, in_size: int, scale: float | None, mode: str,
                      align_corners: bool) -> np.ndarray:  # fmt: skip
    """Fractional source coordinate of every output position (torch's upsample rules)."""
    out = np.arange(out_size, dtype=np.float64)
    if mode == "nearest":
        return np.minimum(np.floor(out * _input_step(out_size, in_size, scale, False)), in_size - 1)
    ratio = _input_step(out_size, in_size, scale, align_corners)
    if align_corners:
        return out * ratio
    return np.maximum((out + 0.5) * ratio - 0.5, 0.0)


def _linear_filter(t: np.ndarray) -> np.ndarray:
    return np.maximum(1.0 - np.abs(t), 0.0)


def _cubic_filter(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution with a = -0.5, the antialiased bicubic filter (as PIL)."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t < 1, near, np.where(t < 2, far, 0.0))


# filter and its support in input pixels at scale 1 (torch's interp_size / 2)
_AA_FILTERS = {"linear": (_linear_filter, 1.0), "cubic": (_cubic_filter, 2.0)}


def antialias_weights(out_size: int, in_size: int, scale: float | None, mode: str,
                      align_corners: bool) -> np.ndarray:  # fmt: skip
    """[out, in] weights of torch's antialiased resize along one axis (``_upsample_*_aa``):
    when shrinking, the filter widens by the scale so every input pixel contributes; each row
    is normalised to sum to one.  Follows aten's ``_compute_weights_aa`` step for step."""
    fn, support = _AA_FILTERS[mode]
    ratio = _input_step(out_size, in_size, scale, align_corners)
    invscale = 1.0 / ratio if ratio >= 1.0 else 1.0
    support = support * ratio if ratio >= 1.0 else support
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = ratio * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)  # int() truncates toward zero, as C's cast
        hi = min(int(center + support + 0.5), in_size)
        w = fn((np.arange(lo, hi) - center + 0.5) * invscale)
        total = w.sum()
        weights[i, lo:hi] = w / total if total != 0 else w
    return weights


def _resize(inputs, size=None, scales=None, mode="nearest", align_corners=False, antialias=False):
    """Resize the trailing len(size) dims of [N, C, *spatial]: ``mode`` nearest or linear
    (bilinear/trilinear are linear per axis); ``antialias`` (linear or cubic) is torch's
    ``_upsample_*_aa``.  ``size`` may be None when ``scales`` is given."""
    x = np.asarray(inputs[0])
    spatial = len(size) if size is not None else len(scales)
    in_sizes = x.shape[x.ndim - spatial:]
    if size is None:
        size = [int(np.floor(n * s)) for n, s in zip(in_sizes, scales)]
    result = x.astype(np.float64) if mode != "nearest" else x
    for i, (out_size, in_size) in enumerate(zip(size, in_sizes)):
        axis = x.ndim - spatial + i
        scale = scales[i] if scales else None
        if antialias:
            w = antialias_weights(int(out_size), int(in_size), scale, mode, align_corners)
            result = np.moveaxis(np.moveaxis(result, axis, -1) @ w.T, -1, axis)
            continue
        src = _source_positions(int(out_size), int(in_size), scale, mode, align_corners)
        if mode == "nearest":
            result = np.take(result, src.astype(np.int64), axis=axis)
            continue
        low = np.floor(src).astype(np.int64)
        high = np.minimum(low + 1, in_size - 1)
        weight = (src - low).reshape([-1 if d == axis else 1 for d in range(x.ndim)])
        result = np.take(result, low, axis=axis) * (1 - weight) + np.take(result, high, axis=axis) * weight
    return result.astype(x.dtype, copy=False)


def _histc(inputs, bins=100, min=0.0, max=0.0):  # noqa: A002 — torch's argument names
    """torch.histc: ``bins`` equal-width bins over [min, max] (the data's range when both are
    0; widened by 1 each side when that range is empty); values outside are ignored, the
    maximum falls in the last bin; counts in the input's dtype."""
    x = np.asarray(inputs[0])
    values = x.reshape(-1).astype(np.float64)
    low, high = float(min), float(max)
    if low == 0.0 and high == 0.0 and values.size:
        low, high = float(values.min()), float(values.max())
    if low == high:
        low, high = low - 1.0, high + 1.0
    inside = values[(values >= low) & (values <= high)]
    index = np.minimum(((inside - low) / (high - low) * bins).astype(np.int64), bins - 1)
    return np.bincount(index, minlength=bins).astype(x.dtype)


def _grouped_matmul(inputs):
    """Mixture-of-experts grouped matmul (``torch._grouped_mm`` / transformers'
    ``grouped_mm_fallback``): rows ``offs[i-1]:offs[i]`` of x [S, K] times weight[i] [K, N];
    rows past the last offset stay zero."""
    x, weight, offs = np.asarray(inputs[0]), np.asarray(inputs[1]), np.asarray(inputs[2])
    out = np.zeros((x.shape[0], weight.shape[-1]), dtype=np.result_type(x, weight))
    start = 0
    for group, end in enumerate(offs.reshape(-1).tolist()):
        end = int(end)
        if end > start:
            out[start:end] = x[start:end] @ weight[group]
        start = end
    return out


def _bucketize(inputs, right=False, out_int32=False):
    """torch.bucketize(x, boundaries): for right=False the first i with x <= boundaries[i]."""
    x, boundaries = np.asarray(inputs[0]), np.asarray(inputs[1])
    found = np.searchsorted(boundaries, x, side="right" if right else "left")
    return found.astype(np.int32 if out_int32 else np.int64)


def _grid_sample(inputs, mode="bilinear", padding_mode="zeros", align_corners=False):
    """torch.nn.functional.grid_sample for 4-D input [N, C, H, W] and grid [N, Ho, Wo, 2]
    (x, y in [-1, 1]): bilinear, nearest or bicubic, zeros or border padding."""
    x, grid = np.asarray(inputs[0]), np.asarray(inputs[1]).astype(np.float64)
    n, c, height, width = x.shape
    coords = []
    for k, size in ((0, width), (1, height)):
        g = grid[..., k]
        g = ((g + 1) / 2) * (size - 1) if align_corners else ((g + 1) * size - 1) / 2
        # bicubic pads each of its 16 taps instead (below), as torch does
        if padding_mode == "border" and mode != "bicubic":
            g = np.clip(g, 0, size - 1)
        coords.append(g)
    gx, gy = coords
    batch = np.arange(n).reshape(n, 1, 1)

    def fetch(iy, ix):  # [N, Ho, Wo, C]; zero outside the image
        if padding_mode == "border":
            iy, ix = np.clip(iy, 0, height - 1), np.clip(ix, 0, width - 1)
        inside = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
        values = x[batch, :, np.clip(iy, 0, height - 1), np.clip(ix, 0, width - 1)]
        return values * inside[..., None]

    if mode == "bicubic":
        x0, y0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
        wx, wy = _cubic_weights(gx - x0), _cubic_weights(gy - y0)
        out = sum(fetch(y0 - 1 + j, x0 - 1 + i) * (wx[i] * wy[j])[..., None]
                  for i in range(4) for j in range(4))  # fmt: skip
    elif mode == "nearest":
        out = fetch(np.rint(gy).astype(np.int64), np.rint(gx).astype(np.int64))
    else:
        x0, y0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
        wx, wy = (gx - x0)[..., None], (gy - y0)[..., None]
        out = (fetch(y0, x0) * (1 - wx) * (1 - wy) + fetch(y0, x0 + 1) * wx * (1 - wy)
               + fetch(y0 + 1, x0) * (1 - wx) * wy + fetch(y0 + 1, x0 + 1) * wx * wy)  # fmt: skip
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2)).astype(x.dtype)


def _cubic_weights(t, a=-0.75):
    """The four taps' weights (at -1, 0, 1, 2 from the floor) of torch's bicubic kernel."""
    def near(d):
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _assert_scalar(inputs, msg="runtime assertion failed"):
    """Raise when the runtime scalar condition is false (a data-dependent branch the export
    took, or a range it assumed); returns the condition."""
    condition = inputs[0]
    condition = condition.item() if isinstance(condition, np.ndarray) else condition
    if not condition:
        raise AssertionError(msg)
    return np.asarray(bool(condition))


def _unfold(inputs, dim=0, size=1, step=1):
    """Tensor.unfold: windows of ``size`` every ``step`` along ``dim``, as a new last dim."""
    x = np.asarray(inputs[0])
    dim = norm_axis(dim, x.ndim)
    windows = np.lib.stride_tricks.sliding_window_view(x, size, axis=dim)
    index: list[Any] = [slice(None)] * windows.ndim
    index[dim] = slice(None, None, step)
    return np.ascontiguousarray(windows[tuple(index)])


def _erfinv(inputs):
    """Inverse error function: Giles' approximation refined by two Newton steps on erf."""
    from .elementwise import erf

    x = np.asarray(inputs[0])
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    z = x.astype(np.float64)
    with np.errstate(all="ignore"):
        w = -np.log((1.0 - z) * (1.0 + z))
        small = w - 2.5
        large = np.sqrt(w) - 3.0
        p_small = np.polyval([2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                              0.00021858087, -0.00125372503, -0.00417768164, 0.246640727,
                              1.50140941], small)  # fmt: skip
        p_large = np.polyval([-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                              0.00573950773, -0.0076224613, 0.00943887047, 1.00167406,
                              2.83297682], large)  # fmt: skip
        y = np.where(w < 5.0, p_small, p_large) * z
        for _ in range(2):
            y = y - (erf(y) - z) / (2.0 / np.sqrt(np.pi) * np.exp(-y * y))
        y = np.where(np.abs(z) == 1.0, np.copysign(np.inf, z), y)
        y = np.where(np.abs(z) > 1.0, np.nan, y)
    return y.astype(dtype)


def _cumulative_extreme(largest: bool):
    """torch.cummax / cummin: running extreme and the index where it was last reached
    (ties move the index forward, as torch does)."""

    def reference(inputs, axis=0):
        x = np.asarray(inputs[0])
        axis = norm_axis(axis, x.ndim)
        moved = np.moveaxis(x, axis, 0)
        values, indices = np.empty_like(moved), np.zeros(moved.shape, dtype=np.int64)
        for i in range(moved.shape[0]):
            if i == 0:
                values[0], indices[0] = moved[0], 0
                continue
            better = moved[i] >= values[i - 1] if largest else moved[i] <= values[i - 1]
            values[i] = np.where(better, moved[i], values[i - 1])
            indices[i] = np.where(better, i, indices[i - 1])
        return np.moveaxis(values, 0, axis), np.moveaxis(indices, 0, axis)

    return reference


def _as_strided(inputs, size=(), stride=(), offset=0):
    """torch.as_strided over the value's own contiguous buffer (what a functionalised graph
    hands it): element strides and offset."""
    x = np.ascontiguousarray(inputs[0]).reshape(-1)
    offset = int(offset or 0)
    view = np.lib.stride_tricks.as_strided(x[offset:], shape=tuple(int(n) for n in size),
                                           strides=tuple(int(s) * x.itemsize for s in stride))  # fmt: skip
    return np.array(view)


def _repeat_index(inputs):
    """torch.repeat_interleave(repeats): each position i repeated repeats[i] times (the index
    form that repeat_interleave(x, tensor_repeats, dim) is exported as); data-dependent length."""
    repeats = np.asarray(inputs[0]).reshape(-1).astype(np.int64)
    if (repeats < 0).any():
        raise ValueError("repeat_interleave: repeats must be non-negative")
    return np.repeat(np.arange(repeats.size, dtype=np.int64), repeats)


def _nonzero(inputs):
    """torch.nonzero: [count, rank] int64 indices of the non-zero elements, row-major order."""
    return np.stack(np.nonzero(np.asarray(inputs[0])), axis=1).astype(np.int64)


def _unique_consecutive(inputs):
    """torch.unique_consecutive(x) over the flattened x: (values, inverse in x's shape, counts);
    a run of equal neighbours collapses to one value (cumulative window bounds, say)."""
    x = np.asarray(inputs[0])
    flat = x.reshape(-1)
    starts = np.ones(flat.size, dtype=bool)
    starts[1:] = flat[1:] != flat[:-1]
    inverse = (np.cumsum(starts) - 1).astype(np.int64).reshape(x.shape)
    counts = np.diff(np.append(np.flatnonzero(starts), flat.size)).astype(np.int64)
    return flat[starts], inverse, counts


def _embedding_bag(inputs, mode=0, include_last_offset=False, padding_idx=-1):
    """torch's _embedding_bag (1-D indices cut into bags at ``offsets``): per bag the sum (mode
    0), mean (1) or max (2) of weight[indices], each row scaled by its per-sample weight when
    given; then torch's three bookkeeping outputs (offset2bag, bag_size, max_indices) as zeros,
    which nothing reads in inference."""
    weight, indices, offsets = (np.asarray(v) for v in inputs[:3])
    scale = np.asarray(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else None
    indices, offsets = indices.reshape(-1).astype(np.int64), offsets.reshape(-1).astype(np.int64)
    bounds = np.append(offsets, indices.size) if not include_last_offset else offsets
    rows = weight[indices] * (scale.reshape(-1, 1) if scale is not None else 1)
    keep = indices != padding_idx if padding_idx >= 0 else np.ones(indices.size, bool)
    bags = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        chosen = rows[start:end][keep[start:end]]
        if chosen.shape[0] == 0:
            bags.append(np.zeros(weight.shape[1], weight.dtype))
        else:
            bags.append({0: chosen.sum(0), 1: chosen.mean(0), 2: chosen.max(0)}[mode])
    out = np.stack(bags).astype(weight.dtype) if bags else np.zeros((0, weight.shape[1]), weight.dtype)
    return out, np.zeros(indices.size, np.int64), np.zeros(len(bags), np.int64), np.zeros(len(bags), np.int64)


def _fft(inputs, kind="c2c", dims=(), normalization=0, forward=True, onesided=True,
         last_dim_size=None):  # fmt: skip
    """torch's _fft_r2c / _fft_c2c / _fft_c2r over ``dims``, complex values as (real,
    imaginary) pairs on a last axis of 2 (how the frontend lowers them): r2c takes a real
    value, c2r returns one.  Unnormalised both ways, then scaled as aten's ``normalization``
    says (0: none, 1: 1/sqrt(n), 2: 1/n, n the signal size: the real side's)."""
    x = np.asarray(inputs[0])
    dtype = x.dtype
    dims = [int(d) for d in dims]
    if kind == "r2c":
        signal = [x.shape[d] for d in dims]
        z = np.fft.rfftn(x, axes=dims) if onesided else np.fft.fftn(x, axes=dims)
    else:
        z = x[..., 0].astype(np.complex128) + 1j * x[..., 1]
        if kind == "c2c":
            signal = [z.shape[d] for d in dims]
            z = np.fft.fftn(z, axes=dims) if forward else np.fft.ifftn(z, axes=dims, norm="forward")
        else:
            sizes = [z.shape[d] for d in dims[:-1]] + [int(last_dim_size)]
            signal = sizes
            z = np.fft.irfftn(z, s=sizes, axes=dims, norm="forward")
    scale = float(np.prod(signal)) if signal else 1.0
    z = z / {0: 1.0, 1: np.sqrt(scale), 2: scale}[int(normalization)]
    if kind == "c2r":
        return np.ascontiguousarray(z.real).astype(dtype)
    return np.stack([z.real, z.imag], axis=-1).astype(dtype)


def build() -> dict[str, OpDef]:
    ops = [
        OpDef("Sort", _sort, num_outputs=2, doc="(values, indices) along axis; stable"),
        OpDef("SliceScatter", _slice_scatter, doc="copy of x with x[start:end:step] = src on dim"),
        OpDef("MaskedScatter", _masked_scatter, doc="x where mask is false, source elements in order where true"),
        OpDef("GroupedMatMul", _grouped_matmul, doc="x[S,K] row groups (cumulative offs) times weight[E,K,N]"),
        OpDef("Bucketize", _bucketize, doc="torch.bucketize over 1-D sorted boundaries"),
        OpDef("GridSample", _grid_sample, doc="grid_sample on [N,C,H,W]: bilinear/nearest/bicubic, zeros/border"),
        OpDef("AssertScalar", _assert_scalar, keep=True,
              doc="raise with msg when the scalar condition is false (export's runtime asserts)"),
        OpDef("Unfold", _unfold, doc="Tensor.unfold(dim, size, step): sliding windows as a new last dim"),
        OpDef("Erfinv", _erfinv, elementwise=True, doc="inverse error function"),
        OpDef("CumMax", _cumulative_extreme(True), num_outputs=2, doc="(running max, index)"),
        OpDef("CumMin", _cumulative_extreme(False), num_outputs=2, doc="(running min, index)"),
        OpDef("AsStrided", _as_strided, doc="strided view of the value's contiguous buffer, copied"),
        OpDef("RepeatIndex", _repeat_index, doc="repeat_interleave(repeats): i, repeats[i] times"),
        OpDef("EmbeddingBag", _embedding_bag, num_outputs=4,
              doc="torch _embedding_bag: sum/mean/max of weighted rows per bag (then 3 unused)"),
        OpDef("UniqueConsecutive", _unique_consecutive, num_outputs=3,
              doc="torch.unique_consecutive (flattened): values, inverse, counts"),
        OpDef("NonZero", _nonzero, doc="torch.nonzero: [count, rank] indices of non-zero elements"),
        OpDef("Histc", _histc, doc="torch.histc: counts in equal-width bins over [min, max]"),
        OpDef("FFT", _fft, doc="torch _fft_r2c / _fft_c2c / _fft_c2r on (real, imaginary) pairs"),
        OpDef("Resize", _resize,
              doc="nearest / linear / antialiased resize of trailing spatial dims (torch rules)"),
    ]
    return {op.name: op for op in ops}


__all__ = ["build"]

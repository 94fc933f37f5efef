"""Matrix products: SGEMM (batched, broadcasting), linear with fused epilogue, the
weight-only quantized linears (int8 per channel, Q4_0 and Q8_0 blocks) with their quantizers,
and the int8 x int8 linear with activations quantized per token at run time (linear_int8_dynamic).

Weights follow torch's nn.Linear layout, ``w[out_features, in_features]``, so state dicts
load without transposing; the GEMM packs ``w`` as B = w.T on the fly."""

from __future__ import annotations

import math

import numpy as np

from . import _checks as chk
from ._lib import check_rc, fptr, lib, ptr, require

Q4_BLOCK = 32
Q8_BLOCK = 32


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for float32 a[..., M, K], b[..., K, N]; batch dims broadcast like numpy.

    Each operand may be C-contiguous or a transposed view of a C-contiguous array (its last
    two axes swapped, e.g. ``w.T`` or ``k.swapaxes(-1, -2)``): both are read in place."""
    require()
    a, a_trans = _matmul_operand("a", a)
    b, b_trans = _matmul_operand("b", b)
    m, k = a.shape[-2:]
    k2, n = b.shape[-2:]
    chk.same("a.shape[-1]", k, "b.shape[-2]", k2)
    try:  # the plain 2-D product skips the (slow) broadcasting machinery
        same = a.shape[:-2] == b.shape[:-2]
        batch_shape = a.shape[:-2] if same else np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"batch dims of a {a.shape} and b {b.shape} do not broadcast") from None
    res = chk.out(out, batch_shape + (m, n), (a, b))
    batch = math.prod(batch_shape)
    if res.size == 0:
        return res
    if k == 0:
        res[...] = 0.0
        return res
    a_off = _batch_offsets(a.shape[:-2], batch_shape, m * k)
    b_off = _batch_offsets(b.shape[:-2], batch_shape, k * n)
    # the C-contiguous buffer behind a transposed view is the view with its last axes swapped
    a_buf = np.swapaxes(a, -1, -2) if a_trans else a
    b_buf = np.swapaxes(b, -1, -2) if b_trans else b
    rc = lib.skm_matmul(
        batch,
        fptr(a_buf),
        ptr(a_off),
        a_trans,
        fptr(b_buf),
        ptr(b_off),
        b_trans,
        fptr(res),
        m,
        n,
        k,
    )
    check_rc(rc, "matmul")
    return res


def _matmul_operand(name: str, x: object) -> tuple[np.ndarray, int]:
    """(x, transposed?) for a C-contiguous x or a last-two-axes transpose of one."""
    x = chk.array(name, x)
    if x.dtype != np.float32:
        raise TypeError(f"{name} must have dtype float32, got {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dims, got shape {x.shape}")
    if x.flags.c_contiguous:
        return chk.layout(name, x), 0
    if np.swapaxes(x, -1, -2).flags.c_contiguous:
        return chk.layout(name, np.swapaxes(x, -1, -2)).swapaxes(-1, -2), 1
    raise ValueError(
        f"{name} must be C-contiguous or a transposed view of a C-contiguous array; "
        f"pass np.ascontiguousarray({name})"
    )


_NO_OFFSET = np.zeros(1, np.int64)
_NO_OFFSET.setflags(write=False)


def _batch_offsets(own: tuple[int, ...], full: tuple[int, ...], stride: int) -> np.ndarray:
    """Element offset of each broadcast batch matrix inside the operand's buffer."""
    count = math.prod(full)
    if count == 1:
        return _NO_OFFSET
    if own == full:
        return np.arange(count, dtype=np.int64) * stride
    idx = np.arange(math.prod(own), dtype=np.int64).reshape(own)
    return np.ascontiguousarray(np.broadcast_to(idx, full)).reshape(-1) * stride


def _linear_checks(x, n_out, k, bias, out, inputs):
    lead = x.shape[:-1]
    bias = chk.optional_f32("bias", bias, (n_out,))
    res = chk.out(out, lead + (n_out,), inputs + (bias,))
    rows = math.prod(lead)
    return bias, res, rows


def linear(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None = None,
    activation: str = "none",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``act(x @ w.T + bias)`` with x[..., in], w[out, in] (torch layout), bias[out].
    activation: none | relu | gelu (erf) | gelu_tanh | silu | tanh, fused into the GEMM epilogue."""
    require()
    act = chk.activation_id(activation)
    x = chk.f32("x", x, min_ndim=1)
    w = chk.f32("w", w, ndim=2)
    n_out, k = w.shape
    chk.same("x.shape[-1]", x.shape[-1], "w.shape[1]", k)
    bias, res, rows = _linear_checks(x, n_out, k, bias, out, (x, w))
    if res.size == 0:
        return res
    rc = lib.skm_linear(fptr(x), fptr(w), fptr(bias), fptr(res), rows, n_out, k, act)
    check_rc(rc, "linear")
    return res


class PackedLinearWeight:
    """A linear weight ``w[out, in]`` packed once into the GEMM micro-panels of one ISA
    (``pack_linear_weight``); ``linear_packed`` then skips the per-call packing.  Read-only."""

    __slots__ = ("data", "out_features", "in_features", "isa", "isa_id")

    def __init__(
        self, data: np.ndarray, out_features: int, in_features: int, isa: str, isa_id: int
    ):
        self.data = data
        self.out_features = out_features
        self.in_features = in_features
        self.isa = isa
        self.isa_id = isa_id

    @property
    def shape(self) -> tuple[int, int]:
        return (self.out_features, self.in_features)

    def __repr__(self) -> str:
        return f"PackedLinearWeight({self.out_features}x{self.in_features}, isa={self.isa})"


def pack_linear_weight(w: np.ndarray) -> PackedLinearWeight:
    """Packs ``w[out, in]`` (float32, torch layout) for the active ISA; pack again after
    ``set_isa`` (``linear_packed`` refuses a weight packed for another ISA)."""
    require()
    from .control import ISAS, get_isa

    w = chk.f32("w", w, ndim=2)
    isa = get_isa()
    n, k = w.shape
    floats = lib.skm_packed_weight_floats(ISAS[isa], n, k)
    check_rc(min(int(floats), 0), "pack_linear_weight")
    data = np.empty(max(int(floats), 1), np.float32)
    check_rc(lib.skm_pack_linear_weight(ISAS[isa], fptr(w), n, k, fptr(data)), "pack_linear_weight")
    data.setflags(write=False)
    return PackedLinearWeight(data, n, k, isa, ISAS[isa])


def packed_weight(name: str, w: object) -> PackedLinearWeight:
    """Checks that ``w`` came from pack_linear_weight for the ISA active now."""
    from .control import get_isa

    if not isinstance(w, PackedLinearWeight):
        raise TypeError(f"{name} must come from pack_linear_weight, got {type(w).__name__}")
    isa = get_isa()
    if w.isa != isa:
        raise ValueError(
            f"{name} was packed for {w.isa} but the active ISA is {isa}; pack it again"
        )
    return w


def linear_packed(
    x: np.ndarray,
    w: PackedLinearWeight,
    bias: np.ndarray | None = None,
    activation: str = "none",
    residual: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``act(x @ W.T + bias) + residual`` with W pre-packed by ``pack_linear_weight``.
    residual has the output's shape; it must not be ``out`` (the GEMM writes partial sums)."""
    require()
    act = chk.activation_id(activation)
    w = packed_weight("w", w)
    x = chk.f32("x", x, min_ndim=1)
    n_out, k = w.shape
    chk.same("x.shape[-1]", x.shape[-1], "w in_features", k)
    shape = x.shape[:-1] + (n_out,)
    residual = chk.optional_f32("residual", residual, shape)
    bias, res, rows = _linear_checks(x, n_out, k, bias, out, (x, residual))
    if res.size == 0:
        return res
    rc = lib.skm_linear_packed(
        w.isa_id, fptr(x), fptr(w.data), fptr(bias), fptr(residual), fptr(res), rows, n_out, k, act
    )
    check_rc(rc, "linear_packed")
    return res


def quantize_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8: returns (q int8[out, in], scales float32[out]) with
    w ~= q * scales[:, None]."""
    require()
    w = chk.finite("w", chk.f32("w", w, ndim=2))
    q = np.empty(w.shape, np.int8)
    scales = np.empty(w.shape[0], np.float32)
    if w.size:
        check_rc(
            lib.skm_quantize_int8(fptr(w), ptr(q), fptr(scales), *w.shape),
            "quantize_int8",
        )
    else:
        scales[...] = 0.0
    return q, scales


def dequantize_int8(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    q, scales = _int8_checks(q, scales)
    return q.astype(np.float32) * scales[:, None]


def _int8_checks(q, scales):
    q = _int8_weight("q", q)
    scales = chk.finite("scales", chk.f32("scales", scales, ndim=1))
    chk.same("scales.shape[0]", scales.shape[0], "q.shape[0]", q.shape[0])
    return q, scales


def matmul_int8(
    x: np.ndarray,
    q: np.ndarray,
    scales: np.ndarray,
    bias: np.ndarray | None = None,
    activation: str = "none",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``linear(x, dequantize_int8(q, scales), bias, activation)`` without materialising the
    float weight: int8 rows are dequantized while the GEMM packs them."""
    require()
    act = chk.activation_id(activation)
    x = chk.f32("x", x, min_ndim=1)
    q, scales = _int8_checks(q, scales)
    n_out, k = q.shape
    chk.same("x.shape[-1]", x.shape[-1], "q.shape[1]", k)
    bias, res, rows = _linear_checks(x, n_out, k, bias, out, (x, q, scales))
    if res.size == 0:
        return res
    rc = lib.skm_linear_int8(
        fptr(x), ptr(q), fptr(scales), fptr(bias), fptr(res), rows, n_out, k, act
    )
    check_rc(rc, "matmul_int8")
    return res


# K * 128 * 127 must fit the int32 accumulators (skm_api.h SKM_INT8_MAX_K; 0 when not built)
INT8_MAX_K = int(getattr(lib, "SKM_INT8_MAX_K", 0))


def quantize_per_token_int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The activation quantization of ``linear_int8_dynamic``, on its own: returns
    (xq int8 x.shape, xs float32 x.shape[:-1]) with, per row (token) of the last axis,
    ``xs = max|x| / 127`` and ``xq = rint(clip(x / xs, -127, 127))`` in float32, rint rounding
    half to even.  A row whose xs is 0 gives zeros; a row holding NaN/inf gives xs = NaN and
    zeros.  Every ISA path gives these exact bytes."""
    require()
    x = chk.f32("x", x, min_ndim=1)
    xq = np.empty(x.shape, np.int8)
    xs = np.empty(x.shape[:-1], np.float32)
    rows, k = math.prod(x.shape[:-1]), x.shape[-1]
    if rows:
        rc = lib.skm_quantize_rows_int8(fptr(x), ptr(xq), fptr(xs), rows, k)
        check_rc(rc, "quantize_per_token_int8")
    return xq, xs


class PackedInt8Weight:
    """An int8 weight ``q[out, in]`` (from quantize_int8) with the panels the active ISA's
    int8 x int8 kernel reads (``pack_int8_weight``); ``linear_int8_dynamic`` takes it in place
    of q and skips the per-call repacking.  ``panels`` is None on paths that read q as it
    lies (scalar, NEON, AVX-512 VNNI).  Read-only."""

    __slots__ = ("q", "panels", "isa", "isa_id")

    def __init__(self, q: np.ndarray, panels: np.ndarray | None, isa: str, isa_id: int):
        self.q = q
        self.panels = panels
        self.isa = isa
        self.isa_id = isa_id

    @property
    def shape(self) -> tuple[int, int]:
        return self.q.shape

    def __repr__(self) -> str:
        n, k = self.q.shape
        return f"PackedInt8Weight({n}x{k}, isa={self.isa})"


def pack_int8_weight(q: np.ndarray) -> PackedInt8Weight:
    """Repacks ``q`` (int8 [out, in], quantize_int8's layout) once for the active ISA's
    ``linear_int8_dynamic``; pack again after ``set_isa`` (a weight packed for another ISA is
    refused).  The packed object keeps a reference to q (read-only view)."""
    require()
    from .control import ISAS, get_isa

    q = _int8_weight("q", q)
    n, k = q.shape
    _int8_k_limit(k)
    isa = get_isa()
    elems = int(lib.skm_int8_panel_elems(ISAS[isa], n, k))
    check_rc(min(elems, 0), "pack_int8_weight")
    panels = None
    if elems > 0:
        panels = np.empty(elems, np.int16)
        check_rc(lib.skm_pack_int8_weight(ISAS[isa], ptr(q), n, k, ptr(panels)), "pack_int8_weight")
        panels.setflags(write=False)
    view = q.view()
    view.setflags(write=False)
    return PackedInt8Weight(view, panels, isa, ISAS[isa])


def _int8_k_limit(k: int) -> None:
    if k > INT8_MAX_K:
        raise ValueError(f"in_features ({k}) exceeds {INT8_MAX_K}, the int32 accumulator's limit")


def _int8_weight(name: str, q: object) -> np.ndarray:
    q = chk.array(name, q)
    if q.dtype != np.int8 or q.ndim != 2:
        raise TypeError(
            f"{name} must be a 2-D int8 array from quantize_int8, got {q.dtype} {q.shape}"
        )
    return chk.layout(name, q)


def linear_int8_dynamic(
    x: np.ndarray,
    q: np.ndarray | PackedInt8Weight,
    scales: np.ndarray,
    bias: np.ndarray | None = None,
    activation: str = "none",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """int8 x int8 linear: x float32[..., K] is quantized per row at run time
    (``quantize_per_token_int8``: xq, xs), multiplied with the int8 weight q[N, K]
    (``quantize_int8``'s layout, any int8 value; or ``pack_int8_weight(q)``) in exact int32
    arithmetic, and scaled back: ``out = act(acc * xs[..., None] * scales + bias)`` (float32,
    evaluated left to right).  A zero row gives ``act(bias)``; a row with NaN/inf gives NaN.
    K <= INT8_MAX_K.  activation: none | relu | gelu (erf) | gelu_tanh | silu | tanh."""
    require()
    act = chk.activation_id(activation)
    x = chk.f32("x", x, min_ndim=1)
    panels, panels_isa = None, -1
    if isinstance(q, PackedInt8Weight):
        from .control import get_isa

        isa = get_isa()
        if q.isa != isa:
            raise ValueError(f"q was packed for {q.isa} but the active ISA is {isa}; pack it again")
        panels, panels_isa, q = q.panels, q.isa_id, q.q
    q, scales = _int8_checks(q, scales)
    n_out, k = q.shape
    chk.same("x.shape[-1]", x.shape[-1], "q.shape[1]", k)
    _int8_k_limit(k)
    bias, res, rows = _linear_checks(x, n_out, k, bias, out, (x, q, scales))
    if res.size == 0:
        return res
    rc = lib.skm_linear_int8_dynamic(
        fptr(x),
        ptr(q),
        ptr(panels),
        panels_isa,
        fptr(scales),
        fptr(bias),
        fptr(res),
        rows,
        n_out,
        k,
        act,
    )
    check_rc(rc, "linear_int8_dynamic")
    return res


def quantize_q4_0(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4-bit blocks of 32 input values with one float32 scale each (like ggml's Q4_0).
    Returns (q uint8[out, ceil(in/32), 16], scales float32[out, ceil(in/32)]); value v of a
    block is (nibble - 8) * scale, stored in byte v // 2, low nibble first."""
    require()
    w = chk.finite("w", chk.f32("w", w, ndim=2))
    rows, cols = w.shape
    blocks = -(-cols // Q4_BLOCK)
    q = np.empty((rows, blocks, 16), np.uint8)
    scales = np.empty((rows, blocks), np.float32)
    if q.size:
        check_rc(
            lib.skm_quantize_q4_0(fptr(w), ptr(q), fptr(scales), rows, cols),
            "quantize_q4_0",
        )
    return q, scales


def _q4_checks(q, scales, k):
    q = chk.array("q", q)
    blocks = -(-k // Q4_BLOCK)
    if q.dtype != np.uint8 or q.ndim != 3 or q.shape[1:] != (blocks, 16):
        raise ValueError(
            f"q must be uint8 [out, {blocks}, 16] from quantize_q4_0 for in_features={k}, "
            f"got {q.dtype} {q.shape}"
        )
    chk.layout("q", q)
    scales = chk.finite("scales", chk.f32("scales", scales, ndim=2))
    if scales.shape != q.shape[:2]:
        raise ValueError(f"scales must have shape {q.shape[:2]}, got {scales.shape}")
    return q, scales


def dequantize_q4_0(q: np.ndarray, scales: np.ndarray, in_features: int) -> np.ndarray:
    q, scales = _q4_checks(q, scales, chk.nonneg_int("in_features", in_features))
    nib = np.stack([q & 15, q >> 4], axis=-1).reshape(q.shape[0], q.shape[1], 32)
    w = (nib.astype(np.float32) - 8.0) * scales[:, :, None]
    return w.reshape(q.shape[0], -1)[:, :in_features].copy()


def matmul_q4_0(
    x: np.ndarray,
    q: np.ndarray,
    scales: np.ndarray,
    bias: np.ndarray | None = None,
    activation: str = "none",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``linear(x, dequantize_q4_0(q, scales, x.shape[-1]), bias, activation)``; the blocks
    are dequantized while packing, or read in place for fewer than 6 rows (a decoded token),
    so the weight stays 4-bit in memory."""
    return _block_linear(x, q, scales, bias, activation, out, _q4_checks, lib.skm_linear_q4_0, "matmul_q4_0")


def quantize_q8_0(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 blocks of 32 input values with one float32 scale each (like ggml's Q8_0).
    Returns (q int8[out, ceil(in/32), 32], scales float32[out, ceil(in/32)]); value v of a
    block is q * scale with scale = max|block| / 127; a short last block is zero-padded."""
    require()
    w = chk.finite("w", chk.f32("w", w, ndim=2))
    rows, cols = w.shape
    blocks = -(-cols // Q8_BLOCK)
    q = np.empty((rows, blocks, Q8_BLOCK), np.int8)
    scales = np.empty((rows, blocks), np.float32)
    if q.size:
        check_rc(
            lib.skm_quantize_q8_0(fptr(w), ptr(q), fptr(scales), rows, cols),
            "quantize_q8_0",
        )
    return q, scales


def _q8_checks(q, scales, k):
    """The C kernel trusts the layout: q int8 [out, ceil(k/32), 32] C-contiguous and finite
    float32 scales [out, ceil(k/32)]; the padding past k in the last block is never read."""
    q = chk.array("q", q)
    blocks = -(-k // Q8_BLOCK)
    if q.dtype != np.int8 or q.ndim != 3 or q.shape[1:] != (blocks, Q8_BLOCK):
        raise ValueError(
            f"q must be int8 [out, {blocks}, 32] from quantize_q8_0 for in_features={k}, "
            f"got {q.dtype} {q.shape}"
        )
    chk.layout("q", q)
    scales = chk.finite("scales", chk.f32("scales", scales, ndim=2))
    if scales.shape != q.shape[:2]:
        raise ValueError(f"scales must have shape {q.shape[:2]}, got {scales.shape}")
    return q, scales


def dequantize_q8_0(q: np.ndarray, scales: np.ndarray, in_features: int) -> np.ndarray:
    q, scales = _q8_checks(q, scales, chk.nonneg_int("in_features", in_features))
    w = q.astype(np.float32) * scales[:, :, None]
    return w.reshape(q.shape[0], -1)[:, :in_features].copy()


def matmul_q8_0(
    x: np.ndarray,
    q: np.ndarray,
    scales: np.ndarray,
    bias: np.ndarray | None = None,
    activation: str = "none",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``linear(x, dequantize_q8_0(q, scales, x.shape[-1]), bias, activation)``; the blocks
    are dequantized while packing, or read in place for fewer than 6 rows (a decoded token), so
    the weight stays 8-bit in memory: a quarter of float32's traffic where decoding is memory-bound."""
    return _block_linear(x, q, scales, bias, activation, out, _q8_checks, lib.skm_linear_q8_0, "matmul_q8_0")


def _block_linear(x, q, scales, bias, activation, out, layout_checks, kernel, name) -> np.ndarray:
    """The weight-only block formats' one call path: every argument checked (the layout by the
    format's own checks) before the C kernel sees it."""
    require()
    act = chk.activation_id(activation)
    x = chk.f32("x", x, min_ndim=1)
    k = x.shape[-1]
    q, scales = layout_checks(q, scales, k)
    n_out = q.shape[0]
    bias, res, rows = _linear_checks(x, n_out, k, bias, out, (x, q, scales))
    if res.size == 0:
        return res
    check_rc(kernel(fptr(x), ptr(q), fptr(scales), fptr(bias), fptr(res), rows, n_out, k, act), name)
    return res

"""Transformer building blocks: softmax, norms, fused attention, activations, residual add,
embedding gather.  All take float32 C-contiguous arrays (see _checks for the policy)."""

from __future__ import annotations

import math

import numpy as np

from . import _checks as chk
from ._lib import check_rc, fptr, lib, ptr, require


def _mask_row_offsets(mask: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """For a mask broadcast to ``shape``: the contiguous mask buffer and, per row of the
    output, the element offset of that row's mask in it (broadcast dims have offset 0)."""
    view = chk.broadcast("mask", mask, shape)
    if view.strides[-1] != mask.itemsize:  # last dim broadcast: give every row its own copy
        mask = np.ascontiguousarray(view)
        view = mask
    offsets = np.zeros(shape[:-1], np.int64)
    for axis, stride in enumerate(view.strides[:-1]):
        if stride:
            reshape = [1] * (len(shape) - 1)
            reshape[axis] = shape[axis]
            offsets += (np.arange(shape[axis], dtype=np.int64) * (stride // 4)).reshape(reshape)
    return mask, offsets.reshape(-1)


def softmax(
    x: np.ndarray,
    mask: np.ndarray | None = None,
    causal: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Softmax over the last axis of ``x + mask``.

    mask: float32 additive or bool keep-mask, broadcastable to x.  causal: row i of each
    [..., Lq, Lk] matrix sees keys j <= i + (Lk - Lq) (bottom-right aligned: the usual lower
    triangle when square; a lone new query over a cache sees all keys).  A row with nothing
    to attend to (all -inf) comes out as zeros, not NaN."""
    require()
    x = chk.f32("x", x, min_ndim=1)
    if causal and x.ndim < 2:
        raise ValueError("causal softmax needs x with at least 2 dims [..., Lq, Lk]")
    res = chk.out(out, x.shape, (x,), in_place_ok=True)
    if x.size == 0:
        return res
    n = x.shape[-1]
    rows = x.size // n
    m_buf, offsets = None, None
    if mask is not None:
        m_buf, offsets = _mask_row_offsets(chk.additive_mask("mask", mask), x.shape)
    q_len = x.shape[-2] if x.ndim >= 2 else 1
    rc = lib.skm_softmax(
        fptr(x), fptr(res), rows, n, fptr(m_buf), ptr(offsets), int(bool(causal)), q_len, 1.0
    )
    check_rc(rc, "softmax")
    return res


def layer_norm(
    x: np.ndarray,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    eps: float = 1e-5,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """LayerNorm over the last axis (biased variance, like torch), weight/bias [H]."""
    require()
    x = chk.f32("x", x, min_ndim=1)
    h = x.shape[-1]
    weight = chk.optional_f32("weight", weight, (h,))
    bias = chk.optional_f32("bias", bias, (h,))
    eps = chk.finite_float("eps", eps)
    res = chk.out(out, x.shape, (x, weight, bias), in_place_ok=True)
    if x.size == 0:
        return res
    rc = lib.skm_layer_norm(fptr(x), fptr(weight), fptr(bias), fptr(res), x.size // h, h, eps)
    check_rc(rc, "layer_norm")
    return res


def rms_norm(
    x: np.ndarray,
    weight: np.ndarray | None = None,
    eps: float = 1e-6,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``x / sqrt(mean(x**2) + eps) * weight`` over the last axis (T5/LLaMA RMSNorm)."""
    require()
    x = chk.f32("x", x, min_ndim=1)
    h = x.shape[-1]
    weight = chk.optional_f32("weight", weight, (h,))
    eps = chk.finite_float("eps", eps)
    res = chk.out(out, x.shape, (x, weight), in_place_ok=True)
    if x.size == 0:
        return res
    rc = lib.skm_rms_norm(fptr(x), fptr(weight), fptr(res), x.size // h, h, eps)
    check_rc(rc, "rms_norm")
    return res


def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None = None,
    causal: bool = False,
    scale: float | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Fused scaled-dot-product attention, ``softmax(q k^T * scale + mask) v``.

    q [B, Hq, Sq, D], k [B, Hkv, Sk, D], v [B, Hkv, Sk, Dv] -> [B, Hq, Sq, Dv].  Hq must be a
    multiple of Hkv (GQA/MQA: query head h uses kv head h // (Hq // Hkv)).  mask: float32
    additive or bool keep-mask broadcastable to [B, Hq, Sq, Sk].  causal and all-masked rows
    as in :func:`softmax`.  scale defaults to 1/sqrt(D)."""
    require()
    q = chk.f32("q", q, ndim=4)
    k = chk.f32("k", k, ndim=4)
    v = chk.f32("v", v, ndim=4)
    b, hq, sq, d = q.shape
    bk, hkv, sk, dk = k.shape
    chk.same("k batch", bk, "q batch", b)
    chk.same("k head dim", dk, "q head dim", d)
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"v {v.shape} must match k {k.shape} in batch, heads and length")
    if hkv == 0 or hq % hkv:
        raise ValueError(f"query heads ({hq}) must be a multiple of key/value heads ({hkv})")
    dv = v.shape[3]
    scale = 1.0 / math.sqrt(d) if scale is None and d > 0 else (1.0 if scale is None else scale)
    scale = chk.finite_float("scale", scale)
    res = chk.out(out, (b, hq, sq, dv), (q, k, v))
    if res.size == 0:
        return res
    m_buf, strides = None, None
    if mask is not None:
        m_buf = chk.additive_mask("mask", mask)
        view = chk.broadcast("mask", m_buf, (b, hq, sq, sk))
        if sk and view.strides[-1] != 4:
            m_buf = view = np.ascontiguousarray(view)
        strides = np.array([s // 4 for s in view.strides[:3]], np.int64)
    rc = lib.skm_attention(
        fptr(q),
        fptr(k),
        fptr(v),
        fptr(res),
        b,
        hq,
        hkv,
        sq,
        sk,
        d,
        dv,
        fptr(m_buf),
        ptr(strides),
        int(bool(causal)),
        scale,
    )
    check_rc(rc, "attention")
    return res


def qkv_attention(
    qkv: np.ndarray,
    heads: int,
    mask: np.ndarray | None = None,
    causal: bool = False,
    scale: float | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Multi-head self-attention over a fused projection: qkv [B, S, 3*E] holds q | k | v
    along the last axis, each E = heads * D split head-major.  Returns [B, S, E], heads side
    by side (what the output projection reads).  The heads are read in place through
    strides: no transposed copies of q, k, v or the result.  mask and causal as in
    :func:`attention` (mask broadcastable to [B, heads, S, S])."""
    require()
    qkv = chk.f32("qkv", qkv, ndim=3)
    heads = chk.positive_int("heads", heads)
    b, s, e3 = qkv.shape
    if e3 % (3 * heads):
        raise ValueError(f"qkv last dim ({e3}) must be 3 * heads * head_dim with heads={heads}")
    e = e3 // 3
    d = e // heads
    scale = 1.0 / math.sqrt(d) if scale is None and d > 0 else (1.0 if scale is None else scale)
    scale = chk.finite_float("scale", scale)
    res = chk.out(out, (b, s, e), (qkv,))
    if res.size == 0:
        return res
    m_buf, m_strides = mask_strides(mask, (b, heads, s, s))
    strides = np.array([s * e3, d, e3] * 3 + [s * e, d, e], np.int64)
    base = fptr(qkv)  # k and v start e and 2e floats into each row
    rc = lib.skm_attention_strided(
        base, base + e, base + 2 * e, fptr(res), ptr(strides),
        b, heads, heads, s, s, d, d, fptr(m_buf), ptr(m_strides), int(bool(causal)), scale,
    )  # fmt: skip
    check_rc(rc, "qkv_attention")
    return res


def mask_strides(
    mask: object, shape: tuple[int, ...]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """An attention mask as (buffer, element strides over [batch, head, query row]) for a
    broadcast to ``shape`` [B, H, Sq, Sk]; the key axis is made contiguous."""
    if mask is None:
        return None, None
    m_buf = chk.additive_mask("mask", mask)
    view = chk.broadcast("mask", m_buf, shape)
    if shape[-1] and view.strides[-1] != 4:
        m_buf = view = np.ascontiguousarray(view)
    return m_buf, np.array([st // 4 for st in view.strides[:3]], np.int64)


def activation(x: np.ndarray, kind: str, out: np.ndarray | None = None) -> np.ndarray:
    """Elementwise activation: none | relu | gelu (erf) | gelu_erf | gelu_tanh | silu | tanh."""
    require()
    act = chk.activation_id(kind)
    x = chk.f32("x", x)
    res = chk.out(out, x.shape, (x,), in_place_ok=True)
    if x.size:
        check_rc(lib.skm_activation(fptr(x), fptr(res), x.size, act), kind)
    return res


def gelu(x: np.ndarray, approximate: str = "none", out: np.ndarray | None = None) -> np.ndarray:
    """GELU like torch.nn.functional.gelu: approximate='none' (erf) or 'tanh'."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return activation(x, "gelu_erf" if approximate == "none" else "gelu_tanh", out)


def silu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return activation(x, "silu", out)


def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return activation(x, "relu", out)


def tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return activation(x, "tanh", out)


def add(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Residual add ``a + b``; b has a's shape, or is a row [a.shape[-1]] added to each row."""
    require()
    a = chk.f32("a", a)
    b = chk.f32("b", b)
    row = a.ndim >= 1 and b.shape == a.shape[-1:] and b.shape != a.shape
    if b.shape != a.shape and not row:
        raise ValueError(f"b must have a's shape {a.shape} or ({a.shape[-1:]}), got {b.shape}")
    res = chk.out(out, a.shape, (a, b), in_place_ok=True)
    if a.size == 0:
        return res
    n = a.shape[-1] if a.ndim else 1
    rc = lib.skm_add(fptr(a), fptr(b), fptr(res), a.size // n, n, int(row))
    check_rc(rc, "add")
    return res


def embedding(ids: np.ndarray, table: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Gathers rows: out[..., :] = table[ids[...], :].  ids may be any integer dtype (it is
    converted to int64, deliberately); an id outside [0, vocab) raises IndexError."""
    require()
    ids = chk.array("ids", ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be an integer array, got {ids.dtype}")
    table = chk.f32("table", table, ndim=2)
    vocab, dim = table.shape
    res = chk.out(out, ids.shape + (dim,), (table,))
    if ids.size == 0:
        return res
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab:
        raise IndexError(f"ids must be in [0, {vocab}), got values in [{lo}, {hi}]")
    ids64 = np.ascontiguousarray(ids, dtype=np.int64)
    rc = lib.skm_embedding(ptr(ids64), ids64.size, fptr(table), vocab, dim, fptr(res))
    check_rc(rc, "embedding")
    return res

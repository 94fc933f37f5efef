"""Pre-packed linear weights and self-attention over a fused q|k|v projection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from native_helpers import native, nerr, rand

GELU = np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))

# odd and tile-straddling sizes: MR=6, NR=2/16/32; k over several KC blocks; m over MC
SHAPES = [
    (1, 1, 1),
    (5, 7, 3),
    (16, 384, 96),
    (13, 97, 31),
    (29, 300, 61),
    (151, 33, 19),
    (7, 0, 5),
]


def reference(x, w, bias, activation, residual):
    y = x.astype(np.float64) @ w.astype(np.float64).T
    if bias is not None:
        y = y + bias
    if activation == "relu":
        y = np.maximum(y, 0)
    elif activation == "gelu":
        y = GELU(y)
    return y if residual is None else y + residual


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("activation", ["none", "gelu"])
def test_linear_packed_matches_float64(isa, rng, m, k, n, activation):
    x, w, bias, residual = rand(rng, m, k), rand(rng, n, k), rand(rng, n), rand(rng, m, n)
    packed = native.pack_linear_weight(w)
    assert packed.isa == isa and packed.shape == (n, k)
    out = native.linear_packed(x, packed, bias, activation, residual=residual)
    ref = reference(x, w, bias, activation, residual)
    scale = (
        float(np.max(np.abs(x.astype(np.float64)) @ np.abs(w.T.astype(np.float64)))) if k else 1.0
    )
    assert out.shape == (m, n) and nerr(out, ref, max(scale, 1.0)) < 1e-6 * max(1, math.sqrt(k))


def test_linear_packed_batch_dims_and_no_bias(rng):
    x, w = rand(rng, 2, 3, 40), rand(rng, 21, 40)
    out = native.linear_packed(x, native.pack_linear_weight(w))
    assert out.shape == (2, 3, 21)
    assert nerr(out, x.astype(np.float64) @ w.T.astype(np.float64)) < 1e-5


def test_linear_packed_threads_and_blocking(rng):
    """Many row blocks (m > MC) and K over several KC blocks, on 1 to 3 threads."""
    before = native.get_gemm_blocking()
    native.set_gemm_blocking(2 * before["mr"], 7, before["nc"])
    try:
        # A read in place (N <= 512), A packed per task (N > 512, or a 4 KiB row stride)
        for n, k in ((77, 50), (530, 50), (100, 1024)):
            x, w, bias = rand(rng, 301, k), rand(rng, n, k), rand(rng, n)
            packed = native.pack_linear_weight(w)
            ref = reference(x, w, bias, "none", None)
            for threads in (1, 2, 3):
                native.set_num_threads(threads)
                assert nerr(native.linear_packed(x, packed, bias), ref) < 1e-5 * math.sqrt(k / 50)
    finally:
        native.set_num_threads(2)
        native.set_gemm_blocking(before["mc"], before["kc"], before["nc"])


def test_linear_packed_validation(rng):
    x, w = rand(rng, 4, 8), rand(rng, 6, 8)
    packed = native.pack_linear_weight(w)
    with pytest.raises(TypeError, match="pack_linear_weight"):
        native.linear_packed(x, w)
    with pytest.raises(ValueError, match="x.shape"):
        native.linear_packed(rand(rng, 4, 9), packed)
    with pytest.raises(ValueError, match="residual must have shape"):
        native.linear_packed(x, packed, residual=rand(rng, 4, 5))
    residual = rand(rng, 4, 6)
    with pytest.raises(ValueError, match="overlaps"):
        native.linear_packed(x, packed, residual=residual, out=residual)
    with pytest.raises(TypeError, match="float32"):
        native.pack_linear_weight(w.astype(np.float64))
    with pytest.raises(ValueError):
        packed.data[0] = 1.0  # read-only: a packed weight is shared by every call


@pytest.mark.skipif(len(native.supported_isas()) < 2, reason="needs two ISA paths")
def test_linear_packed_refuses_another_isas_weight(rng):
    w = rand(rng, 6, 8)
    with native.using_isa("scalar"):
        packed = native.pack_linear_weight(w)
    with pytest.raises(ValueError, match="packed for scalar"):
        native.linear_packed(rand(rng, 2, 8), packed)


def qkv_reference(qkv, heads, mask, causal, scale):
    b, s, e3 = qkv.shape
    e = e3 // 3
    q, k, v = (qkv[..., i * e : (i + 1) * e].astype(np.float64).reshape(b, s, heads, -1).transpose(0, 2, 1, 3)
               for i in range(3))  # fmt: skip
    scores = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        scores = np.where(mask, scores, -np.inf) if mask.dtype == bool else scores + mask
    if causal:
        scores = np.where(np.tril(np.ones((s, s), bool)), scores, -np.inf)
    top = np.max(scores, axis=-1, keepdims=True)
    weights = np.exp(scores - np.where(np.isfinite(top), top, 0))
    total = weights.sum(-1, keepdims=True)
    probs = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, e)


@pytest.mark.parametrize(
    "b,s,heads,d", [(1, 1, 1, 1), (2, 5, 3, 4), (1, 16, 12, 32), (3, 70, 2, 7)]
)
@pytest.mark.parametrize("mask_kind", [None, "additive", "bool", "causal"])
def test_qkv_attention_matches_float64(isa, rng, b, s, heads, d, mask_kind):
    qkv = rand(rng, b, s, 3 * heads * d)
    mask, causal = None, mask_kind == "causal"
    if mask_kind == "additive":  # one padding mask per sequence, as BERT builds it
        mask = np.where(rng.random((b, 1, 1, s)) < 0.3, -np.inf, 0.0).astype(np.float32)
        mask[..., 0] = 0.0
    elif mask_kind == "bool":
        mask = rng.random((b, heads, s, s)) > 0.3
    scale = 1.0 / math.sqrt(d)
    out = native.qkv_attention(qkv, heads, mask, causal=causal)
    assert out.shape == (b, s, heads * d)
    assert nerr(out, qkv_reference(qkv, heads, mask, causal, scale)) < 1e-5


def test_qkv_attention_validation(rng):
    with pytest.raises(ValueError, match="3 \\* heads"):
        native.qkv_attention(rand(rng, 1, 4, 10), 2)
    with pytest.raises(ValueError, match="3-D"):
        native.qkv_attention(rand(rng, 4, 12), 2)
    with pytest.raises(ValueError, match="does not broadcast"):
        native.qkv_attention(rand(rng, 1, 4, 12), 2, mask=np.zeros((3, 3), np.float32))

"""Softmax, norms, fused attention, activations, residual add and embedding vs float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from native_helpers import native, nerr, rand

F = torch.nn.functional


def t64(x):
    return torch.from_numpy(np.asarray(x, np.float64))


@pytest.mark.parametrize(
    "shape", [(1,), (7,), (3, 17), (2, 5, 33), (1, 12, 13, 131), (4, 0), (0, 3)]
)
def test_softmax(isa, rng, shape):
    x = rand(rng, *shape, scale=3.0)
    ref = F.softmax(t64(x), dim=-1).numpy()
    assert nerr(native.softmax(x), ref, 1.0) < 2e-6


def test_softmax_float_and_bool_masks_broadcast(isa, rng):
    x = rand(rng, 2, 3, 5, 11)
    fmask = rand(rng, 2, 1, 1, 11)
    ref = F.softmax(t64(x) + t64(fmask), dim=-1).numpy()
    assert nerr(native.softmax(x, mask=fmask), ref, 1.0) < 2e-6
    keep = rng.random((5, 11)) > 0.3
    keep[:, 0] = True
    ref = F.softmax(t64(x).masked_fill(~torch.from_numpy(keep), -math.inf), dim=-1).numpy()
    assert nerr(native.softmax(x, mask=keep), ref, 1.0) < 2e-6


@pytest.mark.parametrize("lq,lk", [(9, 9), (4, 9), (1, 9), (9, 4)])
def test_softmax_causal_bottom_right(isa, rng, lq, lk):
    x = rand(rng, 2, lq, lk)
    allowed = np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)
    masked = np.where(allowed, x.astype(np.float64), -np.inf)
    with np.errstate(invalid="ignore"):
        ref = F.softmax(torch.from_numpy(masked), dim=-1).numpy()
    ref = np.nan_to_num(ref, nan=0.0)  # rows with no allowed key: zeros by contract
    assert nerr(native.softmax(x, causal=True), ref, 1.0) < 2e-6


def test_softmax_fully_masked_row_is_zero(isa):
    x = np.ones((2, 4), np.float32)
    mask = np.array([[0, 0, 0, 0], [-np.inf] * 4], np.float32)
    out = native.softmax(x, mask=mask)
    assert np.allclose(out[0], 0.25) and np.all(out[1] == 0)


def test_softmax_in_place_and_nan(isa):
    x = np.array([[1.0, 2.0, 3.0], [1.0, np.nan, 0.0]], np.float32)
    ref = F.softmax(t64(x[:1]), dim=-1).numpy()
    out = native.softmax(x, out=x)
    assert out is x and nerr(x[:1], ref, 1.0) < 2e-6
    assert np.all(np.isnan(x[1]))


@pytest.mark.parametrize("shape", [(5,), (3, 17), (2, 7, 384), (1, 1), (0, 8)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(isa, rng, shape, affine):
    x = rand(rng, *shape, scale=2.0) + 3.0  # an offset: the two-pass variance matters
    w = rand(rng, shape[-1]) if affine else None
    b = rand(rng, shape[-1]) if affine else None
    ref = F.layer_norm(
        t64(x), shape[-1:], None if w is None else t64(w), None if b is None else t64(b), eps=1e-5
    ).numpy()
    assert nerr(native.layer_norm(x, w, b, eps=1e-5), ref) < 2e-6


@pytest.mark.parametrize("shape", [(5,), (3, 17), (2, 7, 384)])
def test_rms_norm(isa, rng, shape):
    x, w = rand(rng, *shape), rand(rng, shape[-1])
    x64 = x.astype(np.float64)
    ref = x64 / np.sqrt(np.mean(x64**2, axis=-1, keepdims=True) + 1e-6) * w
    assert nerr(native.rms_norm(x, w, eps=1e-6), ref) < 2e-6


def _sdpa_ref(q, k, v, mask=None, causal=False, scale=None):
    hq, hkv = q.shape[1], k.shape[1]
    k64, v64 = t64(k).repeat_interleave(hq // hkv, 1), t64(v).repeat_interleave(hq // hkv, 1)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = t64(q) @ k64.transpose(-1, -2) * scale
    if mask is not None:
        s = s + (t64(np.where(mask, 0.0, -np.inf)) if mask.dtype == bool else t64(mask))
    if causal:
        lq, lk = s.shape[-2:]
        allowed = torch.arange(lk)[None, :] <= torch.arange(lq)[:, None] + (lk - lq)
        s = s.masked_fill(~allowed, -math.inf)
    p = torch.nan_to_num(torch.softmax(s, -1), nan=0.0)
    return (p @ v64).numpy()


@pytest.mark.parametrize(
    "b,hq,hkv,sq,sk,d,dv",
    [
        (1, 2, 2, 5, 5, 8, 8),
        (2, 4, 2, 7, 11, 16, 12),
        (1, 6, 1, 3, 9, 13, 5),
        (1, 12, 12, 128, 128, 32, 32),
        (1, 2, 2, 70, 70, 8, 8),
        (2, 1, 1, 1, 1, 1, 1),
    ],
)
@pytest.mark.parametrize("causal", [False, True])
def test_attention(isa, rng, b, hq, hkv, sq, sk, d, dv, causal):
    q, k, v = rand(rng, b, hq, sq, d), rand(rng, b, hkv, sk, d), rand(rng, b, hkv, sk, dv)
    out = native.attention(q, k, v, causal=causal)
    assert nerr(out, _sdpa_ref(q, k, v, causal=causal)) < 5e-6


def test_attention_masks_and_scale(isa, rng):
    q, k, v = rand(rng, 2, 4, 6, 8), rand(rng, 2, 2, 9, 8), rand(rng, 2, 2, 9, 8)
    pad = np.ones((2, 1, 1, 9), bool)
    pad[1, ..., 6:] = False
    out = native.attention(q, k, v, mask=pad, scale=0.3)
    assert nerr(out, _sdpa_ref(q, k, v, mask=pad, scale=0.3)) < 5e-6
    fmask = rand(rng, 6, 9)
    out = native.attention(q, k, v, mask=fmask, causal=True)
    assert nerr(out, _sdpa_ref(q, k, v, mask=fmask, causal=True)) < 5e-6
    col = rand(rng, 2, 4, 6, 1)  # last dim broadcast: materialised deliberately
    assert nerr(native.attention(q, k, v, mask=col), _sdpa_ref(q, k, v, mask=col)) < 5e-6


def test_attention_matches_torch_sdpa(rng):
    q, k, v = rand(rng, 1, 12, 128, 32), rand(rng, 1, 12, 128, 32), rand(rng, 1, 12, 128, 32)
    ref = F.scaled_dot_product_attention(t64(q), t64(k), t64(v), is_causal=True).numpy()
    assert nerr(native.attention(q, k, v, causal=True), ref) < 5e-6


@pytest.mark.parametrize("kind", ["relu", "gelu", "gelu_tanh", "silu", "tanh", "none"])
def test_activations(isa, rng, kind):
    x = np.concatenate(
        [rand(rng, 1001, scale=4.0), np.array([0, -0.0, 1e-8, -30, 30, 85, -85], np.float32)]
    )
    x64 = t64(x)
    ref = {
        "relu": F.relu(x64),
        "gelu": F.gelu(x64),
        "gelu_tanh": F.gelu(x64, approximate="tanh"),
        "silu": F.silu(x64),
        "tanh": torch.tanh(x64),
        "none": x64,
    }[kind].numpy()
    out = native.activation(x, kind)
    # fp32-level: absolute error relative to the input's magnitude (deep tails are ~0)
    assert np.all(np.abs(out - ref) <= 1e-6 * (1 + np.abs(x)))
    assert np.array_equal(native.gelu(x), native.activation(x, "gelu"))


def test_activation_large_parallel(rng):
    x = rand(rng, 3, 128, 1536)
    assert (
        nerr(native.gelu(x, approximate="tanh"), F.gelu(t64(x), approximate="tanh").numpy()) < 2e-6
    )


@pytest.mark.parametrize("row", [False, True])
def test_add(isa, rng, row):
    a = rand(rng, 3, 130)
    b = rand(rng, 130) if row else rand(rng, 3, 130)
    want = a + b
    assert np.array_equal(native.add(a, b), want)
    out = np.full_like(want, np.nan)
    assert native.add(a, b, out=out) is out and np.array_equal(out, want)
    assert native.add(a, b, out=a) is a and np.array_equal(a, want)  # in place
    assert native.add(np.zeros((0, 4), np.float32), np.zeros(4, np.float32)).shape == (0, 4)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_embedding(rng, dtype):
    table = rand(rng, 50, 24)
    ids = rng.integers(0, 50, size=(3, 7)).astype(dtype)
    assert np.array_equal(native.embedding(ids, table), table[ids])
    assert native.embedding(np.zeros((2, 0), np.int64), table).shape == (2, 0, 24)

"""Hypothesis property tests: arbitrary shapes (including empty and 1-sized dims) on every
runnable ISA path.  The default run is small for CI; `-m slow` runs a long sweep."""

from __future__ import annotations

import math

import numpy as np
import pytest
from native_helpers import ISAS, native, nerr, ref_linear_int8
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dims = st.integers(0, 70)
isas = st.sampled_from(ISAS)
seeds = st.integers(0, 2**32 - 1)


def arr(seed, *shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def check_matmul(isa, m, k, n, batch, seed):
    a, b = arr(seed, *batch, m, k), arr(seed + 1, *batch, k, n)
    with native.using_isa(isa):
        c = native.matmul(a, b)
    assert c.shape == (*batch, m, n)
    if c.size:
        ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
        scale = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64)).max() or 1.0
        assert nerr(c, ref, scale) < 2e-6 * max(1.0, math.sqrt(k))


def check_row_ops(isa, shape, seed):
    x = arr(seed, *shape, scale=3.0)
    with native.using_isa(isa):
        sm, ln, l2 = native.softmax(x), native.layer_norm(x), native.l2_normalize(x)
        vals, idx = native.topk(x, min(3, shape[-1]))
    x64 = x.astype(np.float64)
    if x.size:
        e = np.exp(x64 - x64.max(-1, keepdims=True))
        assert nerr(sm, e / e.sum(-1, keepdims=True), 1.0) < 2e-6
        mu, var = x64.mean(-1, keepdims=True), x64.var(-1, keepdims=True)
        # fp32 rounding of x - mean is amplified by 1/std: bound the error by that conditioning
        cond = np.abs(x64).max(-1, keepdims=True) / np.sqrt(var + 1e-5)
        assert np.all(np.abs(ln - (x64 - mu) / np.sqrt(var + 1e-5)) <= 1e-6 * (1 + 4 * cond))
        norm = np.maximum(np.sqrt((x64**2).sum(-1, keepdims=True)), 1e-12)
        assert nerr(l2, x64 / norm, 1.0) < 2e-6
    ref_idx = np.argsort(-x, axis=-1, kind="stable")[..., : idx.shape[-1]]
    assert np.array_equal(idx, ref_idx)


@FAST
@given(isa=isas, m=dims, k=dims, n=dims, seed=seeds)
def test_matmul_any_shape(isa, m, k, n, seed):
    check_matmul(isa, m, k, n, (), seed)


@FAST
@given(
    isa=isas,
    batch=st.lists(st.integers(0, 3), max_size=2),
    m=st.integers(0, 9),
    k=st.integers(0, 9),
    n=st.integers(0, 9),
    seed=seeds,
)
def test_batched_matmul_any_shape(isa, batch, m, k, n, seed):
    check_matmul(isa, m, k, n, tuple(batch), seed)


@FAST
@given(isa=isas, shape=st.lists(st.integers(1, 40), min_size=1, max_size=3), seed=seeds)
def test_row_ops_any_shape(isa, shape, seed):
    check_row_ops(isa, tuple(shape), seed)


@FAST
@given(
    isa=isas,
    b=st.integers(1, 2),
    hkv=st.integers(1, 3),
    group=st.integers(1, 3),
    sq=st.integers(1, 20),
    sk=st.integers(1, 20),
    d=st.integers(1, 20),
    causal=st.booleans(),
    seed=seeds,
)
def test_attention_any_shape(isa, b, hkv, group, sq, sk, d, causal, seed):
    hq = hkv * group
    q, k, v = arr(seed, b, hq, sq, d), arr(seed + 1, b, hkv, sk, d), arr(seed + 2, b, hkv, sk, d)
    with native.using_isa(isa):
        out = native.attention(q, k, v, causal=causal)
    kr = np.repeat(k, group, 1).astype(np.float64)
    vr = np.repeat(v, group, 1).astype(np.float64)
    s = q.astype(np.float64) @ kr.swapaxes(-1, -2) / math.sqrt(d)
    if causal:
        allowed = np.arange(sk)[None, :] <= np.arange(sq)[:, None] + (sk - sq)
        s = np.where(allowed, s, -np.inf)
    with np.errstate(invalid="ignore"):
        p = np.exp(s - s.max(-1, keepdims=True))
        p = np.nan_to_num(p / p.sum(-1, keepdims=True))
    assert nerr(out, p @ vr) < 1e-5


@FAST
@given(isa=isas, m=st.integers(0, 20), k=st.integers(1, 100), n=st.integers(1, 40), seed=seeds)
def test_quantized_linears_any_shape(isa, m, k, n, seed):
    x, w = arr(seed, m, k), arr(seed + 1, n, k)
    q8, s8 = native.quantize_int8(w)
    q4, s4 = native.quantize_q4_0(w)
    qb, sb = native.quantize_q8_0(w)
    with native.using_isa(isa):
        o8, o4 = native.matmul_int8(x, q8, s8), native.matmul_q4_0(x, q4, s4)
        ob = native.matmul_q8_0(x, qb, sb)
    for out, deq in ((o8, native.dequantize_int8(q8, s8)), (o4, native.dequantize_q4_0(q4, s4, k)),
                     (ob, native.dequantize_q8_0(qb, sb, k))):  # fmt: skip
        ref = x.astype(np.float64) @ deq.astype(np.float64).T
        scale = (
            (np.abs(x).astype(np.float64) @ np.abs(deq).astype(np.float64).T).max()
            if out.size
            else 1
        )
        assert nerr(out, ref, scale or 1.0) < 2e-6 * math.sqrt(k)


@FAST
@given(
    isa=isas,
    m=st.integers(0, 20),
    k=st.integers(1, 200).filter(lambda k: k % 32 != 0),
    n=st.integers(1, 40),
    batch=st.lists(st.integers(1, 3), max_size=2),
    seed=seeds,
)
def test_linear_int8_dynamic_any_shape(isa, m, k, n, batch, seed):
    """K off the 32-byte vector step: the tails go through the same exact integer sums."""
    x = arr(seed, *batch, m, k, scale=2.0)
    rng = np.random.default_rng(seed)
    q = rng.integers(-128, 128, (n, k), dtype=np.int8)
    scales, bias = rng.random(n).astype(np.float32), arr(seed + 2, n)
    with native.using_isa(isa):
        out = native.linear_int8_dynamic(x, q, scales, bias)
        xq, xs = native.quantize_per_token_int8(x)
    with native.using_isa("scalar"):
        rq, rs = native.quantize_per_token_int8(x)
        ref_out = native.linear_int8_dynamic(x, q, scales, bias)
    np.testing.assert_array_equal(xq, rq)
    np.testing.assert_array_equal(xs, rs)
    np.testing.assert_array_equal(out, ref_out)
    assert nerr(out, ref_linear_int8(x, q, scales, bias)) <= 1e-6


@pytest.mark.slow
@SLOW
@given(isa=isas, m=st.integers(0, 300), k=st.integers(0, 300), n=st.integers(0, 300), seed=seeds)
def test_matmul_any_shape_long(isa, m, k, n, seed):
    check_matmul(isa, m, k, n, (), seed)


@pytest.mark.slow
@SLOW
@given(isa=isas, shape=st.lists(st.integers(1, 300), min_size=1, max_size=3), seed=seeds)
def test_row_ops_any_shape_long(isa, shape, seed):
    check_row_ops(isa, tuple(shape), seed)

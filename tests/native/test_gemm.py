"""SGEMM, batched matmul, linear with fused epilogue, int8, Q4_0 and Q8_0 weight-only GEMMs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from native_helpers import gemm_err, native, nerr, rand

# odd, prime, 1-sized, empty and tile-straddling sizes (MR=6, NR=8/16/32 on the vector paths)
SHAPES = [
    (1, 1, 1),
    (0, 5, 3),
    (4, 0, 3),
    (3, 5, 0),
    (7, 13, 17),
    (6, 16, 16),
    (13, 97, 31),
    (29, 37, 61),
    (64, 64, 64),
    (101, 127, 89),
    (128, 384, 96),
    (257, 33, 19),
]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_matmul_matches_float64(isa, rng, m, k, n):
    a, b = rand(rng, m, k), rand(rng, k, n)
    c = native.matmul(a, b)
    assert c.shape == (m, n) and c.dtype == np.float32
    assert gemm_err(c, a, b) < 1e-6 * max(1, math.sqrt(k))


def test_matmul_large_threaded(rng):
    a, b = rand(rng, 301, 517), rand(rng, 517, 263)
    for threads in (1, 2, 3):
        native.set_num_threads(threads)
        try:
            assert gemm_err(native.matmul(a, b), a, b) < 2e-6 * math.sqrt(517)
        finally:
            native.set_num_threads(2)


def test_matmul_many_cache_blocks(isa, rng):
    """Small MC/KC/NC force every loop of the blocked algorithm to iterate and hit edges."""
    before = native.get_gemm_blocking()
    mr, nr = before["mr"], before["nr"]
    native.set_gemm_blocking(2 * mr, 7, 3 * nr)
    try:
        a, b = rand(rng, 5 * mr + 1, 50), rand(rng, 50, 7 * nr + 3)
        assert gemm_err(native.matmul(a, b), a, b) < 1e-5
        w, x, bias = rand(rng, 7 * nr + 3, 50), rand(rng, 5 * mr + 1, 50), rand(rng, 7 * nr + 3)
        out = native.linear(x, w, bias, activation="relu")
        ref = np.maximum(x.astype(np.float64) @ w.T.astype(np.float64) + bias, 0)
        assert nerr(out, ref) < 1e-5
    finally:
        native.set_gemm_blocking(before["mc"], before["kc"], before["nc"])


@pytest.mark.parametrize(
    "a_batch,b_batch",
    [
        ((3,), (3,)),
        ((2, 3), (3,)),
        ((1,), (4,)),
        ((), (2,)),
        ((5,), ()),
        ((2, 1), (1, 3)),
        ((0,), (0,)),
    ],
)
def test_batched_matmul_broadcasts(isa, rng, a_batch, b_batch):
    a, b = rand(rng, *a_batch, 9, 11), rand(rng, *b_batch, 11, 7)
    c = native.matmul(a, b)
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert c.shape == ref.shape
    assert nerr(c, ref, 11.0) < 1e-6


@pytest.mark.parametrize("m,k,n", [(1, 7, 5), (13, 29, 31), (64, 100, 70), (3, 0, 4)])
def test_matmul_reads_transposed_views_in_place(isa, rng, m, k, n):
    a_t, b_t = rand(rng, k, m), rand(rng, n, k)  # stored transposed
    ref = a_t.T.astype(np.float64) @ b_t.T.astype(np.float64)
    for a, b in (
        (a_t.T, b_t.T),
        (np.ascontiguousarray(a_t.T), b_t.T),
        (a_t.T, np.ascontiguousarray(b_t.T)),
    ):
        assert nerr(native.matmul(a, b), ref, max(k, 1)) < 1e-6
    q, kk = rand(rng, 2, 3, 9, 8), rand(rng, 2, 3, 11, 8)  # attention-style q @ k^T
    ref = q.astype(np.float64) @ kk.astype(np.float64).swapaxes(-1, -2)
    assert nerr(native.matmul(q, kk.swapaxes(-1, -2)), ref, 8.0) < 1e-6


def test_matmul_out_parameter(rng):
    a, b = rand(rng, 8, 9), rand(rng, 9, 10)
    out = np.full((8, 10), np.nan, np.float32)
    assert native.matmul(a, b, out=out) is out
    assert gemm_err(out, a, b) < 1e-6


def _act_ref(y, activation):
    if activation == "relu":
        return np.maximum(y, 0)
    if activation in ("gelu", "gelu_erf"):
        return 0.5 * y * (1 + np.vectorize(math.erf)(y / math.sqrt(2)))
    if activation == "gelu_tanh":
        return 0.5 * y * (1 + np.tanh(math.sqrt(2 / math.pi) * (y + 0.044715 * y**3)))
    if activation == "silu":
        return y / (1 + np.exp(-y))
    if activation == "tanh":
        return np.tanh(y)
    return y


@pytest.mark.parametrize("activation", ["none", "relu", "gelu", "gelu_tanh", "silu", "tanh"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_fused_epilogue(isa, rng, activation, with_bias):
    x, w = rand(rng, 2, 19, 45), rand(rng, 37, 45, scale=0.3)
    bias = rand(rng, 37) if with_bias else None
    out = native.linear(x, w, bias, activation=activation)
    y = x.astype(np.float64) @ w.T.astype(np.float64) + (0 if bias is None else bias)
    assert out.shape == (2, 19, 37)
    assert nerr(out, _act_ref(y, activation)) < 2e-6


def test_linear_k_zero_gives_bias(isa):
    x, w, bias = (
        np.zeros((3, 0), np.float32),
        np.zeros((4, 0), np.float32),
        np.arange(4, dtype=np.float32),
    )
    out = native.linear(x, w, bias, activation="relu")
    assert np.array_equal(out, np.tile(bias, (3, 1)))


def test_quantize_int8_roundtrip(rng):
    w = rand(rng, 33, 70)
    q, scales = native.quantize_int8(w)
    assert q.dtype == np.int8 and scales.shape == (33,)
    deq = native.dequantize_int8(q, scales)
    # rounding error is at most half a step per value
    assert np.all(np.abs(deq - w) <= scales[:, None] * 0.5 + 1e-7)


@pytest.mark.parametrize("activation", ["none", "gelu"])
def test_matmul_int8_matches_dequantized(isa, rng, activation):
    x, w, bias = rand(rng, 23, 70), rand(rng, 41, 70), rand(rng, 41)
    q, scales = native.quantize_int8(w)
    out = native.matmul_int8(x, q, scales, bias, activation=activation)
    deq = native.dequantize_int8(q, scales).astype(np.float64)
    ref = _act_ref(x.astype(np.float64) @ deq.T + bias, activation)
    assert nerr(out, ref) < 2e-6
    # and close to the unquantized layer (int8 ~ 1% of the output scale)
    assert (
        nerr(out, _act_ref(x.astype(np.float64) @ w.T.astype(np.float64) + bias, activation)) < 0.03
    )


@pytest.mark.parametrize("k", [32, 64, 45, 1, 100])
def test_q4_0_quantize_and_matmul(isa, rng, k):
    x, w = rand(rng, 9, k), rand(rng, 20, k)
    q, scales = native.quantize_q4_0(w)
    blocks = -(-k // 32)
    assert q.shape == (20, blocks, 16) and scales.shape == (20, blocks)
    deq = native.dequantize_q4_0(q, scales, k)
    # levels are (q - 8) * d for q in 0..15, i.e. [-8d, 7d]: values inside round to half a
    # step, values past 7|d| on the short side clamp (error < one step); the extreme is exact
    step = np.repeat(np.abs(scales), 32, axis=1)[:, :k]
    inside = np.abs(w) <= 7 * step
    err = np.abs(deq - w)
    assert np.all(err[inside] <= step[inside] * 0.5 + 1e-6)
    assert np.all(err <= step + 1e-6)
    extreme = np.argmax(np.abs(w[:, : min(k, 32)]), axis=1)
    assert np.allclose(deq[np.arange(20), extreme], w[np.arange(20), extreme], rtol=1e-6)
    out = native.matmul_q4_0(x, q, scales)
    ref = x.astype(np.float64) @ deq.T.astype(np.float64)
    assert nerr(out, ref) < 2e-6


def test_q4_0_zero_block():
    w = np.zeros((2, 32), np.float32)
    q, scales = native.quantize_q4_0(w)
    assert np.all(scales == 0) and np.all(native.dequantize_q4_0(q, scales, 32) == 0)


# M < MR (6 on every ISA) takes the few-rows path, which reads the 4-bit blocks in place (in
# pairs of rows, an odd row alone); M >= MR the packed GEMM.  K off a multiple of 32 leaves a
# short last block whose padding nibbles must add nothing.
@pytest.mark.parametrize("m,k,n", [(1, 1, 3), (1, 45, 20), (1, 300, 17), (2, 31, 9), (3, 32, 9),
                                   (4, 100, 33), (5, 64, 8), (5, 257, 40), (9, 100, 20)])  # fmt: skip
def test_q4_0_few_rows_match_scalar_and_numpy(isa, rng, m, k, n):
    x, w, bias = rand(rng, m, k), rand(rng, n, k), rand(rng, n)
    q, scales = native.quantize_q4_0(w)
    deq = native.dequantize_q4_0(q, scales, k)
    out = native.matmul_q4_0(x, q, scales, bias, activation="silu")
    pre = x.astype(np.float64) @ deq.T.astype(np.float64) + bias
    assert nerr(out, pre / (1 + np.exp(-pre))) < 2e-6
    with native.using_isa("scalar"):
        ref = native.matmul_q4_0(x, q, scales, bias, activation="silu")
    assert nerr(out, ref.astype(np.float64)) < 2e-6


def test_q4_0_padding_is_never_read():
    w = np.zeros((3, 40), np.float32)
    q, scales = native.quantize_q4_0(w)
    # garbage nibbles in the padding past in_features (values 40..63 are bytes 4..15 of the
    # last block) must not reach the product, on the few-rows path (M < 6) or the packed one
    q[:, -1, 4:] = 0xF0
    scales[:] = 1.0
    for m in (1, 2, 3, 7):
        assert np.all(native.matmul_q4_0(np.ones((m, 40), np.float32), q, scales) == 0)


# M=1 and M < MR take the streamed few-rows path (weight rows decoded a chunk at a time), the
# rest the packed GEMM; K off a multiple of 32 leaves a short, zero-padded last block, and
# K = 300 > 256 crosses a GEMV chunk.
@pytest.mark.parametrize("m,k,n", [(1, 1, 3), (1, 45, 20), (1, 300, 17), (3, 32, 9), (5, 64, 33),
                                   (9, 100, 20), (13, 31, 7), (29, 300, 41)])  # fmt: skip
def test_q8_0_quantize_and_matmul(isa, rng, m, k, n):
    x, w, bias = rand(rng, m, k), rand(rng, n, k), rand(rng, n)
    q, scales = native.quantize_q8_0(w)
    blocks = -(-k // 32)
    assert q.dtype == np.int8 and q.shape == (n, blocks, 32) and scales.shape == (n, blocks)
    assert np.all(q[:, -1, k - 32 * (blocks - 1) :] == 0)  # the short last block's padding
    deq = native.dequantize_q8_0(q, scales, k)
    # symmetric levels q * d with d = max|block| / 127: half a step at most, the extreme exact
    step = np.repeat(scales, 32, axis=1)[:, :k]
    assert np.all(np.abs(deq - w) <= step * 0.5 + 1e-6)
    extreme = np.argmax(np.abs(w[:, : min(k, 32)]), axis=1)
    assert np.allclose(deq[np.arange(n), extreme], w[np.arange(n), extreme], rtol=1e-6)
    out = native.matmul_q8_0(x, q, scales, bias, activation="silu")
    pre = x.astype(np.float64) @ deq.T.astype(np.float64) + bias
    assert nerr(out, pre / (1 + np.exp(-pre))) < 2e-6
    # the same product on the scalar reference path
    with native.using_isa("scalar"):
        ref = native.matmul_q8_0(x, q, scales, bias, activation="silu")
    assert nerr(out, ref.astype(np.float64)) < 2e-6
    # and close to the unquantized layer: 8-bit blocks keep ~0.5% of the output scale (up to
    # ~1% on a 20-output row; int8's bound)
    full = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    assert nerr(out, full / (1 + np.exp(-full))) < 0.03


def test_q8_0_zero_block_and_padding_is_never_read():
    w = np.zeros((2, 40), np.float32)
    q, scales = native.quantize_q8_0(w)
    assert np.all(scales == 0) and np.all(native.dequantize_q8_0(q, scales, 40) == 0)
    # garbage in the padding past in_features must not reach the product
    q[:, -1, 8:] = 127
    scales[:] = 1.0
    x = np.ones((1, 40), np.float32)
    assert np.all(native.matmul_q8_0(x, q, scales) == 0)
    assert np.all(native.matmul_q8_0(np.ones((7, 40), np.float32), q, scales) == 0)

"""linear_int8_dynamic: int8 x int8 with activations quantized per token at run time.

The numpy reference below *defines* the semantics (native/src/k_int8.h): every ISA path must
produce the same quantized activations byte for byte and the same exact integer sums, so the
outputs match the float32 reference to the rounding of the final scaling."""

from __future__ import annotations

import numpy as np
import pytest
from native_helpers import ISAS, native, nerr, rand, ref_linear_int8, ref_quantize_per_token

f32 = np.float32
ACTIVATIONS = ["none", "relu", "gelu", "gelu_tanh", "silu", "tanh"]


def weight(rng, n, k):
    q, scales = native.quantize_int8(rand(rng, n, k))
    return q, scales


@pytest.mark.parametrize("k", [1, 31, 33, 384, 1536])
def test_quantize_per_token_is_the_reference_byte_for_byte(isa, rng, k):
    x = rand(rng, 2, 9, k, scale=3.0)
    x[0, 0] = 0.0  # a zero row
    xq, xs = native.quantize_per_token_int8(x)
    rq, rs = ref_quantize_per_token(x)
    assert xq.dtype == np.int8 and xq.shape == x.shape and xs.shape == x.shape[:-1]
    np.testing.assert_array_equal(xq, rq)
    np.testing.assert_array_equal(xs, rs)


def test_quantize_rounds_half_to_even(isa):
    # max 127 -> xs = 1: x / xs is x itself, so the halves are exact ties
    x = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5] + [0.0] * 40], f32)
    xq, xs = native.quantize_per_token_int8(x)
    assert xs[0] == 1.0
    assert xq[0, :8].tolist() == [127, 0, 2, 2, 0, -2, -2, 126]


SHAPES = [(1, 1), (3, 7), (16, 384), (128, 7), (128, 384)]  # (M, N)


@pytest.mark.parametrize("k", [1, 31, 33, 384, 1536])
@pytest.mark.parametrize("m,n", SHAPES)
def test_linear_int8_dynamic_matches_reference(isa, rng, m, n, k):
    x = rand(rng, m, k)
    q, scales = weight(rng, n, k)
    bias = rand(rng, n)
    out = native.linear_int8_dynamic(x, q, scales, bias)
    ref = ref_linear_int8(x, q, scales, bias)
    assert out.shape == (m, n) and out.dtype == f32
    assert nerr(out, ref) <= 1e-6


def test_paths_agree_exactly_with_scalar(rng):
    """Every vector path gives the scalar build's bytes: xq and the int32 sums are exact and
    the scaling is the same float32 expression."""
    for m, n, k in [(5, 19, 33), (16, 384, 384), (37, 40, 1536), (130, 33, 100)]:
        x = rand(rng, 2, m, k)
        q = rng.integers(-128, 128, (n, k), dtype=np.int8)
        scales = rng.random(n).astype(f32)
        bias = rand(rng, n)
        results = {}
        for path in ISAS:
            with native.using_isa(path):
                results[path] = native.linear_int8_dynamic(x, q, scales, bias)
        for path, got in results.items():
            np.testing.assert_array_equal(got, results["scalar"], err_msg=path)


def test_batch_dims_and_out(isa, rng):
    x = rand(rng, 2, 3, 5, 40)
    q, scales = weight(rng, 9, 40)
    out = np.full((2, 3, 5, 9), 7.0, f32)
    assert native.linear_int8_dynamic(x, q, scales, out=out) is out
    assert nerr(out, ref_linear_int8(x, q, scales)) <= 1e-6


def test_zero_rows_give_bias_and_bad_rows_give_nan(isa, rng):
    k, n = 70, 13
    x = rand(rng, 6, k)
    x[1] = 0.0
    x[2, 5] = np.nan
    x[3, 0] = np.inf
    x[4, -1] = -np.inf
    q, scales = weight(rng, n, k)
    bias = rand(rng, n)
    for act in ACTIVATIONS:
        out = native.linear_int8_dynamic(x, q, scales, bias, activation=act)
        np.testing.assert_array_equal(out[1], native.activation(bias, act))
        assert np.isnan(out[2:5]).all(), act
        assert np.isfinite(out[[0, 1, 5]]).all(), act
    ref = ref_linear_int8(x, q, scales, bias)
    good = [0, 1, 5]
    assert nerr(native.linear_int8_dynamic(x, q, scales, bias)[good], ref[good]) <= 1e-6


def test_extreme_values(isa, rng):
    k, n = 100, 11
    x = rand(rng, 7, k)
    x[0] *= 1e37  # near the float32 top: x / xs stays finite
    x[1] *= 1e-30
    x[2] = rng.standard_normal(k).astype(f32) * f32(1e-39)  # subnormal inputs
    x[3] = 0.0
    x[3, 7] = 1e-45  # max/127 underflows to 0: the row counts as zero
    x[4] = np.float32(np.finfo(f32).max)
    x[4, ::2] *= -1
    x[5, :] = 1.0
    x[5, 3] = -1.0
    q = rng.integers(-128, 128, (n, k), dtype=np.int8)
    q[0] = -128  # the full int8 range, -128 included, is exact
    q[1] = 127
    scales = (rng.random(n) + 0.5).astype(f32)
    xq, xs = native.quantize_per_token_int8(x)
    rq, rs = ref_quantize_per_token(x)
    np.testing.assert_array_equal(xq, rq)
    np.testing.assert_array_equal(xs, rs)
    assert xs[3] == 0 and not xq[3].any()
    with np.errstate(over="ignore"):
        ref = ref_linear_int8(x, q, scales)
    out = native.linear_int8_dynamic(x, q, scales)
    np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))  # row 4 overflows in both
    fin = np.isfinite(ref)
    np.testing.assert_allclose(out[fin], ref[fin], rtol=1e-6, atol=0)
    # integer sums at their largest: K = 1536, every product 127 * -128
    big = np.full((2, 1536), 5.0, f32)
    qq = np.full((3, 1536), -128, np.int8)
    res = native.linear_int8_dynamic(big, qq, np.ones(3, f32))
    acc = 1536 * 127 * -128
    np.testing.assert_array_equal(res, np.full((2, 3), f32(acc) * (f32(5.0) / f32(127)), f32))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fused_activation(isa, rng, activation):
    x = rand(rng, 20, 96)
    q, scales = weight(rng, 40, 96)
    bias = rand(rng, 40)
    out = native.linear_int8_dynamic(x, q, scales, bias, activation=activation)
    ref = native.activation(ref_linear_int8(x, q, scales, bias), activation)
    assert nerr(out, ref) <= 1e-6


def test_close_to_the_float_layer(isa, rng):
    """Quantization error, not a bug: within ~2% of the unquantized product's scale."""
    x, w = rand(rng, 32, 384), rand(rng, 64, 384, scale=0.05)
    q, scales = native.quantize_int8(w)
    out = native.linear_int8_dynamic(x, q, scales)
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    assert nerr(out, ref) < 2e-2


def test_threads_do_not_change_results(rng):
    x, (q, scales) = rand(rng, 300, 200), weight(rng, 70, 200)
    before = native.get_num_threads()
    try:
        native.set_num_threads(1)
        one = native.linear_int8_dynamic(x, q, scales)
        native.set_num_threads(2)
        two = native.linear_int8_dynamic(x, q, scales)
    finally:
        native.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (16, 384, 33), (7, 17, 384), (130, 40, 99)])
def test_packed_weight_gives_the_same_bytes(isa, rng, m, n, k):
    x = rand(rng, m, k)
    q = rng.integers(-128, 128, (n, k), dtype=np.int8)
    scales = rng.random(n).astype(f32)
    packed = native.pack_int8_weight(q)
    assert packed.shape == (n, k) and packed.isa == isa and isa in repr(packed)
    np.testing.assert_array_equal(
        native.linear_int8_dynamic(x, packed, scales), native.linear_int8_dynamic(x, q, scales)
    )
    np.testing.assert_array_equal(
        native.linear_int8_dynamic(x, packed, scales), ref_linear_int8(x, q, scales)
    )


def test_packed_weight_belongs_to_its_isa(rng):
    q = rng.integers(-128, 128, (8, 40), dtype=np.int8)
    with native.using_isa("scalar"):
        packed = native.pack_int8_weight(q)
    others = [i for i in ISAS if i != "scalar"]
    for other in others:
        with native.using_isa(other), pytest.raises(ValueError, match="packed for scalar"):
            native.linear_int8_dynamic(rand(rng, 2, 40), packed, np.ones(8, f32))


def test_zero_sizes(isa, rng):
    q, scales = weight(rng, 6, 8)
    assert native.linear_int8_dynamic(np.zeros((0, 8), f32), q, scales).shape == (0, 6)
    out = native.linear_int8_dynamic(np.zeros((3, 0), f32), np.zeros((6, 0), np.int8), scales)
    np.testing.assert_array_equal(out, np.zeros((3, 6), f32))
    bias = rand(rng, 6)
    out = native.linear_int8_dynamic(np.zeros((3, 0), f32), np.zeros((6, 0), np.int8), scales, bias)
    np.testing.assert_array_equal(out, np.broadcast_to(bias, (3, 6)))
    xq, xs = native.quantize_per_token_int8(np.zeros((0, 5), f32))
    assert xq.shape == (0, 5) and xs.shape == (0,)


def test_c_entry_points_refuse_bad_sizes():
    """The Python checks come first; the C side still refuses impossible sizes itself."""
    from skillmill.native._lib import ffi, lib

    null = ffi.NULL
    assert (
        lib.skm_linear_int8_dynamic(null, null, null, -1, null, null, null, -1, 1, 1, 0)
        == lib.SKM_EINVAL
    )
    assert (
        lib.skm_linear_int8_dynamic(
            null, null, null, -1, null, null, null, 1, 1, lib.SKM_INT8_MAX_K + 1, 0
        )
        == lib.SKM_EINVAL
    )
    assert (
        lib.skm_linear_int8_dynamic(null, null, null, -1, null, null, null, 1, 1, 1, 99)
        == lib.SKM_EINVAL
    )
    assert lib.skm_quantize_rows_int8(null, null, null, 1, -1) == lib.SKM_EINVAL
    assert lib.skm_int8_panel_elems(0, -1, 1) == lib.SKM_EINVAL
    assert lib.skm_pack_int8_weight(0, null, 1, -1, null) == lib.SKM_EINVAL
    assert lib.skm_int8_panel_elems(99, 1, 1) == lib.SKM_EUNSUPPORTED


def test_avx512_is_chosen_only_with_the_cpu_features():
    """(The VNNI kernel further needs avx512bw + avx512_vnni; the kernel checks those.)"""
    if "avx512f" not in native.cpu_features():
        assert "avx512" not in native.supported_isas()
        assert native.info()["best_isa"] != "avx512"

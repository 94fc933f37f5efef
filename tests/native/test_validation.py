"""Bad arguments raise Python exceptions before any C call; nothing may crash the process."""

from __future__ import annotations

import numpy as np
import pytest
from native_helpers import native

f32 = np.float32


def z(*shape, dtype=f32):
    return np.zeros(shape, dtype)


X = z(4, 8)
W = z(6, 8)
Q8, S8 = np.zeros((6, 8), np.int8), np.ones(6, np.float32)

# (exception, what its message must say: the bad argument by name, and the problem, call)
BAD_CALLS = [
    # wrong dtype / type
    (TypeError, r"^a must have dtype float32, got float64", lambda: native.matmul(z(3, 4, dtype=np.float64), z(4, 5))),
    (TypeError, r"^a must be a numpy.ndarray, got list", lambda: native.matmul([[1.0]], z(1, 1))),
    (TypeError, r"^x must have dtype float32, got float16", lambda: native.softmax(z(3, dtype=np.float16))),
    (TypeError, r"^w must have dtype float32, got int32", lambda: native.linear(X, z(6, 8, dtype=np.int32))),
    (TypeError, r"^ids must be an integer array, got float32", lambda: native.embedding(z(3, dtype=f32), z(5, 4))),
    (TypeError, r"^mask must be bool .* got int64", lambda: native.softmax(X, mask=z(4, 8, dtype=np.int64))),
    (TypeError, r"^mask must be numeric or bool", lambda: native.mean_pool(z(1, 2, 3), np.array([["a", "b"]]))),
    # non-contiguous / unaligned
    (ValueError, r"^a must be C-contiguous", lambda: native.matmul(z(3, 8)[:, ::2], z(4, 5))),
    (ValueError, r"^a must be C-contiguous", lambda: native.matmul(z(2, 3, 4).transpose(1, 0, 2), z(4, 5))),
    (ValueError, r"^x must be C-contiguous", lambda: native.layer_norm(z(4, 16)[:, ::2])),
    (ValueError, r"^x is not aligned", lambda: native.gelu(np.frombuffer(b"\0" * 17, np.uint8)[1:].view(f32))),
    # mismatched shapes
    (ValueError, r"^a\.shape\[-1\] \(4\) does not match b\.shape\[-2\] \(5\)", lambda: native.matmul(z(3, 4), z(5, 6))),
    (ValueError, r"^batch dims of a .* and b .* do not broadcast", lambda: native.matmul(z(2, 3, 4), z(3, 4, 5))),
    (ValueError, r"^a must have at least 2 dims", lambda: native.matmul(z(4), z(4, 5))),
    (ValueError, r"^x\.shape\[-1\] \(8\) does not match w\.shape\[1\] \(7\)", lambda: native.linear(X, z(6, 7))),
    (ValueError, r"^bias must have shape \(6,\), got \(5,\)", lambda: native.linear(X, W, bias=z(5))),
    (ValueError, r"^weight must have shape \(8,\), got \(7,\)", lambda: native.layer_norm(X, weight=z(7))),
    (ValueError, r"^mask of shape \(3, 8\) does not broadcast", lambda: native.softmax(X, mask=z(3, 8))),
    (ValueError, r"^causal softmax needs x with at least 2 dims", lambda: native.softmax(z(5), causal=True)),
    (ValueError, r"^query heads \(4\) must be a multiple of key/value heads \(3\)",
     lambda: native.attention(z(1, 4, 3, 8), z(1, 3, 3, 8), z(1, 3, 3, 8))),
    (ValueError, r"^k head dim \(4\) does not match q head dim \(8\)",
     lambda: native.attention(z(1, 2, 3, 8), z(1, 2, 3, 4), z(1, 2, 3, 8))),
    (ValueError, r"^v \(1, 2, 4, 8\) must match k", lambda: native.attention(z(1, 2, 3, 8), z(1, 2, 3, 8), z(1, 2, 4, 8))),
    (ValueError, r"^q must be 4-D", lambda: native.attention(z(2, 3, 8), z(2, 3, 8), z(2, 3, 8))),
    (ValueError, r"^b must have a's shape", lambda: native.add(z(3, 4), z(3, 5))),
    (ValueError, r"^weight\.shape\[1\] \(2\) does not match channels per group \(3\)",
     lambda: native.conv2d(z(1, 3, 5, 5), z(4, 2, 3, 3))),
    (ValueError, r"^channels in \(4\) and out \(6\) must divide by groups \(3\)",
     lambda: native.conv2d(z(1, 4, 5, 5), z(6, 2, 3, 3), groups=3)),
    (ValueError, r"^conv2d height: kernel 3 .* does not fit input 2", lambda: native.conv2d(z(1, 3, 2, 2), z(4, 3, 3, 3))),
    (ValueError, r"^stride must be a positive int, got 0", lambda: native.conv2d(z(1, 3, 5, 5), z(4, 3, 3, 3), stride=0)),
    (ValueError, r"^padding must be a non-negative int, got -1",
     lambda: native.conv2d(z(1, 3, 5, 5), z(4, 3, 3, 3), padding=-1)),
    (ValueError, r"^max_pool2d: padding \(2, 2\) must be at most half the kernel",
     lambda: native.max_pool2d(z(1, 1, 4, 4), 2, padding=2)),
    (ValueError, r"^mask must have shape \(2, 3\), got \(2, 4\)", lambda: native.mean_pool(z(2, 3, 4), z(2, 4))),
    (ValueError, r"^k \(5\) exceeds the size of the last axis \(4\)", lambda: native.topk(z(3, 4), 5)),
    (ValueError, r"^k must be a non-negative int, got -1", lambda: native.topk(z(3, 4), -1)),
    (ValueError, r"^q must be uint8 \[out, 2, 16\] .* in_features=40",
     lambda: native.matmul_q4_0(z(2, 40), *native.quantize_q4_0(z(3, 32)))),
    # q8_0: the block count follows in_features (K = 40 needs 2 blocks), int8 only, contiguous
    (ValueError, r"^q must be int8 \[out, 2, 32\] .* in_features=40",
     lambda: native.matmul_q8_0(z(2, 40), *native.quantize_q8_0(z(3, 32)))),
    (ValueError, r"^q must be int8 \[out, 1, 32\] .* got uint8",
     lambda: native.matmul_q8_0(z(2, 32), z(3, 1, 32, dtype=np.uint8), z(3, 1))),
    (ValueError, r"^q must be C-contiguous",
     lambda: native.matmul_q8_0(z(2, 32), z(32, 1, 3, dtype=np.int8).transpose(2, 1, 0), z(3, 1))),
    (ValueError, r"^scales must have shape \(3, 1\), got \(3, 2\)",
     lambda: native.matmul_q8_0(z(2, 32), z(3, 1, 32, dtype=np.int8), z(3, 2))),
    (ValueError, r"^bias must have shape \(3,\), got \(4,\)",
     lambda: native.matmul_q8_0(z(2, 32), z(3, 1, 32, dtype=np.int8), z(3, 1), bias=z(4))),
    (TypeError, r"^x must have dtype float32, got float64",
     lambda: native.matmul_q8_0(z(2, 32, dtype=np.float64), z(3, 1, 32, dtype=np.int8), z(3, 1))),
    (ValueError, r"^w contains NaN or inf", lambda: native.quantize_q8_0(np.full((2, 2), np.nan, f32))),
    # NaN scales / weights, bad numbers
    (ValueError, r"^scales contains NaN or inf",
     lambda: native.matmul_int8(X, np.zeros((6, 8), np.int8), np.full(6, np.nan, f32))),
    (
        ValueError,
        r"^scales contains NaN or inf",
        lambda: native.matmul_q4_0(
            z(2, 32), np.zeros((3, 1, 16), np.uint8), np.full((3, 1), np.inf, f32)
        ),
    ),
    (ValueError, r"^scales contains NaN or inf",
     lambda: native.matmul_q8_0(z(2, 32), z(3, 1, 32, dtype=np.int8), np.full((3, 1), np.nan, f32))),
    (ValueError, r"^w contains NaN or inf", lambda: native.quantize_int8(np.full((2, 2), np.nan, f32))),
    # linear_int8_dynamic / pack_int8_weight / quantize_per_token_int8
    (TypeError, r"^x must have dtype float32, got float64",
     lambda: native.linear_int8_dynamic(z(4, 8, dtype=np.float64), Q8, S8)),
    (TypeError, r"^q must be a 2-D int8 array from quantize_int8, got uint8",
     lambda: native.linear_int8_dynamic(X, z(6, 8, dtype=np.uint8), S8)),
    (TypeError, r"^q must be a 2-D int8 array from quantize_int8, got int8 \(6, 8, 1\)",
     lambda: native.linear_int8_dynamic(X, z(6, 8, 1, dtype=np.int8), S8)),
    (ValueError, r"^q must be C-contiguous", lambda: native.linear_int8_dynamic(X, z(8, 6, dtype=np.int8).T, S8)),
    (ValueError, r"^x must be C-contiguous", lambda: native.linear_int8_dynamic(z(4, 16)[:, ::2], Q8, S8)),
    (ValueError, r"^x must have at least 1 dims", lambda: native.linear_int8_dynamic(np.zeros((), np.float32), Q8, S8)),
    (ValueError, r"^x\.shape\[-1\] \(8\) does not match q\.shape\[1\] \(7\)",
     lambda: native.linear_int8_dynamic(X, z(6, 7, dtype=np.int8), S8)),
    (ValueError, r"^scales\.shape\[0\] \(5\) does not match q\.shape\[0\] \(6\)",
     lambda: native.linear_int8_dynamic(X, Q8, z(5))),
    (ValueError, r"^scales must be 1-D", lambda: native.linear_int8_dynamic(X, Q8, z(6, 1))),
    (TypeError, r"^scales must have dtype float32, got float64",
     lambda: native.linear_int8_dynamic(X, Q8, z(6, dtype=np.float64))),
    (ValueError, r"^scales contains NaN or inf", lambda: native.linear_int8_dynamic(X, Q8, np.full(6, np.inf, f32))),
    (ValueError, r"^bias must have shape \(6,\), got \(5,\)", lambda: native.linear_int8_dynamic(X, Q8, S8, bias=z(5))),
    (TypeError, r"^bias must have dtype float32, got float16",
     lambda: native.linear_int8_dynamic(X, Q8, S8, bias=z(6, dtype=np.float16))),
    (ValueError, r"^activation must be one of .* got 'swish'",
     lambda: native.linear_int8_dynamic(X, Q8, S8, activation="swish")),
    (ValueError, r"^out must have shape \(4, 6\), got \(4, 5\)", lambda: native.linear_int8_dynamic(X, Q8, S8, out=z(4, 5))),
    (ValueError, r"^out overlaps an input", lambda: _aliased_int8()),
    (ValueError, r"^in_features \(131073\) exceeds 131072",
     lambda: native.linear_int8_dynamic(z(1, 131073), z(1, 131073, dtype=np.int8), z(1))),
    (TypeError, r"^q must be a 2-D int8 array", lambda: native.pack_int8_weight(z(6, 8))),
    (ValueError, r"^in_features \(131073\) exceeds 131072", lambda: native.pack_int8_weight(z(1, 131073, dtype=np.int8))),
    (TypeError, r"^x must have dtype float32, got int8", lambda: native.quantize_per_token_int8(z(3, 4, dtype=np.int8))),
    (ValueError, r"^x must be C-contiguous", lambda: native.quantize_per_token_int8(z(4, 4).T)),
    (ValueError, r"^eps must be a finite number, got nan", lambda: native.layer_norm(X, eps=float("nan"))),
    (
        ValueError,
        r"^scale must be a finite number, got inf",
        lambda: native.attention(z(1, 1, 2, 4), z(1, 1, 2, 4), z(1, 1, 2, 4), scale=float("inf")),
    ),
    (ValueError, r"^eps must be > 0, got 0\.0", lambda: native.l2_normalize(X, eps=0.0)),
    (ValueError, r"^activation must be one of .* got 'softplus'", lambda: native.linear(X, W, activation="softplus")),
    (ValueError, r"^approximate must be 'none' or 'tanh', got 'fast'", lambda: native.gelu(X, approximate="fast")),
    (IndexError, r"^ids must be in \[0, 5\), got values in \[0, 5\]", lambda: native.embedding(np.array([0, 5]), z(5, 4))),
    (IndexError, r"^ids must be in \[0, 5\), got values in \[-1, -1\]", lambda: native.embedding(np.array([-1]), z(5, 4))),
    # out: wrong shape/dtype, read-only, overlapping an input (test_rejected_out_is_left_untouched
    # checks that nothing was written to it)
    (ValueError, r"^out must have shape \(3, 5\), got \(3, 6\)", lambda: native.matmul(z(3, 4), z(4, 5), out=z(3, 6))),
    (TypeError, r"^out must have dtype float32, got float64",
     lambda: native.matmul(z(3, 4), z(4, 5), out=z(3, 5, dtype=np.float64))),
    (ValueError, r"^out is read-only", lambda: native.matmul(z(4, 4), z(4, 4), out=_readonly(4, 4))),
    (ValueError, r"^out overlaps an input", lambda: _aliased_matmul()),
    (ValueError, r"^out must have shape \(4, 8\), got \(8, 4\)", lambda: native.softmax(X, out=X.reshape(8, 4))),
    (ValueError, r"^out overlaps an input", lambda: _partial_overlap_gelu()),
]


def _readonly(*shape):
    a = z(*shape)
    a.setflags(write=False)
    return a


def _aliased_matmul():
    a = z(4, 4)
    return native.matmul(a, z(4, 4), out=a)


def _aliased_int8():
    buf = z(48)
    return native.linear_int8_dynamic(buf[:32].reshape(4, 8), Q8, S8, out=buf[8:32].reshape(4, 6))


def _partial_overlap_gelu():
    buf = z(10)
    return native.gelu(buf[:8], out=buf[2:])


@pytest.mark.parametrize("exc,message,call", BAD_CALLS, ids=[str(i) for i in range(len(BAD_CALLS))])
def test_bad_arguments_raise_naming_the_argument(exc, message, call):
    """The exact exception type (not a subclass), with a message that names the bad argument."""
    with pytest.raises(exc, match=message) as info:
        call()
    assert type(info.value) is exc


def _sentinel(*shape, dtype=f32):
    return np.full(shape, 7.0, dtype)


@pytest.mark.parametrize("case", ["shape", "dtype", "aliased", "partial_overlap", "softmax_shape", "read_only"])
def test_rejected_out_is_left_untouched(case):
    """A refused call writes nothing: not to the wrong ``out``, not to the inputs it shares."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 4)).astype(f32), rng.standard_normal((4, 4)).astype(f32)
    a_before, b_before = a.copy(), b.copy()
    out = None
    if case == "shape":
        out = _sentinel(4, 5)
        with pytest.raises(ValueError, match="^out must have shape"):
            native.matmul(a, b, out=out)
    elif case == "dtype":
        out = _sentinel(4, 4, dtype=np.float64)
        with pytest.raises(TypeError, match="^out must have dtype"):
            native.matmul(a, b, out=out)
    elif case == "aliased":  # out is the input a: a must come back as it was
        with pytest.raises(ValueError, match="^out overlaps an input"):
            native.matmul(a, b, out=a)
    elif case == "partial_overlap":
        buf = rng.standard_normal(10).astype(f32)
        before = buf.copy()
        with pytest.raises(ValueError, match="^out overlaps an input"):
            native.gelu(buf[:8], out=buf[2:])
        np.testing.assert_array_equal(buf, before)
    elif case == "softmax_shape":
        out = _sentinel(2, 8)
        with pytest.raises(ValueError, match="^out must have shape"):
            native.softmax(a.reshape(8, 2), out=out)
    else:
        out = _sentinel(4, 4)
        out.setflags(write=False)
        with pytest.raises(ValueError, match="^out is read-only"):
            native.matmul(a, b, out=out)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)
    if out is not None:
        assert np.all(out == 7.0), "a refused call wrote to out"


def test_error_messages_name_the_problem():
    with pytest.raises(TypeError, match="float32"):
        native.softmax(z(3, dtype=np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        native.softmax(z(4, 4).T)
    with pytest.raises(ValueError, match="NaN"):
        native.matmul_int8(X, np.zeros((6, 8), np.int8), np.full(6, np.nan, f32))
    with pytest.raises(ValueError, match="overlaps"):
        _aliased_matmul()


def test_in_place_elementwise_is_allowed():
    x = np.linspace(-3, 3, 50, dtype=f32)
    ref = native.gelu(x)
    assert native.gelu(x, out=x) is x and np.array_equal(x, ref)


I64, I8, U8 = np.int64, np.int8, np.uint8
ZERO_SIZE_CALLS = [
    # (call, [(shape, dtype) of each result])
    (lambda: native.matmul(z(0, 4), z(4, 5)), [((0, 5), f32)]),
    (lambda: native.matmul(z(3, 0), z(0, 5)), [((3, 5), f32)]),
    (lambda: native.linear(z(0, 8), W), [((0, 6), f32)]),
    (lambda: native.softmax(z(0, 8)), [((0, 8), f32)]),
    (lambda: native.softmax(z(3, 0)), [((3, 0), f32)]),
    (lambda: native.layer_norm(z(2, 0)), [((2, 0), f32)]),
    (lambda: native.rms_norm(z(0)), [((0,), f32)]),
    (lambda: native.attention(z(1, 2, 0, 4), z(1, 2, 3, 4), z(1, 2, 3, 4)), [((1, 2, 0, 4), f32)]),
    (lambda: native.attention(z(1, 2, 3, 4), z(1, 2, 0, 4), z(1, 2, 0, 4)), [((1, 2, 3, 4), f32)]),
    (lambda: native.gelu(z(0)), [((0,), f32)]),
    (lambda: native.add(z(0, 3), z(0, 3)), [((0, 3), f32)]),
    (lambda: native.embedding(np.zeros(0, np.int64), z(0, 4)), [((0, 4), f32)]),
    (lambda: native.mean_pool(z(2, 0, 4), z(2, 0)), [((2, 4), f32)]),
    (lambda: native.l2_normalize(z(0, 4)), [((0, 4), f32)]),
    (lambda: native.topk(z(0, 4), 2), [((0, 2), f32), ((0, 2), I64)]),
    (lambda: native.quantize_int8(z(0, 4)), [((0, 4), I8), ((0,), f32)]),
    (lambda: native.linear_int8_dynamic(z(0, 8), Q8, S8), [((0, 6), f32)]),
    (lambda: native.linear_int8_dynamic(z(2, 0), z(6, 0, dtype=I8), S8), [((2, 6), f32)]),
    (lambda: native.quantize_per_token_int8(z(3, 0)), [((3, 0), I8), ((3,), f32)]),
    (lambda: native.quantize_q4_0(z(3, 0)), [((3, 0, 16), U8), ((3, 0), f32)]),
    (lambda: native.quantize_q8_0(z(3, 0)), [((3, 0, 32), I8), ((3, 0), f32)]),
    (lambda: native.matmul_q8_0(z(0, 40), *native.quantize_q8_0(z(3, 40))), [((0, 3), f32)]),
    (lambda: native.matmul_q8_0(z(2, 0), *native.quantize_q8_0(z(3, 0))), [((2, 3), f32)]),
    (lambda: native.conv2d(z(0, 3, 5, 5), z(4, 3, 3, 3)), [((0, 4, 3, 3), f32)]),
    (lambda: native.max_pool2d(z(0, 3, 4, 4), 2), [((0, 3, 2, 2), f32)]),
]


@pytest.mark.parametrize("call,expected", ZERO_SIZE_CALLS, ids=[str(i) for i in range(len(ZERO_SIZE_CALLS))])
def test_zero_size_inputs_return_results(call, expected):
    """Each result has the shape and dtype the same call on non-empty data would give, and
    where the result itself is not empty (a reduction over nothing) it is all zeros."""
    result = call()
    arrays = result if isinstance(result, tuple) else (result,)
    assert len(arrays) == len(expected)
    for got, (shape, dtype) in zip(arrays, expected):
        assert isinstance(got, np.ndarray)
        assert got.shape == shape and got.dtype == dtype, (got.shape, got.dtype, shape, dtype)
        assert not got.any(), "a result over nothing must be zeros, not uninitialised memory"


def test_zero_size_reductions_are_well_defined():
    assert np.array_equal(native.matmul(z(3, 0), z(0, 2)), z(3, 2))
    assert np.array_equal(
        native.attention(z(1, 1, 2, 4), z(1, 1, 0, 4), z(1, 1, 0, 3)), z(1, 1, 2, 3)
    )
    assert np.array_equal(native.mean_pool(z(2, 0, 4)), z(2, 4))

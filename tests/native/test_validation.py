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

BAD_CALLS = [
    # wrong dtype / type
    (TypeError, lambda: native.matmul(z(3, 4, dtype=np.float64), z(4, 5))),
    (TypeError, lambda: native.matmul([[1.0]], z(1, 1))),
    (TypeError, lambda: native.softmax(z(3, dtype=np.float16))),
    (TypeError, lambda: native.linear(X, z(6, 8, dtype=np.int32))),
    (TypeError, lambda: native.embedding(z(3, dtype=f32), z(5, 4))),
    (TypeError, lambda: native.softmax(X, mask=z(4, 8, dtype=np.int64))),
    (TypeError, lambda: native.mean_pool(z(1, 2, 3), np.array([["a", "b"]]))),
    # non-contiguous / unaligned
    (ValueError, lambda: native.matmul(z(3, 8)[:, ::2], z(4, 5))),
    (ValueError, lambda: native.matmul(z(2, 3, 4).transpose(1, 0, 2), z(4, 5))),
    (ValueError, lambda: native.layer_norm(z(4, 16)[:, ::2])),
    (ValueError, lambda: native.gelu(np.frombuffer(b"\0" * 17, np.uint8)[1:].view(f32))),
    # mismatched shapes
    (ValueError, lambda: native.matmul(z(3, 4), z(5, 6))),
    (ValueError, lambda: native.matmul(z(2, 3, 4), z(3, 4, 5))),
    (ValueError, lambda: native.matmul(z(4), z(4, 5))),
    (ValueError, lambda: native.linear(X, z(6, 7))),
    (ValueError, lambda: native.linear(X, W, bias=z(5))),
    (ValueError, lambda: native.layer_norm(X, weight=z(7))),
    (ValueError, lambda: native.softmax(X, mask=z(3, 8))),
    (ValueError, lambda: native.softmax(z(5), causal=True)),
    (ValueError, lambda: native.attention(z(1, 4, 3, 8), z(1, 3, 3, 8), z(1, 3, 3, 8))),
    (ValueError, lambda: native.attention(z(1, 2, 3, 8), z(1, 2, 3, 4), z(1, 2, 3, 8))),
    (ValueError, lambda: native.attention(z(1, 2, 3, 8), z(1, 2, 3, 8), z(1, 2, 4, 8))),
    (ValueError, lambda: native.attention(z(2, 3, 8), z(2, 3, 8), z(2, 3, 8))),
    (ValueError, lambda: native.add(z(3, 4), z(3, 5))),
    (ValueError, lambda: native.conv2d(z(1, 3, 5, 5), z(4, 2, 3, 3))),
    (ValueError, lambda: native.conv2d(z(1, 4, 5, 5), z(6, 2, 3, 3), groups=3)),
    (ValueError, lambda: native.conv2d(z(1, 3, 2, 2), z(4, 3, 3, 3))),
    (ValueError, lambda: native.conv2d(z(1, 3, 5, 5), z(4, 3, 3, 3), stride=0)),
    (ValueError, lambda: native.conv2d(z(1, 3, 5, 5), z(4, 3, 3, 3), padding=-1)),
    (ValueError, lambda: native.max_pool2d(z(1, 1, 4, 4), 2, padding=2)),
    (ValueError, lambda: native.mean_pool(z(2, 3, 4), z(2, 4))),
    (ValueError, lambda: native.topk(z(3, 4), 5)),
    (ValueError, lambda: native.topk(z(3, 4), -1)),
    (ValueError, lambda: native.matmul_q4_0(z(2, 40), *native.quantize_q4_0(z(3, 32)))),
    # NaN scales / weights, bad numbers
    (ValueError, lambda: native.matmul_int8(X, np.zeros((6, 8), np.int8), np.full(6, np.nan, f32))),
    (
        ValueError,
        lambda: native.matmul_q4_0(
            z(2, 32), np.zeros((3, 1, 16), np.uint8), np.full((3, 1), np.inf, f32)
        ),
    ),
    (ValueError, lambda: native.quantize_int8(np.full((2, 2), np.nan, f32))),
    (ValueError, lambda: native.layer_norm(X, eps=float("nan"))),
    (
        ValueError,
        lambda: native.attention(z(1, 1, 2, 4), z(1, 1, 2, 4), z(1, 1, 2, 4), scale=float("inf")),
    ),
    (ValueError, lambda: native.l2_normalize(X, eps=0.0)),
    (ValueError, lambda: native.linear(X, W, activation="softplus")),
    (ValueError, lambda: native.gelu(X, approximate="fast")),
    (IndexError, lambda: native.embedding(np.array([0, 5]), z(5, 4))),
    (IndexError, lambda: native.embedding(np.array([-1]), z(5, 4))),
    # out: wrong shape/dtype, read-only, overlapping an input
    (ValueError, lambda: native.matmul(z(3, 4), z(4, 5), out=z(3, 6))),
    (TypeError, lambda: native.matmul(z(3, 4), z(4, 5), out=z(3, 5, dtype=np.float64))),
    (ValueError, lambda: native.matmul(z(4, 4), z(4, 4), out=_readonly(4, 4))),
    (ValueError, lambda: _aliased_matmul()),
    (ValueError, lambda: native.softmax(X, out=X.reshape(8, 4))),
    (ValueError, lambda: _partial_overlap_gelu()),
]


def _readonly(*shape):
    a = z(*shape)
    a.setflags(write=False)
    return a


def _aliased_matmul():
    a = z(4, 4)
    return native.matmul(a, z(4, 4), out=a)


def _partial_overlap_gelu():
    buf = z(10)
    return native.gelu(buf[:8], out=buf[2:])


@pytest.mark.parametrize("exc,call", BAD_CALLS, ids=[str(i) for i in range(len(BAD_CALLS))])
def test_bad_arguments_raise(exc, call):
    with pytest.raises(exc):
        call()


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


@pytest.mark.parametrize(
    "call",
    [
        lambda: native.matmul(z(0, 4), z(4, 5)),
        lambda: native.matmul(z(3, 0), z(0, 5)),
        lambda: native.linear(z(0, 8), W),
        lambda: native.softmax(z(0, 8)),
        lambda: native.softmax(z(3, 0)),
        lambda: native.layer_norm(z(2, 0)),
        lambda: native.rms_norm(
            z(
                0,
            )
        ),
        lambda: native.attention(z(1, 2, 0, 4), z(1, 2, 3, 4), z(1, 2, 3, 4)),
        lambda: native.attention(z(1, 2, 3, 4), z(1, 2, 0, 4), z(1, 2, 0, 4)),
        lambda: native.gelu(z(0)),
        lambda: native.add(z(0, 3), z(0, 3)),
        lambda: native.embedding(np.zeros(0, np.int64), z(0, 4)),
        lambda: native.mean_pool(z(2, 0, 4), z(2, 0)),
        lambda: native.l2_normalize(z(0, 4)),
        lambda: native.topk(z(0, 4), 2),
        lambda: native.quantize_int8(z(0, 4)),
        lambda: native.quantize_q4_0(z(3, 0)),
        lambda: native.conv2d(z(0, 3, 5, 5), z(4, 3, 3, 3)),
        lambda: native.max_pool2d(z(0, 3, 4, 4), 2),
    ],
)
def test_zero_size_inputs_return_results(call):
    result = call()
    arrays = result if isinstance(result, tuple) else (result,)
    assert all(isinstance(a, np.ndarray) for a in arrays)


def test_zero_size_reductions_are_well_defined():
    assert np.array_equal(native.matmul(z(3, 0), z(0, 2)), z(3, 2))
    assert np.array_equal(
        native.attention(z(1, 1, 2, 4), z(1, 1, 0, 4), z(1, 1, 0, 3)), z(1, 1, 2, 3)
    )
    assert np.array_equal(native.mean_pool(z(2, 0, 4)), z(2, 4))

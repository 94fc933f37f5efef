"""conv2d and pooling against torch in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from native_helpers import native, nerr, rand

F = torch.nn.functional


def t64(x):
    return torch.from_numpy(x.astype(np.float64))


@pytest.mark.parametrize(
    "n,c,h,w,cout,k,stride,pad,dil,groups",
    [
        (1, 3, 8, 8, 4, 3, 1, 1, 1, 1),
        (2, 4, 9, 7, 6, 3, 2, 0, 1, 2),
        (1, 6, 11, 13, 6, 3, 1, 2, 2, 6),
        (1, 5, 6, 6, 7, 1, 1, 0, 1, 1),
        (3, 2, 5, 5, 4, (2, 3), (2, 1), (1, 0), 1, 1),
        (1, 3, 17, 17, 8, 7, 2, 3, 1, 1),
        (1, 1, 1, 1, 1, 1, 1, 0, 1, 1),
    ],
)
def test_conv2d(isa, rng, n, c, h, w, cout, k, stride, pad, dil, groups):
    kh, kw = (k, k) if isinstance(k, int) else k
    x, wt, b = rand(rng, n, c, h, w), rand(rng, cout, c // groups, kh, kw), rand(rng, cout)
    out = native.conv2d(x, wt, b, stride=stride, padding=pad, dilation=dil, groups=groups)
    ref = F.conv2d(
        t64(x), t64(wt), t64(b), stride=stride, padding=pad, dilation=dil, groups=groups
    ).numpy()
    # scale at least 1: a one-element output can cancel to ~0 (the seed varies per process)
    assert nerr(out, ref, max(float(np.abs(ref).max()), 1.0)) < 5e-6


def test_conv2d_no_bias_and_empty_batch(rng):
    x, wt = rand(rng, 1, 2, 5, 5), rand(rng, 3, 2, 3, 3)
    ref = F.conv2d(t64(x), t64(wt)).numpy()
    assert nerr(native.conv2d(x, wt), ref) < 5e-6
    assert native.conv2d(np.zeros((0, 2, 5, 5), np.float32), wt).shape == (0, 3, 3, 3)


@pytest.mark.parametrize(
    "k,stride,pad", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 1)), (1, 1, 0)]
)
def test_pools(isa, rng, k, stride, pad):
    x = rand(rng, 2, 3, 9, 10)
    ref = F.max_pool2d(t64(x), k, stride, pad).numpy()
    assert np.array_equal(native.max_pool2d(x, k, stride, pad), ref.astype(np.float32))
    for include in (True, False):
        ref = F.avg_pool2d(t64(x), k, stride, pad, count_include_pad=include).numpy()
        assert nerr(native.avg_pool2d(x, k, stride, pad, count_include_pad=include), ref) < 2e-6


def test_max_pool_propagates_nan():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    out = native.max_pool2d(x, 2)
    assert np.isnan(out[0, 0, 0, 0]) and not np.isnan(out[0, 0, 1, 1])

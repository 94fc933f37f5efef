"""Grouped and depthwise convolution in the numpy reference: one contraction over all groups,
equal to torch at 1-D (Mamba's depthwise causal conv1d), 2-D with stride and dilation, and
groups with several channels each."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skillmill.ir.ops.nn import _conv

CASES = [
    ((2, 64, 33), (64, 1, 4), 64, {"padding": (3,)}),  # depthwise, causal-style padding
    ((2, 6, 9, 11), (4, 3, 3, 2), 2, {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)}),
    ((1, 8, 10), (16, 2, 3), 4, {}),  # 2 in, 4 out per group
]


@pytest.mark.parametrize("x_shape, w_shape, groups, kw", CASES)
def test_grouped_conv_equals_torch(x_shape, w_shape, groups, kw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    conv = F.conv1d if len(x_shape) == 3 else F.conv2d
    want = conv(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), groups=groups, **kw).numpy()
    got = _conv([x, w, b], groups=groups, **kw)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    no_bias = conv(torch.from_numpy(x), torch.from_numpy(w), None, groups=groups, **kw).numpy()
    np.testing.assert_allclose(_conv([x, w], groups=groups, **kw), no_bias, rtol=1e-5, atol=1e-5)

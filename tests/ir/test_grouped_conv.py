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


NATIVE_CASES = [
    ((2, 80, 30), (32, 80, 3), 1, {"padding": [1]}),  # Whisper's first conv
    ((2, 32, 30), (32, 32, 3), 1, {"stride": [2], "padding": [1]}),  # and its second
    ((2, 16, 21), (16, 1, 4), 16, {"pads": [(3, 0)]}),  # a depthwise causal conv, padded before only
    ((1, 3, 9, 10), (4, 3, 3, 3), 1, {"pads": [(1, 0), (0, 2)], "stride": [2, 1]}),  # ONNX SAME-style
    ((1, 4, 8, 8), (4, 2, 3, 3), 2, {"padding": [1, 1], "dilation": [2, 1]}),
]


@pytest.mark.parametrize("x_shape, w_shape, groups, kw", NATIVE_CASES)
def test_native_conv_takes_1d_and_uneven_pads_and_equals_the_reference(x_shape, w_shape, groups, kw):
    """Issue 26: Whisper's, Qwen2-Audio's and the conformers' 1-D convs and any explicit padding
    used to decline the native kernel and run numpy; they now run the 2-D kernel exactly."""
    from skillmill.ir.ops.native import bind_native
    from skillmill.native import control

    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    attrs = {"groups": groups, **kw}
    kernel = bind_native("Conv", attrs, ["y"])
    want = _conv([x, w, b], **attrs)
    for isa in control.supported_isas():
        with control.using_isa(isa):
            got = kernel([x, w, b], attrs)
        assert kernel.fallbacks == 0, f"declined on {isa}"
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert kernel([x.astype(np.float64), w, b], attrs) is not None and kernel.fallbacks == 1  # numpy's turn

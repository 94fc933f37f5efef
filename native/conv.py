"""Convolution and pooling over NCHW float32 images (vision skills)."""

from __future__ import annotations

import numpy as np

from . import _checks as chk
from ._lib import check_rc, fptr, lib, require


def _out_size(name: str, size: int, k: int, stride: int, pad: int, dil: int) -> int:
    o = (size + 2 * pad - dil * (k - 1) - 1) // stride + 1
    if o < 1 and size > 0:
        raise ValueError(
            f"{name}: kernel {k} (dilation {dil}) does not fit input {size} " f"with padding {pad}"
        )
    return max(o, 0)


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """torch.nn.functional.conv2d: x [N, C, H, W], weight [Cout, C/groups, KH, KW],
    bias [Cout]; zero padding.  Returns [N, Cout, OH, OW]."""
    require()
    x = chk.f32("x", x, ndim=4)
    weight = chk.f32("weight", weight, ndim=4)
    sh, sw = chk.pair("stride", stride)
    ph, pw = chk.pair("padding", padding, chk.nonneg_int)
    dh, dw = chk.pair("dilation", dilation)
    groups = chk.positive_int("groups", groups)
    n, c, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    if c % groups or c_out % groups:
        raise ValueError(f"channels in ({c}) and out ({c_out}) must divide by groups ({groups})")
    chk.same("weight.shape[1]", c_per_group, "channels per group", c // groups)
    if kh == 0 or kw == 0:
        raise ValueError(f"kernel size must be positive, got {(kh, kw)}")
    bias = chk.optional_f32("bias", bias, (c_out,))
    oh = _out_size("conv2d height", h, kh, sh, ph, dh)
    ow = _out_size("conv2d width", w, kw, sw, pw, dw)
    res = chk.out(out, (n, c_out, oh, ow), (x, weight, bias))
    if res.size == 0:
        return res
    rc = lib.skm_conv2d(
        fptr(x),
        fptr(weight),
        fptr(bias),
        fptr(res),
        n,
        c,
        h,
        w,
        c_out,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        dh,
        dw,
        groups,
        oh,
        ow,
    )
    check_rc(rc, "conv2d")
    return res


def _pool(x, kernel_size, stride, padding, mode, out, name):
    require()
    x = chk.f32("x", x, min_ndim=2)
    kh, kw = chk.pair("kernel_size", kernel_size)
    sh, sw = chk.pair("stride", kernel_size if stride is None else stride)
    ph, pw = chk.pair("padding", padding, chk.nonneg_int)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{name}: padding {(ph, pw)} must be at most half the kernel {(kh, kw)}")
    h, w = x.shape[-2:]
    oh = _out_size(f"{name} height", h, kh, sh, ph, 1)
    ow = _out_size(f"{name} width", w, kw, sw, pw, 1)
    res = chk.out(out, x.shape[:-2] + (oh, ow), (x,))
    if res.size == 0:
        return res
    planes = x.size // (h * w)
    rc = lib.skm_pool2d(fptr(x), fptr(res), planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow, mode)
    check_rc(rc, name)
    return res


def max_pool2d(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Max pooling over the last two axes ([..., H, W]); stride defaults to kernel_size,
    padding (at most kernel/2) is -inf, NaN propagates (torch semantics, ceil_mode=False)."""
    return _pool(x, kernel_size, stride, padding, 0, out, "max_pool2d")


def avg_pool2d(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    count_include_pad: bool = True,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Average pooling over the last two axes, torch semantics (ceil_mode=False)."""
    return _pool(x, kernel_size, stride, padding, 1 if count_include_pad else 2, out, "avg_pool2d")

"""What every generated skill runs after the model: sentence-embedding pooling, L2
normalisation and top-k over logits."""

from __future__ import annotations

import numpy as np

from . import _checks as chk
from ._lib import check_rc, fptr, lib, ptr, require


def mean_pool(
    hidden: np.ndarray, mask: np.ndarray | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """Masked mean over the sequence: hidden [B, S, H], mask [B, S] (attention mask, any
    numeric or bool dtype; converted to float32 deliberately) -> [B, H].  Divides by
    max(sum(mask), 1e-9) as sentence-transformers does, so an all-zero mask gives zeros."""
    require()
    hidden = chk.f32("hidden", hidden, ndim=3)
    b, s, h = hidden.shape
    m = None
    if mask is not None:
        m = chk.array("mask", mask)
        if m.dtype.kind not in "biuf":
            raise TypeError(f"mask must be numeric or bool, got {m.dtype}")
        if m.shape != (b, s):
            raise ValueError(f"mask must have shape {(b, s)}, got {m.shape}")
        m = np.ascontiguousarray(m, dtype=np.float32)
        chk.finite("mask", m)
    res = chk.out(out, (b, h), (hidden,))
    if res.size == 0:
        return res
    rc = lib.skm_mean_pool(fptr(hidden), fptr(m), fptr(res), b, s, h)
    check_rc(rc, "mean_pool")
    return res


def l2_normalize(x: np.ndarray, eps: float = 1e-12, out: np.ndarray | None = None) -> np.ndarray:
    """``x / max(||x||_2, eps)`` along the last axis (torch.nn.functional.normalize)."""
    require()
    x = chk.f32("x", x, min_ndim=1)
    eps = chk.finite_float("eps", eps, positive=True)
    res = chk.out(out, x.shape, (x,), in_place_ok=True)
    if x.size == 0:
        return res
    n = x.shape[-1]
    check_rc(lib.skm_l2_normalize(fptr(x), fptr(res), x.size // n, n, eps), "l2_normalize")
    return res


def topk(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest values along the last axis, best first: (values float32 [..., k],
    indices int64 [..., k]).  NaN ranks highest (as torch.topk); ties keep the lower index."""
    require()
    x = chk.f32("x", x, min_ndim=1)
    k = chk.nonneg_int("k", k)
    n = x.shape[-1]
    if k > n:
        raise ValueError(f"k ({k}) exceeds the size of the last axis ({n})")
    values = np.empty(x.shape[:-1] + (k,), np.float32)
    indices = np.empty(x.shape[:-1] + (k,), np.int64)
    if values.size == 0:
        return values, indices
    rows = x.size // n
    rc = lib.skm_topk(fptr(x), fptr(values), ptr(indices), rows, n, k)
    check_rc(rc, "topk")
    return values, indices

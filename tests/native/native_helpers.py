"""Helpers shared by the native kernel tests (a uniquely named module: `conftest` is taken
by other test folders, so test files must not import from it)."""

from __future__ import annotations

import numpy as np
import pytest

native = pytest.importorskip("skillmill.native")

if not native.available():  # pragma: no cover - only on machines without a compiler
    pytest.skip(f"native kernels {native.unavailable_reason()}", allow_module_level=True)

ISAS = native.supported_isas()


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def nerr(out, ref, scale=None) -> float:
    """max |out - ref| / scale, scale defaulting to max |ref| (1 if all zero)."""
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    if out.size == 0:
        return 0.0
    if scale is None:
        scale = float(np.max(np.abs(ref))) or 1.0
    return float(np.max(np.abs(out - ref))) / scale


def gemm_err(c, a, b) -> float:
    """GEMM error normalised by max (|A| |B|): independent of cancellation in the result."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = a64 @ b64
    scale = float(np.max(np.abs(a64) @ np.abs(b64))) if ref.size else 1.0
    return nerr(c, ref, scale or 1.0)


def ref_quantize_per_token(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """xs = max|x| / 127, xq = rint(clip(x / xs, -127, 127)) per row, all in float32 (rint
    rounds half to even); xs == 0 rows give zeros; rows with NaN/inf give xs = NaN, zeros."""
    rows = x.reshape(-1, x.shape[-1])
    amax = np.abs(rows).max(axis=1) if rows.shape[1] else np.zeros(rows.shape[0], np.float32)
    xs = (amax / np.float32(127)).astype(np.float32)
    bad = ~np.isfinite(rows).all(axis=1)
    safe = np.where(xs > 0, xs, np.float32(1)).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        xq = np.rint(np.clip(rows / safe[:, None], np.float32(-127), np.float32(127)))
    xq[~(xs > 0) | bad] = 0
    xs = np.where(bad, np.float32(np.nan), xs).astype(np.float32)
    return xq.astype(np.int8).reshape(x.shape), xs.reshape(x.shape[:-1])


def ref_linear_int8(x, q, scales, bias=None):
    """linear_int8_dynamic's pre-activation output, the definition (native/src/k_int8.h):
    (float32(acc) * xs) * scales + bias in float32, acc exact (float64 BLAS on integers below
    2**53 is exact)."""
    xq, xs = ref_quantize_per_token(x)
    k = x.shape[-1]
    acc = xq.reshape(-1, k).astype(np.float64) @ q.astype(np.float64).T
    with np.errstate(invalid="ignore"):
        out = (acc.astype(np.float32) * xs.reshape(-1, 1)) * scales[None, :]
        if bias is not None:
            out = out + bias
    return out.astype(np.float32).reshape(x.shape[:-1] + (q.shape[0],))

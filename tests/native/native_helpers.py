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
    """The definition the kernel must match byte for byte: the IR's reference of the int8
    scheme (skillmill.ir.ops.quantized.quantize_per_token), shaped like x."""
    from skillmill.ir.ops.quantized import quantize_per_token

    xq, xs = quantize_per_token(x)
    return xq.reshape(x.shape), xs.reshape(x.shape[:-1])


def ref_linear_int8(x, q, scales, bias=None):
    """linear_int8_dynamic's pre-activation output, the definition (native/src/k_int8.h and the
    IR's reference, skillmill.ir.ops.quantized): (float32(acc) * xs) * scales + bias in
    float32, acc exact."""
    from skillmill.ir.ops.quantized import _int8_dynamic

    out = _int8_dynamic(x, q, scales)
    if bias is not None:
        with np.errstate(invalid="ignore"):
            out = out + bias
    return out.astype(np.float32)

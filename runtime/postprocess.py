"""Post-processing every skill does on the CPU: pooling, normalisation, softmax and top-k.

These run on the native SIMD kernels (skillmill.native) when the library is built; otherwise on
numpy, and the result says which (``postprocess_backend``)."""

from __future__ import annotations

import numpy as np


def _native():
    try:
        from skillmill import native
    except ImportError as exc:  # the package itself is always importable; be defensive anyway
        return None, f"numpy (native unavailable: {exc})"
    available = getattr(native, "available", lambda: False)
    if not available():
        reason = getattr(native, "unavailable_reason", lambda: "not built")()
        return None, f"numpy (native {reason})"
    # get_isa, not info(): info() gathers every CPU feature and the arena's state, which cost
    # more than the pooling it names on a small call
    isa = native.get_isa() if hasattr(native, "get_isa") else "?"
    return native, f"native:{isa}"


def backend_name() -> str:
    return _native()[1]


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of ``hidden`` [B, S, H] over the positions where ``mask`` [B, S] is non-zero."""
    hidden = np.ascontiguousarray(hidden, dtype=np.float32)
    mask = np.ascontiguousarray(mask, dtype=np.float32)
    native, _ = _native()
    if native is not None:
        return native.mean_pool(hidden, mask)
    weights = mask[..., None]
    return (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    native, _ = _native()
    if native is not None:
        return native.l2_normalize(x)
    return x / np.clip(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12, None)


def softmax(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    native, _ = _native()
    if native is not None:
        return native.softmax(x)
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def top_k(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, indices) of the k largest entries along the last axis, largest first."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = min(k, x.shape[-1])
    native, _ = _native()
    if native is not None and hasattr(native, "topk"):
        return native.topk(x, k)
    indices = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(x, indices, axis=-1), indices

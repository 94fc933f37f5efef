"""How far one output is from another: the one error measure every parity check and coverage
sweep uses, kept free of heavy imports so the runners can use it on the hot path."""

from __future__ import annotations

import numpy as np


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """max|got - want| / max|want| (NaN where ``want`` is NaN must be NaN in ``got`` too);
    integer and boolean outputs must be equal (0 or inf)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return float("inf")
    if want.dtype.kind not in "fc":
        return 0.0 if np.array_equal(got, want) else float("inf")
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    if not np.array_equal(np.isnan(want64), np.isnan(got64)):
        return float("inf")
    finite = ~np.isnan(want64)
    if not finite.any():
        return 0.0
    scale = float(np.abs(want64[finite]).max())
    diff = float(np.abs(got64[finite] - want64[finite]).max())
    return diff / scale if scale else diff

"""Argument checks shared by every wrapper: they run before any C call, so the C side only
ever sees arrays of the right dtype, shape and layout.

Policy (also in the package docstring): float inputs must already be float32, C-contiguous
and aligned; nothing is silently converted, because a hidden float64->float32 copy or a
transposed-view copy would cost more than the kernel.  Masks and integer ids are the
exception: they are small and come from tokenizers in all sorts of dtypes, so they are
converted deliberately.  ``out`` must match exactly and must not overlap an input (an
elementwise op may write in place, i.e. ``out`` *is* the input).
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable

import numpy as np


def array(name: str, x: object) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    return x


def layout(name: str, x: np.ndarray) -> np.ndarray:
    flags = x.flags
    if not flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; pass np.ascontiguousarray({name})")
    if not flags.aligned:
        raise ValueError(f"{name} is not aligned to its dtype; pass a copy")
    return x


_F32 = np.dtype(np.float32)


def f32(name: str, x: object, ndim: int | None = None, min_ndim: int = 0) -> np.ndarray:
    x = array(name, x)
    if x.dtype is not _F32 and x.dtype != _F32:
        raise TypeError(f"{name} must have dtype float32, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dims, got shape {x.shape}")
    return layout(name, x)


def optional_f32(name: str, x: object, shape: tuple[int, ...]) -> np.ndarray | None:
    if x is None:
        return None
    x = f32(name, x)
    if x.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {x.shape}")
    return x


def finite(name: str, x: np.ndarray) -> np.ndarray:
    if x.size and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def same(name_a: str, a: int, name_b: str, b: int) -> None:
    if a != b:
        raise ValueError(f"{name_a} ({a}) does not match {name_b} ({b})")


def out(
    x: object,
    shape: tuple[int, ...],
    inputs: Iterable[np.ndarray | None],
    in_place_ok: bool = False,
    dtype: type = np.float32,
) -> np.ndarray:
    """Returns a fresh output, or checks the caller's: exact dtype/shape, writable, and no
    overlap with any input unless it is that very input and the op is elementwise."""
    if x is None:
        return np.empty(shape, dtype)
    o = array("out", x)
    if o.dtype != dtype:
        raise TypeError(f"out must have dtype {np.dtype(dtype)}, got {o.dtype}")
    if o.shape != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {o.shape}")
    if not o.flags.writeable:
        raise ValueError("out is read-only")
    layout("out", o)
    for inp in inputs:
        if inp is None or not np.may_share_memory(o, inp):
            continue
        exact = (
            in_place_ok
            and inp.shape == o.shape
            and inp.__array_interface__["data"][0] == o.__array_interface__["data"][0]
        )
        if not exact:
            raise ValueError("out overlaps an input; pass a separate array")
    return o


def positive_int(name: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def nonneg_int(name: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
        raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    return int(v)


def pair(name: str, v: object, check=positive_int) -> tuple[int, int]:
    """An int or a pair of ints, as torch accepts for stride/padding/dilation/kernel."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return check(name, v[0]), check(name, v[1])
    value = check(name, v)
    return value, value


def finite_float(name: str, v: object, positive: bool = False) -> float:
    if type(v) is float and math.isfinite(v) and (v > 0 or not positive):
        return v  # the common case, without the slower ABC checks below
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be > 0, got {v!r}")
    return float(v)


def additive_mask(name: str, mask: object) -> np.ndarray:
    """Float masks are additive; bool masks mean keep (True) / drop (False), as in torch SDPA.
    Integer 0/1 masks are ambiguous (keep-flags or additive?) and refused."""
    m = array(name, mask)
    if m.dtype == np.bool_:
        return np.where(m, np.float32(0.0), np.float32(-np.inf))
    if m.dtype != np.float32:
        raise TypeError(f"{name} must be bool (True = attend) or float32 (additive), got {m.dtype}")
    if not m.flags.c_contiguous or not m.flags.aligned:
        m = np.ascontiguousarray(m)  # masks are converted deliberately (see module doc)
    return m


def broadcast(name: str, m: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    try:
        return np.broadcast_to(m, shape)
    except ValueError:
        raise ValueError(f"{name} of shape {m.shape} does not broadcast to {shape}") from None


# Names accepted for fused/elementwise activations -> the C enum (skm_api.h SKM_ACT_*).
ACTIVATIONS = {"none": 0, "relu": 1, "gelu": 2, "gelu_erf": 2, "gelu_tanh": 3, "silu": 4, "tanh": 5}


def activation_id(name: object) -> int:
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]

"""Loads the compiled kernels once and knows why they are missing when they are.

The extension is built by cffi at ``pip install`` time.  When that fails (no compiler, say)
the install still succeeds and setup.py leaves the reason in ``_build_status.txt`` beside
this file; every op then raises :class:`NativeUnavailableError` and skills fall back to torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["NativeUnavailableError", "ffi", "lib", "reason", "require", "check_rc", "fptr", "ptr"]

STATUS_FILE = Path(__file__).with_name("_build_status.txt")


class NativeUnavailableError(RuntimeError):
    """The C kernels are not built or were disabled; use the torch path instead."""


def _load_file(path: str):
    """SKILLMILL_NATIVE_LIBRARY names another build of the extension (run_sanitizers.sh
    points it at an ASan/UBSan build) to load instead of the installed one."""
    import importlib.machinery
    import importlib.util
    import sys

    name = "skillmill.native._kernels"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[name] = module
    return module.ffi, module.lib


def _load():
    if os.environ.get("SKILLMILL_NATIVE_DISABLE") == "1":
        return None, None, "unavailable: disabled by SKILLMILL_NATIVE_DISABLE=1"
    override = os.environ.get("SKILLMILL_NATIVE_LIBRARY")
    if override:
        return (*_load_file(override), None)
    try:
        from skillmill.native._kernels import ffi as _ffi, lib as _lib
    except ImportError as exc:
        if STATUS_FILE.exists():
            return None, None, STATUS_FILE.read_text().strip()
        return None, None, f"unavailable: extension not built ({exc})"
    return _ffi, _lib, None


ffi, lib, reason = _load()


def require() -> None:
    if lib is None:
        raise NativeUnavailableError(f"skillmill.native is {reason}")


_ERRORS = {
    -1: (ValueError, "invalid argument"),
    -2: (MemoryError, "out of memory"),
    -3: (ValueError, "not supported by this CPU or build"),
}


def check_rc(rc: int, what: str) -> None:
    """C kernels return 0 or a negative code; the wrappers make the codes Python errors."""
    if rc != 0:
        exc, text = _ERRORS.get(rc, (RuntimeError, f"error code {rc}"))
        raise exc(f"{what}: {text}")


# Pointers are the hot path of every small op: the cffi types are looked up once, and the
# buffer is taken without require_writable because _checks.out() has already checked it.
if ffi is not None:
    _from_buffer = ffi.from_buffer
    _NULL = ffi.NULL
    _CTYPES = {
        np.dtype(np.float32): ffi.typeof("float[]"),
        np.dtype(np.int64): ffi.typeof("int64_t[]"),
        np.dtype(np.int8): ffi.typeof("int8_t[]"),
        np.dtype(np.int16): ffi.typeof("int16_t[]"),
        np.dtype(np.uint8): ffi.typeof("uint8_t[]"),
    }
    _FLOATS = _CTYPES[np.dtype(np.float32)]


def fptr(arr: np.ndarray | None):
    """A C pointer into a checked (contiguous, aligned) float32 array; NULL for None."""
    if arr is None:
        return _NULL
    return _from_buffer(_FLOATS, arr)


def ptr(arr: np.ndarray | None):
    """Like fptr for the other element types the API takes (int64, int8, int16, uint8)."""
    if arr is None:
        return _NULL
    return _from_buffer(_CTYPES[arr.dtype], arr)

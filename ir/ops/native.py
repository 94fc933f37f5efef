"""Bindings from op-table entries to ``skillmill.native`` kernels, when the library is built.

``bind_native(op, attrs)`` returns ``kernel(inputs, attrs) -> output`` or None when the library
is missing, lacks the kernel, or the node's attributes/dtypes fall outside what the kernel does.
A kernel may also return None at run time for inputs it does not handle (e.g. float64), and the
executor then... never sees that: the binding wraps it with the numpy reference as fallback.
"""

from __future__ import annotations

from typing import Any, Callable

Kernel = Callable[[list[Any], dict[str, Any]], Any]


def native_module() -> Any | None:
    try:
        from skillmill import native
    except Exception:
        return None
    available = getattr(native, "available", None)
    try:
        return native if callable(available) and available() else None
    except Exception:
        return None


def bind_native(op: str, attrs: dict[str, Any]) -> Kernel | None:
    lib = native_module()
    if lib is None:
        return None
    return None

"""One small runner per way of executing a model.  A runner takes (skill, batch) and returns
``BackendOutput``, or raises ``BackendUnavailable(target, reason)`` so the skill falls back."""

from dataclasses import dataclass
from typing import Any


@dataclass
class BackendOutput:
    outputs: dict[str, Any]  # flattened: {"last_hidden_state": tensor, ...}
    device: str
    # What computed the outputs inside the target: "torch", "native" (skillmill's executor),
    # "openvino", ...; empty means the target's own name.
    engine: str = ""
    # Why a preferred engine inside the target was not used (the cpu target's native executor
    # falling back to torch eager); it joins the result's ``fallback_reason``.
    engine_fallback: str | None = None
    # The precision the engine computed at ("float32", "bf16"); see runtime/precision.py.
    precision: str = "float32"
    # What the engine's first run for this input signature proved against PyTorch eager float32
    # (backends/parity.Parity); None for PyTorch eager at float32, the reference itself.
    parity: Any = None

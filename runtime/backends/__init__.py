"""One small runner per way of executing a model.  A runner takes (skill, batch) and returns
``BackendOutput``, or raises ``BackendUnavailable(target, reason)`` so the skill falls back."""

from dataclasses import dataclass
from typing import Any


@dataclass
class BackendOutput:
    outputs: dict[str, Any]  # flattened: {"last_hidden_state": tensor, ...}
    device: str

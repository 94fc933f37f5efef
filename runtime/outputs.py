"""Flatten a transformers ModelOutput into {dotted name: tensor}, the form every backend returns."""

from __future__ import annotations

from typing import Any

import torch


def flatten_outputs(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors only, moved to the CPU; caches and other objects are left out."""
    flat: dict[str, torch.Tensor] = {}
    if isinstance(value, torch.Tensor):
        flat[prefix or "output"] = value.detach().cpu()
    elif isinstance(value, dict) or hasattr(value, "keys") and hasattr(value, "__getitem__"):
        for key in value.keys():
            if key == "past_key_values":  # a cache object, not a result
                continue
            flat.update(flatten_outputs(value[key], f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            flat.update(flatten_outputs(item, f"{prefix}.{index}" if prefix else str(index)))
    return flat

"""PyTorch eager on cpu, cuda, rocm (as cuda) or mps."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import BackendUnavailable, SkillInputError
from ..outputs import flatten_outputs
from . import BackendOutput


def _move(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value


def run(skill: Any, batch: dict[str, Any], device: str) -> BackendOutput:
    target = torch.device(device)
    try:
        model = skill.model_on(target)
    except (RuntimeError, AssertionError) as exc:  # e.g. "Torch not compiled with CUDA enabled"
        raise BackendUnavailable(target.type, f"cannot place the model on {target}: {exc}") from exc
    moved = {name: _move(value, target) for name, value in batch.items()}
    try:
        with torch.inference_mode():
            outputs = model(**moved)
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        shapes = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        raise SkillInputError(
            f"{skill.model_class_name} rejected the inputs {shapes}: {type(exc).__name__}: {exc}"
        ) from exc
    return BackendOutput(flatten_outputs(outputs), str(target), engine="torch")

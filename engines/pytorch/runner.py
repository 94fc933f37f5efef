"""PyTorch eager on cpu, cuda, rocm (as cuda) or mps.

At float32 this is the reference every other engine is proven against.  At bf16 the model runs
under ``torch.autocast`` (matmuls and convolutions in bf16, as OpenVINO's bf16 hint does it) and
proves itself like any other engine; bf16 outputs come back as float32 tensors holding the bf16
results, and the result's ``precision`` says bf16."""

from __future__ import annotations

from typing import Any

import torch

from skillmill.runtime.errors import BackendUnavailable, SkillInputError
from skillmill.runtime.outputs import flatten_outputs
from skillmill.runtime.precision import QUANTIZED
from skillmill.engines import BackendOutput, parity

AUTOCAST = {"bf16": torch.bfloat16}
AUTOCAST_DEVICES = ("cpu", "cuda")  # where torch.autocast runs bf16


def _move(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value


def _to_float32(value: torch.Tensor) -> torch.Tensor:
    return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value


def model_precision(model: torch.nn.Module) -> str:
    """What a loaded model computes at when nothing is cast: its parameters' dtype."""
    dtypes = parity.parameter_dtypes(model)
    if dtypes == {"float32"}:
        return "float32"
    if dtypes == {"bfloat16"}:
        return "bf16"
    return "+".join(sorted(dtypes))


class _Eager:
    def __init__(self, skill: Any, target: torch.device, precision: str):
        self.model = skill.model_on(target)
        self.target = target
        self.device = str(target)
        self.precision = precision
        self.skill = skill

    def run(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        moved = {name: _move(value, self.target) for name, value in batch.items()}
        autocast = AUTOCAST.get(self.precision)
        try:
            with torch.inference_mode(), torch.autocast(
                self.target.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None
            ):
                outputs = self.model(**moved)
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            shapes = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            raise SkillInputError(f"{self.skill.model_class_name} rejected the inputs {shapes}: "
                                  f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
        flat = flatten_outputs(outputs)
        return {k: _to_float32(v) for k, v in flat.items()} if autocast is not None else flat


def run(skill: Any, batch: dict[str, Any], device: str) -> BackendOutput:
    target = torch.device(device)
    try:
        eager = _Eager(skill, target, "float32")
    except (RuntimeError, AssertionError) as exc:  # e.g. "Torch not compiled with CUDA enabled"
        raise BackendUnavailable(target.type, f"cannot place the model on {target}: {exc}") from exc
    precision = skill.precision
    if precision == "float32":
        return BackendOutput(eager.run(batch), str(target), engine="torch", precision=model_precision(eager.model))
    reason = None
    if precision in QUANTIZED:
        reason = (f"PyTorch eager does not run {precision} weights (the native executor on the cpu "
                  "target does)")  # fmt: skip
    elif target.type not in AUTOCAST_DEVICES:
        reason = f"PyTorch eager runs {precision} on {', '.join(AUTOCAST_DEVICES)} only, not {target.type}"
    elif model_precision(eager.model) != "float32":
        reason = f"PyTorch eager casts float32 models to {precision}; this one holds {model_precision(eager.model)}"
    else:
        engine = f"torch {precision}"
        try:
            outputs, _, proof = parity.run_proven(
                skill, engine, precision, batch, lambda reference: _Eager(skill, target, precision)
            )
            return BackendOutput(outputs, str(target), engine="torch", precision=precision, parity=proof)
        except parity.EngineDeclined as exc:
            reason = exc.reason
    ran = BackendOutput(eager.run(batch), str(target), engine="torch", precision=model_precision(eager.model))
    ran.engine_fallback = f"{reason}; ran PyTorch eager at {ran.precision}"  # the model's own dtype
    return ran

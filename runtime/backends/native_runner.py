"""The ``cpu`` target: skillmill's native executor (``skillmill.ir``) when the model converts,
PyTorch eager otherwise, with the reason in the result.

The model is converted once per skill and input signature (names, dtypes, ranks) with
``torch.export``; batch and sequence dims stay dynamic, so a new batch size or length reuses the
conversion.  The first run of a conversion is checked against PyTorch eager on the same inputs
(relative error ``PARITY_TOLERANCE``); a conversion that disagrees is never used.

What is tried is data, not code: ``native_support.yaml`` (written by ``generate-skills coverage
--backend native``) holds each model type's result in the native coverage sweep, and only the
types that passed are converted.  ``SKILLMILL_NATIVE=0`` (or ``load_skill(..., native=False)``)
turns the native path off; ``SKILLMILL_NATIVE=all`` (or ``native="all"``) tries every model.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..outputs import flatten_outputs
from . import BackendOutput, torch_runner

ENV_SWITCH = "SKILLMILL_NATIVE"
OFF_VALUES = ("0", "false", "no", "off")
SUPPORT_FILE = Path(__file__).with_name("native_support.yaml")
PARITY_TOLERANCE = 1e-4  # max|native - torch| / max|torch|, as in the native coverage sweep
PREFIX = "native executor"


@dataclass
class _Converted:
    """A converted model and the torch path's output layout it reproduces."""

    model: Any  # skillmill.ir.executor.NativeModel
    names: list[str]  # flatten_outputs order
    dtypes: dict[str, torch.dtype]


def native_mode(skill: Any) -> tuple[str, str]:
    """("off" | "auto" | "all", where the choice came from)."""
    option = getattr(skill, "native", None)
    if option is not None:
        if option is False:
            return "off", "native=False"
        return ("all" if option == "all" else "auto"), f"native={option!r}"
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    if value in OFF_VALUES:
        return "off", f"{ENV_SWITCH}={value}"
    return ("all" if value == "all" else "auto"), f"{ENV_SWITCH}={value or 'unset'}"


@functools.lru_cache(maxsize=1)
def sweep_results() -> dict[str, str]:
    """model_type -> "pass" or why the native coverage sweep failed it."""
    import yaml

    if not SUPPORT_FILE.exists():
        return {}
    data = yaml.safe_load(SUPPORT_FILE.read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in (data.get("model_types") or {}).items()}


def skip_reason(skill: Any, tensors: dict[str, torch.Tensor], batch: dict[str, Any]) -> str | None:
    """Why the native executor is not tried for this skill and batch, or None to try it."""
    mode, source = native_mode(skill)
    if mode == "off":
        return f"{PREFIX} off ({source})"
    if len(tensors) != len(batch):
        others = sorted(set(batch) - set(tensors))
        return f"{PREFIX}: takes tensors only; got non-tensor inputs {', '.join(others)}"
    dtypes = {str(p.dtype).replace("torch.", "") for p in skill.model.parameters()}
    if dtypes - {"float32"}:
        return f"{PREFIX}: runs float32 models; this one holds {', '.join(sorted(dtypes))}"
    if mode == "all":
        return None
    verdict = sweep_results().get(skill.model_type)
    if verdict is None:
        return (f"{PREFIX}: model type '{skill.model_type}' is not in the native coverage sweep "
                f"({SUPPORT_FILE.name}); {ENV_SWITCH}=all tries it anyway")  # fmt: skip
    if verdict != "pass":
        return f"{PREFIX}: not used for '{skill.model_type}', the native coverage sweep failed it: {verdict}"
    return None


def _signature(tensors: dict[str, torch.Tensor]) -> tuple:
    return tuple(sorted((name, str(t.dtype), t.dim()) for name, t in tensors.items()))


def _convert(
    skill: Any, tensors: dict[str, torch.Tensor]
) -> tuple[_Converted, dict[str, torch.Tensor]]:
    """Convert, run once, and check against PyTorch eager on the same inputs.  Returns the
    conversion and this batch's (native) outputs; raises with the reason when it can't."""
    from skillmill.ir.coverage import relative_error
    from skillmill.ir.executor import NativeModel

    model = skill.model
    native = NativeModel.from_torch(model, tensors)
    with torch.inference_mode():
        reference = flatten_outputs(model(**tensors))
    missing = [name for name in reference if name not in native.output_names]
    if missing:
        raise ValueError(f"the converted graph lacks the outputs {', '.join(missing)}")
    converted = _Converted(native, list(reference), {k: v.dtype for k, v in reference.items()})
    outputs = _run(converted, tensors)
    for name, want in reference.items():
        error = relative_error(outputs[name].numpy(), want.numpy())
        if not error <= PARITY_TOLERANCE:
            raise ValueError(f"output '{name}' differs from PyTorch eager (relative error {error:.2e} "
                             f"> {PARITY_TOLERANCE:g})")  # fmt: skip
    return converted, outputs


def _run(converted: _Converted, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    results = converted.model.run({name: t.numpy() for name, t in tensors.items()})
    outputs = {}
    for name in converted.names:
        array = results[name]
        # The executor may hand back views of its reused buffers; a result must outlive the run.
        array = array if array.flags.owndata and array.flags.c_contiguous else np.array(array)
        outputs[name] = torch.from_numpy(array).to(converted.dtypes[name])
    return outputs


def _why(exc: BaseException) -> str:
    message = " ".join(str(exc).split())[:300]
    from skillmill.ir.errors import IRError

    return message if isinstance(exc, IRError) else f"{type(exc).__name__}: {message}"


def run(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    """The native executor if it can run this skill's model, else PyTorch eager on the CPU."""
    tensors = {name: v for name, v in batch.items() if isinstance(v, torch.Tensor)}
    reason = skip_reason(skill, tensors, batch)
    if reason is None:
        outputs, reason = _run_native(skill, tensors)
        if outputs is not None:
            return BackendOutput(outputs, "cpu", engine="native")
    ran = torch_runner.run(skill, batch, device="cpu")
    ran.engine_fallback = f"{reason}; ran PyTorch eager"
    return ran


def _run_native(skill: Any, tensors: dict[str, torch.Tensor]) -> tuple[dict | None, str | None]:
    """(outputs, None) from the native executor, or (None, why not).  A conversion, or the
    reason it failed, is kept on the skill per input signature: each is paid once."""
    cache = skill.__dict__.setdefault("_native_models", {})
    key = _signature(tensors)
    entry = cache.get(key)
    if entry is None:
        try:
            cache[key], outputs = _convert(skill, tensors)
            return outputs, None
        except Exception as exc:  # noqa: BLE001 — any failure falls back to torch, with the reason
            cache[key] = f"{PREFIX}: cannot run {skill.model_class_name}: {_why(exc)}"
            return None, cache[key]
    if isinstance(entry, str):
        return None, entry
    try:
        return _run(entry, tensors), None
    except Exception as exc:  # noqa: BLE001
        return None, f"{PREFIX}: run failed for {skill.model_class_name}: {_why(exc)}"

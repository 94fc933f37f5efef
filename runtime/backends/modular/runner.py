"""The ``max`` and ``mojo`` targets of generated skills: the skill's model, converted once per
input signature to skillmill's IR (``torch.export``, dynamic batch and sequence) and optimised,
runs as a compiled MAX graph (``run_max``) or on the executor with Mojo kernels (``run_mojo``).

When it cannot, the runner raises ``BackendUnavailable`` with the reason (the op with no MAX
lowering, the compiler's message, the export failure) and the skill falls back to the next
target.  The first run of each conversion is checked against PyTorch eager on the same inputs
(relative error ``PARITY_TOLERANCE``); one that disagrees is never used.

A MAX graph or Mojo module costs a compile the first time (MAX: about a minute of CPU; cached
on disk after), so ``device="auto"`` uses these targets only when asked: ``device="max"`` /
``"mojo"``, ``USE_MOJO_MAX_TARGET=1``, or ``skill.process_with_mojo_max(...)``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch

from ...errors import BackendUnavailable
from ...outputs import flatten_outputs
from .. import BackendOutput

PARITY_TOLERANCE = 1e-4  # max|got - torch| / max|torch|, as in the coverage sweeps
INSTALL_HINT = "pip install 'skillmill[modular]' (max==26.7.0)"


def _signature(tensors: dict[str, torch.Tensor]) -> tuple:
    return tuple(sorted((name, str(t.dtype), t.dim()) for name, t in tensors.items()))


def _why(exc: BaseException) -> str:
    message = " ".join(str(exc).split())[:400]
    from skillmill.ir.errors import IRError

    from .lowering import MaxLoweringError

    if isinstance(exc, (IRError, MaxLoweringError)):
        return message
    return f"{type(exc).__name__}: {message}"


def _check_request(skill: Any, target: str) -> None:
    asked, how = skill.modular_requested() if hasattr(skill, "modular_requested") else (True, "")
    if not asked:
        raise BackendUnavailable(target, f"{target} is used when asked for (device='{target}', "
                                 "USE_MOJO_MAX_TARGET=1 or process_with_mojo_max()): its first "
                                 "compile per model takes about a minute")  # fmt: skip


def _tensors(skill: Any, batch: dict[str, Any], target: str) -> dict[str, torch.Tensor]:
    tensors = {name: v for name, v in batch.items() if isinstance(v, torch.Tensor)}
    if len(tensors) != len(batch):
        others = sorted(set(batch) - set(tensors))
        raise BackendUnavailable(target, f"takes tensors only; got non-tensor inputs {', '.join(others)}")
    dtypes = {str(p.dtype).replace("torch.", "") for p in skill.model.parameters()}
    if dtypes - {"float32"}:
        raise BackendUnavailable(target, f"runs float32 models; this one holds {', '.join(sorted(dtypes))}")
    return tensors


def _graph(skill: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The optimised IR for this input signature, converted once per skill (shared by both
    targets); raises with the reason."""
    cache = skill.__dict__.setdefault("_modular_ir", {})
    key = _signature(tensors)
    entry = cache.get(key)
    if entry is None:
        from skillmill.ir.frontends.pytorch import convert_from_pytorch
        from skillmill.ir.passes import optimize_graph

        try:
            graph, _ = optimize_graph(convert_from_pytorch(skill.model, tensors))
            entry = graph
        except Exception as exc:  # noqa: BLE001 — the reason is the result
            entry = f"IR conversion failed: {_why(exc)}"
        cache[key] = entry
    if isinstance(entry, str):
        raise ValueError(entry)
    return entry


class _Prepared:
    """A compiled model for one signature, and the PyTorch output layout it reproduces."""

    def __init__(self, model: Any, names: list[str], dtypes: dict[str, torch.dtype], device: str):
        self.model = model
        self.names = names
        self.dtypes = dtypes
        self.device = device

    def run(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        results = self.model.run({k: v.numpy() for k, v in tensors.items()})
        return {name: torch.from_numpy(np.array(results[name])).to(self.dtypes[name]) for name in self.names}


def _prepare(skill: Any, tensors: dict[str, torch.Tensor], target: str) -> tuple[_Prepared, dict]:
    """Build, run once, compare with PyTorch eager; returns (prepared, this batch's outputs)."""
    from skillmill.ir.coverage import relative_error

    graph = _graph(skill, tensors)
    with torch.inference_mode():
        reference = flatten_outputs(skill.model(**tensors))
    missing = [name for name in reference if name not in graph.outputs]
    if missing:
        raise ValueError(f"the converted graph lacks the outputs {', '.join(missing)}")
    if target == "max":
        from .max_model import MaxModel

        device = skill.device_request.split(":", 1)[1] if skill.device_request.startswith("max:") else "auto"
        model = MaxModel.from_graph(graph, device)
        where = f"max:{model.target}"
    else:
        from .mojo_model import MojoModel

        model = MojoModel.from_graph(graph)
        where = "mojo:cpu"
    prepared = _Prepared(model, list(reference), {k: v.dtype for k, v in reference.items()}, where)
    outputs = prepared.run(tensors)
    for name, want in reference.items():
        error = relative_error(outputs[name].numpy(), want.numpy())
        if not error <= PARITY_TOLERANCE:
            raise ValueError(f"output '{name}' differs from PyTorch eager (relative error {error:.2e} > "
                             f"{PARITY_TOLERANCE:g})")  # fmt: skip
    return prepared, outputs


def _run(skill: Any, batch: dict[str, Any], target: str) -> BackendOutput:
    _check_request(skill, target)
    tensors = _tensors(skill, batch, target)
    cache = skill.__dict__.setdefault(f"_{target}_models", {})
    key = _signature(tensors)
    entry = cache.get(key)
    if entry is None:
        try:
            prepared, outputs = _prepare(skill, tensors, target)
        except Exception as exc:  # noqa: BLE001 — any failure falls back, with the reason
            cache[key] = f"cannot run {skill.model_class_name}: {_why(exc)}"
            raise BackendUnavailable(target, cache[key]) from exc
        cache[key] = prepared
        return BackendOutput(outputs, prepared.device, engine=target)
    if isinstance(entry, str):
        raise BackendUnavailable(target, entry)
    try:
        return BackendOutput(entry.run(tensors), entry.device, engine=target)
    except Exception as exc:  # noqa: BLE001
        raise BackendUnavailable(target, f"run failed for {skill.model_class_name}: {_why(exc)}") from exc


def run_max(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    """Modular MAX: the IR lowered to a MAX graph, compiled once (cached by the IR's hash)."""
    if importlib.util.find_spec("max") is None:
        raise BackendUnavailable("max", f"Python package 'max' not installed ({INSTALL_HINT})")
    try:
        from . import adapter  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable("max", f"MAX cannot start: {exc}") from exc
    return _run(skill, batch, "max")


def run_mojo(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    """Mojo: kernels rendered for this model's shapes, built with ``mojo build``, imported."""
    from .mojo_build import mojo_executable

    if mojo_executable() is None:
        raise BackendUnavailable("mojo", f"the Mojo compiler is not installed ({INSTALL_HINT})")
    return _run(skill, batch, "mojo")

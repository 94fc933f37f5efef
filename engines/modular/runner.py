"""The ``max`` and ``mojo`` targets of generated skills: the skill's model, converted once per
input signature to skillmill's IR (``torch.export``, dynamic batch and sequence) and optimised,
runs as a compiled MAX graph (``run_max``) or on the executor with Mojo kernels (``run_mojo``).

When it cannot, the runner raises ``BackendUnavailable`` with the reason (the op with no MAX
lowering, the compiler's message, the export failure) and the skill falls back to the next
target.  The first run of each conversion is checked against PyTorch eager on the same inputs
(``parity.run_proven``, float32 tolerance); one that disagrees is never used.

Before any compile the target reads its verdict in the support table (registry/support/<target>.yaml,
``skillmill.registry.support``): a model type its coverage sweep failed is declined with the
sweep's reason, as the cpu target does with the native sweep's; ``SKILLMILL_MAX=all``
(``SKILLMILL_MOJO=all``) tries it anyway.  A type the sweep has not measured is tried.

A MAX graph or Mojo module costs a compile the first time (MAX: about a minute of CPU; cached
on disk after), so ``device="auto"`` uses these targets only when asked: ``device="max"`` /
``"mojo"``, ``USE_MOJO_MAX_TARGET=1``, or ``skill.process_with_mojo_max(...)``.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np
import torch

from skillmill.registry import support

from skillmill.runtime.errors import BackendUnavailable
from skillmill.engines import BackendOutput, parity

INSTALL_HINT = "pip install 'skillmill[modular]' (max==26.7.0)"


def _check_request(skill: Any, target: str) -> None:
    asked, how = skill.modular_requested() if hasattr(skill, "modular_requested") else (True, "")
    if not asked:
        raise BackendUnavailable(target, f"{target} is used when asked for (device='{target}', "
                                 "USE_MOJO_MAX_TARGET=1 or process_with_mojo_max()): its first "
                                 "compile per model takes about a minute")  # fmt: skip


def _check_verdict(skill: Any, target: str) -> None:
    """Decline a model type ``target``'s coverage sweep failed, before paying for a compile."""
    switch = f"SKILLMILL_{target.upper()}"
    if os.environ.get(switch, "").strip().lower() == "all":
        return
    verdict = support.verdict(skill.model_type, target, "float32")
    if verdict not in (None, "pass"):
        raise BackendUnavailable(target, f"not used for '{skill.model_type}', the {target} coverage "
                                 f"sweep failed it ({support.name(target)}): {verdict}; "
                                 f"{switch}=all tries it anyway")  # fmt: skip


class _Prepared:
    """A compiled model for one signature, and the PyTorch output layout it reproduces."""

    def __init__(self, model: Any, reference: dict[str, torch.Tensor], device: str):
        self.model = model
        self.names = list(reference)
        self.dtypes = {k: v.dtype for k, v in reference.items()}
        self.device = device

    def run(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        results = self.model.run({k: v.numpy() for k, v in tensors.items()})
        return {name: torch.from_numpy(np.array(results[name])).to(self.dtypes[name])
                for name in self.names if name in results}  # fmt: skip


def _prepare(skill: Any, tensors: dict[str, torch.Tensor], target: str, reference: dict) -> _Prepared:
    """Compile the shared IR for this signature for MAX or the Mojo kernels."""
    graph, _ = parity.ir_graph(skill, tensors)
    missing = [name for name in reference if name not in graph.outputs]
    if missing:  # found before paying for a compile
        raise parity.Refused(f"the converted graph lacks the outputs {', '.join(missing)}")
    if target == "max":
        from .max_model import MaxModel

        device = skill.device_request.split(":", 1)[1] if skill.device_request.startswith("max:") else "auto"
        model = MaxModel.from_graph(graph, device)
        return _Prepared(model, reference, f"max:{model.target}")
    from .mojo_model import MojoModel

    return _Prepared(MojoModel.from_graph(graph), reference, "mojo:cpu")


def _run(skill: Any, batch: dict[str, Any], target: str) -> BackendOutput:
    _check_request(skill, target)
    why = parity.float32_only(skill)
    if why:
        raise BackendUnavailable(target, why)
    _check_verdict(skill, target)
    return parity.run_converted(skill, target, "float32", batch,
                                lambda tensors, reference: _prepare(skill, tensors, target, reference))  # fmt: skip


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

"""The ``cpu`` target: skillmill's native executor (``skillmill.ir``) when the model converts,
PyTorch eager otherwise, with the reason in the result.

The model is converted once per skill and input signature (names, dtypes, ranks) with
``torch.export``; batch and sequence dims stay dynamic, so a new batch size or length reuses the
conversion.  The first run of a conversion is checked against PyTorch eager on the same inputs
(``parity.run_proven``, float32 tolerance); a conversion that disagrees is never used.

What is tried is data, not code: the support table (registry/support/native.yaml, written by
``generate-skills coverage --backend native``, read through ``skillmill.registry.support``) holds
each model type's result in the native coverage sweep, and only the types that passed are
converted, unless the sweep also timed the type slower than PyTorch eager (``native_ms`` >
``torch_ms``): then PyTorch eager runs, and the result says so with both figures.  ``SKILLMILL_NATIVE=0`` (or ``load_skill(..., native=False)``)
turns the native path off; ``SKILLMILL_NATIVE=all`` (or ``native="all"``) tries every model.

``quantize="int8"`` / ``"q4_0"`` / ``"q8_0"`` (the skill's precision) runs the same conversion
with its Linear weights quantized (``ir/passes/quantize.py``), proven against PyTorch float32 at
the scheme's tolerance; a model with no Linear layer to quantize falls back with that reason.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from skillmill.registry import support
from skillmill.runtime.native_switch import ENV_SWITCH, OFF_VALUES, native_mode  # noqa: F401
from skillmill.runtime.precision import QUANTIZED

from skillmill.engines import BackendOutput, parity
from skillmill.engines.pytorch import runner as torch_runner

ENGINE = "native"  # its name in the support table
PREFIX = "native executor"


def skip_reason(skill: Any, tensors: dict[str, torch.Tensor], batch: dict[str, Any]) -> str | None:
    """Why the native executor is not tried for this skill and batch, or None to try it."""
    mode, source = native_mode(skill)
    if mode == "off":
        return f"{PREFIX} off ({source})"
    if len(tensors) != len(batch):
        others = sorted(set(batch) - set(tensors))
        return f"{PREFIX}: takes tensors only; got non-tensor inputs {', '.join(others)}"
    why = parity.float32_model(skill) if skill.precision in QUANTIZED else parity.float32_only(skill)
    if why:
        return f"{PREFIX}: {why}"
    if mode == "all":
        return None
    verdict = support.verdict(skill.model_type, ENGINE, "float32")
    if verdict is None:
        return (f"{PREFIX}: model type '{skill.model_type}' is not in the native coverage sweep "
                f"({support.name(ENGINE)}); {ENV_SWITCH}=all tries it anyway")  # fmt: skip
    if verdict != "pass":
        return f"{PREFIX}: not used for '{skill.model_type}', the native coverage sweep failed it: {verdict}"
    slower = support.slower_reason(skill.model_type, ENGINE, "float32")
    if slower and skill.precision not in QUANTIZED:  # quantized weights are asked for, not a speed bet
        return f"{PREFIX}: not used for '{skill.model_type}', slower than PyTorch eager: {slower}; {ENV_SWITCH}=all runs it anyway"
    return None


class _NativePrepared:
    """A conversion on the native executor and the PyTorch output layout it reproduces."""

    device = "cpu"

    def __init__(self, model: Any, reference: dict[str, torch.Tensor]):
        self.model = model  # skillmill.ir.executor.NativeModel
        self.names = list(reference)  # flatten_outputs order
        self.dtypes = {name: value.dtype for name, value in reference.items()}

    def run(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        results = self.model.run({name: t.numpy() for name, t in tensors.items()})
        outputs = {}
        for name in self.names:
            if name not in results:
                continue  # the parity check names what is missing
            array = results[name]
            # The executor may hand back views of its reused buffers; a result must outlive the run.
            array = array if array.flags.owndata and array.flags.c_contiguous else np.array(array)
            outputs[name] = torch.from_numpy(array).to(self.dtypes[name])
        return outputs


def _prepare(skill: Any, tensors: dict[str, torch.Tensor], reference: dict) -> _NativePrepared:
    from skillmill.ir.errors import ConversionError, UnsupportedOp
    from skillmill.ir.executor import NativeModel

    graph, optimization = parity.ir_graph(skill, tensors)
    if skill.precision in QUANTIZED:
        from skillmill.ir.passes.quantize import quantize_graph

        graph, quantization = quantize_graph(graph, skill.precision)
        optimization = {**optimization, "optimizations_applied": graph.metadata["optimizations_applied"],
                        "quantization": quantization.as_dict()}  # fmt: skip
    try:
        model = NativeModel(graph, optimization)
    except UnsupportedOp:
        raise
    except Exception as exc:
        raise ConversionError(f"could not prepare {graph.name} for execution: {exc}") from exc
    return _NativePrepared(model, reference)


def run(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    """The native executor if it can run this skill's model, else PyTorch eager on the CPU."""
    tensors = {name: v for name, v in batch.items() if isinstance(v, torch.Tensor)}
    reason = skip_reason(skill, tensors, batch)
    if reason is None:
        try:
            outputs, prepared, proof = parity.run_proven(
                skill, PREFIX, skill.precision, tensors, lambda reference: _prepare(skill, tensors, reference)
            )
            return BackendOutput(outputs, "cpu", engine="native", precision=skill.precision, parity=proof)
        except parity.EngineDeclined as exc:
            reason = exc.reason
    ran = torch_runner.run(skill, batch, device="cpu")
    ran.engine_fallback = "; ".join(filter(None, [f"{reason}; ran PyTorch eager", ran.engine_fallback]))
    return ran

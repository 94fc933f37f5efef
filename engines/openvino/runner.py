"""Intel OpenVINO: convert the torch module once per input signature (``openvino.convert_model``),
compile for the CPU at the skill's precision, prove the first run against PyTorch (``parity``).

OpenVINO's CPU plugin picks bf16 by itself on CPUs with AVX512_BF16 or AMX, so the precision is
always stated (``INFERENCE_PRECISION_HINT``) and read back from the compiled model: a model that
compiled at another precision than the one asked for is declined, never run silently."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from skillmill.runtime.errors import BackendUnavailable
from skillmill.engines import BackendOutput, parity

ENGINE = "openvino"
# skillmill's precision names -> OpenVINO's element types, and back.
HINTS = {"float32": "f32", "bf16": "bf16"}
COMPILED = {hint: name for name, hint in HINTS.items()}  # another element type keeps its OpenVINO name


def compiled_precision(compiled: Any) -> str:
    """The precision a compiled model computes at, in skillmill's names ("float32", "bf16")."""
    element = compiled.get_property("INFERENCE_PRECISION_HINT")
    name = getattr(element, "get_type_name", lambda: str(element))()
    return COMPILED.get(name, name)


class _Compiled:
    def __init__(self, compiled: Any, reference: dict[str, torch.Tensor]):
        self.compiled = compiled
        self.names = list(reference)
        self.device = "openvino:CPU"

    def run(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        result = self.compiled({k: v.numpy() for k, v in tensors.items()})
        values = [torch.from_numpy(result[out].copy()) for out in self.compiled.outputs]
        if len(values) != len(self.names):
            raise parity.Refused(f"the converted model has {len(values)} outputs, PyTorch {len(self.names)}")
        return dict(zip(self.names, values))


def _compile(skill: Any, tensors: dict[str, torch.Tensor], reference: dict) -> _Compiled:
    import openvino

    precision = skill.precision
    # Converting traces the model; models that sample inside forward must not see a different
    # random stream because a backend was tried first.
    with torch.random.fork_rng(devices=[]):
        converted = openvino.convert_model(skill.model, example_input=dict(tensors))
    core = openvino.Core()
    compiled = core.compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": HINTS[precision]})
    got = compiled_precision(compiled)
    if got != precision:
        capabilities = ", ".join(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        raise parity.Refused(f"the CPU plugin compiled at {got} when {precision} was asked "
                             f"(this CPU's OpenVINO capabilities: {capabilities})")  # fmt: skip
    return _Compiled(compiled, reference)


def run(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    if importlib.util.find_spec("openvino") is None:
        raise BackendUnavailable(ENGINE, "Python package 'openvino' not installed")
    if skill.precision not in HINTS:  # quantized weights: NNCF's compression is not wired in yet
        raise BackendUnavailable(ENGINE, f"runs {', '.join(HINTS)}; {skill.precision} was asked "
                                 f"({skill.precision_source})")  # fmt: skip
    return parity.run_converted(skill, ENGINE, skill.precision, batch,
                                lambda tensors, reference: _compile(skill, tensors, reference))  # fmt: skip

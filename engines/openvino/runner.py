"""Intel OpenVINO: convert the torch module once per input signature (``openvino.convert_model``),
compile for the CPU at the skill's precision, prove the first run against PyTorch (``parity``).

OpenVINO's CPU plugin picks bf16 by itself on CPUs with AVX512_BF16 or AMX, so the precision is
always stated (``INFERENCE_PRECISION_HINT``) and read back from the compiled model: a model that
compiled at another precision than the one asked for is declined, never run silently."""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

import torch

from skillmill.runtime.errors import BackendUnavailable
from skillmill.runtime.outputs import flatten_outputs
from skillmill.engines import BackendOutput, parity
from skillmill.engines.experts import experts_as

ENGINE = "openvino"
# skillmill's precision names -> OpenVINO's element types, and back.
HINTS = {"float32": "f32", "bf16": "bf16"}
COMPILED = {hint: name for name, hint in HINTS.items()}  # another element type keeps its OpenVINO name


def compiled_precision(compiled: Any) -> str:
    """The precision a compiled model computes at, in skillmill's names ("float32", "bf16")."""
    element = compiled.get_property("INFERENCE_PRECISION_HINT")
    name = getattr(element, "get_type_name", lambda: str(element))()
    return COMPILED.get(name, name)


class TensorsOut(torch.nn.Module):
    """What ``convert_model`` traces: the model called by input name, answering with the flat
    tuple of tensors skills name (``flatten_outputs``).  TorchScript's tracer cannot type a
    ModelOutput that holds a cache object or None, which failed every decoder, encoder-decoder
    and two-tower model; a tuple of tensors it always can.  The KV cache is turned off where the
    model has the switch: skills never return it (``flatten_outputs`` leaves it out), and its
    growing-from-empty concatenation is what OpenVINO's frontend could not convert in decoders."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, list(names)
        accepted = inspect.signature(model.forward).parameters
        self.switches = {"use_cache": False} if "use_cache" in accepted and "use_cache" not in names else {}

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(flatten_outputs(self.model(**dict(zip(self.names, args)), **self.switches)).values())


class Converted:
    """A model compiled for the CPU plugin, fed by input name, answering in flatten_outputs order."""

    def __init__(self, compiled: Any, names: list[str]):
        self.compiled, self.names = compiled, list(names)

    def __call__(self, tensors: dict[str, torch.Tensor]) -> list[Any]:
        result = self.compiled([tensors[name].numpy() for name in self.names])
        return [result[out] for out in self.compiled.outputs]


class ConversionFailed(RuntimeError):
    """Neither OpenVINO frontend converted the model; the message names what each stopped at."""

    def __init__(self, traced: BaseException, exported: BaseException):
        super().__init__(f"TorchScript: {failure_summary(traced)}; torch.export: {failure_summary(exported)}")


def convert(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> Any:
    """The OpenVINO model: TorchScript tracing first (it converts most models, and what passes
    there stays as measured), else the ``torch.export`` program (``exported_program``).
    Converting runs the model; models that sample inside forward must not see a different
    random stream because a backend was tried first."""
    import openvino

    with torch.random.fork_rng(devices=[]), experts_as(model, "batched_mm"):
        try:
            return openvino.convert_model(TensorsOut(model, list(tensors)), example_input=tuple(tensors.values()))
        except Exception as traced:  # noqa: BLE001 — the export path is the second chance
            try:
                return exported_program(model, tensors)
            except Exception as exported:  # noqa: BLE001
                raise ConversionFailed(traced, exported) from exported


def exported_program(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> Any:
    """The model converted from the ``torch.export`` program the native executor and MAX lower
    (``ir.frontends.pytorch.export_model``: the same patches, eager attention where it agrees,
    ``draft_export`` past data-dependent branches), which OpenVINO's FX frontend takes where the
    tracer fails: Python lists and constants the tracer cannot type (SequenceMark,
    prim::Constant, prim::ListUnpack), or models it cannot trace at all.  Batch and sequence
    stay dynamic where they can; else fewer dims, then static shapes, which the runner can
    take since it converts once per input signature."""
    import openvino

    from skillmill.ir.frontends.pytorch import dims_ladder, eager_attention_agrees, export_model

    wrapper, eager = TensorsOut(model, list(tensors)), eager_attention_agrees(model, tensors)
    ladder = dims_ladder(tensors)
    for attempt, dims in enumerate(ladder):
        try:
            program = export_model(wrapper, tensors, dims, type(model).__name__, eager_attention=eager,
                                   positional=True, decompose=False)  # fmt: skip
            return openvino.convert_model(program)
        except Exception:
            if attempt == len(ladder) - 1:
                raise
    raise AssertionError("unreachable: the ladder always has a rung")


def failure_summary(exc: BaseException) -> str:
    """The reason in a line: OpenVINO's frontend ends a long message with a summary of the ops
    it had no rule for or failed on; those names are what a cluster of failures has in common."""
    if isinstance(exc, ConversionFailed):
        return str(exc)
    message = str(exc)
    if "Summary:" in message:
        found = []
        for line in message.split("Summary:", 1)[1].splitlines():
            line = line.strip().lstrip("-").strip()
            for prefix, label in (("No conversion rule found for operations:", "no rule for"),
                                  ("Conversion is failed for:", "could not convert")):  # fmt: skip
                if line.startswith(prefix):
                    found.append(f"{label} {line[len(prefix):].strip()}")
        if found:
            return "OpenVINO " + "; ".join(found)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


def compile_for_cpu(converted: Any, names: list[str], precision: str) -> tuple[Converted, Any]:
    """(the compiled model, the Core that compiled it) at ``precision``, stated, never chosen."""
    import openvino

    core = openvino.Core()
    compiled = core.compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": HINTS[precision]})
    return Converted(compiled, names), core


class _Compiled:
    def __init__(self, converted: Converted, reference: dict[str, torch.Tensor]):
        self.converted = converted
        self.names = list(reference)
        self.device = "openvino:CPU"

    @property
    def compiled(self) -> Any:
        """OpenVINO's compiled model (its properties say what it computes at)."""
        return self.converted.compiled

    def run(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        values = [torch.from_numpy(value.copy()) for value in self.converted(tensors)]
        if len(values) != len(self.names):
            raise parity.Refused(f"the converted model has {len(values)} outputs, PyTorch {len(self.names)}")
        return dict(zip(self.names, values))


def _compile(skill: Any, tensors: dict[str, torch.Tensor], reference: dict) -> _Compiled:
    precision = skill.precision
    converted, core = compile_for_cpu(convert(skill.model, tensors), list(tensors), precision)
    got = compiled_precision(converted.compiled)
    if got != precision:
        capabilities = ", ".join(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        raise parity.Refused(f"the CPU plugin compiled at {got} when {precision} was asked "
                             f"(this CPU's OpenVINO capabilities: {capabilities})")  # fmt: skip
    return _Compiled(converted, reference)


def run(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    if importlib.util.find_spec("openvino") is None:
        raise BackendUnavailable(ENGINE, "Python package 'openvino' not installed")
    if skill.precision not in HINTS:  # quantized weights: NNCF's compression is not wired in yet
        raise BackendUnavailable(ENGINE, f"runs {', '.join(HINTS)}; {skill.precision} was asked "
                                 f"({skill.precision_source})")  # fmt: skip
    return parity.run_converted(skill, ENGINE, skill.precision, batch,
                                lambda tensors, reference: _compile(skill, tensors, reference))  # fmt: skip

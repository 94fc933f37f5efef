"""The one way an engine earns the right to run a model: convert once per input signature, run,
and prove the first run against PyTorch eager float32 within the precision's tolerance.

Every engine other than PyTorch eager at float32 (the native executor, MAX, Mojo, OpenVINO,
PyTorch at bf16, and the engines to come) goes through ``run_proven``.  Per skill, engine,
precision and input signature it keeps either the prepared model and the parity it proved, or
the reason it cannot run; either verdict is paid for once.  A reason is raised as
``EngineDeclined`` and the runner falls back (PyTorch eager, or the next target) with it.

The model's IR is shared the same way (``ir_graph``): an engine asked for after another one
reuses the export instead of paying ``torch.export`` again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch

from skillmill.ir.numerics import relative_error

from skillmill.runtime.errors import BackendUnavailable
from skillmill.runtime.outputs import flatten_outputs
from skillmill.runtime.precision import PARITY_TOLERANCE, QUANTIZED, STATIC_QUANTIZED

from . import BackendOutput

REFERENCE = "PyTorch eager float32"


class Refused(ValueError):
    """A check's own verdict: its message already says what is wrong, in words."""

    plain_message = True


class EngineDeclined(Exception):
    """An engine cannot run this model, at this precision, for this input signature."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Parity:
    """What an engine's first run proved: its worst output's error against PyTorch eager float32."""

    engine: str
    precision: str
    error: float  # max over outputs of max|engine - torch| / max|torch|
    tolerance: float
    worst_output: str

    def summary(self) -> dict[str, Any]:
        return {"engine": self.engine, "precision": self.precision, "against": REFERENCE,
                "relative_error": self.error, "tolerance": self.tolerance,
                "worst_output": self.worst_output}  # fmt: skip


class Prepared(Protocol):
    """A model converted for one engine and input signature."""

    device: str  # where it runs, as results report it ("cpu", "openvino:CPU", "max:cpu")

    def run(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Flattened outputs named as PyTorch names them (``outputs.flatten_outputs``)."""


def parameter_dtypes(model: torch.nn.Module) -> frozenset[str]:
    """The dtypes a model's parameters hold ("float32", "bfloat16", ...).  Scanning every
    parameter costs a noticeable share of a small call, so the answer is kept on the model,
    keyed by what a cast would change (the first parameter's dtype)."""
    first = next(model.parameters(), None)
    key = None if first is None else first.dtype
    cached = model.__dict__.get("_skillmill_parameter_dtypes")
    if cached is None or cached[0] != key:
        dtypes = frozenset(str(p.dtype).replace("torch.", "") for p in model.parameters())
        cached = (key, dtypes or frozenset({"float32"}))
        model.__dict__["_skillmill_parameter_dtypes"] = cached
    return cached[1]


def float32_model(skill: Any) -> str | None:
    """Why a converting engine cannot take this skill's model — it holds other dtypes than
    float32 — or None."""
    dtypes = parameter_dtypes(skill.model)
    if dtypes - {"float32"}:
        return f"runs float32 models; this one holds {', '.join(sorted(dtypes))}"
    return None


def float32_only(skill: Any) -> str | None:
    """Why an engine that computes at float32 only (MAX, Mojo, ONNX Runtime) cannot run this
    skill — its model holds other dtypes, or another precision was asked — or None."""
    why = float32_model(skill)
    if why:
        return why
    if skill.precision != "float32":
        return f"computes at float32 only; {skill.precision} was asked ({skill.precision_source})"
    return None


def signature(batch: dict[str, Any]) -> tuple:
    """What a conversion depends on: input names, dtypes and ranks (sizes stay dynamic), and
    the value of any non-tensor switch."""
    return tuple(sorted(
        (name, str(v.dtype), v.dim()) if isinstance(v, torch.Tensor) else (name, type(v).__name__, repr(v)[:80])
        for name, v in batch.items()
    ))  # fmt: skip


def describe(exc: BaseException, limit: int = 400) -> str:
    """A failure in one line: skillmill's own errors say it in words; others keep their type."""
    message = " ".join(str(exc).split())[:limit]
    from skillmill.ir.errors import IRError

    if isinstance(exc, IRError) or getattr(exc, "plain_message", False):
        return message
    return f"{type(exc).__name__}: {message}"


def model_outputs(model: torch.nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """PyTorch eager, flattened by output name.  Models that sample inside forward must not see
    their random stream moved by a check."""
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        return flatten_outputs(model(**batch))


def reference_outputs(skill: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """PyTorch eager float32 on the CPU: what every engine is compared with."""
    return model_outputs(skill.model, batch)


def _reference_for(skill: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``reference_outputs``, computed once for a batch that several engines try in turn (one
    declines, the next proves itself on the same tensors).  The batch's tensors are held with
    the answer, so their ids stay theirs; ``_version`` notices an in-place change."""
    key = tuple(sorted((name, id(v), v._version) if isinstance(v, torch.Tensor) else (name, repr(v))
                       for name, v in batch.items()))  # fmt: skip
    held = skill.__dict__.get("_last_reference")
    if held is None or held[0] != key:
        held = (key, tuple(batch.values()), reference_outputs(skill, batch))
        skill.__dict__["_last_reference"] = held
    return held[2]


def real_positions(precision: str, batch: dict[str, Any] | None) -> torch.Tensor | None:
    """The [batch, seq] mask of real tokens a quantized engine is compared on, or None (compare
    everything).  A padded position's hidden state means nothing, and quantized activations
    move it a long way: MiniLM's int8 largest error sits at a padded token (5.5 against -0.65)
    while real tokens stay within 3.5% of the largest value."""
    if (precision not in QUANTIZED and precision not in STATIC_QUANTIZED) or not batch:
        return None
    mask = batch.get("attention_mask")
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or not bool(mask.any()):
        return None
    return mask.bool()


def check_parity(engine: str, precision: str, outputs: dict[str, torch.Tensor],
                 reference: dict[str, torch.Tensor], batch: dict[str, Any] | None = None) -> Parity:  # fmt: skip
    """Compare every reference output by name; raise ``Refused`` naming the first that is
    missing, reshaped or further than the precision's tolerance.  Quantized precisions are
    compared on real tokens only (``real_positions``)."""
    tolerance = PARITY_TOLERANCE[precision]
    real = real_positions(precision, batch)
    worst, worst_name = 0.0, ""
    for name, want in reference.items():
        got = outputs.get(name)
        if got is None:
            raise Refused(f"{engine} gave no output '{name}' (it gave: {', '.join(outputs) or 'none'})")
        if tuple(got.shape) != tuple(want.shape):
            raise Refused(f"{engine} output '{name}' has shape {tuple(got.shape)}, "
                             f"{REFERENCE} {tuple(want.shape)}")  # fmt: skip
        if real is not None and tuple(want.shape[:2]) == tuple(real.shape):
            got, want = got[real], want[real]
        error = relative_error(as_numpy(got), as_numpy(want))
        if not error <= tolerance:
            raise Refused(f"{engine} output '{name}' differs from {REFERENCE} (relative error "
                             f"{error:.2e} > tolerance {tolerance:g} at {precision})")  # fmt: skip
        if error >= worst:
            worst, worst_name = error, name
    return Parity(engine, precision, worst, tolerance, worst_name)


def as_numpy(tensor: torch.Tensor):
    """What ``relative_error`` takes: float16/bf16 widened to float32 (numpy has no bf16)."""
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor).numpy()


def run_proven(skill: Any, engine: str, precision: str, batch: dict[str, Any],
               prepare: Callable[[dict[str, torch.Tensor]], Prepared],
               ) -> tuple[dict[str, torch.Tensor], Prepared, Parity]:  # fmt: skip
    """(outputs, prepared, parity) from ``engine`` at ``precision``, or ``EngineDeclined``.

    The first call per signature runs PyTorch eager float32 for the reference, prepares the
    engine (``prepare(reference)``: the reference gives the output names, order and dtypes to
    reproduce), runs and proves it; the verdict is kept on the skill."""
    cache = skill.__dict__.setdefault("_proven_engines", {})
    key = (engine, precision, signature(batch))
    entry = cache.get(key)
    if entry is None:
        try:
            reference = _reference_for(skill, batch)
        except Exception as exc:  # noqa: BLE001 — these inputs, not the engine: keep no verdict
            raise EngineDeclined(f"{engine}: not tried, PyTorch eager rejects these inputs: {describe(exc)}") from exc
        try:
            prepared = prepare(reference)
            outputs = prepared.run(batch)
            parity = check_parity(engine, precision, outputs, reference, batch)
        except Exception as exc:  # noqa: BLE001 — any failure is a verdict, with its reason
            cache[key] = f"{engine}: cannot run {skill.model_class_name} at {precision}: {describe(exc)}"
            raise EngineDeclined(cache[key]) from exc
        cache[key] = (prepared, parity)
        return outputs, prepared, parity
    if isinstance(entry, str):
        raise EngineDeclined(entry)
    prepared, parity = entry
    try:
        return prepared.run(batch), prepared, parity
    except Exception as exc:  # noqa: BLE001 — e.g. a shape the conversion fixed
        raise EngineDeclined(f"{engine}: run failed for {skill.model_class_name}: {describe(exc)}") from exc



def run_converted(skill: Any, target: str, precision: str, batch: dict[str, Any],
                  prepare: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], Prepared],
                  ) -> BackendOutput:  # fmt: skip
    """The runner of an engine that converts the model (OpenVINO, ONNX Runtime, MAX, Mojo):
    ``prepare(tensors, reference)`` once per signature, proven through ``run_proven``; a
    declined verdict becomes ``BackendUnavailable``, so the skill falls back with the reason.
    A converted graph takes tensors only: a Python switch in the batch (None is an input left
    out) is refused, since dropping it would change the model."""
    tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    switches = sorted(k for k, v in batch.items() if not isinstance(v, torch.Tensor) and v is not None)
    if switches:
        raise BackendUnavailable(target, f"non-tensor arguments ({', '.join(switches)}) cannot "
                                 "reach a converted model")  # fmt: skip
    try:
        outputs, prepared, proof = run_proven(skill, target, precision, tensors,
                                              lambda reference: prepare(tensors, reference))  # fmt: skip
    except EngineDeclined as exc:
        raise BackendUnavailable(target, exc.reason.removeprefix(f"{target}: ")) from exc
    return BackendOutput(outputs, prepared.device, engine=target, precision=precision, parity=proof)

def ir_graph(skill: Any, tensors: dict[str, torch.Tensor]) -> tuple[Any, dict[str, Any]]:
    """The skill's model as optimised IR for this input signature (torch.export, dynamic batch
    and sequence), converted once and shared by every engine that runs the IR."""
    cache = skill.__dict__.setdefault("_ir_graphs", {})
    key = signature(tensors)
    entry = cache.get(key)
    if entry is None:
        from skillmill.ir.frontends.pytorch import convert_from_pytorch
        from skillmill.ir.passes import optimize_graph

        try:
            entry = optimize_graph(convert_from_pytorch(skill.model, tensors))
        except Exception as exc:  # noqa: BLE001 — the reason is the verdict
            entry = f"IR conversion failed: {describe(exc)}"
        cache[key] = entry
    if isinstance(entry, str):
        raise Refused(entry)
    return entry


def verdicts(skill: Any, engine: str) -> dict[tuple, Any]:
    """{(precision, signature): prepared model or the reason it cannot run} that ``engine``
    holds for this skill: what ``run_proven`` decided, for reports and tests."""
    cache = skill.__dict__.get("_proven_engines", {})
    return {key[1:]: (entry[0] if isinstance(entry, tuple) else entry)
            for key, entry in cache.items() if key[0] == engine}  # fmt: skip

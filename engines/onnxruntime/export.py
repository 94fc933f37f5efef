"""A skill's model as an ``.onnx`` file, and the proof that ONNX Runtime computes what PyTorch does.

``export_onnx`` runs ``torch.onnx.export`` (the TorchScript exporter, ``dynamo=False``) on a
positional wrapper: the exporter passes inputs by position, the model takes them by name.  The
ONNX outputs are the model's PyTorch outputs flattened by ``runtime.outputs.flatten_outputs``, in
that order and under those names, so they match what a skill returns and what
``engines/parity.py`` compares.  Dim 0 of every input and output is ``batch``; dim 1 of every
2-D integer input (input_ids, attention_mask, ...), and of a higher-rank integer input as long
as they are (bbox), is ``sequence``, as are the output dims that follow it (found by running the
model once more with one token fewer).

``validate`` runs ONNX Runtime and PyTorch eager on several batches (as HuggingFace optimum
validates an export: other batch sizes and sequence lengths than the traced one, since a trace
can specialise on a shape) and compares every output by name with ``ir.numerics.relative_error``
against the float32 parity tolerance.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from skillmill.ir.numerics import relative_error
from skillmill.runtime.outputs import flatten_outputs
from skillmill.runtime.precision import PARITY_TOLERANCE

from ..experts import experts_as
from ..parity import Refused, as_numpy, model_outputs

DEFAULT_OPSET = 17
BATCH, SEQUENCE = "batch", "sequence"
PROVIDER = "CPUExecutionProvider"


class OnnxExportError(ValueError):
    """An export, or the ONNX file it wrote, cannot be used; the message says what to change."""

    plain_message = True  # engines.parity.describe keeps the words as they are


@dataclass
class ExportReport:
    """What ``export_onnx`` wrote."""

    path: Path
    opset: int
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    seconds: float
    size_bytes: int
    # The tracer's warnings (first lines, each once): where the trace fixed a value that may
    # depend on the input's shape; what ``validate`` on other shapes is there to catch.
    trace_warnings: list[str] = field(default_factory=list)


@dataclass
class ValidationRow:
    """One output of one batch: ONNX Runtime against PyTorch eager float32."""

    shape: str  # the batch's first input and its shape, "input_ids 2x39"
    output: str
    error: float  # max|onnxruntime - torch| / max|torch|
    tolerance: float
    passed: bool
    note: str = ""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first non-empty line, with its type when the message alone is vague."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0][:limit] if lines else "(no message)"
    return f"{type(exc).__name__}: {text}"


def is_sequence_input(tensor: torch.Tensor) -> bool:
    """input_ids-like: 2-D integer (or boolean) [batch, sequence]."""
    return tensor.dim() == 2 and not tensor.is_floating_point() and not tensor.is_complex()


class _Positional(torch.nn.Module):
    """The model with its inputs in a fixed order and its flattened outputs as a tuple."""

    def __init__(self, model: torch.nn.Module, input_names: list[str], output_names: list[str]):
        super().__init__()
        self.model = model
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)
        # torch.onnx.export traces in eval mode and then restores the module it was given to
        # the mode that module had: a fresh wrapper is in training mode, and restoring it would
        # turn the skill's model to training mode too (dropout on in every later call).
        self.train(model.training)

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        flat = flatten_outputs(self.model(**dict(zip(self.input_names, args))))
        return tuple(flat[name] for name in self.output_names)


def _sequences(batch: dict[str, torch.Tensor]) -> set[int]:
    """The sequence lengths of the batch's input_ids-like inputs."""
    return {t.shape[1] for t in batch.values() if is_sequence_input(t)}


def carries_sequence(tensor: torch.Tensor, sequences: set[int]) -> bool:
    """An input whose dim 1 is the sequence: input_ids-like, or an integer input of higher rank
    laid out [batch, sequence, ...] as long as the sequence (LayoutLM's bbox [batch, seq, 4])."""
    if is_sequence_input(tensor):
        return True
    return (tensor.dim() > 2 and not tensor.is_floating_point() and not tensor.is_complex()
            and tensor.shape[1] in sequences)  # fmt: skip


def _one_token_fewer(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch with every sequence input one column shorter (one longer if it has one)."""
    changed = {}
    sequences = _sequences(batch)
    for name, tensor in batch.items():
        if not carries_sequence(tensor, sequences):
            changed[name] = tensor
        elif tensor.shape[1] > 1:
            changed[name] = tensor[:, :-1]
        else:
            changed[name] = torch.cat([tensor, tensor[:, -1:]], dim=1)
    return changed


def dynamic_axes(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                 reference: dict[str, torch.Tensor]) -> dict[str, dict[int, str]]:  # fmt: skip
    """{name: {dim: "batch" | "sequence"}} for every input and output."""
    axes: dict[str, dict[int, str]] = {}
    sequences = _sequences(batch)
    for name, tensor in batch.items():
        axes[name] = {0: BATCH} if tensor.dim() else {}
        if carries_sequence(tensor, sequences):
            axes[name][1] = SEQUENCE
    probe: dict[str, torch.Tensor] = {}
    if sequences:
        try:  # the output dims that move with the sequence are the ones that carry it
            probe = model_outputs(model, _one_token_fewer(batch))
        except Exception:  # noqa: BLE001 — e.g. a model that needs a multiple of a block size
            probe = {}
    for name, tensor in reference.items():
        axes[name] = {0: BATCH} if tensor.dim() else {}
        other = probe.get(name)
        for dim in range(1, tensor.dim()):
            if other is not None and other.dim() == tensor.dim():
                carries = other.shape[dim] != tensor.shape[dim]
            else:  # no probe: a dim as long as the sequence is taken to be it
                carries = tensor.shape[dim] in sequences
            if carries:
                axes[name][dim] = SEQUENCE
    return axes


_REGISTERED: list[str] = []


def register_symbolics() -> list[str]:
    """Teach the TorchScript exporter the aten ops transformers' models use that it has no
    symbolic for (once per process); returns their names.

    - ``aten::diff`` (n=1; transformers' packed-sequence check in masking_utils, which Mimi's and
      Pocket TTS's codecs reach): prepend and append concatenated, then the slice from 1 minus
      the slice to -1 along ``dim`` (Xor for booleans), exactly torch's definition;
    - ``aten::_upsample_bilinear2d_aa`` / ``_upsample_bicubic2d_aa`` (SigLIP2, DINOv2 with
      registers, RF-DETR position embeddings): ONNX Resize before opset 18 has no antialias, so
      they become the plain linear / cubic Resize, which is the same function when upsampling;
      when a model downsamples, ``validate`` sees the difference and the export is a mismatch."""
    if _REGISTERED:
        return _REGISTERED
    import sys

    from torch.onnx._internal.torchscript_exporter import symbolic_helper as helper
    from torch.onnx._internal.torchscript_exporter._type_utils import JitScalarType

    def diff(g, input, n, dim, prepend, append):
        if helper._maybe_get_const(n, "i") != 1:
            return helper._unimplemented("aten::diff", "n other than 1", input)
        axis = helper._get_const(dim, "i", "dim")
        parts = [p for p in (prepend, input, append) if not helper._is_none(p)]
        if len(parts) > 1:
            input = g.op("Concat", *parts, axis_i=axis)
        upper = helper._slice_helper(g, input, axes=[axis], starts=[1], ends=[sys.maxsize])
        lower = helper._slice_helper(g, input, axes=[axis], starts=[0], ends=[-1])
        boolean = JitScalarType.from_value(input, JitScalarType.UNDEFINED) == JitScalarType.BOOL
        return g.op("Xor" if boolean else "Sub", upper, lower)

    symbolics = {
        "aten::diff": diff,
        "aten::_upsample_bilinear2d_aa": helper._interpolate_helper("upsample_bilinear2d", 4, "linear"),
        "aten::_upsample_bicubic2d_aa": helper._interpolate_helper("upsample_bicubic2d", 4, "cubic"),
    }
    for name, symbolic in symbolics.items():
        torch.onnx.register_custom_op_symbolic(name, symbolic, 11)
    _REGISTERED.extend(symbolics)
    return _REGISTERED


def export_onnx(model: torch.nn.Module, example_batch: dict[str, torch.Tensor], path: str | Path,
                opset: int = DEFAULT_OPSET, *,
                reference: dict[str, torch.Tensor] | None = None) -> ExportReport:  # fmt: skip
    """Trace ``model`` on ``example_batch`` and write it to ``path`` as ONNX at ``opset``.

    ``reference``, the model's flattened eager outputs for ``example_batch`` when the caller has
    them already (the parity check does), saves running it again.  The file appears whole or
    not at all (written beside it, then renamed).  Raises ``OnnxExportError`` for a folder that
    does not exist, inputs the model rejects, or an exporter failure (its first line: the op it
    could not export, or why)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OnnxExportError(f"cannot write {path}: the folder {path.parent} does not exist "
                              "(create it, or write the file somewhere else)")  # fmt: skip
    others = sorted(name for name, v in example_batch.items() if not isinstance(v, torch.Tensor))
    if others:
        raise OnnxExportError(f"an ONNX graph takes tensors only; the example batch also holds "
                              f"{', '.join(others)} (pass them as tensors, or leave them out)")  # fmt: skip
    name = type(model).__name__
    try:
        reference = model_outputs(model, example_batch) if reference is None else reference
    except Exception as exc:  # noqa: BLE001 — the inputs, not the exporter
        raise OnnxExportError(f"{name} rejects the example batch in PyTorch eager, so there is "
                              f"nothing to trace: {first_line(exc)}") from exc  # fmt: skip
    if not reference:
        raise OnnxExportError(
            f"{name} returned no tensors for the example batch: nothing to export"
        )
    input_names, output_names = list(example_batch), list(reference)
    axes = dynamic_axes(model, example_batch, reference)
    partial = path.with_name(f".{path.name}.partial")
    # The TorchScript exporter turns its C++ log on for every export, and it dumps the whole
    # graph when an op fails, to stdout by default; a program's stdout may be a protocol (the
    # MCP server speaks JSON on it), so the log goes to stderr.
    set_log_stream = getattr(torch._C, "_jit_set_onnx_log_output_stream", None)
    if set_log_stream is not None:
        set_log_stream("stderr")
    register_symbolics()
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.random.fork_rng(devices=[]), experts_as(model, "eager"):  # histc has no symbolic
                torch.onnx.export(_Positional(model, input_names, output_names),
                                  tuple(example_batch[n] for n in input_names), str(partial),
                                  input_names=input_names, output_names=output_names,
                                  dynamic_axes=axes, opset_version=opset, dynamo=False)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 — said in one line, with the op or the reason
            partial.unlink(missing_ok=True)
            raise OnnxExportError(f"torch.onnx.export could not export {name} at opset {opset}: "
                                  f"{first_line(exc)}") from exc  # fmt: skip
    os.replace(partial, path)
    traced = [str(w.message).splitlines()[0] for w in caught
              if issubclass(w.category, torch.jit.TracerWarning)]  # fmt: skip
    return ExportReport(path, opset, input_names, output_names, axes,
                        time.perf_counter() - start, path.stat().st_size,
                        list(dict.fromkeys(traced)))  # fmt: skip


def export_for_engine(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: str | Path,
                      reference: dict[str, torch.Tensor]) -> "ExportReport":  # fmt: skip
    """``export_onnx`` for an engine that must reproduce every PyTorch output: one the file lacks
    refuses the engine (``parity.Refused``) rather than answering with less."""
    written = export_onnx(model, tensors, path, reference=reference)
    missing = [name for name in reference if name not in written.output_names]
    if missing:
        raise Refused(f"the export lacks the outputs {', '.join(missing)}")
    return written


def open_session(path: str | Path, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU execution provider, with the same number
    of intra-op threads as torch uses; ``OnnxExportError`` naming the file when it cannot load."""
    import onnxruntime

    path = Path(path)
    if not path.is_file():
        raise OnnxExportError(f"{path} does not exist (export it first)")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3  # errors only; the exception below carries the message
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=[PROVIDER])
    except Exception as exc:  # noqa: BLE001 — a truncated, corrupt or foreign file
        raise OnnxExportError(f"{path} is not an ONNX model ONNX Runtime {onnxruntime.__version__} "
                              f"can load (truncated or corrupt? export it again): "
                              f"{first_line(exc)}") from exc  # fmt: skip


def run_session(session: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{output name: tensor} from ONNX Runtime.  Inputs the exporter pruned (the graph never
    read them) are not fed; an input the graph needs and the batch lacks is an error."""
    wanted = [i.name for i in session.get_inputs()]
    missing = [name for name in wanted if name not in batch]
    if missing:
        raise OnnxExportError(f"the ONNX model takes {', '.join(missing)}, which the batch lacks "
                              f"(it has {', '.join(batch) or 'nothing'})")  # fmt: skip
    feeds = {name: batch[name].detach().cpu().numpy() for name in wanted}
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, feeds)
    return {name: torch.from_numpy(np.asarray(value)) for name, value in zip(names, values)}


def describe_shape(batch: dict[str, torch.Tensor]) -> str:
    name, tensor = next(iter(batch.items()))
    return f"{name} {'x'.join(str(d) for d in tensor.shape)}"


def validate(path: str | Path, model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], *,
             run: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
             engine: str = "ONNX Runtime",
             fatal: tuple[type[BaseException], ...] = ()) -> list[ValidationRow]:  # fmt: skip
    """ONNX Runtime on ``path`` against PyTorch eager ``model``, one row per batch and output.

    A row fails when the output is missing, has another shape, or is further than the float32
    parity tolerance; a batch ONNX Runtime cannot run fails every one of its outputs, with why.
    Another engine of the same file (the browser sweeps: ONNX Runtime Web) passes its ``run``
    and name, and the errors that end the validation rather than fail one batch (``fatal``)."""
    if run is None:
        run = functools.partial(run_session, open_session(path))
    tolerance = PARITY_TOLERANCE["float32"]
    rows: list[ValidationRow] = []
    for batch in batches:
        shape = describe_shape(batch)
        want = model_outputs(model, batch)
        try:
            got = run(batch)
        except (OnnxExportError, *fatal):
            raise
        except Exception as exc:  # noqa: BLE001 — e.g. a dim the trace fixed
            why = f"{engine} cannot run this shape: {first_line(exc)}"
            rows += [
                ValidationRow(shape, name, float("inf"), tolerance, False, why) for name in want
            ]
            continue
        for name, expected in want.items():
            value = got.get(name)
            if value is None:
                rows.append(ValidationRow(shape, name, float("inf"), tolerance, False,
                                          "the ONNX model has no output by this name"))  # fmt: skip
                continue
            note = "" if tuple(value.shape) == tuple(expected.shape) else (
                f"shape {tuple(value.shape)}, PyTorch {tuple(expected.shape)}")  # fmt: skip
            error = relative_error(as_numpy(value), as_numpy(expected))
            rows.append(ValidationRow(shape, name, error, tolerance, error <= tolerance, note))
    return rows

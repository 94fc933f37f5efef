"""ONNX coverage over the registry (``coverage --backend onnx``): for each base model type, its
tiny random model (the same one the native, MAX and OpenVINO sweeps measure) exported by
``engines.onnxruntime.export.export_onnx`` (torch.onnx.export, dynamic batch and sequence axes)
and validated as optimum validates an export: ONNX Runtime's CPU provider against PyTorch eager
on several shapes, the traced one and others (``export.validate``), every output at the float32
tolerance.

    generate-skills coverage --backend onnx [--types bert --types gpt2] [-j 1] [--resume]

status: pass, export_failed (the exporter refused the model, or wrote a file ONNX Runtime cannot
load), mismatch (ran, but an output differs, is missing, has another shape, or a shape other
than the traced one does not run), error (anything else: the tiny model, its inputs), timeout /
crash (from the harness).  ``reason`` is one line; ``cause`` is that line with the model's own
names and numbers taken out, so failures with one cause cluster under one key.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ..constants import SHAPES, TOLERANCE
from .native import _short, base_model_types, coverage_model

# The traced shape first (SHAPES[0]), then shapes the trace never saw: another batch and
# sequence length, and a batch of one (a trace can fix either).
VALIDATION_SHAPES = (*SHAPES, (1, 5))


def check_onnx(model_type: str, shapes: tuple[tuple[int, int], ...] = VALIDATION_SHAPES) -> dict[str, Any]:
    """Export + validate one model type; never raises (the reason is in the row, with the
    seconds it took)."""
    started = time.perf_counter()
    row = _check(model_type, shapes)
    if row["status"] != "pass" and row.get("reason"):
        row["cause"] = cause_of(row["reason"])
    row["seconds"] = round(time.perf_counter() - started, 2)
    return row


def _tensors(model: Any, batch: int, seq: int, seed: int) -> dict[str, Any]:
    import torch

    from skillmill.registry.dummy_inputs import dummy_inputs

    example = dummy_inputs(model, batch_size=batch, seq_len=seq, seed=seed)
    return {k: v for k, v in example.items() if isinstance(v, torch.Tensor)}


def _check(model_type: str, shapes: tuple[tuple[int, int], ...]) -> dict[str, Any]:
    return measure_export(model_type, shapes, _onnxruntime)


def _onnxruntime(path: Path, model: Any, batches: list[dict[str, Any]], result: dict[str, Any]) -> Any:
    """ONNX Runtime's CPU provider on the exported file: its validation rows, or the failing row
    when it cannot load the file."""
    from skillmill.engines.onnxruntime import export

    result["stage"] = "load"
    try:
        export.open_session(path)
    except export.OnnxExportError as exc:
        return {**result, "status": "export_failed", "reason": _short(exc)}
    result["stage"] = "validate"
    return export.validate(path, model, batches)


# (exported file, tiny model, one batch per shape, the row so far) -> validation rows, or a
# finished failing row (the engine could not load or run the file at all)
Validator = Callable[[Path, Any, list[dict[str, Any]], dict[str, Any]], Any]


def measure_export(model_type: str, shapes: tuple[tuple[int, int], ...], validator: Validator,
                   tolerance: float = TOLERANCE) -> dict[str, Any]:  # fmt: skip
    """The row of one type on an engine that runs the ONNX export: the tiny model, its inputs at
    ``shapes``, the export (traced at the first), then ``validator`` on the file.  Shared by the
    ONNX Runtime sweep and the browser sweeps (web.py), so every engine of the file measures
    the same model, inputs and export."""
    result: dict[str, Any] = {"status": "error", "stage": "registry"}
    try:
        from skillmill.engines.onnxruntime import export

        class_name = base_model_types().get(model_type)
        if class_name is None:
            return {"status": "error", "stage": "registry", "reason": "registry has no base class"}
        result["class"] = class_name
        result["stage"] = "tiny_model"
        model = coverage_model(class_name, result)
        result["stage"] = "inputs"
        batches = [_tensors(model, b, s, seed=index) for index, (b, s) in enumerate(shapes)]
        with tempfile.TemporaryDirectory(prefix="skillmill-onnx-sweep-") as folder:
            path = Path(folder) / f"{model_type}.onnx"
            result["stage"] = "export"
            try:
                written = export.export_onnx(model, batches[0], path)
            except export.OnnxExportError as exc:
                return {**result, "status": "export_failed", "reason": _short(exc)}
            result["opset"] = written.opset
            rows = validator(path, model, batches, result)
        if isinstance(rows, dict):
            return rows
        failed = [r for r in rows if not r.passed]
        worst = max((r.error for r in rows if r.error != float("inf")), default=0.0)
        result["max_rel_err"] = float(f"{worst:.3g}")
        result["shapes"] = len(batches)
        if failed:
            first = failed[0]
            why = first.note or f"relative error {first.error:.2e} > {first.tolerance:g}"
            return {**result, "status": "mismatch", "reason": f"{first.shape}, output '{first.output}': {why}"}
        result["status"] = "pass" if worst <= tolerance else "mismatch"
        result.pop("stage")
    except Exception as exc:  # noqa: BLE001 — a coverage run records every failure
        result.update(status="error", reason=f"{type(exc).__name__}: {_short(exc)}")
    return result


_CLASS = re.compile(r"\b[A-Z][A-Za-z0-9]*(Model|Backbone|Encoder|Decoder)\b")
_NUMBER = re.compile(r"(?<![A-Za-z_])-?\d+(\.\d+)?(e-?\d+)?")


def cause_of(reason: str) -> str:
    """The reason with what differs between models taken out (class names, shapes, numbers, the
    batch it failed on), so rows that failed for one cause share one key."""
    text = re.sub(r"^[\w\s]+ \d+(x\d+)*, output '[^']*': ", "", reason)
    text = _CLASS.sub("<model>", text)
    text = re.sub(r"\(([^()]*)\)", lambda m: "(...)" if re.search(r"\d", m.group(1)) else m.group(0), text)
    text = _NUMBER.sub("N", text)
    return " ".join(text.split())[:160]


def warm_up() -> None:
    """Import transformers' lazy modules, the exporter and ONNX Runtime once in the parent, so
    forked workers start warm."""
    check_onnx("bert")

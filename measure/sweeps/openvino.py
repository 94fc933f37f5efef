"""OpenVINO coverage over the registry (``coverage --backend openvino``): for each base model
type, its tiny random model (the same one the native and MAX sweeps measure) converted with
``openvino.convert_model``, compiled for the CPU with an explicit float32 hint (read back, as
the openvino runner does), run at the sweeps' two shapes, every output compared with PyTorch
eager by ``relative_error`` at the float32 tolerance.

    generate-skills coverage --backend openvino [--types bert --types gpt2] [-j 2] [--resume]

status: pass, mismatch (ran, differs or lacks an output), export_failed (convert_model refused
the model), compile_failed, error (anything else), timeout / crash (from the harness).
"""

from __future__ import annotations

import time
from typing import Any

from skillmill.ir.numerics import relative_error

from ..constants import SHAPES, TOLERANCE
from .native import _short, _torch_outputs, base_model_types, coverage_model


def check_openvino(model_type: str, shapes: tuple[tuple[int, int], ...] = SHAPES) -> dict[str, Any]:
    """Convert + compile + run + compare one model type; never raises (the reason is in the row,
    with the seconds it took)."""
    started = time.perf_counter()
    row = _check(model_type, shapes)
    row["seconds"] = round(time.perf_counter() - started, 2)
    return row


def _check(model_type: str, shapes: tuple[tuple[int, int], ...]) -> dict[str, Any]:
    import torch

    from skillmill.registry.dummy_inputs import dummy_inputs

    result: dict[str, Any] = {"status": "error", "stage": "registry"}
    try:
        from skillmill.engines.openvino.runner import compile_for_cpu, compiled_precision, convert

        class_name = base_model_types().get(model_type)
        if class_name is None:
            return {"status": "error", "stage": "registry", "reason": "registry has no base class"}
        result["class"] = class_name
        result["stage"] = "tiny_model"
        model = coverage_model(class_name, result)
        (batch, seq), worst = shapes[0], 0.0
        result["stage"] = "inputs"
        example = dummy_inputs(model, batch_size=batch, seq_len=seq, seed=0)
        tensors = {k: v for k, v in example.items() if isinstance(v, torch.Tensor)}
        result["stage"] = "convert"
        try:
            converted = convert(model, tensors)
        except Exception as exc:  # noqa: BLE001 — the converter's own words are the reason
            return {**result, "status": "export_failed", "reason": conversion_failure(exc)}
        result["stage"] = "compile"
        try:
            compiled, _ = compile_for_cpu(converted, list(tensors), "float32")
        except Exception as exc:  # noqa: BLE001
            return {**result, "status": "compile_failed", "reason": f"{type(exc).__name__}: {_short(exc)}"}
        if compiled_precision(compiled.compiled) != "float32":
            return {**result, "status": "mismatch",
                    "reason": f"compiled at {compiled_precision(compiled.compiled)} when float32 was asked"}  # fmt: skip
        for index, (b, s) in enumerate(shapes):
            result["stage"] = f"run {b}x{s}"
            feeds = {k: v for k, v in dummy_inputs(model, batch_size=b, seq_len=s, seed=index + 1).items()
                     if isinstance(v, torch.Tensor)}  # fmt: skip
            want = _torch_outputs(model, feeds)
            try:
                got = compiled(feeds)
            except Exception as exc:
                if index == 0:
                    raise
                result["note"] = f"shape {b}x{s} not accepted: {type(exc).__name__}: {_short(exc)[:120]}"
                break
            if len(got) != len(want):
                return {**result, "status": "mismatch",
                        "reason": f"{len(got)} outputs, PyTorch has {len(want)} ({', '.join(want)})"}  # fmt: skip
            for (name, ref), value in zip(want.items(), got):
                err = relative_error(value, ref)
                if err == float("inf"):
                    why = f"shape {tuple(value.shape)} != {ref.shape}" if value.shape != ref.shape else "values differ"
                    return {**result, "status": "mismatch", "reason": f"output '{name}': {why}"}
                worst = max(worst, err)
        result["max_rel_err"] = float(f"{worst:.3g}")
        result["status"] = "pass" if worst <= TOLERANCE else "mismatch"
        if result["status"] == "mismatch":
            result["reason"] = f"relative error {worst:.2e} > {TOLERANCE:g}"
        result.pop("stage")
    except Exception as exc:  # noqa: BLE001 — a coverage run records every failure
        result.update(status="error", reason=f"{type(exc).__name__}: {_short(exc)}")
    return result


def conversion_failure(exc: BaseException) -> str:
    """The reason in a line (``engines.openvino.runner.failure_summary``)."""
    from skillmill.engines.openvino.runner import failure_summary

    return failure_summary(exc)


def warm_up() -> None:
    """Import transformers' lazy modules and OpenVINO's frontend once in the parent, so forked
    workers start warm."""
    check_openvino("bert")

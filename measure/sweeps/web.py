"""Browser coverage over the registry (``coverage --backend wasm`` and ``--backend webgpu``): for
each base model type, its tiny random model exported exactly as the ONNX sweep exports it
(onnx.py ``measure_export``: the same model, inputs and file) and run by ONNX Runtime Web in
headless Chromium (engines/web, the wasm and webgpu targets' engine) on one execution provider,
at the same three shapes, every output compared with PyTorch eager.

    generate-skills coverage --backend wasm [--types bert --types gpt2] [-j 1] [--resume]
    generate-skills coverage --backend webgpu [--types bert] [-j 1] [--resume]

status: pass; export_failed (torch.onnx.export refused the model: the ONNX sweep's reason);
unsupported (ONNX Runtime Web would not open the file on the provider: an op it has no kernel
for, named in ``op`` and the reason, or no node on the provider at all); mismatch (ran, but an
output differs, is missing, has another shape, or a shape does not run); timeout (the browser did
not start twice in a row, or the page did not answer, within its time limit, or the harness's
per type); error (anything else: no browser, the provider refused by the browser, the tiny
model).  ``provider`` is what ran, as the target's
result names it (``chromium:webgpu (google swiftshader; 94 of 131 nodes, 37 on wasm)``).

The browser is the engine's per-process one (``browser.shared_browser``), started on a type's
first session and kept for the next type a process measures; every session is closed after its
type, so the page does not keep the weights of all the types it ran."""

from __future__ import annotations

import contextlib
import functools
import re
import resource
import time
from pathlib import Path
from typing import Any, Iterator

from ..constants import TOLERANCE
from .native import _short
from .onnx import VALIDATION_SHAPES, cause_of, measure_export

PROVIDERS = ("wasm", "webgpu")
# wasm computes float32 on the CPU: the float32 parity bar.  WebGPU is held to the same bar, as
# the webgpu target's own first-run proof is (engines/web/runner.py proves it at "float32"): in
# the project's CI WebGPU is SwiftShader, float32 on the CPU too, measured at 2.0e-6 on MiniLM and
# 2.7e-7 on the tiny ViT (tests/engines/test_web.py), so nothing asks to loosen it.
TOLERANCES = {"wasm": TOLERANCE, "webgpu": TOLERANCE}
# ORT Web's words for an op it cannot run: "com.example:Frobnicate(-1) is not a registered
# function/op", "Could not find an implementation for Trilu(14) node with name '...'".
_OP = re.compile(r"(?:([\w.]+:)?(\w+)\(-?\d+\) is not a registered function/op"
                 r"|Could not find an implementation for (\w+)\(\d+\))")  # fmt: skip


def check_web(model_type: str, provider: str,
              shapes: tuple[tuple[int, int], ...] = VALIDATION_SHAPES) -> dict[str, Any]:  # fmt: skip
    """Export + run in the browser on ``provider``; never raises (the reason is in the row,
    with the seconds it took)."""
    from skillmill.engines.web import runtime

    started = time.perf_counter()
    why = runtime.problem()
    if why:  # nothing can run: said once per row rather than after building the model
        row: dict[str, Any] = {"status": "error", "stage": "runtime", "reason": why}
    else:
        row = measure_export(model_type, shapes, functools.partial(_in_browser, provider),
                             TOLERANCES[provider])  # fmt: skip
    if row["status"] != "pass" and row.get("reason"):
        row["cause"] = cause_of(row["reason"])
    row["seconds"] = round(time.perf_counter() - started, 2)
    return row


def check_wasm(model_type: str) -> dict[str, Any]:
    return check_web(model_type, "wasm")


def check_webgpu(model_type: str) -> dict[str, Any]:
    return check_web(model_type, "webgpu")


def refused_op(message: str) -> str | None:
    """The op ONNX Runtime Web says it cannot run, as ``domain:Op`` or ``Op``, or None."""
    found = _OP.search(message)
    if found is None:
        return None
    return f"{found[1] or ''}{found[2]}" if found[2] else found[3]


@contextlib.contextmanager
def _address_space_uncapped() -> Iterator[None]:
    """The harness caps a worker's address space (measure/harness.py), and a program it starts
    inherits the cap: Chromium reserves far more than it uses (V8's sandbox, wasm guard regions)
    and will not start under it.  Lifted while the browser starts, as far as the hard limit
    allows, then put back for the worker's own memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    except (ValueError, OSError):  # the cap stays; the browser's start says what failed
        pass
    try:
        yield
    finally:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        except (ValueError, OSError):
            pass


def _start_browser() -> None:
    """The process's browser, started here so Chromium inherits no address-space cap; a start
    that misses its minute on a busy machine is tried once more (the model is not at fault)."""
    from skillmill.engines.web import browser

    for attempt in (1, 2):
        try:
            with _address_space_uncapped():
                browser.shared_browser()
            return
        except browser.PageTimeout:
            if attempt == 2:
                raise


def _in_browser(provider: str, path: Path, model: Any, batches: list[dict[str, Any]],
                result: dict[str, Any]) -> Any:  # fmt: skip
    """The exported file opened by ONNX Runtime Web on ``provider`` and validated like the ONNX
    sweep's (``export.validate``, with the page's run): its rows, or the finished failing row."""
    from skillmill.engines.onnxruntime import export
    from skillmill.engines.web import browser, runner

    result["stage"] = "browser"
    try:
        _start_browser()
        result["stage"] = "load"
        session = runner.WebSession(path, provider)
    except browser.PageTimeout as exc:
        return {**result, "status": "timeout", "reason": _short(exc)}
    except browser.WebEngineError as exc:
        message = _short(exc)
        if "cannot open the model" not in message and "kernel for no node" not in message:
            return {**result, "status": "error", "reason": message}  # the browser, not the model
        op = refused_op(message)
        row = {**result, "status": "unsupported", "reason": message}
        if op:
            row = {**row, "op": op, "reason": f"op {op}: {message}"}
        return row
    try:
        result["provider"] = session.device
        result["stage"] = "validate"
        engine = f"ONNX Runtime Web ({provider})"
        try:
            return export.validate(path, model, batches, run=session.run, engine=engine,
                                   fatal=(browser.PageTimeout,))  # fmt: skip
        except browser.PageTimeout as exc:
            return {**result, "status": "timeout", "reason": _short(exc)}
    finally:
        try:
            session.close()
        except Exception:  # noqa: BLE001 — a page that died took the session with it
            pass


def warm_up() -> None:
    """Import transformers' lazy modules, the exporter and Playwright once in the parent, so
    forked workers start warm.  The browser is not started here: its driver thread would not
    survive the fork, so each worker starts its own."""
    import playwright.async_api  # noqa: F401

    from .onnx import warm_up as warm_onnx

    warm_onnx()

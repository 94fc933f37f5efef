"""``generate-skills export --target web``: the skill as a static web folder
(``skillmill.engines.web.bundle``), then the page itself opened in headless Chromium on wasm and
WebGPU, and what it shows printed: backend, timings, and each output's error against PyTorch
eager float32.  Exit status 1 when the page fails on every provider, or an output is beyond the
float32 tolerance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def export_web(skill: Any, batch: dict, out: str, opset: int, validate: bool = True) -> int:
    from skillmill.engines.onnxruntime.export import OnnxExportError
    from skillmill.engines.web import bundle, runtime
    from skillmill.engines.web.browser import WebEngineError
    from skillmill.runtime.precision import PARITY_TOLERANCE

    try:
        written = bundle.write(skill.model, skill.model_class_name, batch, out, opset=opset)
    except (OnnxExportError, WebEngineError) as exc:
        raise click.ClickException(str(exc)) from None
    shapes = ", ".join(f"{n} {'x'.join(map(str, d))}" for n, d in written.input_shapes.items())
    click.echo(f"wrote {written.folder}/ ({len(written.files)} files, {written.size_bytes / 1e6:.1f} MB): "
               f"{', '.join(f for f in written.files if '/' not in f)}, ort/ "
               f"(onnxruntime-web {runtime.installed_version()})")  # fmt: skip
    click.echo(f"example inputs: {shapes}; outputs: {', '.join(written.outputs)}")
    click.echo(
        f"serve it: python {Path(out) / bundle.SERVE_FILE} 8000, then open http://127.0.0.1:8000/"
    )
    if not validate:
        click.echo("not opened in a browser (--no-validate)")
        return 0
    why = runtime.problem()
    if why:
        click.echo(f"not opened in a browser: {why}")
        return 0
    tolerance = PARITY_TOLERANCE["float32"]
    ran, failed = 0, 0
    for provider in ("wasm", "webgpu"):
        try:
            shown = bundle.check(written.folder, provider)
        except WebEngineError as exc:
            shown = {"error": str(exc)}
        if "error" in shown:
            click.echo(f"  {provider}: the page failed: {shown['error']}")
            continue
        ran += 1
        errors = {n: o["error"] for n, o in shown["outputs"].items() if o["error"] is not None}
        worst = max(errors.values(), default=0.0)
        failed += worst > tolerance
        click.echo(f"  {provider}: open {shown['openMs']:.0f} ms, first run {shown['firstMs']:.0f} ms, "
                   f"median {shown['medianMs']:.1f} ms; largest error against PyTorch {worst:.2e} "
                   f"({'within' if worst <= tolerance else 'BEYOND'} {tolerance:g})")  # fmt: skip
    if not ran or failed:
        click.echo("the page did not reproduce PyTorch on any provider" if not ran
                   else f"{failed} provider(s) beyond the float32 tolerance", err=True)  # fmt: skip
        return 1
    return 0

"""A skill as a static web folder (``generate-skills export --target web``): the model as ONNX,
the pinned ONNX Runtime Web files, the page module, the skill's example inputs with PyTorch's
outputs for them, and an ``index.html`` that runs the examples on the best provider the browser
offers (or the one ``?ep=`` names) and shows the backend, the outputs, the timings and the error
against PyTorch.  ``serve.py`` beside them serves the folder with the headers wasm threads need.

``check`` opens the written page in the engine's headless Chromium and reads back what it shows,
so the export command reports the bundle's own run, not the engine's."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import browser, runtime
from .runner import encode, time_limit

PAGE_FILE = "index.html"
SERVE_FILE = "serve.py"

INDEX_HTML = """<!doctype html>
<meta charset="utf-8">
<title>__TITLE__ in the browser (ONNX Runtime Web __ORT__)</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; max-width: 60em; }
  table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
  code { background: #f4f4f4; }
</style>
<h1>__TITLE__</h1>
<p>ONNX Runtime Web __ORT__ runs <code>model.onnx</code> on the skill's example inputs in this page.
Choose the execution provider with <code>?ep=wasm</code>, <code>?ep=webgpu</code> or <code>?ep=webnn</code>
(default: webgpu where the browser has an adapter, else wasm).</p>
<p id="status">loading…</p>
<table id="summary"></table>
<h2>Outputs</h2>
<table id="outputs"><tr><th>output</th><th>shape</th><th>first values</th><th>max relative error vs PyTorch</th></tr></table>
<script type="module">
import * as engine from "./skillmill-web.mjs";

const status = document.getElementById("status");
function row(table, cells, header = false) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement(header ? "th" : "td");
    td.textContent = cell;
    tr.appendChild(td);
  }
  document.getElementById(table).appendChild(tr);
}
function floats(value) {
  const raw = atob(value.data), bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return value.type === "float32" ? new Float32Array(bytes.buffer) : null;
}
function relativeError(got, want) {
  let diff = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return scale ? diff / scale : diff;
}
async function main() {
  const examples = await (await fetch("examples.json")).json();
  const found = await engine.environment();
  const asked = new URLSearchParams(location.search).get("ep");
  const provider = asked || (found.webgpu.available ? "webgpu" : "wasm");
  if (found[provider] && !found[provider].available) {
    throw new Error(`the browser refuses ${provider}: ${found[provider].reason}`);
  }
  status.textContent = `opening model.onnx on ${provider}…`;
  const opened = await engine.open("model", "model.onnx", provider, found.hardwareConcurrency > 1 ? 2 : 1);
  const first = await engine.run("model", examples.inputs);
  const later = [];
  for (let i = 0; i < 3; i++) later.push((await engine.run("model", examples.inputs)).ms);
  later.sort((a, b) => a - b);
  const result = { provider, adapter: found.webgpu, crossOriginIsolated: found.crossOriginIsolated,
                   openMs: opened.ms, firstMs: first.ms, medianMs: later[1], outputs: {} };
  row("summary", ["backend", `onnxruntime-web ${found.ort.web}, ${provider}` +
      (provider === "webgpu" ? ` (${found.webgpu.vendor} ${found.webgpu.architecture})` : "") +
      (provider === "wasm" ? ` (${opened.threads} thread(s)${found.crossOriginIsolated ? "" : ", not cross-origin isolated"})` : "")]);
  row("summary", ["open session", `${opened.ms.toFixed(0)} ms`]);
  row("summary", ["first run", `${first.ms.toFixed(1)} ms`]);
  row("summary", ["median of 3 later runs", `${later[1].toFixed(1)} ms`]);
  row("summary", ["inputs", Object.entries(examples.inputs).map(([n, v]) => `${n} ${v.dims.join("x")}`).join(", ")]);
  for (const [name, value] of Object.entries(first.outputs)) {
    const got = floats(value), want = examples.reference[name] ? floats(examples.reference[name]) : null;
    const error = got && want && got.length === want.length ? relativeError(got, want) : null;
    result.outputs[name] = { dims: value.dims, error };
    row("outputs", [name, value.dims.join("x"), got ? Array.from(got.slice(0, 4), v => v.toFixed(4)).join(", ") + " …" : value.type,
                    error === null ? "n/a" : error.toExponential(2)]);
  }
  status.textContent = "done";
  window.skillmillResult = result;
}
main().catch(error => {
  status.textContent = `failed: ${error.message || error}`;
  window.skillmillResult = { error: String(error.message || error) };
});
</script>
"""

SERVE_PY = '''"""Serve this folder on http://127.0.0.1:8000/ with the headers ONNX Runtime Web needs for wasm
threads (cross-origin isolation).  python serve.py [PORT]"""

import functools
import http.server
import os
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".wasm": "application/wasm"}

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
print(f"serving on http://127.0.0.1:{port}/ (Ctrl-C stops)")
here = os.path.dirname(os.path.abspath(__file__))
http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                functools.partial(Handler, directory=here)).serve_forever()
'''


@dataclass
class Bundle:
    """What ``write`` put in the folder."""

    folder: Path
    files: list[str]
    size_bytes: int
    input_shapes: dict[str, list[int]]
    outputs: list[str] = field(default_factory=list)


def write(model: torch.nn.Module, class_name: str, batch: dict[str, torch.Tensor], folder: str | Path,
          opset: int = 17) -> Bundle:  # fmt: skip
    """Write the static folder for ``model`` with ``batch`` as its example inputs.  Raises
    ``browser.WebEngineError`` when the pinned runtime is not installed (nothing to copy), and the
    exporter's ``OnnxExportError`` when the model does not export."""
    from skillmill.engines.onnxruntime import export as onnx_export
    from skillmill.engines.parity import model_outputs

    why = runtime.runtime_problem()
    if why:
        raise browser.WebEngineError(why)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise browser.WebEngineError(f"{folder} is a file; --target web writes a folder")
    folder.mkdir(parents=True, exist_ok=True)
    reference = model_outputs(model, batch)
    onnx_export.export_onnx(model, batch, folder / "model.onnx", opset=opset, reference=reference)
    (folder / "ort").mkdir(exist_ok=True)
    for name in runtime.RUNTIME_FILES:
        shutil.copyfile(runtime.DIST / name, folder / "ort" / name)
    shutil.copyfile(runtime.PAGE / "skillmill-web.mjs", folder / "skillmill-web.mjs")
    examples = {"class": class_name, "inputs": {n: encode(t) for n, t in batch.items()},
                "reference": {n: encode(t.float()) for n, t in reference.items() if t.is_floating_point()}}  # fmt: skip
    (folder / "examples.json").write_text(json.dumps(examples))
    page = INDEX_HTML.replace("__TITLE__", class_name).replace(
        "__ORT__", runtime.installed_version() or ""
    )
    (folder / PAGE_FILE).write_text(page)
    (folder / SERVE_FILE).write_text(SERVE_PY)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    size = sum((folder / f).stat().st_size for f in files)
    shapes = {n: list(t.shape) for n, t in batch.items()}
    return Bundle(folder, files, size, shapes, list(reference))


def check(
    folder: str | Path, provider: str | None = None, seconds: float | None = None
) -> dict[str, Any]:
    """Open the bundle's ``index.html`` in the engine's headless Chromium (served with the same
    isolation headers as ``serve.py``) and return what the page computed: ``provider``,
    ``openMs``, ``firstMs``, ``medianMs`` and per output ``dims`` and ``error`` against PyTorch;
    ``{"error": ...}`` when the page failed.  Raises ``browser.WebEngineError`` when there is no
    browser, ``browser.PageTimeout`` past the time limit."""
    folder = Path(folder).resolve()
    page = browser.shared_browser()
    prefix = f"bundle-{abs(hash(folder)) % 10**8}"
    page.server.roots[prefix] = folder
    seconds = seconds or time_limit()
    url = f"{page.server.url}{prefix}/{PAGE_FILE}" + (f"?ep={provider}" if provider else "")
    script = """async ([url, seconds]) => {
        const frame = document.createElement("iframe");
        document.body.appendChild(frame);
        await new Promise((done, failed) => { frame.onload = done; frame.onerror = failed; frame.src = url; });
        const deadline = performance.now() + seconds * 1000;
        while (!frame.contentWindow.skillmillResult && performance.now() < deadline) {
            await new Promise(done => setTimeout(done, 50));
        }
        const result = frame.contentWindow.skillmillResult || { error: "the page showed no result" };
        frame.remove();
        return result;
    }"""
    try:
        return page.run_script(script, [url, seconds], seconds + 5)
    finally:
        page.server.roots.pop(prefix, None)

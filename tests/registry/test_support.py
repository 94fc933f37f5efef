"""The support table (registry/support/): one document per engine and precision, one reader
(skillmill.registry.support) that the runners and the generated docs use, checked by --check."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from skillmill.generator import coverage as cov
from skillmill.measure.sweeps import BACKENDS, load_report
from skillmill.registry import support

ROOT = Path(__file__).resolve().parents[2]


def test_every_sweep_writes_its_engine_document_at_float32():
    assert {name: spec.engine for name, spec in BACKENDS.items()} == {
        "skill": "torch", "native": "native", "max": "max", "openvino": "openvino", "onnx": "onnx",
        "wasm": "wasm", "webgpu": "webgpu"}  # fmt: skip
    for name, spec in BACKENDS.items():
        assert spec.report == ROOT / "registry" / "support" / f"{spec.engine}.yaml"
        document = load_report(name)
        assert (document["engine"], document["precision"]) == (spec.engine, "float32")
    # engines' measured verdicts live in the support table, not under docs/; docs/coverage/ holds
    # only the task report (issue 18 names docs/coverage/tasks.yaml), which no runner reads
    under_docs = {p.name for p in (ROOT / "docs" / "coverage").glob("*")}
    assert under_docs <= {"tasks.yaml"}, f"measured data does not live under docs/: {under_docs}"
    assert not (ROOT / "runtime" / "backends" / "native_support.yaml").exists()


@pytest.mark.parametrize("engine", ["torch", "native", "max", "openvino", "onnx", "wasm", "webgpu"])
def test_verdict_is_pass_the_quoted_reason_or_none(engine):
    rows = support.report(engine)["model_types"]
    for model_type, row in rows.items():
        got = support.verdict(model_type, engine)
        if row["status"] == "pass":
            assert got == "pass"
        elif row["status"] == support.NOT_MEASURED:
            assert got is None  # declared only: the runners try it
        else:
            assert got.startswith(f"{row['status']}: ")
            reason = " ".join(row["reason"].split())
            assert reason[:support.REASON_CHARS] in got
            assert ("measured on" in got) == bool(row.get("measured_on"))
    assert support.verdict("no-such-type", engine) is None
    assert support.verdict("bert", engine, "bfloat16") is None  # no document at that precision


def test_an_engine_without_a_sweep_has_no_verdicts():
    assert support.verdict("bert", "mojo") is None and support.verdicts("mojo") == {}


def test_the_reader_imports_neither_torch_nor_transformers():
    code = ("import sys; from skillmill.registry import support; "
            "assert support.verdict('bert', 'native') == 'pass'; "
            "assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_problems_names_what_is_inconsistent(tmp_path, monkeypatch, registry):
    assert support.problems(registry.base_classes) == []
    monkeypatch.setattr(support, "SUPPORT_DIR", tmp_path)
    support.clear_cache()
    try:
        (tmp_path / "max.yaml").write_text(
            "engine: native\nprecision: float32\npassed: 2\ntotal: 2\n"
            "model_types:\n  bert: {status: pass}\n  nope: {status: fail}\n", encoding="utf-8")
        (tmp_path / "native-bfloat16.yaml").write_text(
            "engine: native\npassed: 0\ntotal: 0\nmodel_types: {}\n", encoding="utf-8")
        found = "\n".join(support.problems(registry.base_classes))
        assert "max.yaml: engine is 'native', expected 'max'" in found
        assert "native-bfloat16.yaml: needs `precision: bfloat16`" in found
        monkeypatch.setattr(support, "report", lambda e, p="float32": {
            "engine": e, "precision": p, "passed": 2, "total": 2,
            "model_types": {"bert": {"status": "pass"}, "nope": {"status": "fail"}}})
        found = "\n".join(support.problems(registry.base_classes))
        assert "not base model types in registry/registry.yaml: nope" in found
        assert "nope is fail without a reason" in found
        assert "says 2 of 2 pass, its rows 1 of 2" in found
    finally:
        monkeypatch.undo()
        support.clear_cache()  # nothing read from tmp_path stays cached


def _max_failed_text_type(registry) -> tuple[str, str]:
    """A text type the MAX sweep failed after the IR conversion, whose tiny model builds."""
    for model_type in ("mpt", "cpmant", "xmod"):
        verdict = support.verdict(model_type, "max")
        if verdict not in (None, "pass") and support.verdict(model_type, "torch") == "pass":
            return model_type, verdict
    pytest.fail("no text type the MAX sweep failed: pick another example")


class _FakeSkill:
    """Enough of a skill for the max runner's checks before a compile."""

    precision = "float32"

    def __init__(self, model_type):
        self.model_type = model_type
        self.model = torch.nn.Linear(2, 2)

    def modular_requested(self):
        return True, "device='max'"


def test_max_target_declines_a_type_its_sweep_failed_before_compiling(monkeypatch, registry):
    from skillmill.engines import parity
    from skillmill.engines.modular import runner
    from skillmill.runtime.errors import BackendUnavailable

    model_type, verdict = _max_failed_text_type(registry)
    compiled = []

    def run_proven(*args, **kwargs):  # stands in for the export and the compile
        compiled.append(args)
        raise parity.EngineDeclined("max: stopped here")

    monkeypatch.setattr(parity, "run_proven", run_proven)
    monkeypatch.delenv("SKILLMILL_MAX", raising=False)
    batch = {"x": torch.ones(1, 2)}
    with pytest.raises(BackendUnavailable) as declined:
        runner._run(_FakeSkill(model_type), batch, "max")
    message = str(declined.value)
    assert "the max coverage sweep failed it (registry/support/max.yaml)" in message
    assert verdict in message and "SKILLMILL_MAX=all tries it anyway" in message
    assert not compiled
    # A type the sweep passed, or has not measured, goes on to the compile as before.
    not_measured = next(t for t, r in support.report("max")["model_types"].items() if r["status"] == "not_measured")
    for tried in ("bert", not_measured):
        with pytest.raises(BackendUnavailable, match="stopped here"):
            runner._run(_FakeSkill(tried), batch, "max")
    monkeypatch.setenv("SKILLMILL_MAX", "all")  # as SKILLMILL_NATIVE=all: try it anyway
    with pytest.raises(BackendUnavailable, match="stopped here"):
        runner._run(_FakeSkill(model_type), batch, "max")
    assert len(compiled) == 3


def test_skill_on_max_falls_back_with_the_sweeps_reason(monkeypatch, registry):
    pytest.importorskip("max")
    from skillmill import load_skill
    from skillmill.engines.modular import runner

    model_type, verdict = _max_failed_text_type(registry)
    monkeypatch.delenv("SKILLMILL_MAX", raising=False)
    monkeypatch.setattr(runner, "_prepare", lambda *a, **k: pytest.fail("compiled a type the sweep failed"))
    skill = load_skill(registry.base_classes[model_type], model="tiny", device="max")
    result = skill.process(dict(skill.example_inputs()))
    assert result.backend == "cpu"
    assert "the max coverage sweep failed it" in result.fallback_reason and verdict in result.fallback_reason


def test_check_fails_when_a_doc_rendered_from_the_table_is_stale(monkeypatch):
    """`generate-skills --check` compares docs/coverage.md and docs/support-matrix.md with what
    the support table renders (the skill modules are taken as rendered, to keep this fast)."""
    from skillmill.generator import write
    from skillmill.generator.cli import DEFAULT_OUTPUT, main

    on_disk = {p.name: p.read_text(encoding="utf-8") for p in DEFAULT_OUTPUT.glob("*.py")}
    monkeypatch.setattr(write, "render_tree", lambda *a, **k: dict(on_disk))
    result = CliRunner().invoke(main, ["--check", "-q"])
    assert result.exit_code == 0, result.output
    real = cov.render_markdown
    monkeypatch.setattr(cov, "render_markdown", lambda: real().replace("pass", "PASS", 1))
    result = CliRunner().invoke(main, ["--check", "-q"])
    assert result.exit_code == 1 and "b/docs/coverage.md" in result.output and "is stale" in result.output
    monkeypatch.setattr(cov, "render_markdown", real)
    monkeypatch.setattr(support, "problems", lambda base_types: ["registry/support/max.yaml: broken"])
    result = CliRunner().invoke(main, ["--check", "-q"])
    assert result.exit_code == 1 and "registry/support/max.yaml: broken" in result.output


def test_slower_reason_quotes_the_sweeps_timing(monkeypatch):
    """Issue 26: a type the native sweep passed but timed slower than PyTorch eager is not run
    natively by default; the reason carries both figures and the shape."""
    rows = {"fast": {"status": "pass", "native_ms": 1.0, "torch_ms": 2.0, "speed_shape": "2x32"},
            "slow": {"status": "pass", "native_ms": 186.0, "torch_ms": 47.0, "speed_shape": "2x32"},
            "untimed": {"status": "pass"}, "failed": {"status": "mismatch", "native_ms": 9.0, "torch_ms": 1.0}}  # fmt: skip
    monkeypatch.setattr(support, "row", lambda t, engine, precision="float32": rows.get(t))
    assert support.slower_reason("fast", "native") is None
    assert support.slower_reason("untimed", "native") is None
    assert support.slower_reason("failed", "native") is None  # its verdict already says why
    assert support.slower_reason("slow", "native") == (
        "native 186 ms vs torch 47 ms at (2,32) in the native sweep (registry/support/native.yaml)")


def test_cpu_target_runs_torch_where_native_was_timed_slower(monkeypatch):
    """No silent engine switch: the result names PyTorch eager and says why, with the figures."""
    from skillmill import load_skill

    real_row = support.row
    slow = {**real_row("bert", "native"), "native_ms": 9.0, "torch_ms": 3.0, "speed_shape": "2x32"}
    monkeypatch.setattr(support, "row", lambda t, e, p="float32": slow if (t, e) == ("bert", "native") else real_row(t, e, p))
    monkeypatch.delenv("SKILLMILL_NATIVE", raising=False)
    skill = load_skill("BertModel", model="tiny", device="cpu")
    result = skill.process(dict(skill.example_inputs()))
    assert result.engine == "torch", result.engine
    assert "slower than PyTorch eager: native 9 ms vs torch 3 ms at (2,32)" in result.fallback_reason
    forced = load_skill("BertModel", model="tiny", device="cpu", native="all")  # asked by name: runs native
    assert forced.process(dict(forced.example_inputs())).engine == "native"

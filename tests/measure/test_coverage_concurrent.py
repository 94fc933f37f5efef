"""Two partial sweeps of one backend at once (different types, say a helper's and yours) must
not drop each other's rows: each writes back the rows outside its own types as the report holds
them at write time."""

import yaml
from click.testing import CliRunner

from skillmill.generator import coverage as cov
from skillmill.generator.cli import main
from skillmill.measure import sweeps
from skillmill.registry import support


def _rows(path):
    return yaml.safe_load(path.read_text())["model_types"]


def test_a_partial_sweep_keeps_rows_another_sweep_wrote_meanwhile(tmp_path, monkeypatch):
    monkeypatch.setattr(support, "SUPPORT_DIR", tmp_path)
    support.clear_cache()
    report = support.path("fake")
    report.write_text(yaml.safe_dump({"engine": "fake", "precision": "float32", "model_types": {
        "bert": {"status": "error", "reason": "old"}, "gpt2": {"status": "error", "reason": "old"}}}))  # fmt: skip

    def check(model_type):
        # the other sweep finishes gpt2 while this one measures bert
        document = yaml.safe_load(report.read_text())
        document["model_types"]["gpt2"] = {
            "status": "pass",
            "class": "GPT2Model",
            "by": "the other sweep",
        }
        report.write_text(yaml.safe_dump(document))
        return {"status": "pass"}

    def write_report(rows, version, backend="skill"):  # the YAML only: no docs in the repo
        report.write_text(
            yaml.safe_dump({"engine": "fake", "precision": "float32", "model_types": rows})
        )
        support.clear_cache()
        return [report]

    # the CLI's --backend choices are fixed at import: stand in for one, on a report in tmp_path
    monkeypatch.setitem(sweeps.BACKENDS, "onnx", sweeps.CoverageBackend(
        name="onnx", check=check, engine="fake", title="fake", what="a test"))  # fmt: skip
    monkeypatch.setattr(cov, "write_report", write_report)
    result = CliRunner().invoke(
        main, ["coverage", "--backend", "onnx", "--types", "bert", "-j", "1"]
    )
    assert result.exit_code == 0, result.output
    rows = _rows(report)
    assert rows["bert"]["status"] == "pass"  # what this sweep measured
    assert rows["gpt2"].get("by") == "the other sweep"  # what the other one wrote meanwhile
    support.clear_cache()

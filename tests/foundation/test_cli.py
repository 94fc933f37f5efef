"""The generate-skills command line: errors are one clear line with exit 2; --check; atomicity."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from skillmill.generator.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_unknown_model_type_is_one_line_exit_2():
    code, out = run("--model", "bret", "--output", "/tmp/never-written", "-q")
    assert code == 2
    assert "unknown model type: bret (did you mean bert?)" in out
    assert "Traceback" not in out


def test_unknown_hardware_is_exit_2():
    code, out = run("--model", "bert", "--hardware", "cuda,tpu", "--output", "/tmp/never-written")
    assert code == 2 and "unknown hardware tpu" in out


def test_check_passes_on_fresh_output_and_fails_with_a_diff_when_stale(tmp_path):
    code, _ = run("--model", "bert", "--model", "gpt2", "--output", str(tmp_path), "-q")
    assert code == 0
    code, out = run("--model", "bert", "--model", "gpt2", "--output", str(tmp_path), "--check")
    assert code == 0, out
    bert = tmp_path / "bert.py"
    bert.write_text(bert.read_text().replace("BertModel", "BertModle", 1))
    code, out = run("--model", "bert", "--output", str(tmp_path), "--check")
    assert code == 1
    assert "--- a/" in out and "+++ b/" in out and "is stale" in out


def test_partial_run_refuses_to_drop_targets_other_modules_use(tmp_path):
    code, _ = run("--model", "bert", "--model", "gpt2", "--output", str(tmp_path), "-q")
    assert code == 0
    targets = (tmp_path / "_targets.py").read_text()
    code, out = run("--model", "bert", "--hardware", "cuda", "--output", str(tmp_path), "-q")
    assert code == 2 and "_targets.py would lose max, mojo, mps" in out
    assert (tmp_path / "_targets.py").read_text() == targets  # nothing written
    code, out = run("--model", "bert", "--hardware", "cuda", "--output", str(tmp_path / "alone"), "-q")
    assert code == 0, out


def test_template_syntax_error_is_exit_2_and_names_the_file(tmp_path):
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "broken.yaml").write_text(
        "name: broken\npriority: 5\ndetect: {always: true}\nsupports: {modalities: '*', families: '*'}\n"
    )
    (targets / "broken.py.j2").write_text("def run_on_broken(skill, batch):\n    {% if %}\n")
    code, out = run("--targets-dir", str(targets), "--model", "bert", "--output", str(tmp_path / "o"))
    assert code == 2
    assert "broken.py.j2" in out and "syntax error" in out
    assert not (tmp_path / "o").exists()


def test_malformed_declaration_is_exit_2(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: bad\npriority: high\n")
    (tmp_path / "bad.py.j2").write_text("")
    code, out = run("--targets-dir", str(tmp_path), "--model", "bert", "--output", str(tmp_path / "o"))
    assert code == 2 and "bad.yaml" in out


def test_list_json_has_one_object_per_class(registry):
    code, out = run("list", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(rows) == len(registry.classes)
    for key in ("class_name", "model_type", "modality", "family", "tasks"):
        assert key in rows[0]
    code, out = run("list", "--modality", "vision", "--task", "image-classification", "--json")
    vision = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert vision and all(r["modality"] == "vision" for r in vision)


def test_hardware_report_lists_all_twelve_targets():
    code, out = run("hardware", "--json")
    assert code == 0
    report = json.loads(out)
    names = [t["name"] for t in report["targets"]]
    # onnxruntime, qnn and the browser targets rank below cpu: device="auto" stops at cpu, so they
    # run only when asked for
    assert names == ["max", "cuda", "rocm", "mps", "mojo", "openvino", "cpu", "onnxruntime", "qnn",
                     "wasm", "webgpu", "webnn"]  # fmt: skip
    assert report["targets"][names.index("cpu")]["available"] is True
    assert set(report["cpu_features"]) == {"sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                                           "avx512_vnni", "avx512_bf16", "amx_bf16", "neon"}  # fmt: skip


def test_interrupted_full_run_leaves_the_old_tree_whole(tmp_path, monkeypatch):
    from skillmill.generator import write

    out = tmp_path / "generated"
    out.mkdir()
    (out / "old.py").write_text("# old\n")

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(write.os, "replace", explode)
    with pytest.raises(KeyboardInterrupt):
        write.replace_tree({"__init__.py": "", "new.py": "# new\n"}, out)
    assert (out / "old.py").read_text() == "# old\n"
    assert not (out / "new.py").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["generated"]


def test_console_script_help_explains():
    exe = shutil.which("generate-skills") or str(Path(sys.executable).with_name("generate-skills"))
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for word in ("--model", "--check", "--hardware", "--jobs", "list", "scan", "hardware", "coverage"):
        assert word in out


def test_coverage_resume_keeps_verdicts_and_retries_matching_failures():
    from skillmill.measure.harness import rows_to_keep

    rows = {"a": {"status": "pass"}, "b": {"status": "not_measured", "reason": "sweep stopped"},
            "c": {"status": "unsupported", "op": "MaskedScatter", "reason": "no MAX lowering for MaskedScatter"},
            "d": {"status": "unsupported", "op": "Resize", "reason": "no MAX lowering for Resize"},
            "e": {"status": "pass", "reason": "MaskedScatter"}}  # fmt: skip
    assert sorted(rows_to_keep(rows)) == ["a", "c", "d", "e"]
    assert sorted(rows_to_keep(rows, "MaskedScatter|AssertScalar")) == ["a", "d", "e"]  # a pass stays
    result = CliRunner().invoke(main, ["coverage", "--backend", "max", "--retry", "x", "--no-write"])
    assert result.exit_code == 2 and "--retry goes with --resume" in result.output


def test_demo_embeds_real_minilm_and_reports_a_median_warm_latency(minilm_dir):
    code, out = run("demo", "--model", minilm_dir, "--device", "cpu")
    assert code == 0, out
    assert "backend: cpu" in out and "forward (warm, median of 5):" in out
    # all-MiniLM-L6-v2's known answer: the bread sentence is the closest to "eating food"
    assert "closest to 'A man is eating food.': 'A man is eating a piece of bread.'" in out


def test_coverage_merge_lays_rows_measured_elsewhere_over_the_report():
    import json

    import pytest

    from skillmill.measure.harness import RowRefused, merge_rows

    classes = {"bert": "BertModel", "gpt2": "GPT2Model"}
    here = "AMD EPYC, 2 cores, MAX target cpu, torch 2.13.0+cpu"
    report = {"bert": {"status": "not_measured"}, "gpt2": {"status": "pass", "class": "GPT2Model"}}
    line = json.dumps({"model_type": "bert", "status": "pass", "max_rel_err": 1e-6, "measured_on": here})
    merged = merge_rows(report, [line, ""], classes)
    assert merged["bert"] == {"status": "pass", "max_rel_err": 1e-6, "measured_on": here, "class": "BertModel"}
    assert merged["gpt2"] == report["gpt2"] and report["bert"] == {"status": "not_measured"}  # input untouched
    refused = {
        "not JSON": "{",
        "not a base model type": json.dumps({"model_type": "nope", "status": "pass", "measured_on": here}),
        "no verdict": json.dumps({"model_type": "bert", "status": "not_measured", "measured_on": here}),
        "not a MAX target cpu run": json.dumps({"model_type": "bert", "status": "pass",
                                                "measured_on": here.replace("target cpu", "target gpu")}),
        "measured_on None": json.dumps({"model_type": "bert", "status": "pass"}),
    }  # fmt: skip
    for why, bad in refused.items():
        with pytest.raises(RowRefused, match=why):
            merge_rows(report, [line, bad], classes)
    result = CliRunner().invoke(main, ["coverage", "--backend", "max", "--merge", "-"], input="{\n")
    assert result.exit_code == 1 and "Error: line 1: not JSON" in result.output  # refused, nothing written
    result = CliRunner().invoke(main, ["coverage", "--backend", "native", "--merge", "-"], input=line)
    assert result.exit_code == 2 and "--merge goes with --backend max alone" in result.output


def test_resume_with_types_keeps_every_other_row():
    from skillmill.measure.harness import resume_plan

    rows = {"a": {"status": "pass"}, "b": {"status": "not_measured"},
            "c": {"status": "unsupported", "reason": "empty slice"}, "d": {"status": "not_measured"}}  # fmt: skip
    kept, todo = resume_plan(rows, ["c"], "empty slice")
    assert todo == ["c"] and sorted(kept) == ["a", "b", "d"]  # b and d: not measured, still listed
    kept, todo = resume_plan(rows, list(rows))
    assert todo == ["b", "d"] and sorted(kept) == ["a", "c"]

"""docs/coverage.md groups every engine's failures by cause, with counts (issue 24): the op a row
names, else the exception type its reason starts with, else the start of the reason;
mismatches and timeouts group whole."""

from __future__ import annotations

from skillmill.generator.coverage import failure_cause, load_report, render_causes

ROWS = {
    "a": {"status": "export_failed", "reason": "torch.export failed for AModel (a): "
                                               "GuardOnDataDependentSymNode: Could not guard"},
    "b": {"status": "export_failed", "reason": "torch.export failed for BModel (b): "
                                               "GuardOnDataDependentSymNode: Ne(u53, 4096)"},
    "c": {"status": "unsupported", "reason": "no rule", "op": "aten.polar.default"},
    "d": {"status": "export_failed", "reason": "OpenVINO could not convert: SequenceMark, aten::cat"},
    "e": {"status": "mismatch", "reason": "relative error 7.57e-01 > 0.0001"},
    "f": {"status": "mismatch", "cause": "ONNX Runtime cannot run this shape: Fail: [ONNXRuntimeError]"},
    "g": {"status": "error", "stage": "run 2x8", "reason": "RuntimeError: boom"},
    "h": {"status": "timeout", "stage": "timeout", "reason": "no result after 300 s"},
    "i": {"status": "pass"},
}  # fmt: skip


def test_each_failure_gets_its_cause_and_detail():
    causes = {t: failure_cause(r) for t, r in ROWS.items() if r["status"] != "pass"}
    assert causes == {
        "a": ("export", "GuardOnDataDependentSymNode"), "b": ("export", "GuardOnDataDependentSymNode"),
        "c": ("unsupported op", "aten.polar.default"), "d": ("export", "SequenceMark, aten::cat"),
        "e": ("mismatch", ""), "f": ("mismatch", "ONNX Runtime cannot run this shape: Fail:"),
        "g": ("error at run", "RuntimeError"), "h": ("timeout", ""),
    }  # fmt: skip


def test_groups_are_counted_largest_first_and_passes_left_out():
    lines = render_causes(ROWS)
    assert lines[0] == "Failures by cause (8 types in 7 groups):"
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| cause")]
    assert table[0] == "| export | GuardOnDataDependentSymNode | 2 | a, b |"
    assert sum(int(line.split("|")[3]) for line in table) == 8
    assert render_causes({"i": {"status": "pass"}}) == []


def test_every_committed_failure_is_in_exactly_one_group():
    for engine in ("skill", "native", "max", "openvino", "onnx"):
        rows = load_report(engine)["model_types"]
        failing = sum(r["status"] != "pass" for r in rows.values())
        table = [line for line in render_causes(rows)
                 if line.startswith("| ") and not line.startswith("| cause")]  # fmt: skip
        assert sum(int(line.split("|")[3]) for line in table) == failing, engine

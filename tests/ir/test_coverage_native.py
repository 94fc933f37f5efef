"""The native coverage report: complete, consistent with what the cpu target reads, above the
issue's floor; and a fixed representative subset through the real check on every run."""

import numpy as np
import pytest

from skillmill.ir.numerics import relative_error
from skillmill.measure.constants import CI_SUBSET, FLOOR_TYPES, TOLERANCE
from skillmill.measure.sweeps import BACKENDS, load_report
from skillmill.measure.sweeps.native import check_native


@pytest.fixture(scope="module")
def native_report():
    return load_report("native")


def test_every_base_type_has_a_native_row(registry, native_report):
    rows = native_report["model_types"]
    assert set(rows) == set(registry.base_classes), "run `generate-skills coverage --backend native`"
    for model_type, row in rows.items():
        assert row["status"] == "pass" or row.get("reason"), f"{model_type}: a failure needs its reason"


def test_report_meets_the_floor(native_report):
    rows = native_report["model_types"]
    failing = {t: rows[t].get("reason") for t in FLOOR_TYPES if rows[t]["status"] != "pass"}
    assert not failing, failing
    assert native_report["share"] >= 0.60
    assert all(r["max_rel_err"] <= TOLERANCE for r in rows.values() if r["status"] == "pass")


def test_cpu_target_reads_the_same_verdicts(native_report):
    from skillmill.registry import support
    from skillmill.engines.native.runner import ENGINE

    verdicts = support.verdicts(ENGINE, "float32")
    rows = native_report["model_types"]
    assert set(verdicts) == set(rows)
    assert {t for t, v in verdicts.items() if v == "pass"} == {
        t for t, r in rows.items() if r["status"] == "pass"
    }


def test_backend_option_is_a_table():
    assert {"skill", "native"} <= set(BACKENDS)
    assert BACKENDS["native"].report.name == "native.yaml"


@pytest.mark.parametrize("model_type", CI_SUBSET)
def test_ci_subset_through_the_real_check(model_type):
    row = check_native(model_type)
    assert row["status"] == "pass", row
    assert row["max_rel_err"] <= TOLERANCE
    assert "note" not in row  # both shapes ran: batch and sequence stayed dynamic
    # timed against PyTorch eager at the speed shape (issue 26): what the cpu target reads
    assert row["speed_shape"] == "2x32" and row["native_ms"] > 0 and row["torch_ms"] > 0, row
    assert 0 <= row["numpy_time_share"] <= 1 and row["speed_threads"] == 1


def test_relative_error_is_strict_where_it_must_be():
    want = np.array([[1.0, -2.0], [0.5, np.nan]], dtype=np.float32)
    assert relative_error(want.copy(), want) == 0.0
    assert relative_error(want + 1e-3, want) == pytest.approx(5e-4, rel=1e-3)
    assert relative_error(np.nan_to_num(want), want) == float("inf")  # NaN must stay NaN
    assert relative_error(want[:1], want) == float("inf")  # shape
    assert relative_error(np.array([1, 2]), np.array([1, 3])) == float("inf")  # integers exact


def test_speed_summary_counts_what_the_cpu_target_chooses():
    """docs/coverage.md's native speed lines (issue 26): the share where native is no slower,
    the numpy share of time weighted by each type's time, and the slower types named."""
    from skillmill.generator.coverage import render_speed

    rows = {
        "a": {"status": "pass", "native_ms": 1.0, "torch_ms": 4.0, "speedup": 4.0, "numpy_time_share": 0.5,
              "numpy_call_share": 0.2, "numpy_top_ops": {"Mul": 0.4}},
        "b": {"status": "pass", "native_ms": 9.0, "torch_ms": 3.0, "speedup": 0.333, "numpy_time_share": 0.0,
              "numpy_call_share": 0.0, "numpy_top_ops": {}},
        "c": {"status": "pass"},  # not timed yet
        "d": {"status": "mismatch", "reason": "x"},
    }  # fmt: skip
    text = "\n".join(render_speed(rows))
    assert "2 of 3 passing types timed" in text
    assert "at least as fast on 1 (50.0%)" in text and "PyTorch eager for the other 1" in text
    assert "5.0% of all timed executor time" in text  # 0.5 x 1 ms of 10 ms
    assert "b (9 vs 3 ms)" in text and "Mul 4.0%" in text
    assert render_speed({"c": rows["c"]}) == []  # nothing timed: no section

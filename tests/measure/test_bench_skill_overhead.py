"""`bench skill-overhead` (issue 25): the worker times the real MiniLM skill and the engine on
the same tensors, and its parts add up to the difference it reports."""

import pytest

from skillmill.measure.bench import skill_overhead


@pytest.fixture(scope="module")
def torch_row(minilm_dir):
    return skill_overhead._worker("torch", repeats=30, threads=1)


def test_the_worker_times_the_skill_against_its_own_engine(torch_row):
    row = torch_row
    assert row["engine"] == "torch" and row["precision"] == "float32"
    assert row["shape"] == [1, 16]  # the (1, 16): TEXT is 14 words + [CLS], [SEP]
    assert row["process_us"] > 0 and row["engine_us"] > 0
    assert row["ratio"] == pytest.approx(row["process_us"] / row["engine_us"], rel=1e-2)
    parts = row["prepare_inputs_us"] + row["postprocess_us"] + row["rest_us"]
    assert parts == pytest.approx(row["process_us"] - row["engine_us"], abs=0.5)
    assert row["prepare_inputs_us"] > 0 and row["postprocess_us"] > 0
    # with the engine answering at once a call costs far less than with the model running
    assert 0 < row["own_us"] < row["engine_us"], row
    assert row["ratio_from_own"] == pytest.approx(1 + row["own_us"] / row["engine_us"], rel=1e-2)


def test_the_free_engine_is_put_back(minilm_dir):
    from skillmill import load_skill

    skill = load_skill("BertModel", minilm_dir, device="cpu", native=False)
    batch = skill.prepare_inputs(skill_overhead.TEXT)
    before = skill.process(skill_overhead.TEXT).outputs["last_hidden_state"]
    with skill_overhead._free_engine(skill, "torch", batch):
        pass
    assert "forward" not in vars(skill.model)
    other = skill.process("a different sentence").outputs["last_hidden_state"]
    assert other.shape != before.shape  # the real model ran again, not the kept answer


def test_an_engine_that_did_not_run_is_a_row_with_its_reason(monkeypatch, minilm_dir):
    monkeypatch.setitem(skill_overhead.ENGINES, "torch", {"device": "cpu", "native": True})
    row = skill_overhead._worker("torch", repeats=1, threads=1)  # native ran, not torch
    assert set(row) == {"error"} and row["error"].startswith("torch did not run")


def test_the_report_gives_each_engine_a_verdict(torch_row):
    results = {"machine": {"cpu": "c", "cores": 2, "simd": [], "isa": "avx2", "threads": 1,
                           "peak": {"per_core_gflops": 1.0, "peak_gflops": 1.0}},
               "threads": 1, "repeats": 30, "goal_ratio": 1.1, "load_before": (1, 1, 1),
               "load_after": (1, 1, 1),
               "rows": {"torch": {**torch_row, "ratio": 1.05},
                        "native": {**torch_row, "engine": "native", "ratio": 1.2},
                        "openvino": {"error": "openvino did not run: not installed"}}}  # fmt: skip
    lines = skill_overhead.format_report(results).splitlines()
    assert any(l.startswith("torch") and l.endswith("met") and "not met" not in l for l in lines)
    assert any(l.startswith("native") and l.endswith("not met") for l in lines)
    assert "openvino     openvino did not run: not installed" in lines

"""The backend manager (issue 22, first slice): `tune` measures the engines present and writes
the decision table; device="auto" reads it, runs the engine it chose and says why; a table from
another machine, a corrupt one, an engine whose parity failed or whose first call is too slow
are never used, and the result says so."""

from __future__ import annotations

import copy
import json
import os
import warnings

import pytest
from click.testing import CliRunner

from skillmill import load_skill
from skillmill.measure.manager import UnifiedBackendManager, format_report
from skillmill.runtime import decisions
from skillmill.runtime.decisions import Bucket, Constraints
from skillmill.runtime.errors import ConstraintsUnsatisfiable, DecisionTableError

B1S16 = Bucket(1, seq=16)


def write_table(path, entries: dict) -> None:
    """A table file as `tune` writes it (a new file each time, as os.replace makes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".test-tmp")
    temporary.write_text(json.dumps({"format": decisions.FORMAT, "version": decisions.VERSION,
                                     "entries": entries}), encoding="utf-8")  # fmt: skip
    os.replace(temporary, path)


def row(median_ms: float, first_call_s: float = 0.2, error: float = 1e-7, passed: bool = True,
        target: str = "cpu", reference: bool = False) -> dict:  # fmt: skip
    parity = {"max_relative_error": 0.0 if reference else error, "tolerance": 1e-4,
              "passed": passed, **({"reference": True} if reference else {})}  # fmt: skip
    return {"target": target, "median_ms": median_ms, "p95_ms": median_ms * 1.2,
            "throughput": 1000.0 / median_ms, "first_call_s": first_call_s,
            "peak_rss_delta_bytes": 10 * 2**20, "precision": "float32", "parity": parity}  # fmt: skip


def entry_for(skill, engines: dict, bucket: Bucket = B1S16) -> tuple[str, dict]:
    entry = decisions.new_entry(skill, bucket, (bucket.batch, bucket.seq or 1), engines, 5)
    return decisions.entry_key(skill.model_class_name, entry["weights"], bucket, "float32"), entry


@pytest.fixture(autouse=True)
def _fresh_table_cache():
    decisions.clear_cache()
    yield
    decisions.clear_cache()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One real tune of the tiny BertModel: native and torch at 1x16, 5 alternating rounds."""
    path = tmp_path_factory.mktemp("tune") / "decisions.json"
    lines: list[str] = []
    manager = UnifiedBackendManager(path, echo=lines.append)
    reports = manager.benchmark_backends("BertModel", model="tiny", shapes=[(1, 16)],
                                         engines=["native", "torch"], repeats=5)  # fmt: skip
    return path, reports, lines


@pytest.fixture(scope="module")
def auto_skill():
    """One device="auto" skill shared by the tests (each engine converts once per skill)."""
    return load_skill("BertModel", model="tiny")


def test_tune_measures_both_engines_and_writes_them_with_this_machine(tuned):
    path, reports, lines = tuned
    assert lines[0].startswith("machine: ") and "SIMD" in lines[0]  # the CPU and ISA first
    data = json.loads(path.read_text(encoding="utf-8"))
    assert (data["format"], data["version"]) == (decisions.FORMAT, decisions.VERSION)
    [(key, entry)] = data["entries"].items()
    assert key.startswith("BertModel|") and key.endswith("|b1.s16|float32")
    assert entry["fingerprint"] == json.loads(json.dumps(decisions.machine_fingerprint()))
    assert entry["shape"] == [1, 16] and entry["bucket"]["seq"] == 16
    assert set(entry["engines"]) == {"native", "torch"}
    for name, measured in entry["engines"].items():
        assert "fallback_reason" not in measured, measured
        assert measured["runs"] == 5
        assert 0 < measured["median_ms"] <= measured["p95_ms"]
        assert measured["throughput"] == pytest.approx(1000.0 / measured["median_ms"], rel=1e-3)
        assert measured["first_call_s"] > 0 and measured["parity"]["passed"] is True
    # The native executor's first call converts the model (torch.export, passes, a plan).
    assert entry["engines"]["native"]["first_call_s"] > 0.1
    native = entry["engines"]["native"]["parity"]
    assert "reference" not in native and 0 <= native["max_relative_error"] <= 1e-4
    assert entry["engines"]["torch"]["parity"]["reference"] is True
    # The choice the tune reports is the table's own: the faster eligible engine.
    choice = reports[0].choice
    assert choice.engine in ("native", "torch") and choice.explanation.startswith("auto chose ")
    text = format_report(reports)
    assert "native" in text and "torch" in text and "chosen" in text and choice.explanation in text


def test_auto_runs_the_measured_choice_and_says_why(tuned, table, auto_skill, monkeypatch):
    path, _, _ = tuned
    table.write_bytes(path.read_bytes())
    monkeypatch.setattr(auto_skill, "constraints", Constraints(startup_budget_s=1e9))
    engines = json.loads(table.read_text())["entries"].popitem()[1]["engines"]
    fastest = min(engines, key=lambda name: engines[name]["median_ms"])
    batch = auto_skill.example_inputs(1, 16)
    result = auto_skill.process(batch)
    assert result.choice.startswith(f"auto chose {fastest}: "), result.choice
    assert "at batch 1, seq 16, measured " in result.choice
    assert decisions.machine_fingerprint()["cpu"] in result.choice
    assert (result.backend, result.engine) == ("cpu", fastest), result.summary()
    assert result.summary()["choice"] == result.choice

    # Whichever engine the table says is faster is the one that runs, never the fixed order's.
    key, entry = json.loads(table.read_text())["entries"].popitem()
    for winner, loser in (("torch", "native"), ("native", "torch")):
        entry["engines"][winner]["median_ms"], entry["engines"][loser]["median_ms"] = 1.0, 50.0
        write_table(table, {key: entry})
        result = auto_skill.process(batch)
        assert (result.backend, result.engine) == ("cpu", winner), result.summary()
        assert result.choice.startswith(f"auto chose {winner}: 1 ms vs {loser} 50 ms")
        assert (
            result.fallback_reason is None
        )  # torch chosen: the native executor left out on purpose



def test_auto_runs_onnxruntime_when_the_table_chose_it(table, auto_skill, monkeypatch):
    """onnxruntime is never in the fixed order (used when asked for), but a measured choice asks."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(auto_skill, "constraints", Constraints(startup_budget_s=1e9))
    key, entry = entry_for(auto_skill, {"onnxruntime": row(1.0, target="onnxruntime"),
                                        "torch": row(50.0, reference=True)})  # fmt: skip
    write_table(table, {key: entry})
    result = auto_skill.process(auto_skill.example_inputs(1, 16))
    assert (result.backend, result.engine) == ("onnxruntime", "onnxruntime"), result.summary()
    assert result.choice.startswith("auto chose onnxruntime: 1 ms vs torch 50 ms"), result.choice
    assert result.fallback_reason is None and result.parity.error <= 1e-4

def test_without_an_entry_auto_starts_nothing_that_converts_and_says_so(table, auto_skill):
    fresh = load_skill("BertModel", model=auto_skill.model)
    batch = auto_skill.example_inputs(1, 16)
    result = fresh.process(batch)
    # The fixed order's first target here converts the model (OpenVINO): its cost is unknown
    # until measured, so under the default start-up budget PyTorch eager ran, and says why.
    assert fresh.get_default_device_with_mojo_max() != "cpu"
    assert (result.backend, result.engine, result.fallback_reason) == ("cpu", "torch", None)
    assert result.choice.startswith("auto: no measurement for BertModel at batch 1, seq 16 on "
                                    "this machine; fixed order (run `generate-skills tune`); "
                                    "within the start-up budget (5 s) auto starts no engine")  # fmt: skip
    assert f"not started: {fresh.get_default_device_with_mojo_max()}" in result.choice
    assert "native), so PyTorch eager ran" in result.choice
    # No budget: today's fixed order, conversions and all.
    unbudgeted = load_skill("BertModel", model=auto_skill.model,
                            constraints=Constraints(startup_budget_s=None))  # fmt: skip
    ran = unbudgeted.process(batch)
    assert ran.backend == unbudgeted.get_default_device_with_mojo_max()
    assert ran.choice == ("auto: no measurement for BertModel at batch 1, seq 16 on this "
                          "machine; fixed order (run `generate-skills tune`)")  # fmt: skip
    explicit = load_skill("BertModel", model=auto_skill.model, device="cpu")
    assert explicit.process(batch).choice is None


def test_an_entry_from_another_fingerprint_is_ignored_and_the_change_named(table, auto_skill):
    key, entry = entry_for(auto_skill, {"torch": row(1.0, reference=True), "native": row(9.0)})
    entry["fingerprint"] = copy.deepcopy(entry["fingerprint"])
    entry["fingerprint"]["versions"]["torch"] = "0.0.1"
    entry["fingerprint"]["cores"] = 4096
    write_table(table, {key: entry})
    batch = auto_skill.example_inputs(1, 16)
    assert decisions.choose(auto_skill, batch) is None
    result = auto_skill.process(batch)
    torch_now = decisions.machine_fingerprint()["versions"]["torch"]
    assert "is ignored, the machine fingerprint changed" in result.choice
    assert f"torch 0.0.1 -> {torch_now}" in result.choice and "cores 4096 -> " in result.choice
    assert result.backend == "cpu" and "auto starts no engine whose first call" in result.choice
    # The same entry with this machine's fingerprint is used.
    key, entry = entry_for(auto_skill, {"torch": row(1.0, reference=True), "native": row(9.0)})
    write_table(table, {key: entry})
    assert decisions.choose(auto_skill, batch).engine == "torch"


def test_an_engine_that_failed_parity_is_never_chosen(table, auto_skill, monkeypatch):
    monkeypatch.setattr(auto_skill, "constraints", Constraints(startup_budget_s=1e9))
    engines = {"native": row(0.5, error=0.3, passed=False), "torch": row(9.0, reference=True)}
    key, entry = entry_for(auto_skill, engines)
    write_table(table, {key: entry})
    batch = auto_skill.example_inputs(1, 16)
    for objective in ("latency", "throughput"):
        choice = decisions.choose(auto_skill, batch, Constraints(objective=objective,
                                                                 startup_budget_s=1e9))  # fmt: skip
        assert choice.engine == "torch"
        assert choice.excluded == {"native": "parity failed: error 3.0e-01 > tolerance 1e-04"}
    result = auto_skill.process(batch)
    assert (result.backend, result.engine) == ("cpu", "torch")
    assert "not eligible: native: parity failed" in result.choice
    # Passed, but above the caller's own error bound: not chosen either.
    engines["native"] = row(0.5, error=5e-5)
    write_table(table, dict([entry_for(auto_skill, engines)]))
    assert decisions.choose(auto_skill, batch, Constraints(max_error=1e-5)).engine == "torch"
    assert decisions.choose(auto_skill, batch, Constraints(startup_budget_s=1e9)).engine == "native"
    # When every engine failed, nothing is chosen and the reasons are given.
    engines = {"native": row(0.5, passed=False, error=0.3), "torch": row(9.0, passed=False)}
    write_table(table, dict([entry_for(auto_skill, engines)]))
    choice = decisions.decide(auto_skill, batch)
    assert not choice and "no measured engine for BertModel" in choice.explanation


def test_a_corrupt_table_is_reported_never_fatal_and_replaced_only_by_a_tune(table, auto_skill):
    table.write_text("{not json", encoding="utf-8")
    batch = auto_skill.example_inputs(1, 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choice = decisions.decide(auto_skill, batch)
    assert caught == [] and choice.engine is None
    result = auto_skill.process(batch)
    assert result.backend == "cpu" and "auto starts no engine whose first call" in result.choice
    assert f"the decision table {table} is not used (not valid JSON: " in result.choice
    with pytest.raises(DecisionTableError, match="not valid JSON"):  # asked directly: refused
        UnifiedBackendManager().get_optimal_backend(auto_skill)
    assert table.read_text(encoding="utf-8") == "{not json"  # the read side never writes
    # Another format version is refused the same way.
    write_table(table, {})
    table.write_text(table.read_text().replace(f'"version": {decisions.VERSION}', '"version": 99'))
    decisions.clear_cache()
    assert "format version 99; this skillmill reads version 1" in decisions.decide(
        auto_skill, batch).explanation  # fmt: skip
    # The next tune's write moves the bad file aside, says so, and writes a fresh table.
    table.write_text("{not json", encoding="utf-8")
    key, entry = entry_for(auto_skill, {"torch": row(2.0, reference=True)})
    note = decisions.record({key: entry}, table)
    assert note and "moved it to" in note and "not valid JSON" in note
    assert table.with_name("decisions.json.corrupt").read_text() == "{not json"
    assert decisions.choose(auto_skill, batch).engine == "torch"


def test_the_startup_budget_and_memory_cap_exclude_engines(table, auto_skill, monkeypatch):
    engines = {"native": row(1.0, first_call_s=30.0), "torch": row(4.0, first_call_s=0.2,
                                                                   reference=True)}  # fmt: skip
    write_table(table, dict([entry_for(auto_skill, engines)]))
    batch = auto_skill.example_inputs(1, 16)
    choice = decisions.choose(auto_skill, batch, Constraints())
    assert choice.engine == "torch"
    assert choice.excluded == {"native": "first call 30.0 s > startup budget 5 s"}
    assert decisions.choose(auto_skill, batch, Constraints(startup_budget_s=60)).engine == "native"
    capped = decisions.choose(auto_skill, batch, Constraints(startup_budget_s=60,
                                                             memory_cap_bytes=2**20))  # fmt: skip
    assert capped is None  # both grew the process by 10 MB
    monkeypatch.setattr(auto_skill, "constraints", Constraints(startup_budget_s=60))
    result = auto_skill.process(batch)
    assert (result.backend, result.engine) == ("cpu", "native")
    monkeypatch.setattr(auto_skill, "constraints", Constraints())
    assert auto_skill.process(batch).engine == "torch"


def test_get_optimal_backend_picks_the_bucket_the_objective_asks_about(table, auto_skill):
    manager = UnifiedBackendManager()
    none = manager.get_optimal_backend(auto_skill)
    assert not none and "no measurement for BertModel at any shape" in none.explanation
    small = entry_for(auto_skill, {"native": row(1.0), "torch": row(3.0, reference=True)})
    large = entry_for(auto_skill, {"native": row(90.0), "torch": row(40.0, reference=True)},
                      Bucket(32, seq=128))  # fmt: skip
    write_table(table, dict([small, large]))
    latency = manager.get_optimal_backend(auto_skill, Constraints(startup_budget_s=60))
    assert (latency.engine, latency.bucket) == ("native", B1S16)
    throughput = manager.get_optimal_backend(auto_skill, Constraints(objective="throughput"))
    assert (throughput.engine, throughput.bucket) == ("torch", Bucket(32, seq=128))
    assert "at batch 32, seq 128" in throughput.explanation and "items/s" in throughput.explanation
    assert manager.get_optimal_backend(auto_skill, shape=(1, 9)).bucket == B1S16


def test_tune_never_times_a_fallback_as_the_engine_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("SKILLMILL_NATIVE", "0")  # the cpu target's native executor is off
    path = tmp_path / "decisions.json"
    [report] = UnifiedBackendManager(path).benchmark_backends(
        "BertModel", model="tiny", shapes=[(2, 8)], engines=["native", "torch"], repeats=3
    )
    native, torch_row = report.entry["engines"]["native"], report.entry["engines"]["torch"]
    assert "median_ms" not in native and "p95_ms" not in native
    assert native["fallback_reason"].startswith("asked for native, torch on cpu ran instead: ")
    assert "SKILLMILL_NATIVE=0" in native["fallback_reason"]
    assert torch_row["runs"] == 3 and torch_row["median_ms"] > 0
    assert report.choice.engine == "torch" and report.bucket == Bucket(2, seq=8)
    assert "not eligible: native: did not run as itself in the tune" in report.choice.explanation


def test_shape_buckets():
    import torch

    skill = type("S", (), {"main_input_names": ("input_ids",)})()
    ids = {"input_ids": torch.zeros(3, 13, dtype=torch.long)}
    assert decisions.shape_bucket(skill, ids) == Bucket(3, seq=16)
    assert (
        decisions.shape_bucket(skill, {"input_ids": torch.zeros(1, 16, dtype=torch.long)}).key()
        == "b1.s16"
    )
    assert (
        decisions.shape_bucket(skill, {"input_ids": torch.zeros(1, 17, dtype=torch.long)}).seq == 32
    )
    image = decisions.shape_bucket(skill, {"pixel_values": torch.zeros(2, 3, 224, 160)})
    assert (image.key(), image.describe()) == ("b2.hw224x160", "batch 2, image 224x160")


def test_weights_hash_follows_the_weights(auto_skill):
    import torch

    same = load_skill("BertModel", model="tiny", device="cpu")
    assert decisions.weights_hash(same) == decisions.weights_hash(auto_skill)
    other = load_skill("BertModel", model=copy.deepcopy(auto_skill.model), device="cpu")
    with torch.no_grad():
        next(other.model.parameters()).view(-1)[0] += 1.0
    assert decisions.weights_hash(other) != decisions.weights_hash(auto_skill)


def test_tune_command_prints_a_table_and_the_choice(tmp_path, monkeypatch):
    from skillmill.generator.cli import main

    monkeypatch.setenv(decisions.ENV_PATH, str(tmp_path / "decisions.json"))
    runner = CliRunner()
    out = runner.invoke(main, ["tune", "--skill", "BertModel", "--model", "tiny", "--shapes",
                               "1x8", "--repeats", "2", "--engines", "torch"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "BertModel (tiny) at 1x8 (batch 1, seq 8)" in out.output
    assert "median ms" in out.output and "first call s" in out.output
    assert "choice: auto chose torch: " in out.output
    assert (tmp_path / "decisions.json").exists()
    bad = runner.invoke(
        main, ["tune", "--skill", "BertModel", "--model", "tiny", "--shapes", "1y8"]
    )
    assert bad.exit_code == 2 and "'1y8' is not BATCHxSEQ" in bad.output
    helped = runner.invoke(main, ["tune", "--help"])
    words = " ".join(helped.output.split())
    assert "figures go to the decision table ($SKILLMILL_DECISIONS" in words
    assert "--include-compiled Also measure max and mojo" in words


@pytest.mark.parametrize("bad, words", [
    ({"memory_cap_bytes": 0}, "memory_cap_bytes must be a positive number of bytes"),
    ({"memory_cap_bytes": -5}, "no engine's first call can meet it"),
    ({"max_error": 0.0}, "max_error must be a positive number"),
    ({"max_error": float("nan")}, "max_error must be a positive number"),
    ({"startup_budget_s": -1}, "startup_budget_s must be seconds >= 0, or None"),
    ({"precisions": ()}, "precisions must be a non-empty tuple"),
    ({"precisions": "float32"}, "precisions must be a non-empty tuple"),
    ({"precisions": ("fp64",)}, "unknown precisions"),
    ({"objective": "speed"}, "objective must be 'latency' or 'throughput'"),
])  # fmt: skip
def test_constraints_no_engine_could_meet_are_refused_up_front(bad, words):
    with pytest.raises(ValueError, match=words):
        Constraints(**bad)


def test_a_precision_the_constraints_forbid_is_refused_at_load(auto_skill):
    with pytest.raises(ConstraintsUnsatisfiable, match="computes at bf16 .* do not allow .float32"):
        load_skill("BertModel", model=auto_skill.model, precision="bf16",
                   constraints=Constraints(precisions=("float32",)))  # fmt: skip


def test_constraints_the_measurements_rule_out_are_refused_with_each_reason(table, auto_skill,
                                                                            monkeypatch):  # fmt: skip
    engines = {"native": row(1.0, error=2e-6), "openvino": row(2.0, error=3e-6, target="openvino")}
    write_table(table, dict([entry_for(auto_skill, engines)]))
    batch = auto_skill.example_inputs(1, 16)
    manager = UnifiedBackendManager()
    cases = [
        (Constraints(memory_cap_bytes=2**20), "native: peak memory +10 MB > cap 1 MB; openvino: "
                                              "peak memory +10 MB > cap 1 MB"),
        (Constraints(max_error=1e-6), "native: error 2e-06 > max_error 1e-06; openvino: error "
                                      "3e-06 > max_error 1e-06"),
    ]  # fmt: skip
    for constraints, reasons in cases:
        choice = decisions.decide(auto_skill, batch, constraints)
        assert not choice and choice.unsatisfiable and reasons in choice.explanation
        with pytest.raises(ConstraintsUnsatisfiable, match="rule out every engine measured"):
            manager.get_optimal_backend(auto_skill, constraints, shape=(1, 16))
        monkeypatch.setattr(auto_skill, "constraints", constraints)
        with pytest.raises(ConstraintsUnsatisfiable) as refused:
            auto_skill.process(batch)  # never a silent fall-back past the caller's own limits
        assert reasons in str(refused.value) and "relax them" in str(refused.value)
    # One engine meeting the limits but over the start-up budget is no contradiction: the
    # call goes on (the fixed order, within the budget) and says why.
    engines["native"] = row(1.0, error=2e-6, first_call_s=30.0)
    write_table(table, dict([entry_for(auto_skill, engines)]))
    monkeypatch.setattr(auto_skill, "constraints", Constraints(max_error=2.5e-6))
    result = auto_skill.process(batch)
    assert result.backend == "cpu" and "first call 30.0 s > startup budget 5 s" in result.choice

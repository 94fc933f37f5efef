"""The MCP tools answer from the backend manager (issue 22): benchmark_hardware_targets measures
through UnifiedBackendManager and fills the decision table; get_hardware_recommendations(model_id,
use_case) answers from it, and says plainly when it has no measurement."""

from __future__ import annotations

import copy
import json
import os

import pytest

from skillmill.runtime import decisions
from skillmill.runtime.decisions import Bucket
from skillmill.serving import tools


def row(median_ms: float, peak_mb: float, reference: bool = False) -> dict:
    parity = {"max_relative_error": 0.0 if reference else 1e-7, "tolerance": 1e-4, "passed": True,
              **({"reference": True} if reference else {})}  # fmt: skip
    return {"target": "cpu", "median_ms": median_ms, "p95_ms": median_ms * 1.2,
            "throughput": 1000.0 / median_ms, "first_call_s": 0.2,
            "peak_rss_delta_bytes": int(peak_mb * 2**20), "precision": "float32",
            "parity": parity}  # fmt: skip


def write(path, skill, rows_by_bucket: dict[Bucket, dict], fingerprint: dict | None = None) -> None:
    entries = {}
    for bucket, engines in rows_by_bucket.items():
        entry = decisions.new_entry(skill, bucket, (bucket.batch, bucket.seq), engines, 5)
        if fingerprint is not None:
            entry["fingerprint"] = fingerprint
        entries[decisions.entry_key(skill.model_class_name, entry["weights"], bucket,
                                    "float32")] = entry  # fmt: skip
    temporary = path.with_name("table.tmp")
    temporary.write_text(json.dumps({"format": decisions.FORMAT, "version": decisions.VERSION,
                                     "entries": entries}))  # fmt: skip
    os.replace(temporary, path)


def test_without_a_measurement_the_answer_says_so_plainly(table):
    answer = tools.get_hardware_recommendations("BertModel", "low-latency")
    skill = tools._skill("BertModel", "tiny", "cpu")
    assert answer["measured"] is False and answer["engine"] is None
    assert answer["recommended"] == skill.get_default_device_with_mojo_max()
    assert answer["note"].startswith("no measurement for BertModel at any shape")
    assert (
        "not a measured choice" in answer["note"] and "benchmark_hardware_targets" in answer["note"]
    )
    assert "engines" not in answer and answer["table"] == str(table)
    assert answer["model_id"] == "BertModel" and "cpu" in answer["present_and_supported"]
    json.dumps(answer)  # what the MCP server sends


def test_each_use_case_answers_from_the_table(table):
    skill = tools._skill("BertModel", "tiny", "cpu")
    write(table, skill, {
        Bucket(1, seq=16): {"native": row(1.0, 60), "torch": row(3.0, 5, reference=True)},
        Bucket(32, seq=128): {"native": row(90.0, 400), "torch": row(40.0, 150, reference=True)},
    })  # fmt: skip
    latency = tools.get_hardware_recommendations("BertModel", "low-latency")
    assert (latency["measured"], latency["engine"], latency["recommended"]) == (
        True,
        "native",
        "cpu",
    )
    assert latency["load_with"] == {"device": "cpu"} and latency["bucket"] == "batch 1, seq 16"
    assert latency["explanation"].startswith("auto chose native: 1 ms vs torch 3 ms at batch 1")
    assert latency["engines"]["native"]["not_eligible"] is None
    assert latency["engines"]["torch"]["peak_growth_mb"] == 5.0 and "note" not in latency
    throughput = tools.get_hardware_recommendations("BertModel", "throughput")
    assert (throughput["engine"], throughput["bucket"]) == ("torch", "batch 32, seq 128")
    assert throughput["load_with"] == {"device": "cpu", "native": False}
    assert "items/s" in throughput["explanation"]
    memory = tools.get_hardware_recommendations("BertModel", "memory")
    assert (memory["engine"], memory["bucket"]) == ("torch", "batch 32, seq 128")
    assert memory["explanation"].startswith("chose torch for memory: its first call grew the "
                                            "process by +150 MB vs native +400 MB")  # fmt: skip
    with pytest.raises(tools.ToolFailure, match="use_case must be one of low-latency"):
        tools.get_hardware_recommendations("BertModel", "fastest")


def test_a_measurement_from_another_machine_is_no_measurement(table):
    skill = tools._skill("BertModel", "tiny", "cpu")
    other = copy.deepcopy(decisions.machine_fingerprint())
    other["cpu"] = "Some Other CPU"
    write(table, skill, {Bucket(1, seq=16): {"native": row(1.0, 60)}}, fingerprint=other)
    answer = tools.get_hardware_recommendations("BertModel", "low-latency")
    assert answer["measured"] is False and "fingerprint changed" in answer["note"]
    assert "'Some Other CPU' -> " in answer["note"]


def test_benchmark_measures_through_the_manager_and_feeds_the_recommendation(table):
    with pytest.raises(tools.ToolFailure, match="unknown engine.*tpu; known: native"):
        tools.benchmark_hardware_targets("BertModel", engines=["torch", "tpu"])
    bench = tools.benchmark_hardware_targets("BertModel", batch_size=1, seq_len=8, repeats=2,
                                             engines=["torch"])  # fmt: skip
    [torch_row] = bench["results"]
    assert torch_row["engine"] == "torch" and torch_row["ran"] and torch_row["runs"] == 2
    assert torch_row["parity_passed"] is True and torch_row["median_ms"] > 0
    assert bench["fastest"] == bench["auto_choice"] == "torch"
    assert bench["recorded_in"] == str(table) and bench["bucket"] == "batch 1, seq 8"
    assert bench["explanation"].startswith("auto chose torch: ")
    stored = json.loads(table.read_text())["entries"]
    assert [key.split("|")[2] for key in stored] == ["b1.s8"]
    answer = tools.get_hardware_recommendations("BertModel", "low-latency")
    assert (answer["measured"], answer["engine"], answer["bucket"]) == (
        True,
        "torch",
        "batch 1, seq 8",
    )

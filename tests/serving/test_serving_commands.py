"""The command-line entry points: `serve` refuses what it cannot serve, with the reason;
`bench serve`'s load generator measures a live server with zero errors."""

import asyncio

import httpx
import pytest
from click.testing import CliRunner

from skillmill.generator.cli import main
from skillmill.measure.bench import serving as loadtest


def test_serve_and_mcp_are_registered():
    runner = CliRunner()
    for args in (["serve", "--help"], ["mcp", "--help"], ["bench", "serve", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
    assert "--batch-size" in runner.invoke(main, ["serve", "--help"]).output


def test_serve_refuses_a_model_it_cannot_serve():
    result = CliRunner().invoke(
        main, ["serve", "--skill", "ViTModel", "--model", "tiny", "--device", "cpu"]
    )
    assert result.exit_code != 0
    assert "serves text encoders" in result.output


def test_serve_refuses_an_unknown_class():
    result = CliRunner().invoke(main, ["serve", "--skill", "NoSuchModel", "--model", "tiny"])
    assert result.exit_code != 0 and "NoSuchModel" in result.output


def test_load_generator_against_a_live_server(tiny_bert_server):
    raw = asyncio.run(
        loadtest._drive(
            tiny_bert_server.url,
            "embeddings",
            tiny_bert_server.served.id,
            clients=8,
            total=64,
            time_limit=60,
        )
    )
    assert len(raw["latencies"]) == 64 and raw["errors"] == []
    assert not raw["stopped_by_time_limit"]
    # The server is shared with other tests: its counters are read as deltas over the measured
    # phase, which sent 64 one-sentence requests, so exactly 64 rows in at most 64 calls.
    rows, calls = loadtest._batch_totals(raw["metrics"])
    rows_before, calls_before = loadtest._batch_totals(raw["metrics_before"])
    assert rows - rows_before == 64
    assert 1 <= calls - calls_before <= 64


def test_mean_batch_leaves_out_what_came_before():
    def text(rows, calls):
        return (
            f'skillmill_batch_size_sum{{kind="embedding"}} {rows}\n'
            f'skillmill_batch_size_count{{kind="embedding"}} {calls}\n'
        )

    warm = text(16, 16)  # 16 one-row warm-up calls
    after = text(16 + 64, 16 + 8)  # then 64 rows in 8 calls
    assert loadtest._mean_batch(after, warm) == 8.0
    assert loadtest._mean_batch(after) == 80 / 24
    assert loadtest._mean_batch(warm, warm) is None
    assert loadtest._mean_batch("no histogram yet") is None


def test_percentiles():
    values = list(range(1, 101))
    assert loadtest._percentile(values, 50) == 50 and loadtest._percentile(values, 95) == 95


def test_batching_on_vs_off_under_the_same_load(gpt2_served):
    """CI's load comparison (a few seconds): the same chat load (16 keep-alive clients, 64
    requests of 16 greedy tokens) against two fresh servers of the same model, batching on (16
    rows) and off (1 row). Each run reads its own server's counters, over the measured phase
    only. Measured here at load average 5-6: 8 calls vs 64, throughput 2.7-6x."""
    from skillmill.serving.app import ServeSettings
    from skillmill.serving.server import start_server

    total, runs = 64, {}
    for label, size in (("on", 16), ("off", 1)):
        settings = ServeSettings(batch_size=size, max_wait_ms=5.0)
        with start_server(gpt2_served, settings) as server:
            assert httpx.get(server.url + "/health").json()["batching"]["enabled"] == (size > 1)
            raw = asyncio.run(
                loadtest._drive(server.url, "chat", gpt2_served.id, 16, total, time_limit=60)
            )
        rows, calls = loadtest._batch_totals(raw["metrics"])
        rows_before, calls_before = loadtest._batch_totals(raw["metrics_before"])
        runs[label] = {
            "errors": raw["errors"],
            "ok": len(raw["latencies"]),
            "rows": rows - rows_before,
            "calls": calls - calls_before,
            "rps": len(raw["latencies"]) / raw["seconds"],
        }
    on, off = runs["on"], runs["off"]
    assert [on["errors"], off["errors"]] == [[], []], runs
    assert on["ok"] == off["ok"] == total, runs
    assert on["rows"] == off["rows"] == total, runs  # every request is one row
    assert off["calls"] == total, runs  # off: one model call per request
    assert on["calls"] <= total / 2, runs  # on: at least two rows per call on average
    assert on["rps"] > off["rps"], runs


@pytest.mark.slow
def test_batching_on_and_off_side_by_side():
    report = loadtest.run_comparison(workload="chat", clients=16, total=200, time_limit=300)
    assert [run["errors"] for run in report["runs"]] == [0, 0]
    assert report["runs"][0]["mean_batch_rows"] > 1.0
    assert report["runs"][1]["mean_batch_rows"] == 1.0

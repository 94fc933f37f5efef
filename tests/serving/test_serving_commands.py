"""The command-line entry points: `serve` refuses what it cannot serve, with the reason;
`bench serve`'s load generator measures a live server with zero errors."""

import asyncio

import pytest
from click.testing import CliRunner

from skillmill.generator.cli import main
from skillmill.serving import loadtest


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
    assert loadtest._mean_batch(raw["metrics"]) >= 1.0


def test_percentiles():
    values = list(range(1, 101))
    assert loadtest._percentile(values, 50) == 50 and loadtest._percentile(values, 95) == 95


@pytest.mark.slow
def test_batching_on_and_off_side_by_side():
    report = loadtest.run_comparison(workload="chat", clients=16, total=200, time_limit=300)
    assert [run["errors"] for run in report["runs"]] == [0, 0]
    assert report["runs"][0]["mean_batch_rows"] > 1.0
    assert report["runs"][1]["mean_batch_rows"] == 1.0

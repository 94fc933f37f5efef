"""`generate-skills quantize` on the real all-MiniLM-L6-v2: the size, quality and speed table,
the quality gate that refuses a scheme with its figure, and the metrics underneath."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from skillmill.generator.cli import main
from skillmill.ir.mojomodel import load_mojomodel
from skillmill.measure import quantize as qr


def test_the_shipped_sentences_give_at_least_500_pairs():
    texts = qr.sentences()
    assert len(texts) == len(set(texts)) == 64 and len(texts) * (len(texts) - 1) // 2 >= 500


def test_pairwise_spearman_sees_a_changed_ranking():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((20, 8))
    assert qr.pairwise_spearman(emb, emb) == (pytest.approx(1.0), 190)
    assert qr.pairwise_spearman(emb, emb + 0.01 * rng.standard_normal(emb.shape))[0] > 0.99
    assert qr.pairwise_spearman(emb, rng.standard_normal((20, 8)))[0] < 0.5


def test_gate_names_the_figure_and_the_threshold():
    assert qr.gate_failures({"min_cosine": 0.999, "spearman": 0.999}) == []
    assert qr.gate_failures({"min_cosine": 0.95, "spearman": 0.999}) == ["min_cosine 0.9500 < 0.99"]


def test_q4_0_on_minilm_is_refused_by_the_gate_and_writes_nothing(minilm_dir, tmp_path):
    out = tmp_path / "minilm.q4_0.mojomodel"
    result = CliRunner().invoke(main, ["quantize", "--skill", "BertModel", "--model", minilm_dir, "--scheme", "q4_0",
                                       "--out", str(out), "--shapes", "", "--no-ort"])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "REFUSED: q4_0 misses the quality gate: min_cosine 0.9" in result.output
    assert "< 0.99" in result.output and not out.exists()


@pytest.mark.slow
def test_q8_0_on_minilm_passes_the_gate_at_a_quarter_the_size(minilm_dir, tmp_path):
    out, report_path = tmp_path / "minilm.q8_0.mojomodel", tmp_path / "report.json"
    result = CliRunner().invoke(main, ["quantize", "--skill", "BertModel", "--model", minilm_dir, "--scheme", "q8_0",
                                       "--out", str(out), "--shapes", "", "--no-ort", "--json", str(report_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    variants = json.loads(report_path.read_text())["variants"]
    q8, fp32 = variants["native-q8_0"], variants["native-float32"]
    assert q8["file_bytes"] <= 0.28 * fp32["file_bytes"]  # 9 bits a weight with the scales
    assert q8["quality"]["min_cosine"] >= 0.999 and q8["quality"]["spearman"] >= 0.999
    assert "quantize_q8_0" in load_mojomodel(out).metadata["optimizations_applied"]


@pytest.mark.slow
def test_int8_minilm_is_a_quarter_the_size_and_keeps_its_rankings(minilm_dir, tmp_path):
    """Issue 19's floors on real weights: file <= 0.26x float32, every embedding's cosine >=
    0.99, Spearman of 2,016 pairwise similarities >= 0.995; ONNX Runtime's quantize_dynamic
    measured in the same run; each variant timed (in its own process)."""
    out, report_path = tmp_path / "minilm.int8.mojomodel", tmp_path / "report.json"
    result = CliRunner().invoke(main, ["quantize", "--skill", "BertModel", "--model", minilm_dir, "--scheme", "int8",
                                       "--out", str(out), "--shapes", "1x16", "--repeats", "2",
                                       "--json", str(report_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    variants = report["variants"]
    int8, fp32 = variants["native-int8"], variants["native-float32"]
    assert int8["file_bytes"] <= 0.26 * fp32["file_bytes"]
    assert int8["quality"]["min_cosine"] >= 0.99 and int8["quality"]["spearman"] >= 0.995
    assert int8["quality"]["pairs"] == 2016
    assert set(variants) == {"torch", "native-float32", "native-int8", "ort-float32", "ort-int8"}
    assert 0 < variants["ort-int8"]["quality"]["min_cosine"] <= 1
    assert all(isinstance(v["ms"]["1x16"], float) for v in variants.values()), variants
    assert report["machine"].startswith("machine: ") and not report["refused"]
    loaded = load_mojomodel(out)
    assert loaded.metadata["quantization"]["scheme"] == "int8"
    assert "quantize_int8" in loaded.metadata["optimizations_applied"]


@pytest.mark.slow
def test_int8_decoder_keeps_the_next_token_distribution():
    """1,024 positions of a random Llama: int8 within issue 19's KL bound; q4_0 measured."""
    int8 = qr.decoder_quality("int8")
    assert int8["positions"] == 1024 and int8["mean_kl"] <= 0.01
    q4 = qr.decoder_quality("q4_0")
    assert int8["mean_kl"] < q4["mean_kl"] and int8["top1_agreement"] > q4["top1_agreement"]


def test_q8_0_decoder_keeps_the_next_token_distribution():
    """Issue 19's floors for q8_0 on a small run (128 positions of a random Llama): KL far
    below 0.01.  Top-1 agreement is held to 90%, not the issue's 99%: random weights give
    nearly flat distributions (logit std ~0.3, top-1 leads top-2 by ~0.06 at the median), so
    the bound that matters is that every top-1 that changes led by a hair."""
    q8 = qr.decoder_quality("q8_0", batch=2, seq=64)
    assert q8["positions"] == 128 and q8["mean_kl"] <= 0.01 and q8["max_kl"] <= 1e-3, q8
    assert q8["top1_agreement"] >= 0.9, q8
    assert q8["worst_flipped_margin"] <= 0.1 * q8["logit_std"], q8


def test_linear_speed_times_every_weight_format():
    row = qr.linear_speed(8, 40, 1, budget_s=0.01)
    assert {"float32_ms", "float32-packed_ms", "q8_0_ms", "q4_0_ms"} <= set(row) and row["m"] == 1
    assert all(row[key] > 0 for key in row if key.endswith("_ms"))

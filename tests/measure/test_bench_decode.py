"""The decode benchmark's own arithmetic: weight bytes per step (a tied embedding once, the
position table not at all), the bandwidth-limit and speed-up figures from worker rows."""

from __future__ import annotations

import transformers

from skillmill.measure.bench import decode


def test_weight_bytes_count_tied_embeddings_once_and_skip_positions():
    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=100)
    model = transformers.GPT2LMHeadModel(config)
    every = {p.data_ptr(): p for p in model.parameters()}
    want = sum(p.numel() * 4 for name, p in model.named_parameters() if "wpe" not in name)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert decode.weight_bytes(model) == want
    assert decode.weight_bytes(model) < sum(p.numel() * 4 for p in every.values())


def test_bandwidth_is_measured():
    assert 0.1 < decode.measure_bandwidth(megabytes=16, repeats=2) < 10_000


def test_driver_reports_limits_and_speedups(monkeypatch):
    speeds = {"native": 30.0, "torch": 12.0}

    def fake_worker(module, args, timeout):
        spec = decode.json.loads(args[1])
        return ({"model": spec["model"], "batch": spec["batch"], "asked": spec["engine"],
                 "engine": spec["engine"], "tokens_per_s": speeds[spec["engine"]] * spec["batch"],
                 "weight_bytes": 500_000_000, "prefill_ms": 1.0, "first_tokens": [1, 2],
                 "fallback_reason": None}, "", "")  # fmt: skip

    monkeypatch.setattr(decode, "json_from_module", fake_worker)
    monkeypatch.setattr(decode, "measure_bandwidth", lambda: 20.0)
    lines = []
    result = decode.run_decode_benchmark(["gpt2-124m"], [1, 8], threads=1, log=lines.append)
    assert result["speedup_native_over_torch"] == {"gpt2-124m batch 1": 2.5, "gpt2-124m batch 8": 2.5}
    row = next(r for r in result["rows"] if r["asked"] == "native" and r["batch"] == 8)
    assert row["bandwidth_limit_tokens_per_s"] == 8 * 20.0e9 / 500_000_000  # 320 tok/s
    assert abs(row["fraction_of_limit"] - 240.0 / 320.0) < 1e-12
    assert lines[0].startswith("machine:") and any("native / torch eager = 2.50x" in ln for ln in lines)

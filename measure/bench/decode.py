"""Decode speed: tokens per second of greedy generation through the one decoding loop, each
engine in its own process, against the memory-bandwidth limit measured in the same run.

    generate-skills bench decode [--models gpt2-124m,llama-135m] [--batches 1,8] [--json PATH]
    python -m skillmill.measure.bench.decode --worker SPEC      (one model, engine and batch)

Models are random weights from their configs (speed does not depend on the values): GPT-2
small (124M) and a Llama-style model shaped like SmolLM-135M.  Engines:

- ``native``: skillmill's executor on the decode graph with the explicit KV cache
  (engines/native/decode.py), as ``skill.generate`` runs it;
- ``torch``: PyTorch eager with transformers' own ``DynamicCache`` (``KVCacheStepper``), through
  the same loop.

Each (model, engine, batch) runs in a fresh process: a warm-up generation of the same shape
(conversion, plans), then the timed one: ``PROMPT`` tokens of prompt and exactly ``NEW`` new
tokens per row (eos is off).  Tokens/s counts new tokens over the decode steps (the prefill is
timed apart).  The bandwidth limit: a step reads every weight once whatever the batch, so
limit = batch x bandwidth / weight bytes, with the bandwidth from a large numpy copy."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

from ..harness import json_from_module

FORMAT = "skillmill-bench-decode"
VERSION = 1
PROMPT = 32
NEW = 128
BATCHES = (1, 8)
ENGINES = ("native", "torch")
TIMEOUT_S = 1500.0
# Random-weight models from their configs: (skill class, config class, config fields).
MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "gpt2-124m": ("GPT2LMHeadModel", "GPT2Config",
                  {"n_layer": 12, "n_embd": 768, "n_head": 12, "n_positions": 1024, "vocab_size": 50257}),
    "llama-135m": ("LlamaForCausalLM", "LlamaConfig",  # SmolLM-135M's shape
                   {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                    "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
                    "max_position_embeddings": 2048, "rope_theta": 10000.0, "tie_word_embeddings": True,
                    "rms_norm_eps": 1e-5, "hidden_act": "silu"}),
}  # fmt: skip


def measure_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """GB/s of a large numpy copy (bytes read + bytes written), best of ``repeats``."""
    source = np.ones(megabytes << 18, np.float32)  # megabytes MiB
    target = np.empty_like(source)
    np.copyto(target, source)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    return 2 * source.nbytes / best / 1e9


def weight_bytes(model: Any) -> int:
    """Bytes a decode step reads: every parameter once (a tied embedding counted once), less
    the position table, of which a step reads one row."""
    seen: dict[int, int] = {}
    for name, param in model.named_parameters():
        if "wpe" in name or "position_embeddings" in name:
            continue
        seen[param.data_ptr()] = param.numel() * param.element_size()
    return sum(seen.values())


# ---- the worker: one model, engine and batch, in its own process ----------------------------
def _skill(model_name: str, engine: str):
    import transformers

    from skillmill import load_skill

    class_name, config_name, fields = MODELS[model_name]
    config = getattr(transformers, config_name)(**fields)
    return load_skill(class_name, model=config, native=(engine == "native"))


def _generate(skill: Any, prompts: list[list[int]]) -> dict[str, Any]:
    from skillmill.runtime.generation.api import choose_decoder
    from skillmill.runtime.generation.loop import Row, generate
    from skillmill.runtime.generation.sampling import SamplingParams
    from skillmill.runtime.generation.textcodec import TextCodec

    decoder, _ = choose_decoder(skill, ["cpu"])
    codec = TextCodec(skill.tokenizer)
    codec.eos_ids = frozenset()  # exactly NEW tokens per row
    rows = [Row.make(p, SamplingParams(max_tokens=NEW, temperature=0.0), codec) for p in prompts]
    stepper = decoder.stepper
    times: dict[str, float] = {}

    class Timed:  # the loop's Stepper, with the prefill and the steps timed apart
        name = stepper.name

        def prefill(self, ids, mask):
            started = time.perf_counter()
            out = stepper.prefill(ids, mask)
            times["prefill"] = time.perf_counter() - started
            times["decode_start"] = time.perf_counter()
            return out

        def step(self, state, next_ids):
            return stepper.step(state, next_ids)

    started = time.perf_counter()
    generate(Timed(), rows, codec.pad_id)
    ended = time.perf_counter()
    decoder = getattr(stepper, "decoder", None) or decoder
    steps = NEW - 1  # the first new token comes from the prefill
    return {"engine": decoder.engine, "decoder": stepper.name, "fallback_reason": decoder.fallback_reason,
            "prefill_ms": times["prefill"] * 1e3, "decode_s": ended - times["decode_start"],
            "total_s": ended - started, "tokens": [list(r.tokens) for r in rows],
            "tokens_per_s": len(rows) * steps / (ended - times["decode_start"])}  # fmt: skip


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from skillmill.native import control

    threads = spec.get("threads")
    if threads:  # both engines at the same thread count
        torch.set_num_threads(int(threads))
        control.set_num_threads(int(threads))
    started = time.perf_counter()
    skill = _skill(spec["model"], spec["engine"])
    loaded = time.perf_counter() - started
    vocab = skill.vocab_size() or 256
    generator = np.random.default_rng(0)
    prompts = [[int(t) for t in generator.integers(4, vocab, PROMPT)] for _ in range(spec["batch"])]
    started = time.perf_counter()
    warm = _generate(skill, prompts)  # conversion, plans for every cache size, caches
    warm_s = time.perf_counter() - started
    timed = _generate(skill, prompts)
    return {**{k: v for k, v in timed.items() if k != "tokens"}, "model": spec["model"],
            "batch": spec["batch"], "asked": spec["engine"], "load_s": loaded, "warm_up_s": warm_s,
            "weight_bytes": weight_bytes(skill.model), "first_tokens": timed["tokens"][0][:16],
            "same_as_warm_up": timed["tokens"] == warm["tokens"],
            "torch_threads": torch.get_num_threads(), "native_threads": control.get_num_threads()}  # fmt: skip


# ---- the driver ------------------------------------------------------------------------------
def run_decode_benchmark(models: list[str], batches: list[int], engines: list[str] = list(ENGINES),
                         threads: int | None = None, log=print) -> dict[str, Any]:  # fmt: skip
    from ..machine import describe_machine, machine_line

    machine = describe_machine(threads or os.cpu_count() or 1)
    log(machine_line(machine))
    bandwidth = measure_bandwidth()
    log(f"memory bandwidth (numpy copy, read + write): {bandwidth:.1f} GB/s")
    rows = []
    for model in models:
        for batch in batches:
            for engine in engines:  # each in its own process, one after the other
                spec = {"model": model, "engine": engine, "batch": batch, "threads": threads}
                result, why, _ = json_from_module(__name__, ["--worker", json.dumps(spec)], TIMEOUT_S)
                if result is None:
                    row = {**spec, "error": why}
                    log(f"{model} batch {batch} {engine}: failed: {why}")
                else:
                    limit = batch * bandwidth * 1e9 / result["weight_bytes"]
                    row = {**result, "bandwidth_limit_tokens_per_s": limit,
                           "fraction_of_limit": result["tokens_per_s"] / limit}  # fmt: skip
                    log(f"{model} batch {batch} {engine:>6} ({row['engine']}): {row['tokens_per_s']:7.1f} tok/s "
                        f"(limit {limit:.1f}, {row['fraction_of_limit']:.0%}), prefill {row['prefill_ms']:.0f} ms"
                        + (f"; fell back: {row['fallback_reason']}" if row.get("fallback_reason") else ""))  # fmt: skip
                rows.append(row)
    speedups = {}
    for model in models:
        for batch in batches:
            by = {r["asked"]: r for r in rows if r.get("model") == model and r.get("batch") == batch and "error" not in r}
            if "native" in by and "torch" in by:
                key = f"{model} batch {batch}"
                speedups[key] = by["native"]["tokens_per_s"] / by["torch"]["tokens_per_s"]
                same = by["native"]["first_tokens"] == by["torch"]["first_tokens"]
                log(f"{key}: native / torch eager = {speedups[key]:.2f}x; same first 16 tokens: {same}")
    return {"format": FORMAT, "version": VERSION, "machine": machine, "bandwidth_gb_s": bandwidth,
            "prompt_tokens": PROMPT, "new_tokens": NEW, "rows": rows, "speedup_native_over_torch": speedups}  # fmt: skip


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        print(json.dumps(_worker(json.loads(argv[1]))))
        return 0
    print("usage: generate-skills bench decode (this module runs one worker per process)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

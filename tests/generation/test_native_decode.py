"""The native executor decodes with an explicit KV cache: the decode graph takes the past keys
and values as inputs and gives the new ones as outputs, greedy equals ``model.generate`` token
for token, seeded sampling equals PyTorch's, and a decode graph that disagrees with PyTorch falls
back with the reason."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from skillmill import load_skill
from skillmill.engines.native import decode

PROMPTS = [[5, 17, 99, 42, 7, 30, 8], [11, 12, 13]]  # ragged: left-padded in one batch
NEW = 24  # passes decode.GROW with the prompt: the cache grows once mid-way
FAST = ["GPT2LMHeadModel", "LlamaForCausalLM"]
MORE = ["Qwen2ForCausalLM", "MistralForCausalLM", "PhiForCausalLM", "GemmaForCausalLM", "GPTNeoXForCausalLM"]


def hf_greedy(model, prompt: list[int], new: int) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                             do_sample=False, pad_token_id=0)  # fmt: skip
    return out[0, len(prompt):].tolist()


def check_greedy(skill) -> None:
    result = skill.generate(PROMPTS, max_new_tokens=NEW)
    assert (result.engine, result.decoder, result.backend) == ("native", "native-kv-cache", "cpu")
    assert result.fallback_reason is None and result.parity.error <= result.parity.tolerance
    for prompt, got in zip(PROMPTS, result.sequences):
        want = hf_greedy(skill.model, prompt, NEW)
        assert got == want[: len(got)] and len(got) >= 1


@functools.lru_cache(maxsize=None)
def tiny(name: str):
    """One skill per class for the file: its decode graph is exported once."""
    return load_skill(name, model="tiny", native=True)


@pytest.fixture(params=FAST)
def skill(request):
    return tiny(request.param)


def test_greedy_equals_model_generate_on_the_native_cache(skill):
    decode.GROW, saved = 16, decode.GROW  # a growth inside this short run
    try:
        check_greedy(skill)
    finally:
        decode.GROW = saved
    model, proof = skill._native_decode
    layers = decode.cache_shape(skill.model)[0]
    graph = model.graph
    past = [f"past_{i}" for i in range(2 * layers)]
    assert set(past) <= set(graph.inputs) and len(graph.outputs) == 1 + 2 * layers  # cache in, new k/v out
    assert graph.inputs["past_0"].shape[2] != graph.inputs["input_ids"].shape[1]  # past length: its own dim
    steps = [key for key in model.executor.plan_report() if "('input_ids', (2, 1)" in key]
    assert steps, "no plan ran one token per row: the loop recomputed the sequence"
    assert {"prefill", "step"} <= set(proof)


def test_seeded_sampling_equals_pytorch(skill):
    options = dict(do_sample=True, temperature=0.9, top_k=20, max_new_tokens=12, seed=5)
    native = skill.generate(PROMPTS, **options)
    eager = load_skill(skill.model_class_name, model=skill.model_source, native=False)
    eager.model = skill.model  # the same weights
    assert native.engine == "native"
    assert native.sequences == eager.generate(PROMPTS, **options).sequences


def test_a_decode_graph_that_disagrees_falls_back_with_the_reason(monkeypatch):
    skill = tiny("GPT2LMHeadModel")
    model, _ = skill.__dict__.get("_native_decode") or (None, None)
    if model is not None:  # a fresh verdict on the graph already exported
        monkeypatch.setitem(skill.__dict__, "_native_decode", (model, {}))
    real = decode.NativeKVStepper._native

    def skewed(self, kind, feeds):
        original = self.native.run
        self.native.run = lambda f: {k: (v + 1.0 if k == self.native.graph.outputs[0] else v)
                                     for k, v in original(f).items()}  # fmt: skip
        try:
            return real(self, kind, feeds)
        finally:
            self.native.run = original

    monkeypatch.setattr(decode.NativeKVStepper, "_native", skewed)
    result = skill.generate(PROMPTS, max_new_tokens=6)
    assert result.engine == "torch" and "decode prefill output 'logits' differs" in result.fallback_reason
    for prompt, got in zip(PROMPTS, result.sequences):
        assert got == hf_greedy(skill.model, prompt, 6)[: len(got)]
    again = skill.generate(PROMPTS, max_new_tokens=2)  # the verdict is kept: no second try
    assert again.engine == "torch" and again.decoder == "pytorch-kv-cache"
    assert "differs" in again.fallback_reason


def test_native_off_decodes_with_pytorch_and_says_why():
    skill = load_skill("LlamaForCausalLM", model="tiny", native=False)
    result = skill.generate(PROMPTS, max_new_tokens=3)
    assert (result.engine, result.decoder) == ("torch", "pytorch-kv-cache")
    assert "native executor off (native=False)" in result.fallback_reason
    assert not np.isnan(result.latency_ms)


@pytest.mark.slow
@pytest.mark.parametrize("name", MORE)
def test_more_floor_decoders_greedy_on_the_native_cache(name):
    check_greedy(load_skill(name, model="tiny", native=True))

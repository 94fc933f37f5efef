"""``skill.generate``: greedy equals ``model.generate`` token for token on tiny decoders, seeded
sampling is reproducible, and each option does what transformers' own logits processors do on
the same logits."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from skillmill import load_skill
from skillmill.runtime.errors import SkillInputError
from skillmill.runtime.generation.sampling import SamplingParams, choose_token, make_generator, process_scores

PROMPTS = [[5, 17, 99, 42, 7, 300], [11, 12, 13]]  # ragged: the loop left-pads the second
SLOW = pytest.mark.slow
DECODERS = ["GPT2LMHeadModel", "LlamaForCausalLM", pytest.param("Qwen2ForCausalLM", marks=SLOW),
            pytest.param("MistralForCausalLM", marks=SLOW)]  # fmt: skip


@pytest.fixture(scope="module", params=DECODERS)
def skill(request):
    # PyTorch's own cache: this file is about the loop and its options, not an engine
    return load_skill(request.param, model="tiny", native=False)


def hf_greedy(model, prompt: list[int], new: int) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                             do_sample=False, pad_token_id=0)  # fmt: skip
    return out[0, len(prompt):].tolist()


def test_greedy_equals_model_generate(skill):
    result = skill.generate(PROMPTS, max_new_tokens=12)
    for prompt, got in zip(PROMPTS, result.sequences):
        want = hf_greedy(skill.model, prompt, 12)
        assert got == want[: len(got)] and (len(got) == 12 or got[-1] == want[len(got) - 1])
    assert result.engine == "torch" and result.backend == "cpu" and result.decoder == "pytorch-kv-cache"
    assert "native executor off" in (result.fallback_reason or "") or result.fallback_reason is None
    assert len(result.texts) == 2 and result.precision == "float32"


def test_generation_config_and_num_return_sequences(skill):
    config = GenerationConfig(max_new_tokens=6, do_sample=True, top_k=1, num_return_sequences=3)
    result = skill.generate([PROMPTS[0]], config, seed=3)
    greedy = hf_greedy(skill.model, PROMPTS[0], 6)
    assert len(result.sequences) == 3
    assert all(seq == greedy[: len(seq)] for seq in result.sequences)  # top_k=1 is greedy


def test_seeded_sampling_is_reproducible_and_seed_dependent(skill):
    first = skill.generate(PROMPTS, do_sample=True, temperature=1.5, max_new_tokens=10, seed=7)
    again = skill.generate(PROMPTS, do_sample=True, temperature=1.5, max_new_tokens=10, seed=7)
    other = skill.generate(PROMPTS, do_sample=True, temperature=1.5, max_new_tokens=10, seed=8)
    assert first.sequences == again.sequences
    assert first.sequences != other.sequences


def test_text_prompt_and_stop_string(skill):
    probe = skill.generate("hello", max_new_tokens=8)
    assert probe.prompt_ids[0] == skill.generate({"input_ids": torch.tensor([probe.prompt_ids[0]])},
                                                 max_new_tokens=1).prompt_ids[0]  # fmt: skip
    text = probe.texts[0]
    if len(text) >= 3 and probe.finish_reasons[0] == "length":
        stop = text[1:3]
        cut = skill.generate("hello", max_new_tokens=8, stop_strings=stop)
        assert cut.finish_reasons[0] == "stop" and stop in cut.texts[0]
        if len(cut.sequences[0]) > 1:
            assert stop not in skill.generate("hello", max_new_tokens=len(cut.sequences[0]) - 1).texts[0]
        assert len(cut.sequences[0]) < 8 and probe.sequences[0][: len(cut.sequences[0])] == cut.sequences[0]


def test_eos_ends_a_row(skill):
    first = skill.generate([PROMPTS[0]], max_new_tokens=6).sequences[0]
    at = next((k for k in range(1, 6) if first[k] not in first[:k]), 0)  # its first appearance
    ended = skill.generate([PROMPTS[0]], max_new_tokens=6, eos_token_id=first[at])
    assert ended.sequences[0] == first[: at + 1] and ended.finish_reasons[0] == "stop"


def test_unsupported_and_unknown_options_are_refused(skill):
    with pytest.raises(SkillInputError, match="num_beams=4"):
        skill.generate("hi", num_beams=4)
    with pytest.raises(SkillInputError, match="unknown generation options: colour"):
        skill.generate("hi", colour="red")


# -- the options against transformers' logits processors ---------------------------------------
LOGITS = torch.randn(1, 64, generator=torch.Generator().manual_seed(0)) * 3


def test_repetition_penalty_matches_transformers():
    context = [3, 7, 7, 40, 63]
    got = process_scores(LOGITS[0], SamplingParams(1, temperature=0.0, repetition_penalty=1.3),
                         [40, 63], context)  # fmt: skip
    want = RepetitionPenaltyLogitsProcessor(1.3)(torch.tensor([context]), LOGITS.clone())[0]
    assert torch.equal(got, want) and not torch.equal(got, LOGITS[0])


@pytest.mark.parametrize("temperature,top_k,top_p", [(0.7, 0, 1.0), (1.0, 5, 1.0), (1.0, 0, 0.8), (1.3, 10, 0.6)])
def test_sampling_filters_match_transformers(temperature, top_k, top_p):
    params = SamplingParams(1, temperature=temperature, top_k=top_k, top_p=top_p)
    want = LOGITS.clone()
    ids = torch.tensor([[1]])
    if temperature != 1.0:
        want = TemperatureLogitsWarper(temperature)(ids, want)
    if top_k:
        want = TopKLogitsWarper(top_k)(ids, want)
    if top_p < 1.0:
        want = TopPLogitsWarper(top_p)(ids, want)
    got = process_scores(LOGITS[0], params, [])
    assert torch.allclose(got, want[0]) and torch.equal(torch.isinf(got), torch.isinf(want[0]))
    kept = int((~torch.isinf(got)).sum())
    assert kept == (top_k if top_k and top_p == 1.0 else kept) and (kept < 64) == bool(top_k or top_p < 1.0)


def test_top_k_one_is_greedy_and_draws_follow_the_seed():
    top1 = SamplingParams(1, temperature=1.0, top_k=1)
    assert {choose_token(LOGITS[0], top1, make_generator(s), []) for s in range(10)} == {int(LOGITS.argmax())}
    wide = SamplingParams(1, temperature=5.0)
    draws = [choose_token(LOGITS[0], wide, make_generator(s), []) for s in range(30)]
    assert len(set(draws)) > 3
    assert draws == [choose_token(LOGITS[0], wide, make_generator(s), []) for s in range(30)]

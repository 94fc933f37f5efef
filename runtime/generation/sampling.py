"""Choosing the next token, one row at a time, as transformers' GenerationConfig defines it:
repetition penalty (and OpenAI's presence/frequency penalties), then, when sampling,
temperature, top-k and top-p, then argmax or a draw.  Each row has its own ``torch.Generator``,
so a seed makes a row's output reproducible whatever else shares the batch.

``process_scores`` is the logits-processor chain on its own (tests compare it with
transformers' processors on the same logits); ``choose_token`` picks from its result."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

FILTERED = float("-inf")  # transformers' filter_value


@dataclass(frozen=True)
class SamplingParams:
    """One row's decoding settings.  ``temperature == 0`` is greedy (OpenAI's spelling of
    ``do_sample=False``); ``top_k == 0``, ``top_p == 1`` and ``repetition_penalty == 1`` are off."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_k: int = 0
    repetition_penalty: float = 1.0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def make_generator(seed: int | None, offset: int = 0) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()  # fresh entropy: unseeded requests differ from run to run
    else:
        generator.manual_seed((seed + offset) % 2**64)
    return generator


def apply_penalties(
    logits: torch.Tensor, tokens: list[int], params: SamplingParams
) -> torch.Tensor:
    """OpenAI's definition: logit -= count * frequency_penalty + (count > 0) * presence_penalty."""
    if not tokens or (params.presence_penalty == 0.0 and params.frequency_penalty == 0.0):
        return logits
    counts = Counter(tokens)
    ids = torch.tensor(list(counts.keys()), dtype=torch.long)
    seen = torch.tensor(list(counts.values()), dtype=logits.dtype)
    logits = logits.clone()
    logits[ids] -= seen * params.frequency_penalty + params.presence_penalty
    return logits


def repetition_penalty(logits: torch.Tensor, context: list[int], penalty: float) -> torch.Tensor:
    """CTRL's penalty as transformers applies it: every id in the context (prompt and generated
    tokens) has its logit divided by ``penalty`` if positive, multiplied if negative."""
    if penalty == 1.0 or not context:
        return logits
    ids = torch.tensor(sorted({t for t in context if 0 <= t < logits.shape[-1]}), dtype=torch.long)
    seen = logits[ids]
    logits = logits.clone()
    logits[ids] = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits


def top_k_filter(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Everything below the k-th largest score is filtered (ties with it stay)."""
    k = min(max(k, 1), scores.shape[-1])
    kth = torch.topk(scores, k).values[-1]
    return scores.masked_fill(scores < kth, FILTERED)


def top_p_filter(scores: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus: drop the least likely tokens whose total probability stays within 1 - p; the
    most likely token always stays."""
    ascending, order = torch.sort(scores)
    drop = torch.softmax(ascending, dim=-1).cumsum(dim=-1) <= (1.0 - p)
    drop[-1] = False
    return scores.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), FILTERED)


def process_scores(logits: torch.Tensor, params: SamplingParams, tokens: list[int],
                   context: list[int] | None = None) -> torch.Tensor:  # fmt: skip
    """The scores a token is picked from: penalties, then (when sampling) temperature, top-k,
    top-p, in transformers' order.  ``tokens``: generated so far; ``context``: prompt and
    generated tokens (what the repetition penalty reads; ``tokens`` when None)."""
    scores = repetition_penalty(logits.float(), tokens if context is None else context,
                                params.repetition_penalty)  # fmt: skip
    scores = apply_penalties(scores, tokens, params)
    if params.greedy:
        return scores
    if params.temperature != 1.0:
        scores = scores / params.temperature
    if params.top_k:
        scores = top_k_filter(scores, params.top_k)
    if params.top_p < 1.0:
        scores = top_p_filter(scores, params.top_p)
    return scores


def choose_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator,
                 tokens: list[int], context: list[int] | None = None) -> int:  # fmt: skip
    """The next token id from one row of last-position logits [vocab]."""
    scores = process_scores(logits, params, tokens, context)
    if params.greedy:
        return int(torch.argmax(scores))
    return int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator))

"""Choosing the next token: greedy, or temperature + nucleus (top_p) sampling, with OpenAI's
presence/frequency penalties.  One row at a time, each with its own ``torch.Generator`` so a
request's ``seed`` makes its own output reproducible whatever else shares the batch."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

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


def choose_token(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator, tokens: list[int]
) -> int:
    """The next token id from one row of last-position logits [vocab], given the row's tokens
    generated so far (for the penalties)."""
    logits = apply_penalties(logits.float(), tokens, params)
    if params.greedy:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest prefix whose mass reaches top_p; the most likely token always stays.
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        sorted_probs = torch.where(
            before < params.top_p, sorted_probs, torch.zeros_like(sorted_probs)
        )
        sorted_probs[0] = sorted_probs[0].clamp_min(torch.finfo(sorted_probs.dtype).tiny)
        pick = torch.multinomial(sorted_probs, 1, generator=generator)
        return int(order[pick])
    return int(torch.multinomial(probs, 1, generator=generator))

"""The decoding loop, the one every generating path runs (``Skill.generate`` and the server's
completions and chat): a batch of sequences, left-padded, prefilled once, then extended one token
per step through a ``Stepper`` (the model's KV cache where the backend has one).

Each ``Row`` keeps its own sampling parameters, random generator, stop strings and token
budget, so requests with different settings share a batch; a finished row stops emitting and
the loop ends when every row has finished.  Text is detokenized incrementally: the whole
generated sequence is decoded each step and only the new, settled suffix is emitted — a
trailing partial UTF-8 character, or a tail that could still grow into a stop string, is held
back until it is settled, so a streamed response never shows text the final one does not."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from .sampling import SamplingParams, choose_token, make_generator
from .textcodec import TextCodec

REPLACEMENT = "\ufffd"


class Stepper(Protocol):
    name: str

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, object]:
        """Last-position logits [batch, vocab] for left-padded ``ids`` and the loop state."""

    def step(self, state: object, next_ids: torch.Tensor) -> tuple[torch.Tensor, object]:
        """Logits after appending ``next_ids`` [batch] to every row."""


@dataclass
class Row:
    """One sequence being generated (a request with n=3 contributes three rows)."""

    prompt_ids: list[int]
    params: SamplingParams
    codec: TextCodec
    generator: torch.Generator
    on_text: Callable[[str], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    tokens: list[int] = field(default_factory=list)  # every generated id, eos included
    text: str = ""
    emitted: int = 0
    finish_reason: str | None = None

    @classmethod
    def make(
        cls,
        prompt_ids: list[int],
        params: SamplingParams,
        codec: TextCodec,
        seed_offset: int = 0,
        on_text: Callable[[str], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> "Row":
        return cls(
            prompt_ids=list(prompt_ids),
            params=params,
            codec=codec,
            generator=make_generator(params.seed, seed_offset),
            on_text=on_text,
            cancelled=cancelled or threading.Event(),
        )

    @property
    def done(self) -> bool:
        return self.finish_reason is not None or self.cancelled.is_set()

    def accept(self, token: int) -> None:
        """Take one generated token: update the text, finish on eos/stop/budget, emit."""
        self.tokens.append(token)
        is_eos = token in self.codec.eos_ids
        text_ids = self.tokens[:-1] if is_eos else self.tokens
        full = self.codec.decode(text_ids)
        cut = _first_stop(full, self.params.stop)
        if cut is not None:
            self.text, self.finish_reason = full[:cut], "stop"
        elif is_eos:
            self.text, self.finish_reason = full, "stop"
        elif len(self.tokens) >= self.params.max_tokens:
            self.text, self.finish_reason = full, "length"
        else:
            self.text = full
        self._emit(final=self.finish_reason is not None)

    def _emit(self, final: bool) -> None:
        settled = len(self.text) if final else _settled_length(self.text, self.params.stop)
        if settled > self.emitted:
            delta = self.text[self.emitted : settled]
            self.emitted = settled
            if self.on_text is not None and not self.cancelled.is_set():
                self.on_text(delta)


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


def _settled_length(text: str, stops: tuple[str, ...]) -> int:
    """How much of ``text`` can be sent now without a later token changing or cutting it."""
    end = len(text)
    while end and text[end - 1] == REPLACEMENT:  # maybe a multi-byte character still arriving
        end -= 1
    head = text[:end]
    hold = 0
    for stop in stops:  # a tail that is the start of a stop string may yet become one
        for k in range(min(len(stop) - 1, len(head)), 0, -1):
            if head.endswith(stop[:k]):
                hold = max(hold, k)
                break
    return end - hold


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[i, width - len(prompt) :] = 1
    return ids, mask


def generate(stepper: Stepper, rows: list[Row], pad_id: int) -> None:
    """Run ``rows`` to completion (each ends by eos, a stop string, its budget or cancellation)."""
    ids, mask = left_pad([r.prompt_ids for r in rows], pad_id)
    logits, state = stepper.prefill(ids, mask)
    while True:
        next_ids = torch.full((len(rows),), pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            if not row.done:
                context = row.prompt_ids + row.tokens if row.params.repetition_penalty != 1.0 else None
                token = choose_token(logits[i], row.params, row.generator, row.tokens, context)
                next_ids[i] = token
                row.accept(token)
        if all(row.done for row in rows):
            return
        logits, state = stepper.step(state, next_ids)

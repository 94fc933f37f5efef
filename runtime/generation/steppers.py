"""How the decoding loop runs the model one step at a time.

``KVCacheStepper`` drives the transformers module itself (on the device the skill chose) with
``use_cache=True``: the prompt is encoded once and each step feeds one token per row against
the cached keys and values.  ``RecomputeStepper`` goes through ``skill.process`` every step with
the whole sequence — the path for a backend that runs the skill but exposes no cache (MAX, say);
it is slower per token and the server's /health says which one is in use."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 at each row's first real token (rows are left-padded)."""
    return (mask.cumsum(-1) - 1).clamp_min(0)


@dataclass
class _CacheState:
    past: Any
    mask: torch.Tensor
    next_position: torch.Tensor


class KVCacheStepper:
    name = "pytorch-kv-cache"

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.model = model
        self.device = device
        self.takes_positions = "position_ids" in inspect.signature(model.forward).parameters

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, past: Any):
        kwargs: dict[str, Any] = {
            "input_ids": ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "use_cache": True,
        }
        if self.takes_positions:
            kwargs["position_ids"] = positions.to(self.device)
        if past is not None:
            kwargs["past_key_values"] = past
        with torch.inference_mode():
            out = self.model(**kwargs)
        return out.logits[:, -1].float().cpu(), out.past_key_values

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, _CacheState]:
        positions = _positions(mask)
        logits, past = self._forward(ids, mask, positions, None)
        return logits, _CacheState(past, mask, positions[:, -1] + 1)

    def step(self, state: _CacheState, next_ids: torch.Tensor) -> tuple[torch.Tensor, _CacheState]:
        mask = torch.cat([state.mask, torch.ones((len(next_ids), 1), dtype=state.mask.dtype)], 1)
        logits, past = self._forward(
            next_ids[:, None], mask, state.next_position[:, None], state.past
        )
        return logits, _CacheState(past, mask, state.next_position + 1)


@dataclass
class _FullState:
    ids: torch.Tensor
    mask: torch.Tensor


class RecomputeStepper:
    name = "skill-process-recompute"

    def __init__(self, skill: Any, order: list[str] | None = None):
        self.skill = skill
        self.order = order
        self.takes_positions = "position_ids" in skill.input_names
        self.last_backend: str | None = None

    def _logits(self, state: _FullState) -> torch.Tensor:
        batch = {"input_ids": state.ids, "attention_mask": state.mask}
        if self.takes_positions:
            batch["position_ids"] = _positions(state.mask)
        result = self.skill.process(batch, order=self.order)
        self.last_backend = result.backend
        return result["logits"][:, -1].float()

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, _FullState]:
        state = _FullState(ids, mask)
        return self._logits(state), state

    def step(self, state: _FullState, next_ids: torch.Tensor) -> tuple[torch.Tensor, _FullState]:
        state = _FullState(
            torch.cat([state.ids, next_ids[:, None]], 1),
            torch.cat([state.mask, torch.ones_like(next_ids)[:, None]], 1),
        )
        return self._logits(state), state

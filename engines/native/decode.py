"""Decoding on the native executor with an explicit KV cache: one graph whose cache is inputs
and outputs in the IR, not a recompute of the whole sequence.

``CacheStep`` wraps a causal LM: it takes ``input_ids`` [b, t], ``attention_mask`` [b, P + t],
``position_ids`` [b, t] and the past keys and values of every layer as plain tensors
(``past_0`` = layer 0's keys, ``past_1`` its values, ...: [b, kv_heads, P, head_dim]), builds a
transformers ``DynamicCache`` from them, runs the model with ``use_cache=True`` and returns the
last position's logits and the t new keys and values per layer.  ``torch.export`` takes it with
batch, t and P dynamic, so one graph serves the prefill (t = prompt length) and every step
(t = 1).

The cache lives in numpy buffers ``[b, kv_heads, capacity, head_dim]`` that the stepper owns:
each call feeds the whole buffer as the past (slots not yet written are masked out), then
writes the new keys and values at the next free slot.  The capacity grows in ``GROW`` slots,
so the executor sees a new input signature (and builds a new plan) once per ``GROW`` tokens,
not once per token.  A masked slot gets exp(finfo.min - max) = 0 weight exactly, so the padded
cache computes what the unpadded one does.

Proof, as ``parity.run_proven`` does it for a forward pass: the first prefill and the first
step of a skill are also run by ``CacheStep`` in PyTorch eager on the same tensors and compared
output by output (``parity.check_parity``, float32 tolerance).  A failure, at conversion or at
either check, is kept on the skill; the stepper then runs ``CacheStep`` in PyTorch eager on the
same cache (the first token already chosen stays right: it came from the reference), and the
result's ``fallback_reason`` says why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from skillmill.engines import parity
from skillmill.runtime.generation.api import Decoder, torch_decoder

from . import runner

GROW = 64  # cache slots added at a time: one executor plan per GROW tokens
ENGINE = "native"
NAME = "native-kv-cache"


class CacheStep(torch.nn.Module):
    """The model with its cache as explicit tensors (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, layers: int):
        super().__init__()
        self.model = model
        self.layers = layers

    def forward(self, input_ids, attention_mask, position_ids, past):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for layer in range(self.layers):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True)  # fmt: skip
        t = input_ids.shape[1]
        new = []
        for layer in out.past_key_values.layers:
            new += [layer.keys[:, :, -t:], layer.values[:, :, -t:]]
        return out.logits[:, -1], tuple(new)


def cache_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) from the config."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    layers = int(getattr(config, "num_hidden_layers", None) or config.n_layer)
    heads = int(getattr(config, "num_attention_heads", None) or config.n_head)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    hidden = int(getattr(config, "hidden_size", None) or config.n_embd)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    return layers, kv_heads, head_dim


def example_feeds(model: torch.nn.Module, batch: int = 2, past: int = 3, new: int = 2) -> dict[str, Any]:
    layers, kv_heads, head_dim = cache_shape(model)
    generator = torch.Generator().manual_seed(0)
    return {
        "input_ids": torch.randint(4, 64, (batch, new), generator=generator),
        "attention_mask": torch.ones(batch, past + new, dtype=torch.long),
        "position_ids": torch.arange(past, past + new)[None].repeat(batch, 1),
        "past": [torch.randn(batch, kv_heads, past, head_dim, generator=generator) for _ in range(2 * layers)],
    }


def export_decode_graph(model: torch.nn.Module):
    """``CacheStep`` as optimised IR (batch, new tokens and past length dynamic)."""
    from torch.export import Dim, export

    from skillmill.ir.frontends.pytorch import lower_exported, switch_to_eager_attention
    from skillmill.ir.passes import optimize_graph

    layers = cache_shape(model)[0]
    step = CacheStep(model.eval(), layers)
    feeds = example_feeds(model)
    auto = {0: Dim.AUTO, 1: Dim.AUTO}
    shapes = {"input_ids": auto, "attention_mask": auto, "position_ids": auto,
              "past": [{0: Dim.AUTO, 2: Dim.AUTO}] * (2 * layers)}  # fmt: skip
    with switch_to_eager_attention(model), torch.no_grad():
        exported = export(step, (), feeds, dynamic_shapes=shapes, strict=False).run_decompositions()
    name = f"{type(model).__name__} decode step"
    return optimize_graph(lower_exported(exported, name))


@dataclass
class _Cache:
    """One batch's cache: per layer keys and values [b, kv_heads, capacity, head_dim], which
    slots hold real tokens [b, capacity], how many slots are written, the next positions."""

    buffers: list[np.ndarray]
    real: np.ndarray
    length: int = 0
    capacity: int = 0
    next_position: np.ndarray | None = None


class NativeKVStepper:
    """The decoding loop's ``Stepper`` on the native executor (or, after a failed proof, on
    ``CacheStep`` in PyTorch eager), with the cache in numpy buffers."""

    name = NAME

    def __init__(self, skill: Any, model: Any, proof: dict[str, Any]):
        self.skill = skill
        self.native = model  # skillmill.ir.executor.NativeModel
        self.proof = proof  # shared on the skill: {"prefill"/"step": Parity} or {"reason": str}
        self.layers, self.kv_heads, self.head_dim = cache_shape(skill.model)
        self.eager = CacheStep(skill.model, self.layers)
        self.past_names = [f"past_{i}" for i in range(2 * self.layers)]

    # -- what ran ---------------------------------------------------------------------------
    @property
    def decoder(self) -> Decoder:
        reason = self.proof.get("reason")
        if reason:
            return Decoder(self, "cpu", "cpu", "torch", fallback_reason=f"{reason}; decoded with PyTorch eager")
        return Decoder(self, "cpu", "cpu", ENGINE, parity=self.proof.get("step") or self.proof.get("prefill"))

    # -- the Stepper protocol ---------------------------------------------------------------
    def prefill(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, "_Cache"]:
        batch, width = ids.shape
        cache = _Cache([], np.zeros((batch, 0), np.int64))
        self._grow(cache, batch, width + 1)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        logits = self._run(cache, "prefill", ids.numpy(), mask.numpy().astype(np.int64), positions.numpy())
        cache.next_position = positions[:, -1].numpy() + 1
        return logits, cache

    def step(self, cache: "_Cache", next_ids: torch.Tensor) -> tuple[torch.Tensor, "_Cache"]:
        batch = len(next_ids)
        if cache.length + 1 > cache.capacity:
            self._grow(cache, batch, cache.length + 1)
        logits = self._run(cache, "step", next_ids.numpy()[:, None], np.ones((batch, 1), np.int64),
                           cache.next_position[:, None].copy())  # fmt: skip
        cache.next_position = cache.next_position + 1
        return logits, cache

    # -- the cache ----------------------------------------------------------------------------
    def _grow(self, cache: "_Cache", batch: int, needed: int) -> None:
        capacity = -(-needed // GROW) * GROW
        shape = (batch, self.kv_heads, capacity, self.head_dim)
        grown = []
        for old in cache.buffers or [None] * (2 * self.layers):
            buffer = np.zeros(shape, np.float32)
            if old is not None:
                buffer[:, :, : cache.length] = old[:, :, : cache.length]
            grown.append(buffer)
        real = np.zeros((batch, capacity), np.int64)
        real[:, : cache.length] = cache.real[:, : cache.length]
        cache.buffers, cache.real, cache.capacity = grown, real, capacity

    def _run(self, cache: "_Cache", kind: str, ids: np.ndarray, new_mask: np.ndarray,
             positions: np.ndarray) -> torch.Tensor:  # fmt: skip
        t = ids.shape[1]
        feeds = {"input_ids": ids.astype(np.int64), "attention_mask": np.concatenate([cache.real, new_mask], 1),
                 "position_ids": positions.astype(np.int64)}  # fmt: skip
        feeds.update(zip(self.past_names, cache.buffers))
        if "reason" not in self.proof:
            outputs = self._native(kind, feeds)
        else:
            outputs = self._eager(feeds)
        for buffer, new in zip(cache.buffers, outputs[1:]):
            buffer[:, :, cache.length : cache.length + t] = new
        cache.real[:, cache.length : cache.length + t] = new_mask
        cache.length += t
        return torch.from_numpy(np.array(outputs[0], np.float32))

    def _eager(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            logits, new = self.eager(torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"]),
                                     torch.from_numpy(feeds["position_ids"]),
                                     [torch.from_numpy(feeds[n]) for n in self.past_names])  # fmt: skip
        return [logits.float().numpy(), *(k.numpy() for k in new)]

    def _native(self, kind: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        graph = self.native.graph
        try:
            results = self.native.run(feeds)
            outputs = [results[name] for name in graph.outputs]
        except Exception as exc:  # noqa: BLE001 — a failure is a verdict, with its reason
            self.proof["reason"] = f"{runner.PREFIX}: decode {kind} failed: {parity.describe(exc)}"
            return self._eager(feeds)
        if kind not in self.proof:  # the first run of each kind is proven against PyTorch eager
            reference = self._eager(feeds)
            names = ["logits", *self.past_names]
            # Keys and values are compared at real tokens: a left-padded position attends to
            # nothing, which eager and SDPA attention fill differently, and nothing reads it.
            t = feeds["input_ids"].shape[1]
            real = feeds["attention_mask"][:, -t:].astype(np.float32)[:, None, :, None]

            def tensors(values: list[np.ndarray]) -> dict[str, torch.Tensor]:
                return {n: torch.from_numpy(np.asarray(v) * (real if i else 1.0))
                        for i, (n, v) in enumerate(zip(names, values))}  # fmt: skip

            try:
                self.proof[kind] = parity.check_parity(f"{runner.PREFIX} decode {kind}", "float32",
                                                       tensors(outputs), tensors(reference))  # fmt: skip
            except parity.Refused as exc:
                self.proof["reason"] = str(exc)
                return reference
        return outputs


def decoder(skill: Any) -> Decoder:
    """The cpu target's decoder: the native executor with an explicit cache when the model
    converts and is allowed there (``runner.skip_reason``), else PyTorch's own cache with why."""
    reason = runner.skip_reason(skill, {}, {})
    if reason is None and skill.precision != "float32":
        reason = f"{runner.PREFIX}: decodes at float32; {skill.precision} was asked"
    if reason is not None:
        return torch_decoder(skill, "cpu", reason)
    held = skill.__dict__.get("_native_decode")
    if held is None:
        try:
            from skillmill.ir.executor import NativeModel

            graph, optimization = export_decode_graph(skill.model)
            held = (NativeModel(graph, optimization), {})
        except Exception as exc:  # noqa: BLE001 — the reason is the verdict
            held = (None, {"reason": f"{runner.PREFIX}: decode graph: {parity.describe(exc)}"})
        skill.__dict__["_native_decode"] = held
    model, proof = held
    if model is None or "reason" in proof:
        return torch_decoder(skill, "cpu", proof["reason"])
    return NativeKVStepper(skill, model, proof).decoder

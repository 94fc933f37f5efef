"""``skill.generate``: prompts in, generated token ids and text out, with transformers'
``GenerationConfig`` semantics, through the one decoding loop (``loop.generate``).

The settings are the model's own ``generation_config`` updated with the caller's (a
``GenerationConfig`` and/or keyword options), as ``model.generate`` reads them: greedy unless
``do_sample``; temperature, top_k, top_p and repetition_penalty; max_new_tokens (else
max_length); eos_token_id; stop_strings; num_return_sequences.  ``seed`` (not a config field)
seeds each row's generator (row j of a prompt gets seed + j).

The decoder is the first target in the skill's order that can decode (``choose_decoder``): a
target whose declaration gives it a decoder (the cpu target's native executor with an explicit
KV cache), else PyTorch's own cache on the PyTorch targets.  The result says which ran, and why
anything preferred did not, as ``process`` does."""

from __future__ import annotations

import copy
import importlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import BackendUnavailable, SkillError, SkillInputError
from .loop import Row, Stepper, generate as run_loop
from .sampling import SamplingParams
from .steppers import KVCacheStepper
from .textcodec import TextCodec

TORCH_DEVICES = {"cpu": "cpu", "cuda": "cuda", "rocm": "cuda", "mps": "mps"}
# GenerationConfig fields this loop does not implement: set to anything but their "off" value,
# they are refused by name instead of being silently ignored.
UNSUPPORTED = {
    "num_beams": (None, 1), "num_beam_groups": (None, 1), "penalty_alpha": (None,),
    "min_new_tokens": (None, 0), "min_length": (None, 0), "no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,), "force_words_ids": (None,), "min_p": (None,), "top_h": (None,),
    "typical_p": (None, 1.0), "epsilon_cutoff": (None, 0.0), "eta_cutoff": (None, 0.0),
    "encoder_repetition_penalty": (None, 1.0), "sequence_bias": (None,),
    "suppress_tokens": (None,), "begin_suppress_tokens": (None,), "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,), "guidance_scale": (None, 1.0), "assistant_model": (None,),
    "prompt_lookup_num_tokens": (None,), "max_time": (None,), "exponential_decay_length_penalty": (None,),
}  # fmt: skip
EXTRA_OPTIONS = ("seed", "presence_penalty", "frequency_penalty")
# A target whose engine decodes with its own explicit cache: "module:function" (skill) -> Decoder,
# called by name as hardware detection calls an engine's probe (the runtime imports no engine).
ENGINE_DECODERS = {"cpu": "skillmill.engines.native.decode:decoder"}


@dataclass
class Decoder:
    """What the loop runs the model with, and where: as a result reports it."""

    stepper: Stepper
    backend: str  # the target
    device: str
    engine: str  # "native", "torch", ...
    precision: str = "float32"
    parity: Any = None  # what the decode graph's first run proved, for a converting engine
    fallback_reason: str | None = None  # why the engine preferred on this target did not decode


@dataclass
class GenerationResult:
    """One entry per generated sequence, prompt-major (prompt i's j-th sequence is
    ``i * num_return_sequences + j``): the generated ids (eos included, prompt excluded, as
    ``model.generate(...)[:, prompt_length:]`` up to its padding), their text, and why each
    ended ("stop": eos or a stop string; "length": max_new_tokens)."""

    sequences: list[list[int]]
    texts: list[str]
    finish_reasons: list[str]
    prompt_ids: list[list[int]]
    backend: str
    device: str
    engine: str
    precision: str
    decoder: str  # the stepper: "native-kv-cache", "pytorch-kv-cache", ...
    latency_ms: float
    fallback_reason: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    parity: Any = None

    @property
    def generated_tokens(self) -> int:
        return sum(len(s) for s in self.sequences)

    def summary(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "device": self.device, "engine": self.engine,
            "precision": self.precision, "decoder": self.decoder,
            "parity": self.parity.summary() if self.parity is not None else None,
            "fallback_reason": self.fallback_reason, "skipped": self.skipped,
            "latency_ms": round(self.latency_ms, 3), "sequences": len(self.sequences),
            "generated_tokens": self.generated_tokens,
        }  # fmt: skip


def resolve_config(skill: Any, generation_config: Any = None, options: dict[str, Any] | None = None):
    """(the model's generation_config updated with ``generation_config`` and ``options``,
    the extra options ``seed`` / penalties)."""
    from transformers import GenerationConfig

    base = getattr(skill.model, "generation_config", None)
    config = copy.deepcopy(base) if base is not None else GenerationConfig()
    if generation_config is not None:
        if not isinstance(generation_config, GenerationConfig):
            raise SkillInputError(f"generation_config must be a transformers GenerationConfig, "
                                  f"not {type(generation_config).__name__}")  # fmt: skip
        given = generation_config.to_diff_dict()
        given.pop("transformers_version", None)
        config.update(**given)
    options = dict(options or {})
    extra = {k: options.pop(k) for k in EXTRA_OPTIONS if k in options}
    try:
        unknown = config.update(**options)
    except ValueError as exc:  # transformers' own validation of a value
        raise SkillInputError(f"generation options: {exc}") from exc
    if unknown:
        raise SkillInputError(f"unknown generation options: {', '.join(sorted(unknown))} (they are "
                              f"neither GenerationConfig fields nor {', '.join(EXTRA_OPTIONS)})")  # fmt: skip
    refused = [f"{name}={getattr(config, name)!r}" for name, off in UNSUPPORTED.items()
               if getattr(config, name, None) not in off]  # fmt: skip
    if refused:
        raise SkillInputError(f"{skill.model_class_name}.generate does not implement "
                              f"{', '.join(refused)} yet")  # fmt: skip
    return config, extra


def sampling_params(config: Any, extra: dict[str, Any], max_tokens: int) -> SamplingParams:
    stops = config.stop_strings
    stops = (stops,) if isinstance(stops, str) else tuple(stops or ())
    sample = bool(config.do_sample)
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=(1.0 if config.temperature is None else float(config.temperature)) if sample else 0.0,
        top_p=1.0 if config.top_p is None else float(config.top_p),
        top_k=int(config.top_k or 0),
        repetition_penalty=1.0 if config.repetition_penalty is None else float(config.repetition_penalty),
        stop=tuple(s for s in stops if s),
        seed=extra.get("seed"),
        presence_penalty=float(extra.get("presence_penalty") or 0.0),
        frequency_penalty=float(extra.get("frequency_penalty") or 0.0),
    )  # fmt: skip


def prompt_ids(codec: TextCodec, prompts: Any) -> list[list[int]]:
    """Token ids per prompt: text is encoded with the skill's tokenizer; ids may come as a list,
    a list of lists, a tensor [batch, len] or [len], or a mapping with ``input_ids`` (and an
    ``attention_mask`` whose zeros are padding to drop)."""
    if isinstance(prompts, Mapping):
        ids = prompts.get("input_ids")
        if ids is None:
            raise SkillInputError("a mapping given to generate needs 'input_ids'")
        rows = _id_rows(ids)
        mask = prompts.get("attention_mask")
        if mask is not None:
            masks = _id_rows(mask)
            rows = [[t for t, m in zip(r, mk) if m] for r, mk in zip(rows, masks)]
        return rows
    if isinstance(prompts, str):
        return [codec.encode(prompts)]
    if isinstance(prompts, (list, tuple)) and prompts and all(isinstance(p, str) for p in prompts):
        return [codec.encode(p) for p in prompts]
    return _id_rows(prompts)


def _id_rows(value: Any) -> list[list[int]]:
    if isinstance(value, torch.Tensor) or hasattr(value, "tolist") and not isinstance(value, list):
        value = value.tolist()
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
        return [list(value)]
    if (isinstance(value, (list, tuple)) and value
            and all(isinstance(r, (list, tuple)) and r and all(isinstance(t, int) for t in r) for r in value)):  # fmt: skip
        return [list(r) for r in value]
    raise SkillInputError("generate takes a string, a list of strings, token ids (a list, a list of "
                          f"lists or a tensor) or a mapping with input_ids; got {type(value).__name__}")  # fmt: skip


def choose_decoder(skill: Any, order: list[str] | None = None) -> tuple[Decoder, dict[str, str]]:
    """(the first decoder the skill's target order offers, {target: why it did not decode})."""
    names, _ = skill._plan(order)
    skipped: dict[str, str] = {}
    for name in names:
        target = skill.targets.get(name)
        if target is None:
            skipped[name] = f"the registry lists no '{name}' support for {skill.modality}/{skill.family}"
            continue
        status = target.status()
        if not status.available:
            skipped[name] = f"not present: {status.reason}"
            continue
        make = engine_decoder(name)
        if make is not None:
            try:
                return make(skill), skipped
            except BackendUnavailable as exc:
                skipped[name] = f"unavailable: {exc.reason}"
                continue
        if name in TORCH_DEVICES:
            return torch_decoder(skill, name), skipped
        skipped[name] = "no decoder with a KV cache on this target"
    raise SkillError(f"no target can decode {skill.model_class_name}: "
                     + "; ".join(f"{k}: {v}" for k, v in skipped.items()))  # fmt: skip


def engine_decoder(target: str):
    spec = ENGINE_DECODERS.get(target)
    if spec is None:
        return None
    module, function = spec.split(":")
    return getattr(importlib.import_module(module), function)


def torch_decoder(skill: Any, target: str, why: str | None = None) -> Decoder:
    """PyTorch eager with transformers' own cache on ``target``'s device (float32, as loaded)."""
    kind = TORCH_DEVICES[target]
    device = torch.device(skill.torch_device_index(kind) if kind != "cpu" else "cpu")
    reasons = [why] if why else []
    if skill.precision != "float32":
        reasons.append(f"PyTorch eager decodes at float32; {skill.precision} was asked")
    return Decoder(KVCacheStepper(skill.model_on(device), device), target, str(device), "torch",
                   fallback_reason="; ".join(reasons) or None)  # fmt: skip


def decodes_alone(skill: Any) -> bool:
    """A causal language model: it serves text-generation and takes no encoder's output to decode
    against (BartForCausalLM counts, BartForConditionalGeneration does not yet)."""
    return "text-generation" in skill.tasks and "decoder_input_ids" not in skill.input_names


def generate(skill: Any, prompts: Any, generation_config: Any = None,
             order: list[str] | None = None, **options: Any) -> GenerationResult:  # fmt: skip
    if not decodes_alone(skill):
        raise SkillError(f"{skill.model_class_name} is a {skill.modality}/{skill.family} model; "
                         "generate covers language models that decode on their own "
                         "(text-generation, no decoder_input_ids) so far")  # fmt: skip
    config, extra = resolve_config(skill, generation_config, options)
    codec = TextCodec(skill.tokenizer, config.eos_token_id)
    prompts_ = prompt_ids(codec, prompts)
    longest = max(len(p) for p in prompts_)
    if config.max_new_tokens is not None:
        max_tokens = int(config.max_new_tokens)
    else:
        max_tokens = int(config.max_length or 20) - longest
    if max_tokens < 1:
        raise SkillInputError(f"nothing to generate: max_new_tokens={config.max_new_tokens}, "
                              f"max_length={config.max_length}, longest prompt {longest} tokens")  # fmt: skip
    limit = skill.max_positions()
    if limit and longest + max_tokens > limit:
        raise SkillInputError(f"a {longest}-token prompt plus {max_tokens} new tokens passes "
                              f"{skill.model_class_name}'s {limit} positions")  # fmt: skip
    vocab = skill.vocab_size()
    if vocab and any(t < 0 or t >= vocab for p in prompts_ for t in p):
        raise SkillInputError(f"prompt token ids must lie in [0, {vocab})")
    params = sampling_params(config, extra, max_tokens)
    copies = int(config.num_return_sequences or 1)
    rows = [Row.make(p, params, codec, seed_offset=j) for p in prompts_ for j in range(copies)]
    decoder, skipped = choose_decoder(skill, order)
    pad = config.pad_token_id if isinstance(config.pad_token_id, int) else codec.pad_id
    started = time.perf_counter()
    run_loop(decoder.stepper, rows, pad)
    latency_ms = (time.perf_counter() - started) * 1000.0
    decoder = getattr(decoder.stepper, "decoder", None) or decoder  # a stepper that fell back mid-way
    return GenerationResult(
        sequences=[list(r.tokens) for r in rows],
        texts=[codec.decode(r.tokens[:-1] if r.tokens and r.tokens[-1] in codec.eos_ids else r.tokens)
               for r in rows],
        finish_reasons=[r.finish_reason or "length" for r in rows],
        prompt_ids=[list(r.prompt_ids) for r in rows],
        backend=decoder.backend, device=decoder.device, engine=decoder.engine,
        precision=decoder.precision, decoder=decoder.stepper.name, latency_ms=latency_ms,
        fallback_reason=decoder.fallback_reason, skipped=skipped, parity=decoder.parity,
    )  # fmt: skip

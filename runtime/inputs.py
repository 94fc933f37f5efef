"""Turn what a user passes to ``process`` into the model's tensors, checking names, kinds,
dtypes and shapes first so a mistake is reported in our words, not from deep inside torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .errors import SkillInputError

# Inputs that carry integer indices (token ids, positions, segment ids) or masks.
INTEGER_INPUTS = {"input_ids", "decoder_input_ids", "token_type_ids", "position_ids",
                  "decoder_position_ids", "langs", "lengths", "entity_ids",
                  "image_grid_thw", "video_grid_thw", "grid_thw", "image_sizes", "mm_token_type_ids"}
MASK_INPUTS = {"attention_mask", "decoder_attention_mask", "pixel_mask", "padding_mask",
               "encoder_attention_mask", "head_mask", "past_observed_mask", "bool_masked_pos"}
# Processor-built state that forward takes as an object, not a tensor: a video tracker's
# session (its frames, prompts and memory bank), which forward reads and updates.
STATE_INPUTS = {"inference_session"}
# Switches a caller may pass through to ``forward`` besides the model's inputs.
PASS_THROUGH = {"output_hidden_states", "output_attentions", "use_cache", "return_dict"}


def to_tensor(name: str, value: Any) -> Any:
    if name in STATE_INPUTS and not isinstance(value, (torch.Tensor, np.ndarray, list, tuple)):
        return value
    if isinstance(value, torch.Tensor):
        tensor = value
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            raise SkillInputError(f"input '{name}' is a numpy array of Python objects; use numbers")
        tensor = torch.from_numpy(np.ascontiguousarray(value))
    elif isinstance(value, (list, tuple)) and value and not isinstance(value[0], str):
        try:
            tensor = torch.tensor(value)
        except (TypeError, ValueError) as exc:
            raise SkillInputError(f"input '{name}' is not a rectangular list of numbers: {exc}") from None
    elif isinstance(value, (bool, int, float)) or value is None:
        return value  # a scalar argument of forward (e.g. a switch)
    else:
        raise SkillInputError(
            f"input '{name}' must be a torch tensor, a numpy array or a list of numbers, "
            f"not {type(value).__name__}"
        )
    if name == "bbox" and not tensor.is_floating_point():
        tensor = tensor.long()  # pixel boxes (LayoutLM); UDOP's normalised boxes stay float
    if name in INTEGER_INPUTS and tensor.is_floating_point():
        raise SkillInputError(f"input '{name}' holds indices and must be integers, got {tensor.dtype}")
    if name in INTEGER_INPUTS and tensor.dtype != torch.long and not tensor.is_complex():
        tensor = tensor.long()
    elif name in MASK_INPUTS and tensor.dtype == torch.bool and name != "bool_masked_pos":
        tensor = tensor.long()
    elif tensor.dtype == torch.float64:
        tensor = tensor.float()  # models run in float32; a float64 array is converted on purpose
    return tensor


def check_mapping(skill: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    accepted = set(skill.input_names) | PASS_THROUGH
    unknown = sorted(set(inputs) - accepted)
    if unknown:
        raise SkillInputError(
            f"{skill.model_class_name} has no input {', '.join(map(repr, unknown))}; it accepts: "
            f"{', '.join(skill.input_names)}"
        )
    batch = {name: to_tensor(name, value) for name, value in inputs.items()}
    ids = batch.get("input_ids")
    if isinstance(ids, torch.Tensor):
        if ids.dim() not in (1, 2, 3):
            raise SkillInputError(
                "input_ids must be [batch, sequence] (or [batch, sequence, codebooks] for audio-code "
                f"models), got shape {tuple(ids.shape)}"
            )
        if ids.dim() == 1:
            batch["input_ids"] = ids = ids.unsqueeze(0)
        vocab = skill.vocab_size()
        if ids.numel() and vocab and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise SkillInputError(
                f"input_ids must lie in [0, {vocab}) for this model, got values from "
                f"{int(ids.min())} to {int(ids.max())}"
            )
        mask = batch.get("attention_mask")
        if isinstance(mask, torch.Tensor):
            if mask.dim() == 1:
                batch["attention_mask"] = mask = mask.unsqueeze(0)
            # Audio-code models (MusicGen) stack one row of ids per codebook: the mask covers
            # the batch, the ids cover batch x codebooks, over the same sequence.
            if mask.dim() == 2 and (
                mask.shape[1] != ids.shape[1] or not mask.shape[0] or ids.shape[0] % mask.shape[0]
            ):
                raise SkillInputError(
                    f"attention_mask shape {tuple(mask.shape)} does not match input_ids shape "
                    f"{tuple(ids.shape)}"
                )
    return batch


def is_text(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, Sequence) and bool(value) and all(isinstance(v, str) for v in value)
    )


class ByteTokenizer:
    """A deterministic stand-in tokenizer for tiny random models, which ship no vocabulary:
    UTF-8 bytes shifted past the special ids, folded into the model's vocabulary.  Real
    checkpoints use their own tokenizer files."""

    def __init__(self, vocab_size: int, pad_id: int = 0, reserved: int = 4):
        self.vocab_size = max(int(vocab_size or 0), reserved + 2)
        self.pad_id = pad_id
        self.reserved = reserved

    def __call__(self, texts: list[str], max_length: int = 512) -> dict[str, torch.Tensor]:
        span = self.vocab_size - self.reserved
        rows = [[self.reserved + b % span for b in t.encode("utf-8")][:max_length] or [self.reserved]
                for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def tokenize(skill: Any, texts: list[str]) -> dict[str, torch.Tensor]:
    tokenizer = skill.tokenizer
    max_length = skill.max_positions() or 512
    if isinstance(tokenizer, ByteTokenizer):
        encoded = tokenizer(texts, max_length=max_length)
    else:
        encoded = dict(tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                                 return_tensors="pt"))
    if "token_type_ids" in skill.input_names and "token_type_ids" not in encoded:
        encoded["token_type_ids"] = torch.zeros_like(encoded["input_ids"])
    return {k: v for k, v in encoded.items() if k in skill.input_names}

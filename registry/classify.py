"""Modality and family of a model class, from its forward signature, its config and the auto
mappings it appears in — never from substrings of its name."""

from __future__ import annotations

import inspect
from typing import Any

# Forward parameters that carry each kind of input.
TEXT_INPUTS = {"input_ids", "inputs_embeds", "token_type_ids"}
VISION_INPUTS = {"pixel_values", "flattened_patches", "pixel_values_local", "image", "images"}
VIDEO_INPUTS = {"pixel_values_videos"}
AUDIO_INPUTS = {"input_values", "input_features", "spectrogram", "audio_mel", "audio_values"}
TIME_SERIES_INPUTS = {"past_values"}

# Forward parameters that are not model inputs: training targets, switches, caches, outputs.
NOT_INPUTS = {
    "self", "kwargs", "args", "labels", "return_dict", "output_attentions",
    "output_hidden_states", "use_cache", "past_key_values", "cache_position", "logits_to_keep",
    "return_loss", "start_positions", "end_positions", "next_sentence_label", "mask_labels",
    "class_labels", "encoder_outputs", "interpolate_pos_encoding", "output_router_logits",
    "cache", "cache_params", "mems", "use_mems", "past_key_value", "is_impossible", "cls_index",
    "p_mask", "future_values", "target_values", "decoder_cache", "use_decoder_cache",
    "return_logits", "num_logits_to_keep", "output_loading_info",
}

TEXT_GENERATION_TASKS = {"text-generation", "image-text-to-text", "any-to-any", "text2text-generation"}


def forward_parameters(model_class: type) -> list[inspect.Parameter]:
    try:
        params = list(inspect.signature(model_class.forward).parameters.values())
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def input_names(model_class: type) -> list[str]:
    """The model inputs of ``forward``: required ones first, then optional, in signature order."""
    params = [p for p in forward_parameters(model_class) if p.name not in NOT_INPUTS]
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    optional = [p.name for p in params if p.default is not inspect.Parameter.empty]
    return required + optional


def main_input_names(model_class: type) -> list[str]:
    main = getattr(model_class, "main_input_name", "input_ids")
    return list(main) if isinstance(main, (list, tuple)) else [str(main)]


def modality(model_class: type, config: Any, tasks: set[str]) -> str:
    """What the skill takes in: text, vision, video, audio, time-series, multimodal or other."""
    names = set(input_names(model_class))
    main = set(main_input_names(model_class))
    if main & TIME_SERIES_INPUTS or (names & TIME_SERIES_INPUTS and not names & TEXT_INPUTS):
        return "time-series"
    has_text = "input_ids" in names
    has_video = bool(names & VIDEO_INPUTS) or (
        bool(names & VISION_INPUTS) and getattr(config, "num_frames", None) not in (None, 1)
    )
    has_vision = bool(names & VISION_INPUTS) or has_video
    has_audio = bool(names & AUDIO_INPUTS)
    if sum((has_text, has_vision, has_audio)) >= 2:
        return "multimodal"
    if main & VIDEO_INPUTS or (has_video and not main & {"input_ids"}):
        return "video"
    if has_vision:
        return "vision"
    if has_audio:
        return "audio"
    if has_text or main & {"input_ids", "inputs_embeds"}:
        return "text"
    return "other"


def family(model_class: type, config: Any, kind: str, tasks: set[str], type_tasks: set[str]) -> str:
    """How the model is built: encoder, decoder, encoder-decoder, vision-encoder, ...

    ``tasks`` are this class's own tasks; ``type_tasks`` those of every class of its model type
    (a base ``BertModel`` is an encoder because its type has a fill-mask head)."""
    names = set(input_names(model_class))
    if kind == "time-series":
        return "time-series"
    if kind == "other":
        return "other"
    if getattr(config, "is_encoder_decoder", False) or "decoder_input_ids" in names:
        return "encoder-decoder"
    # A base class (feature extraction only) is judged by the heads its model type has.
    headless = tasks <= {"feature-extraction", "image-feature-extraction", "backbone"}
    generates = bool(tasks & TEXT_GENERATION_TASKS) or (
        headless and bool(type_tasks & TEXT_GENERATION_TASKS) and "fill-mask" not in type_tasks
    )
    if kind == "text":
        if "text-generation" in tasks:
            return "decoder"
        if "fill-mask" in type_tasks or not generates:
            return "encoder"
        return "decoder"
    if kind == "multimodal":
        return "multimodal-decoder" if generates else "multimodal-encoder"
    return f"{kind}-encoder"  # vision-encoder, video-encoder, audio-encoder

"""Tiny random models, built from config classes alone (nothing is fetched from a hub).

`tiny_config(model_type)` starts from the config class's defaults, shrinks every size through
generic rules keyed on the attribute spellings (`SHRINK_RULES`, applied at every level of a
composite config), keeps every layer kind of hybrid models (one layer per kind in `layer_types`
and friends), remaps special token ids into the small vocabulary, and then applies per-family
overrides, which are data in `tiny_overrides.yaml`.

`tiny_model(model_class)` builds the seeded, float32, eval-mode model for a class.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

from .image_vocabulary import add_image_vocabulary

OVERRIDES_PATH = Path(__file__).with_name("tiny_overrides.yaml")

HIDDEN = 32
HEADS = 2
HEAD_DIM = HIDDEN // HEADS
FFN = 64
LAYERS = 2
VOCAB = 1024
# Special token ids at or above this are remapped into [VOCAB - 64, VOCAB).
MAX_KEPT_TOKEN_ID = VOCAB - 64
POSITIONS = 512
IMAGE = 32

# attribute spelling -> cap.  A value is lowered to the cap, never raised.  Lists shrink per element.
SHRINK_RULES: dict[str, int] = {
    **dict.fromkeys(
        (
            "hidden_size", "d_model", "n_embd", "n_embed", "dim", "embed_dim", "embedding_size",
            "word_embed_proj_dim", "projection_dim", "text_embed_dim", "vision_embed_dim", "proj_dim",
            "model_dim", "d_embed", "embedding_dim", "text_hidden_size", "out_hidden_size",
            "vision_hidden_size", "audio_hidden_size", "encoder_hidden_size", "decoder_hidden_size",
            "projector_hidden_size", "output_hidden_size", "fpn_hidden_size", "hidden_dim_size",
            "latent_dim", "query_dim", "embedding_dimension_size", "encoder_hidden_dim",
            "downsample_hidden_size", "memory_attention_hidden_size", "memory_encoder_hidden_size",
            "pooler_output_size", "classifier_proj_size", "xvector_output_dim", "codevector_dim",
            "projection_size", "pooler_hidden_size", "attention_hidden_size", "vision_output_dim",
            "proj_codevector_dim", "output_dim", "hidden_size_per_layer_input",
            "hidden_size_global", "adapter_in_dim", "adapter_out_dim", "adapter_input_size",
        ),
        HIDDEN,
    ),
    **dict.fromkeys(
        (
            "num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
            "decoder_attention_heads", "attention_heads", "encoder_num_attention_heads",
            "decoder_num_attention_heads", "swa_num_attention_heads", "linear_num_heads",
            "memory_attention_num_attention_heads", "index_n_heads", "mamba_n_heads",
        ),
        HEADS,
    ),
    **dict.fromkeys(
        (
            "head_dim", "d_kv", "attention_head_dim", "kv_channels", "swa_head_dim", "v_head_dim",
            "linear_key_head_dim", "linear_value_head_dim", "linear_head_dim", "index_head_dim",
            "mamba_d_head", "dim_head", "cross_head_dim", "mamba_headdim",
        ),
        HEAD_DIM,
    ),
    **dict.fromkeys(("qk_rope_head_dim", "qk_nope_head_dim"), 8),
    **dict.fromkeys(("kv_lora_rank", "q_lora_rank"), 16),
    **dict.fromkeys(
        (
            "intermediate_size", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "d_ff", "n_inner",
            "mlp_dim", "hidden_dim", "dim_feedforward", "ffn_hidden_size", "decoder_intermediate_size",
            "shared_intermediate_size", "iou_head_hidden_dim", "memory_fuser_intermediate_dim",
            "linear_units", "encoder_ffn_hidden_size",
        ),
        FFN,
    ),
    **dict.fromkeys(("moe_intermediate_size", "shared_expert_intermediate_size"), HIDDEN),
    **dict.fromkeys(
        (
            "num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers", "decoder_layers",
            "num_encoder_layers", "num_decoder_layers", "decoder_num_hidden_layers",
            "memory_attention_num_layers", "memory_fuser_num_layers", "num_lstm_layers",
            "iou_head_depth", "depth", "resampler_depth", "num_adapter_layers", "num_global_layers",
        ),
        LAYERS,
    ),
    **dict.fromkeys(
        (
            "max_position_embeddings", "n_positions", "max_target_positions", "n_ctx",
        ),
        POSITIONS,
    ),
    "max_source_positions": 64,
    **dict.fromkeys(("intra_bottleneck_size",), HIDDEN),
    **dict.fromkeys(("image_size", "img_size", "pretrain_image_size"), IMAGE),
    **dict.fromkeys(("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"), 4),
    **dict.fromkeys(
        ("num_experts_per_tok", "moe_topk", "top_k_experts", "num_selected_experts", "moe_k",
         "num_experts_per_token"),
        2,
    ),
    **dict.fromkeys(("n_shared_experts", "num_shared_experts", "moe_num_shared_experts"), 1),
    **dict.fromkeys(("n_group", "topk_group", "n_groups", "mamba_n_groups", "num_expert_group"), 1),
    **dict.fromkeys(("state_size", "mamba_d_state", "d_state", "ssm_state_size"), 16),
    **dict.fromkeys(("time_step_rank",), 8),
    **dict.fromkeys(("rotary_dim",), 8),
    **dict.fromkeys(("num_kv_shared_layers",), 0),
    **dict.fromkeys(("num_attention_heads_per_layer", "num_key_value_heads_per_layer"), HEADS),
    **dict.fromkeys(("num_first_full_attention_layers", "num_last_full_attention_layers"), 1),
    **dict.fromkeys(("conv_dim", "tdnn_dim"), HIDDEN),
    **dict.fromkeys(PYRAMID_WIDTH_KEYS := (
        "hidden_sizes", "embed_dims", "embed_dim_per_stage", "stage_out_channels",
        "stage_in_channels", "stage_mid_channels",
    ), 64),
    **dict.fromkeys(("num_queries",), 12),
    **dict.fromkeys(("upsample_groups",), HIDDEN),
    **dict.fromkeys(("decoder_in_channels",), HIDDEN),
    **dict.fromkeys(("mm_tokens_per_image",), 4),
    **dict.fromkeys(("num_frames", "frames_per_clip"), 4),
    **dict.fromkeys(("codebook_size",), 64),
    **dict.fromkeys(("num_codevectors_per_group",), 16),
}

# Keys whose value is one entry per layer: shrunk together with the layer count.
PER_LAYER_KEYS = (
    "layer_types", "mlp_layer_types", "block_types", "layers_block_type", "attn_type_list",
    "layer_rope_theta", "no_rope_layers", "indexer_types", "sliding_window_pattern_list",
)
LAYER_COUNT_KEYS = ("num_hidden_layers", "num_layers", "n_layer", "n_layers")
# Per-layer lists whose values are themselves layer indices (remapped after the shrink).
LAYER_INDEX_VALUED_KEYS = ("kv_source_layers",)
# Lists of layer indices (which blocks attend globally...): clipped to the shrunk layer count.
LAYER_INDEX_LIST_KEYS = (
    "global_attn_indexes", "fullatt_block_indexes", "window_block_indices",
    "intermediate_layers_indices", "global_attention_blocks", "hybrid_layer_ids",
)
# Per-stage lists (vision pyramids): each stage gets one block.
DEPTH_LIST_KEYS = ("depths", "blocks_per_stage", "stage_num_blocks", "num_encoder_blocks")

TOKEN_ID_SUFFIXES = ("_token_id", "_token_index", "_token_ids")
# Attributes whose default is filled in from the hidden size (`codebook_dim = hidden_size`).
DEFAULTS_TO_HIDDEN = ("codebook_dim",)


def _is_config_dict(value: Any) -> bool:
    return isinstance(value, dict) and "model_type" in value


# Spellings not in SHRINK_RULES are matched by suffix (sub-module widths: mit_hidden_size, ...).
SUFFIX_RULES: tuple[tuple[tuple[str, ...], int], ...] = (
    (("_hidden_size", "_hidden_dim", "_embed_dim", "_projection_dim", "_output_dim"), HIDDEN),
    (("_intermediate_size", "_ffn_dim", "_feed_forward_hidden_size", "_linear_units"), FFN),
    (("_predictor_channels", "_postnet_units"), HIDDEN),
    (("_num_attention_heads", "_attention_heads", "_num_key_value_heads"), HEADS),
    (("_num_hidden_layers",), LAYERS),
)


def rule_for(key: str) -> int | None:
    if key in SHRINK_RULES:
        return SHRINK_RULES[key]
    if not isinstance(key, str) or key.startswith(("max_", "num_")) and not key.endswith("_heads"):
        return None
    for suffixes, cap in SUFFIX_RULES:
        if key.endswith(suffixes):
            return cap
    return None


def _cap(key: str, value: Any, cap: int) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return min(value, cap) if value > 0 else value
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        if key in PYRAMID_WIDTH_KEYS:
            return value  # scaled together by _scale_pyramid
        return type(value)(min(v, cap) if v > 0 else v for v in value)
    return value


def _pick_layers(types: list, n_keep: int) -> list[int]:
    """Indices of layers to keep: the first of every kind, padded to at least `n_keep`."""
    seen, keep = set(), []
    for i, kind in enumerate(types):
        key = repr(kind)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    for i in range(len(types)):
        if len(keep) >= n_keep:
            break
        if i not in keep:
            keep.append(i)
    return sorted(keep)


def _remap_stage_names(d: dict[str, Any], n_layers: int) -> None:
    """Backbone taps (`out_features` "stageK", `out_indices` K) onto the shrunk stages, in order."""
    feats = d.get("out_features")
    idx = d.get("out_indices")
    stages = None
    if isinstance(feats, list) and feats and all(isinstance(f, str) and f.startswith("stage") for f in feats):
        stages = [int(f[5:]) for f in feats]
    elif isinstance(idx, list) and idx and all(isinstance(i, int) and i > 0 for i in idx):
        stages = list(idx)
    if not stages or max(stages) <= n_layers:
        return
    n = len(stages)
    new = [n_layers - n + 1 + i for i in range(n)]
    if isinstance(feats, list) and feats:
        d["out_features"] = [f"stage{k}" for k in new]
    if isinstance(idx, list) and idx:
        d["out_indices"] = list(new)
    d.pop("stage_names", None)


def _shrink_level(d: dict[str, Any]) -> None:
    original_layers = next((d[k] for k in LAYER_COUNT_KEYS if isinstance(d.get(k), int)), None)
    original_hidden = _hidden(d)
    pyramid = isinstance(d.get("depths"), (list, tuple))
    for key, value in list(d.items()):
        cap = rule_for(key)
        if cap is not None:
            if pyramid and key in LAYER_COUNT_KEYS:
                continue  # stage count of a pyramid (Swin's num_layers == len(depths)) stays
            d[key] = _cap(key, value, cap)
    _scale_pyramid(d, original_hidden)
    if pyramid and isinstance(d.get("window_size"), int) and d["window_size"] > 2:
        # Windowed pyramids (Swin...): windows and patches must tile every (tiny) stage.
        d["window_size"] = 2
        if isinstance(d.get("patch_size"), int) and d["patch_size"] > 2:
            d["patch_size"] = 2
    if pyramid:
        original_layers = None
    # Hybrids: keep one layer of every kind, and make the layer count agree.
    keep = None
    if original_layers and original_layers > LAYERS:
        for key in PER_LAYER_KEYS:
            value = d.get(key)
            if isinstance(value, (list, tuple)) and len(value) == original_layers:
                keep = _pick_layers(list(value), LAYERS)
                break
        n_taps = _count_taps(d)
        if keep is None:
            keep = list(range(max(LAYERS, min(n_taps, original_layers))))
        elif n_taps > len(keep):
            keep = sorted(set(keep) | set(range(n_taps)))[: max(n_taps, len(keep))]
        for key, value in list(d.items()):
            if (
                isinstance(value, (list, tuple))
                and len(value) == original_layers
                and key not in ("out_indices", "out_features", "stage_names")
            ):
                picked = [value[i] for i in keep]
                if key in LAYER_INDEX_VALUED_KEYS:
                    picked = [keep.index(v) if v in keep else n for n, v in enumerate(picked)]
                d[key] = picked
        for key in LAYER_COUNT_KEYS:
            if isinstance(d.get(key), int):
                d[key] = len(keep)
        # Per-layer dicts keyed by layer index ("05": {...}).
        plc = d.get("per_layer_config")
        if isinstance(plc, dict):
            new_plc = {}
            for k, v in plc.items():
                if str(k).isdigit() and int(k) in keep:
                    width = len(str(k))
                    new_plc[str(keep.index(int(k))).zfill(width)] = v
            d["per_layer_config"] = new_plc
        _remap_stage_names(d, len(keep))
    _clip_layer_indices(d)
    plc = d.get("per_layer_config")
    if isinstance(plc, dict):
        # Per-layer overrides of sizes (a wider head on global layers...) shrink like the rest.
        for layer in plc.values():
            if isinstance(layer, dict):
                for key, value in list(layer.items()):
                    cap = rule_for(key)
                    if cap is not None:
                        layer[key] = _cap(key, value, cap)
                heads = layer.get("num_attention_heads")
                if isinstance(heads, int) and isinstance(layer.get("num_key_value_heads"), int):
                    layer["num_key_value_heads"] = min(layer["num_key_value_heads"], heads)
    for key in DEPTH_LIST_KEYS:
        value = d.get(key)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
            d[key] = [1 for _ in value]
    # Head counts per stage (pyramids): divide by the smallest so ratios survive.
    for key in ("num_heads", "num_attention_heads", "num_attention_heads_per_stage"):
        value = d.get(key)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
            low = max(1, min(value))
            d[key] = [max(1, v // low) for v in value]
    heads_key = next((k for k in ("num_attention_heads", "num_heads") if d.get(k)), None)
    if d.get("num_key_value_heads") and heads_key:
        heads = d[heads_key]
        if isinstance(heads, int) and isinstance(d["num_key_value_heads"], int):
            d["num_key_value_heads"] = min(d["num_key_value_heads"], heads)
            if heads % d["num_key_value_heads"]:
                d["num_key_value_heads"] = 1
    _fix_derived_dims(d)
    hidden = _hidden(d)
    for key in DEFAULTS_TO_HIDDEN:
        # Stored when the default config was built, as a copy of the hidden size: follow it.
        if original_hidden and d.get(key) == original_hidden:
            d[key] = hidden
    _fix_rope_sections(d)
    # Backbones are built from their own config, never timm or pretrained weights.
    if "use_timm_backbone" in d:
        d["use_timm_backbone"] = False
    if "use_pretrained_backbone" in d:
        d["use_pretrained_backbone"] = False
    for key, value in list(d.items()):
        if _is_config_dict(value):
            _shrink_level(value)
        elif isinstance(value, list) and value and all(_is_config_dict(v) for v in value):
            for v in value:
                _shrink_level(v)


def _clip_layer_indices(d: dict[str, Any]) -> None:
    """Lists naming layers by index (SAM's global-attention blocks) keep the ones that survive
    the shrink, else the last layer, so the layer kind is still there."""
    layers = next((d[k] for k in (*LAYER_COUNT_KEYS, "depth") if isinstance(d.get(k), int)), None)
    if _int_list(d.get("blocks_per_stage")):
        layers = sum(d["blocks_per_stage"])  # Hiera numbers its blocks across stages
    if not layers:
        return
    for key in LAYER_INDEX_LIST_KEYS:
        value = d.get(key)
        if _int_list(value) and max(value) >= layers:
            d[key] = [i for i in value if i < layers] or [layers - 1]


def _scale_pyramid(d: dict[str, Any], original_hidden: int | None = None) -> None:
    """Stage widths of CNN / hierarchical backbones, all divided by one factor so that stage i's
    input still equals stage i-1's output; the widest stage ends at <= 64.  A hidden size that
    was the first stage's width (Hiera's embed dim) follows that stage."""
    lists = {k: d[k] for k in PYRAMID_WIDTH_KEYS if _int_list(d.get(k))}
    if not lists:
        return
    biggest = max(max(v) for v in lists.values())
    scale = max(1, -(-biggest // 64))
    if scale == 1:
        return

    def shrink(v: int) -> int:
        return max(8, -(-(v // scale) // 8) * 8)

    for k, v in lists.items():
        d[k] = [shrink(x) for x in v]
        if original_hidden == v[0] and isinstance(d.get("hidden_size"), int):
            d["hidden_size"] = d[k][0]
    if _int_list(d.get("stem_channels")):
        stem = d["stem_channels"]
        d["stem_channels"] = [stem[0]] + [shrink(x) for x in stem[1:]]


def _int_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value)


def _count_taps(d: dict[str, Any]) -> int:
    feats = d.get("out_features") or d.get("out_indices")
    if isinstance(feats, list):
        return len([f for f in feats if f != "stem"])
    return 0


def _hidden(d: dict[str, Any]) -> int | None:
    return next((d[k] for k in ("hidden_size", "d_model", "n_embd") if isinstance(d.get(k), int)), None)


def _fix_derived_dims(d: dict[str, Any]) -> None:
    """Dimensions that configs store but are functions of others."""
    if isinstance(d.get("qk_rope_head_dim"), int):
        if isinstance(d.get("qk_nope_head_dim"), int) and "qk_head_dim" in d:
            d["qk_head_dim"] = d["qk_nope_head_dim"] + d["qk_rope_head_dim"]
        if isinstance(d.get("head_dim"), int):
            d["head_dim"] = d["qk_rope_head_dim"]
    hidden = _hidden(d)
    # Mamba-2 style mixers: heads * head_dim == expand * hidden.
    for heads_key, dim_key, expand_key in (
        ("num_heads", "head_dim", "expand"),
        ("mamba_n_heads", "mamba_d_head", "mamba_expand"),
        ("n_mamba_heads", "mamba_headdim", "mamba_expand"),
    ):
        if (
            hidden
            and isinstance(d.get(dim_key), int)
            and isinstance(d.get(expand_key), (int, float))
            and isinstance(d.get(heads_key), int)
            and ("state_size" in d or "mamba_d_state" in d)
        ):
            d[heads_key] = max(1, int(hidden * d[expand_key]) // d[dim_key])
    if hidden and isinstance(d.get("mamba_d_ssm"), int) and isinstance(d.get("mamba_expand"), (int, float)):
        d["mamba_d_ssm"] = int(hidden * d["mamba_expand"])  # the Mamba mixer's inner width
    if isinstance(d.get("image_grid_pinpoints"), list):
        # Any-res tilings as multiples of the (shrunk) tile size.
        d["image_grid_pinpoints"] = [[IMAGE, IMAGE], [IMAGE, 2 * IMAGE], [2 * IMAGE, IMAGE], [2 * IMAGE, 2 * IMAGE]]
    if isinstance(d.get("d_head"), int) and hidden and isinstance(d.get("n_head"), int):
        d["d_head"] = hidden // d["n_head"]  # XLNet checks d_head == d_model / n_head
    for key, default in (("prediction_length", 4),):
        if key in d and d[key] is None:
            d[key] = default
    if "vocab_size" in d and d["vocab_size"] is None and ("pad_token_id" in d or "eos_token_id" in d):
        d["vocab_size"] = 99
    experts = next((d[k] for k in ("num_local_experts", "num_experts", "n_routed_experts") if d.get(k)), None)
    if experts and "num_experts_per_tok" in d and d["num_experts_per_tok"] is None:
        d["num_experts_per_tok"] = min(2, experts)


def _split_proportional(sections: list[int], total: int) -> list[int]:
    whole = sum(sections) or 1
    out = [max(1, s * total // whole) for s in sections]
    i = 0
    while sum(out) < total:
        out[i % len(out)] += 1
        i += 1
    while sum(out) > total and max(out) > 1:
        j = out.index(max(out))
        out[j] -= 1
    return out


def _fix_rope_sections(d: dict[str, Any]) -> None:
    """Multimodal RoPE sections must sum to half the rotary dims of the (shrunk) head."""
    for key in ("rope_parameters", "rope_scaling"):
        rp = d.get(key)
        if not isinstance(rp, dict):
            continue
        for skey in ("mrope_section", "mrope_sections"):
            sections = rp.get(skey)
            if not (isinstance(sections, list) and sections and all(isinstance(x, int) for x in sections)):
                continue
            hidden = next((d[k] for k in ("hidden_size", "d_model") if isinstance(d.get(k), int)), None)
            heads = d.get("num_attention_heads")
            head_dim = d.get("head_dim") or (hidden // heads if hidden and isinstance(heads, int) else None)
            if not head_dim:
                continue
            factor = rp.get("partial_rotary_factor", d.get("partial_rotary_factor")) or 1.0
            rp[skey] = _split_proportional(sections, int(head_dim * factor) // 2)


def _replace_timm_backbone(d: dict[str, Any]) -> None:
    """timm backbones need the timm package (and usually hub weights): use a tiny ResNet."""
    for key, value in list(d.items()):
        if isinstance(value, dict) and value.get("model_type") == "timm_backbone":
            out_indices = value.get("out_indices") or [1, 2, 3, 4]
            d[key] = {
                "model_type": "resnet",
                "num_channels": value.get("num_channels", 3),
                "embedding_size": 16,
                "hidden_sizes": [16, 32, 32, 64],
                "depths": [1, 1, 1, 1],
                "layer_type": "basic",
                "out_indices": list(out_indices),
            }
        elif isinstance(value, dict):
            _replace_timm_backbone(value)


def _collect_token_ids(d: Any, out: set[int]) -> None:
    if isinstance(d, dict):
        for key, value in d.items():
            if isinstance(value, dict):
                _collect_token_ids(value, out)
            elif isinstance(key, str) and key.endswith(TOKEN_ID_SUFFIXES):
                for v in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                        out.add(v)


def _remap_token_ids(d: Any, mapping: dict[int, int]) -> None:
    if isinstance(d, dict):
        for key, value in list(d.items()):
            if isinstance(value, dict):
                _remap_token_ids(value, mapping)
            elif isinstance(key, str) and key.endswith(TOKEN_ID_SUFFIXES):
                if isinstance(value, (list, tuple)):
                    d[key] = type(value)(mapping.get(v, v) if isinstance(v, int) else v for v in value)
                elif isinstance(value, int) and not isinstance(value, bool):
                    d[key] = mapping.get(value, value)


VOCAB_KEYS = (
    "vocab_size", "n_vocab", "text_vocab_size", "input_vocab_size", "output_vocab_size",
    "encoder_hash_byte_group_vocab", "codebook_vocab_size",
)


def _shrink_vocab(d: Any, vocab: int) -> None:
    if isinstance(d, dict):
        for key, value in d.items():
            if isinstance(value, dict):
                _shrink_vocab(value, vocab)
            elif key in VOCAB_KEYS:
                if isinstance(value, int) and value > vocab:
                    d[key] = vocab


def shrink_config_dict(d: dict[str, Any]) -> dict[str, Any]:
    """The generic shrink, on a `config.to_dict()`; returns a new dict."""
    d = copy.deepcopy(d)
    _replace_timm_backbone(d)
    _shrink_level(d)
    ids: set[int] = set()
    _collect_token_ids(d, ids)
    big = sorted(i for i in ids if i >= MAX_KEPT_TOKEN_ID)
    mapping = {old: VOCAB - len(big) + n for n, old in enumerate(big)}
    _remap_token_ids(d, mapping)
    _shrink_vocab(d, VOCAB)
    return d


@functools.lru_cache(maxsize=1)
def load_overrides() -> dict[str, dict[str, Any]]:
    """Per-family overrides: model_type -> {dotted.attr: value}."""
    if not OVERRIDES_PATH.exists():
        return {}
    with OVERRIDES_PATH.open() as f:
        return yaml.safe_load(f) or {}


def _get_dotted(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            raise KeyError(f"tiny override names {dotted!r}, which the default config does not have")
        d = d[part]
    return d


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(d.get(part), dict):
            d[part] = {}
        d = d[part]
    if value == "__delete__":
        d.pop(parts[-1], None)
    else:
        d[parts[-1]] = value


def config_class(model_type: str):
    from transformers import CONFIG_MAPPING

    try:
        return CONFIG_MAPPING[model_type]
    except KeyError:
        raise KeyError(f"unknown model type {model_type!r}: not in transformers' CONFIG_MAPPING") from None


@contextlib.contextmanager
def quiet_config_warnings() -> Iterator[None]:
    """Silence transformers' warnings about the very values we shrink, for this block only: the
    warning filters and the transformers log level are restored on the way out."""
    logger = logging.getLogger("transformers")
    level = logger.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)


def tiny_config(model_type: str):
    """A small random-weights config for `model_type`, from the config class's defaults."""
    with quiet_config_warnings():
        return _tiny_config(model_type)


def _tiny_config(model_type: str):
    cls = config_class(model_type)
    defaults = cls().to_dict()
    d = shrink_config_dict(defaults)
    overrides = dict(load_overrides().get(model_type) or {})
    for dotted in overrides.get("_unshrunk", []):
        # Sub-configs whose widths are tied together in ways the generic rules cannot follow
        # (hand-tuned CNN stage tables) keep their defaults; they are small already.
        _set_dotted(d, dotted, copy.deepcopy(_get_dotted(defaults, dotted)))
    for dotted, value in overrides.items():
        if dotted.startswith("_"):
            continue
        _set_dotted(d, dotted, copy.deepcopy(value))
    if overrides.get("_mrope_section"):
        _add_default_mrope(d, list(overrides["_mrope_section"]))
    if overrides.get("_image_vocabulary"):
        add_image_vocabulary(d, overrides["_image_vocabulary"])
    _post_fix(d)
    d.pop("transformers_version", None)
    d.pop("architectures", None)
    config = cls.from_dict(d)
    _fill_missing_head_dim(config)
    return config


def _sub_configs(config):
    yield config
    for value in list(vars(config).values()):
        if hasattr(value, "to_dict") and hasattr(value, "model_type") and value is not config:
            yield from _sub_configs(value)


def _fill_missing_head_dim(config) -> None:
    """Some modeling code reads `getattr(config, "head_dim", default)` and gets an explicit None."""
    for c in _sub_configs(config):
        try:
            missing = "head_dim" in vars(c) and c.head_dim is None
        except Exception:  # per-layer attributes (Gemma 4) refuse global access
            continue
        try:
            if "num_key_value_heads" in vars(c) and c.num_key_value_heads is None:
                c.num_key_value_heads = c.num_attention_heads  # None means plain multi-head
        except Exception:
            pass
        if missing:
            hidden = getattr(c, "hidden_size", None)
            heads = getattr(c, "num_attention_heads", None)
            if isinstance(hidden, int) and isinstance(heads, int) and heads:
                c.head_dim = hidden // heads


def _config_levels(d: dict[str, Any]):
    yield d
    for value in d.values():
        if _is_config_dict(value):
            yield from _config_levels(value)


def _add_default_mrope(d: dict[str, Any], sections: list[int]) -> None:
    """The modeling code's own default `mrope_section` (not in the config) sized for a full head;
    store it explicitly so `_fix_rope_sections` can shrink it with the head."""
    for level in _config_levels(d):
        rp = level.get("rope_parameters")
        if isinstance(rp, dict) and "mrope_section" not in rp and "num_attention_heads" in level:
            rp["mrope_section"] = list(sections)


def _post_fix(d: dict[str, Any]) -> None:
    """Re-derive coupled sizes after the overrides."""
    for level in _config_levels(d):
        _fix_rope_sections(level)
        _fix_encoder_in_channels(level)
        _fix_backbone_channel_list(level)


def _fix_backbone_channel_list(level: dict[str, Any]) -> None:
    """SAM 2 style necks list the backbone's stage widths, widest first."""
    backbone = level.get("backbone_config")
    channels = level.get("backbone_channel_list")
    if not isinstance(backbone, dict) or not _int_list(channels):
        return
    widths = backbone.get("embed_dim_per_stage") or backbone.get("hidden_sizes")
    if _int_list(widths) and len(widths) == len(channels):
        level["backbone_channel_list"] = list(reversed(widths))


def _fix_encoder_in_channels(level: dict[str, Any]) -> None:
    """Detector necks (RT-DETR, D-FINE...) take the backbone's tapped stage widths."""
    backbone = level.get("backbone_config")
    if not isinstance(backbone, dict) or not _int_list(level.get("encoder_in_channels")):
        return
    widths = backbone.get("stage_out_channels") or backbone.get("hidden_sizes")
    taps = backbone.get("out_indices")
    if not _int_list(widths) or not _int_list(taps):
        return
    channels = [widths[i - 1] for i in taps if 0 < i <= len(widths)]
    if len(channels) == len(level["encoder_in_channels"]):
        level["encoder_in_channels"] = channels


def tiny_model(model_class, config=None, seed: int = 0) -> torch.nn.Module:
    """The seeded, float32, eval-mode model of `model_class` (class or name) on a tiny config."""
    from .classes import resolve_model_class

    cls = resolve_model_class(model_class) if isinstance(model_class, str) else model_class
    with quiet_config_warnings():
        if config is None:
            model_type = getattr(cls.config_class, "model_type", None)
            if not model_type:
                raise ValueError(
                    f"{cls.__name__} has no config_class.model_type to build a tiny config from"
                )
            config = _tiny_config(model_type)
        wanted = getattr(cls, "config_class", None)
        if wanted is not None and not isinstance(config, wanted):
            # e.g. MusicgenModel is the decoder of the composite "musicgen" config.
            sub = next((c for c in _sub_configs(config) if isinstance(c, wanted)), None)
            if sub is not None:
                config = sub
        torch.manual_seed(seed)
        try:
            model = cls(config)
        except TypeError:
            model = cls._from_config(config)
    return model.float().eval()


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

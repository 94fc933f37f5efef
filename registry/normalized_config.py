"""One vocabulary over the many spellings transformers configs use.

`NormalizedConfig(config).hidden_size` works whether the model calls it `hidden_size`, `d_model`,
`n_embd`, `dim` or `embed_dim`; an attribute the config does not have is `None`, never an
AttributeError.  Composite models expose their parts as normalized sub-configs (`.text`,
`.vision`, `.audio`, `.encoder`, `.decoder`), each `None` when absent.

The table of spellings is data (`SPELLINGS`): the first spelling that the config has, with a
value that is not None, answers.  This mirrors optimum's `NormalizedConfig`, but is generic over
every family instead of one subclass per model.
"""

from __future__ import annotations

from typing import Any

# normalized name -> spellings, most common first.
SPELLINGS: dict[str, tuple[str, ...]] = {
    "hidden_size": (
        "hidden_size", "d_model", "n_embd", "n_embed", "dim", "embed_dim", "model_dim",
        "hidden_dim", "d_embed", "embedding_dim", "width", "hidden_sizes",
    ),
    "num_layers": (
        "num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers",
        "num_encoder_layers", "depth", "depths", "num_blocks",
    ),
    "num_decoder_layers": ("decoder_layers", "num_decoder_layers", "decoder_num_layers"),
    "num_attention_heads": (
        "num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
        "attention_heads", "num_attention_head",
    ),
    "num_decoder_attention_heads": ("decoder_attention_heads", "decoder_num_attention_heads"),
    "num_key_value_heads": ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "multi_query_group_num"),
    "head_dim": ("head_dim", "attention_head_dim", "d_kv", "kv_channels"),
    "intermediate_size": (
        "intermediate_size", "ffn_dim", "encoder_ffn_dim", "d_ff", "n_inner", "mlp_dim",
        "ffn_hidden_size", "dim_feedforward", "hidden_dim_ffn",
    ),
    "vocab_size": ("vocab_size", "n_vocab", "text_vocab_size"),
    "max_positions": (
        "max_position_embeddings", "n_positions", "max_seq_len", "max_sequence_length",
        "n_ctx", "max_len", "seq_length", "max_source_positions", "max_text_len",
    ),
    "max_target_positions": ("max_target_positions",),
    "type_vocab_size": ("type_vocab_size",),
    "image_size": ("image_size", "img_size", "input_size", "vision_image_size"),
    "patch_size": ("patch_size", "patch_sizes", "spatial_patch_size"),
    "temporal_patch_size": ("temporal_patch_size", "tubelet_size", "patch_temporal"),
    "num_frames": ("num_frames", "frames_per_clip"),
    "num_channels": ("num_channels", "in_channels", "in_chans", "input_channels", "channels"),
    "sampling_rate": ("sampling_rate", "sample_rate", "audio_sampling_rate"),
    "num_mel_bins": (
        "num_mel_bins", "n_mels", "feature_size", "num_mel_filters", "input_feat_per_channel",
        "input_feat_size",
    ),
    "context_length": ("context_length", "context_len", "input_size_ts"),
    "prediction_length": ("prediction_length", "horizon_length", "prediction_len"),
    "num_input_channels": ("num_input_channels", "num_time_series", "input_size"),
    "num_labels": ("num_labels",),
    "is_encoder_decoder": ("is_encoder_decoder",),
    "pad_token_id": ("pad_token_id",),
    "bos_token_id": ("bos_token_id",),
    "eos_token_id": ("eos_token_id",),
    "decoder_start_token_id": ("decoder_start_token_id",),
    "image_token_id": ("image_token_id", "image_token_index", "image_token"),
    "video_token_id": ("video_token_id", "video_token_index"),
    "audio_token_id": ("audio_token_id", "audio_token_index"),
    "num_experts": ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"),
    "num_experts_per_tok": ("num_experts_per_tok", "moe_top_k", "top_k", "num_selected_experts"),
}

# normalized sub-config -> attribute names that hold it.
SUB_CONFIGS: dict[str, tuple[str, ...]] = {
    "text": (
        "text_config", "language_config", "llm_config", "text_encoder", "decoder_config",
        "model_config",
    ),
    "vision": ("vision_config", "visual", "vision_encoder_config", "image_config", "vit_config"),
    "audio": ("audio_config", "audio_encoder_config", "speech_config", "encoder_config"),
    "encoder": ("encoder", "encoder_config"),
    "decoder": ("decoder", "decoder_config"),
    "backbone": ("backbone_config",),
}


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:  # some configs compute properties that raise on partial state
        return None


class NormalizedConfig:
    """Read-only view of a `PretrainedConfig` (or its dict) under one vocabulary."""

    SPELLINGS = SPELLINGS
    SUB_CONFIGS = SUB_CONFIGS

    def __init__(self, config: Any):
        object.__setattr__(self, "config", config)

    @property
    def model_type(self) -> str | None:
        return _get(self.config, "model_type")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in SUB_CONFIGS:
            for spelling in SUB_CONFIGS[name]:
                sub = _get(self.config, spelling)
                if sub is not None and not isinstance(sub, (str, int, float, bool, list, tuple)):
                    return NormalizedConfig(sub)
            return None
        for spelling in SPELLINGS.get(name, (name,)):
            value = _get(self.config, spelling)
            if value is not None:
                return value
        return None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("NormalizedConfig is read-only; change the underlying config")

    def get(self, name: str, default: Any = None) -> Any:
        value = getattr(self, name)
        return default if value is None else value

    def first(self, name: str, default: Any = None) -> Any:
        """`name` from this config, else from the text, then vision, then audio sub-config."""
        value = getattr(self, name)
        if value is not None:
            return value
        for part in ("text", "decoder", "vision", "audio", "encoder"):
            sub = getattr(self, part)
            if sub is not None:
                value = getattr(sub, name)
                if value is not None:
                    return value
        return default

    def to_dict(self) -> dict[str, Any]:
        """Every normalized field that has a value (sub-configs nested)."""
        out: dict[str, Any] = {}
        for name in SPELLINGS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name in SUB_CONFIGS:
            sub = getattr(self, name)
            if sub is not None and sub.config is not self.config:
                out[name] = sub.to_dict()
        return out

    def __repr__(self) -> str:
        return f"NormalizedConfig({self.model_type!r}, {self.to_dict()!r})"

"""Valid, deterministic dummy inputs for a (tiny) transformers model.

Generators are per modality; each declares the input names it serves in `SUPPORTED_INPUT_NAMES`.
`dummy_inputs(model)` decides which names the model needs (its forward signature, its main input
name and its config), and for each name the first generator that supports it answers.  A name no
generator supports is a clear `UnknownInputError`.

Multimodal models get real image / audio / video tensors and the matching number of placeholder
tokens in `input_ids`: the count is asked of the model itself (`get_image_features` and friends),
so it is right whatever the projector, pooling or patch merging does.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .normalized_config import NormalizedConfig

# Models without an image_size (CNNs, DETR-like detectors) get 64 px: five stride-2 stages still
# leave a 2x2 map, which group norms need.
DEFAULT_IMAGE = 64
# Video trackers' frames, where the config names no image size.
IMAGE_SIDE = 32
AUDIO_SAMPLES = 4000
MEL_FRAMES = 64


class UnknownInputError(ValueError):
    """A model needs an input that no dummy-input generator knows how to build."""


@dataclass
class InputContext:
    model: Any
    config: Any
    batch_size: int
    seq_len: int
    generator: torch.Generator
    made: dict[str, torch.Tensor] = field(default_factory=dict)
    # Facts one generator leaves for another (e.g. how many frames the audio features have).
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def nc(self) -> NormalizedConfig:
        return NormalizedConfig(self.config)

    def sub(self, *parts: str) -> NormalizedConfig:
        """The first of the named sub-configs the config has, else the config itself."""
        for part in parts:
            sub = getattr(self.nc, part)
            if sub is not None:
                return sub
        return self.nc

    def randint(self, low: int, high: int, shape) -> torch.Tensor:
        return torch.randint(low, max(high, low + 1), tuple(shape), generator=self.generator)

    def randn(self, shape) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.generator)

    def rand(self, shape) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=self.generator)


def _int(value: Any, default: int) -> int:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _special_ids(config: Any) -> set[int]:
    ids: set[int] = set()
    stack = [config]
    while stack:
        c = stack.pop()
        d = c if isinstance(c, dict) else getattr(c, "__dict__", {})
        for key, value in d.items():
            if key.endswith(("_token_id", "_token_index", "_token_ids")) or key == "pad_token_id":
                for v in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(v, int) and not isinstance(v, bool):
                        ids.add(v)
            elif hasattr(value, "to_dict") and hasattr(value, "model_type"):
                stack.append(value)
    return ids


class InputGenerator:
    SUPPORTED_INPUT_NAMES: tuple[str, ...] = ()

    def __init__(self, ctx: InputContext):
        self.ctx = ctx

    def supports(self, name: str) -> bool:
        return name in self.SUPPORTED_INPUT_NAMES

    def generate(self, name: str) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class TextInputGenerator(InputGenerator):
    SUPPORTED_INPUT_NAMES = (
        "input_ids", "attention_mask", "token_type_ids", "position_ids", "decoder_input_ids",
        "decoder_attention_mask", "labels", "decoder_position_ids", "global_attention_mask",
        "head_mask", "text_input_ids", "input_ids_text", "langs", "visual_token_type_ids",
        "cache_position", "mm_token_type_ids",
    )

    def vocab_size(self, decoder: bool = False) -> int:
        ctx = self.ctx
        nc = ctx.nc
        # The encoder's own vocabulary for input_ids where it has one (Dia: bytes in, codes out).
        sub = nc.decoder if decoder else nc.encoder
        for source in (sub, nc, nc.text):
            if source is not None and isinstance(source.vocab_size, int) and source.vocab_size > 1:
                return source.vocab_size
        return 99

    def ids(self, length: int, decoder: bool = False) -> torch.Tensor:
        vocab = self.vocab_size(decoder)
        special = _special_ids(self.ctx.config)
        ids = self.ctx.randint(0, vocab, (self.ctx.batch_size, length))
        # Keep placeholders (image / audio tokens...) out of ordinary text.
        safe = [i for i in range(min(vocab, 200)) if i not in special] or [0]
        bad = torch.zeros_like(ids, dtype=torch.bool)
        for s in special:
            bad |= ids == s
        if bad.any():
            pick = ctx_pick(self.ctx, safe, int(bad.sum()))
            ids[bad] = pick
        return ids

    def generate(self, name: str) -> torch.Tensor:
        ctx = self.ctx
        b, s = ctx.batch_size, ctx.seq_len
        if name in ("input_ids", "text_input_ids", "input_ids_text"):
            ids = self.ids(s)
            if input_option(ctx, "ids_per_codebook"):
                # Audio-token decoders (MusicGen): one row per codebook, (batch * codebooks, seq).
                ids = ids.repeat(_int(getattr(ctx.config, "num_codebooks", 1), 1), 1)
            if input_option(ctx, "text_and_codes"):
                # Kyutai STT: a text token plus one audio code per codebook at every step,
                # (batch, seq, 1 + codebooks); codes index each codebook's own table.
                c = ctx.config
                n = _int(getattr(c, "num_codebooks", 1), 1)
                codes = ctx.randint(0, _int(getattr(c, "codebook_vocab_size", 2), 2) - 1, (b, s, n))
                ids = torch.cat([ids.unsqueeze(-1), codes], dim=-1)
            return ids
        if name in ("decoder_input_ids", "labels"):
            ids = self.ids(s, decoder=True)
            codebooks = input_option(ctx, "decoder_codebooks")
            if codebooks:
                # Audio-code decoders (Dia): one code per codebook and step, (batch, seq, codebooks).
                n = _int(getattr(ctx.nc.decoder.config, codebooks, 1), 1)
                ids = ids.unsqueeze(-1).repeat(1, 1, n).contiguous()
            return ids
        length = ctx.made["input_ids"].shape[1] if "input_ids" in ctx.made else s
        if name == "attention_mask":
            return torch.ones(b, length, dtype=torch.long)
        if name == "decoder_attention_mask":
            dec = ctx.made.get("decoder_input_ids")
            return torch.ones(b, dec.shape[1] if dec is not None else s, dtype=torch.long)
        if name in ("token_type_ids", "visual_token_type_ids", "langs", "mm_token_type_ids"):
            return torch.zeros(b, length, dtype=torch.long)
        if name in ("position_ids", "decoder_position_ids"):
            return torch.arange(length).unsqueeze(0).expand(b, length).clone()
        if name == "cache_position":
            return torch.arange(length)
        if name == "global_attention_mask":
            mask = torch.zeros(b, length, dtype=torch.long)
            mask[:, 0] = 1
            return mask
        raise UnknownInputError(name)


# The per-family input knowledge a model type's `_inputs` table in tiny_overrides.yaml may
# hold: option -> what it says (tests check the file against this table).
INPUT_OPTIONS: dict[str, str] = {
    "extra": "input names to build although forward marks them optional",
    "skip": "input names not to build",
    "image_size": "image side (or [height, width]) where the config does not say it",
    "image_layout": "how pixel_values are laid out: one of IMAGE_LAYOUTS",
    "image_attention_per_token": "image_attention_mask is (batch, text, images) (IDEFICS)",
    "tile_mask": "pixel_attention_mask marks real (batch, tiles) (GraniteDocling)",
    "audio_samples": "raw audio length in samples (a whole number of codec hops)",
    "mel_frames": "spectrogram frames",
    "mel_bins": "spectrogram bins where the config does not say them",
    "features_layout": "input_features as channels_first / frames_first / image / a width",
    "values_layout": "input_values as a spectrogram, embeddings (hidden) or codec audio (codec)",
    "bool_inputs": "masks to pass as bool (the model negates them with ~)",
    "ids_per_codebook": "input_ids as (batch * codebooks, seq) (MusicGen)",
    "decoder_codebooks": "decoder config attribute counting codebooks; ids (batch, seq, n)",
    "text_and_codes": "input_ids as (batch, seq, 1 + codebooks) (Kyutai)",
    "normalized_boxes": "bbox as float fractions of the page (UDOP)",
    "univariate_2d": "a univariate history as (batch, time)",
    "switches": "forward's non-tensor arguments to set ({name: value}), e.g. sampling off",
    "hidden_states_as": "a codec half's hidden_states input: raw audio or latents",
    "image_placeholders": "image placeholder tokens, where the feature getter cannot be asked",
    "audio_placeholders": "audio placeholder tokens, where the feature getter cannot be asked",
}
IMAGE_LAYOUTS = (
    "images5d", "pairs", "video", "tiles", "patches", "patch_rows", "merged_tiles", "patch_images",
    "voxels",
)


def input_option(ctx: InputContext, key: str, default: Any = None) -> Any:
    """Per-family input knowledge: the `_inputs` table of the model type in tiny_overrides.yaml."""
    from .tiny import load_overrides

    if key not in INPUT_OPTIONS:
        raise KeyError(f"unknown dummy-input option {key!r} (known: {sorted(INPUT_OPTIONS)})")
    family = load_overrides().get(getattr(ctx.config, "model_type", None)) or {}
    return (family.get("_inputs") or {}).get(key, default)


def ctx_pick(ctx: InputContext, choices: list[int], n: int) -> torch.Tensor:
    index = torch.randint(0, len(choices), (n,), generator=ctx.generator)
    return torch.tensor(choices)[index]


class BboxInputGenerator(InputGenerator):
    SUPPORTED_INPUT_NAMES = ("bbox",)

    def generate(self, name: str) -> torch.Tensor:
        ctx = self.ctx
        length = ctx.made["input_ids"].shape[1] if "input_ids" in ctx.made else ctx.seq_len
        a = ctx.randint(0, 500, (ctx.batch_size, length, 2))
        b = a + ctx.randint(1, 500, (ctx.batch_size, length, 2))
        boxes = torch.stack([a[..., 0], a[..., 1], b[..., 0], b[..., 1]], dim=-1)
        if input_option(ctx, "normalized_boxes"):
            return boxes.float() / 1000.0  # UDOP: (x0, y0, x1, y1) as fractions of the page
        return boxes


class VisionInputGenerator(InputGenerator):
    SUPPORTED_INPUT_NAMES = (
        "pixel_values", "pixel_mask", "image_sizes", "image_grid_thw", "grid_thw", "pixel_attention_mask",
        "image_attention_mask", "bool_masked_pos", "interpolate_pos_encoding", "spatial_shapes",
        "pixel_position_ids", "prompt_pixel_values", "prompt_masks", "target_sizes",
    )

    def supports(self, name: str) -> bool:
        # Vision towers of Qwen-VL style models take flattened patches as `hidden_states`.
        return name in self.SUPPORTED_INPUT_NAMES or (name == "hidden_states" and self.uses_grid())

    def vision(self) -> NormalizedConfig:
        return self.ctx.sub("vision", "backbone")

    def image_hw(self) -> tuple[int, int]:
        v = self.vision()
        # Per-family size where the config does not say it (timm towers keep it in model_args).
        size = input_option(self.ctx, "image_size") or v.image_size or self.ctx.nc.image_size
        if _int(getattr(self.ctx.config, "num_feature_levels", None), 0) >= 4 and _int(size, 0) < 128:
            size = 128  # deformable detectors add a stride-64 level: keep it 2 x 2
        if isinstance(size, (list, tuple)) and len(size) >= 2:
            return int(size[0]), int(size[1])
        if isinstance(size, dict):
            return int(size.get("height", DEFAULT_IMAGE)), int(size.get("width", DEFAULT_IMAGE))
        default = DEFAULT_IMAGE
        if _int(getattr(self.ctx.config, "num_feature_levels", None), 0) >= 4:
            default = 128  # deformable detectors add a stride-64 level: keep it 2 x 2
        n = _int(size, default)
        return n, n

    def channels(self) -> int:
        v = self.vision()
        return _int(v.num_channels, _int(self.ctx.nc.num_channels, 3))

    def generate(self, name: str) -> torch.Tensor:
        ctx = self.ctx
        b = ctx.batch_size
        if name in ("image_grid_thw", "grid_thw"):
            return ctx.made.get("image_grid_thw", ctx.made.get("grid_thw", self.grid()))
        if name in ("pixel_values", "hidden_states"):
            if "spatial_shapes" in _forward_params(ctx.model):
                # NaFlex (Siglip2): pre-patchified images, (batch, patches, C * P * P).
                patch = _int(self.vision().patch_size, 16)
                return ctx.randn((b, 16, self.channels() * patch * patch))
            if self.uses_grid():
                grid = ctx.made.get("image_grid_thw", ctx.made.get("grid_thw"))
                if grid is None:
                    grid = self.grid()
                v = self.vision()
                patch = _int(v.patch_size, 14)
                if input_option(ctx, "image_layout") == "patch_images":
                    # Kimi K2.5 / PaddleOCR-VL: every patch as a small image, (patches, C, P, P).
                    rows = int(grid.prod(-1).sum())
                    return ctx.randn((rows, self.channels(), patch, patch))
                if input_option(ctx, "image_layout") == "merged_tiles":
                    # Inkling 2: one (P * merge)^2 pixel tile, channels last, per LM image token.
                    side = patch * _int(getattr(v.config, "spatial_merge_size", None), 1)
                    return ctx.randn((int(grid.prod(-1).sum()), side, side, self.channels()))
                temporal = _int(v.temporal_patch_size, 1)
                rows = int(grid.prod(-1).sum())
                return ctx.randn((rows, self.channels() * temporal * patch * patch))
            h, w = self.image_hw()
            if getattr(ctx.config, "image_grid_pinpoints", None) and "image_sizes" in _forward_params(ctx.model):
                # LLaVA-NeXT style any-res: the base view plus one tile for an image of the base size.
                return ctx.randn((b, 2, self.channels(), h, w))
            layout = input_option(ctx, "image_layout")
            if layout == "tiles":
                # Mllama: (batch, images, max_num_tiles, C, H, W); one image in its first tile.
                tiles = _int(getattr(self.vision().config, "max_num_tiles", None), 4)
                return ctx.randn((b, 1, tiles, self.channels(), h, w))
            if layout == "voxels":
                # Inkling: (temporal x P x P) pixel blocks, channels last, one per LM image token.
                v = self.vision()
                patch, t = _int(v.patch_size, 16), _int(v.temporal_patch_size, 1)
                return ctx.randn((4 * b, t, patch, patch, self.channels()))
            if layout == "patch_rows":
                # NeoMME: every image patch flattened, no batch axis, (patches, C * P * P).
                patch = _int(self.vision().patch_size, 16)
                return ctx.randn(((h // patch) * (w // patch) * b, self.channels() * patch * patch))
            if layout == "patches":
                # Fuyu: the image cut into flat patches, (batch, patches, C * P * P).
                patch = _int(self.vision().patch_size, 16)
                n = (h // patch) * (w // patch)
                return ctx.randn((b, n, self.channels() * patch * patch))
            if layout in ("images5d", "pairs"):
                # Idefics-style (batch, images per sample, C, H, W); keypoint matchers take pairs.
                return ctx.randn((b, 2 if layout == "pairs" else 1, self.channels(), h, w))
            frames = self.num_frames() or (4 if layout == "video" else None)
            if frames:
                return ctx.randn((b, frames, self.channels(), h, w))
            return ctx.randn((b, self.channels(), h, w))
        if name == "target_sizes":
            # MiniCPM-V: each image's patch grid (rows, columns).
            h, w = self.image_hw()
            patch = _int(self.vision().patch_size, 14)
            return torch.tensor([[h // patch, w // patch]] * b)
        if name in ("prompt_pixel_values", "prompt_masks"):
            # SegGPT's in-context example: an image and its mask, shaped like the input image.
            h, w = self.image_hw()
            return ctx.randn((b, self.channels(), h, w))
        if name == "pixel_position_ids":
            # (x, y) of every flat patch, row by row (Gemma 4's patch layout).
            h, w = self.image_hw()
            patch = _int(self.vision().patch_size, 16)
            cols, rows = w // patch, h // patch
            xy = torch.stack(torch.meshgrid(torch.arange(cols), torch.arange(rows), indexing="xy"), -1)
            return xy.reshape(1, rows * cols, 2).expand(b, -1, -1).clone()
        if name == "spatial_shapes":
            return torch.tensor([[4, 4]] * b)
        if name == "pixel_attention_mask" and "spatial_shapes" in _forward_params(ctx.model):
            return torch.ones(b, 16, dtype=torch.long)
        if name == "pixel_attention_mask" and input_option(ctx, "tile_mask"):
            # GraniteDocling: which of the (batch, tiles) image tiles are real; all of them.
            return torch.ones(b, 1, dtype=torch.bool)
        if name == "image_attention_mask" and input_option(ctx, "image_attention_per_token"):
            # IDEFICS: which images each text token cross-attends to, (batch, text, images); all.
            ids = ctx.made.get("input_ids")
            images = ctx.made["pixel_values"].shape[1] if "pixel_values" in ctx.made else 1
            return torch.ones(b, ids.shape[1] if ids is not None else ctx.seq_len, images,
                              dtype=torch.long)
        if name in ("pixel_mask", "pixel_attention_mask"):
            h, w = self.image_hw()
            return torch.ones(b, h, w, dtype=torch.long)
        if name == "image_sizes":
            h, w = self.image_hw()
            return torch.tensor([[h, w]] * b)
        if name == "bool_masked_pos":
            h, w = self.image_hw()
            patch = _int(self.vision().patch_size, 16)
            n = max(1, (h // patch) * (w // patch))
            return ctx.rand((b, n)) < 0.5
        raise UnknownInputError(name)

    def num_frames(self) -> int | None:
        nc = self.ctx.nc
        if getattr(self.ctx.model, "main_input_name", None) == "pixel_values_videos":
            return None
        frames = nc.num_frames or self.vision().num_frames
        return _int(frames, 0) or None

    def uses_grid(self) -> bool:
        params = _forward_params(self.ctx.model)
        return "image_grid_thw" in params or "grid_thw" in params

    def grid(self) -> torch.Tensor:
        v = self.vision()
        merge = _int(getattr(v.config, "spatial_merge_size", None), 2)
        if input_option(self.ctx, "image_layout") == "merged_tiles":
            merge = 1  # the grid counts LM image tokens, not patches
        t = 1
        return torch.tensor([[t, 2 * merge, 2 * merge]] * self.ctx.batch_size)


class AudioInputGenerator(InputGenerator):
    SUPPORTED_INPUT_NAMES = (
        "input_values", "input_features", "feature_attention_mask", "audio_values",
        "input_features_mask", "padding_mask", "audio_attention_mask", "audio_mel", "audio_mel_mask",
        "decoder_input_values",
    )

    def audio(self) -> NormalizedConfig:
        return self.ctx.sub("audio", "encoder")

    def supports(self, name: str) -> bool:
        # Stand-alone codec halves (VibeVoice) name their input hidden_states.
        return name in self.SUPPORTED_INPUT_NAMES or (
            name == "hidden_states" and input_option(self.ctx, "hidden_states_as") is not None)

    def generate(self, name: str) -> torch.Tensor:
        ctx = self.ctx
        b = ctx.batch_size
        if name == "hidden_states":
            c = ctx.config
            if input_option(ctx, "hidden_states_as") == "latents":  # (batch, latent channels, frames)
                return ctx.randn((b, _int(getattr(c, "hidden_size", None), 32), ctx.seq_len))
            channels = _int(getattr(c, "channels", None), 1)  # raw audio, (batch, channels, samples)
            return ctx.randn((b, channels, input_option(ctx, "audio_samples", AUDIO_SAMPLES)))
        a = self.audio()
        samples = input_option(ctx, "audio_samples", AUDIO_SAMPLES)
        frames = input_option(ctx, "mel_frames", MEL_FRAMES)
        if name in ("input_values", "audio_values", "decoder_input_values"):
            if input_option(ctx, "values_layout") == "hidden":
                # SpeechT5's bare encoder-decoder (no pre-net): input_values are embeddings.
                return ctx.randn((b, ctx.seq_len, _int(ctx.nc.hidden_size, 32)))
            if input_option(ctx, "values_layout") == "spectrogram":
                # AST-style: a spectrogram (batch, frames, mel bins) under the name input_values.
                length = _int(getattr(a.config, "max_length", None), frames)
                return ctx.randn((b, length, _int(a.num_mel_bins, 128)))
            if input_option(ctx, "values_layout") == "codec" or self.is_codec(a.config):
                channels = _int(getattr(a.config, "audio_channels", None), 1)
                return ctx.randn((b, channels, samples))
            return ctx.randn((b, samples))
        if name == "input_features":
            features, frames_axis = self.features(a, b, frames)
            # Masks over the features count frames, wherever the layout puts them.
            ctx.notes["feature_frames"] = features.shape[frames_axis]
            return features
        if name == "audio_mel":
            # Gemma 3n's audio encoder: (batch, frames, mel bins).
            return ctx.randn((b, frames, _int(a.num_mel_bins, 128)))
        if name == "audio_mel_mask":
            # A padding mask (True = padded frame): nothing is padded.
            mel = ctx.made.get("audio_mel")
            return torch.zeros(b, mel.shape[1] if mel is not None else frames, dtype=torch.bool)
        if name in ("feature_attention_mask", "input_features_mask", "audio_attention_mask"):
            return torch.ones(b, ctx.notes.get("feature_frames", frames), dtype=torch.long)
        if name == "padding_mask":
            values = ctx.made.get("input_values")
            length = values.shape[-1] if values is not None else AUDIO_SAMPLES
            return torch.ones(b, length, dtype=torch.long)
        raise UnknownInputError(name)


    def features(self, a: NormalizedConfig, b: int, frames: int) -> tuple[torch.Tensor, int]:
        """Spectrogram features in the layout the encoder reads, and which axis holds frames."""
        ctx = self.ctx
        mel = input_option(ctx, "mel_bins") or _int(
            a.num_mel_bins or _find_sub_config(a.config, "num_mel_bins"), 80)
        width = _int(getattr(a.config, "feature_projection_input_dim", None), 0)
        stacked = _int(getattr(a.config, "num_stacked_frames", None), 0)
        if stacked:
            width = mel * stacked
        if width:
            return ctx.randn((b, frames, width)), 1  # stacked frames (w2v-BERT, Fun-ASR)
        if self.is_whisper_like(a.config):
            src = _int(getattr(a.config, "max_source_positions", None), MEL_FRAMES // 2)
            return ctx.randn((b, mel, input_option(ctx, "mel_frames", 2 * src))), 2
        layout = input_option(ctx, "features_layout") or _first_layer_layout(ctx.model, mel)
        if layout == "image":
            return ctx.randn((b, 1, frames, mel)), 2  # a one-channel spectrogram image
        if layout == "channels_first":
            return ctx.randn((b, mel, frames)), 2
        if isinstance(layout, int):
            return ctx.randn((b, frames, layout)), 1
        return ctx.randn((b, frames, mel)), 1

    @staticmethod
    def is_whisper_like(config) -> bool:
        """Whisper-style encoders take (batch, mel bins, frames), frames = 2 x max_source_positions."""
        return getattr(config, "num_mel_bins", None) is not None and getattr(
            config, "max_source_positions", None) is not None

    @staticmethod
    def is_codec(config) -> bool:
        """Neural codecs take raw audio as (batch, channels, samples); CTC encoders take (batch, samples).
        An encoder that embeds audio through a codec's encoder (PE audio's DAC) reads it as one."""
        if any(hasattr(config, k) for k in ("conv_dim", "feat_extract_norm", "num_feat_extract_layers")):
            return False
        if any(_find_sub_config(config, k) is not None for k in ("dac_config", "codec_config")):
            return True
        return any(
            getattr(config, k, None) is not None
            for k in ("audio_channels", "upsampling_ratios", "downsampling_ratios", "hop_length",
                      "frame_rate", "num_quantizers", "n_codebooks", "codebook_size", "encoder_rates")
        )


class TimeSeriesInputGenerator(InputGenerator):
    SUPPORTED_INPUT_NAMES = (
        "past_values", "past_time_features", "past_observed_mask", "static_categorical_features",
        "static_real_features", "future_time_features", "future_values", "past_time_stamps",
    )

    def lengths(self) -> tuple[int, int]:
        c = self.ctx.config
        context = _int(getattr(c, "context_length", None), 32)
        lags = getattr(c, "lags_sequence", None)
        history = context + (max(lags) if lags else 0)
        return history, _int(getattr(c, "prediction_length", None), 8)

    def channels(self) -> int:
        c = self.ctx.config
        for key in ("num_input_channels", "input_size"):
            v = getattr(c, key, None)
            if isinstance(v, int) and v > 0:
                return v
        return 1

    def generate(self, name: str) -> torch.Tensor:
        ctx, c = self.ctx, self.ctx.config
        b = ctx.batch_size
        history, horizon = self.lengths()
        ch = self.channels()
        flat = ch == 1 and (hasattr(c, "lags_sequence") or input_option(ctx, "univariate_2d"))
        shape = (b, history) if flat else (b, history, ch)
        if name == "past_values":
            return ctx.randn(shape)
        if name == "past_observed_mask":
            return torch.ones(shape)
        if name == "past_time_features":
            return ctx.randn((b, history, _int(getattr(c, "num_time_features", 0), 0)))
        if name == "future_time_features":
            return ctx.randn((b, horizon, _int(getattr(c, "num_time_features", 0), 0)))
        if name == "future_values":
            return ctx.randn((b, horizon) if len(shape) == 2 else (b, horizon, ch))
        if name == "static_categorical_features":
            n = _int(getattr(c, "num_static_categorical_features", 1), 1)
            return torch.zeros(b, n, dtype=torch.long)
        if name == "static_real_features":
            return ctx.randn((b, _int(getattr(c, "num_static_real_features", 1), 1)))
        if name == "past_time_stamps":
            return torch.arange(history).float().unsqueeze(0).expand(b, history).clone()
        raise UnknownInputError(name)


class FamilyInputGenerator(InputGenerator):
    """Inputs only a few families take; each sized from the family's own config fields."""

    SUPPORTED_INPUT_NAMES = (
        "qformer_input_ids", "qformer_attention_mask", "pixel_values_videos", "states", "actions",
        "rewards", "returns_to_go", "timesteps", "visual_feats", "visual_pos", "query_embeds",
        "latents", "inputs", "high_res_pixel_values", "merge_sizes", "image_merge_sizes", "freq",
        "past_values_padding", "image_embeds_position_mask", "encoder_hidden_states",
        "aspect_ratio_ids", "aspect_ratio_mask", "cross_attention_mask", "noise", "noise_sequence",
        "inputs_embeds", "noise_embeds", "context_hidden_states", "task_inputs",
        "classes_input_ids", "classes_attention_mask", "tasks_input_ids", "tasks_attention_mask",
        "classes_structure",
    )

    def generate(self, name: str) -> torch.Tensor:
        ctx, c = self.ctx, self.ctx.config
        b, s = ctx.batch_size, ctx.seq_len
        nc = ctx.nc
        if name == "qformer_input_ids":
            q = getattr(c, "qformer_config", None)
            return ctx.randint(0, _int(getattr(q, "vocab_size", None), 99), (b, s))
        if name == "qformer_attention_mask":
            return torch.ones(b, s, dtype=torch.long)
        if name == "pixel_values_videos":
            v = VisionInputGenerator(ctx)
            h, w = v.image_hw()
            frames = _int(getattr(c, "frames_per_clip", None) or nc.num_frames or v.vision().num_frames, 4)
            return ctx.randn((b, frames, v.channels(), h, w))
        if name == "states":
            return ctx.randn((b, s, _int(getattr(c, "state_dim", None), 4)))
        if name == "actions":
            return ctx.randn((b, s, _int(getattr(c, "act_dim", None), 2)))
        if name in ("rewards", "returns_to_go"):
            return ctx.randn((b, s, 1))
        if name == "timesteps":
            return torch.arange(s).unsqueeze(0).expand(b, s).clone()
        if name == "visual_feats":
            return ctx.randn((b, 4, _int(getattr(c, "visual_feat_dim", None), 2048)))
        if name == "visual_pos":
            return ctx.rand((b, 4, _int(getattr(c, "visual_pos_dim", None), 4)))
        if name == "query_embeds":
            return ctx.randn((b, _int(getattr(c, "num_query_tokens", None), 4), _int(nc.hidden_size, 32)))
        if name == "latents":
            return ctx.randn((b, _int(nc.hidden_size, 32), 8))
        if name == "inputs":
            return ctx.randn((b, s, _int(getattr(c, "d_model", None), _int(nc.hidden_size, 32))))
        if name == "high_res_pixel_values":
            hv = getattr(c, "high_res_vision_config", None)
            size = _int(getattr(hv, "image_size", None), 64)
            return ctx.randn((b, 3, size, size))
        if name in ("merge_sizes", "image_merge_sizes"):
            v = VisionInputGenerator(ctx).vision()
            return torch.tensor([_int(getattr(v.config, "spatial_merge_size", None), 1)] * b)
        if name == "freq":
            return torch.zeros(b, 1, dtype=torch.long)
        if name == "past_values_padding":
            past = ctx.made.get("past_values")
            return torch.zeros(b, past.shape[1] if past is not None else 32)
        if name in ("aspect_ratio_ids", "aspect_ratio_mask", "cross_attention_mask"):
            # Mllama's tiling: one image, aspect ratio id 1 (1 x 1 tiles), so only its first tile
            # is real, and every text token cross-attends to it.
            tiles = ctx.made["pixel_values"].shape[2] if "pixel_values" in ctx.made else 4
            if name == "aspect_ratio_ids":
                return torch.ones(b, 1, dtype=torch.long)
            first = torch.zeros(tiles, dtype=torch.long)
            first[0] = 1
            if name == "aspect_ratio_mask":
                return first.expand(b, 1, tiles).clone()
            length = ctx.made["input_ids"].shape[1] if "input_ids" in ctx.made else s
            return first.expand(b, length, 1, tiles).clone()
        if name == "noise":
            # ViT-MAE's random masking draws one score per patch; given, the masking is fixed.
            v = VisionInputGenerator(ctx)
            h, w = v.image_hw()
            patch = _int(v.vision().patch_size, 16)
            return ctx.rand((b, (h // patch) * (w // patch)))
        if name == "noise_sequence":
            # UnivNet's excitation noise, one row per spectrogram frame.
            feats = ctx.made.get("input_features")
            frames = feats.shape[1] if feats is not None else s
            return ctx.randn((b, frames, _int(getattr(c, "model_in_channels", None), 64)))
        if name in ("classes_input_ids", "tasks_input_ids"):
            # OmDet-Turbo: tokenised class names (two per image) and one task prompt per image.
            rows = 2 * b if name == "classes_input_ids" else b
            return TextInputGenerator(ctx).ids(s)[:1].expand(rows, -1).clone()
        if name in ("classes_attention_mask", "tasks_attention_mask"):
            return torch.ones(2 * b if name.startswith("classes") else b, s, dtype=torch.long)
        if name == "classes_structure":
            return torch.full((b,), 2, dtype=torch.long)  # how many class rows belong to each image
        if name == "task_inputs":
            # OneFormer's tokenised task prompt ("the task is semantic"), task_seq_len long.
            vocab = _int(getattr(c, "text_encoder_vocab_size", None), 99)
            return ctx.randint(0, vocab, (b, _int(getattr(c, "task_seq_len", None), s)))
        if name in ("inputs_embeds", "noise_embeds"):
            # Models whose only input is embeddings (a word-timestamp head over ASR encoder
            # states, a speculative draft model's noise embeddings).
            return ctx.randn((b, s, _int(nc.hidden_size, 32)))
        if name == "context_hidden_states":
            # A draft model reads the target model's hidden states at target_layer_ids, concatenated.
            taps = len(getattr(c, "target_layer_ids", None) or [0])
            return ctx.randn((b, s, _int(nc.hidden_size, 32) * taps))
        if name == "encoder_hidden_states":
            # What a stand-alone decoder / Q-Former cross-attends to (e.g. image features).
            width = _int(getattr(c, "encoder_hidden_size", None), _int(nc.hidden_size, 32))
            return ctx.randn((b, s, width))
        if name == "image_embeds_position_mask":
            # Kosmos-2: latent_query_num image slots right after the first token.
            n = _int(getattr(c, "latent_query_num", None), 64)
            ids = ctx.made["input_ids"]
            ctx.made["input_ids"] = torch.cat(
                [ids[:, :1], torch.zeros(b, n, dtype=ids.dtype), ids[:, 1:]], dim=1)
            mask = torch.zeros_like(ctx.made["input_ids"])
            mask[:, 1:1 + n] = 1
            return mask
        raise UnknownInputError(name)


class VideoSessionInputGenerator(InputGenerator):
    """Video trackers (SAM 2 / SAM 3 / EdgeTAM video) take a session object, not tensors: the
    video's frames, the prompts and the memory bank forward reads and updates.  Their processor
    builds it; here it is built the same way from the session class forward names, holding two
    preprocessed frames at the model's image size and one prompt on the first frame."""

    SUPPORTED_INPUT_NAMES = ("inference_session", "frame_idx")

    def generate(self, name: str) -> Any:
        if name == "frame_idx":
            return 0  # forward tracks one frame of the session per call: the prompted one
        ctx = self.ctx
        session_class = _forward_params(ctx.model)["inference_session"].annotation
        size = _int(ctx.nc.image_size or VisionInputGenerator(ctx).vision().image_size, IMAGE_SIDE)
        frames = ctx.randn((2, VisionInputGenerator(ctx).channels(), size, size))
        session = session_class(video=frames, video_height=size, video_width=size, dtype=torch.float32)
        if hasattr(session, "add_prompt"):
            # SAM 3 video detects what a text prompt names: its token ids, as the processor stores them.
            prompt = session.add_prompt("object")
            session.prompt_input_ids[prompt] = TextInputGenerator(ctx).ids(32)[:1]
            session.prompt_attention_masks[prompt] = torch.ones(1, 32, dtype=torch.long)
        else:
            # Point trackers: one positive click in the middle of frame 0 for object id 1, in the
            # model's pixel coordinates, as the processor's add_inputs_to_inference_session adds it.
            obj_idx = session.obj_id_to_idx(1)
            point = {"point_coords": torch.tensor([[[[size / 2, size / 2]]]]),
                     "point_labels": torch.ones(1, 1, 1, dtype=torch.int32)}  # fmt: skip
            session.add_point_inputs(obj_idx, 0, point)
            session.obj_with_new_inputs = [1]
        return session


GENERATORS: list[type[InputGenerator]] = [
    TextInputGenerator,
    BboxInputGenerator,
    VisionInputGenerator,
    AudioInputGenerator,
    TimeSeriesInputGenerator,
    FamilyInputGenerator,
    VideoSessionInputGenerator,
]


def _find_sub_config(config: Any, name: str, depth: int = 3) -> Any:
    """The sub-config called `name` at any depth (composite configs nest encoders in encoders)."""
    found = getattr(config, name, None)
    if found is not None or depth == 0:
        return found
    for value in list(getattr(config, "__dict__", {}).values()):
        if hasattr(value, "to_dict") and hasattr(value, "model_type") and value is not config:
            found = _find_sub_config(value, name, depth - 1)
            if found is not None:
                return found
    return None


def _forward_params(model) -> dict[str, inspect.Parameter]:
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return {}
    return {
        n: p
        for n, p in sig.parameters.items()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def _has_vision(nc: NormalizedConfig) -> bool:
    return nc.vision is not None or (nc.image_token_id is not None and not _tower_off(nc, "vision"))


def _has_audio(nc: NormalizedConfig) -> bool:
    return nc.audio is not None or (nc.audio_token_id is not None and not _tower_off(nc, "audio"))


def _tower_off(nc: NormalizedConfig, kind: str) -> bool:
    """The config keeps the placeholder ids but says there is no such tower (`vision_config: None`)."""
    return any(
        hasattr(nc.config, name) and getattr(nc.config, name, None) is None
        for name in NormalizedConfig.SUB_CONFIGS[kind]
        if name.endswith("_config")
    )


def _required(fn) -> list[str]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return []
    return [
        n for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def needed_input_names(model) -> list[str]:
    """Names of the inputs to build, in build order."""
    params = _forward_params(model)
    config = model.config
    nc = NormalizedConfig(config)
    names: list[str] = [n for n, p in params.items() if p.default is inspect.Parameter.empty]
    main = getattr(model, "main_input_name", None)
    for name in reversed(main if isinstance(main, (list, tuple)) else [main]):
        # OneFormer declares two main inputs (image and task tokens).
        if name in params and name not in names:
            names.insert(0, name)
    if not names:
        # Every input optional and the declared main input not among them (a text tower that
        # inherits main_input_name "pixel_values"): feed the first primary input forward takes.
        names = [n for n in ("input_ids", "pixel_values", "input_values", "input_features")
                 if n in params][:1]
    want = set(names)
    multimodal = _has_vision(nc) or _has_audio(nc)
    if multimodal and "input_ids" in params:
        want.add("input_ids")
    if "input_ids" in want:
        if "pixel_values" in params and _has_vision(nc):
            want.add("pixel_values")
        if "input_features" in params and _has_audio(nc):
            want.add("input_features")
        elif "input_values" in params and _has_audio(nc):
            want.add("input_values")
    if "pixel_values" in want:
        # NaFlex (Siglip2): pre-patchified images need their grid shape and patch mask.
        for extra in ("image_grid_thw", "grid_thw", "spatial_shapes", "pixel_attention_mask"):
            if extra == "pixel_attention_mask" and "spatial_shapes" not in params:
                continue
            if extra in params:
                want.add(extra)
        if "image_sizes" in params and getattr(config, "image_grid_pinpoints", None):
            want.add("image_sizes")
    if "input_features" in want:
        # Audio encoders that count valid frames from a mask read it even though it is optional.
        want.update(n for n in ("feature_attention_mask", "input_features_mask") if n in params)
    # Whatever the model's own feature getters require, when forward takes it too.
    for kind in ("image", "audio", "video"):
        fn = getattr(model, f"get_{kind}_features", None)
        if fn is not None and want & set(_required(fn)):
            want.update(n for n in _required(fn) if n in params)
    from .tiny import load_overrides

    family = (load_overrides().get(getattr(config, "model_type", None)) or {}).get("_inputs") or {}
    want.update(n for n in family.get("extra", []) if n in params)
    want.difference_update(family.get("skip", []))
    if "input_ids" in want and "bbox" in params:
        want.add("bbox")
    if "inference_session" in want and "frame_idx" in params:
        want.add("frame_idx")  # a session holds every frame: forward must be told which to track
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in params:
        want.add("decoder_input_ids")
    if "input_ids" in want:
        for extra in ("attention_mask", "mm_token_type_ids"):
            if extra in params:
                want.add(extra)
    order = [
        "image_grid_thw", "grid_thw", "pixel_values", "input_features", "input_values", "input_ids",
        "decoder_input_ids",
    ]
    return sorted(want, key=lambda n: (order.index(n) if n in order else len(order), n))


def _first_layer_layout(model, mel: int):
    """How the audio encoder reads `input_features`, from its first weighted layer: a Conv1d over
    mel channels means (batch, mel, frames); a Linear means (batch, frames, in_features)."""
    audio = None
    for name in ("audio_tower", "audio_encoder", "encoder", "audio_model", "speech_encoder"):
        audio = getattr(model, name, None) or getattr(getattr(model, "model", None), name, None)
        if isinstance(audio, torch.nn.Module):
            break
    modules = (audio if isinstance(audio, torch.nn.Module) else model).modules()
    for m in modules:
        if isinstance(m, torch.nn.Conv1d):
            return "channels_first" if m.in_channels == mel else None
        if isinstance(m, torch.nn.Conv2d):
            return None  # (batch, frames, mel), unsqueezed to one channel
        if isinstance(m, torch.nn.Linear):
            # Stacked frames (k * mel, k <= 4); anything wider is a later projection.
            return m.in_features if m.in_features % mel == 0 and m.in_features <= 4 * mel else None
        if isinstance(m, torch.nn.Embedding):
            continue
    return None


def _feature_rows(out: Any) -> int:
    """Total placeholder rows in a `get_*_features` result (tensor, list of tensors or output)."""
    if hasattr(out, "pooler_output") and out.pooler_output is not None:
        out = out.pooler_output
    elif getattr(out, "deepstack_features", None):
        # Granite 4 Vision: (llm_layer, (packed features, lengths)) per injection; every one
        # fills the same placeholders, so the first says how many there are.
        _, packed = out.deepstack_features[0]
        out = packed[0] if isinstance(packed, (list, tuple)) else packed
    elif hasattr(out, "last_hidden_state") and not isinstance(out, torch.Tensor):
        out = out.last_hidden_state
    if isinstance(out, torch.Tensor):
        return int(math.prod(out.shape[:-1]))
    if isinstance(out, (list, tuple)):
        return sum(_feature_rows(o) for o in out if o is not None)
    raise TypeError(f"cannot count features in {type(out).__name__}")


def _count_placeholders(model, kind: str, inputs: dict[str, torch.Tensor]) -> int | None:
    """How many placeholder tokens the model expects for its `kind` ("image", "audio") inputs."""
    # Encoder-decoders (T5Gemma 2) merge images in their encoder, which owns the feature getter.
    fn = getattr(model, f"get_{kind}_features", None) or getattr(
        getattr(model, "encoder", None), f"get_{kind}_features", None)
    if fn is None:
        return None
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in inputs.items() if k in params}
    if not kwargs:
        return None
    with torch.no_grad():
        out = fn(**kwargs)
    return _feature_rows(out)


def _insert_placeholders(ctx: InputContext, ids: torch.Tensor, token: int, per_row: int,
                         start: int | None, end: int | None) -> torch.Tensor:
    block = ([start] if start is not None else []) + [token] * per_row + ([end] if end is not None else [])
    block_t = torch.tensor(block, dtype=ids.dtype).unsqueeze(0).expand(ids.shape[0], -1)
    return torch.cat([ids[:, :1], block_t, ids[:, 1:]], dim=1)


def _first_attr(config: Any, names: tuple[str, ...]) -> int | None:
    for n in names:
        v = getattr(config, n, None)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def dummy_inputs(model, batch_size: int = 1, seq_len: int = 16, input_names=None,
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs for `model.forward`: `input_names` if given, else what the model needs."""
    config = model.config
    ctx = InputContext(model, config, batch_size, seq_len, torch.Generator().manual_seed(seed))
    names = list(input_names) if input_names is not None else needed_input_names(model)
    generators = [g(ctx) for g in GENERATORS]
    for name in names:
        if name in ctx.made:
            continue
        gen = next((g for g in generators if g.supports(name)), None)
        if gen is None:
            raise UnknownInputError(
                f"{type(model).__name__}.forward needs input {name!r}, which no dummy-input "
                f"generator supports (known: {sorted(supported_input_names())})"
            )
        ctx.made[name] = gen.generate(name)
    if input_names is None:
        # Switches that make a forward deterministic (VibeVoice's sample=False: no VAE noise).
        ctx.made.update(input_option(ctx, "switches", {}))
    for name in input_option(ctx, "bool_inputs", []):
        # Masks the family negates with `~` (a long mask would turn 1 into -2).
        if name in ctx.made:
            ctx.made[name] = ctx.made[name].bool()
    if input_names is None:
        _add_multimodal_placeholders(model, ctx)
    return dict(ctx.made)


def _add_multimodal_placeholders(model, ctx: InputContext) -> None:
    made, config = ctx.made, ctx.config
    if "input_ids" not in made:
        return
    for kind, source, token_names, start_names, end_names in (
        ("image", "pixel_values", ("image_token_id", "image_token_index"),
         ("vision_start_token_id", "image_start_token_id", "boi_token_id", "boi_token_index"),
         ("vision_end_token_id", "image_end_token_id", "eoi_token_id", "eoi_token_index")),
        ("audio", "input_features", ("audio_token_id", "audio_token_index"),
         ("audio_start_token_id", "audio_bos_token_id", "boa_token_id"),
         ("audio_end_token_id", "audio_eos_token_id", "eoa_token_id", "eoa_token_index")),
        ("audio", "input_values", ("audio_token_id", "audio_token_index"), (), ()),
    ):
        if source not in made:
            continue
        token = _first_attr(config, token_names)
        if token is None:
            continue
        # A family whose feature getter itself needs the placeholders (Music Flamingo reads
        # them for timestamps) states the count; everyone else is asked.
        count = input_option(ctx, f"{kind}_placeholders") or _count_placeholders(model, kind, made)
        # No feature getter: the model expands one placeholder per item itself (legacy merging).
        per_row = max(1, count // ctx.batch_size) if count else 1
        made["input_ids"] = _insert_placeholders(
            ctx, made["input_ids"], token, per_row,
            _first_attr(config, start_names), _first_attr(config, end_names),
        )
    length = made["input_ids"].shape[1]
    if "mm_token_type_ids" in made:
        types = torch.zeros_like(made["input_ids"])
        for value, names in ((1, ("image_token_id", "image_token_index")), (2, ("video_token_id",)),
                             (3, ("audio_token_id", "audio_token_index"))):
            token = _first_attr(config, names)
            if token is not None:
                types[made["input_ids"] == token] = value
        made["mm_token_type_ids"] = types
    cross = made.get("cross_attention_mask")
    if cross is not None and cross.shape[1] < length:
        # Inserted placeholders attend like the first token does.
        extra = cross[:, :1].expand(-1, length - cross.shape[1], *cross.shape[2:])
        made["cross_attention_mask"] = torch.cat([cross[:, :1], extra, cross[:, 1:]], dim=1)
    for name in ("attention_mask", "token_type_ids"):
        if name in made and made[name].shape[-1] != length:
            made[name] = torch.ones(ctx.batch_size, length, dtype=made[name].dtype) if name == "attention_mask" \
                else torch.zeros(ctx.batch_size, length, dtype=made[name].dtype)


def supported_input_names() -> set[str]:
    names: set[str] = set()
    for g in GENERATORS:
        names.update(g.SUPPORTED_INPUT_NAMES)
    return names

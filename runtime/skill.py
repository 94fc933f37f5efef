"""The skill base classes that generated modules build on.

A generated leaf (generated/<model_type>.py) only sets data — class name, model type, modality,
family, tasks, inputs, hardware targets.  Loading, input preparation, backend choice with
fallback, and post-processing live here, once."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from . import decisions, postprocess, processors
from .errors import (
    BackendUnavailable,
    ConstraintsUnsatisfiable,
    SkillError,
    SkillInputError,
    UnknownDeviceError,
)
from .inputs import check_mapping, is_text, tokenize
from .loading import load_model, resolve_model_class, sentence_pooling
from .mixin import MODULAR_TARGETS, MojoMaxTargetMixin, use_mojo_max_target
from .precision import resolve_precision
from .result import SkillResult

TOP_K = 5


class Skill(MojoMaxTargetMixin):
    """Load a transformers model and run it on the best hardware target present."""

    # Set by the generated leaf class.
    model_class_name: str = ""
    model_type: str = ""
    config_class_name: str = ""
    modality: str = "other"
    family: str = "other"
    tasks: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()
    main_input_names: tuple[str, ...] = ()
    targets: dict[str, Any] = {}
    # While device="auto" runs the engine the decision table chose: its name ("onnxruntime").
    routed_engine: str | None = None

    def __init__(self, model: Any = None, device: str = "auto", dtype: Any = None,
                 native: bool | str | None = None, precision: str | None = None,
                 quantize: str | None = None, constraints: decisions.Constraints | None = None,
                 auto_tune: bool = False):  # fmt: skip
        # native: the cpu target's native executor; None follows SKILLMILL_NATIVE, False turns
        # it off, "all" tries it even for model types the native coverage sweep did not pass.
        self.native = native
        # precision: "float32" (the default) or "bf16"; None follows SKILLMILL_PRECISION.
        # quantize: "int8", "q4_0" or "q8_0" weights (runtime/precision.py), run by the native
        # executor.
        self.precision, self.precision_source = resolve_precision(precision, quantize)
        # constraints: what device="auto" may choose from the measured decision table
        # (runtime/decisions.py); the default allows this skill's own precision.
        self.constraints = constraints or decisions.Constraints(precisions=(self.precision,))
        if self.precision not in self.constraints.precisions:
            raise ConstraintsUnsatisfiable(
                f"{self.model_class_name} computes at {self.precision} ({self.precision_source}), "
                f"which the constraints do not allow ({', '.join(self.constraints.precisions)}); "
                f"allow it, or load the skill at one of those precisions")  # fmt: skip
        # auto_tune: with device="auto", a call on a shape the decision table has no measurement
        # for measures the engines present first (measure/manager.py) and remembers it.
        self.auto_tune = bool(auto_tune)
        # Engines this skill has started (their conversion done, held here): under a start-up
        # budget auto may use them without a measurement (decisions.within_budget).
        self._started: set[str] = set()
        self.device_request = self._check_device(device)
        self.model_class = resolve_model_class(self.model_class_name, self.model_type)
        self.model_source = model
        self.model = load_model(self.model_class, self.model_type, model, dtype)
        self._device_models: dict[str, torch.nn.Module] = {}
        self._processors: dict[str, processors.Processor | None] = {}

    # ---- configuration -------------------------------------------------------------------
    def _check_device(self, device: str) -> str:
        if not isinstance(device, str):
            raise UnknownDeviceError(f"device must be a string such as 'auto' or 'cpu', not {device!r}")
        base = device.split(":", 1)[0]
        if device != "auto" and base not in self.targets:
            raise UnknownDeviceError(
                f"unknown device '{device}' for {self.model_class_name}; choose 'auto' or one of: "
                f"{', '.join(self.targets)}"
            )
        return device

    @property
    def normalized_config(self):
        from skillmill.registry.normalized_config import NormalizedConfig

        return NormalizedConfig(self.model.config)

    def vocab_size(self) -> int | None:
        return self._config_int("vocab_size")

    def max_positions(self) -> int | None:
        return self._config_int("max_positions")

    def _config_int(self, name: str) -> int | None:
        """An integer the config holds under any of ``name``'s spellings, or None; read once per
        config object, since every call's input checks ask for it."""
        config = self.model.config
        cache = self.__dict__.setdefault("_config_ints", {})
        key = (id(config), name)
        if key not in cache:
            value = self.normalized_config.first(name)
            cache[key] = value if isinstance(value, int) else None
        return cache[key]

    def torch_device_index(self, kind: str) -> str:
        """``cuda:1`` when the user asked for it, else ``cuda``."""
        return self.device_request if self.device_request.startswith(kind + ":") else kind

    def model_on(self, device: torch.device) -> torch.nn.Module:
        """The model on ``device``, moved once and kept (the CPU copy is the loaded model)."""
        if device.type == "cpu":
            return self.model
        key = str(device)
        if key not in self._device_models:
            # a deep copy keeps every weight, buffer and tied parameter as loaded (PreTrainedModel
            # classes have no public from_config: that was a crash on the first real GPU)
            self._device_models[key] = copy.deepcopy(self.model).to(device).eval()
        return self._device_models[key]

    def processor(self, kind: str) -> processors.Processor | None:
        """The model's own processor of ``kind`` ("tokenizer", "image", "audio"), loaded once:
        the checkpoint's files through the Auto classes, else one built for the model
        (runtime/processors.py); None when the model type has none of that kind."""
        if kind not in self._processors:
            load = {"tokenizer": processors.load_tokenizer, "image": processors.load_image_processor,
                    "audio": processors.load_feature_extractor}[kind]  # fmt: skip
            self._processors[kind] = load(self)
        return self._processors[kind]

    @property
    def tokenizer(self) -> Any:
        return self.processor("tokenizer").value

    def processor_note(self) -> str | None:
        """What prepared raw inputs (``SkillResult.processor``)."""
        return None

    def with_decoder_start(self, batch: dict[str, Any], rows: int) -> dict[str, Any]:
        """An encoder-decoder's forward needs decoder ids: one decoder-start token per row."""
        if self.family == "encoder-decoder" and "decoder_input_ids" in self.input_names:
            start = self.normalized_config.first("decoder_start_token_id")
            start = start if isinstance(start, int) else self.normalized_config.first("pad_token_id", 0)
            batch["decoder_input_ids"] = torch.full((rows, 1), int(start or 0), dtype=torch.long)
        return batch

    def takes_raw(self, inputs: Any) -> bool:
        """Whether ``inputs`` are raw (text, images, audio) rather than named tensors."""
        return not isinstance(inputs, Mapping)

    # ---- inputs ----------------------------------------------------------------------------
    def example_inputs(self, batch_size: int = 1, seq_len: int = 16) -> dict[str, torch.Tensor]:
        """Valid random inputs for this model (ids, images, audio, ... as its modality needs)."""
        from skillmill.registry.dummy_inputs import dummy_inputs

        return dummy_inputs(self.model, batch_size=batch_size, seq_len=seq_len)

    def prepare_inputs(self, inputs: Any) -> dict[str, Any]:
        if isinstance(inputs, Mapping):
            return check_mapping(self, inputs)
        raw = self.prepare_raw(inputs)
        if raw is None:
            raise SkillInputError(
                f"{self.model_class_name}.process takes {self.accepted_inputs()}; got "
                f"{type(inputs).__name__}"
            )
        return raw

    def accepted_inputs(self) -> str:
        return f"a dict of tensors named from: {', '.join(self.input_names)}"

    def prepare_raw(self, inputs: Any) -> dict[str, Any] | None:
        """Modality classes turn raw inputs (strings, images, waveforms) into tensors."""
        return None

    # ---- running ---------------------------------------------------------------------------
    def _plan(self, order: list[str] | None) -> tuple[list[str], set[str]]:
        """(target names to try in order, names the caller asked for explicitly)."""
        if order is not None:
            return list(dict.fromkeys(order)), set(order[:-1]) or set(order)
        if self.device_request != "auto":
            base = self.device_request.split(":", 1)[0]
            return list(dict.fromkeys([base, "cpu"])), {base}
        asked = set(MODULAR_TARGETS) & set(self.targets) if use_mojo_max_target() else set()
        return self.preferred_order(), asked

    def _measured_choice(self, batch: dict[str, Any]) -> decisions.Choice:
        """What the decision table says for ``device="auto"`` on this batch (runtime/decisions.py):
        an engine to try first, or why the fixed order runs.  Kept per bucket until the table
        file or the constraints change: a call pays a stat and a dictionary look-up."""
        bucket = decisions.shape_bucket(self, batch)
        table = decisions.read_table()  # the same object while the file is unchanged
        memo = self.__dict__.get("_choices")
        if memo is None or memo[0] is not table or memo[1] is not self.constraints:
            memo = self.__dict__["_choices"] = (table, self.constraints, {})
        choice = memo[2].get(bucket)
        if choice is None:
            choice = memo[2][bucket] = decisions.decide(self, bucket, self.constraints, table=table)
        return choice

    def _tune_first(self, batch: dict[str, Any], choice: decisions.Choice) -> decisions.Choice:
        """``auto_tune=True``: measure the engines present on this batch's shape once (the
        backend manager, few rounds), record it in the decision table, and decide again.  A
        bucket is measured at most once per skill, whatever the outcome; another process finds
        the entry in the table and measures nothing."""
        tuned = self.__dict__.setdefault("_auto_tuned", set())
        if choice.bucket in tuned or choice.unsatisfiable:
            return choice
        tuned.add(choice.bucket)
        report = decisions.tune(self, batch)  # measure.manager's benchmark_batch
        self.__dict__.pop("_choices", None)
        measured = self._measured_choice(batch)
        notes = getattr(report, "notes", None)
        if measured.route is None and notes:
            return replace(measured, explanation=f"{measured.explanation} ({'; '.join(notes)})")
        return measured

    @contextlib.contextmanager
    def _routed(self, choice: decisions.Choice | None):
        """Run the chosen engine as it was measured: PyTorch eager on the cpu target turns the
        native executor off for the call, MAX/Mojo count as asked for, and ``routed_engine``
        names the engine (a runner that runs only when asked for may take it as asked).  The
        switches live on the skill for the call's duration, as ``process_with_mojo_max``'s do."""
        if choice is None or choice.route is None:
            yield
            return
        saved = self.native, self._modular_asked, self.routed_engine
        if choice.route.native_off:
            self.native = False
        if choice.route.modular:
            self._modular_asked = True
        self.routed_engine = choice.engine
        try:
            yield
        finally:
            self.native, self._modular_asked, self.routed_engine = saved

    def process(self, inputs: Any, order: list[str] | None = None) -> SkillResult:
        """Run the model on ``inputs``; see ``SkillResult`` for what comes back."""
        batch = self.prepare_inputs(inputs)
        names, asked = self._plan(order)
        choice = None
        if order is None and self.device_request == "auto":
            choice = self._measured_choice(batch)
            if choice.route is None and self.auto_tune:
                choice = self._tune_first(batch, choice)
            if choice.unsatisfiable:
                raise ConstraintsUnsatisfiable(choice.explanation)
            if choice.route is not None:  # the measured engine first, then today's order
                names = [choice.route.target, *(n for n in names if n != choice.route.target)]
            else:
                names, choice = decisions.within_budget(self, names, choice, self._started)
        skipped: dict[str, str] = {}
        failures: list[str] = []
        for name in names:
            target = self.targets.get(name)
            if target is None:
                reason = f"the registry lists no '{name}' support for {self.modality}/{self.family}"
                skipped[name] = reason
                if name in asked:
                    failures.append(f"{name}: {reason}")
                continue
            status = target.status()
            if not status.available:
                skipped[name] = f"not present: {status.reason}"
                if name in asked:
                    failures.append(f"{name}: not present: {status.reason}")
                continue
            routed = choice is not None and choice.target == name
            route = choice.route if routed else None
            start = time.perf_counter()
            try:
                with self._routed(choice if routed else None):
                    ran = target.runner(self, batch)
            except BackendUnavailable as exc:
                skipped[name] = f"unavailable: {exc.reason}"
                failures.append(f"{name}: unavailable: {exc.reason}")
                continue
            latency_ms = (time.perf_counter() - start) * 1000.0
            extra = self.postprocess(ran.outputs, batch, raw_text=is_text(inputs))
            engine = ran.engine or name
            self._started.add("native" if engine == "native" else name)
            chosen_as_measured = route is not None and route.ran_as_itself(name, engine)
            # PyTorch eager chosen on the cpu target: the native executor was left out on purpose
            if ran.engine_fallback and not (chosen_as_measured and route.native_off):
                failures.append(ran.engine_fallback)
            return SkillResult(
                outputs=ran.outputs, backend=name, device=ran.device, latency_ms=latency_ms,
                fallback_reason="; ".join(failures) or None, skipped=skipped,
                postprocessed=extra, postprocess_backend=postprocess.backend_name(),
                engine=engine, precision=ran.precision, parity=ran.parity,
                choice=self._choice_note(choice, name, engine, chosen_as_measured),
                processor=self.processor_note() if self.takes_raw(inputs) else None,
            )
        raise SkillError(
            f"no hardware target could run {self.model_class_name}: "
            + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )

    @staticmethod
    def _choice_note(choice: decisions.Choice | None, name: str, engine: str,
                     as_measured: bool) -> str | None:  # fmt: skip
        """The result's ``choice``: auto's explanation, plus what happened when the chosen
        engine did not run as itself (``fallback_reason`` and ``skipped`` say why)."""
        if choice is None:
            return None
        if not choice or choice.route is None or as_measured:  # not a measured choice
            return choice.explanation
        return f"{choice.explanation}; but {choice.engine} did not run here, {engine} on {name} did"

    # ---- post-processing -------------------------------------------------------------------
    def postprocess(self, outputs: dict[str, Any], batch: dict[str, Any], raw_text: bool) -> dict:
        extra: dict[str, Any] = {}
        logits = outputs.get("logits")
        if isinstance(logits, torch.Tensor) and logits.dim() >= 2 and logits.is_floating_point():
            if any(task.endswith("classification") for task in self.tasks) and logits.dim() == 2:
                extra["probabilities"] = postprocess.softmax(logits.float().numpy())
            elif "text-generation" in self.tasks and logits.dim() == 3 and logits.shape[1]:
                probs = postprocess.softmax(logits[:, -1].float().numpy())
                values, indices = postprocess.top_k(probs, TOP_K)
                extra["next_token_top_k"] = {"probabilities": values, "token_ids": indices}
        return extra

    # ---- tasks -----------------------------------------------------------------------------
    def __call__(self, inputs: Any = None, task: str | None = None, **options: Any) -> Any:
        """Do the model's job: what ``transformers.pipeline(task)(inputs, **options)`` returns,
        every forward pass run by ``process`` (the class's main task when ``task`` is None)."""
        return self.run_task(inputs, task, **options).output

    def run_task(self, inputs: Any = None, task: str | None = None, **options: Any):
        """``__call__``, and which target and engine ran each forward pass
        (``runtime.tasks.TaskOutput``)."""
        from .tasks import run_task

        return run_task(self, inputs, task, **options)


class TextSkill(Skill):
    """Text in: a string or a list of strings (tokenized), or a dict of tensors."""

    def accepted_inputs(self) -> str:
        return "a string, a list of strings, or " + super().accepted_inputs()

    def processor_note(self) -> str | None:
        return self.processor("tokenizer").describe()

    def prepare_raw(self, inputs: Any) -> dict[str, Any] | None:
        if not is_text(inputs):
            return None
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        return check_mapping(self, self.with_decoder_start(tokenize(self, texts), len(texts)))

    def postprocess(self, outputs: dict[str, Any], batch: dict[str, Any], raw_text: bool) -> dict:
        extra = super().postprocess(outputs, batch, raw_text)
        hidden = outputs.get("last_hidden_state")
        if self.family == "encoder" and isinstance(hidden, torch.Tensor) and hidden.dim() == 3:
            mask = batch.get("attention_mask")
            mask = mask.numpy() if isinstance(mask, torch.Tensor) else np.ones(hidden.shape[:2])
            pooling = self.__dict__.get("_pooling")
            if pooling is None:  # read once: the checkpoint's files do not change under a skill
                pooling = self.__dict__["_pooling"] = sentence_pooling(self.model_source)
            hidden_np = hidden.float().numpy()
            if pooling["mode"] == "cls":
                pooled = np.ascontiguousarray(hidden_np[:, 0])
            elif pooling["mode"] == "max":
                pooled = np.where(mask[..., None] > 0, hidden_np, -np.inf).max(1).astype(np.float32)
            else:
                pooled = postprocess.mean_pool(hidden_np, mask)
            extra["embeddings"] = postprocess.l2_normalize(pooled) if pooling["normalize"] else pooled
        return extra

    def generate(self, prompts: Any, generation_config: Any = None, **options: Any):
        """Generate text from ``prompts`` (strings or token ids) with transformers'
        ``GenerationConfig`` semantics, on the first target that decodes with a KV cache;
        returns ``runtime.generation.GenerationResult`` (ids, text, backend, engine, why)."""
        from .generation.api import generate

        return generate(self, prompts, generation_config, **options)


class VisionSkill(Skill):
    """Images in: HxWxC uint8/float arrays or PIL images, prepared by the checkpoint's image
    processor (or the model type's, with its defaults at the config's image size); or a dict of
    tensors."""

    def accepted_inputs(self) -> str:
        return "an image (HxWxC array or PIL image), a list of images, or " + super().accepted_inputs()

    def processor_note(self) -> str | None:
        found = self.processor("image")
        if found is None:
            return ("skillmill: resize to the config's image size, scale to [0, 1], mean 0.5 / "
                    f"std 0.5 (transformers has no image processor for {self.model_type})")
        return found.describe()

    def prepare_raw(self, inputs: Any) -> dict[str, Any] | None:
        images = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        arrays = []
        for image in images:
            if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
                image = np.asarray(image.convert("RGB"))
            if not isinstance(image, np.ndarray) or image.ndim != 3:
                return None
            arrays.append(image)
        channels = self.normalized_config.first("num_channels") or 3
        for image in arrays:
            if image.shape[-1] != channels:
                raise SkillInputError(
                    f"images must be HxWx{channels}, got shape {image.shape} for {self.model_class_name}"
                )
        found = self.processor("image")
        if found is not None:
            prepared = found.value(images=arrays, return_tensors="pt")
            return check_mapping(self, {k: v for k, v in prepared.items() if k in self.input_names})
        return check_mapping(self, {"pixel_values": self._plain_pixels(arrays)})

    def _plain_pixels(self, arrays: list[np.ndarray]) -> torch.Tensor:
        """For a model type transformers has no image processor for: resize, [0, 1], ±1."""
        size = self.normalized_config.first("image_size") or 224
        size = tuple(size) if isinstance(size, (list, tuple)) else (int(size), int(size))
        tensors = []
        for image in arrays:
            pixels = torch.from_numpy(image.astype(np.float32))
            pixels = pixels / 255.0 if image.dtype == np.uint8 else pixels
            pixels = pixels.permute(2, 0, 1).unsqueeze(0)
            pixels = torch.nn.functional.interpolate(pixels, size=size[-2:], mode="bilinear",
                                                     align_corners=False)
            tensors.append((pixels - 0.5) / 0.5)
        return torch.cat(tensors)


class AudioSkill(Skill):
    """Audio in: a 1-D float waveform, a list of them, or ``{"array": wave, "sampling_rate": hz}``
    (as transformers' audio pipelines take it), prepared by the checkpoint's feature extractor
    (or the model type's, with its defaults): raw ``input_values`` or spectrogram features, as
    the model takes them.  Audio at another rate is resampled to the extractor's."""

    def accepted_inputs(self) -> str:
        return ('a 1-D float waveform array, {"array": waveform, "sampling_rate": hz}, a list of '
                "them, or " + super().accepted_inputs())  # fmt: skip

    def processor_note(self) -> str | None:
        found = self.processor("audio")
        if found is None:
            return f"skillmill: the raw waveform (transformers has no feature extractor for {self.model_type})"
        return found.describe()

    @staticmethod
    def _waves(inputs: Any) -> list[tuple[np.ndarray, int | None]] | None:
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        waves = []
        for item in items:
            rate = None
            if isinstance(item, Mapping) and ("array" in item or "raw" in item):
                rate = item.get("sampling_rate")
                item = item.get("array", item.get("raw"))
            if not isinstance(item, np.ndarray) or item.ndim != 1:
                return None
            waves.append((item, rate))
        return waves

    def takes_raw(self, inputs: Any) -> bool:
        return not isinstance(inputs, Mapping) or "array" in inputs or "raw" in inputs

    def prepare_inputs(self, inputs: Any) -> dict[str, Any]:
        if self.takes_raw(inputs):  # {"array": ..., "sampling_rate": ...} is one waveform
            raw = self.prepare_raw(inputs)
            if raw is None:
                raise SkillInputError(f"{self.model_class_name}.process takes {self.accepted_inputs()}")
            return raw
        return super().prepare_inputs(inputs)

    def prepare_raw(self, inputs: Any) -> dict[str, Any] | None:
        waves = self._waves(inputs)
        if waves is None:
            return None
        found = self.processor("audio")
        if found is None:
            if "input_values" not in self.input_names:
                raise SkillInputError(
                    f"{self.model_class_name} takes {', '.join(self.main_input_names)}, not raw "
                    "waveforms, and transformers has no feature extractor for it; pass a dict of tensors"
                )
            if len({w.shape[0] for w, _ in waves}) != 1:
                raise SkillInputError("waveforms in one batch must have the same length")
            return check_mapping(self, {"input_values": np.stack([w for w, _ in waves]).astype(np.float32)})
        extractor = found.value
        rate = int(getattr(extractor, "sampling_rate", 16000))
        arrays = [processors.resample(w.astype(np.float32), int(r), rate) if r is not None else w.astype(np.float32)
                  for w, r in waves]  # fmt: skip
        # Uneven lengths are padded to the longest, except by an extractor with a fixed window
        # (Whisper's), which pads every input to that window itself.
        uneven = len({a.shape[0] for a in arrays}) > 1 and not hasattr(extractor, "nb_max_frames")
        prepared = extractor(arrays, sampling_rate=rate, return_tensors="pt",
                             **({"padding": True} if uneven else {}))
        feed = {k: v for k, v in prepared.items() if k in self.input_names}
        if not feed:
            raise SkillInputError(
                f"{type(extractor).__name__} produced {', '.join(prepared)}, none of which "
                f"{self.model_class_name} takes ({', '.join(self.input_names)})"
            )
        return check_mapping(self, self.with_decoder_start(feed, len(arrays)))


class MultimodalSkill(TextSkill):
    """Several inputs at once (text with images or audio): a dict of tensors; plain text works
    for the text side alone."""


class VideoSkill(Skill):
    """Video in: a dict with ``pixel_values`` [batch, frames, channels, height, width]."""


class TimeSeriesSkill(Skill):
    """Time series in: a dict with ``past_values`` and what the model asks for besides."""


class GenericSkill(Skill):
    """Any model: a dict of tensors."""


MODALITY_BASES = {
    "text": TextSkill,
    "vision": VisionSkill,
    "audio": AudioSkill,
    "multimodal": MultimodalSkill,
    "video": VideoSkill,
    "time-series": TimeSeriesSkill,
    "other": GenericSkill,
}

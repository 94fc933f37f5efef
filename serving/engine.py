"""The model behind the server: a skill loaded once, probed once, then run in batches.

The probe is a real ``skill.process`` call at start-up: it says which backend the skill landed
on (and why any preferred one was skipped), which the server reports in /health, /metrics and
every response header.  Later calls are pinned to that backend so a target that cannot run the
model is not retried on every request."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch

from skillmill.runtime import postprocess
from skillmill.runtime.loading import sentence_pooling

from skillmill.runtime.generation.loop import Row, generate
from skillmill.runtime.generation.sampling import SamplingParams
from skillmill.runtime.errors import SkillError
from skillmill.runtime.generation.api import choose_decoder
from skillmill.runtime.generation.steppers import RecomputeStepper
from skillmill.runtime.generation.textcodec import TextCodec
from .tokens import TokenRow

EncoderRow = Union[list[int], TokenRow]  # plain ids, or ids with a pair's segment ids

TORCH_TARGETS = ("cpu", "cuda", "rocm", "mps")
GENERIC_FOLDER_NAMES = {"model", "checkpoint", "weights", "snapshot"}


class ServeError(ValueError):
    """The model cannot be served (wrong kind of model, bad arguments)."""


@dataclass
class GenerationJob:
    """One request's rows: ``prompts[i]`` is row i (a request with n=2 repeats its prompt)."""

    prompts: list[list[int]]
    params: SamplingParams
    on_text: Callable[[int, str], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class RowOutcome:
    text: str
    finish_reason: str
    completion_tokens: int


def default_model_id(class_name: str, model: Any) -> str:
    if isinstance(model, (str, os.PathLike)) and model != "tiny":
        path = Path(model).expanduser().resolve()
        name = path.name
        if name.lower() in GENERIC_FOLDER_NAMES and path.parent.name:
            name = path.parent.name
        return name
    return f"{class_name}-tiny" if model == "tiny" else class_name


class ServedModel:
    def __init__(
        self,
        class_name: str,
        model: Any,
        device: str = "auto",
        model_id: str | None = None,
        max_rows: int = 32,
        order: list[str] | None = None,
        skill_options: dict[str, Any] | None = None,
    ):
        """``order``: target names to try, best first (default: what ``device`` implies);
        ``skill_options``: more ``load_skill`` arguments (precision, quantize)."""
        from skillmill import load_skill

        started = time.perf_counter()
        self.class_name = class_name
        self.id = model_id or default_model_id(class_name, model)
        self.requested_device = device
        self.max_rows = max_rows
        options = {k: v for k, v in (skill_options or {}).items() if v is not None}
        if device == "auto" and "constraints" not in options:
            # A server is the long-running process a start-up budget is not for: without a
            # measurement its warm-up call may convert or compile in the fixed order
            # (runtime/decisions.py within_budget), and later requests reuse the result.
            from skillmill.runtime.decisions import Constraints
            from skillmill.runtime.precision import resolve_precision

            precision = resolve_precision(options.get("precision"), options.get("quantize"))[0]
            options["constraints"] = Constraints(precisions=(precision,), startup_budget_s=None)
        self.skill = load_skill(class_name, model=model, device=device, **options)
        self.kind = self._kind()
        self.codec = TextCodec(
            self.skill.tokenizer, getattr(self.skill.model.config, "eos_token_id", None)
        )
        self.context_length = self.skill.max_positions() or 512
        self.vocab_size = self.skill.vocab_size()
        probe = self.skill.process(["warm up"], order=order)
        self.backend, self.device = probe.backend, probe.device
        self.fallback_reason = probe.fallback_reason
        self.precision = probe.precision
        self.skipped = dict(probe.skipped)
        self.order = [probe.backend]
        self.stepper = None
        self.id2label: dict[int, str] = {}
        if self.kind == "classification":
            logits = probe["logits"]
            self.id2label = _labels(self.skill.model.config, int(logits.shape[-1]))
            self.dimensions = None
        elif self.kind == "embedding":
            self.pooling = sentence_pooling(self.skill.model_source)  # read once
            if probe.embeddings is None:
                raise ServeError(
                    f"{class_name} gave no embeddings for text; it cannot serve " "/v1/embeddings"
                )
            self.dimensions = int(probe.embeddings.shape[-1])
        else:
            self.dimensions = None
            # skill.generate's decoder on the probe's target: the native executor's explicit
            # cache on the cpu target, PyTorch's own cache on the other PyTorch targets
            try:
                decoder, _ = choose_decoder(self.skill, self.order)
                self.stepper, self.engine = decoder.stepper, decoder.engine
                if decoder.fallback_reason and decoder.fallback_reason != self.fallback_reason:
                    self.fallback_reason = "; ".join(filter(None, [self.fallback_reason,
                                                                   decoder.fallback_reason]))
            except SkillError:  # a target with no cache (MAX, say): skill.process each step
                self.stepper = RecomputeStepper(self.skill, order=self.order)
        if self.stepper is None or isinstance(self.stepper, RecomputeStepper):
            self.engine = probe.engine
        self.load_seconds = time.perf_counter() - started
        self.created = int(time.time())

    @property
    def is_reranker(self) -> bool:
        """A cross-encoder: a sequence classifier with one score (TEI's rule)."""
        return self.kind == "classification" and len(self.id2label) == 1

    def _kind(self) -> str:
        skill = self.skill
        if skill.family == "decoder" and "text-generation" in skill.tasks:
            return "generation"
        if (
            skill.modality == "text"
            and skill.family == "encoder"
            and self.class_name.endswith("ForSequenceClassification")
        ):
            return "classification"
        if skill.modality == "text" and skill.family == "encoder":
            return "embedding"
        raise ServeError(
            f"{self.class_name} is a {skill.modality}/{skill.family} model with tasks "
            f"{', '.join(skill.tasks) or 'none'}; the server serves text encoders (embeddings, e.g. "
            "BertModel), sequence classifiers and cross-encoders (/predict, /rerank, e.g. "
            "BertForSequenceClassification) and causal language models (completions, e.g. "
            "GPT2LMHeadModel, LlamaForCausalLM)"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.id,
            "class": self.class_name,
            "kind": self.kind,
            "requested_device": self.requested_device,
            "backend": self.backend,
            "device": self.device,
            "engine": self.engine,
            "precision": self.precision,
            "fallback_reason": self.fallback_reason,
            "skipped": self.skipped,
            "decoder": getattr(self.stepper, "name", None),
            "tokenizer": self.codec.kind,
            "context_length": self.context_length,
            "embedding_dimensions": self.dimensions,
            "labels": [self.id2label[i] for i in sorted(self.id2label)] or None,
            "load_seconds": round(self.load_seconds, 3),
        }

    # ---- encoders: embeddings and classification ------------------------------------------
    def _encoder_batch(self, rows: list[EncoderRow]) -> dict[str, torch.Tensor]:
        width = max(len(_ids(r)) for r in rows)
        ids = torch.full((len(rows), width), self.codec.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            row_ids = _ids(row)
            ids[i, : len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
            mask[i, : len(row_ids)] = 1
            if isinstance(row, TokenRow) and row.type_ids is not None:
                types[i, : len(row_ids)] = torch.tensor(row.type_ids, dtype=torch.long)
        batch = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.skill.input_names:
            batch["token_type_ids"] = types  # a pair's second segment is 1 (cross-encoders)
        return batch

    def _calls(self, rows: list[EncoderRow], max_tokens: int | None) -> list[list[EncoderRow]]:
        """Rows split into model calls of at most ``max_rows`` rows and ``max_tokens`` tokens
        (a row longer than the budget was refused or truncated before it got here)."""
        calls: list[list[EncoderRow]] = []
        current: list[EncoderRow] = []
        tokens = 0
        for row in rows:
            n = len(_ids(row))
            if current and (
                len(current) >= self.max_rows
                or (max_tokens is not None and tokens + n > max_tokens)
            ):
                calls.append(current)
                current, tokens = [], 0
            current.append(row)
            tokens += n
        if current:
            calls.append(current)
        return calls

    def _encoder_outputs(
        self, jobs: Sequence[Sequence[EncoderRow]], max_tokens: int | None, read: Callable
    ) -> list[np.ndarray]:
        flat = [row for job in jobs for row in job]
        pieces = []
        for rows in self._calls(flat, max_tokens):
            batch = self._encoder_batch(rows)
            pieces.append(read(self.skill.process(batch, order=self.order), batch))
        values = np.concatenate(pieces)
        out, at = [], 0
        for job in jobs:
            out.append(values[at : at + len(job)])
            at += len(job)
        return out

    def embed_batch(
        self, jobs: Sequence[Sequence[EncoderRow]], max_tokens: int | None = None
    ) -> list[np.ndarray]:
        """Pooled sentence embeddings, not normalised (the caller decides), one array
        [inputs, dims] per job."""
        return self._encoder_outputs(jobs, max_tokens, self._pooled)

    def classify_batch(
        self, jobs: Sequence[Sequence[EncoderRow]], max_tokens: int | None = None
    ) -> list[np.ndarray]:
        """Raw logits, one array [inputs, labels] per job."""
        return self._encoder_outputs(jobs, max_tokens, lambda result, _: _numpy(result["logits"]))

    def _pooled(self, result: Any, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """The checkpoint's pooling (mean, cls or max) before any normalisation, so that
        normalize=false on /embed means what it says even where the checkpoint normalises."""
        pooling = self.pooling
        if not pooling["normalize"]:
            return np.asarray(result.embeddings, dtype=np.float32)
        hidden = _numpy(result["last_hidden_state"])
        mask = batch["attention_mask"].numpy()
        if pooling["mode"] == "cls":
            return np.ascontiguousarray(hidden[:, 0])
        if pooling["mode"] == "max":
            return np.where(mask[..., None] > 0, hidden, -np.inf).max(1).astype(np.float32)
        return postprocess.mean_pool(hidden, mask)

    # ---- generation ------------------------------------------------------------------------
    def generate_batch(self, jobs: list[GenerationJob]) -> list[list[RowOutcome]]:
        rows_per_job: list[list[Row]] = []
        for job in jobs:
            rows_per_job.append(
                [
                    Row.make(
                        prompt,
                        job.params,
                        self.codec,
                        seed_offset=i,
                        on_text=partial(job.on_text, i) if job.on_text else None,
                        cancelled=job.cancelled,
                    )
                    for i, prompt in enumerate(job.prompts)
                ]
            )
        for group in self._groups([row for rows in rows_per_job for row in rows]):
            generate(self.stepper, group, self.codec.pad_id)
        return [
            [RowOutcome(r.text, r.finish_reason or "cancelled", len(r.tokens)) for r in rows]
            for rows in rows_per_job
        ]

    def _groups(self, rows: list[Row]) -> list[list[Row]]:
        """Split rows so that no group's padded prompt plus its longest budget exceeds the
        context (left padding makes every row as long as the longest prompt)."""
        groups: list[list[Row]] = []
        current: list[Row] = []
        for row in rows:
            trial = current + [row]
            longest = max(len(r.prompt_ids) for r in trial) + max(
                r.params.max_tokens for r in trial
            )
            if current and (len(trial) > self.max_rows or longest > self.context_length):
                groups.append(current)
                trial = [row]
            current = trial
        if current:
            groups.append(current)
        return groups


def _ids(row: EncoderRow) -> list[int]:
    return row.ids if isinstance(row, TokenRow) else row


def _labels(config: Any, count: int) -> dict[int, str]:
    """id -> label from the config, for every output; a missing name becomes LABEL_i."""
    given = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    return {i: given.get(i, f"LABEL_{i}") for i in range(count)}


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float32)

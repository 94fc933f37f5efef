"""What ``Skill.process`` returns: the model's outputs plus where and how it ran."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass
class SkillResult(Mapping):
    """Model outputs (torch tensors on the CPU, flattened: ``"last_hidden_state"``,
    ``"vision_model_output.pooler_output"``, ...) plus post-processed values (numpy arrays:
    ``embeddings``, ``probabilities``, ``top_k``) and how the run went.

    ``result["logits"]`` reads an output; ``result.backend`` says which target ran and
    ``result.engine`` what ran the model there; ``fallback_reason`` says why anything preferred
    (a target, or the cpu target's native executor) was not used."""

    outputs: dict[str, Any]
    backend: str
    device: str
    latency_ms: float
    fallback_reason: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # target -> why it was not used
    postprocessed: dict[str, Any] = field(default_factory=dict)
    postprocess_backend: str = ""
    # What computed the outputs on that target: "native" (skillmill's executor on the cpu
    # target), "torch" (PyTorch eager), "openvino", ...
    engine: str = ""
    # The precision the outputs were computed at: "float32" unless the caller asked for "bf16"
    # or a quantization scheme ("int8", "q4_0", "q8_0") and an engine ran it
    # (runtime/precision.py).
    precision: str = "float32"
    # What that engine's first run for these input names, dtypes and ranks proved against
    # PyTorch eager float32 (``.error``, ``.tolerance``); None when PyTorch eager
    # float32 ran, being the reference itself.
    parity: Any = None
    # device="auto" only: which engine the measured decision table chose and why, or why the
    # fixed order ran (no measurement for this shape here, a changed machine, a corrupt table);
    # None for an explicit device.
    choice: str | None = None
    # What turned raw inputs (text, images, audio) into tensors: "checkpoint: BertTokenizerFast",
    # or a processor built for a model that ships none, with why ("trained: ...", "byte: ...").
    # None when the caller passed tensors.
    processor: str | None = None

    @property
    def embeddings(self):
        return self.postprocessed.get("embeddings")

    def __getitem__(self, key: str) -> Any:
        if key in self.outputs:
            return self.outputs[key]
        if key in self.postprocessed:
            return self.postprocessed[key]
        raise KeyError(f"no output '{key}'; this result has: {', '.join(self)}")

    def __iter__(self) -> Iterator[str]:
        yield from self.outputs
        yield from self.postprocessed

    def __len__(self) -> int:
        return len(self.outputs) + len(self.postprocessed)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description: shapes, not values."""
        return {
            "backend": self.backend,
            "device": self.device,
            "engine": self.engine,
            "precision": self.precision,
            "parity": self.parity.summary() if self.parity is not None else None,
            "latency_ms": round(self.latency_ms, 3),
            "fallback_reason": self.fallback_reason,
            "choice": self.choice,
            "processor": self.processor,
            "skipped": self.skipped,
            "postprocess_backend": self.postprocess_backend,
            "outputs": {k: list(getattr(v, "shape", ())) for k, v in self.items()},
        }

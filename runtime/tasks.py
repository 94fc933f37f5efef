"""The model's job: ``skill(inputs, task=...)`` answers as ``transformers.pipeline(task)`` does,
with the skill's own targets computing every forward pass.

The pipeline's pre- and post-processing is used as it stands (the checkpoint's tokenizer or image
processor, labels from ``id2label``, ``top_k``, the token-classification aggregation strategies,
...), so the output has the pipeline's structure, keys and types by construction.  Only the call
into the model is replaced: ``SkillForward`` stands in for the model and sends each batch through
``skill.process``, which runs the fastest correct target (proved against PyTorch eager on its
first run) and falls back with a reason.  The ``SkillResult`` of every call is kept, so a caller
sees which engine did the work (``TaskOutput.results``).  This is how optimum's ONNX Runtime and
OpenVINO model classes slot into pipelines, applied to every skillmill engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import SkillInputError
from .inputs import ByteTokenizer

# The files that hold a checkpoint's image processor.
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json",)
# The pipelines whose every forward pass is one model call a skill can take, each checked equal to
# transformers.pipeline in tests/foundation/test_tasks.py.  The others (text generation, which
# calls ``model.generate``; zero-shot, detection and audio pipelines) are refused until they are.
SERVED_TASKS = ("text-classification", "token-classification", "fill-mask", "feature-extraction",
                "image-classification")  # fmt: skip


class TaskError(SkillInputError):
    """The task is not one this skill can do here; the message says why and what it can do."""


@dataclass
class TaskOutput:
    task: str
    output: Any  # exactly what transformers.pipeline(task) returns for the same call
    results: list = field(default_factory=list)  # the SkillResult of each forward pass

    @property
    def engines(self) -> list[str]:
        """Each distinct ``backend/engine`` that computed a forward pass, in order."""
        seen: list[str] = []
        for result in self.results:
            name = f"{result.backend}/{result.engine}"
            if name not in seen:
                seen.append(name)
        return seen


class SkillForward:
    """What the pipeline calls as its model: the real model's attributes (config, dtype, device,
    forward's signature), but a call runs ``skill.process`` on the tensors it was given."""

    def __init__(self, skill: Any, results: list):
        self.__dict__.update(_skill=skill, _results=results)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._skill.model, name)

    def __call__(self, *args: Any, **inputs: Any) -> Any:
        from transformers.utils import ModelOutput

        if args:
            raise TaskError("the pipeline passed positional inputs; skills take them by name")
        feed = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor) and k in self._skill.input_names}
        result = self._skill.process(feed)
        self._results.append(result)
        return ModelOutput(**{k: v for k, v in result.outputs.items() if isinstance(v, torch.Tensor)})

    forward = __call__


def supported_tasks() -> dict[str, Any]:
    from transformers.pipelines import SUPPORTED_TASKS

    return SUPPORTED_TASKS


def removed_tasks() -> tuple[str, ...]:
    try:
        from transformers.pipelines import REMOVED_TASKS
    except ImportError:  # an older transformers still has them
        return ()
    return tuple(REMOVED_TASKS)


def default_task(skill: Any) -> str:
    """The class's main task: the first the registry lists that has a pipeline."""
    known = supported_tasks()
    for task in skill.tasks:
        if task in known:
            return task
    raise TaskError(_no_task_message(skill, None))


def _no_task_message(skill: Any, task: str | None) -> str:
    served = [t for t in skill.tasks if t in supported_tasks()]
    asked = f"task '{task}'" if task else "a task"
    if task in removed_tasks():
        return (f"{asked}: transformers {_version()} removed that pipeline; skillmill does not serve "
                f"it yet. {skill.model_class_name} serves: {', '.join(served) or 'none'}")  # fmt: skip
    return (f"{skill.model_class_name} cannot do {asked}; the registry lists "
            f"{', '.join(skill.tasks) or 'no task'} for it, of which these have a pipeline: "
            f"{', '.join(served) or 'none'}")  # fmt: skip


def _version() -> str:
    import transformers

    return transformers.__version__


def _processors(skill: Any, task: str) -> dict[str, Any]:
    """The checkpoint's own processor for the task's modality, loaded offline from its folder."""
    kind = supported_tasks()[task].get("type", "text")
    found: dict[str, Any] = {}
    if kind in ("text", "multimodal"):
        tokenizer = skill.tokenizer
        if isinstance(tokenizer, ByteTokenizer):
            raise TaskError(
                f"task '{task}' needs the checkpoint's own tokenizer; {skill.model_class_name} was "
                f"loaded from {skill.model_source!r}, which has no tokenizer files (a tiny or "
                "config-built model uses a byte tokenizer that only process() accepts)"
            )
        found["tokenizer"] = tokenizer
    if kind in ("image", "multimodal"):
        source = skill.model_source
        if not (isinstance(source, (str, Path)) and source != "tiny"
                and any((Path(source) / n).exists() for n in IMAGE_PROCESSOR_FILES)):  # fmt: skip
            raise TaskError(
                f"task '{task}' needs the checkpoint's image processor "
                f"({' or '.join(IMAGE_PROCESSOR_FILES)}); {skill.model_source!r} has none"
            )
        from transformers import AutoImageProcessor

        found["image_processor"] = AutoImageProcessor.from_pretrained(str(source), local_files_only=True)
    if kind == "audio":
        raise TaskError(f"task '{task}': audio pipelines are not served by skills yet")
    return found


def _pipeline(skill: Any, task: str, results: list) -> Any:
    """One pipeline per skill and task, its model call routed through the skill."""
    cache = skill.__dict__.setdefault("_task_pipelines", {})
    if task not in cache:
        from transformers import pipeline

        pipe = pipeline(task, model=skill.model, device="cpu", **_processors(skill, task))
        cache[task] = pipe
    pipe = cache[task]
    pipe.model = SkillForward(skill, results)
    return pipe


def run_task(skill: Any, inputs: Any, task: str | None = None, **options: Any) -> TaskOutput:
    """``transformers.pipeline(task)(inputs, **options)``, every forward pass on the skill."""
    task = task or default_task(skill)
    if task not in supported_tasks() or task not in skill.tasks:
        raise TaskError(_no_task_message(skill, task))
    if task not in SERVED_TASKS:
        raise TaskError(f"task '{task}' is not served by skills yet (served: {', '.join(SERVED_TASKS)}); "
                        f"transformers.pipeline('{task}') runs it on PyTorch")  # fmt: skip
    results: list = []
    pipe = _pipeline(skill, task, results)
    try:
        output = pipe(inputs, **options)
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, SkillInputError):
            raise
        raise TaskError(f"task '{task}' on {skill.model_class_name}: {type(exc).__name__}: {exc}") from exc
    return TaskOutput(task, output, results)

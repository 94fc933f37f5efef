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
from typing import Any

import torch

from .errors import SkillInputError

# Registry task names (auto-mapping names, registry/tasks.yaml) whose classes a pipeline of
# another name serves: segmentation heads serve "image-segmentation", and a sequence classifier
# is what "zero-shot-classification" runs (an NLI head).
PIPELINE_ALIASES = {
    "semantic-segmentation": ("image-segmentation",),
    "universal-segmentation": ("image-segmentation",),
    "instance-segmentation": ("image-segmentation",),
    "text-classification": ("text-classification", "zero-shot-classification"),
}
# Options a task cannot run without (the pipeline's own error would not say which).
REQUIRED_OPTIONS = {task: "candidate_labels" for task in (
    "zero-shot-classification", "zero-shot-image-classification", "zero-shot-object-detection",
    "zero-shot-audio-classification")}  # fmt: skip
# What a pipeline may read from its model besides calling it: anything else computed by the
# transformers model (``generate``, ``get_image_embeddings``, ...) would run on PyTorch, behind the
# skill's back, so it is refused with the reason instead.
MODEL_ATTRIBUTES_READ = {"config", "dtype", "device", "can_generate", "generation_config",
                         "main_input_name", "name_or_path", "training", "eval", "to"}  # fmt: skip


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
        value = getattr(self._skill.model, name)
        computes = callable(value) and getattr(value, "__self__", None) is self._skill.model
        if computes and name not in MODEL_ATTRIBUTES_READ:
            raise TaskError(
                f"the pipeline calls {self._skill.model_class_name}.{name}(), which would run on "
                "PyTorch rather than through the skill; this task is not served by skills yet"
            )
        return value

    def __call__(self, *args: Any, **inputs: Any) -> Any:
        from transformers.utils import ModelOutput

        if args:
            raise TaskError("the pipeline passed positional inputs; skills take them by name")
        feed = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor) and k in self._skill.input_names}
        result = self._skill.process(feed)
        self._results.append(result)
        return ModelOutput(**{k: v for k, v in result.outputs.items() if isinstance(v, torch.Tensor)})

    forward = __call__

    def generate(self, input_ids: Any = None, attention_mask: Any = None, generation_config: Any = None,
                 **options: Any) -> torch.Tensor:  # fmt: skip
        """What ``model.generate`` returns (the prompt rows as given, then the new tokens, padded),
        computed by ``skill.generate``: the one decoding loop on the skill's decoder."""
        skill = self._skill
        from .generation.api import decodes_alone

        if not decodes_alone(skill) or input_ids is None:
            raise TaskError(
                f"the pipeline calls {skill.model_class_name}.generate(), which would run on PyTorch "
                "rather than through the skill; skills generate for causal language models so far"
            )
        feed = {"input_ids": input_ids}
        if attention_mask is not None:
            feed["attention_mask"] = attention_mask
        ran = skill.generate(feed, generation_config, **options)
        self._results.append(ran)
        rows = len(ran.sequences)
        prompt = input_ids.repeat_interleave(rows // input_ids.shape[0], dim=0)
        config = generation_config or skill.model.generation_config
        pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
        pad = pad[0] if isinstance(pad, (list, tuple)) else pad
        width = max(len(s) for s in ran.sequences)
        new = torch.full((rows, width), int(pad or 0), dtype=input_ids.dtype)
        for i, sequence in enumerate(ran.sequences):
            new[i, : len(sequence)] = torch.tensor(sequence, dtype=input_ids.dtype)
        return torch.cat([prompt, new], dim=1)


def supported_tasks() -> dict[str, Any]:
    from transformers.pipelines import SUPPORTED_TASKS

    return SUPPORTED_TASKS


def removed_tasks() -> tuple[str, ...]:
    try:
        from transformers.pipelines import REMOVED_TASKS
    except ImportError:  # an older transformers still has them
        return ()
    return tuple(REMOVED_TASKS)


def pipeline_tasks(registry_tasks: tuple[str, ...] | list[str]) -> list[str]:
    """The transformers pipelines that serve a class, from the tasks the registry lists for it,
    in order (the first is its main task)."""
    known = supported_tasks()
    found: list[str] = []
    for task in registry_tasks:
        for name in PIPELINE_ALIASES.get(task, (task,)):
            if name in known and name not in found:
                found.append(name)
    return found


# Tasks transformers 5 removed the pipeline of (``REMOVED_TASKS``) that skills still serve, in
# the output format the 4.x pipeline had: the function that does it, (skill, inputs, **options)
# -> (output, [SkillResult, ...]).
def _question_answering(skill: Any, inputs: Any, **options: Any) -> tuple[Any, list]:
    from .question_answering import answer

    return answer(skill, inputs, **options)


SERVED_WITHOUT_PIPELINE = {"question-answering": _question_answering}


def served_tasks(registry_tasks: tuple[str, ...] | list[str]) -> list[str]:
    """What a skill does: the pipelines that serve its class, then the removed tasks it serves."""
    return pipeline_tasks(registry_tasks) + [t for t in registry_tasks if t in SERVED_WITHOUT_PIPELINE]


def default_task(skill: Any) -> str:
    """The class's main task: the first task the registry lists that a skill serves."""
    for task in skill.tasks:
        served = served_tasks((task,))
        if served:
            return served[0]
    raise TaskError(_no_task_message(skill, None))


def _no_task_message(skill: Any, task: str | None) -> str:
    served = served_tasks(skill.tasks)
    asked = f"task '{task}'" if task else "a task"
    if task in removed_tasks() and task in skill.tasks:
        return (f"{asked}: transformers {_version()} removed that pipeline; skillmill does not serve "
                f"it yet. {skill.model_class_name} serves: {', '.join(served) or 'none'}")  # fmt: skip
    return (f"{skill.model_class_name} cannot do {asked}; the registry lists "
            f"{', '.join(skill.tasks) or 'no task'} for it, of which these have a pipeline: "
            f"{', '.join(served) or 'none'}")  # fmt: skip


def _version() -> str:
    import transformers

    return transformers.__version__


def task_processors(skill: Any, task: str) -> dict[str, Any]:
    """The model's own processors for what it takes (runtime/processors.py): the checkpoint's,
    or ones built for a model that ships none.  A text-decoding head (CTC, seq2seq) needs a
    tokenizer even when it takes no text."""
    names = set(skill.input_names)
    found: dict[str, Any] = {}
    decodes_text = task in ("automatic-speech-recognition", "image-text-to-text", "any-to-any")
    if names & {"input_ids", "decoder_input_ids"} or decodes_text:
        tokenizer = skill.processor("tokenizer")
        if tokenizer.source == "byte":
            raise TaskError(f"task '{task}' needs a real tokenizer; {skill.model_class_name} has only "
                            f"the {tokenizer.note}")  # fmt: skip
        found["tokenizer"] = tokenizer.value
    if names & {"pixel_values", "pixel_values_videos"}:
        image = skill.processor("image")
        if image is None:
            raise TaskError(f"task '{task}': transformers has no image processor for {skill.model_type}")
        found["image_processor"] = image.value
    if names & {"input_values", "input_features"}:
        audio = skill.processor("audio")
        if audio is None:
            raise TaskError(f"task '{task}': transformers has no feature extractor for {skill.model_type}")
        found["feature_extractor"] = audio.value
    return found


def _pipeline(skill: Any, task: str, results: list) -> Any:
    """One pipeline per skill and task, its model call routed through the skill."""
    cache = skill.__dict__.setdefault("_task_pipelines", {})
    if task not in cache:
        from transformers import pipeline

        pipe = pipeline(task, model=skill.model, device="cpu", **task_processors(skill, task))
        cache[task] = pipe
    pipe = cache[task]
    pipe.model = SkillForward(skill, results)
    return pipe


def run_task(skill: Any, inputs: Any, task: str | None = None, **options: Any) -> TaskOutput:
    """``transformers.pipeline(task)(inputs, **options)``, every forward pass on the skill."""
    task = task or default_task(skill)
    if task not in served_tasks(skill.tasks):
        raise TaskError(_no_task_message(skill, task))
    needed = REQUIRED_OPTIONS.get(task)
    given = options.get(needed) if needed else None
    if needed and not given and not (isinstance(inputs, dict) and inputs.get(needed)):
        raise TaskError(f"task '{task}' needs {needed}=[...]: the labels to choose between "
                        f"(e.g. {needed}=['travel', 'cooking'])")  # fmt: skip
    if task in SERVED_WITHOUT_PIPELINE:
        output, results = SERVED_WITHOUT_PIPELINE[task](skill, inputs, **options)
        return TaskOutput(task, output, results)
    results: list = []
    pipe = _pipeline(skill, task, results)
    try:
        output = pipe(inputs, **options)
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, SkillInputError):
            raise
        raise TaskError(f"task '{task}' on {skill.model_class_name}: {type(exc).__name__}: {exc}") from exc
    return TaskOutput(task, output, results)

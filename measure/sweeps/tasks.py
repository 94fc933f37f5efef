"""Task coverage (``generate-skills coverage --tasks``): for every (registered class, pipeline task)
pair, the class's tiny random model does the task through its skill (``skill(inputs, task=...)``)
and through ``transformers.pipeline(task)`` given the same model and the same processors, on the
same inputs; the outputs must have the same structure, keys and types, equal labels, strings and
ids, and scores within ``RTOL``.

A task transformers 5 removed the pipeline of (question answering) is compared with a reference
written here from the definition instead (``REFERENCES``).

status: pass; mismatch (both ran, the first difference is the reason); refused (the skill said why
it cannot do the task yet); error (the skill failed); pipeline_failed (transformers' own pipeline
does not run on the tiny model: not counted in the floor, listed with its reason; reference_failed
likewise for a task compared with ``REFERENCES``); no_model (the
tiny model could not be built).  The floor counts passes among the pairs the pipeline runs.

The report is docs/coverage/tasks.yaml; docs/coverage.md shows its summary.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

# Pipelines that call model.generate (a seq2seq speech recogniser too).
GENERATING_TASKS = ("text-generation", "image-text-to-text", "any-to-any", "text-to-audio")
RTOL = 1e-4
ATOL = 1e-6
FLOOR = 0.95
ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "coverage" / "tasks.yaml"
TEXTS = ["Paris is lovely in the spring", "John Smith lives in New York"]
LABELS = ["travel", "cooking", "sports"]


def task_pairs() -> list[str]:
    """Every "Class/task" the registry's classes serve through a transformers pipeline."""
    from skillmill.registry import load_registry
    from skillmill.runtime.tasks import pipeline_tasks

    from skillmill.runtime.tasks import SERVED_WITHOUT_PIPELINE

    pairs = []
    for class_name, record in load_registry().classes.items():
        pairs += [f"{class_name}/{task}" for task in pipeline_tasks(record.tasks)]
        pairs += [f"{class_name}/{task}" for task in record.tasks if task in SERVED_WITHOUT_PIPELINE]
    return sorted(pairs)


# -- tasks transformers 5 has no pipeline for: a reference written here from the definition ----
QUESTION = {"question": "Where was Marie Curie born?",
            "context": "Marie Curie won two Nobel prizes. She was born in Warsaw in 1867."}  # fmt: skip


def question_answering_reference(skill: Any, question: str, context: str) -> dict[str, Any]:
    """The best span of a one-window context by brute force: the model called directly,
    softmax over the context tokens (and [CLS]), every (start, end) with end - start < 15."""
    import torch

    tokenizer = skill.processor("tokenizer").value
    encoded = tokenizer(question, context, return_tensors="pt")
    feed = {k: v for k, v in encoded.items() if k in skill.input_names}
    with torch.no_grad():
        out = skill.model(**feed)
    sequence = encoded.sequence_ids(0)
    context_tokens = [i for i, s in enumerate(sequence) if s == 1]
    # the softmax runs over the context and the [CLS] token where the tokenizer has one (4.x's
    # p_mask); the first position never starts an answer (4.x zeroes it after the softmax)
    ids = encoded["input_ids"][0].tolist()
    keep = np.array([i in context_tokens or ids[i] == tokenizer.cls_token_id for i in range(len(sequence))])

    def softmax(logits: Any) -> np.ndarray:
        values = np.where(keep, logits[0].float().numpy(), -10000.0)
        values = np.exp(values - values.max())
        return values / values.sum()

    start, end = softmax(out.start_logits), softmax(out.end_logits)
    spans = [(start[s] * end[e], s, e) for s in context_tokens for e in context_tokens if 0 < s <= e < s + 15]
    score, s, e = max(spans)
    words = encoded.word_ids(0)
    begin = encoded.word_to_chars(0, words[s], sequence_index=1).start
    finish = encoded.word_to_chars(0, words[e], sequence_index=1).end
    return {"score": float(score), "start": begin, "end": finish, "answer": context[begin:finish]}


REFERENCES = {"question-answering": lambda skill: (QUESTION, question_answering_reference(skill, **QUESTION))}


# -- the inputs each task is given -----------------------------------------------------------
def _image(seed: int = 0):
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 48, 3), dtype=np.uint8))


def _wave(skill: Any) -> np.ndarray:
    found = skill.processor("audio")
    rate = int(getattr(found.value, "sampling_rate", 16000)) if found else 16000
    return (0.1 * np.random.default_rng(0).standard_normal(rate)).astype(np.float32)


def task_inputs(skill: Any, task: str) -> tuple[Any, dict[str, Any]]:
    """(inputs, options) for one pipeline call: two texts where a batch makes sense."""
    if task == "fill-mask":
        return f"Paris is the {skill.tokenizer.mask_token} of France.", {"top_k": 3}
    if task == "zero-shot-classification":
        return TEXTS[0], {"candidate_labels": LABELS}
    if task in ("text-classification", "token-classification", "feature-extraction"):
        return list(TEXTS), {}
    if task in ("zero-shot-image-classification", "zero-shot-object-detection"):
        return _image(), {"candidate_labels": ["a cat", "a dog"]}
    if task == "object-detection":
        return _image(), {"threshold": 0.0}
    if task in ("audio-classification", "automatic-speech-recognition",
                "zero-shot-audio-classification"):  # fmt: skip
        options = {"candidate_labels": ["a dog", "rain"]} if task.startswith("zero-shot") else {}
        if "decoder_input_ids" in skill.input_names:  # a seq2seq transcriber: a short transcript
            options["generate_kwargs"] = {"max_new_tokens": 4}
        return _wave(skill), options
    if task == "document-question-answering":  # words and boxes given: no OCR engine needed
        boxes = [("Total", [10, 10, 60, 30]), ("due:", [70, 10, 110, 30]), ("42", [120, 10, 150, 30])]
        return {"image": _image(), "question": "What is the total?", "word_boxes": boxes}, {}
    if task == "keypoint-matching":
        return [_image(0), _image(1)], {}
    if task == "table-question-answering":
        return {"table": {"city": ["Paris", "Rome"], "people": ["2", "3"]},
                "query": "Which city has 3 people?"}, {}  # fmt: skip
    if task in ("text-generation", "text-to-audio"):
        return TEXTS[0], {"max_new_tokens": 4, "do_sample": False}
    if task in ("image-text-to-text", "any-to-any"):
        return {"images": _image(), "text": "Describe the image."}, {"max_new_tokens": 4}
    return _image(), {}  # image-classification, -segmentation, -feature-extraction, depth, ...


# -- comparing outputs -------------------------------------------------------------------------
def first_difference(got: Any, want: Any, path: str = "output") -> str | None:
    """Where ``got`` first differs from ``want`` (the pipeline's), or None when they agree."""
    import torch

    if isinstance(want, dict):
        if not isinstance(got, dict) or list(got) != list(want):
            return f"{path}: keys {list(got) if isinstance(got, dict) else type(got).__name__} != {list(want)}"
        for key in want:
            found = first_difference(got[key], want[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(want, (list, tuple)):
        if type(got) is not type(want) or len(got) != len(want):
            return f"{path}: {type(got).__name__} of {len(got) if hasattr(got, '__len__') else '?'} != {type(want).__name__} of {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            found = first_difference(g, w, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(want, (torch.Tensor, np.ndarray)) or hasattr(want, "getdata"):  # PIL images too
        g = np.asarray(got.float().numpy() if isinstance(got, torch.Tensor) else got, dtype=np.float64)
        w = np.asarray(want.float().numpy() if isinstance(want, torch.Tensor) else want, dtype=np.float64)
        if g.shape != w.shape:
            return f"{path}: shape {g.shape} != {w.shape}"
        if not np.array_equal(np.isnan(g), np.isnan(w)):
            return f"{path}: NaN at other positions"
        g, w = np.nan_to_num(g, nan=0.0), np.nan_to_num(w, nan=0.0)
        # a PIL image (depth maps) holds integers: equal, as before, since they differ by >= 1 or not at all
        if w.size and not np.allclose(g, w, rtol=RTOL, atol=ATOL):
            return f"{path}: max |difference| {float(np.abs(g - w).max()):.3g}"
        return None
    if isinstance(want, (float, np.floating)):
        if not isinstance(got, (float, np.floating)):
            return f"{path}: {type(got).__name__} is not a float"
        if math.isnan(float(want)) and math.isnan(float(got)):
            return None  # the same NaN on both sides (a random tiny model's degenerate score)
        if not math.isclose(float(got), float(want), rel_tol=RTOL, abs_tol=ATOL):
            return f"{path}: {got!r} != {want!r}"
        return None
    if type(got) is not type(want) or got != want:
        return f"{path}: {got!r} != {want!r}"
    return None


# -- one pair ----------------------------------------------------------------------------------
def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit]}"


def _reference_pipeline(skill: Any, task: str) -> Any:
    from transformers import pipeline

    from skillmill.runtime.tasks import task_processors

    return pipeline(task, model=skill.model, device="cpu", **task_processors(skill, task))


# What computes the skill's forward passes in the sweep.  "torch" (PyTorch eager on the cpu
# target, the skill sweep's choice) measures the task layer itself in seconds per pair; "native"
# adds the native executor's conversion and proof (tens of seconds per pair), which its own
# sweep measures per model type, so CI and the tests check it on a subset.
ENGINES = {"torch": {"native": False}, "native": {"native": None}}


def check_pair(pair: str, engine: str = "torch") -> dict[str, Any]:
    """One "Class/task" pair; never raises (the reason is in the row, with its seconds)."""
    started = time.perf_counter()
    row = _check(pair, engine)
    row["seconds"] = round(time.perf_counter() - started, 2)
    return row


def _check(pair: str, engine: str) -> dict[str, Any]:
    import torch

    from skillmill import load_skill
    from skillmill.runtime.tasks import TaskError

    class_name, task = pair.split("/", 1)
    try:
        skill = load_skill(class_name, model="tiny", device="cpu", **ENGINES[engine])
    except Exception as exc:  # noqa: BLE001 — the builder's words are the reason
        return {"status": "no_model", "reason": _short(exc)}
    generates = task in GENERATING_TASKS or (task == "automatic-speech-recognition"
                                             and skill.family == "encoder-decoder")  # fmt: skip
    from skillmill.runtime.generation.api import decodes_alone

    served = task == "text-generation" and decodes_alone(skill)  # SkillForward.generate
    if generates and not served and skill.model.can_generate():
        # The pipeline calls model.generate, which a skill's forward does not serve yet
        # (runtime/tasks.py refuses it): counted against the floor without running the pipeline.
        return {"status": "refused", "reason": "the pipeline calls model.generate(), which skills do "
                "not serve through a task yet (runtime/tasks.py refuses it rather than run PyTorch)"}  # fmt: skip
    try:
        if task in REFERENCES:
            (inputs, want), options = REFERENCES[task](skill), {}
        else:
            inputs, options = task_inputs(skill, task)
            torch.manual_seed(0)
            want = _reference_pipeline(skill, task)(inputs, **options)
    except Exception as exc:  # noqa: BLE001
        failed = "reference_failed" if task in REFERENCES else "pipeline_failed"
        return {"status": failed, "reason": _short(exc)}
    try:
        torch.manual_seed(0)
        ran = skill.run_task(inputs, task=task, **options)
    except TaskError as exc:
        return {"status": "refused", "reason": _short(exc)}
    except Exception as exc:  # noqa: BLE001
        return {"status": "error", "reason": _short(exc)}
    engines = ", ".join(ran.engines)
    difference = first_difference(ran.output, want)
    if difference:
        return {"status": "mismatch", "engines": engines, "reason": difference}
    return {"status": "pass", "engines": engines}


def warm_up() -> None:
    """Import and build once in the parent, so forked workers start warm."""
    check_pair("BertForSequenceClassification/text-classification")


# -- the report --------------------------------------------------------------------------------
NOT_MEASURED = "not_measured"
# Rows that say nothing about the skill: the pipeline itself did not run, or nobody ran it yet.
OUTSIDE_THE_FLOOR = ("pipeline_failed", "reference_failed", "no_model", NOT_MEASURED)


def with_unmeasured(rows: dict[str, dict[str, Any]], pairs: list[str]) -> dict[str, dict[str, Any]]:
    """Every pair keeps a row: one no sweep has reached says so."""
    missing = {p: {"status": NOT_MEASURED, "reason": "no sweep has reached this pair yet; "
                   "`generate-skills task-coverage --resume` measures it"}
               for p in pairs if p not in rows}  # fmt: skip
    return {**rows, **missing}


def summary(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ran = {k: r for k, r in rows.items() if r["status"] not in OUTSIDE_THE_FLOOR}
    passed = sum(r["status"] == "pass" for r in ran.values())
    per_task: dict[str, dict[str, int]] = {}
    for pair, row in rows.items():
        counts = per_task.setdefault(pair.split("/", 1)[1], {})
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {"pairs": len(rows), "not_measured": sum(r["status"] == NOT_MEASURED for r in rows.values()),
            "pipeline_runs": len(ran), "passed": passed,
            "share": round(passed / max(len(ran), 1), 4), "floor": FLOOR,
            "by_task": {t: per_task[t] for t in sorted(per_task)}}  # fmt: skip


def write_report(rows: dict[str, dict[str, Any]], path: Path = REPORT) -> Path:
    import os

    import transformers
    import yaml

    document = {
        "what": "each (registered class, pipeline task) pair's tiny random model doing the task "
                "through its skill and through transformers.pipeline with the same model and "
                f"processors, on the same inputs: equal structure, labels, strings and ids; scores "
                f"within rtol {RTOL}",
        "transformers_version": transformers.__version__,
        **summary(rows),
        "pairs_checked": {k: {f: v for f, v in rows[k].items() if f != "seconds"} for k in sorted(rows)},
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# Generated by `generate-skills coverage --tasks` — do not edit.\n"
                   + yaml.safe_dump(document, sort_keys=False, width=120), encoding="utf-8")  # fmt: skip
    os.replace(tmp, path)
    return path


def load_report(path: Path = REPORT) -> dict[str, Any] | None:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None


def run(pairs: list[str], jobs: int = 1, timeout: float = 300.0, engine: str = "torch",
        on_result: Callable[[str, dict], None] | None = None, runner: Any = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Each pair in a forked worker (measure/harness.py): a crash or a hang is that pair's row.
    ``runner``: ``LocalRunner`` (the default) or ``RayRunner`` (a Ray task per pair, ``--ray``)."""
    import functools

    from ..harness import LocalRunner

    check = functools.partial(check_pair, engine=engine)
    return (runner or LocalRunner()).run(pairs, check, jobs=jobs, timeout=timeout, on_result=on_result,
                                         warm_up=warm_up)  # fmt: skip

"""The work behind the MCP tools, as plain functions returning JSON-friendly dicts.

Each goes through the same code the CLI uses (the registry, ``skillmill.detect_hardware``, the
generator's render and write, ``load_skill``); a problem the caller can act on raises
``ToolFailure`` with a message saying what to change.  Loaded skills are kept (a model loads in
seconds) and model work is serialised, since tools run on worker threads."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

SKILL_CACHE_SIZE = 4
MAX_INFERENCE_INPUTS = 64


class ToolFailure(Exception):
    """A tool call that cannot be done as asked; the message tells the caller why."""


_skills: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_model_lock = threading.Lock()


def _skill(class_name: str, model: str, device: str) -> Any:
    """A loaded skill, reused across calls (least recently used ones are dropped)."""
    from skillmill import load_skill
    from skillmill.runtime.errors import SkillError

    key = (class_name, model, device)
    if key in _skills:
        _skills.move_to_end(key)
        return _skills[key]
    try:
        skill = load_skill(class_name, model=model, device=device)
    except KeyError as exc:
        raise ToolFailure(str(exc.args[0] if exc.args else exc)) from None
    except (SkillError, ImportError) as exc:
        raise ToolFailure(f"cannot load {class_name} from {model!r}: {exc}") from None
    _skills[key] = skill
    while len(_skills) > SKILL_CACHE_SIZE:
        _skills.popitem(last=False)
    return skill


def list_models(
    modality: str | None = None,
    task: str | None = None,
    family: str | None = None,
    model_type: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    from skillmill.registry import load_registry

    registry = load_registry()
    rows = [
        r
        for _, r in sorted(registry.classes.items())
        if (not modality or r.modality == modality)
        and (not task or task in r.tasks)
        and (not family or r.family == family)
        and (not model_type or r.model_type == model_type)
    ]
    return {
        "transformers_version": registry.transformers_version,
        "matched": len(rows),
        "returned": min(len(rows), limit),
        "classes": [
            {
                "class_name": r.class_name,
                "model_type": r.model_type,
                "modality": r.modality,
                "family": r.family,
                "tasks": list(r.tasks),
            }
            for r in rows[:limit]
        ],
    }


def detect_hardware() -> dict[str, Any]:
    import skillmill

    report = skillmill.detect_hardware()
    try:
        from skillmill import native

        report["native"] = (
            native.info()
            if native.available()
            else {"available": False, "reason": native.unavailable_reason()}
        )
    except (ImportError, AttributeError) as exc:
        report["native"] = {"available": False, "reason": str(exc)}
    return report


def generate_skill(model_type: str, output_dir: str, hardware: list[str] | None = None) -> dict:
    """Render the skill module of one model type into ``output_dir`` (never the package's own
    generated/ tree, which only ``generate-skills`` rewrites), with the _targets.py it imports
    (``from ._targets import TARGETS``: import the module as part of its folder's package)."""
    from skillmill.generator.cli import DEFAULT_OUTPUT
    from skillmill.generator.render import TARGETS_MODULE, TemplateError
    from skillmill.generator.targets import TargetDeclarationError, load_declarations
    from skillmill.generator.write import INDEX, render_tree, write_files
    from skillmill.registry import load_registry

    output = Path(output_dir).expanduser().resolve()
    if output == DEFAULT_OUTPUT.resolve():
        raise ToolFailure(
            f"{output} is the package's committed generated/ tree; give another "
            "output_dir (run `generate-skills` to rewrite the package itself)"
        )
    registry = load_registry()
    if model_type not in registry.model_types:
        import difflib

        close = difflib.get_close_matches(model_type, registry.model_types, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ToolFailure(f"unknown model type '{model_type}'{hint}")
    try:
        declarations = load_declarations()
    except TargetDeclarationError as exc:
        raise ToolFailure(str(exc)) from None
    if hardware:
        known = {d["name"] for d in declarations}
        unknown = sorted(set(hardware) - known)
        if unknown:
            raise ToolFailure(
                f"unknown hardware {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        declarations = [d for d in declarations if d["name"] in hardware or d["name"] == "cpu"]
    start = time.perf_counter()
    try:
        files = render_tree(registry, declarations, [model_type], jobs=1)
    except TemplateError as exc:
        raise ToolFailure(f"rendering {model_type} failed: {exc}") from None
    files.pop(INDEX)  # the index lists every module; only this type's module is asked for
    targets = files.pop(TARGETS_MODULE)  # the hardware targets the module imports, beside it
    write_files({**files, TARGETS_MODULE: targets}, output)
    return {
        "output_dir": str(output),
        "files": sorted(str(output / name) for name in files),
        "targets_module": str(output / TARGETS_MODULE),
        "classes": [r.class_name for r in registry.model_types[model_type]],
        "hardware": [d["name"] for d in declarations],
        "seconds": round(time.perf_counter() - start, 3),
    }


def run_inference(
    class_name: str, inputs: list[str], model: str = "tiny", device: str = "auto"
) -> dict[str, Any]:
    from skillmill.runtime.errors import SkillError

    if not inputs:
        raise ToolFailure("inputs must hold at least one string")
    if len(inputs) > MAX_INFERENCE_INPUTS:
        raise ToolFailure(f"at most {MAX_INFERENCE_INPUTS} inputs per call, got {len(inputs)}")
    with _model_lock:
        skill = _skill(class_name, model, device)
        try:
            result = skill.process(list(inputs))
        except SkillError as exc:
            raise ToolFailure(f"{class_name} could not run these inputs: {exc}") from None
    answer = result.summary()
    if result.embeddings is not None:
        answer["embeddings"] = [[round(float(x), 6) for x in row] for row in result.embeddings]
    top = result.postprocessed.get("next_token_top_k")
    if top is not None:
        answer["next_token_top_k"] = {
            "token_ids": top["token_ids"].tolist(),
            "probabilities": top["probabilities"].round(6).tolist(),
        }
    probabilities = result.postprocessed.get("probabilities")
    if probabilities is not None:
        answer["probabilities"] = probabilities.round(6).tolist()
    return answer


def _compiler(name: str):
    import skillmill

    compiler = getattr(skillmill, name, None)
    if compiler is None:
        raise ToolFailure(
            f"skillmill.{name} is not available in this build yet (the Modular "
            "backend work, issue 5, has not landed it); nothing was compiled"
        )
    return compiler


def _compile_result(result: Any) -> dict[str, Any]:
    fields = (
        "success",
        "compiled_path",
        "compilation_time",
        "optimizations_applied",
        "error_message",
        "metadata",
    )
    answer = {f: getattr(result, f, None) for f in fields}
    answer["compiled_path"] = (
        None if answer["compiled_path"] is None else str(answer["compiled_path"])
    )
    return _jsonable(answer)


def compile_to_max(class_name: str, model: str = "tiny", target_device: str = "auto") -> dict:
    compiler = _compiler("compile_to_max")
    with _model_lock:
        skill = _skill(class_name, model, "cpu")
        return _compile_result(compiler(skill.model, target_device=target_device))


def compile_to_mojo(class_name: str, model: str = "tiny", optimization_level: int = 3) -> dict:
    compiler = _compiler("compile_to_mojo")
    with _model_lock:
        skill = _skill(class_name, model, "cpu")
        return _compile_result(compiler(skill.model, optimization_level=optimization_level))


def benchmark_hardware_targets(
    class_name: str,
    model: str = "tiny",
    batch_size: int = 1,
    seq_len: int = 16,
    repeats: int = 5,
    engines: list[str] | None = None,
) -> dict[str, Any]:
    """Measure each engine present (or those named) on the skill through the backend manager
    (``UnifiedBackendManager.benchmark_backends``: first call, parity against PyTorch eager
    float32, alternating timed rounds), remember the figures in the decision table that
    ``device="auto"`` and ``get_hardware_recommendations`` read, and say which engine auto now
    picks at this shape and why.  An engine that is absent or ran as another is listed with
    the reason, never timed."""
    from skillmill.measure.manager import UnifiedBackendManager, machine_summary
    from skillmill.runtime import decisions
    from skillmill.runtime.errors import SkillError

    if engines:
        unknown = [e for e in engines if e not in decisions.ROUTES]
        if unknown:
            raise ToolFailure(
                f"unknown engine(s) {', '.join(unknown)}; known: {', '.join(decisions.ROUTES)}"
            )
    manager = UnifiedBackendManager()
    with _model_lock:
        skill = _skill(class_name, model, "cpu")  # the weights; each engine gets its own skill
        try:
            [report] = manager.benchmark_backends(
                skill, shapes=[(batch_size, seq_len)], engines=engines, repeats=repeats
            )
        except (SkillError, ValueError) as exc:
            raise ToolFailure(f"{class_name} could not be measured: {exc}") from None
    rows = []
    for name, row in report.entry["engines"].items():
        parity = row.get("parity") or {}
        ran = "fallback_reason" not in row
        answer = {"engine": name, "target": row["target"], "ran": ran}
        if ran:
            answer.update(
                {k: row.get(k) for k in ("median_ms", "p95_ms", "throughput", "first_call_s", "runs")}
            )
            answer["parity_passed"] = parity.get("passed")
            answer["max_relative_error"] = parity.get("max_relative_error")
        else:
            answer["reason"] = row["fallback_reason"]
        rows.append(answer)
    fair = [r for r in rows if r["ran"] and r.get("parity_passed") and r.get("median_ms")]
    return {
        "class_name": class_name,
        "model": model,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "bucket": report.bucket.describe(),
        "machine": machine_summary(),
        "results": rows,
        "fastest": min(fair, key=lambda r: r["median_ms"])["engine"] if fair else None,
        "auto_choice": report.choice.engine,
        "explanation": report.choice.explanation,
        "recorded_in": str(manager.path),
        "notes": report.notes,
    }


def get_hardware_recommendations(
    model_id: str, use_case: str = "low-latency", model: str = "tiny"
) -> dict[str, Any]:
    """The engine to use for ``model_id`` (a class name) on these weights for ``use_case``
    ("low-latency", "throughput" or "memory"), from the measured decision table through
    ``UnifiedBackendManager.recommend``.  Without a measurement it says so plainly
    (``measured: false`` and a ``note``) and gives the fixed priority order's first present
    target; the registry's targets and their probes are listed either way."""
    from skillmill.measure.manager import USE_CASES, UnifiedBackendManager
    from skillmill.runtime.mixin import use_mojo_max_target

    if use_case not in USE_CASES:
        raise ToolFailure(f"use_case must be one of {', '.join(USE_CASES)}, not {use_case!r}")
    with _model_lock:
        skill = _skill(model_id, model, "cpu")
        answer = UnifiedBackendManager().recommend(skill, use_case)
    rows = []
    for name, target in skill.targets.items():
        status = target.status()
        rows.append(
            {"target": name, "priority": target.priority, "present": status.available,
             "detail": status.reason}  # fmt: skip
        )
    report = detect_hardware()
    return _jsonable(
        {
            "model_id": model_id,
            "model": model,
            **answer,
            "modality": skill.modality,
            "family": skill.family,
            "auto_order": list(skill.preferred_order()),
            "present_and_supported": [r["target"] for r in rows if r["present"]],
            "not_supported_by_registry": sorted(
                {t["name"] for t in report["targets"]} - set(skill.targets)
            ),
            "targets": rows,
            "use_mojo_max_target": use_mojo_max_target(),
            "best_simd": report.get("best_simd"),
        }
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return repr(value)

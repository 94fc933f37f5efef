"""skillmill: a ready-to-run skill for every HuggingFace transformers model class.

    from skillmill import load_skill
    skill = load_skill("BertModel", model="tiny")          # or a local checkpoint folder
    result = skill.process(["Hello world"])
    result.embeddings, result.backend, result.fallback_reason, result.latency_ms

Folders map onto this namespace: registry/ -> skillmill.registry, generator/ ->
skillmill.generator, templates/ -> skillmill.templates, generated/ -> skillmill.generated,
runtime/ -> skillmill.runtime, native/ -> skillmill.native, ir/ -> skillmill.ir, serving/ ->
skillmill.serving, measure/ -> skillmill.measure (every sweep and benchmark).

The model IR's API is here too, imported on first use so ``import skillmill`` stays light::

    from skillmill import MojoMaxIRConverter, optimize_max_ir, compile_to_mojomodel, load_mojomodel
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it; resolved by __getattr__ on first use (PEP 562).
_LAZY = {
    "MojoMaxIRConverter": "skillmill.ir.converter",
    "optimize_max_ir": "skillmill.ir.converter",
    "compile_to_mojomodel": "skillmill.ir.mojomodel",
    "load_mojomodel": "skillmill.ir.mojomodel",
    "deploy_max": "skillmill.serving",
    "compile_to_max": "skillmill.engines.modular.compile_api",
    "compile_to_mojo": "skillmill.engines.modular.compile_api",
    "UnifiedBackendManager": "skillmill.measure.manager",
    "Constraints": "skillmill.runtime.decisions",
}

__all__ = ["load_skill", "skill_class", "detect_hardware", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'skillmill' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def skill_class(class_name: str) -> type:
    """The generated ``<ClassName>Skill`` class for a transformers model class name."""
    from skillmill.generated import SKILL_MODULES
    from skillmill.registry import load_registry

    module = SKILL_MODULES.get(class_name)
    if module is None:
        load_registry().get(class_name)  # raises KeyError with close matches
        raise KeyError(f"{class_name} is registered but has no generated skill: run `generate-skills`")
    try:
        return getattr(importlib.import_module(f"skillmill.generated.{module}"), f"{class_name}Skill")
    except (ModuleNotFoundError, AttributeError) as exc:
        raise KeyError(
            f"the generated skill for {class_name} is missing ({exc}): run `generate-skills`"
        ) from None


def load_skill(class_name: str, model: Any = None, device: str = "auto", **kwargs: Any):
    """Build the skill for ``class_name`` (e.g. ``"BertModel"``).

    ``model``: a local checkpoint folder, a config (object or dict), a ``PreTrainedModel``, or
    ``"tiny"`` for the registry's tiny random model.  ``device``: ``"auto"`` (best target
    present) or a target name such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"max"``."""
    return skill_class(class_name)(model=model, device=device, **kwargs)


def detect_hardware() -> dict[str, Any]:
    """The hardware report ``generate-skills hardware`` prints, as a dict."""
    from skillmill.generator.targets import load_declarations
    from skillmill.runtime.hardware import hardware_report

    return hardware_report(load_declarations())


def _measure_for_auto_tune(skill: Any, batch: Any) -> Any:
    """What ``auto_tune=True`` runs on a call whose shape has no measurement (the runtime may not
    import skillmill.measure, so the package hands it this)."""
    from skillmill.measure.manager import UnifiedBackendManager

    return UnifiedBackendManager().benchmark_batch(skill, batch)


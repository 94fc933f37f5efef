"""Modular MAX graphs and Mojo kernels.  Both lower from skillmill's model IR; until that
lowering exists for a model, the runner says exactly what is missing and the skill falls back."""

from __future__ import annotations

import importlib.util
from typing import Any

from ..errors import BackendUnavailable
from . import BackendOutput


def run_max(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    if importlib.util.find_spec("max") is None:
        raise BackendUnavailable("max", "Python package 'max' not installed (pip install max)")
    raise BackendUnavailable(
        "max", f"no MAX graph lowering for {skill.model_class_name} yet (needs the model IR)"
    )


def run_mojo(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    if importlib.util.find_spec("mojo") is None and importlib.util.find_spec("max") is None:
        raise BackendUnavailable("mojo", "the Mojo compiler is not installed (pip install mojo)")
    raise BackendUnavailable(
        "mojo", f"no Mojo kernels rendered for {skill.model_class_name} yet (needs the model IR)"
    )

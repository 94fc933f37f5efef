"""``MojoMaxTargetMixin``: the one place that decides when a skill tries Modular MAX / Mojo.

``USE_MOJO_MAX_TARGET=1`` asks for MAX, then Mojo, before every other target — but only where
they are really installed and the registry says they support the model; otherwise the skill runs
on the next target and the result says why (``fallback_reason``)."""

from __future__ import annotations

import os
from typing import Any

MODULAR_TARGETS = ("max", "mojo")
TRUE_VALUES = ("1", "true", "yes", "on")


def use_mojo_max_target() -> bool:
    return os.environ.get("USE_MOJO_MAX_TARGET", "").strip().lower() in TRUE_VALUES


class MojoMaxTargetMixin:
    """Mixed into every generated skill.  Needs ``targets`` ({name: HardwareTarget}, priority
    order) and ``run_on(names, batch)`` from the skill."""

    targets: dict[str, Any] = {}

    def preferred_order(self) -> list[str]:
        """Target names to try, best first, for ``device="auto"``."""
        names = list(self.targets)
        if use_mojo_max_target():
            names = [n for n in MODULAR_TARGETS if n in names] + [
                n for n in names if n not in MODULAR_TARGETS
            ]
        return names

    def get_default_device_with_mojo_max(self) -> str:
        """The target ``device="auto"`` would pick now: the first one present here."""
        for name in self.preferred_order():
            if self.targets[name].status().available:
                return name
        return "cpu"

    def process_with_mojo_max(self, inputs: Any):
        """Run on MAX, else Mojo; fall back to PyTorch with the reason in the result."""
        names = [n for n in MODULAR_TARGETS if n in self.targets]
        return self.process(inputs, order=names + ["cpu"])

    def process_with_pytorch(self, inputs: Any, device: str = "cpu"):
        """Run with PyTorch eager on ``device`` (cpu, cuda, rocm or mps)."""
        return self.process(inputs, order=[device, "cpu"] if device != "cpu" else ["cpu"])

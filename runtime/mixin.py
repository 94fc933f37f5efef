"""``MojoMaxTargetMixin``: the one place that decides when a skill tries Modular MAX / Mojo.

``USE_MOJO_MAX_TARGET=1`` asks for MAX, then Mojo, before every other target — but only where
they are really installed (the probes start MAX and find the compiler) and the registry says they
support the model; otherwise the skill runs on the next target and the result says why
(``fallback_reason``).  Without the switch, ``device="auto"`` skips them (a first compile per
model takes about a minute): ``device="max"`` / ``"mojo"`` or ``process_with_mojo_max`` ask
for them directly."""

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
    _modular_asked: bool = False

    def preferred_order(self) -> list[str]:
        """Target names to try, best first, for ``device="auto"``: MAX and Mojo first with
        ``USE_MOJO_MAX_TARGET=1``, left out without it (each compiles per model)."""
        others = [n for n in self.targets if n not in MODULAR_TARGETS]
        if use_mojo_max_target():
            return [n for n in MODULAR_TARGETS if n in self.targets] + others
        return others

    def modular_requested(self) -> tuple[bool, str]:
        """(whether MAX/Mojo were asked for, how) — the runners compile only when they were."""
        request = str(getattr(self, "device_request", "auto")).split(":", 1)[0]
        if request in MODULAR_TARGETS:
            return True, f"device={request!r}"
        if use_mojo_max_target():
            return True, "USE_MOJO_MAX_TARGET=1"
        if self._modular_asked:
            return True, "process_with_mojo_max()"
        return False, "not asked for"

    def get_default_device_with_mojo_max(self) -> str:
        """The target ``device="auto"`` would pick now: the first one present here."""
        for name in self.preferred_order():
            if self.targets[name].status().available:
                return name
        return "cpu"

    def process_with_mojo_max(self, inputs: Any):
        """Run on MAX, else Mojo; fall back to PyTorch with the reason in the result."""
        names = [n for n in MODULAR_TARGETS if n in self.targets]
        self._modular_asked = True
        try:
            return self.process(inputs, order=names + ["cpu"])
        finally:
            self._modular_asked = False

    def process_with_pytorch(self, inputs: Any, device: str = "cpu"):
        """Run with PyTorch eager on ``device`` (cpu, cuda, rocm or mps)."""
        return self.process(inputs, order=[device, "cpu"] if device != "cpu" else ["cpu"])

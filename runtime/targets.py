"""A hardware target as a generated skill module sees it: its name, priority, how to detect it
(the declaration's ``detect`` data, rendered into the module) and its runner function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .hardware import TargetStatus, target_status


@dataclass(frozen=True)
class HardwareTarget:
    name: str
    priority: int
    detect: dict[str, Any]
    runner: Callable[..., Any]
    # Its first call converts or compiles the model (the declaration's ``converts``): under a
    # start-up budget, device="auto" starts it only once measured (decisions.within_budget).
    converts: bool = False

    def status(self) -> TargetStatus:
        return target_status(self.name, self.detect)


def target_table(*targets: HardwareTarget) -> dict[str, HardwareTarget]:
    """{name: target}, highest priority first."""
    return {t.name: t for t in sorted(targets, key=lambda t: -t.priority)}

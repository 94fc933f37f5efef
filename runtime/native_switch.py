"""Whether the cpu target's native executor is on for a skill, and who said so.

The runtime reads it too (``decisions.within_budget`` must know whether the caller asked for the
native executor by name), so it lives here, below the engine that runs it
(``engines/native/runner.py``)."""

from __future__ import annotations

import os
from typing import Any

ENV_SWITCH = "SKILLMILL_NATIVE"
OFF_VALUES = ("0", "false", "no", "off")


def native_mode(skill: Any) -> tuple[str, str]:
    """("off" | "auto" | "all", where the choice came from): ``skill.native`` when set, else
    ``SKILLMILL_NATIVE`` ("0"/"false"/"no"/"off": off; "all": every model type; unset: auto)."""
    option = getattr(skill, "native", None)
    if option is not None:
        if option is False:
            return "off", "native=False"
        return ("all" if option == "all" else "auto"), f"native={option!r}"
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    if value in OFF_VALUES:
        return "off", f"{ENV_SWITCH}={value}"
    return ("all" if value == "all" else "auto"), f"{ENV_SWITCH}={value or 'unset'}"

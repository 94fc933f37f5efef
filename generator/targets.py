"""Hardware target declarations: ``<name>.yaml`` + ``<name>.py.j2`` side by side in a folder.

The built-in ones live in templates/hardware/.  Template authors add a target by dropping the
pair into any folder named with ``--targets-dir`` (or ``$SKILLMILL_TARGETS_PATH``, os.pathsep
separated) — nothing in the generator changes.  See docs/adding-a-hardware-target.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

REQUIRED = {"name": str, "priority": int, "detect": dict, "supports": dict}
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class TargetDeclarationError(ValueError):
    """A target declaration is malformed; the message names the file and the field."""


def builtin_dir() -> Path:
    # Installed non-editable, templates sit inside the skillmill.templates package.
    from importlib import resources

    return Path(str(resources.files("skillmill.templates").joinpath("hardware")))


def target_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    dirs = [builtin_dir()]
    env = os.environ.get("SKILLMILL_TARGETS_PATH", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [Path(p) for p in extra]
    return dirs


def _validate(path: Path, decl: Any) -> dict[str, Any]:
    if not isinstance(decl, dict):
        raise TargetDeclarationError(f"{path}: expected a mapping of fields, got {type(decl).__name__}")
    for field, kind in REQUIRED.items():
        if field not in decl:
            raise TargetDeclarationError(f"{path}: missing field '{field}'")
        if not isinstance(decl[field], kind):
            raise TargetDeclarationError(f"{path}: field '{field}' must be {kind.__name__}")
    if not NAME_PATTERN.match(decl["name"]):
        raise TargetDeclarationError(f"{path}: name '{decl['name']}' must match {NAME_PATTERN.pattern}")
    if decl["name"] != path.stem:
        raise TargetDeclarationError(f"{path}: name '{decl['name']}' must match the file name")
    from skillmill.runtime.hardware import PROBES, conditions_of

    for condition in conditions_of(decl["detect"])[0]:
        if not isinstance(condition, dict) or len(condition) != 1 or next(iter(condition)) not in PROBES:
            raise TargetDeclarationError(
                f"{path}: detect entry {condition!r} must be one of: {', '.join(sorted(PROBES))}"
            )
    partial = path.with_suffix(".py.j2")
    if not partial.exists():
        raise TargetDeclarationError(f"{path}: its partial {partial.name} is missing beside it")
    if not isinstance(decl.get("converts", False), bool):
        raise TargetDeclarationError(f"{path}: field 'converts' must be true or false")
    decl = dict(decl)
    decl.setdefault("title", decl["name"])
    # converts: its first call converts or compiles the model (seconds to minutes), so
    # device="auto" does not start it on a shape it has not measured (runtime/decisions.py)
    decl.setdefault("converts", False)
    decl["partial_path"] = str(partial)
    return decl


def load_declarations(extra_dirs: Iterable[str | Path] = ()) -> list[dict[str, Any]]:
    """All target declarations in priority order (highest first).  A later folder's target
    with the same name replaces an earlier one, so a template author can override a built-in."""
    found: dict[str, dict[str, Any]] = {}
    for folder in target_dirs(extra_dirs):
        if not folder.is_dir():
            raise TargetDeclarationError(f"targets folder {folder} does not exist")
        for path in sorted(folder.glob("*.yaml")):
            try:
                decl = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise TargetDeclarationError(f"{path}: not valid YAML: {exc}") from None
            decl = _validate(path, decl)
            found[decl["name"]] = decl
    return sorted(found.values(), key=lambda d: (-d["priority"], d["name"]))

"""Render the whole generated tree, compare it, and write it atomically."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from skillmill.registry import Registry

from .render import (
    TARGETS_MODULE,
    RenderContext,
    module_name,
    render_index,
    render_module,
    render_targets_module,
)

INDEX = "__init__.py"


def _render_one(args) -> tuple[str, str]:
    registry, declarations, model_type = args
    ctx = _worker_context(registry, declarations)
    return f"{module_name(model_type)}.py", render_module(ctx, model_type, registry.model_types[model_type])


_CONTEXT: dict[tuple, RenderContext] = {}


def _worker_context(registry: Registry, declarations) -> RenderContext:
    key = (registry.digest, tuple(d["partial_path"] for d in declarations))
    if key not in _CONTEXT:  # one jinja environment per worker process and template set
        _CONTEXT.clear()
        _CONTEXT[key] = RenderContext.create(registry, declarations)
    return _CONTEXT[key]


def render_tree(registry: Registry, declarations: list[dict], model_types: Iterable[str],
                jobs: int = 1, progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """{file name: text} for the index, _targets.py (the hardware targets every module imports)
    and each requested model type's module."""
    types = list(model_types)
    ctx = RenderContext.create(registry, declarations)
    files = {INDEX: render_index(ctx), TARGETS_MODULE: render_targets_module(ctx)}
    work = [(registry, declarations, t) for t in types]
    if jobs > 1 and len(work) > 8:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for name, text in pool.map(_render_one, work, chunksize=16):
                files[name] = text
                if progress:
                    progress(1)
    else:
        for item in work:
            name, text = _render_one(item)
            files[name] = text
            if progress:
                progress(1)
    return files


def target_names(text: str) -> set[str]:
    """The target names a rendered _targets.py declares."""
    return set(re.findall(r"HardwareTarget\(\s*['\"]([a-z][a-z0-9_]*)['\"]", text))


def dropped_targets(files: dict[str, str], output: Path) -> list[str]:
    """Targets the _targets.py in ``output`` declares that the rendered one would drop, when
    ``output`` holds modules this render does not rewrite (they may still name those targets)."""
    old = output / TARGETS_MODULE
    others = {p.name for p in output.glob("*.py")} - set(files) if output.is_dir() else set()
    if not old.exists() or not others:
        return []
    return sorted(target_names(old.read_text(encoding="utf-8")) - target_names(files[TARGETS_MODULE]))


def stale_diff(files: dict[str, str], output: Path, complete: bool) -> str:
    """Unified diff between rendered ``files`` and what ``output`` holds ('' when equal).
    With ``complete``, files in ``output`` that would no longer be generated count as stale."""
    chunks = []
    existing = {p.name for p in output.glob("*.py")} if output.is_dir() else set()
    for name in sorted(set(files) | (existing if complete else set())):
        path = output / name
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        new = files.get(name, "")
        if old != new:
            chunks.extend(difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True),
                fromfile=f"a/{output.name}/{name}", tofile=f"b/{output.name}/{name}",
            ))
    return "".join(chunks)


def write_files(files: dict[str, str], output: Path) -> None:
    """Write some files into ``output``, each atomically (temp file + rename)."""
    output.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        fd, tmp = tempfile.mkstemp(dir=output, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, output / name)


def replace_tree(files: dict[str, str], output: Path) -> None:
    """Replace the whole ``output`` folder: the new tree is written beside it, then swapped in by
    rename, so an interrupted run leaves the old tree whole."""
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    backup = output.parent / f".{output.name}.old"
    if backup.exists() and not output.exists():  # a run killed between the two renames
        os.replace(backup, output)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.new-"))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        # Keep hand-placed non-Python files (e.g. a README) that are not ours to delete.
        if output.is_dir():
            for extra in output.iterdir():
                if extra.suffix != ".py" and not extra.name.startswith(".") and extra.name != "__pycache__":
                    if not (staging / extra.name).exists():
                        shutil.copy2(extra, staging / extra.name) if extra.is_file() else None
        if backup.exists():
            shutil.rmtree(backup)
        if output.exists():
            os.replace(output, backup)
        os.replace(staging, output)
        shutil.rmtree(backup, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)

"""The support table: model type x engine x precision -> what the coverage sweeps measured.

What is *declared* lives in registry/registry.yaml (each class's targets); what was *measured*
lives here, one YAML document per engine and precision (``<engine>.yaml`` at float32,
``<engine>-<precision>.yaml`` otherwise), each the committed report of one sweep
(`generate-skills coverage --backend NAME`: measure/sweeps/ measures, generator/coverage.py writes): ``engine``, ``precision``,
the sweep's settings, and one row per base model type with its ``status`` ("pass" or why not),
``stage``, ``reason`` and, for a row merged from another machine, ``measured_on``.

This module is the only reader, and it imports neither torch nor transformers: the runners ask
``verdict(model_type, engine)`` before they convert or compile anything, and docs/coverage.md
and docs/support-matrix.md are rendered from the same documents.

- ``"pass"``: the sweep ran the type on the engine and it matched PyTorch;
- a string: why it did not (``"<status>: <reason>"``), quoted by the runner that declines it;
- ``None``: never measured there (no report for that engine and precision, no row, or a row the
  sweep did not reach, ``not_measured``): declared only, and the runners try it as before.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterable

import yaml

SUPPORT_DIR = Path(__file__).resolve().parent
DEFAULT_PRECISION = "float32"
NOT_MEASURED = "not_measured"  # a row the sweep did not reach (`coverage --resume` measures it)
REASON_CHARS = 200


def path(engine: str, precision: str = DEFAULT_PRECISION) -> Path:
    """Where the sweep of ``engine`` at ``precision`` keeps its document."""
    suffix = "" if precision == DEFAULT_PRECISION else f"-{precision}"
    return SUPPORT_DIR / f"{engine}{suffix}.yaml"


def name(engine: str, precision: str = DEFAULT_PRECISION) -> str:
    """That document's path as messages quote it: registry/support/<file>."""
    return path(engine, precision).relative_to(SUPPORT_DIR.parent.parent).as_posix()


def _loader() -> type:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader: the reports are large


@functools.lru_cache(maxsize=None)
def report(engine: str, precision: str = DEFAULT_PRECISION) -> dict[str, Any]:
    """The whole document for ``engine`` at ``precision`` ({"model_types": {}} when none); one
    shared, cached copy: read it, do not change it."""
    file = path(engine, precision)
    if not file.exists():
        return {"model_types": {}}
    document = yaml.load(file.read_text(encoding="utf-8"), Loader=_loader()) or {}
    for key, want in (("engine", engine), ("precision", precision)):
        if document.get(key, want) != want:
            raise ValueError(f"{file}: {key} is {document[key]!r}, expected {want!r}")
    document.setdefault("model_types", {})
    return document


def documents() -> list[tuple[str, str]]:
    """(engine, precision) of every document here."""
    found = []
    for file in sorted(SUPPORT_DIR.glob("*.yaml")):
        engine, _, precision = file.stem.partition("-")
        found.append((engine, precision or DEFAULT_PRECISION))
    return found


def row(model_type: str, engine: str, precision: str = DEFAULT_PRECISION) -> dict[str, Any] | None:
    """The sweep's row for ``model_type`` on ``engine`` at ``precision``, if it has one."""
    return report(engine, precision)["model_types"].get(model_type)


def verdict_of(model_row: dict[str, Any] | None) -> str | None:
    """"pass", "<status>: <reason>" (whitespace folded, at most REASON_CHARS of the reason, and
    where it was measured if not on this project's machine), or None for no measured row."""
    if not model_row or model_row.get("status") in (None, NOT_MEASURED):
        return None
    if model_row["status"] == "pass":
        return "pass"
    reason = " ".join(str(model_row.get("reason") or "").split())[:REASON_CHARS]
    where = f" [measured on {model_row['measured_on']}]" if model_row.get("measured_on") else ""
    return f"{model_row['status']}: {reason}{where}"


@functools.lru_cache(maxsize=None)
def verdicts(engine: str, precision: str = DEFAULT_PRECISION) -> dict[str, str]:
    """model_type -> verdict for every type ``engine``'s sweep measured at ``precision``."""
    rows = report(engine, precision)["model_types"]
    found = {t: verdict_of(r) for t, r in rows.items()}
    return {t: v for t, v in found.items() if v is not None}


def verdict(model_type: str, engine: str, precision: str = DEFAULT_PRECISION) -> str | None:
    """"pass", why the sweep failed ``model_type`` on ``engine`` at ``precision``, or None when
    it was not measured there."""
    return verdicts(engine, precision).get(model_type)


def slower_reason(model_type: str, engine: str, precision: str = DEFAULT_PRECISION) -> str | None:
    """Why a type that passed on ``engine`` is still not worth running there: the sweep timed
    it slower than PyTorch eager (``native_ms`` > ``torch_ms``, written by the native sweep);
    None when it was as fast or faster, or never timed."""
    model_row = row(model_type, engine, precision)
    if not model_row or model_row.get("status") != "pass":
        return None
    mine, torch_ms = model_row.get(f"{engine}_ms"), model_row.get("torch_ms")
    if not isinstance(mine, (int, float)) or not isinstance(torch_ms, (int, float)) or mine <= torch_ms:
        return None
    shape = str(model_row.get("speed_shape", "?")).replace("x", ",")
    return (f"{engine} {mine:.3g} ms vs torch {torch_ms:.3g} ms at ({shape}) in the {engine} sweep "
            f"({name(engine, precision)})")  # fmt: skip


def problems(base_types: Iterable[str]) -> list[str]:
    """What is wrong with the table, for `generate-skills --check`: a document whose engine or
    precision is not the one its file name says, a row for a type the registry has no base class
    for, a failure without its reason, counts that disagree with the rows."""
    known, found = set(base_types), []
    for engine, precision in documents():
        where = name(engine, precision)
        try:
            document = report(engine, precision)
        except (ValueError, yaml.YAMLError) as exc:
            found.append(f"{where}: {exc}")
            continue
        for key, want in (("engine", engine), ("precision", precision)):
            if document.get(key) != want:
                found.append(f"{where}: needs `{key}: {want}`")
        rows = document["model_types"]
        unknown = sorted(set(rows) - known)
        if unknown:
            found.append(f"{where}: not base model types in registry/registry.yaml: {', '.join(unknown)}")
        for model_type, model_row in rows.items():
            status = (model_row or {}).get("status")
            if not status:
                found.append(f"{where}: {model_type} has no status")
            elif status != "pass" and not model_row.get("reason"):
                found.append(f"{where}: {model_type} is {status} without a reason")
        passed = sum((r or {}).get("status") == "pass" for r in rows.values())
        if (document.get("passed"), document.get("total")) != (passed, len(rows)):
            found.append(f"{where}: says {document.get('passed')} of {document.get('total')} pass, "
                         f"its rows {passed} of {len(rows)}")  # fmt: skip
    return found


def clear_cache() -> None:
    """Forget what was read (a sweep has just rewritten a document)."""
    report.cache_clear()
    verdicts.cache_clear()

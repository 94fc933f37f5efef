"""Coverage over the registry, one sweep per backend (``BACKENDS``), each over every base model
type in forked workers (registry/sweep.py), each with a committed report.

- ``skill`` (the foundation): build the tiny random model, run it through the generated skill and
  compare with calling the transformers model directly.  It pins the cpu target's engine to
  PyTorch eager (``native=False``): it measures the skill wiring, not the executor.
- ``native``: convert the tiny model for skillmill's native executor and compare with PyTorch at
  two shapes (``skillmill.ir.coverage.check_native``); the cpu target converts a model only when
  its type passed here.
- ``max``: lower the same IR to a MAX graph, compile and compare; the max target declines a
  type that failed here before paying for a compile.

Each report is one engine's document in the support table, registry/support/<engine>.yaml
(model type x engine x precision -> pass, or why not, and where it was measured), which
``skillmill.registry.support`` reads for the runners.  `generate-skills coverage [--backend NAME]`
rewrites that document, then docs/coverage.md and docs/support-matrix.md, both rendered from the
table (`generate-skills --check` fails when either is stale).  Every failure is recorded with its
stage and reason, never skipped.  Another backend is one ``register_backend`` call."""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from skillmill.registry import support

ROOT = Path(__file__).resolve().parent.parent
REPORT_MD = ROOT / "docs" / "coverage.md"
RTOL, ATOL = 1e-4, 1e-5


def _reason(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message[:300]}"


def compare_outputs(got: dict[str, Any], want: dict[str, Any]) -> tuple[bool, float, str]:
    """(equal within RTOL/ATOL, max abs difference, what differs)."""
    import torch

    worst = 0.0
    for name, expected in want.items():
        actual = got.get(name)
        if actual is None:
            return False, float("inf"), f"output '{name}' missing from the skill's result"
        if actual.shape != expected.shape:
            return False, float("inf"), f"output '{name}' shape {tuple(actual.shape)} != {tuple(expected.shape)}"
        if expected.is_floating_point() or expected.is_complex():
            diff = (actual.double() - expected.double()).abs()
            diff = diff[~torch.isnan(expected.double())] if diff.numel() else diff
            worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
            if not torch.allclose(actual.double(), expected.double(), rtol=RTOL, atol=ATOL, equal_nan=True):
                return False, worst, f"output '{name}' differs by up to {worst:.3g}"
        elif not torch.equal(actual, expected):
            return False, float("inf"), f"output '{name}' differs"
    return True, worst, ""


def known_failure(model_type: str) -> str | None:
    """Why a family is known not to run here (its `_why` in tiny_overrides.yaml), if it is."""
    from skillmill.registry.tiny import load_overrides

    return (load_overrides().get(model_type) or {}).get("_why")


def check_skill(model_type: str) -> dict[str, Any]:
    """Run one base model type's tiny model through its skill and directly; never raises."""
    import torch

    from skillmill import load_skill
    from skillmill.registry import load_registry
    from skillmill.registry.tiny import tiny_config
    from skillmill.runtime.outputs import flatten_outputs

    row: dict[str, Any] = {"status": "fail", "backend": None}
    start = time.perf_counter()
    stage = "registry"
    try:
        registry = load_registry()
        class_name = registry.base_classes[model_type]
        row["class"] = class_name
        stage = "config"
        config = tiny_config(model_type)
        stage = "load_skill"
        # device="cpu", native=False: this sweep measures the skill wiring (inputs, outputs,
        # names) with PyTorch eager; the native executor, MAX and OpenVINO have their own checks.
        skill = load_skill(class_name, model=config, device="cpu", native=False)
        # The same weights, called directly below (a copy: the skill may move its model).
        reference = copy.deepcopy(skill.model)
        stage = "inputs"
        inputs = skill.example_inputs()
        stage = "skill.process"
        torch.manual_seed(0)
        result = skill.process(dict(inputs))
        row["backend"] = result.backend
        row["engine"] = result.engine
        if (result.backend, result.engine, result.precision) != ("cpu", "torch", "float32"):
            raise AssertionError(f"expected PyTorch eager float32 on the cpu target, ran {result.engine} "
                                 f"at {result.precision} on {result.backend}")  # fmt: skip
        stage = "reference"
        torch.manual_seed(0)
        with torch.inference_mode():
            want = flatten_outputs(reference(**dict(inputs)))
        stage = "compare"
        if not want:
            raise ValueError("the model returned no tensors to compare")
        equal, worst, what = compare_outputs(result.outputs, want)
        row["max_abs_diff"] = float(f"{worst:.3g}")
        if not equal:
            raise AssertionError(what)
        row["status"] = "pass"
        stage = "done"
    except BaseException as exc:  # noqa: BLE001 — a coverage run records every failure
        if isinstance(exc, KeyboardInterrupt):
            raise
        row["stage"] = stage
        row["reason"] = _reason(exc)
        why = known_failure(model_type)
        if why:  # the family's known cause (registry/tiny_overrides.yaml), then what was seen
            row["reason"] = f"{why} -- {row['reason']}"
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row



# -- backends ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoverageBackend:
    """One coverage sweep: how a row is measured, where its report lives, how it is shown."""

    name: str
    check: Callable[[str], dict[str, Any]]  # model_type -> row with "status" ("pass" or not)
    engine: str  # what it measures: the support table's engine (registry/support/<engine>.yaml)
    title: str  # its section heading in docs/coverage.md
    what: str  # one sentence: what a row measures and against what
    env: dict[str, str] = field(default_factory=dict)  # set in the parent before forking
    warm_up: Callable[[], Any] | None = None  # run once in the parent: workers start warm
    normalise: Callable[[dict[str, Any]], dict[str, Any]] = lambda row: row
    first: tuple[str, ...] = ()  # types listed first in the markdown (the floor families)
    written: Callable[[dict[str, dict[str, Any]]], list[Path]] | None = None  # extra outputs
    extra: Callable[[], dict[str, Any]] = dict  # extra top-level report fields
    # Runs the whole sweep itself (types, jobs, on_result) instead of one forked check per type:
    # MAX compiles several types per graph (runtime/backends/modular/coverage.py says why).
    sweep: Callable[..., Any] | None = None
    precision: str = support.DEFAULT_PRECISION  # what every row computes at

    @property
    def report(self) -> Path:
        """The committed YAML report: this engine's document in the support table."""
        return support.path(self.engine, self.precision)


BACKENDS: dict[str, CoverageBackend] = {}


def register_backend(backend: CoverageBackend) -> None:
    BACKENDS[backend.name] = backend


def _check_native(model_type: str) -> dict[str, Any]:
    from skillmill.ir.coverage import check_native

    return check_native(model_type)


def _warm_native() -> None:
    from skillmill.ir.coverage import warm_up

    warm_up()


def _normalise_native(row: dict[str, Any]) -> dict[str, Any]:
    from skillmill.ir.coverage import normalise_row

    return normalise_row(row)


def _native_extra() -> dict[str, Any]:
    import torch

    from skillmill.ir.coverage import FLOOR_TYPES, TOLERANCE

    return {"tolerance": TOLERANCE, "torch_version": str(torch.__version__), "floor": list(FLOOR_TYPES)}


register_backend(CoverageBackend(
    name="skill",
    check=check_skill,
    engine="torch",
    title="Foundation: every base model type through its generated skill",
    what="tiny random model of each base model type through its generated skill, compared with "
         f"the transformers model called directly (rtol {RTOL}, atol {ATOL})",
    warm_up=lambda: check_skill("bert"),
))  # fmt: skip
register_backend(CoverageBackend(
    name="native",
    check=_check_native,
    engine="native",
    title="Native executor: every base model type converted from PyTorch and run on skillmill.ir",
    what="tiny random model of each base model type exported with torch.export (dynamic batch and "
         "sequence), lowered to skillmill's IR, optimised and run on the native executor at "
         "(batch, seq) = (2, 8) and (3, 11), every output compared with PyTorch eager: relative "
         "error max|native - torch| / max|torch| <= 1e-4",
    warm_up=_warm_native,
    normalise=_normalise_native,
    first=("bert", "roberta", "distilbert", "albert", "electra", "gpt2", "gpt_neox", "llama",
           "mistral", "qwen2", "phi", "gemma", "t5", "bart", "vit", "deit", "convnext", "resnet",
           "whisper", "clip"),
    extra=_native_extra,
))  # fmt: skip


def _check_max(model_type: str) -> dict[str, Any]:
    from skillmill.runtime.backends.modular.coverage import check_one

    return check_one(model_type)


def _sweep_max(types: list[str], jobs: int, on_result: Callable[[str, dict], None]) -> Any:
    from skillmill.runtime.backends.modular.coverage import run_coverage

    return run_coverage(types, jobs=jobs, on_result=on_result)


def _max_extra() -> dict[str, Any]:
    from skillmill.runtime.backends.modular.coverage import report_extra

    return report_extra()


register_backend(CoverageBackend(
    name="max",
    check=_check_max,
    engine="max",
    title="Modular MAX: every base model type's IR lowered to a MAX graph, compiled and run",
    what="tiny random model of each base model type exported with torch.export (dynamic batch and "
         "sequence), optimised in skillmill's IR, lowered to a MAX graph, compiled by MAX on the "
         "CPU and run at (batch, seq) = (2, 8) and (3, 11), every output compared with PyTorch "
         "eager: relative error max|max - torch| / max|torch| <= 1e-4 (types are compiled "
         "several to a MAX graph, as many as each row's group_size, each with its own inputs and "
         "outputs, with MAX's built-in ops only; the "
         "skills' CPU default adds skillmill's Mojo kernels as MAX custom ops, which CI checks on a "
         "subset; see runtime/backends/modular/coverage.py); "
         "a type whose tiny model, inputs or IR conversion failed in the native sweep is not "
         "exported again, and its row quotes that sweep's reason",
    first=("bert", "roberta", "distilbert", "albert", "electra", "gpt2", "gpt_neox", "llama",
           "mistral", "qwen2", "phi", "gemma", "t5", "bart", "vit", "deit", "convnext", "resnet",
           "whisper", "clip"),
    extra=_max_extra,
    sweep=_sweep_max,
))  # fmt: skip


# -- reports ----------------------------------------------------------------------------------
def write_report(rows: dict[str, dict[str, Any]], transformers_version: str,
                 backend: str = "skill") -> list[Path]:  # fmt: skip
    """Rewrite ``backend``'s document in the support table (and whatever else it writes), then
    the docs rendered from the table: docs/coverage.md and docs/support-matrix.md."""
    spec = BACKENDS[backend]
    passed = sum(r["status"] == "pass" for r in rows.values())
    total = len(rows)
    document = {
        "engine": spec.engine,
        "precision": spec.precision,
        "what": spec.what,
        "transformers_version": transformers_version,
        **spec.extra(),
        "passed": passed,
        "total": total,
        "share": round(passed / max(total, 1), 4),
        **_by_machine(rows),
        "model_types": {t: {k: v for k, v in rows[t].items() if k != "seconds"} for t in sorted(rows)},
    }
    spec.report.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Generated by `generate-skills coverage --backend {backend}` — do not edit.\n"
    tmp = spec.report.with_suffix(".tmp")  # atomic: an interrupted write never truncates the report
    tmp.write_text(header + yaml.safe_dump(document, sort_keys=False, width=120), encoding="utf-8")
    os.replace(tmp, spec.report)
    support.clear_cache()
    written = [spec.report] + (spec.written(rows) if spec.written else [])
    return written + write_docs()


def write_docs() -> list[Path]:
    """docs/coverage.md and docs/support-matrix.md, rendered again from the support table."""
    from .write import write_files

    docs = rendered_docs()
    write_files(docs, REPORT_MD.parent)
    return [REPORT_MD.parent / name for name in docs]


def rendered_docs() -> dict[str, str]:
    """{file name under docs/: text} for every doc rendered from the support table."""
    from skillmill.registry import load_registry

    from .docs import SUPPORT_MATRIX, render_support_matrix
    from .targets import load_declarations

    return {REPORT_MD.name: render_markdown(),
            SUPPORT_MATRIX: render_support_matrix(load_registry(), load_declarations())}  # fmt: skip


def _by_machine(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Passes measured on this project's machines (this many cores, the pinned torch) apart
    from passes merged from a sweep elsewhere (``coverage --merge`` with another core count or
    another torch), which count separately so a share never hides where it was measured."""
    import torch

    def elsewhere_stamp(stamp: str) -> bool:
        return f"torch {torch.__version__}" not in stamp or f", {os.cpu_count()} cores," not in stamp

    merged = [r for r in rows.values() if r.get("measured_on") and elsewhere_stamp(r["measured_on"])]
    if not merged:
        return {}
    elsewhere = sum(r["status"] == "pass" for r in merged)
    here = sum(r["status"] == "pass" for r in rows.values()) - elsewhere
    return {"passed_here": here, "share_here": round(here / max(len(rows), 1), 4),
            "passed_elsewhere": elsewhere,
            "measured_elsewhere_on": sorted({r["measured_on"] for r in merged})}  # fmt: skip


def load_report(backend: str = "skill") -> dict[str, Any]:
    """``backend``'s committed report, read through the support table (a fresh copy: callers
    may change it)."""
    spec = BACKENDS[backend]
    return copy.deepcopy(support.report(spec.engine, spec.precision))


def _cell(text: Any) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def _row_line(model_type: str, row: dict[str, Any], executor_style: bool) -> str:
    if executor_style:  # rows with a relative error instead of a backend
        err = f"{row['max_rel_err']:.1e}" if row.get("max_rel_err") is not None else ""
        stage = f"{row.get('stage')}: " if row.get("stage") else ""
        note = f" ({row['note']})" if row.get("note") else ""
        if row.get("measured_on"):  # merged from a sweep on another machine (coverage --merge)
            note += f" [measured on {row['measured_on']}]"
        return (f"| {model_type} | {row.get('class', '')} | {row['status']} | {err} | "
                f"{stage}{_cell(row.get('reason'))}{_cell(note)} |")  # fmt: skip
    stage = f"{row.get('stage')}: " if row.get("stage") else ""
    return (f"| {model_type} | {row.get('class', '')} | {row['status']} | {row.get('backend') or ''} | "
            f"{stage}{_cell(row.get('reason'))} |")  # fmt: skip


def render_markdown() -> str:
    """docs/coverage.md from every committed report: a summary, then one section per backend."""
    reports = [(spec, load_report(name)) for name, spec in BACKENDS.items() if spec.report.exists()]
    lines = [
        "<!-- Generated by `generate-skills coverage` from registry/support/*.yaml — do not edit. -->",
        "# Coverage: every base model type, per backend",
        "",
        "| backend | passing base model types | share | report |",
        "|---|---|---|---|",
    ]
    for spec, doc in reports:
        share = f"{100 * doc['share']:.1f}%"
        if "passed_here" in doc:
            share += (f" ({doc['passed_here']} measured here, {100 * doc['share_here']:.1f}%; "
                      f"{doc['passed_elsewhere']} merged from another machine)")  # fmt: skip
        lines.append(f"| {spec.name} | {doc['passed']} of {doc['total']} | {share} | "
                     f"[{spec.report.name}](../registry/support/{spec.report.name}) |")  # fmt: skip
    lines += ["", *HOW_THE_SWEEPS_RELATE]
    for spec, doc in reports:
        rows = doc["model_types"]
        executor_style = any("max_rel_err" in r for r in rows.values())
        lines += ["", f"## {spec.title}", "",
                  f"`generate-skills coverage --backend {spec.name}` (engine {spec.engine}, "
                  f"{spec.precision}), transformers "
                  f"{doc['transformers_version']}: **{doc['passed']} of {doc['total']} base model "
                  f"types pass ({100 * doc['share']:.1f}%)**. Each row: {spec.what}.", ""]  # fmt: skip
        if "passed_here" in doc:
            lines += [f"Of the passes, {doc['passed_here']} were measured on this project's machine with the "
                      f"pinned torch ({100 * doc['share_here']:.1f}% of all types) and {doc['passed_elsewhere']} "
                      "were merged from a sweep elsewhere (`coverage --merge`), on: "
                      + "; ".join(doc["measured_elsewhere_on"]) + ".", ""]  # fmt: skip
        counts: dict[str, int] = {}
        for row in rows.values():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        lines += ["By status: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())) + ".", ""]
        header = ("| model type | class | status | max rel err | reason |" if executor_style
                  else "| model type | class | status | backend | reason |")  # fmt: skip
        first = [t for t in spec.first if t in rows]
        if first:
            passed = sum(rows[t]["status"] == "pass" for t in first)
            lines += [f"Floor families first ({passed} of {len(first)} pass), then every other type.", ""]
        lines += [header, "|---|---|---|---|---|"]
        lines += [_row_line(t, rows[t], executor_style) for t in first]
        if first:
            lines.append("| | | | | |")
        lines += [_row_line(t, rows[t], executor_style) for t in sorted(rows) if t not in first]
    return "\n".join(lines) + "\n"


HOW_THE_SWEEPS_RELATE = [
    "How the sweeps relate. The **skill** (foundation) sweep checks the generated skills' wiring "
    "(loading, inputs, target choice, output naming) element-wise against transformers; it pins the "
    "cpu target's engine to PyTorch eager (`load_skill(..., native=False)`), so a row there says nothing about "
    "the native executor. The **native** sweep checks the executor itself on every base type with a "
    "max-normalised relative error (element-wise rtol is not meaningful for outputs near zero once "
    "sums are reordered). Its verdicts are what the cpu target reads "
    "(registry/support/native.yaml, through `skillmill.registry.support`): a skill converts its model "
    "for the native executor "
    "only when its model type passed here, checks the first run of every conversion against PyTorch "
    "eager on the same inputs (same tolerance), and otherwise runs PyTorch eager with the reason in "
    "`result.fallback_reason`. The **max** sweep's verdicts are what the max target reads "
    "(registry/support/max.yaml): a type it failed is declined with that reason before any compile "
    "(`SKILLMILL_MAX=all` tries it anyway); a type it has not measured yet is tried.",
    "",
    "Every report is one engine's document in the support table, registry/support/<engine>.yaml "
    "(model type x engine x precision: pass, or the status and reason, and `measured_on` for a row "
    "measured on another machine); what is declared, not measured, is registry/registry.yaml. This "
    "page and docs/support-matrix.md are rendered from the table; `generate-skills --check` fails "
    "when either is stale.",
]

"""``UnifiedBackendManager``: measure every engine present on this machine for a skill, remember
the figures in the decision table ``device="auto"`` reads, and say which engine auto would pick.

    from skillmill import UnifiedBackendManager
    manager = UnifiedBackendManager()
    manager.benchmark_backends("BertModel", model="tiny", shapes=[(1, 16), (32, 128)])
    manager.get_optimal_backend(skill, Constraints(objective="throughput")).explanation

Per shape, each engine gets its own skill (sharing the loaded weights): the first call is timed
on its own (conversion, compile, parity check) with the process's peak-memory growth, then a
few warm-up calls, then ``repeats`` rounds in which every engine runs once, the order rotating
from round to round so a busy moment on the machine falls on all of them alike.  A call that
did not run on the engine asked for (the cpu target's native executor falling back to PyTorch,
an OpenVINO conversion that failed) is never timed as that engine: the row keeps the reason
instead.  What the table holds and how auto reads it: ``skillmill.runtime.decisions``.

The engines: ``native`` (the cpu target's native executor), ``torch`` (the cpu target with the
native executor off), ``openvino``, ``onnxruntime`` where a target of that name exists, the GPU
targets present, and with ``include_compiled=True`` ``max`` and ``mojo`` (each compiles per
model on its first call).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from skillmill.runtime import decisions
from skillmill.runtime.decisions import Bucket, Choice, Constraints
from skillmill.runtime.precision import PARITY_TOLERANCE

# Engines tried by default, in the order their first calls run.
DEFAULT_ENGINES = ("native", "torch", "openvino", "onnxruntime", "cuda", "rocm", "mps")
# Listed only where present: a CPU machine's tune does not report three absent GPUs.
OPTIONAL = ("cuda", "rocm", "mps")
WARM_UP = 2
REPEATS = 20
# auto_tune=True measures on a user's call: fewer rounds, paid once per shape bucket and machine.
AUTO_TUNE_REPEATS = 5
AUTO_TUNE_WARM_UP = 1
# What ``recommend`` (the MCP tool get_hardware_recommendations) answers for.
USE_CASES = ("low-latency", "throughput", "memory")


@dataclass
class ShapeReport:
    """One shape of a tune: the rows written to the table and the choice auto makes from them."""

    shape: tuple[int, int]
    bucket: Bucket
    key: str
    entry: dict[str, Any]
    choice: Choice
    notes: list[str] = field(default_factory=list)


# ---- memory --------------------------------------------------------------------------------------
def _status_bytes(name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak() -> int | None:
    """Reset the process's peak resident size (Linux: ``5`` into clear_refs) and return the
    resident size now; None where that is not possible (then peak growth is not measured)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return None
    return _status_bytes("VmRSS")


def _peak_growth(before: int | None) -> int | None:
    peak = _status_bytes("VmHWM") if before is not None else None
    return None if peak is None else max(0, peak - before)


# ---- one engine --------------------------------------------------------------------------------
def _parity(result: Any, precision: str) -> dict[str, Any]:
    proof = result.parity
    if proof is None:  # PyTorch eager at float32: the reference the others are proved against
        return {"max_relative_error": 0.0, "tolerance": PARITY_TOLERANCE[precision],
                "passed": True, "reference": True}  # fmt: skip
    return {"max_relative_error": float(proof.error), "tolerance": float(proof.tolerance),
            "passed": bool(proof.error <= proof.tolerance), "worst_output": proof.worst_output}  # fmt: skip


def _ran_instead(name: str, route: decisions.Route, result: Any) -> str | None:
    """Why ``result`` is not a run of engine ``name``, or None when it is."""
    if route.ran_as_itself(result.backend, result.engine):
        return None
    why = result.fallback_reason or "; ".join(f"{k}: {v}" for k, v in result.skipped.items())
    return f"asked for {name}, {result.engine} on {result.backend} ran instead: {why or 'no reason given'}"


def timing_summary(values: list[float], batch_size: int) -> dict[str, Any]:
    """Median and p95 milliseconds, items per second and the count of timed calls (seconds in),
    as the table stores them; every report of timed calls goes through here."""
    median = float(np.median(values)) * 1e3
    return {"median_ms": round(median, 4),
            "p95_ms": round(float(np.percentile(values, 95)) * 1e3, 4),
            "throughput": round(batch_size / (median / 1e3), 2),
            "runs": len(values)}  # fmt: skip


def machine_summary() -> str:
    """The CPU and its ISA (``skillmill.measure.machine``), or as much of it as this build has."""
    try:
        import torch

        from .machine import describe_machine, machine_line

        return machine_line(describe_machine(torch.get_num_threads()))
    except Exception as exc:  # the native library is not built: no kernel path, no FMA peak
        from skillmill.runtime.cpu_features import best_simd, cpu_model

        return f"machine: {cpu_model()}, {os.cpu_count()} cores; best SIMD {best_simd()} " \
               f"(native kernels not available: {exc})"  # fmt: skip


class UnifiedBackendManager:
    """Benchmarks the engines present for a skill, writes the decision table, and answers which
    engine to use under constraints (the design's ``benchmark_backends`` and
    ``get_optimal_backend``).  ``path``: the table (default ``$SKILLMILL_DECISIONS``, else
    ``~/.cache/skillmill/decisions.json``); ``echo``: where progress lines go (None: nowhere);
    ``progress``: a tqdm bar over the timed rounds on stderr."""

    def __init__(self, path: str | os.PathLike | None = None,
                 echo: Callable[[str], Any] | None = None, progress: bool = False):  # fmt: skip
        self._path = Path(path).expanduser() if path is not None else None
        self.echo = echo or (lambda line: None)
        self.progress = progress

    @property
    def path(self) -> Path:
        return self._path or decisions.table_path()

    # ---- which engines ---------------------------------------------------------------------
    @staticmethod
    def engines_present(skill: Any, include_compiled: bool = False) -> dict[str, str | None]:
        """{engine: None if it can be measured here, else why not} for the default set; the GPU
        targets and onnxruntime are listed only where this skill has them and they are present."""
        names = DEFAULT_ENGINES + (decisions.COMPILED if include_compiled else ())
        found: dict[str, str | None] = {}
        for name in names:
            route = decisions.ROUTES[name]
            target = skill.targets.get(route.target)
            optional = name in OPTIONAL
            if target is None:
                if not optional and name != "onnxruntime":
                    found[name] = f"this skill has no '{route.target}' target"
                continue
            status = target.status()
            if status.available:
                found[name] = None
            elif not optional:
                found[name] = f"not present: {status.reason}"
        return found

    # ---- measuring ---------------------------------------------------------------------------
    def benchmark_backends(self, skill_or_class: Any, model: Any = None,
                           shapes: Iterable[tuple[int, int]] = ((1, 16),),
                           engines: Iterable[str] | None = None, repeats: int = REPEATS,
                           warm_up: int = WARM_UP, include_compiled: bool = False,
                           precision: str | None = None,
                           constraints: Constraints | None = None) -> list[ShapeReport]:  # fmt: skip
        """Measure each engine on each (batch, seq) shape, write one table entry per shape, and
        return what was written with the choice auto now makes for it.

        ``skill_or_class``: a skill (its weights are measured), a skill class, or a model class
        name such as ``"BertModel"`` (then ``model`` is a checkpoint folder, a config or
        ``"tiny"``).  ``engines``: names from ``decisions.ROUTES``; default: every engine present
        here (``include_compiled`` adds max and mojo)."""
        base = self.base_skill(skill_or_class, model, precision)
        if repeats < 1:
            raise ValueError("repeats must be at least 1")
        if engines is None:
            planned = self.engines_present(base, include_compiled)
        else:
            wanted = list(dict.fromkeys(engines))
            unknown = [n for n in wanted if n not in decisions.ROUTES]
            if unknown:
                raise ValueError(f"unknown engines {', '.join(unknown)}; known: "
                                 f"{', '.join(decisions.ROUTES)}")  # fmt: skip
            present = self.engines_present(base, include_compiled=True)
            planned = {n: present.get(n, f"no '{decisions.ROUTES[n].target}' target here")
                       for n in wanted}  # fmt: skip
        constraints = constraints or Constraints(precisions=(base.precision,))
        self.echo(machine_summary())
        self.echo(f"decision table: {self.path}")
        reports = []
        for shape in shapes:
            batch_size, seq_len = (int(v) for v in shape)
            reports.append(self._measure_shape(base, (batch_size, seq_len), planned, repeats,
                                               warm_up, constraints))  # fmt: skip
        return reports

    def base_skill(self, skill_or_class: Any, model: Any = None,
                   precision: str | None = None) -> Any:  # fmt: skip
        """The skill whose weights are measured: ``skill_or_class`` itself when it is a skill,
        else the class (or class name) loaded from ``model`` on the cpu target."""
        if hasattr(skill_or_class, "process") and not isinstance(skill_or_class, type):
            return skill_or_class
        if isinstance(skill_or_class, str):
            from skillmill import skill_class

            skill_or_class = skill_class(skill_or_class)
        if model is None:
            raise ValueError("benchmark_backends needs model= (a folder, a config or 'tiny') "
                             "when given a class")  # fmt: skip
        return skill_or_class(model=model, device="cpu", precision=precision)

    def _engine_skill(self, base: Any, route: decisions.Route) -> Any:
        """A fresh skill for one engine, on the base skill's weights (no second copy)."""
        native = False if route.native_off else base.native
        return type(base)(model=base.model, device=route.target, native=native,
                          precision=base.precision)  # fmt: skip

    def benchmark_batch(self, skill: Any, batch: dict[str, Any], repeats: int = AUTO_TUNE_REPEATS,
                        warm_up: int = AUTO_TUNE_WARM_UP) -> ShapeReport:  # fmt: skip
        """Measure the engines present for ``skill`` on a prepared ``batch`` and record the entry
        (what ``auto_tune=True`` does on a call whose shape has no measurement).  MAX and Mojo are
        measured only where auto may run them (``USE_MOJO_MAX_TARGET=1``)."""
        from skillmill.runtime.mixin import use_mojo_max_target

        planned = self.engines_present(skill, include_compiled=use_mojo_max_target())
        tensor = next((batch[n] for n in skill.main_input_names if n in batch), None)
        dims = tuple(getattr(tensor, "shape", ()))
        shape = (int(dims[0]) if dims else 1, int(dims[1]) if len(dims) > 1 else 0)
        return self._measure_shape(skill, shape, planned, repeats, warm_up, skill.constraints,
                                   batch=batch)  # fmt: skip

    def measure_engines(self, base: Any, shape: tuple[int, int], planned: dict[str, str | None],
                        repeats: int = REPEATS, warm_up: int = WARM_UP, batch: Any = None,
                        ) -> tuple[Any, Bucket, dict[str, dict[str, Any]], dict[str, list[float]]]:  # fmt: skip
        """Measure the ``planned`` engines ({name: None, or why it is not run}) at one (batch,
        seq) shape: each one's first call on its own (with the process's peak-memory growth and
        the parity verdict), ``warm_up`` then ``repeats`` alternating rounds.  Returns (the
        batch, its bucket, the table rows by engine, each engine's timed calls in seconds).  A
        call that ran elsewhere leaves the row's ``fallback_reason`` and no timing.  Writes
        nothing: ``benchmark_backends`` records the rows, ``measure.bench.backends`` reports
        them.  ``batch``: a prepared batch to measure on instead of random inputs of ``shape``."""
        if batch is None:
            batch = base.example_inputs(batch_size=shape[0], seq_len=shape[1])
        bucket = decisions.shape_bucket(base, batch)
        rows: dict[str, dict[str, Any]] = {}
        skills: dict[str, Any] = {}
        for name, absent in planned.items():
            route = decisions.ROUTES[name]
            rows[name] = {"target": route.target}
            if absent:
                rows[name]["fallback_reason"] = absent
                continue
            self.echo(f"  {shape[0]}x{shape[1]} {name}: first call")
            before = _reset_peak()
            started = time.perf_counter()
            skill = self._engine_skill(base, route)
            result = skill.process(batch)
            first = time.perf_counter() - started
            rows[name]["first_call_s"] = round(first, 4)
            rows[name]["peak_rss_delta_bytes"] = _peak_growth(before)
            instead = _ran_instead(name, route, result)
            if instead:
                rows[name]["fallback_reason"] = instead
                continue
            rows[name]["precision"] = result.precision
            rows[name]["device"] = result.device
            rows[name]["parity"] = _parity(result, base.precision)
            skills[name] = skill
        # Warm-up rounds right before the timed ones (the other engines' first calls in between
        # would have evicted what a warm-up right after its own first call warmed).
        self._alternate(skills, rows, batch, warm_up, shape, label="warm-up")
        times = self._alternate(skills, rows, batch, repeats, shape)
        for name, values in times.items():
            if "fallback_reason" in rows[name] or not values:
                continue
            rows[name].update(timing_summary(values, shape[0]))
        return batch, bucket, rows, times

    def _measure_shape(self, base: Any, shape: tuple[int, int], planned: dict[str, str | None],
                       repeats: int, warm_up: int, constraints: Constraints,
                       batch: Any = None) -> ShapeReport:  # fmt: skip
        _, bucket, rows, _ = self.measure_engines(base, shape, planned, repeats, warm_up, batch)
        entry = decisions.new_entry(base, bucket, shape, rows, repeats)
        key = decisions.entry_key(base.model_class_name, entry["weights"], bucket, base.precision)
        notes = []
        try:
            note = decisions.record({key: entry}, self._path)
        except OSError as exc:  # a read-only cache: the figures still answer this call
            note = f"the decision table {self.path} could not be written ({exc}); this " \
                   f"measurement is not remembered"  # fmt: skip
            table = decisions.Table(self.path, {key: entry})
        else:
            table = decisions.read_table(self.path)
        if note:
            notes.append(note)
            self.echo(note)
        choice = decisions.decide(base, bucket, constraints, table=table)
        return ShapeReport(shape, bucket, key, entry, choice, notes)

    def _alternate(self, skills: dict[str, Any], rows: dict[str, dict[str, Any]], batch: Any,
                   repeats: int, shape: tuple[int, int],
                   label: str = "timed") -> dict[str, list[float]]:  # fmt: skip
        """``repeats`` rounds, each engine once per round, the starting engine rotating; a call
        that ran elsewhere ends that engine's timing with the reason."""
        times: dict[str, list[float]] = {name: [] for name in skills}
        active = [name for name in skills if "fallback_reason" not in rows[name]]
        bar = None
        if self.progress and active and repeats:
            from tqdm import tqdm

            bar = tqdm(total=repeats, desc=f"tune {shape[0]}x{shape[1]} {label}", unit="round",
                       leave=False)  # fmt: skip
        for round_index in range(repeats):
            turn = round_index % max(len(active), 1)
            for name in active[turn:] + active[:turn]:
                started = time.perf_counter()
                result = skills[name].process(batch)
                elapsed = time.perf_counter() - started
                instead = _ran_instead(name, decisions.ROUTES[name], result)
                if instead:
                    rows[name]["fallback_reason"] = f"in {label} round {round_index + 1}: {instead}"
                    continue
                times[name].append(elapsed)
            active = [n for n in active if "fallback_reason" not in rows[n]]
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return times

    # ---- deciding ----------------------------------------------------------------------------
    def get_optimal_backend(self, skill: Any, constraints: Constraints | None = None,
                            shape: Any = None) -> Choice:  # fmt: skip
        """The engine auto uses for ``skill`` under ``constraints``: a truthy Choice naming it, or
        a falsy one (``engine=None``) whose ``explanation`` says why there is none (no
        measurement, another machine's).  Refused with the reason: a decision table that is
        corrupt or of another format version (``DecisionTableError``), and constraints that rule
        out every engine measured (``ConstraintsUnsatisfiable``: a memory cap none meets, an error
        bound none satisfies).

        ``shape``: a (batch, seq) pair, a prepared batch or a ``Bucket``; without it, the
        measured bucket the objective asks about: for latency the one at the smallest batch
        (then the shortest sequence), for throughput the largest batch (then the longest)."""
        from skillmill.runtime.errors import ConstraintsUnsatisfiable, DecisionTableError

        choice = self._optimal(skill, constraints, shape)
        table = decisions.read_table(self.path)
        if table.error:
            raise DecisionTableError(f"the decision table {table.path} cannot answer: "
                                     f"{table.error}; the next `generate-skills tune` moves it "
                                     f"aside and writes a fresh one")  # fmt: skip
        if choice.unsatisfiable:
            raise ConstraintsUnsatisfiable(choice.explanation)
        return choice

    def _optimal(self, skill: Any, constraints: Constraints | None = None,
                 shape: Any = None) -> Choice:  # fmt: skip
        """``get_optimal_backend``'s answer, never raising (``recommend`` words every case)."""
        constraints = constraints or skill.constraints
        table = decisions.read_table(self.path)
        if shape is not None:
            if (
                isinstance(shape, tuple)
                and len(shape) == 2
                and all(isinstance(v, int) for v in shape)
            ):
                shape = skill.example_inputs(batch_size=shape[0], seq_len=shape[1])
            return decisions.decide(skill, shape, constraints, table=table)
        if table.error:  # decide explains a corrupt table the same way for any bucket
            return decisions.decide(skill, Bucket(1), constraints, table=table)
        buckets = [decisions.bucket_of(e) for e in decisions.entries_for(skill, table).values()]
        if not buckets:
            return Choice(None, f"no measurement for {skill.model_class_name} at any shape in "
                                f"{table.path}; run `generate-skills tune --skill "
                                f"{skill.model_class_name} --model ...`")  # fmt: skip

        def size(bucket: Bucket) -> tuple[int, int]:
            return bucket.batch, bucket.seq or int(np.prod(bucket.spatial or (1,)))

        if constraints.objective == "throughput":
            bucket = max(buckets, key=size)
        else:
            bucket = min(buckets, key=size)
        return decisions.decide(skill, bucket, constraints, table=table)

    def recommend(self, skill: Any, use_case: str = "low-latency") -> dict[str, Any]:
        """Which engine to use for ``skill`` and why, from the decision table (the MCP tool
        ``get_hardware_recommendations``).  ``use_case``: "low-latency" (the fastest call at the
        smallest measured batch), "throughput" (the most items per second at the largest) or
        "memory" (the smallest peak-memory growth, at the largest measured shape, among the
        engines auto may choose).  Without a usable measurement, ``measured`` is False, the
        answer is the fixed order's first present target, and ``explanation`` says why."""
        if use_case not in USE_CASES:
            raise ValueError(f"use_case must be one of {', '.join(USE_CASES)}, not {use_case!r}")
        objective = "throughput" if use_case in ("throughput", "memory") else "latency"
        constraints = replace(skill.constraints, objective=objective)
        choice = self._optimal(skill, constraints)
        engine = choice.engine
        explanation = choice.explanation
        table = decisions.read_table(self.path)
        entry = None  # the entry the choice was made from (none read: no measurement, or the
        # table, the fingerprint or the precision ruled it out, as the explanation says)
        if choice.bucket is not None and (choice or choice.excluded):
            key = decisions.entry_key(skill.model_class_name, decisions.weights_hash(skill),
                                      choice.bucket, skill.precision)  # fmt: skip
            entry = table.entries.get(key)
        if use_case == "memory" and entry is not None and choice.timings_ms:
            peaks = {name: entry["engines"][name].get("peak_rss_delta_bytes")
                     for name in choice.timings_ms}  # fmt: skip
            known = {n: p for n, p in peaks.items() if isinstance(p, (int, float))}
            if known:
                ranked = sorted(known, key=lambda n: (known[n], choice.timings_ms[n]))
                engine = ranked[0]
                versus = "".join(f" vs {n} +{known[n] / 2**20:.0f} MB" for n in ranked[1:])
                explanation = (f"chose {engine} for memory: its first call grew the process by "
                               f"+{known[engine] / 2**20:.0f} MB{versus} at "
                               f"{choice.bucket.describe()}, measured "
                               f"{str(entry.get('measured_at', '?'))[:10]}; by latency: "
                               f"{choice.explanation}")  # fmt: skip
        answer: dict[str, Any] = {
            "use_case": use_case,
            "measured": engine is not None,
            "engine": engine,
            "explanation": explanation,
            "table": str(table.path),
        }
        if engine is not None:
            route = decisions.ROUTES[engine]
            answer["recommended"] = route.target
            answer["load_with"] = {"device": route.target, **({"native": False}
                                                                if route.native_off else {})}  # fmt: skip
        else:
            fixed = skill.get_default_device_with_mojo_max()
            answer["recommended"] = fixed
            answer["load_with"] = {"device": fixed}
            answer["note"] = (
                f"{explanation}. So this is the fixed priority order's first target "
                f"present here, not a measured choice; benchmark_hardware_targets (or "
                f"`generate-skills tune --skill {skill.model_class_name} --model ...`) measures "
                f"this model on this machine, and later answers come from that measurement")  # fmt: skip
        if entry is not None:
            answer["bucket"] = choice.bucket.describe()
            answer["measured_at"] = entry.get("measured_at")
            answer["engines"] = {name: _measured_figures(name, row, skill, constraints)
                                 for name, row in entry["engines"].items()}  # fmt: skip
        return answer


def _measured_figures(name: str, row: dict[str, Any], skill: Any,
                      constraints: Constraints) -> dict[str, Any]:  # fmt: skip
    """One engine's row of a table entry, as a recommendation shows it."""
    parity = row.get("parity") or {}
    peak = row.get("peak_rss_delta_bytes")
    figures = {key: row[key] for key in ("median_ms", "p95_ms", "throughput", "first_call_s")
               if key in row}  # fmt: skip
    figures["peak_growth_mb"] = round(peak / 2**20, 1) if isinstance(peak, (int, float)) else None
    figures["max_relative_error"] = parity.get("max_relative_error")
    figures["not_eligible"] = decisions.why_not(name, row, skill, constraints)  # None: eligible
    return figures


# ---- the report --------------------------------------------------------------------------------
def _cell(value: Any, width: int, spec: str) -> str:
    return f"{value:>{width}{spec}}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


def verdict(name: str, row: dict[str, Any], choice: Choice) -> str:
    if row.get("fallback_reason"):
        return f"fell back: {row['fallback_reason']}"
    if name == choice.engine:
        return "chosen"
    if name in choice.excluded:
        return f"not eligible: {choice.excluded[name]}"
    return "slower" if choice.engine else "-"


def format_report(reports: list[ShapeReport], model_label: str = "") -> str:
    """A table per shape (engine, median, p95, throughput, first call, peak memory, parity,
    verdict) and the choice, explained."""
    lines: list[str] = []
    for report in reports:
        entry = report.entry
        lines.append("")
        lines.append(f"{entry['model_class']}{model_label} at {report.shape[0]}x{report.shape[1]} "
                     f"({report.bucket.describe()}), {entry['precision']}, {entry['repeats']} "
                     f"alternating rounds")  # fmt: skip
        lines.append(f"  {'engine':<12}{'median ms':>10}{'p95 ms':>10}{'items/s':>10}"
                     f"{'first call s':>14}{'peak MB':>9}  {'parity':<17}verdict")  # fmt: skip
        for name, row in entry["engines"].items():
            parity = row.get("parity") or {}
            if parity.get("reference"):
                proof = "reference"
            elif parity:
                proof = f"{'pass' if parity.get('passed') else 'FAIL'} " \
                        f"{parity.get('max_relative_error', float('nan')):.1e}"  # fmt: skip
            else:
                proof = "-"
            peak = row.get("peak_rss_delta_bytes")
            peak = peak / 2**20 if isinstance(peak, (int, float)) else None
            lines.append(f"  {name:<12}{_cell(row.get('median_ms'), 10, '.3f')}"
                         f"{_cell(row.get('p95_ms'), 10, '.3f')}{_cell(row.get('throughput'), 10, '.1f')}"
                         f"{_cell(row.get('first_call_s'), 14, '.3f')}{_cell(peak, 9, '.1f')}  "
                         f"{proof:<17}{verdict(name, row, report.choice)}")  # fmt: skip
        lines.append(f"  choice: {report.choice.explanation}")
        lines.extend(f"  note: {note}" for note in report.notes)
    return "\n".join(lines)

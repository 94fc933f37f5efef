"""One cross-backend report for one skill: every engine present, each in its own process and
alternated, over a grid of (batch, sequence) shapes.

    generate-skills bench backends --skill BertModel --model DIR [--shapes 1x16,1x128,32x128]
    python -m skillmill.measure.bench.backends --worker SPEC      (one engine, one round)

A round starts one process per engine (``harness.json_from_module``), the order rotating from
round to round so a busy moment on the shared machine falls on all of them alike.  Inside its
process an engine is measured by the backend manager's own code
(``UnifiedBackendManager.measure_engines``: the first call on its own with the peak-memory
growth and the parity verdict against PyTorch eager float32, warm-up calls, timed calls), once
per shape, so its peak resident memory is its own.  A call that ran on another engine than the
one asked for (``result.backend`` / ``result.engine`` not that engine's) marks that engine
"fell back" at that shape, with the reason, and none of its timings count.  Compiled engines
(max, mojo) run only within a compile budget: a process still compiling when the budget ends is
stopped and the engine reported as not compiled in time.

The results are one JSON document (``FORMAT``, ``VERSION``; ``backends_report`` writes the
table, the plots and the HTML page from it)."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Iterable

import numpy as np

from skillmill.runtime.precision import resolve_precision

from ..harness import json_from_module
from ..manager import UnifiedBackendManager, _status_bytes, machine_summary, timing_summary

FORMAT = "skillmill-bench-backends"
VERSION = 1
ROUNDS = 2
REPEATS = 10
WARM_UP = 2
# Seconds a compiled engine (max, mojo) may take for its whole process before it is stopped and
# reported as not compiled within the budget; a MAX compile of MiniLM is about a minute cold.
COMPILE_BUDGET_S = 300.0
# Seconds any other engine's process may take.
TIMEOUT_S = 900.0
COMPILED = ("max", "mojo")
# What an engine's status at a shape can be.
MEASURED, FELL_BACK, ABSENT, FAILED = "measured", "fell back", "absent", "failed"


# ---- the worker: one engine, every shape, in its own process ---------------------------------
def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    threads = spec.get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    manager = UnifiedBackendManager()
    name = spec["engine"]
    started = time.perf_counter()
    base = manager.base_skill(spec["class_name"], spec["model"], spec.get("precision"))
    loaded = time.perf_counter() - started
    shapes: dict[str, Any] = {}
    budget = spec.get("first_call_budget_s")
    for batch_size, seq_len in spec["shapes"]:
        label = f"{batch_size}x{seq_len}"
        _, bucket, rows, times = manager.measure_engines(base, (batch_size, seq_len), {name: None},
                                                         spec["repeats"], spec["warm_up"])  # fmt: skip
        row = rows[name]
        row["bucket"] = bucket.key()
        row["times_ms"] = [round(t * 1e3, 4) for t in times.get(name, [])]
        # The peak since this shape's first call began (the manager reset it there).
        row["peak_rss_bytes"] = _status_bytes("VmHWM")
        shapes[label] = row
        first = row.get("first_call_s")
        if budget and isinstance(first, (int, float)) and first > budget:
            rest = [f"{b}x{s}" for b, s in spec["shapes"]][len(shapes) :]
            for later in rest:
                shapes[later] = {"skipped": f"first call at {label} took {first:.0f} s, over "
                                            f"the compile budget of {budget:.0f} s"}  # fmt: skip
            break
    return {"engine": name, "load_s": round(loaded, 3), "shapes": shapes,
            "process_s": round(time.perf_counter() - started, 3)}  # fmt: skip


# ---- the driver ---------------------------------------------------------------------------------
def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: other work on a shared machine moves every figure."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def plan_engines(class_name: str, engines: Iterable[str] | None,
                 include_compiled: bool = True) -> dict[str, str | None]:  # fmt: skip
    """{engine: None to run it, else why not}.  Default: every engine present here for the
    class (the compiled ones unless left out).  An engine named explicitly is always run, even
    where it is absent: the skill then falls back, and the report shows that it did."""
    from skillmill import skill_class
    from skillmill.runtime import decisions

    cls = skill_class(class_name)
    if engines is None:
        return UnifiedBackendManager.engines_present(cls, include_compiled)
    wanted = list(dict.fromkeys(engines))
    unknown = [n for n in wanted if n not in decisions.ROUTES]
    if unknown:
        raise ValueError(f"unknown engines {', '.join(unknown)}; known: "
                         f"{', '.join(decisions.ROUTES)}")  # fmt: skip
    return {name: None for name in wanted}


def describe_this_machine(threads: int) -> dict[str, Any]:
    """``measure.machine.describe_machine`` (CPU, SIMD, the native ISA, the measured FMA peak)
    plus its one-line form; the line alone where the native library is not built."""
    try:
        from ..machine import describe_machine, machine_line

        machine = describe_machine(threads)
        machine["line"] = machine_line(machine)
        return machine
    except Exception:  # noqa: BLE001  (machine_summary says why in its line)
        return {"line": machine_summary()}


def run_backends(class_name: str, model: str, shapes: Iterable[tuple[int, int]],
                 engines: Iterable[str] | None = None, rounds: int = ROUNDS,
                 repeats: int = REPEATS, warm_up: int = WARM_UP, threads: int | None = None,
                 precision: str | None = None, include_compiled: bool = True,
                 compile_budget_s: float = COMPILE_BUDGET_S, timeout_s: float = TIMEOUT_S,
                 env: dict[str, str] | None = None, progress: bool = False,
                 echo: Callable[[str], Any] | None = None,
                 command: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Measure every planned engine over ``shapes`` in ``rounds`` alternating rounds of one
    process per engine; returns the report document (``FORMAT``).  ``env``: added to each
    worker's environment.  ``progress``: a tqdm bar over the processes on stderr."""
    if rounds < 1 or repeats < 1:
        raise ValueError("rounds and repeats must be at least 1")
    shapes = [(int(b), int(s)) for b, s in shapes]
    echo = echo or (lambda line: None)
    threads = threads or os.cpu_count() or 1
    planned = plan_engines(class_name, engines, include_compiled)
    machine = describe_this_machine(threads)
    echo(machine["line"])
    worker_env = {**os.environ, "OMP_NUM_THREADS": str(threads),
                  "SKILLMILL_NATIVE_THREADS": str(threads), **(env or {})}  # fmt: skip
    spec = {"class_name": class_name, "model": model, "precision": precision, "threads": threads,
            "shapes": [list(s) for s in shapes], "repeats": repeats, "warm_up": warm_up}  # fmt: skip
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = _load_average()
    runnable = [name for name, why in planned.items() if why is None]
    runs, stopped = _rounds(runnable, rounds, spec, compile_budget_s, timeout_s, worker_env,
                            progress, echo)  # fmt: skip
    results: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "command": command,
        "model_class": class_name, "model": model,
        "precision": resolve_precision(precision)[0],
        "shapes": [f"{b}x{s}" for b, s in shapes], "rounds": rounds, "repeats": repeats,
        "warm_up": warm_up, "threads": threads, "compile_budget_s": compile_budget_s,
        "started_at": started_at,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_before": load_before, "load_after": _load_average(),
        "machine": machine, "engines": {},
    }  # fmt: skip
    for name, why in planned.items():
        results["engines"][name] = combine(name, why, runs.get(name, []), stopped.get(name), shapes)
    results["fastest"] = fastest_by_shape(results)
    return results


def _rounds(runnable: list[str], rounds: int, spec: dict[str, Any], compile_budget_s: float,
            timeout_s: float, env: dict[str, str], progress: bool,
            echo: Callable[[str], Any]) -> tuple[dict[str, list[dict]], dict[str, str]]:  # fmt: skip
    """``rounds`` rounds of one worker process per engine, the order rotating each round:
    (each engine's worker answers, why an engine's later rounds were not run)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in runnable}
    stopped: dict[str, str] = {}  # engine -> why its later rounds were not run
    bar = None
    if progress and runnable:
        from tqdm import tqdm

        bar = tqdm(total=rounds * len(runnable), desc="bench backends", unit="process",
                   file=sys.stderr)  # fmt: skip
    for round_index in range(rounds):
        turn = round_index % max(len(runnable), 1)
        for name in runnable[turn:] + runnable[:turn]:
            if bar is not None:
                bar.set_postfix_str(f"round {round_index + 1}: {name}")
            if name in stopped:
                if bar is not None:
                    bar.update(1)
                continue
            compiled = name in COMPILED
            limit = compile_budget_s if compiled else timeout_s
            job = {
                **spec,
                "engine": name,
                "first_call_budget_s": compile_budget_s if compiled else None,
            }
            if bar is None:  # the bar names the round and engine itself
                echo(f"round {round_index + 1}/{rounds}: {name}")
            row, why, stderr = json_from_module("skillmill.measure.bench.backends",
                                                ["--worker", json.dumps(job)], limit, env)  # fmt: skip
            if row is None:
                if stderr is None and compiled:
                    why = f"did not compile and run within the compile budget of {limit:.0f} s"
                elif stderr is None:
                    why = f"no result after {limit:.0f} s"
                stopped[name] = f"round {round_index + 1}: {why}"
            else:
                runs[name].append(row)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return runs, stopped


def combine(name: str, absent: str | None, runs: list[dict[str, Any]], stopped: str | None,
            shapes: list[tuple[int, int]]) -> dict[str, Any]:  # fmt: skip
    """One engine's rows per shape from its rounds: the timed calls of every round pooled (a
    shape that fell back in any round keeps no timing), the first round's first call, the
    worst parity error, the largest peak memory."""
    from skillmill.runtime import decisions

    engine: dict[str, Any] = {"target": decisions.ROUTES[name].target, "shapes": {}}
    for batch_size, seq_len in shapes:
        label = f"{batch_size}x{seq_len}"
        cell: dict[str, Any]
        rows = [run["shapes"][label] for run in runs if label in run.get("shapes", {})]
        if absent:
            cell = {"status": ABSENT, "reason": absent}
        elif not rows:
            cell = {"status": FAILED, "reason": stopped or "no round returned this shape"}
        elif any(r.get("fallback_reason") for r in rows):
            reason = next(r["fallback_reason"] for r in rows if r.get("fallback_reason"))
            cell = {"status": FELL_BACK, "reason": reason}
        elif any(r.get("skipped") for r in rows):
            cell = {
                "status": FAILED,
                "reason": next(r["skipped"] for r in rows if r.get("skipped")),
            }
        else:
            cell = _measured_cell(rows, batch_size)
            if stopped:
                cell["note"] = f"later rounds not run: {stopped}"
        engine["shapes"][label] = cell
    statuses = {cell["status"] for cell in engine["shapes"].values()}
    engine["status"] = MEASURED if statuses == {MEASURED} else \
        next(s for s in (FELL_BACK, FAILED, ABSENT, MEASURED) if s in statuses)  # fmt: skip
    reasons = [c["reason"] for c in engine["shapes"].values() if c.get("reason")]
    engine["reason"] = reasons[0] if reasons else None
    return engine


def _measured_cell(rows: list[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    times = [t / 1e3 for r in rows for t in r.get("times_ms", [])]
    parities = [r.get("parity") or {} for r in rows]
    worst = max(parities, key=lambda p: float(p.get("max_relative_error") or 0.0))
    peaks = [r["peak_rss_bytes"] for r in rows if isinstance(r.get("peak_rss_bytes"), int)]
    growths = [r["peak_rss_delta_bytes"] for r in rows
               if isinstance(r.get("peak_rss_delta_bytes"), int)]  # fmt: skip
    cell = {"status": MEASURED, **(timing_summary(times, batch_size) if times else {}),
            "round_medians_ms": [round(float(np.median(r["times_ms"])), 4) for r in rows
                                 if r.get("times_ms")],
            "first_call_s": rows[0].get("first_call_s"),
            "first_call_s_rounds": [r.get("first_call_s") for r in rows],
            "peak_rss_bytes": max(peaks) if peaks else None,
            "peak_rss_delta_bytes": max(growths) if growths else None,
            "precision": rows[0].get("precision"), "device": rows[0].get("device"),
            "max_relative_error": worst.get("max_relative_error"),
            "tolerance": worst.get("tolerance"),
            "parity_passed": all(p.get("passed") is True for p in parities),
            "reference": bool(worst.get("reference"))}  # fmt: skip
    return cell


def fastest_by_shape(results: dict[str, Any]) -> dict[str, str | None]:
    """Per shape, the engine with the lowest median among those measured whose parity passed."""
    best: dict[str, str | None] = {}
    for label in results["shapes"]:
        cells = {name: engine["shapes"][label] for name, engine in results["engines"].items()}
        fair = {n: c["median_ms"] for n, c in cells.items()
                if c["status"] == MEASURED and c.get("parity_passed") and "median_ms" in c}  # fmt: skip
        best[label] = min(fair, key=fair.get) if fair else None
    return best


def record_decisions(results: dict[str, Any], path: Any = None) -> list[str]:
    """Write a report's figures to the decision table ``device="auto"`` reads (``path``: default
    the user's table), one entry per shape: each engine's median, p95, throughput, first call,
    peak-memory growth and parity verdict, measured each in its own process; an engine that fell
    back or failed keeps its reason.  Returns the keys written."""
    from skillmill import load_skill
    from skillmill.runtime import decisions

    model = results["model"]
    skill = load_skill(results["model_class"], model=model, device="cpu",
                       precision=results.get("precision"))  # fmt: skip
    entries = {}
    for label in results["shapes"]:
        batch_size, seq_len = (int(v) for v in label.split("x"))
        bucket = decisions.shape_bucket(skill, skill.example_inputs(batch_size, seq_len))
        rows = {name: _table_row(engine, label) for name, engine in results["engines"].items()}
        entry = decisions.new_entry(skill, bucket, (batch_size, seq_len), rows,
                                    results["repeats"] * results["rounds"])  # fmt: skip
        entry["measured_by"] = "bench backends: each engine in its own process"
        entries[decisions.entry_key(skill.model_class_name, entry["weights"], bucket,
                                    skill.precision)] = entry  # fmt: skip
    from pathlib import Path

    note = decisions.record(entries, Path(path) if path else None)
    if note:
        print(note, file=sys.stderr)
    return list(entries)


def _table_row(engine: dict[str, Any], label: str) -> dict[str, Any]:
    cell = engine["shapes"].get(label, {})
    row: dict[str, Any] = {"target": engine["target"]}
    if cell.get("status") != MEASURED or "median_ms" not in cell:
        row["fallback_reason"] = cell.get("reason") or f"{cell.get('status', 'not measured')}"
        return row
    for key in ("median_ms", "p95_ms", "throughput", "runs", "first_call_s",
                "peak_rss_delta_bytes", "precision", "device"):  # fmt: skip
        if cell.get(key) is not None:
            row[key] = cell[key]
    row["parity"] = {"max_relative_error": cell.get("max_relative_error"),
                     "tolerance": cell.get("tolerance"), "passed": bool(cell.get("parity_passed")),
                     **({"reference": True} if cell.get("reference") else {})}  # fmt: skip
    return row


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        print(json.dumps(_worker(json.loads(argv[1]))))
        return 0
    print("run it as `generate-skills bench backends --skill CLASS --model DIR`", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

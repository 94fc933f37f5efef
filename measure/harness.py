"""The one harness every sweep and benchmark runs on.

- ``run_parallel``: a check over many model types in forked workers, each with a timeout and a
  memory cap, so one model that hangs or blows memory fails alone (recorded, never skipped);
  ``on_result`` is called as each row lands (progress, and reports rewritten as they go).
- ``LocalRunner``: the sweeps' runner on this machine (``run`` per type, ``run_chunks`` per chunk
  of types); measure/sweeps/ray_runner.py's ``RayRunner`` is the same interface on a Ray cluster.
- ``summarise``: passes, share, failing floor families and counts by status, as sweeps print.
- ``json_from_module``: ``python -m <module> *args`` in its own process with a time limit, its
  last JSON line as the answer (a MAX abort or a spinning thread pool costs that process only).
- ``rows_to_keep`` / ``resume_plan``: what ``coverage --resume`` keeps and measures.
- ``merge_rows``: rows measured on another machine (``coverage --merge``) laid over a report."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import re
import resource
import signal
import subprocess
import sys
import time
from typing import Any, Callable

from skillmill.registry.support import NOT_MEASURED

from .constants import FLOOR_TYPES

MEMORY_LIMIT_BYTES = 6 * 1024**3


def _address_space_bytes() -> int:
    """This process's mapped address space (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _child(check: Callable[[str], dict], item: str, conn) -> None:
    # The cap counts on top of what the worker inherits: a CUDA build of torch maps several GB
    # of libraries before any model exists (a flat 6 GiB failed every type on an H100 machine).
    limit = _address_space_bytes() + MEMORY_LIMIT_BYTES
    try:
        # The soft limit only: a check that starts a program which reserves address space it
        # never touches (Chromium: V8's sandbox, wasm guard regions) lifts it for that start.
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ValueError, OSError):
        pass
    import torch

    torch.set_num_threads(1)
    try:
        result = check(item)
    except BaseException as exc:  # noqa: BLE001
        result = {"status": "fail", "stage": "worker", "reason": f"{type(exc).__name__}: {exc}"}
    try:
        conn.send(result)
    finally:
        conn.close()
        os._exit(0)


def run_parallel(items: list[str], check: Callable[[str], dict], jobs: int = 2,
                 timeout: float = 120.0, on_result: Callable[[str, dict], None] | None = None,
                 retry_timeouts_alone: bool = True) -> dict[str, dict[str, Any]]:  # fmt: skip
    """{item: check(item)}; a worker that dies or times out yields a failure row saying so.
    Every row records the ``seconds`` it took.  An item that timed out beside other work is
    measured once more alone, after the rest, before it counts as a timeout (a busy machine
    slowed it, or it is slow).  Import heavy modules in the parent first: forked workers then
    start warm."""
    ctx = mp.get_context("fork")
    pending, running, results = list(items), {}, {}
    alone: list[str] = []  # timed out beside others: measured again with nothing else running
    while pending or running or alone:
        if not pending and not running and alone:
            pending.append(alone.pop(0))
        limit = 1 if item_is_retry(pending, results) else jobs
        while pending and len(running) < limit:
            item = pending.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(check, item, child), daemon=True)
            proc.start()
            child.close()
            running[item] = (proc, parent, time.perf_counter())
        time.sleep(0.02)
        for item, (proc, conn, started) in list(running.items()):
            elapsed = time.perf_counter() - started
            result = None
            if conn.poll():
                try:
                    result = conn.recv()
                except EOFError:
                    result = None
                proc.join(5)
            if result is None and not proc.is_alive():
                code = proc.exitcode
                why = "killed (out of memory?)" if code and code < 0 else f"exited with {code}"
                result = {"status": "fail", "stage": "worker", "reason": f"WorkerDied: {why}"}
            elif result is None and elapsed > timeout:
                result = {"status": "fail", "stage": "timeout",
                          "reason": f"Timeout: no result after {timeout:.0f} s"}  # fmt: skip
            if result is None:
                continue
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            conn.close()
            del running[item]
            result.setdefault("seconds", round(elapsed, 2))
            if result.get("stage") == "timeout":
                if item in results:  # the second time, alone
                    result["note"] = "timed out twice, the second time measured alone"
                elif retry_timeouts_alone and jobs > 1:
                    results[item] = result
                    alone.append(item)
                    continue
            elif item in results and results[item].get("stage") == "timeout":
                result["note"] = (f"timed out beside other work ({results[item]['seconds']} s); "
                                  f"measured again alone")  # fmt: skip
            results[item] = result
            if on_result:
                on_result(item, result)
    return {item: results[item] for item in items}


def item_is_retry(pending: list[str], results: dict[str, dict]) -> bool:
    """Whether the next pending item is a timeout's second, solo measurement."""
    return bool(pending) and pending[0] in results


class LocalRunner:
    """The coverage sweeps' runner on this machine: ``run`` checks each item in a forked worker
    (``run_parallel``), ``run_chunks`` runs each chunk of items in a thread (MAX's chunks are
    subprocesses of their own), ``jobs`` at a time.  ``RayRunner`` (measure/sweeps/ray_runner.py)
    has the same two methods; a sweep takes either."""

    on_progress: Callable[[str], None] | None = None  # the Ray runner says where tasks run

    def run(self, items: list[str], check: Callable[[str], dict], *, jobs: int = 2, timeout: float = 120.0,
            on_result: Callable[[str, dict], None] | None = None, warm_up: Callable[[], Any] | None = None,
            stamp: Callable[[], str] | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
        """``run_parallel``, after ``warm_up`` in this process (forked workers then start warm).
        ``stamp`` is the Ray runner's (``measured_on``); a row measured here has none."""
        if warm_up:
            warm_up()
        return run_parallel(items, check, jobs=jobs, timeout=timeout, on_result=on_result)

    def run_chunks(self, chunks: list[list[str]], work: Callable[[list[str]], dict[str, dict]], *,
                   jobs: int = 2, timeout: float | None = None,
                   on_rows: Callable[[list[str], dict[str, dict]], None],
                   stamp: Callable[[], str] | None = None) -> None:  # fmt: skip
        """``work(chunk)`` -> {item: row} for every chunk, ``jobs`` chunks at a time; ``on_rows``
        as each chunk lands.  ``work`` keeps its own time limit (``timeout`` is the Ray
        runner's backstop)."""
        from concurrent.futures import ThreadPoolExecutor, as_completed

        # Threads only wait on the chunks' subprocesses (no fork from a threaded parent).
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(work, chunk): chunk for chunk in chunks}
            for future in as_completed(futures):
                on_rows(futures[future], future.result())

    def close(self) -> None:
        pass


def machine_stamp() -> str:
    """What a row was measured on: the CPU, its cores and the torch version (``measured_on``;
    generator/coverage.py counts a stamp with this machine's cores and torch as measured here)."""
    import torch

    from skillmill.runtime.cpu_features import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}"


def summarise(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A sweep's one-line summary: passes, share, the floor families failing, counts by status."""
    passed = [t for t, r in rows.items() if r["status"] == "pass"]
    return {
        "passed": len(passed),
        "total": len(rows),
        "share": round(len(passed) / max(len(rows), 1), 4),
        "floor_failing": [t for t in FLOOR_TYPES if t in rows and t not in passed],
        "by_status": {s: sum(r["status"] == s for r in rows.values())
                      for s in sorted({r["status"] for r in rows.values()})},  # fmt: skip
    }


def json_from_module(module: str, args: list[str], timeout: float,
                     env: dict[str, str] | None = None) -> tuple[Any, str, str | None]:  # fmt: skip
    """Run ``python -m module *args``: (its last JSON line or None, why not, its stderr; None if
    it timed out)."""
    cmd = [sys.executable, "-m", module, *args]
    # Its own process group, all of it stopped on a timeout: a MAX or Mojo compile runs child
    # processes that would otherwise go on taking the cores from the next measurement.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, start_new_session=True) as proc:  # fmt: skip
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return None, f"no result after {timeout:.0f} s", None
    proc = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1]), "", proc.stderr
    return None, (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1], proc.stderr


# -- resume and merge ------------------------------------------------------------------------
class RowRefused(ValueError):
    """A row ``merge_rows`` will not mix into a report (the message says which and why)."""


def rows_to_keep(rows: dict[str, dict], retry: str | None = None) -> dict[str, dict]:
    """What --resume keeps of a report: every row with a verdict, except failures whose reason
    or op matches ``retry`` (a regular expression)."""
    again = re.compile(retry) if retry else None

    def keep(row: dict) -> bool:
        if row["status"] == NOT_MEASURED:
            return False
        text = f"{row.get('reason', '')} {row.get('op', '')}"
        return not (again and row["status"] != "pass" and again.search(text))

    return {t: r for t, r in rows.items() if keep(r)}


def resume_plan(rows: dict[str, dict], chosen: list[str],
                retry: str | None = None) -> tuple[dict[str, dict], list[str]]:  # fmt: skip
    """(the report's rows that --resume keeps, the chosen types it measures): a chosen type is
    measured unless its row has a verdict to keep; every other row stays, a ``not_measured`` one
    of a type outside ``--types`` too (it used to be dropped from the rewritten report)."""
    keep = rows_to_keep(rows, retry)
    todo = [t for t in chosen if t not in keep]
    return {t: r for t, r in rows.items() if t not in todo}, todo


def merge_rows(report: dict[str, dict], lines: list[str], base_classes: dict[str, str],
               target: str = "cpu") -> dict[str, dict]:  # fmt: skip
    """The report's rows with the JSON-lines rows of a sweep run elsewhere laid over them
    (``python -m skillmill.measure.sweeps.max --jsonl FILE``, e.g. on a machine with more
    cores).  Each row keeps its ``measured_on`` stamp; a row for another MAX target, an unknown
    type or without a verdict is refused (``RowRefused``) rather than mixed into the report."""
    merged = dict(report)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RowRefused(f"line {number}: not JSON ({exc})") from None
        model_type = row.pop("model_type", None)
        if model_type not in base_classes:
            raise RowRefused(f"line {number}: {model_type!r} is not a base model type")
        if not row.get("status") or row["status"] == NOT_MEASURED:
            raise RowRefused(f"line {number} ({model_type}): no verdict")
        stamp = row.get("measured_on")
        if not stamp or f"MAX target {target}," not in stamp:
            raise RowRefused(f"line {number} ({model_type}): measured_on {stamp!r} is not "
                             f"a MAX target {target} run; this report is for that target only")  # fmt: skip
        row.setdefault("class", base_classes[model_type])
        merged[model_type] = row
    return merged

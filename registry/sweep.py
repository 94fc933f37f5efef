"""Run a check over many model types in forked workers, each with a timeout and a memory cap,
so one model that hangs or blows memory fails alone (recorded, never skipped)."""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from typing import Any, Callable

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
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
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
                 ) -> dict[str, dict[str, Any]]:
    """{item: check(item)}; a worker that dies or times out yields a failure row saying so.
    Import heavy modules in the parent first: forked workers then start warm."""
    ctx = mp.get_context("fork")
    pending, running, results = list(items), {}, {}
    while pending or running:
        while pending and len(running) < jobs:
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
                          "reason": f"Timeout: no result after {timeout:.0f} s"}
            if result is None:
                continue
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            conn.close()
            del running[item]
            result.setdefault("seconds", round(elapsed, 2))
            results[item] = result
            if on_result:
                on_result(item, result)
    return {item: results[item] for item in items}

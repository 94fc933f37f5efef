"""What an executor run really did, op by op: calls and seconds on native kernels, as views, and
in numpy.

"numpy" is every call that ran an op's numpy reference: the op has no native kernel, or its
kernel was bound but declined these arguments at run time (a layout or attribute it does not
handle).  Counting the binders instead (``Executor.report``) called such a node native although
numpy ran it.  "view" is a reshape-like op that returned a view of its input (no arithmetic).

Only a caller who asks fills one (``Executor.profile``): a normal run times nothing.

    report = native_model.profile(feeds, runs=3)
    report["numpy_time_share"], report["ops"]["Gather"]["numpy_seconds"]
"""

from __future__ import annotations

from typing import Any, Callable

PATHS = ("native", "view", "numpy")


class RunProfile:
    """Calls and seconds per (op, path), summed over every run it was handed to."""

    def __init__(self) -> None:
        self.runs = 0
        self._cells: dict[str, dict[str, list[float]]] = {}

    def add(self, op: str, path: str, seconds: float) -> None:
        row = self._cells.get(op)
        if row is None:
            row = self._cells[op] = {p: [0, 0.0] for p in PATHS}
        cell = row[path]
        cell[0] += 1
        cell[1] += seconds

    def report(self) -> dict[str, Any]:
        """Totals and shares per path, and one row per op, the most expensive first."""
        totals = {p: [0, 0.0] for p in PATHS}
        ops: dict[str, dict[str, Any]] = {}
        for op, row in self._cells.items():
            entry: dict[str, Any] = {"calls": 0, "seconds": 0.0}
            for path, (calls, seconds) in row.items():
                totals[path][0] += calls
                totals[path][1] += seconds
                entry["calls"] += calls
                entry["seconds"] += seconds
                if calls:
                    entry[f"{path}_calls"] = int(calls)
                    entry[f"{path}_seconds"] = seconds
            ops[op] = entry
        seconds = sum(s for _, s in totals.values()) or 1e-12
        calls = sum(c for c, _ in totals.values()) or 1
        out: dict[str, Any] = {"runs": self.runs, "seconds_per_run": seconds / max(self.runs, 1)}
        for path, (count, spent) in totals.items():
            out[f"{path}_calls"] = int(count)
            out[f"{path}_time_share"] = spent / seconds
            out[f"{path}_call_share"] = count / calls
        out["ops"] = dict(sorted(ops.items(), key=lambda kv: -kv[1]["seconds"]))
        return out


def path_of(kernel_is_native: bool, op: str, kernel: Callable[..., Any], fallbacks_before: int,
            view_ops: frozenset[str] | set[str]) -> str:  # fmt: skip
    """Which path a finished call of a node's kernel took: a bound native kernel that counted a
    fallback during the call ran numpy."""
    if kernel_is_native:
        return "numpy" if getattr(kernel, "fallbacks", 0) > fallbacks_before else "native"
    return "view" if op in view_ops else "numpy"

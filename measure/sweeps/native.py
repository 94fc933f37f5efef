"""Native-executor coverage over the registry: for each base model type, build its tiny model,
convert it from PyTorch, optimise, run it on the executor and compare every output with PyTorch's
(relative error = max|ir - torch| / max|torch| <= 1e-4) at two input shapes (the second one
checks that the batch/sequence dims stayed dynamic).

    generate-skills coverage --backend native [--types bert --types gpt2] [-j 2]   # the report
    python -m skillmill.measure.sweeps.native [--types bert,gpt2] [--floor] [--jobs 2]  # print only

Each type runs in a forked worker with a timeout (``measure/harness.py``), so one crash or hang
costs one row.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from skillmill.ir.numerics import relative_error

from ..constants import FLOOR_TYPES, SHAPES, SPEED_SHAPE, TOLERANCE
from ..harness import run_parallel, summarise


def base_model_types() -> dict[str, str]:
    """model_type -> base model class name, from the committed registry snapshot."""
    from skillmill.registry import load_registry

    return dict(sorted(load_registry().base_classes.items()))


def _torch_outputs(model: Any, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
    """The torch path's outputs, flattened and named exactly as skills name them."""
    import torch

    from skillmill.runtime.outputs import flatten_outputs

    with torch.inference_mode():
        flat = flatten_outputs(model(**feeds))
    return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in flat.items()}


def check_native(model_type: str, shapes: tuple[tuple[int, int], ...] = SHAPES) -> dict[str, Any]:
    """Convert + run + compare one model type; never raises (the reason is in the result).

    status: pass, mismatch (ran, differs or lacks an output), unsupported (an op without an IR
    lowering), export_failed (torch.export or lowering failed), error (anything else)."""
    from skillmill.ir.errors import ConversionError, UnsupportedOp
    from skillmill.ir.executor import NativeModel
    from skillmill.registry.dummy_inputs import dummy_inputs

    started = time.perf_counter()
    result: dict[str, Any] = {"status": "error", "stage": "registry"}
    try:
        class_name = base_model_types().get(model_type)
        if class_name is None:
            return {"status": "error", "stage": "registry", "reason": "registry has no base class"}
        result["class"] = class_name
        result["stage"] = "tiny_model"
        model = coverage_model(class_name, result)
        (batch, seq), worst = shapes[0], 0.0
        result["stage"] = "inputs"
        example = dummy_inputs(model, batch_size=batch, seq_len=seq, seed=0)
        result["stage"] = "convert"
        native = NativeModel.from_torch(model, example)
        report = native.report()
        result.update(nodes=report["nodes"], numpy_nodes=report["numpy_nodes"])
        for index, (b, s) in enumerate(shapes):
            result["stage"] = f"run {b}x{s}"
            feeds = dummy_inputs(model, batch_size=b, seq_len=s, seed=index + 1)
            want = _torch_outputs(model, feeds)
            try:
                got = native.run({k: v.numpy() for k, v in feeds.items() if hasattr(v, "numpy")})
            except Exception as exc:
                if index == 0:
                    raise
                # The export kept a dim static (an image size, say): the cpu runner then falls
                # back to torch for other shapes, so the first shape decides; the note says so.
                result["note"] = f"shape {b}x{s} not accepted: {type(exc).__name__}"
                break
            for name, ref in want.items():
                if name not in got:
                    return {**result, "status": "mismatch", "reason": f"output '{name}' missing"}
                err = relative_error(got[name], ref)
                if err == float("inf"):
                    why = f"shape {got[name].shape} != {ref.shape}" if got[name].shape != ref.shape else (
                        "values differ")  # fmt: skip
                    return {**result, "status": "mismatch", "reason": f"output '{name}': {why}"}
                worst = max(worst, err)
        result["max_rel_err"] = float(f"{worst:.3g}")
        result["status"] = "pass" if worst <= TOLERANCE else "mismatch"
        if result["status"] == "mismatch":
            result["reason"] = f"relative error {worst:.2e} > {TOLERANCE:g}"
        else:
            result["stage"] = "speed"
            result.update(speed_against_torch(model, native, dynamic="note" not in result))
        result.pop("stage")
    except UnsupportedOp as exc:
        result.update(status="unsupported", reason=_short(exc), op=exc.op)
    except ConversionError as exc:
        result.update(status="export_failed", reason=_short(exc))
    except Exception as exc:  # noqa: BLE001 — a coverage run records every failure
        result.update(status="error", reason=f"{type(exc).__name__}: {_short(exc)}")
    finally:
        result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def speed_against_torch(model: Any, native: Any, dynamic: bool = True, budget_s: float = 4.0) -> dict[str, Any]:
    """Native executor against PyTorch eager on the same inputs, alternated after two warm-up
    runs each, medians in ms; and what share of the executor's time and calls ran numpy
    (``Executor.profile``).  ``SPEED_SHAPE`` when the export kept its dims dynamic, else the
    first sweep shape.  The cpu target reads these (``registry.support.slower_reason``): where
    native is slower, PyTorch eager runs, with the figures as the reason.  Never raises.

    Both engines run on one thread: the sweep runs two workers at once on machines with few
    cores, and PyTorch's spinning OpenMP workers on an oversubscribed machine measured 30 to
    300 ms for a 1 ms model, a figure of the load rather than of the engine."""
    import torch

    from skillmill.native import control

    threads = torch.get_num_threads(), control.get_num_threads()
    torch.set_num_threads(1)
    control.set_num_threads(1)
    try:
        return {**_time_both(model, native, dynamic, budget_s), "speed_threads": 1}
    finally:
        torch.set_num_threads(threads[0])
        control.set_num_threads(threads[1])


def _time_both(model: Any, native: Any, dynamic: bool, budget_s: float) -> dict[str, Any]:
    import torch

    from skillmill.registry.dummy_inputs import dummy_inputs

    shapes = [SPEED_SHAPE, SHAPES[0]] if dynamic else [SHAPES[0]]
    last_error = ""
    for batch, seq in shapes:
        try:
            feeds = dummy_inputs(model, batch_size=batch, seq_len=seq, seed=7)
            arrays = {k: v.numpy() for k, v in feeds.items() if hasattr(v, "numpy")}
            native_times, torch_times = [], []
            with torch.inference_mode():
                for _ in range(2):
                    native.run(arrays)
                    model(**feeds)
                deadline = time.perf_counter() + budget_s
                while len(native_times) < 15 and (len(native_times) < 3 or time.perf_counter() < deadline):
                    started = time.perf_counter()
                    native.run(arrays)
                    native_times.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    model(**feeds)
                    torch_times.append(time.perf_counter() - started)
            profile = native.profile(arrays, runs=5)
        except Exception as exc:  # noqa: BLE001 — timing is a note on a passing row, never its verdict
            last_error = f"{type(exc).__name__}: {_short(exc)[:120]}"
            continue
        native_ms, torch_ms = 1e3 * float(np.median(native_times)), 1e3 * float(np.median(torch_times))
        return {"speed_shape": f"{batch}x{seq}", "native_ms": round(native_ms, 3),
                "torch_ms": round(torch_ms, 3), "speedup": round(torch_ms / native_ms, 3),
                "numpy_time_share": round(profile["numpy_time_share"], 3),
                "numpy_call_share": round(profile["numpy_call_share"], 3),
                "numpy_top_ops": _numpy_top_ops(profile)}  # fmt: skip
    return {"speed_error": last_error}


def _numpy_top_ops(profile: dict[str, Any], top: int = 3) -> dict[str, float]:
    """The ops that spent most of the executor's time in numpy, each as its share of the run:
    summed over the sweep, the ranking of the native kernels still to write."""
    total = profile["seconds_per_run"] * max(profile["runs"], 1) or 1e-12
    spent = {op: row.get("numpy_seconds", 0.0) for op, row in profile["ops"].items()}
    ranked = sorted((op for op in spent if spent[op] > 0), key=lambda op: -spent[op])[:top]
    return {op: round(spent[op] / total, 3) for op in ranked}


def coverage_model(class_name: str, row: dict[str, Any]) -> Any:
    """The tiny random model every coverage sweep measures (native and MAX alike), its all-zero
    parameters randomised; how many goes in ``row``."""
    from skillmill.registry.tiny import tiny_model

    model = tiny_model(class_name)
    randomised = randomise_zero_parameters(model)
    if randomised:
        row["randomised_zero_parameters"] = randomised
    return model


def randomise_zero_parameters(model: Any, seed: int = 0, std: float = 0.02) -> int:
    """Give every all-zero float parameter (MoE routers, gates and layer scales that models
    initialise to zero) seeded random values; returns how many.  Zero weights would leave those
    paths untested, and a zero router scores every expert alike, so top-k ties (broken
    differently by torch and numpy) would decide the routing."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    count = 0
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.is_floating_point() and parameter.numel() > 1 and not parameter.any():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
                count += 1
    return count


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def warm_up() -> None:
    """Import transformers' lazy modules and torch.export once in the parent, so forked
    workers start warm (seconds per type instead of tens)."""
    check_native("bert")


def run_coverage(model_types: list[str] | None = None, timeout: float = 300.0, jobs: int = 2,
                 on_result: Any = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """{model_type: row} for every base model type (or the given ones), in forked workers."""
    types = list(model_types) if model_types else list(base_model_types())
    warm_up()
    rows = run_parallel(types, check_native, jobs=jobs, timeout=timeout, on_result=on_result)
    return {t: normalise_row(row) for t, row in rows.items()}


def normalise_row(row: dict[str, Any]) -> dict[str, Any]:
    """The sweep runner reports a dead or timed-out worker as status "fail"; name it."""
    if row.get("status") == "fail":
        row = {**row, "status": "timeout" if row.get("stage") == "timeout" else "crash"}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", default=None, help="comma-separated model types (default: all base types)")
    parser.add_argument("--floor", action="store_true", help="only the issue's floor types")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    types = args.types.split(",") if args.types else (list(FLOOR_TYPES) if args.floor else None)

    def show(model_type: str, row: dict[str, Any]) -> None:
        err = f" rel err {row['max_rel_err']:.1e}" if row.get("max_rel_err") is not None else ""
        print(f"{model_type}: {row['status']}{err} {row.get('reason', '')[:150]}", flush=True)

    rows = run_coverage(types, args.timeout, args.jobs, on_result=show)
    summary = summarise(rows)
    print(f"{summary['passed']}/{summary['total']} pass ({100 * summary['share']:.1f}%); "
          f"by status {summary['by_status']}; floor failing: {summary['floor_failing'] or 'none'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

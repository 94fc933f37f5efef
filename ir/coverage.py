"""Native-executor coverage over the registry: for each base model type, build its tiny model,
convert it from PyTorch, optimise, run it on the executor and compare every output with PyTorch's
(relative error = max|ir - torch| / max|torch| <= 1e-4).

    python -m skillmill.ir.coverage [--types bert,gpt2] [--timeout 180] [--jobs 2] [--out DIR]

Each type runs in its own subprocess with a timeout, so one crash or hang costs one row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

TOLERANCE = 1e-4
# The floor: these must pass.
FLOOR_TYPES = ("bert", "roberta", "distilbert", "albert", "electra", "gpt2", "gpt_neox", "llama",
               "mistral", "qwen2", "phi", "gemma", "t5", "bart", "vit", "deit", "convnext", "resnet",
               "whisper", "clip")  # fmt: skip
# A fixed representative subset that CI runs on every push.
CI_SUBSET = ("bert", "gpt2", "llama", "vit", "resnet", "distilbert")


def base_model_types() -> dict[str, str]:
    """model_type -> base model class name, from the committed registry snapshot."""
    import yaml

    from skillmill.registry import __file__ as registry_init

    path = os.path.join(os.path.dirname(registry_init), "registry.yaml")
    with open(path) as handle:
        data = yaml.safe_load(handle)
    return {t: e["base_class"] for t, e in sorted(data["model_types"].items()) if e.get("base_class")}


def _tensors(outputs: Any) -> dict[str, np.ndarray]:
    import torch

    found: dict[str, np.ndarray] = {}
    items = outputs.items() if hasattr(outputs, "items") else enumerate(outputs)
    for key, value in items:
        if isinstance(value, torch.Tensor):
            found[str(key)] = value.detach().float().numpy() if value.is_floating_point() else value.numpy()
    return found


def check_native(model_type: str, batch: int = 2, seq: int = 8) -> dict[str, Any]:
    """Convert + run + compare one model type; never raises (the reason is in the result)."""
    import torch

    from skillmill.registry.dummy_inputs import dummy_inputs
    from skillmill.registry.tiny import tiny_model

    from .errors import ConversionError, UnsupportedOp
    from .executor import NativeModel

    started = time.perf_counter()
    result: dict[str, Any] = {"model_type": model_type, "status": "error", "reason": "",
                              "max_rel_err": None}  # fmt: skip
    try:
        class_name = base_model_types().get(model_type)
        if class_name is None:
            return {**result, "status": "no_base_class", "reason": "registry has no base class"}
        result["model_class"] = class_name
        model = tiny_model(class_name)
        if getattr(model.config, "_attn_implementation", None) not in (None, "eager"):
            model.config._attn_implementation = "eager"
        example = dummy_inputs(model, batch_size=batch, seq_len=seq, seed=0)
        native = NativeModel.from_torch(model, example)
        result["nodes"] = len(native.graph.nodes)
        result.update({k: native.report()[k] for k in ("native_nodes", "numpy_nodes")})
        worst = 0.0
        for b, s, seed in ((batch, seq, 1), (batch + 1, seq + 3, 2)):
            feeds = dummy_inputs(model, batch_size=b, seq_len=s, seed=seed)
            with torch.no_grad():
                want = _tensors(model(**feeds))
            try:
                got = native.run({k: v.numpy() for k, v in feeds.items() if hasattr(v, "numpy")})
            except Exception as exc:
                if (b, s) != (batch, seq):  # the export specialised a dim; the first shape counts
                    result["note"] = f"static shape: {type(exc).__name__}"
                    break
                raise
            for name, value in got.items():
                if name not in want:
                    continue
                ref = want[name]
                if value.shape != ref.shape:
                    return {**result, "status": "mismatch", "reason": f"{name}: shape {value.shape} != {ref.shape}"}
                scale = float(np.abs(ref).max()) if ref.size else 0.0
                err = float(np.abs(value.astype(np.float64) - ref).max() / scale) if scale else float(
                    np.abs(value - ref).max() if ref.size else 0.0)  # fmt: skip
                worst = max(worst, err)
        result["max_rel_err"] = worst
        result["status"] = "pass" if worst <= TOLERANCE else "mismatch"
        if result["status"] == "mismatch":
            result["reason"] = f"relative error {worst:.2e} > {TOLERANCE}"
    except UnsupportedOp as exc:
        result.update(status="unsupported", reason=str(exc), op=exc.op)
    except ConversionError as exc:
        result.update(status="export_failed", reason=str(exc)[:300])
    except Exception as exc:
        result.update(status="error", reason=f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _run_one(model_type: str, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "skillmill.ir.coverage", "--one", model_type]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SKILLMILL_NATIVE_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"model_type": model_type, "status": "timeout", "reason": f"over {timeout}s", "max_rel_err": None}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return {"model_type": model_type, "status": "crash", "reason": tail, "max_rel_err": None}
    return json.loads(lines[-1])


def run_coverage(model_types: list[str] | None = None, timeout: float = 180.0, jobs: int = 2,
                 out_dir: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Check every base model type (or the given ones); writes coverage_native.{json,md} to
    ``out_dir`` when given.  Returns the summary with one row per type."""
    types = list(model_types) if model_types else list(base_model_types())
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows = list(pool.map(lambda t: _run_one(t, timeout), types))
    passed = [r["model_type"] for r in rows if r["status"] == "pass"]
    floor_missing = [t for t in FLOOR_TYPES if t in types and t not in passed]
    summary = {
        "tolerance": TOLERANCE,
        "checked": len(rows),
        "passed": len(passed),
        "share": len(passed) / len(rows) if rows else 0.0,
        "floor_types_failing": floor_missing,
        "by_status": {s: sum(1 for r in rows if r["status"] == s) for s in sorted({r["status"] for r in rows})},
        "rows": rows,
    }
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "coverage_native.json"), "w") as handle:
            json.dump(summary, handle, indent=1, sort_keys=True)
        with open(os.path.join(out_dir, "coverage_native.md"), "w") as handle:
            handle.write(format_coverage(summary))
    return summary


def format_coverage(summary: dict[str, Any]) -> str:
    lines = ["# Native executor coverage (generated by `python -m skillmill.ir.coverage`)", "",
             f"{summary['passed']} of {summary['checked']} base model types convert from PyTorch and "
             f"match it within relative error {summary['tolerance']:g} "
             f"({100 * summary['share']:.1f}%).", "",
             "| status | count |", "|---|---|"]  # fmt: skip
    lines += [f"| {s} | {n} |" for s, n in summary["by_status"].items()]
    if summary["floor_types_failing"]:
        lines += ["", "Floor types not passing: " + ", ".join(summary["floor_types_failing"])]
    lines += ["", "| model type | status | max rel err | reason |", "|---|---|---|---|"]
    for row in sorted(summary["rows"], key=lambda r: r["model_type"]):
        err = f"{row['max_rel_err']:.1e}" if row.get("max_rel_err") is not None else ""
        reason = str(row.get("reason", "")).replace("|", "/").replace("\n", " ")[:120]
        lines.append(f"| {row['model_type']} | {row['status']} | {err} | {reason} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--one"]:
        import warnings

        warnings.simplefilter("ignore")
        print(json.dumps(check_native(argv[1])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--types", default=None, help="comma-separated model types (default: all base types)")
    parser.add_argument("--floor", action="store_true", help="only the issue's floor types")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    types = args.types.split(",") if args.types else (list(FLOOR_TYPES) if args.floor else None)
    summary = run_coverage(types, args.timeout, args.jobs, args.out)
    print(format_coverage(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

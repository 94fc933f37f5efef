"""Forward every base model type once on its tiny random model.

    python -m skillmill.measure.sweeps.tiny [--types t1 t2 ...] [--jobs 2] [--timeout 120]
                                           [--out path.json] [--failures-yaml path.yaml]

For each key of `MODEL_MAPPING_NAMES` (its first class if several): tiny config -> tiny model ->
dummy inputs -> `model(**inputs)` under `torch.no_grad()`.  Each type runs in a forked child
(torch and transformers are imported once, in the parent) with a wall-clock timeout and an
address-space limit (measure/harness.py), so a model that hangs or blows memory fails alone.
`--failures-yaml` writes the committed list of types that still fail, registry/tiny_failures.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..harness import run_parallel

# measure/sweeps/ -> the registry folder beside measure/ (a source checkout and an install alike)
FAILURES_PATH = Path(__file__).resolve().parents[2] / "registry" / "tiny_failures.yaml"


def base_model_types() -> dict[str, str]:
    """model type -> its base model class name (the first, when the mapping lists several)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    return {
        t: (c[0] if isinstance(c, (tuple, list)) else c) for t, c in MODEL_MAPPING_NAMES.items()
    }


def _reason(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{type(exc).__name__}: {message}"


def _where(exc: BaseException) -> str:
    """The innermost transformers / skillmill frame, to tell model bugs from input bugs."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if (
            "transformers" in frame.filename
            or "skillmill" in frame.filename
            or "registry" in frame.filename
            or frame.filename == __file__  # this sweep's own call, in a source checkout too
        ):
            path = frame.filename.split("site-packages/")[-1]
            return f"{path}:{frame.lineno}"
    return ""


def check_model_type(model_type: str, seed: int = 0) -> dict[str, Any]:
    """Build, feed and run the tiny model of `model_type`; never raises.

    Returns {model_type, class_name, status: "ok"|"fail", stage, reason, where, params,
    inputs: {name: shape}, seconds}.
    """
    import torch

    from skillmill.registry.dummy_inputs import dummy_inputs
    from skillmill.registry.tiny import param_count, tiny_config, tiny_model

    result: dict[str, Any] = {"model_type": model_type, "class_name": None, "status": "fail"}
    start = time.perf_counter()
    stage = "class"
    try:
        class_name = base_model_types().get(model_type)
        if class_name is None:
            raise KeyError(f"{model_type!r} is not a base model type")
        result["class_name"] = class_name
        stage = "config"
        config = tiny_config(model_type)
        stage = "model"
        model = tiny_model(class_name, config=config, seed=seed)
        result["params"] = param_count(model)
        stage = "inputs"
        inputs = dummy_inputs(model, seed=seed)
        result["inputs"] = {
            k: list(v.shape) if hasattr(v, "shape") else repr(v) for k, v in inputs.items()
        }
        stage = "forward"
        with torch.no_grad():
            model(**inputs)
        result["status"] = "ok"
        stage = "done"
    except BaseException as exc:  # noqa: BLE001 - a sweep records every failure
        if isinstance(exc, KeyboardInterrupt):
            raise
        result["reason"] = _reason(exc)
        result["where"] = _where(exc)
    result["stage"] = stage
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def run_sweep(types: list[str], jobs: int = 2, timeout: float = 120.0, progress=True) -> list[dict]:
    # Import once in the parent so every forked child starts warm.
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from skillmill.registry import dummy_inputs, tiny  # noqa: F401

    # Warm up in the parent: the first model pulls in modeling_utils, generation, integrations...
    # (~15 s); every forked child then starts with them loaded and pays only its own module.
    torch.set_num_threads(1)
    check_model_type("bert")
    done = 0

    def report(model_type: str, result: dict) -> None:
        nonlocal done
        done += 1
        result.setdefault("model_type", model_type)
        if progress:
            mark = "ok  " if result["status"] == "ok" else "FAIL"
            line = f"[{done}/{len(types)}] {mark} {model_type} ({result.get('seconds', 0):.1f}s)"
            if result["status"] != "ok":
                line += f"  {result.get('stage')}: {result.get('reason', '')[:160]}"
            print(line, flush=True)

    results = run_parallel(types, check_model_type, jobs=jobs, timeout=timeout, on_result=report)
    return [results[t] for t in types]


def summarize(results: list[dict]) -> str:
    from collections import Counter

    ok = sum(r["status"] == "ok" for r in results)
    lines = [f"{ok}/{len(results)} model types pass ({100.0 * ok / max(1, len(results)):.1f}%)"]
    groups = Counter(r.get("reason", "").split(":")[0] for r in results if r["status"] != "ok")
    for name, n in groups.most_common(15):
        lines.append(f"  {n:4d}  {name}")
    return "\n".join(lines)


def write_failures_yaml(results: list[dict], path: Path = FAILURES_PATH) -> None:
    """The committed list of types that still fail, each with its reason."""
    import transformers
    import yaml

    from skillmill.registry.tiny import load_overrides

    overrides = load_overrides()
    failures = {
        r["model_type"]: {
            "class": r.get("class_name"),
            "stage": r.get("stage"),
            "reason": r.get("reason"),
            **({"where": r["where"]} if r.get("where") else {}),
            # The family's known cause, where tiny_overrides.yaml records one.
            **(
                {"why": overrides[r["model_type"]]["_why"]}
                if (overrides.get(r["model_type"]) or {}).get("_why")
                else {}
            ),
        }
        for r in sorted(results, key=lambda r: r["model_type"])
        if r["status"] != "ok"
    }
    ok = sum(r["status"] == "ok" for r in results)
    header = (
        "# Generated by `python -m skillmill.measure.sweeps.tiny --failures-yaml ...` - do not edit.\n"
        f"# transformers {transformers.__version__}: {ok}/{len(results)} base model types pass the tiny\n"
        "# forward; every type below fails, with the stage it failed at and why.\n"
    )
    text = yaml.safe_dump(failures, sort_keys=True, width=120, allow_unicode=True)
    path.write_text(header + text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--types", nargs="*", help="model types (default: all base model types)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, help="write every result as JSON here")
    parser.add_argument(
        "--failures-yaml",
        type=Path,
        nargs="?",
        const=FAILURES_PATH,
        help=f"write the failures list (default path {FAILURES_PATH.name})",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    types = args.types or list(base_model_types())
    start = time.perf_counter()
    results = run_sweep(
        types, jobs=max(1, args.jobs), timeout=args.timeout, progress=not args.quiet
    )
    elapsed = time.perf_counter() - start
    print(summarize(results))
    print(f"swept {len(types)} types in {elapsed:.0f} s with {args.jobs} jobs")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, sort_keys=True))
    if args.failures_yaml:
        write_failures_yaml(results, args.failures_yaml)
    return 0


if __name__ == "__main__":
    sys.exit(main())

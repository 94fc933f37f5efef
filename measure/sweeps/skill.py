"""The foundation sweep (``coverage --backend skill``): each base model type's tiny random model
through its generated skill, compared element-wise with the transformers model called directly.
It pins the cpu target's engine to PyTorch eager (``native=False``): it measures the skill wiring
(loading, inputs, target choice, output naming), not the executor."""

from __future__ import annotations

import copy
import time
from typing import Any

from ..constants import ATOL, RTOL


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
        # The reference's own copy, taken before the skill runs: a stateful input (a video
        # tracker's session) is updated by forward, and a second call on it would replay the
        # first call's cached masks instead of computing them.
        reference_inputs = copy.deepcopy(inputs)
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
            want = flatten_outputs(reference(**reference_inputs))
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

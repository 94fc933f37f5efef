"""Hardware detection: real probes, driven by the ``detect`` data each target declares.

A target's declaration (templates/hardware/<name>.yaml) says how it is detected, e.g.::

    detect:
      any_of:
        - python_package: max
        - executable: max
        - env: MAX_HOME

Each probe kind below answers (present, what it found).  Template authors can use any kind, or
``callable: "package.module:function"`` returning ``(bool, str)`` for something new.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable

from .cpu_features import best_simd, cpu_features


@dataclass(frozen=True)
class TargetStatus:
    """Whether one hardware target is present here, and what the probes found."""

    name: str
    available: bool
    reason: str
    version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "available": self.available,
            "reason": self.reason,
            "version": self.version,
            "details": self.details,
        }


Probe = Callable[[Any], "tuple[bool, str, str | None]"]  # -> (present, found, version)


def _package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def probe_always(_: Any):
    return True, "always present", None


def probe_python_package(name: str):
    if importlib.util.find_spec(name) is None:
        return False, f"Python package '{name}' not installed", None
    version = _package_version(name)
    return True, f"Python package '{name}' {version or '(version unknown)'}", version


def probe_executable(name: str):
    path = shutil.which(name)
    if not path:
        return False, f"executable '{name}' not on PATH", None
    version = None
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=20, check=False
        )
        version = (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return True, f"executable {path}" + (f" ({version})" if version else ""), version


def probe_env(name: str):
    value = os.environ.get(name)
    if not value:
        return False, f"${name} not set", None
    if not os.path.isdir(value):
        return False, f"${name}={value} is not a directory", None
    return True, f"${name}={value}", None


def _torch():
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def probe_torch_device(kind: str):
    torch = _torch()
    if torch is None:
        return False, "PyTorch not installed", None
    if kind == "cuda":
        if torch.version.cuda is None:
            return False, f"this PyTorch build has no CUDA support ({torch.__version__})", None
        if not torch.cuda.is_available():
            return False, "no CUDA device visible", torch.version.cuda
        name = torch.cuda.get_device_name(0)
        return True, f"{torch.cuda.device_count()} CUDA device(s), first: {name}", torch.version.cuda
    if kind == "rocm":
        if getattr(torch.version, "hip", None) is None:
            return False, f"this PyTorch build has no ROCm support ({torch.__version__})", None
        if not torch.cuda.is_available():
            return False, "no ROCm device visible", torch.version.hip
        return True, f"ROCm device {torch.cuda.get_device_name(0)}", torch.version.hip
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_built():
            return False, "this PyTorch build has no MPS support", None
        if not mps.is_available():
            return False, "MPS not available (needs Apple silicon and macOS 12.3+)", None
        return True, "Apple MPS device", None
    raise ValueError(f"unknown torch_device kind '{kind}'")


def probe_onnxruntime_provider(provider: str):
    if importlib.util.find_spec("onnxruntime") is None:
        return False, "Python package 'onnxruntime' not installed", None
    import onnxruntime

    if provider not in onnxruntime.get_available_providers():
        return False, f"onnxruntime has no {provider}", onnxruntime.__version__
    return True, f"onnxruntime {onnxruntime.__version__} with {provider}", onnxruntime.__version__


def probe_openvino_device(device: str):
    if importlib.util.find_spec("openvino") is None:
        return False, "Python package 'openvino' not installed", None
    import openvino

    devices = openvino.Core().available_devices
    if device not in devices:
        return False, f"OpenVINO sees {devices}, not {device}", openvino.__version__
    return True, f"OpenVINO {openvino.__version__} device {device}", openvino.__version__


def probe_callable(spec: str):
    """``"package.module:function"`` or ``"package.module:function argument"``: the function
    answers ``(present, found)`` or ``(present, found, version)``.  Engines keep their own probes
    this way (skillmill.engines.modular.probes), so detection imports no engine."""
    target, _, argument = spec.partition(" ")
    module_name, _, func_name = target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    answer = func(argument) if argument else func()
    present, found, version = (*answer, None)[:3]
    return bool(present), str(found), version


PROBES: dict[str, Probe] = {
    "always": probe_always,
    "python_package": probe_python_package,
    "executable": probe_executable,
    "env": probe_env,
    "torch_device": probe_torch_device,
    "onnxruntime_provider": probe_onnxruntime_provider,
    "openvino_device": probe_openvino_device,
    "callable": probe_callable,
}


def _run_probe(condition: dict[str, Any]):
    (kind, argument), = condition.items()
    if kind not in PROBES:
        return False, f"unknown probe kind '{kind}' (known: {', '.join(sorted(PROBES))})", None
    try:
        return PROBES[kind](argument)
    except Exception as exc:  # a broken driver must not break detection of everything else
        return False, f"{kind} probe failed: {type(exc).__name__}: {exc}", None


def conditions_of(detect: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """(probe conditions, whether all must hold) of a ``detect`` block."""
    if "any_of" in detect:
        return list(detect["any_of"]), False
    if "all_of" in detect:
        return list(detect["all_of"]), True
    return [detect], True


def evaluate(name: str, detect: dict[str, Any]) -> TargetStatus:
    """Evaluate a declaration's ``detect`` block: ``any_of`` / ``all_of`` lists of probes."""
    conditions, need_all = conditions_of(detect)
    results = [(cond, *_run_probe(cond)) for cond in conditions]
    hits = [found for _, ok, found, _ in results if ok]
    misses = [found for _, ok, found, _ in results if not ok]
    available = len(hits) == len(results) if need_all else bool(hits)
    version = next((v for _, ok, _, v in results if ok and v), None)
    reason = "; ".join(hits if available else misses)
    details = {"probes": [{"probe": c, "present": ok, "found": f} for c, ok, f, _ in results]}
    return TargetStatus(name, available, reason, version, details)


@functools.lru_cache(maxsize=None)
def _cached_status(name: str, detect_key: str) -> TargetStatus:
    import json

    return evaluate(name, json.loads(detect_key))


def target_status(name: str, detect: dict[str, Any]) -> TargetStatus:
    """Probe once per process (probes can start subprocesses); ``refresh()`` clears the cache."""
    import json

    return _cached_status(name, json.dumps(detect, sort_keys=True))


def refresh() -> None:
    _cached_status.cache_clear()
    cpu_features.cache_clear()


def hardware_report(declarations: list[dict[str, Any]]) -> dict[str, Any]:
    """Every declared target's status in priority order, plus the CPU's SIMD features."""
    ordered = sorted(declarations, key=lambda d: -d["priority"])
    return {
        "cpu_features": cpu_features(),
        "best_simd": best_simd(),
        "targets": [target_status(d["name"], d["detect"]).as_dict() for d in ordered],
    }

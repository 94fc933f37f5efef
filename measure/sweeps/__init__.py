"""The coverage sweeps, one per backend (``BACKENDS``, the registry `generate-skills coverage
--backend` lists), each over every base model type in forked workers (measure/harness.py), each
with a committed report.

- ``skill`` (the foundation, skill.py): build the tiny random model, run it through the generated
  skill and compare with calling the transformers model directly.  It pins the cpu target's
  engine to PyTorch eager (``native=False``): it measures the skill wiring, not the executor.
- ``native`` (native.py): convert the tiny model for skillmill's native executor and compare with
  PyTorch at two shapes; the cpu target converts a model only when its type passed here.
- ``max`` (max.py): lower the same IR to a MAX graph, compile and compare; the max target declines
  a type that failed here before paying for a compile.
- ``openvino`` (openvino.py): the same tiny model through ``openvino.convert_model``, compiled for
  the CPU at float32 and compared at the same two shapes.
- ``onnx`` (onnx.py): the same tiny model exported to ONNX (torch.onnx.export, dynamic batch and
  sequence) and validated with ONNX Runtime against PyTorch on three shapes.
- ``wasm`` and ``webgpu`` (web.py): the onnx sweep's export run by ONNX Runtime Web in headless
  Chromium (the wasm and webgpu targets' engine) on that execution provider, at the same shapes.

Each report is one engine's document in the support table, registry/support/<engine>.yaml
(model type x engine x precision -> pass, or why not, and where it was measured), which
``skillmill.registry.support`` reads for the runners; generator/coverage.py writes it and renders
docs/coverage.md and docs/support-matrix.md from the table (`generate-skills --check` fails when
either is stale).  Every failure is recorded with its stage and reason, never skipped.  Another
backend is one ``register_backend`` call.  tiny.py, the tiny forward of every base model type
(registry/tiny_failures.yaml), is a sweep of its own with no engine, run with `python -m`.

Where the checks run is the runner's business, not the sweep's: measure/harness.py's
``LocalRunner`` (forked workers on this machine) or, with ``--ray``, ray_runner.py's ``RayRunner``
(a Ray task per type, or per MAX chunk, on a cluster; docs/ray.md)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from skillmill.registry import support

from ..constants import ATOL, FLOOR_TYPES, RTOL
from .skill import check_skill


@dataclass(frozen=True)
class CoverageBackend:
    """One coverage sweep: how a row is measured, where its report lives, how it is shown."""

    name: str
    check: Callable[[str], dict[str, Any]]  # model_type -> row with "status" ("pass" or not)
    engine: str  # what it measures: the support table's engine (registry/support/<engine>.yaml)
    title: str  # its section heading in docs/coverage.md
    what: str  # one sentence: what a row measures and against what
    env: dict[str, str] = field(default_factory=dict)  # set in the parent before forking
    warm_up: Callable[[], Any] | None = None  # run once in the parent: workers start warm
    normalise: Callable[[dict[str, Any]], dict[str, Any]] = lambda row: row
    first: tuple[str, ...] = ()  # types listed first in the markdown (the floor families)
    written: Callable[[dict[str, dict[str, Any]]], list[Path]] | None = None  # extra outputs
    extra: Callable[[], dict[str, Any]] = dict  # extra top-level report fields
    # Runs the whole sweep itself (types, jobs, on_result, runner) instead of one forked check per
    # type: MAX compiles several types per graph (measure/sweeps/max.py says why).
    sweep: Callable[..., Any] | None = None
    precision: str = support.DEFAULT_PRECISION  # what every row computes at

    @property
    def report(self) -> Path:
        """The committed YAML report: this engine's document in the support table."""
        return support.path(self.engine, self.precision)


BACKENDS: dict[str, CoverageBackend] = {}


def register_backend(backend: CoverageBackend) -> None:
    BACKENDS[backend.name] = backend


def load_report(backend: str = "skill") -> dict[str, Any]:
    """``backend``'s committed report, read through the support table (a fresh copy: callers
    may change it)."""
    spec = BACKENDS[backend]
    return copy.deepcopy(support.report(spec.engine, spec.precision))


# -- the three sweeps (native and MAX import torch, transformers and MAX only when they run) --
def _warm_skill() -> None:
    check_skill("bert")


def _check_native(model_type: str) -> dict[str, Any]:
    from .native import check_native

    return check_native(model_type)


def _warm_native() -> None:
    from .native import warm_up

    warm_up()


def _normalise_native(row: dict[str, Any]) -> dict[str, Any]:
    from .native import normalise_row

    return normalise_row(row)


def _native_extra() -> dict[str, Any]:
    import torch

    from ..constants import TOLERANCE

    return {"tolerance": TOLERANCE, "torch_version": str(torch.__version__), "floor": list(FLOOR_TYPES)}


def _check_openvino(model_type: str) -> dict[str, Any]:
    from .openvino import check_openvino

    return check_openvino(model_type)


def _warm_openvino() -> None:
    from .openvino import warm_up

    warm_up()


def _check_onnx(model_type: str) -> dict[str, Any]:
    from .onnx import check_onnx

    return check_onnx(model_type)


def _warm_onnx() -> None:
    from .onnx import warm_up

    warm_up()


def _check_wasm(model_type: str) -> dict[str, Any]:
    from .web import check_wasm

    return check_wasm(model_type)


def _check_webgpu(model_type: str) -> dict[str, Any]:
    from .web import check_webgpu

    return check_webgpu(model_type)


def _warm_web() -> None:
    from .web import warm_up

    warm_up()


def _check_max(model_type: str) -> dict[str, Any]:
    from .max import check_one

    return check_one(model_type)


def _sweep_max(types: list[str], jobs: int, on_result: Callable[[str, dict], None], runner: Any = None) -> Any:
    from .max import run_coverage

    return run_coverage(types, jobs=jobs, on_result=on_result, runner=runner)


def _max_extra() -> dict[str, Any]:
    from .max import report_extra

    return report_extra()


register_backend(CoverageBackend(
    name="skill",
    check=check_skill,
    engine="torch",
    title="Foundation: every base model type through its generated skill",
    what="tiny random model of each base model type through its generated skill, compared with "
         f"the transformers model called directly (rtol {RTOL}, atol {ATOL})",
    warm_up=_warm_skill,
))  # fmt: skip
register_backend(CoverageBackend(
    name="native",
    check=_check_native,
    engine="native",
    title="Native executor: every base model type converted from PyTorch and run on skillmill.ir",
    what="tiny random model of each base model type exported with torch.export (dynamic batch and "
         "sequence), lowered to skillmill's IR, optimised and run on the native executor at "
         "(batch, seq) = (2, 8) and (3, 11), every output compared with PyTorch eager: relative "
         "error max|native - torch| / max|torch| <= 1e-4",
    warm_up=_warm_native,
    normalise=_normalise_native,
    first=FLOOR_TYPES,
    extra=_native_extra,
))  # fmt: skip
register_backend(CoverageBackend(
    name="max",
    check=_check_max,
    engine="max",
    title="Modular MAX: every base model type's IR lowered to a MAX graph, compiled and run",
    what="tiny random model of each base model type exported with torch.export (dynamic batch and "
         "sequence), optimised in skillmill's IR, lowered to a MAX graph, compiled by MAX on the "
         "CPU and run at (batch, seq) = (2, 8) and (3, 11), every output compared with PyTorch "
         "eager: relative error max|max - torch| / max|torch| <= 1e-4 (types are compiled "
         "several to a MAX graph, as many as each row's group_size, each with its own inputs and "
         "outputs, with MAX's built-in ops only; the "
         "skills' CPU default adds skillmill's Mojo kernels as MAX custom ops, which CI checks on a "
         "subset; see measure/sweeps/max.py); "
         "a type whose tiny model, inputs or IR conversion failed in the native sweep is not "
         "exported again, and its row quotes that sweep's reason",
    first=FLOOR_TYPES,
    extra=_max_extra,
    sweep=_sweep_max,
))  # fmt: skip
register_backend(CoverageBackend(
    name="openvino",
    check=_check_openvino,
    engine="openvino",
    title="OpenVINO: every base model type converted with openvino.convert_model and run on its CPU plugin",
    what="tiny random model of each base model type (the native sweep's) converted with "
         "openvino.convert_model (the TorchScript trace, else the torch.export program the native "
         "sweep exports; mixture-of-experts as transformers' batched_mm experts), compiled for the "
         "CPU with INFERENCE_PRECISION_HINT f32 (read back from the compiled model) and run at (batch, seq) = (2, 8) and (3, 11), every output "
         "compared with PyTorch eager: relative error max|openvino - torch| / max|torch| <= 1e-4",
    warm_up=_warm_openvino,
    normalise=_normalise_native,
    first=FLOOR_TYPES,
))  # fmt: skip
register_backend(CoverageBackend(
    name="onnx",
    check=_check_onnx,
    engine="onnx",
    title="ONNX: every base model type exported with torch.onnx.export and validated with ONNX Runtime",
    what="tiny random model of each base model type (the native sweep's) exported by "
         "engines/onnxruntime/export.py (torch.onnx.export at opset 17, dynamic batch and sequence "
         "axes, traced at (batch, seq) = (2, 8)) and validated as optimum validates an export: ONNX "
         "Runtime's CPU provider run at (2, 8), (3, 11) and (1, 5), every output compared with "
         "PyTorch eager: relative error max|onnxruntime - torch| / max|torch| <= 1e-4",
    warm_up=_warm_onnx,
    normalise=_normalise_native,
    first=FLOOR_TYPES,
))  # fmt: skip

# The browser sweeps.  A page call (opening a session, one run) of a tiny model takes seconds; one
# that has not answered in a minute hangs and is a timeout row, and an open plus three runs still
# fit the harness's 300 s per type (engines/web/runner.py's default is 120 s per call).
_WEB_ENV = {"SKILLMILL_WEB_TIMEOUT_S": "60"}
_WEB_WHAT = ("tiny random model of each base model type exported exactly as the onnx sweep exports it "
             "(torch.onnx.export at opset 17, dynamic batch and sequence axes, traced at (batch, seq) = "
             "(2, 8)) and run by ONNX Runtime Web (engines/web, the {0} target's engine) in headless "
             "Chromium on the {0} execution provider only{1} at (2, 8), (3, 11) and (1, 5), every "
             "output compared with PyTorch eager: relative error max|{0} - torch| / max|torch| "
             "<= 1e-4; a row's provider names what ran")  # fmt: skip
register_backend(CoverageBackend(
    name="wasm",
    check=_check_wasm,
    engine="wasm",
    title="WebAssembly: every base model type's ONNX export run by ONNX Runtime Web on wasm in headless Chromium",
    what=_WEB_WHAT.format("wasm", ""),
    env=_WEB_ENV,
    warm_up=_warm_web,
    normalise=_normalise_native,
    first=FLOOR_TYPES,
))  # fmt: skip
register_backend(CoverageBackend(
    name="webgpu",
    check=_check_webgpu,
    engine="webgpu",
    title="WebGPU: every base model type's ONNX export run by ONNX Runtime Web on WebGPU in headless Chromium",
    what=_WEB_WHAT.format("webgpu", " (SwiftShader's adapter where there is no GPU; ORT keeps shape "
                                    "arithmetic on its wasm kernels)"),
    env=_WEB_ENV,
    warm_up=_warm_web,
    normalise=_normalise_native,
    first=FLOOR_TYPES,
))  # fmt: skip

"""``skillmill.compile_to_max`` and ``skillmill.compile_to_mojo``: compile a model (a PyTorch
module, skillmill IR graph, or .mojomodel path) and say what happened.

    result = skillmill.compile_to_max(model, target_device="auto")
    result.success, result.compiled_path, result.compilation_time, result.error_message
    result.model.run({"input_ids": ids, "attention_mask": mask})      # when successful

Every field is measured: ``compilation_time`` is the wall time of MAX's compile (or of loading
the cached artifact, ``metadata["cache_hit"]``), ``compiled_path`` the .mef / .so on disk.
Failures never raise: ``success`` is False and ``error_message`` names the cause (the op with no
MAX lowering, the compiler's error)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CompilationResult:
    success: bool
    compiled_path: str | None
    compilation_time: float
    optimizations_applied: list[str]
    error_message: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    model: Any = None  # MaxModel / MojoModel when successful

    def __bool__(self) -> bool:
        return self.success


def _to_graph(model_or_ir: Any, example_inputs: dict[str, Any] | None) -> Any:
    """An optimised IR graph from a module, a graph, or a .mojomodel path."""
    from skillmill.ir.graph import Graph
    from skillmill.ir.passes import optimize_graph

    if isinstance(model_or_ir, Graph):
        if "optimizations_applied" in model_or_ir.metadata:
            return model_or_ir
        return optimize_graph(model_or_ir)[0]
    if isinstance(model_or_ir, (str, os.PathLike)):
        from skillmill.ir.mojomodel import load_mojomodel

        return load_mojomodel(model_or_ir).graph
    import torch

    if not isinstance(model_or_ir, torch.nn.Module):
        raise TypeError(f"compile takes a torch.nn.Module, a skillmill IR Graph or a .mojomodel path, "
                        f"not {type(model_or_ir).__name__}")  # fmt: skip
    from skillmill.ir.frontends.pytorch import convert_from_pytorch

    if example_inputs is None:
        from skillmill.registry.dummy_inputs import dummy_inputs

        example_inputs = dummy_inputs(model_or_ir, batch_size=2, seq_len=16)
    return optimize_graph(convert_from_pytorch(model_or_ir.eval(), dict(example_inputs)))[0]


def _failure(started: float, exc: BaseException, stage: str, **metadata: Any) -> CompilationResult:
    message = " ".join(str(exc).split())
    from .lowering import MaxLoweringError

    if isinstance(exc, MaxLoweringError):
        metadata.update(missing_op=exc.op, node=exc.node)
    return CompilationResult(False, None, time.perf_counter() - started, metadata.pop("passes", []),
                             f"{stage}: {type(exc).__name__}: {message}",
                             {"stage": stage, **metadata})  # fmt: skip


def compile_to_max(model_or_ir: Any, target_device: str = "auto", example_inputs: dict[str, Any] | None = None,
                   use_cache: bool = True, mojo_custom_ops: bool | None = None) -> CompilationResult:  # fmt: skip
    """Lower to a MAX graph and compile it for ``target_device`` ("auto", "cpu" or "gpu").

    ``mojo_custom_ops``: None (default) uses ``custom_op.defaults`` (on the CPU, Linear and
    LayerNorm lower to skillmill's Mojo kernels registered as MAX custom ops); True uses every
    custom op (the fused QKV attention too), False keeps MAX's built-in ops."""
    started = time.perf_counter()
    try:
        graph = _to_graph(model_or_ir, example_inputs)
    except Exception as exc:  # noqa: BLE001 — the result carries the reason
        return _failure(started, exc, "convert")
    passes = list(graph.metadata.get("optimizations_applied", []))
    try:
        from .max_model import MaxModel

        from . import custom_op

        kernels = extensions = None  # None: custom_op.defaults for the target
        if mojo_custom_ops:
            kernels, extensions = custom_op.custom_kernels(), [custom_op.package()]
        elif mojo_custom_ops is False:
            kernels, extensions = {}, []
        model = MaxModel.from_graph(graph, target_device, use_cache=use_cache, custom_kernels=kernels,
                                    custom_extensions=extensions)  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        return _failure(started, exc, "lower+compile", passes=passes, graph=graph.name)
    from . import adapter

    metadata = {"target": model.target, "cache_hit": model.cache_hit, "cache_key": model.key,
                "max_version": adapter.MAX_VERSION, "graph": graph.name, "nodes": len(graph.nodes),
                "inputs": model.input_names, "outputs": model.output_names,
                "lower_seconds": round(model.lower_seconds, 3), "custom_ops": model.custom_ops,
                "total_seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
    return CompilationResult(True, str(model.compiled_path), model.compile_seconds,
                             passes + ["lower_to_max_graph", "max_graph_compiler"], None, metadata, model)  # fmt: skip


def compile_to_mojo(model_or_ir: Any, optimization_level: int = 3, example_inputs: dict[str, Any] | None = None
                    ) -> CompilationResult:  # fmt: skip
    """Render this model's Mojo kernels and build them with ``mojo build -O<level>``."""
    started = time.perf_counter()
    if optimization_level not in (0, 1, 2, 3):
        return _failure(started, ValueError(f"optimization_level must be 0-3, not {optimization_level!r}"),
                        "arguments")  # fmt: skip
    try:
        graph = _to_graph(model_or_ir, example_inputs)
    except Exception as exc:  # noqa: BLE001
        return _failure(started, exc, "convert")
    passes = list(graph.metadata.get("optimizations_applied", []))
    try:
        from .mojo_model import MojoModel

        model = MojoModel.from_graph(graph, optimization_level)
    except Exception as exc:  # noqa: BLE001
        return _failure(started, exc, "mojo build", passes=passes, graph=graph.name)
    report = model.report()
    metadata = {**report, "graph": graph.name, "total_seconds": round(time.perf_counter() - started, 3)}
    applied = passes + [f"mojo_kernels:{name}" for name in model.kernel_names] + [f"mojo build -O{optimization_level}"]
    return CompilationResult(True, str(model.module_path), model.build_seconds, applied, None, metadata, model)

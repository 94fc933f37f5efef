"""Optimisation passes over the IR.  ``optimize_graph`` runs the chosen passes in order on a copy
and reports what each did; every pass is optional and listed in ``optimizations_applied``."""

from __future__ import annotations

from typing import Any, Callable

from ..graph import Graph
from .dce import eliminate_dead_code
from .fold import fold_constants
from .fuse import fuse_attention, fuse_linear, fuse_residual_adds, fuse_rms_norm
from .fuse_gelu import fuse_gelu_tanh
from .fuse_qkv import fuse_qkv_attention
from .infer import infer_concrete, infer_types
from .memory import plan_memory
from .simplify import simplify

PASSES: dict[str, Callable[[Graph], int]] = {
    "infer_types": infer_types,
    "simplify": simplify,
    "fuse_attention": fuse_attention,
    "fuse_gelu_tanh": fuse_gelu_tanh,  # before fuse_linear, which folds the Gelu into its Linear
    "fuse_linear": fuse_linear,
    "fuse_qkv_attention": fuse_qkv_attention,
    "fuse_rms_norm": fuse_rms_norm,
    "fuse_residual_adds": fuse_residual_adds,
    "fold_constants": fold_constants,
    "dead_code_elimination": eliminate_dead_code,
}
DEFAULT_PASSES = list(PASSES)


def optimize_graph(graph: Graph, passes: list[str] | None = None,
                   memory_bindings: dict[str, int] | None = None) -> tuple[Graph, dict[str, Any]]:  # fmt: skip
    """Returns (optimised copy, report).  ``memory_bindings`` (e.g. {"batch": 1, "seq": 128})
    adds the memory plan for that shape to the report."""
    chosen = DEFAULT_PASSES if passes is None else list(passes)
    unknown = [p for p in chosen if p not in PASSES and p != "memory_planning"]
    if unknown:
        raise ValueError(f"unknown passes {unknown}; known: {sorted(PASSES) + ['memory_planning']}")
    result = graph.copy()
    nodes_before = len(result.nodes)
    applied: list[str] = []
    stats: dict[str, int] = {}
    for name in chosen:
        if name == "memory_planning":
            continue
        count = PASSES[name](result)
        stats[name] = count
        applied.append(name)
        if name in ("fuse_attention", "fuse_gelu_tanh", "fuse_linear", "fuse_qkv_attention", "fuse_rms_norm", "fold_constants"):
            simplify(result)
    if chosen and "dead_code_elimination" in chosen:
        eliminate_dead_code(result)
    report: dict[str, Any] = {"optimizations_applied": applied, "pass_stats": stats,
                              "nodes_before": nodes_before, "nodes_after": len(result.nodes)}  # fmt: skip
    if memory_bindings is not None and ("memory_planning" in chosen or passes is None):
        report["memory_plan"] = {k: v for k, v in plan_memory(result, memory_bindings).items() if k != "offsets"}
        applied.append("memory_planning")
    result.metadata["optimizations_applied"] = applied
    return result, report


__all__ = ["DEFAULT_PASSES", "PASSES", "infer_concrete", "optimize_graph", "plan_memory"]

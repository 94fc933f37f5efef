"""``MojoModel``: the Mojo path.  The model's IR runs on skillmill's executor, with the fused ops
(Linear + bias + activation (+ residual), LayerNorm, Softmax, Attention / QKVAttention) bound to
Mojo kernels rendered for this model's shapes and built with ``mojo build``.

    model = MojoModel.from_graph(optimised_ir, optimization_level=3)   # MojoBuildError on failure
    outputs = model.run({"input_ids": ids, "attention_mask": mask})
    model.report()     # nodes on Mojo kernels vs native/numpy, build time, cache hit
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skillmill.ir.graph import Graph

from . import mojo_build, mojo_kernels


@dataclass
class MojoModel:
    graph: Graph
    executor: Any
    module_path: Path
    module_name: str
    cache_hit: bool
    build_seconds: float
    optimization_level: int
    simd_width: int
    mojo_nodes: dict[str, int]
    kernel_names: list[str]

    @classmethod
    def from_graph(cls, graph: Graph, optimization_level: int = 3,
                   width: int | None = None) -> "MojoModel":  # fmt: skip
        from skillmill.ir.executor import Executor

        width = width or mojo_kernels.simd_width()
        plan = mojo_kernels.plan_kernels(graph, width)
        if not plan.nodes:
            raise mojo_build.MojoBuildError(
                f"no node of {graph.name} fits a Mojo kernel (Linear/LayerNorm/Softmax/Attention, float32)"
            )
        context = plan.context(graph.name, width)
        source = mojo_build.render(context)
        path, hit, seconds = mojo_build.build_module(source, context["module_name"], optimization_level)
        module = mojo_build.import_module_from(path, context["module_name"])
        # The ops left to the executor are small (embeddings, masks, adds): numpy runs them.
        # skillmill.native's worker threads spin after each call and would take the cores from
        # the Mojo kernels' own workers (measured: MiniLM at 1x16 35 ms with them, 9 ms without).
        executor = Executor(graph, use_native=False)
        counts: dict[str, int] = {}
        nr = 2 * width
        for step in executor.steps:
            choice = plan.nodes.get(step.node_name)
            if choice is None:
                continue
            family, name = choice
            fn = getattr(module, name)
            if family == "linear":
                spec = plan.linear[name]
                fast = mojo_kernels.linear_kernel(fn, spec, graph.weights[step.inputs[1]], nr)
            elif family == "layer_norm":
                fast = mojo_kernels.layer_norm_kernel(fn, plan.layer_norm[name])
            elif family == "softmax":
                fast = mojo_kernels.softmax_kernel(fn)
            else:
                node_heads = int(step.attrs.get("heads", 1)) if family == "qkv_attention" else None
                fast = mojo_kernels.attention_kernel(fn, plan.attention[name], family == "qkv_attention",
                                                     node_heads)  # fmt: skip
            step.kernel = _with_fallback(fast, step.kernel)
            step.native = True
            counts[step.op] = counts.get(step.op, 0) + 1
        return cls(graph, executor, path, context["module_name"], hit, seconds, optimization_level,
                   width, counts, plan.kernel_names())  # fmt: skip

    @property
    def input_names(self) -> list[str]:
        return list(self.graph.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.graph.outputs)

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        arrays = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v))
                  for k, v in feeds.items() if k in self.graph.inputs}  # fmt: skip
        return self.executor.run(arrays)

    def report(self) -> dict[str, Any]:
        return {"mojo_nodes": dict(sorted(self.mojo_nodes.items())),
                "nodes": len(self.graph.nodes), "kernels": self.kernel_names,
                "module": str(self.module_path), "cache_hit": self.cache_hit,
                "build_seconds": round(self.build_seconds, 2),
                "optimization_level": self.optimization_level, "simd_width": self.simd_width}  # fmt: skip


def _with_fallback(fast: Any, reference: Any) -> Any:
    """The Mojo kernel, or the previous kernel for inputs outside the Mojo kernel's contract."""

    def kernel(args: list[Any], attrs: dict[str, Any]) -> Any:
        result = fast(args, attrs)
        return reference(args, attrs) if result is None else result

    kernel.mojo = True  # type: ignore[attr-defined]
    return kernel

"""``MaxModel``: an IR graph lowered to MAX, compiled once (or loaded from the cache), run.

    model = MaxModel.from_graph(optimised_ir)        # compile (tens of seconds) or cached load
    outputs = model.run({"input_ids": ids, "attention_mask": mask})   # numpy in, numpy out
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skillmill.ir.graph import Graph, numpy_dtype

from . import cache


def resolve_target(target_device: str = "auto") -> str:
    """"cpu" or "gpu" for a requested device ("auto" takes an accelerator when MAX sees one)."""
    from . import adapter

    if target_device in ("cpu",):
        return "cpu"
    if target_device in ("gpu", "cuda", "accelerator"):
        if adapter.accelerator_count() == 0:
            raise ValueError(f"target_device={target_device!r} but MAX sees no accelerator")
        return "gpu"
    if target_device != "auto":
        raise ValueError(f"target_device must be 'auto', 'cpu' or 'gpu', not {target_device!r}")
    return "gpu" if adapter.accelerator_count() > 0 else "cpu"


@dataclass
class MaxModel:
    """A compiled MAX model for one IR graph, with the facts ``compile_to_max`` reports."""

    graph: Graph
    target: str
    key: str
    compiled_path: Path
    cache_hit: bool
    compile_seconds: float  # compile, or load when the artifact was cached
    lower_seconds: float
    input_names: list[str]
    output_names: list[str]
    output_dtypes: list[str]
    custom_ops: list[str] = field(default_factory=list)
    _session: Any = None
    _model: Any = None
    _weights: dict[str, np.ndarray] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)  # condition output -> message

    @classmethod
    def from_graph(cls, graph: Graph, target_device: str = "auto", use_cache: bool = True,
                   custom_kernels: dict[str, Any] | None = None,
                   custom_extensions: list[Path] | None = None) -> "MaxModel":  # fmt: skip
        """Lower, then load the cached artifact or compile and store it.

        ``custom_kernels`` / ``custom_extensions`` left as None take ``custom_op.defaults``
        (skillmill's Mojo kernels as MAX custom ops on the CPU); ``custom_kernels={}`` lowers
        to MAX's built-in ops only.

        Raises ``MaxLoweringError`` (an op or shape MAX cannot express) or ``RuntimeError``
        (MAX's compiler refused the graph), both with the reason."""
        from . import adapter
        from .lowering import lower_graph

        target = resolve_target(target_device)
        if custom_kernels is None and custom_extensions is None:  # not told: the defaults
            from .custom_op import defaults

            custom_kernels, custom_extensions = defaults(target)
        extra = {"custom": sorted(custom_kernels or {}),
                 "extensions": sorted(Path(p).name for p in custom_extensions or [])}  # fmt: skip
        checks = run_time_checks(graph)
        lowered_graph = graph
        if checks:  # the conditions come back as extra outputs, checked after each run
            lowered_graph = graph.copy()
            lowered_graph.outputs = list(dict.fromkeys(graph.outputs + list(checks)))
        key = cache.graph_key(lowered_graph, target, extra)
        started = time.perf_counter()
        lowered = lower_graph(lowered_graph, target, custom_kernels, custom_extensions)
        lower_seconds = time.perf_counter() - started
        session = adapter.Session(target)
        path = cache.graphs_dir() / f"{key}.mef"
        meta_path = path.with_suffix(".json")
        started = time.perf_counter()
        hit = use_cache and path.exists() and cache.read_json(meta_path) is not None
        model = None
        if hit:
            try:
                model = session.load(path, lowered.weights, custom_extensions or [])
            except Exception:  # a stale or torn artifact: compile afresh below
                hit, model = False, None
        if model is None:
            compiled = session.compile(lowered.builder)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            session.export(compiled, tmp)
            os.replace(tmp, path)
            model = session.init(compiled, lowered.weights)
        seconds = time.perf_counter() - started
        if not hit:
            cache.write_json_atomic(meta_path, {
                "graph": graph.name, "target": target, "max_version": adapter.MAX_VERSION,
                "inputs": lowered.input_names, "outputs": lowered.output_names,
                "compile_seconds": round(seconds, 2), "custom_ops": lowered.custom_ops,
            })  # fmt: skip
        return cls(graph, target, key, path, hit, seconds, lower_seconds, lowered.input_names,
                   lowered.output_names, lowered.output_dtypes, lowered.custom_ops, session, model,
                   lowered.weights, checks)  # fmt: skip

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Execute on numpy inputs (cast to the graph's input dtypes); outputs by IR name."""
        arrays = []
        for name in self.input_names:
            if name not in feeds:
                raise KeyError(f"missing input {name!r}; the MAX graph takes {self.input_names}")
            value = feeds[name]
            value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            want = numpy_dtype(self.graph.inputs[name].dtype)
            arrays.append(value if value.dtype == want else value.astype(want))
        outs = self._session.execute(self._model, arrays)
        results = dict(zip(self.output_names, outs))
        for name, message in self.checks.items():
            held = results[name] if name in self.graph.outputs else results.pop(name)
            if not np.all(held):
                raise AssertionError(f"{message} (a condition the exported model checks at run time)")
        return results


def run_time_checks(graph: Graph) -> dict[str, str]:
    """torch.export's run-time assertions (AssertScalar nodes, e.g. "image features and image
    tokens do not match"): a MAX graph cannot raise, so each condition's value is returned and
    MaxModel.run raises the message when it is false, as the native executor does."""
    return {node.outputs[0]: str(node.attrs.get("msg") or "run-time assertion failed")
            for node in graph.nodes if node.op == "AssertScalar" and node.outputs and node.outputs[0]}  # fmt: skip

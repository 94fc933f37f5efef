"""Run a graph in topological order on the native kernels, falling back to the op table's numpy
references for what the kernel library does not cover (counted per op, see ``Executor.report``).

Intermediates are released right after their last use, so peak memory follows the tensors that
are live at once, not the whole graph.  With native kernels, the first run with a new signature of
input shapes builds an execution plan (``plan.py``) that later runs with that signature use: the
shape-only values computed once, native kernels bound to fixed pointers into one arena, linear
weights packed once.  ``Executor(graph, planned=False)`` always runs unplanned.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import ConversionError, ExecutionError, UnsupportedOp
from .graph import Graph, numpy_dtype, resolve_attr
from .ops import OPS
from .ops.native import bind_native, native_module
from .passes.memory import VIEW_OPS
from .plan import Plan, StepFailed, signature
from .profile import RunProfile, path_of

MAX_PLANS = 8  # input signatures kept planned per executor (least recently used dropped)
# Packed copies of Linear weights sit beside the originals (the unplanned path and .mojomodel
# export read those); past this many bytes a Linear runs on the unpacked kernel instead, so a
# large model does not double its memory.  SKILLMILL_PACKED_WEIGHTS_MB overrides.
PACKED_WEIGHT_BUDGET = int(os.environ.get("SKILLMILL_PACKED_WEIGHTS_MB", "1024")) << 20


@dataclass
class _Step:
    node_name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    has_refs: bool
    kernel: Callable[[list[Any], dict[str, Any]], Any]
    native: bool
    release: list[str] = field(default_factory=list)


class Executor:
    """Compiled plan for one graph: a kernel per node and the values to free after each node."""

    def __init__(self, graph: Graph, use_native: bool = True, planned: bool = True):
        unknown = sorted({n.op for n in graph.nodes if n.op not in OPS})
        if unknown:
            raise UnsupportedOp(unknown[0], graph.metadata.get("model_name", graph.name),
                                "not in the op table")  # fmt: skip
        self.graph = graph
        self.use_native = use_native
        self.steps: list[_Step] = []
        self.constants = dict(graph.weights)
        last_use: dict[str, int] = {}
        for index, node in enumerate(graph.nodes):
            for name in node.uses():
                last_use[name] = index
        keep = set(graph.outputs) | set(graph.weights)
        releases: dict[int, list[str]] = {}
        for name, index in last_use.items():
            if name not in keep:
                releases.setdefault(index, []).append(name)
        for index, node in enumerate(graph.nodes):
            from .graph import attr_refs

            has_refs = any(True for _ in attr_refs(node.attrs))
            kernel = bind_native(node.op, node.attrs, node.outputs) if use_native else None
            native = kernel is not None
            if kernel is None:
                kernel = _reference_kernel(node.op)
            self.steps.append(_Step(node.name, node.op, list(node.inputs), list(node.outputs),
                                    dict(node.attrs), has_refs, kernel, native,
                                    releases.get(index, [])))  # fmt: skip
        self.planned = planned and use_native and native_module() is not None
        self._plans: OrderedDict[tuple, Plan | None] = OrderedDict()
        self._packed: dict[tuple[str, str], Any] = {}
        self._arena: np.ndarray | None = None
        self._lock = threading.Lock()  # a plan's arena serves one run at a time
        self.native_counts: dict[str, int] = {}
        self.numpy_counts: dict[str, int] = {}
        for step in self.steps:
            table = self.native_counts if step.native else self.numpy_counts
            table[step.op] = table.get(step.op, 0) + 1

    @property
    def input_names(self) -> list[str]:
        return list(self.graph.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.graph.outputs)

    def report(self) -> dict[str, Any]:
        """Which nodes have a native kernel bound and which have only numpy, by node count.  A
        bound kernel may still decline some arguments at run time; ``profile`` counts what ran."""
        native_nodes = sum(self.native_counts.values())
        total = len(self.steps)
        return {
            "nodes": total,
            "native_nodes": native_nodes,
            "numpy_nodes": total - native_nodes,
            "native_ops": dict(sorted(self.native_counts.items())),
            "numpy_ops": dict(sorted(self.numpy_counts.items())),
        }

    def profile(self, feeds: dict[str, Any], runs: int = 3) -> dict[str, Any]:
        """``runs`` timed runs after one untimed one (which builds the plan), op by op: calls and
        seconds on native kernels, views and numpy (``ir/profile.py``).  Per-op timing adds a
        little to every call, so compare the shares, not the totals, with an untimed run."""
        self.run(feeds)
        recorder = RunProfile()
        for _ in range(runs):
            self.run(feeds, recorder)
            recorder.runs += 1
        return {"planned": any(p is not None for p in self._plans.values()), **recorder.report()}

    def run(self, feeds: dict[str, Any], profile: RunProfile | None = None) -> dict[str, np.ndarray]:
        inputs = self._inputs(feeds)
        if not self.planned:
            return self._run_steps(inputs, profile)
        key = (signature(inputs), native_module().get_isa())
        with self._lock:
            if key not in self._plans:
                plan, outputs = self._build_plan(inputs)
                self._remember(key, plan)
                return outputs
            self._plans.move_to_end(key)
            plan = self._plans[key]
            if plan is None:
                return self._run_steps(inputs, profile)
            if not plan.is_bound_to(self._arena):
                self._bind(plan)
            try:
                return plan.run(inputs, profile)
            except (StepFailed, ExecutionError):
                pass  # bad data, not a bad plan: the unplanned run raises the precise error
            except Exception:  # PlanMismatch (a data-dependent shape) or a plan that cannot run
                self._plans[key] = None  # this signature runs unplanned from now on
            return self._run_steps(inputs, profile)

    def run_unplanned(self, feeds: dict[str, Any], observe: Callable[[str, Any], None] | None = None,
                      profile: RunProfile | None = None) -> dict[str, np.ndarray]:  # fmt: skip
        """Node by node through each node's kernel; ``observe(name, value)`` sees every value
        produced (the plan builder records shapes and layouts through it)."""
        return self._run_steps(self._inputs(feeds), profile, observe)

    def plan_report(self) -> dict[str, Any]:
        """What the plans hold, per ISA and input signature (None: that signature runs unplanned)."""
        return {f"{isa} {sig}": (plan.report() if plan is not None else None) for (sig, isa), plan in self._plans.items()}

    def _inputs(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        inputs: dict[str, np.ndarray] = {}
        for name, spec in self.graph.inputs.items():
            if name not in feeds:
                raise ExecutionError(f"missing input {name!r}; expected {self.input_names}")
            value = np.asarray(feeds[name])
            want = numpy_dtype(spec.dtype)
            if value.dtype != want:
                value = value.astype(want)
            if spec.shape is not None and len(spec.shape) != value.ndim:
                raise ExecutionError(f"input {name!r} has rank {value.ndim}, expected {spec}")
            for dim, size in zip(spec.shape or [], value.shape):
                if isinstance(dim, int) and dim != size:
                    raise ExecutionError(f"input {name!r} has shape {value.shape}, expected {spec}")
            inputs[name] = value
        return inputs

    def _build_plan(self, inputs: dict[str, np.ndarray]) -> tuple[Plan | None, dict[str, np.ndarray]]:
        try:
            plan, outputs = Plan.build(self, inputs, self._packed_weight)
        except (ExecutionError, UnsupportedOp):
            raise
        except Exception:  # planning is an optimisation: anything it cannot handle runs unplanned
            return None, self._run_steps(inputs, None)
        try:
            self._bind(plan)
        except Exception:
            return None, outputs
        return plan, outputs

    def _bind(self, plan: Plan) -> None:
        if self._arena is None or self._arena.nbytes < plan.arena_bytes:
            self._arena = np.empty(max(plan.arena_bytes, 64) + 64, np.uint8)  # grows to the largest plan
        start = -self._arena.ctypes.data % 64  # 64-byte aligned, like the C side's scratch
        plan.bind(self._arena[start:], owner=self._arena)

    def _remember(self, key: tuple, plan: Plan | None) -> None:
        self._plans[key] = plan
        while len(self._plans) > MAX_PLANS:
            self._plans.popitem(last=False)

    def _packed_weight(self, name: str) -> Any | None:
        """A constant linear weight packed once for the active ISA and kept for every plan;
        None once the packed weights would pass PACKED_WEIGHT_BUDGET."""
        lib = native_module()
        key = (name, lib.get_isa())
        if key not in self._packed:
            weight = self.graph.weights[name]
            held = sum(p.data.nbytes for p in self._packed.values())
            if held + weight.nbytes > PACKED_WEIGHT_BUDGET:
                return None
            self._packed[key] = lib.pack_linear_weight(np.ascontiguousarray(weight))
        return self._packed[key]

    def _run_steps(self, inputs: dict[str, np.ndarray], profile: RunProfile | None = None,
                   observe: Callable[[str, Any], None] | None = None) -> dict[str, np.ndarray]:  # fmt: skip
        env: dict[str, Any] = dict(self.constants)
        env.update(inputs)
        for step in self.steps:
            args = [env[name] if name else None for name in step.inputs]
            attrs = resolve_attr(step.attrs, env) if step.has_refs else step.attrs
            if profile is not None:
                fallbacks, started = getattr(step.kernel, "fallbacks", 0), time.perf_counter()
            try:
                result = step.kernel(args, attrs)
            except Exception as exc:
                raise ExecutionError(f"{step.op} failed: {type(exc).__name__}: {exc}", step.node_name) from exc
            if profile is not None:
                path = path_of(step.native, step.op, step.kernel, fallbacks, VIEW_OPS)
                profile.add(step.op, path, time.perf_counter() - started)
            if len(step.outputs) == 1:
                env[step.outputs[0]] = result[0] if isinstance(result, (tuple, list)) else result
            else:
                for name, value in zip(step.outputs, result):
                    if name:
                        env[name] = value
            if observe is not None:
                for name in step.outputs:
                    if name:
                        observe(name, env[name])
            for name in step.release:
                env.pop(name, None)
        return {name: np.asarray(env[name]) for name in self.graph.outputs}


def _reference_kernel(op: str) -> Callable[[list[Any], dict[str, Any]], Any]:
    reference = OPS[op].reference

    def kernel(args: list[Any], attrs: dict[str, Any]) -> Any:
        return reference(args, **attrs)

    return kernel


class NativeModel:
    """A converted, optimised model ready to run: the ``cpu`` fast path of generated skills."""

    def __init__(self, graph: Graph, optimization: dict[str, Any] | None = None, use_native: bool = True):
        self.graph = graph
        self.optimization = optimization or {}
        self.executor = Executor(graph, use_native=use_native)

    @classmethod
    def from_torch(cls, model: Any, example_inputs: dict[str, Any], optimize: bool = True,
                   **convert_kwargs: Any) -> "NativeModel":  # fmt: skip
        """Convert with torch.export; raises UnsupportedOp / ConversionError when it can't."""
        from .frontends.pytorch import convert_from_pytorch
        from .passes import optimize_graph

        graph = convert_from_pytorch(model, example_inputs, **convert_kwargs)
        result: dict[str, Any] = {}
        if optimize:
            graph, result = optimize_graph(graph)
        try:
            return cls(graph, result)
        except UnsupportedOp:
            raise
        except Exception as exc:
            raise ConversionError(f"could not prepare {graph.name} for execution: {exc}") from exc

    @property
    def input_names(self) -> list[str]:
        return self.executor.input_names

    @property
    def output_names(self) -> list[str]:
        return self.executor.output_names

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        return self.executor.run({k: _to_numpy(v) for k, v in feeds.items() if k in self.graph.inputs})

    def report(self) -> dict[str, Any]:
        return {**self.executor.report(), **self.optimization}

    def profile(self, feeds: dict[str, Any], runs: int = 3) -> dict[str, Any]:
        """What really ran natively, op by op (``Executor.profile``)."""
        return self.executor.profile({k: _to_numpy(v) for k, v in feeds.items() if k in self.graph.inputs}, runs)


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)

"""Execution plans: a graph specialised to one signature of input shapes and dtypes.

A plan is built from one ordinary run of the executor, which records every value's shape,
dtype and layout.  Then, for every later run with the same signature:

- values that depend only on the input shapes (position ids, shape scalars, the causal part of
  masks) were computed once and are kept;
- the outputs of native kernels live in one arena at offsets from a lifetime analysis, and the
  views of them (Reshape, Transpose, ...) were made once, at bind time;
- each native kernel is one cffi call with its pointers fixed and its arguments checked when the
  plan was compiled (``ops/native_plan.py``); only values computed at run time are looked up,
  and those are checked against the recorded shape and dtype before the call;
- everything else runs as before: the node's kernel on arrays from the environment.

A value that arrives with another shape or dtype than recorded (an op whose output shape
depends on the data) raises ``PlanMismatch`` and the executor drops the plan; a kernel that
returns an error raises ``StepFailed`` and the executor reruns unplanned, which raises the
precise error (an out-of-range token id, say).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import ExecutionError
from .graph import Graph, attr_refs, resolve_attr
from .ops import OPS
from .ops.native_plan import CCall, Meta, Out, Ptr, _Literal, compile_native
from .passes.memory import ALIGN, VIEW_OPS, Buffer, assign_offsets
from .profile import RunProfile, path_of

SHAPE_ONLY_OPS = {"SymSize", "Shape", "Size"}  # read nothing of their input but its shape
STATIC_LIMIT = 4 << 20  # bytes: a bigger shape-only value is recomputed per run, not kept


class PlanMismatch(Exception):
    """A value arrived with another shape or dtype than the plan was built for."""


class StepFailed(Exception):
    """A compiled kernel returned an error code."""


def signature(feeds: dict[str, np.ndarray]) -> tuple:
    return tuple((name, value.shape, value.dtype.str) for name, value in feeds.items())


def meta_of(value: Any) -> Meta | None:
    if not isinstance(value, np.ndarray):
        return None
    flags = value.flags
    return Meta(value.shape, value.dtype, bool(flags.c_contiguous and flags.aligned))


@dataclass
class _Entry:
    """One node of the plan: how it runs ('native', 'view' or 'generic')."""

    index: int
    kind: str
    step: Any  # the executor's _Step
    attrs: dict[str, Any]
    dynamic_refs: bool
    call: CCall | None = None
    release: tuple[str, ...] = ()


class Plan:
    """Built once per signature by ``Plan.build``; ``run`` executes it on an arena."""

    def __init__(self, graph: Graph, entries: list[_Entry], constants: dict[str, Any],
                 metas: dict[str, Meta | None], buffers: list[Buffer], arena_bytes: int,
                 copy_outputs: set[str]):  # fmt: skip
        self.graph = graph
        self.entries = entries
        self.constants = constants
        self.metas = metas
        self.buffers = buffers
        self.arena_bytes = arena_bytes
        self.copy_outputs = copy_outputs
        self._bound: np.ndarray | None = None
        self._env0: dict[str, Any] = {}
        self._steps: list[Callable[[dict[str, Any]], None]] = []
        self._ops: list[_Entry] = []  # beside each step: what a profile attributes it to

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def build(cls, executor: Any, feeds: dict[str, np.ndarray], packed: Callable[[str], Any]
              ) -> tuple["Plan", dict[str, np.ndarray]]:  # fmt: skip
        """Runs the executor once unplanned (its outputs are returned) and plans from what it saw."""
        graph = executor.graph
        candidates = _shape_only_candidates(graph)
        metas: dict[str, Meta | None] = {name: meta_of(value) for name, value in feeds.items()}
        seen: dict[str, Any] = {}

        def observe(name: str, value: Any) -> None:
            metas[name] = meta_of(value)
            if name in candidates:
                seen[name] = value

        outputs = executor.run_unplanned(feeds, observe=observe)
        for name, array in graph.weights.items():
            metas[name] = meta_of(array)
        constants = _keep_static(graph, seen)
        entries = []
        for index, step in enumerate(executor.steps):
            named = [out for out in step.outputs if out]
            if named and all(out in constants for out in named):
                continue  # computed once, at record time (a node with no output, e.g. an assert, stays)
            refs = set(attr_refs(step.attrs))
            dynamic_refs = not refs <= constants.keys()
            attrs = step.attrs if dynamic_refs or not refs else resolve_attr(step.attrs, constants)
            entry = _Entry(index, "generic", step, attrs, dynamic_refs)
            if not dynamic_refs and executor.use_native:
                node = graph.nodes[index]
                call = compile_native(node, attrs, metas, constants, packed)
                if call is not None:
                    entry.kind, entry.call = "native", call
                elif step.op in VIEW_OPS:
                    entry.kind = "view"
            entries.append(entry)
        buffers, copy_outputs = _lifetimes(graph, entries, metas, constants, feeds)
        arena_bytes = assign_offsets(buffers)
        return cls(graph, entries, constants, metas, buffers, arena_bytes, copy_outputs), outputs

    # -- binding to an arena -----------------------------------------------------------------------
    def bind(self, arena: np.ndarray, owner: np.ndarray | None = None) -> None:
        """Makes the arena views, the fixed views of them and one closure per step.  ``owner``
        is the array ``arena`` was cut from (what ``is_bound_to`` compares)."""
        from skillmill.native._lib import ffi

        env0: dict[str, Any] = dict(self.constants)
        for buf in self.buffers:
            meta = self.metas[buf.value]
            nbytes = meta.size * meta.dtype.itemsize
            env0[buf.value] = (
                arena[buf.offset : buf.offset + nbytes].view(meta.dtype).reshape(meta.shape)
            )
        steps, ops = [], []
        for entry in self.entries:
            if entry.kind == "view" and self._fixed_view(entry, env0, arena):
                continue
            if entry.kind == "native":
                steps.append(_native_step(entry, env0, self.metas, ffi))
            else:
                steps.append(_generic_step(entry))
            ops.append(entry)
        self._env0, self._steps, self._ops = env0, steps, ops
        self._bound = arena if owner is None else owner

    def _fixed_view(self, entry: _Entry, env0: dict[str, Any], arena: np.ndarray) -> bool:
        """A view of an arena buffer with fixed attributes is made once, here."""
        step = entry.step
        if any(name and name not in env0 for name in step.inputs):
            return False
        try:
            result = step.kernel(
                [env0[name] if name else None for name in step.inputs], entry.attrs
            )
        except Exception:
            return False
        value = result[0] if isinstance(result, (tuple, list)) else result
        if (
            len(step.outputs) != 1
            or not isinstance(value, np.ndarray)
            or not np.shares_memory(value, arena)
        ):
            return False  # a copy: it must be made each run, from the data of that run
        if meta_of(value) != self.metas.get(step.outputs[0]):
            return False
        env0[step.outputs[0]] = value
        return True

    def is_bound_to(self, arena: np.ndarray | None) -> bool:
        return self._bound is not None and self._bound is arena

    # -- running ------------------------------------------------------------------------------------
    def run(self, inputs: dict[str, np.ndarray], profile: RunProfile | None = None) -> dict[str, np.ndarray]:
        env = dict(self._env0)
        env.update(inputs)
        if profile is None:
            for step in self._steps:
                step(env)
        else:
            for step, entry in zip(self._steps, self._ops):
                kernel = entry.step.kernel
                fallbacks, started = getattr(kernel, "fallbacks", 0), time.perf_counter()
                step(env)
                seconds = time.perf_counter() - started
                if entry.kind == "native":  # one cffi call compiled into the plan
                    path = "native"
                else:
                    path = path_of(entry.step.native, entry.step.op, kernel, fallbacks, VIEW_OPS)
                profile.add(entry.step.op, path, seconds)
        result = {}
        for name in self.graph.outputs:
            value = env[name]
            result[name] = np.array(value) if name in self.copy_outputs else np.asarray(value)
        return result

    def report(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for entry in self.entries:
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
        return {"steps": len(self._steps), "nodes_by_kind": kinds, "shape_only_values": len(self.constants)
                - len(self.graph.weights), "arena_bytes": self.arena_bytes, "buffers": len(self.buffers)}  # fmt: skip


# -- analysis helpers -------------------------------------------------------------------------------
def _shape_only_candidates(graph: Graph) -> set[str]:
    """Values fixed by the input shapes alone: weights, shape reads of inputs, and what is
    computed from nothing else."""
    static = set(graph.weights)
    produced: set[str] = set()
    for node in graph.nodes:
        uses = node.uses()
        if node.op in SHAPE_ONLY_OPS:
            fixed = all(name in graph.inputs or name in static for name in node.inputs if name)
        else:
            fixed = all(name in static for name in uses)
        if fixed:
            produced.update(out for out in node.outputs if out)
            static.update(out for out in node.outputs if out)
    return produced


def _keep_static(graph: Graph, seen: dict[str, Any]) -> dict[str, Any]:
    """The recorded shape-only values worth keeping (small ones, and what derives only from
    kept ones), plus the weights."""
    constants: dict[str, Any] = dict(graph.weights)
    for node in graph.nodes:
        outs = [out for out in node.outputs if out]
        if not outs or any(out not in seen for out in outs):
            continue
        if node.op not in SHAPE_ONLY_OPS and not all(name in constants for name in node.uses()):
            continue
        if any(
            isinstance(seen[out], np.ndarray) and seen[out].nbytes > STATIC_LIMIT for out in outs
        ):
            continue
        for out in outs:
            value = seen[out]
            if isinstance(value, np.ndarray):
                value.setflags(write=False)  # shared by every run
            constants[out] = value
    return constants


def _lifetimes(graph: Graph, entries: list[_Entry], metas: dict[str, Meta | None], constants: dict[str, Any],
               feeds: dict[str, Any]) -> tuple[list[Buffer], set[str]]:  # fmt: skip
    """Arena buffers for native outputs, with lifetimes that cover every value that may share
    memory with them (views, and conservatively any non-native op's output), and the release
    lists of values that live outside the arena.  Returns (buffers, outputs to copy)."""
    outputs = set(graph.outputs)
    roots: dict[str, set[str]] = {}
    buffers: dict[str, Buffer] = {}
    last_use: dict[str, int] = {}
    for entry in entries:
        node = graph.nodes[entry.index]
        for name in node.uses():
            last_use[name] = entry.index
            for root in roots.get(name, ()):
                buffers[root].last = max(buffers[root].last, entry.index)
        if entry.kind == "native":
            out = node.outputs[0]
            if out not in outputs:
                meta = metas[out]
                size = -(-max(meta.size * meta.dtype.itemsize, 1) // ALIGN) * ALIGN
                buffers[out] = Buffer(out, size, entry.index, entry.index)
                roots[out] = {out}
        else:
            shared = set().union(*(roots.get(name, set()) for name in node.inputs if name))
            for out in node.outputs:
                if out:
                    roots[out] = shared
    end = len(graph.nodes)
    copy_outputs = set()
    for name in outputs:
        for root in roots.get(name, ()):
            buffers[root].last = end
            copy_outputs.add(name)
        if name in constants or name in feeds:
            copy_outputs.add(name)
    # values outside the arena and the constants are dropped from the run's environment after
    # their last use, so peak memory follows what is live
    arena_values = {name for name, rs in roots.items() if rs}
    releases: dict[int, list[str]] = {}
    for name, index in last_use.items():
        if name not in outputs and name not in constants and name not in arena_values:
            releases.setdefault(index, []).append(name)
    for entry in entries:
        entry.release = tuple(releases.get(entry.index, ()))
    return list(buffers.values()), copy_outputs


# -- step closures ----------------------------------------------------------------------------------
_CTYPES: dict[np.dtype, str] = {np.dtype(np.float32): "float[]", np.dtype(np.int64): "int64_t[]",
                                np.dtype(np.int8): "int8_t[]", np.dtype(np.uint8): "uint8_t[]"}  # fmt: skip


def _native_step(entry: _Entry, env0: dict[str, Any], metas: dict[str, Meta | None], ffi: Any):
    node_name, call = entry.step.node_name, entry.call
    out_name = entry.step.outputs[0]
    fixed: list[Any] = []
    dynamic: list[tuple[int, str, int, Meta, Any]] = []
    fresh = None
    for position, arg in enumerate(call.args):
        if isinstance(arg, Ptr):
            meta = metas[arg.name]
            ctype = ffi.typeof(_CTYPES[meta.dtype])
            if arg.name in env0:
                array = env0[arg.name]
                if meta_of(array) != meta:
                    raise PlanMismatch(f"{arg.name} is laid out differently from the recorded run")
                pointer = ffi.from_buffer(ctype, array)
                fixed.append(pointer + arg.offset if arg.offset else pointer)
            else:
                fixed.append(None)
                dynamic.append((position, arg.name, arg.offset, meta, ctype))
        elif isinstance(arg, Out):
            if out_name in env0:
                fixed.append(
                    ffi.from_buffer(ffi.typeof(_CTYPES[metas[out_name].dtype]), env0[out_name])
                )
            else:  # a graph output: a fresh array each run, handed to the caller
                fixed.append(None)
                meta = metas[out_name]
                fresh = (position, meta.shape, meta.dtype, ffi.typeof(_CTYPES[meta.dtype]))
        elif isinstance(arg, _Literal):
            fixed.append(ffi.from_buffer(ffi.typeof(arg.ctype), arg.array))
        elif arg is None:
            fixed.append(ffi.NULL)
        else:
            fixed.append(arg)
    fn, release = call.fn, entry.release
    keep = call.keep  # noqa: F841 - the closure holds the arrays behind literal pointers

    if not dynamic and fresh is None and not release:
        bound = functools.partial(fn, *fixed)

        def step(env: dict[str, Any]) -> None:
            if bound():
                raise StepFailed(node_name)

        return step

    from_buffer = ffi.from_buffer

    def step(env: dict[str, Any]) -> None:
        args = list(fixed)
        for position, name, offset, meta, ctype in dynamic:
            array = env[name]
            if array.shape != meta.shape or array.dtype != meta.dtype:
                raise PlanMismatch(
                    f"{name}: {array.dtype}{list(array.shape)}, planned {meta.dtype}{list(meta.shape)}"
                )
            if not (array.flags.c_contiguous and array.flags.aligned):
                array = np.ascontiguousarray(array)
            pointer = from_buffer(ctype, array)
            args[position] = pointer + offset if offset else pointer
        if fresh is not None:
            out = np.empty(fresh[1], fresh[2])
            args[fresh[0]] = from_buffer(fresh[3], out)
            env[out_name] = out
        if fn(*args):
            raise StepFailed(node_name)
        for name in release:
            env.pop(name, None)

    step.keep = keep  # type: ignore[attr-defined]
    return step


def _generic_step(entry: _Entry):
    step_def = entry.step
    kernel, inputs, outputs = step_def.kernel, step_def.inputs, step_def.outputs
    attrs, dynamic_refs, release = entry.attrs, entry.dynamic_refs, entry.release
    single = len(outputs) == 1

    def step(env: dict[str, Any]) -> None:
        args = [env[name] if name else None for name in inputs]
        try:
            result = kernel(args, resolve_attr(attrs, env) if dynamic_refs else attrs)
        except Exception as exc:
            raise ExecutionError(
                f"{step_def.op} failed: {type(exc).__name__}: {exc}", step_def.node_name
            ) from exc
        if single:
            env[outputs[0]] = result[0] if isinstance(result, (tuple, list)) else result
        else:
            for name, value in zip(outputs, result):
                if name:
                    env[name] = value
        for name in release:
            env.pop(name, None)

    return step


__all__ = ["Plan", "PlanMismatch", "StepFailed", "signature"]

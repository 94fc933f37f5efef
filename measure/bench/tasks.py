"""What the task layer costs: ``skill(texts, task=...)`` against the bare forward it wraps,
``skill.process`` on the same tensors, at (batch, seq) = (32, 128) on a MiniLM-sized BERT head
(random weights from all-MiniLM-L6-v2's config, its real WordPiece tokenizer: speed does not
depend on weight values).  Tokenizing is timed apart, so the post-processing share is
``task - tokenize - forward``.

    generate-skills bench tasks [--repeats 5] [--engine native|torch]
    python -m skillmill.measure.bench.tasks

Tasks: text-classification (the pipeline batched 32 at a time), token-classification (simple
aggregation; a bias towards "O" keeps the entity count realistic) and question-answering (32 questions over 128-token contexts, one batch)."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Any

HEADS = {"text-classification": "BertForSequenceClassification",
         "token-classification": "BertForTokenClassification",
         "question-answering": "BertForQuestionAnswering"}  # fmt: skip
BATCH, SEQ = 32, 128
FLOOR = 1.10  # the issue's: post-processing adds at most 10% over the bare forward


def _checkpoint(folder: str, class_name: str) -> str:
    import torch
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    from .models import minilm_folder

    config = AutoConfig.from_pretrained(minilm_folder())
    if class_name.endswith("QuestionAnswering"):
        config.num_labels = 2  # start and end
    else:
        config.id2label = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
        config.label2id = {v: k for k, v in config.id2label.items()}
    torch.manual_seed(0)
    model = getattr(transformers, class_name)(config).eval()
    if class_name.endswith("TokenClassification"):
        # Random weights tag every token as some entity: thousands of entity groups that a
        # trained tagger never produces.  A bias towards "O" leaves a few percent of tokens
        # tagged, as on real text, so the aggregation step does its usual amount of work.
        with torch.no_grad():
            model.classifier.bias[0] = 1.3  # ~5% of tokens tagged (measured: 1.1 gives 11%)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_folder()).save_pretrained(folder)
    return folder


def _texts(tokenizer: Any) -> list[str]:
    """BATCH texts of exactly SEQ tokens with [CLS] and [SEP] (the corpus, wrapped around)."""
    from skillmill.runtime.processors import corpus_lines

    words = " ".join(corpus_lines()).split()
    texts = []
    for i in range(BATCH):
        ids = tokenizer(" ".join(words[i * 7:] + words[: i * 7]), add_special_tokens=False)["input_ids"]
        texts.append(tokenizer.decode(ids[: SEQ - 2]))
    return texts


def _median_ms(run: Any, repeats: int) -> float:
    run()  # warm: the first call converts and proves the engine
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def measure(task: str, repeats: int = 5, engine: str = "native") -> dict[str, Any]:
    from skillmill import load_skill

    with tempfile.TemporaryDirectory(prefix="skillmill-bench-tasks-") as folder:
        skill = load_skill(HEADS[task], model=_checkpoint(folder, HEADS[task]), device="cpu",
                           native=None if engine == "native" else False)  # fmt: skip
        tokenizer = skill.tokenizer
        texts = _texts(tokenizer)
        if task == "question-answering":
            inputs = [{"question": "Where does John Smith live?", "context": t} for t in texts]
            options: dict[str, Any] = {"max_seq_len": SEQ + 16}
            tokenize = lambda: tokenizer(["Where does John Smith live?"] * BATCH, texts, padding=True,  # noqa: E731
                                         truncation="only_second", max_length=SEQ + 16,
                                         return_offsets_mapping=True, return_tensors="pt")  # fmt: skip
        else:
            inputs, options = texts, {"batch_size": BATCH}
            if task == "token-classification":
                options["aggregation_strategy"] = "simple"
            tokenize = lambda: tokenizer(texts, padding=True, truncation=True, max_length=SEQ,  # noqa: E731
                                         return_tensors="pt")  # fmt: skip
        feed = {k: v for k, v in tokenize().items() if k in skill.input_names}
        forward_ms = _median_ms(lambda: skill.process(feed), repeats)
        tokenize_ms = _median_ms(tokenize, repeats)
        skill.run_task(inputs, task=task, **options)  # warm
        calls = []  # (whole task call, the forward passes inside it): one call, so no drift between
        for _ in range(repeats):
            start = time.perf_counter()
            ran = skill.run_task(inputs, task=task, **options)
            whole = (time.perf_counter() - start) * 1000.0
            calls.append((whole, sum(r.latency_ms for r in ran.results)))
        shape = tuple(feed["input_ids"].shape)
    task_ms = statistics.median(w for w, _ in calls)
    inside_ms = statistics.median(f for _, f in calls)
    layer = statistics.median((w - f) / f for w, f in calls)
    entities = sum(len(row) for row in ran.output) if task == "token-classification" else None
    return {"task": task, "class": HEADS[task], "shape": list(shape), "engines": ran.engines,
            "forward_ms": round(forward_ms, 2), "tokenize_ms": round(tokenize_ms, 2),
            "task_ms": round(task_ms, 2), "forward_in_task_ms": round(inside_ms, 2),
            "layer_share": round(layer, 4),
            "layer_share_without_tokenizing": round(layer - tokenize_ms / inside_ms, 4),
            "entities": entities}  # fmt: skip


def run(tasks: list[str], repeats: int, engine: str, threads: int = 2) -> dict[str, Any]:
    """Each task in its own process (measure/harness.py), beside the machine it ran on."""
    from ..harness import json_from_module
    from ..machine import describe_machine

    rows = []
    for task in tasks:
        data, why, _ = json_from_module("skillmill.measure.bench.tasks",
                                        ["--one", task, "--repeats", str(repeats), "--engine", engine,
                                         "--threads", str(threads)], timeout=900)  # fmt: skip
        rows.append(data if data else {"task": task, "error": why})
    return {"machine": describe_machine(threads), "engine": engine, "repeats": repeats,
            "floor": FLOOR, "rows": rows}  # fmt: skip


def format_report(result: dict[str, Any]) -> str:
    from ..machine import machine_line

    lines = [machine_line(result["machine"]),
             f"task layer vs the forward passes inside the same call, at ({BATCH}, {SEQ}), engine "
             f"{result['engine']}, median of {result['repeats']} calls; floor: the layer without "
             f"tokenizing adds <= {100 * (FLOOR - 1):.0f}%", "",
             "| task | engines | forward alone ms | task call ms | forward inside ms | tokenize ms | layer adds | without tokenizing |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"| {row['task']} | failed: {row['error']} | | | | | | |")
            continue
        lines.append(f"| {row['task']} | {', '.join(row['engines'])} | {row['forward_ms']} | {row['task_ms']} | "
                     f"{row['forward_in_task_ms']} | {row['tokenize_ms']} | {100 * row['layer_share']:.1f}% | "
                     f"{100 * row['layer_share_without_tokenizing']:.1f}% |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one", choices=list(HEADS), help="Measure one task here and print JSON.")
    parser.add_argument("--tasks", default=",".join(HEADS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--engine", choices=["native", "torch"], default="native")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)
    if args.one:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.one, args.repeats, args.engine)))
        return 0
    result = run([t for t in args.tasks.split(",") if t], args.repeats, args.engine, args.threads)
    print(format_report(result))
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

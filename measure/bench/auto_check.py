"""Does auto pick the fastest correct engine?  Issue 22's 20-pair check.

    generate-skills bench auto [--pairs NAME,...] [--repeats 10] [--rounds 2] [--threads 1]

Two runs of ``measure.bench.backends.run_backends`` (every engine in its own process, as a
user's process runs only the engine auto chose, alternated over ``rounds`` rounds), sharing
nothing but the machine:

1. **The tune.** Its figures go to a fresh decision table (a temporary file, never the user's)
   through ``record_decisions``, as ``generate-skills bench backends --record`` writes them.
   Auto's pick for each (model, shape) pair is what ``decisions.decide`` reads from that table,
   with no start-up budget (a long-running process; the check is about steady-state speed).
2. **The check.** The fastest correct engine of a pair is the one with the lowest median there
   whose parity passed.

A pair passes when auto's pick is within ``WITHIN`` (5%) of that fastest engine's median in the
check.  Issue 22's floor: at least 19 of 20 pairs."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .backends import MEASURED, describe_this_machine, record_decisions, run_backends

FORMAT = "skillmill-bench-auto-check"
VERSION = 1
WITHIN = 0.05  # auto's pick may be this much slower than the fastest correct engine
FLOOR = 19  # of 20 pairs
ENGINES = ("native", "torch", "openvino", "onnxruntime")

# (name, model class, model, shapes): MiniLM (real weights) and tiny models of the floor
# families (encoder, decoder, encoder-decoder, vision, audio), batch 1 and 32, short and long
# sequences; 20 (model, shape) pairs in all.
PAIRS: tuple[tuple[str, str, str, tuple[tuple[int, int], ...]], ...] = (
    ("minilm", "BertModel", "minilm", ((1, 16), (1, 128), (32, 16), (32, 128))),
    ("gpt2", "GPT2Model", "tiny", ((1, 16), (1, 128), (32, 16), (32, 128))),
    ("llama", "LlamaModel", "tiny", ((1, 16), (1, 128), (32, 16), (32, 128))),
    ("t5", "T5Model", "tiny", ((1, 16), (32, 128))),
    ("vit", "ViTModel", "tiny", ((1, 16), (32, 16))),
    ("wav2vec2", "Wav2Vec2Model", "tiny", ((1, 16), (32, 16))),
    ("distilbert", "DistilBertModel", "tiny", ((1, 16), (32, 128))),
)


def _model_path(model: str) -> str:
    if model == "minilm":
        from .models import minilm_folder

        return str(minilm_folder())
    return model


def auto_picks(class_name: str, model: str, shapes, table: Path) -> dict[str, Any]:
    """Per shape label, what auto picks from ``table`` with no start-up budget, and why."""
    from skillmill import load_skill
    from skillmill.runtime import decisions
    from skillmill.runtime.decisions import Constraints

    skill = load_skill(class_name, model=model, device="cpu")
    constraints = Constraints(startup_budget_s=None)
    data = decisions.read_table(table)
    picks = {}
    for batch_size, seq_len in shapes:
        batch = skill.example_inputs(batch_size=batch_size, seq_len=seq_len)
        choice = decisions.decide(skill, batch, constraints, table=data)
        picks[f"{batch_size}x{seq_len}"] = {"engine": choice.engine,
                                           "explanation": choice.explanation}  # fmt: skip
    return picks


def verdicts(picks: dict[str, Any], check: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per shape: auto's pick, the check's fastest correct engine, both medians, and
    whether the pick is within ``WITHIN`` of the fastest."""
    rows = []
    for label, pick in picks.items():
        cells = {name: engine["shapes"].get(label, {}) for name, engine in check["engines"].items()}
        fair = {n: c["median_ms"] for n, c in cells.items()
                if c.get("status") == MEASURED and c.get("parity_passed") and "median_ms" in c}  # fmt: skip
        fastest = min(fair, key=fair.get) if fair else None
        chosen = pick["engine"]
        chosen_ms = fair.get(chosen) if chosen else None
        row = {"shape": label, "auto": chosen, "fastest": fastest,
               "auto_ms": chosen_ms, "fastest_ms": fair.get(fastest) if fastest else None,
               "medians_ms": fair, "explanation": pick["explanation"]}  # fmt: skip
        if fastest is None:
            row.update(passed=False, reason="no engine measured correct in the check")
        elif chosen is None:
            row.update(passed=False, reason=f"auto picked nothing: {pick['explanation']}")
        elif chosen_ms is None:
            status = cells.get(chosen, {}).get("reason") or "not measured correct in the check"
            row.update(passed=False, reason=f"auto's pick {chosen}: {status}")
        else:
            ratio = chosen_ms / fair[fastest]
            row.update(ratio=round(ratio, 4), passed=ratio <= 1.0 + WITHIN)
        rows.append(row)
    return rows


def run_check(pairs=PAIRS, repeats: int = 10, rounds: int = 2, threads: int = 1,
              echo: Callable[[str], Any] | None = None, progress: bool = True,
              command: str | None = None) -> dict[str, Any]:  # fmt: skip
    echo = echo or (lambda line: None)
    machine = describe_this_machine(threads)
    echo(machine["line"])
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    models = []
    with tempfile.TemporaryDirectory(prefix="skillmill-auto-check-") as scratch:
        table = Path(scratch) / "decisions.json"
        for name, class_name, model, shapes in pairs:
            path = _model_path(model)
            runs = {}
            for step in ("tune", "check"):
                echo(f"{name}: {step} ({class_name}, {', '.join(f'{b}x{s}' for b, s in shapes)})")
                runs[step] = run_backends(class_name, path, shapes, engines=ENGINES, rounds=rounds,
                                          repeats=repeats, threads=threads, include_compiled=False,
                                          progress=progress)  # fmt: skip
            record_decisions(runs["tune"], table)
            picks = auto_picks(class_name, path, shapes, table)
            models.append({"name": name, "class_name": class_name, "model": model,
                           "tune_fastest": runs["tune"]["fastest"],
                           "pairs": verdicts(picks, runs["check"])})  # fmt: skip
    all_pairs = [p for m in models for p in m["pairs"]]
    passed = sum(1 for p in all_pairs if p["passed"])
    return {"format": FORMAT, "version": VERSION, "command": command, "machine": machine,
            "started_at": started, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "within": WITHIN, "floor": f"{FLOOR} of {len(all_pairs)}", "repeats": repeats,
            "rounds": rounds, "threads": threads, "engines": list(ENGINES), "models": models,
            "passed": passed, "pairs": len(all_pairs),
            "floor_met": passed >= FLOOR and len(all_pairs) >= 20}  # fmt: skip


def format_report(result: dict[str, Any]) -> str:
    lines = [result["machine"]["line"], "",
             f"{'model':<11}{'shape':>8}  {'auto':<12}{'fastest':<12}{'auto ms':>10}"
             f"{'fastest ms':>11}{'ratio':>7}  verdict"]  # fmt: skip
    for model in result["models"]:
        for pair in model["pairs"]:
            auto_ms, fast_ms = pair.get("auto_ms"), pair.get("fastest_ms")
            ratio = pair.get("ratio")
            verdict = "ok" if pair["passed"] else f"MISS: {pair.get('reason') or 'slower than 5%'}"
            lines.append(f"{model['name']:<11}{pair['shape']:>8}  {str(pair.get('auto')):<12}"
                         f"{str(pair.get('fastest')):<12}"
                         f"{(f'{auto_ms:.3f}' if auto_ms else '-'):>10}"
                         f"{(f'{fast_ms:.3f}' if fast_ms else '-'):>11}"
                         f"{(f'{ratio:.3f}' if ratio else '-'):>7}  {verdict}")  # fmt: skip
    lines.append("")
    lines.append(f"auto's pick within {result['within']:.0%} of the fastest correct engine in "
                 f"{result['passed']} of {result['pairs']} pairs (floor {result['floor']}): "
                 f"{'met' if result['floor_met'] else 'NOT met'}")  # fmt: skip
    return "\n".join(lines)

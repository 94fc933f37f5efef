"""`generate-skills task-coverage`: every (registered class, pipeline task) pair's tiny model doing
the task through its skill and through transformers.pipeline (measure/sweeps/tasks.py), written to
docs/coverage/tasks.yaml and summarised in docs/coverage.md."""

from __future__ import annotations

import sys

import click

from .commands import ray_option, sweep_runner


@click.command("task-coverage")
@click.option("--pair", "pairs", multiple=True, metavar="CLASS/TASK",
              help="Only these pairs, e.g. BertForTokenClassification/token-classification.")
@click.option("--task", "tasks", multiple=True, metavar="TASK", help="Only the pairs of these tasks.")
@click.option("--engine", type=click.Choice(["torch", "native"]), default="torch", show_default=True,
              help="What computes the skill's forward passes: PyTorch eager (the task layer alone, "
                   "seconds per pair) or the native executor (adds its conversion and proof).")
@click.option("--jobs", "-j", type=click.IntRange(1, 16), default=1, show_default=True)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds per pair.")
@click.option("--resume", is_flag=True, help="Keep the committed report's rows; measure only pairs it lacks.")
@click.option("--no-write", is_flag=True, help="Print the summary only; keep the committed report.")
@ray_option
def task_coverage(pairs, tasks, engine, jobs, timeout, resume, no_write, ray_address):
    """Compare every class's tasks with transformers.pipeline on its tiny model; write the report."""
    from tqdm import tqdm

    from skillmill.measure.sweeps import tasks as sweep

    from .coverage import write_docs

    every = sweep.task_pairs()
    unknown = [p for p in pairs if p not in every]
    if unknown:
        raise click.UsageError(f"not (registered class)/(pipeline task) pairs: {', '.join(unknown)}")
    chosen = list(pairs) or [p for p in every if not tasks or p.split("/", 1)[1] in tasks]
    if not chosen:
        raise click.UsageError(f"no pairs for task(s) {', '.join(tasks)}")
    committed = (sweep.load_report() or {}).get("pairs_checked", {})
    kept = {} if no_write else {p: r for p, r in committed.items()
                                if p in every and r["status"] != sweep.NOT_MEASURED}  # fmt: skip
    if resume:
        chosen = [p for p in chosen if p not in kept]
    # Rarer tasks first: a sweep stopped part way has still reached every task.
    per_task = {t: sum(p.endswith("/" + t) for p in chosen) for t in {p.split("/", 1)[1] for p in chosen}}
    chosen.sort(key=lambda p: (per_task[p.split("/", 1)[1]], p))
    runner = sweep_runner(ray_address)
    bar = tqdm(total=len(chosen), desc="task coverage", unit="pair", file=sys.stderr)
    runner.on_progress = bar.set_postfix_str  # the Ray runner: queued, running and done per node
    measured: dict[str, dict] = {}

    def report(pair: str, row: dict) -> None:
        bar.update(1)
        measured[pair] = row
        if row["status"] not in ("pass", "pipeline_failed"):
            bar.write(f"{row['status'].upper()} {pair}: {row.get('reason', '')[:150]}")
        if not no_write and len(measured) % 25 == 0:  # an interrupted sweep keeps its rows
            sweep.write_report(sweep.with_unmeasured({**kept, **measured}, every))

    try:
        sweep.run(chosen, jobs=jobs, timeout=timeout, engine=engine, on_result=report, runner=runner)
    finally:
        runner.close()
        bar.close()
        if not no_write and measured:
            written = [sweep.write_report(sweep.with_unmeasured({**kept, **measured}, every)), *write_docs()]
            click.echo("wrote " + ", ".join(str(p) for p in written))
    done = sweep.summary(measured)
    click.echo(f"tasks: {done['passed']} of {done['pipeline_runs']} pairs where the pipeline runs pass "
               f"({100 * done['share']:.1f}%; floor {100 * sweep.FLOOR:.0f}%); "
               f"{done['pairs'] - done['pipeline_runs']} pairs where it does not")  # fmt: skip

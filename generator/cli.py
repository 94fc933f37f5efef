"""`generate-skills`: render skills, scan transformers, report hardware, list, measure.

Run `generate-skills --help` (and `generate-skills COMMAND --help`) for every option."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "generated"


def fail(message: str, code: int = 2) -> None:
    click.echo(f"generate-skills: error: {message}", err=True)
    sys.exit(code)


def _declarations(targets_dirs, hardware: str | None):
    from .targets import TargetDeclarationError, load_declarations

    try:
        declarations = load_declarations(targets_dirs)
    except TargetDeclarationError as exc:
        fail(str(exc))
    if hardware:
        wanted = [h.strip() for h in hardware.split(",") if h.strip()]
        known = {d["name"] for d in declarations}
        unknown = [h for h in wanted if h not in known]
        if unknown:
            fail(f"unknown hardware {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        # The CPU stays as the fallback every skill needs.
        declarations = [d for d in declarations if d["name"] in wanted or d["name"] == "cpu"]
    return declarations


def _registry():
    from skillmill.registry import load_registry

    try:
        return load_registry()
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "models", multiple=True, metavar="TYPE",
              help="Model type to (re)generate, e.g. bert; repeat for several. Default: all.")
@click.option("--all", "all_types", is_flag=True, help="Generate every model type (the default).")
@click.option("--hardware", metavar="LIST",
              help="Comma-separated hardware targets to render (cpu is always kept as fallback). "
                   "Default: every declared target.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Folder to write. Default: the package's generated/ ({DEFAULT_OUTPUT}).")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 with a unified diff if the folder, or a doc rendered "
                   "from registry/ and registry/support/ (support matrix, coverage.md), is stale.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Worker processes for rendering.")
@click.option("--targets-dir", "targets_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="Extra folder of hardware targets (<name>.yaml + <name>.py.j2); repeatable.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def main(ctx, models, all_types, hardware, output, check, jobs, targets_dirs, quiet):
    """Generate one skill module per transformers model type into generated/.

    \b
    Examples:
      generate-skills                       # all 700+ model types
      generate-skills --model bert --model gpt2
      generate-skills --check               # CI: fail with a diff if generated/ is stale
      generate-skills list --modality vision --json
      generate-skills hardware
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"targets_dirs": targets_dirs, "hardware": hardware}
        return
    if models and all_types:
        fail("give --model or --all, not both")
    from .render import TARGETS_MODULE, TemplateError
    from .write import dropped_targets, render_tree, replace_tree, stale_diff, write_files

    registry = _registry()
    declarations = _declarations(targets_dirs, hardware)
    types = list(registry.model_types) if not models else list(dict.fromkeys(models))
    unknown = [t for t in types if t not in registry.model_types]
    if unknown:
        import difflib

        hints = [difflib.get_close_matches(t, registry.model_types, n=1) for t in unknown]
        hint = "; ".join(f"{t} (did you mean {h[0]}?)" if h else t for t, h in zip(unknown, hints))
        fail(f"unknown model type: {hint}")
    output = output or DEFAULT_OUTPUT
    start = time.perf_counter()
    try:
        from tqdm import tqdm

        with tqdm(total=len(types), desc="rendering", unit="module", disable=quiet or len(types) < 10,
                  file=sys.stderr) as bar:
            files = render_tree(registry, declarations, types, jobs=jobs, progress=bar.update)
    except TemplateError as exc:
        fail(str(exc))
    complete = not models
    docs = {}
    if complete and output == DEFAULT_OUTPUT:  # the support matrix documents the default tree
        from .coverage import REPORT_MD, render_markdown
        from .docs import DOCS_DIR, SUPPORT_MATRIX, render_support_matrix

        # Both rendered from registry/support/ as well: a sweep's report and its docs go together.
        docs = {SUPPORT_MATRIX: render_support_matrix(registry, declarations),
                REPORT_MD.name: render_markdown()}  # fmt: skip
    if check:
        diff = stale_diff(files, output, complete=complete)
        if docs:
            diff += stale_diff(docs, DOCS_DIR, complete=False)
        if diff:
            click.echo(diff, nl=False)
            fail(f"{output} is stale: run `generate-skills` and commit the result", code=1)
        if docs:
            from skillmill.registry import support

            broken = support.problems(registry.base_classes)
            if broken:
                click.echo("\n".join(broken))
                fail("the support table (registry/support/) is inconsistent: rerun the sweep "
                     "(`generate-skills coverage --backend NAME`)", code=1)
        click.echo(f"{output}: {len(types)} skill modules (+ index, {TARGETS_MODULE}) up to date")
        return
    dropped = [] if complete else dropped_targets(files, output)
    if dropped:  # the other modules there import TARGETS from the same _targets.py
        fail(f"{output}/{TARGETS_MODULE} would lose {', '.join(dropped)}, which modules this run "
             "does not rewrite may use: render every model type, or give another --output")
    if complete:
        replace_tree(files, output)
    else:
        write_files(files, output)
    if docs:
        write_files(docs, DOCS_DIR)
    click.echo(f"wrote {len(types)} skill modules (+ index, {TARGETS_MODULE}) to {output} in "
               f"{time.perf_counter() - start:.1f} s")


@main.command("list")
@click.option("--modality", help="Only this modality (text, vision, audio, video, multimodal, time-series, other).")
@click.option("--task", help="Only classes with this task (e.g. text-generation).")
@click.option("--family", help="Only this family (encoder, decoder, encoder-decoder, vision-encoder, ...).")
@click.option("--model-type", help="Only this model type.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per class, one per line.")
def list_command(modality, task, family, model_type, as_json):
    """List registered model classes, filtered."""
    registry = _registry()
    rows = [r for _, r in sorted(registry.classes.items())
            if (not modality or r.modality == modality) and (not task or task in r.tasks)
            and (not family or r.family == family) and (not model_type or r.model_type == model_type)]
    for r in rows:
        if as_json:
            click.echo(json.dumps({"class_name": r.class_name, **r.as_dict()}, sort_keys=True))
        else:
            click.echo(f"{r.class_name:<55} {r.model_type:<28} {r.modality:<11} {r.family:<19} "
                       f"{','.join(r.tasks)}")
    if not as_json:
        click.echo(f"{len(rows)} classes", err=True)


@main.command()
@click.option("--check", is_flag=True, help="Exit 1 if the committed snapshot differs from a fresh scan.")
@click.pass_obj
def scan(obj, check):
    """Rescan the installed transformers into registry/registry.yaml."""
    from skillmill.registry.snapshot import SNAPSHOT_PATH, rescan

    declarations = _declarations((obj or {}).get("targets_dirs", ()), None)
    start = time.perf_counter()
    text = rescan(declarations)
    if check:
        old = SNAPSHOT_PATH.read_text(encoding="utf-8") if SNAPSHOT_PATH.exists() else ""
        if old != text:
            import difflib

            click.echo("".join(list(difflib.unified_diff(
                old.splitlines(True), text.splitlines(True), "a/registry.yaml", "b/registry.yaml"))[:200]))
            fail("registry/registry.yaml is stale: run `generate-skills scan`", code=1)
        click.echo("registry/registry.yaml is up to date")
        return
    from .write import write_files

    write_files({SNAPSHOT_PATH.name: text}, SNAPSHOT_PATH.parent)
    from skillmill.registry.snapshot import parse

    registry = parse(text)
    click.echo(f"scanned transformers {registry.transformers_version}: {len(registry.classes)} classes, "
               f"{len(registry.model_types)} model types ({len(registry.base_classes)} base) in "
               f"{time.perf_counter() - start:.1f} s -> {SNAPSHOT_PATH}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def hardware(obj, as_json):
    """Detect every declared hardware target and the CPU's SIMD features."""
    from skillmill.runtime.hardware import hardware_report

    report = hardware_report(_declarations((obj or {}).get("targets_dirs", ()), None))
    try:
        from skillmill import native

        report["native"] = native.info() if native.available() else {"available": False, "reason": native.unavailable_reason()}
    except (ImportError, AttributeError) as exc:
        report["native"] = {"available": False, "reason": str(exc)}
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    features = ", ".join(k for k, v in report["cpu_features"].items() if v) or "none"
    click.echo(f"CPU SIMD: {features} (best: {report['best_simd']})")
    click.echo(f"native kernels: {report['native']}")
    for t in report["targets"]:
        mark = "yes" if t["available"] else "no "
        version = f" [{t['version']}]" if t["version"] else ""
        click.echo(f"  {mark}  {t['name']:<9} {t['reason']}{version}")


from .commands import register_commands  # noqa: E402  (bench, coverage, demo live beside)

register_commands(main)

from skillmill.serving.commands import register_serving_commands  # noqa: E402  (serve, mcp)

register_serving_commands(main)

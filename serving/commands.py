"""`generate-skills serve`, `generate-skills mcp` and `generate-skills bench serve`."""

from __future__ import annotations

import logging
import sys

import click

BATCH_HELP = "Most rows per model call (dynamic batching); 1 turns batching off."


def _served_model(skill: str, model: str, device: str, name: str | None, batch_size: int,
                  **skill_options):  # fmt: skip
    from skillmill.runtime.errors import SkillError

    from .engine import ServedModel, ServeError

    try:
        return ServedModel(skill, model, device=device, model_id=name, max_rows=batch_size,
                           skill_options=skill_options)  # fmt: skip
    except (ServeError, SkillError, KeyError) as exc:
        raise click.ClickException(str(exc.args[0] if exc.args else exc)) from None


def set_compute_threads(n: int) -> None:
    """Both compute pools; the model thread shares the cores with the HTTP event loop."""
    import torch

    torch.set_num_threads(n)
    try:
        from skillmill import native

        if native.available():
            native.set_num_threads(n)
    except (ImportError, AttributeError):
        pass


@click.command()
@click.option(
    "--skill",
    "skill",
    required=True,
    metavar="CLASS",
    help="transformers class whose skill serves, e.g. BertModel or GPT2LMHeadModel.",
)
@click.option(
    "--model",
    required=True,
    metavar="DIR|tiny",
    help="Local checkpoint folder, or 'tiny' for the tiny random model.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, max, ...")
@click.option(
    "--precision",
    default=None,
    type=click.Choice(["float32", "bf16"]),
    help="What to compute at (default: SKILLMILL_PRECISION, else float32).",
)
@click.option(
    "--quantize",
    default=None,
    type=click.Choice(["int8", "q4_0"]),
    help="Quantized weights, run by the native executor (see `generate-skills quantize` for "
    "what a scheme costs in quality); /health says what ran.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--name", default=None, help="Model id clients use (default: from the folder).")
@click.option(
    "--batch-size", default=32, show_default=True, type=click.IntRange(1, 1024), help=BATCH_HELP
)
@click.option(
    "--max-wait-ms",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 1000),
    help="How long the oldest waiting request waits for others to batch with.",
)
@click.option(
    "--max-batch-tokens",
    default=16384,
    show_default=True,
    type=click.IntRange(1),
    help="Most tokens per model batch (encoders; summed over inputs, as TEI). A longer input "
    "is refused with 413, or truncated when the request asks for truncation.",
)
@click.option(
    "--max-concurrent-requests",
    "--max-queue",
    "max_concurrent_requests",
    default=512,
    show_default=True,
    type=click.IntRange(1),
    help="Most requests admitted at once (waiting or in the model); beyond it, HTTP 429.",
)
@click.option(
    "--max-body-bytes", default=2 * 1024 * 1024, show_default=True, type=click.IntRange(1024)
)
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(1, 256),
    help="Compute threads for torch and the native kernels (default: theirs).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(
    skill,
    model,
    device,
    precision,
    quantize,
    host,
    port,
    name,
    batch_size,
    max_wait_ms,
    max_batch_tokens,
    max_concurrent_requests,
    max_body_bytes,
    threads,
    log_level,
):
    """Serve a skill over an OpenAI-compatible HTTP API (FastAPI + uvicorn).

    \b
    Endpoints: /v1/models, /v1/embeddings (encoders), /v1/completions and
    /v1/chat/completions (causal LMs, stream=true for SSE), /health, /metrics;
    text-embeddings-inference's /embed, /predict and /rerank (sequence
    classifiers, cross-encoders) and /tokenize.
    Example:
      generate-skills serve --skill GPT2LMHeadModel --model tiny --port 8000
    """
    from .app import ServeSettings
    from .server import serve_forever

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    if threads:
        set_compute_threads(threads)
    served = _served_model(
        skill, model, device, name, batch_size, precision=precision, quantize=quantize
    )
    where = f"{served.backend} at {served.precision}" + (
        f" (fallback: {served.fallback_reason})" if served.fallback_reason else ""
    )
    click.echo(
        f"serving {served.id} ({served.class_name}, {served.kind}) on {where}; "
        f"loaded in {served.load_seconds:.1f} s",
        err=True,
    )
    settings = ServeSettings(
        batch_size=batch_size,
        max_wait_ms=max_wait_ms,
        max_body_bytes=max_body_bytes,
        max_batch_tokens=max_batch_tokens,
        max_concurrent_requests=max_concurrent_requests,
    )
    serve_forever(served, settings, host, port, log_level=log_level)


@click.command()
@click.option(
    "--http",
    "http_port",
    type=click.IntRange(1, 65535),
    default=None,
    metavar="PORT",
    help="Serve streamable HTTP on this port (at /mcp) instead of stdio.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Host for --http.")
def mcp(http_port, host):
    """Run the MCP server (stdio by default) with skillmill's tools."""
    from .mcp_server import build_server

    server = build_server()
    if http_port is None:
        server.run("stdio")
    else:
        click.echo(f"MCP streamable HTTP on http://{host}:{http_port}/mcp", err=True)
        server.run("streamable-http", host=host, port=http_port)


@click.command("serve")
@click.option(
    "--workload", type=click.Choice(["embeddings", "chat"]), default="embeddings", show_default=True
)
@click.option(
    "--model",
    default=None,
    metavar="DIR|tiny",
    help="Checkpoint (default: the packaged MiniLM for embeddings, tiny GPT-2 for chat).",
)
@click.option("--clients", default=64, show_default=True, type=click.IntRange(1, 512))
@click.option(
    "--requests", "total", default=2000, show_default=True, type=click.IntRange(1, 100000)
)
@click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(2, 1024),
    help="Batch size of the 'batching on' runs (the 'off' runs use 1).",
)
@click.option("--max-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0, 1000))
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    type=click.IntRange(1, 10),
    help="Alternate on/off this many times (a drifting machine load hits both).",
)
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(1, 256),
    help="Compute threads of the server (default: torch's and the native library's).",
)
@click.option(
    "--time-limit",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds each run may take at most; the run stops there and says so.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def bench_serve(workload, model, clients, total, batch_size, max_wait_ms, rounds, threads,
                time_limit, as_json):  # fmt: skip
    """Load test on loopback: the same requests with dynamic batching on and off."""
    import json

    from skillmill.generator.commands import minilm_folder
    from skillmill.measure.bench.serving import format_report, run_comparison

    if workload == "embeddings":
        minilm_folder()  # a clear error when the weights package is missing
    report = run_comparison(workload=workload, model=model, clients=clients, total=total,
                            batch_size=batch_size, max_wait_ms=max_wait_ms,
                            time_limit=time_limit, rounds=rounds, threads=threads,
                            progress=lambda m: click.echo(m, err=True))  # fmt: skip
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    if any(run["errors"] for run in report["runs"]):
        sys.exit(1)


def register_serving_commands(main: click.Group) -> None:
    main.add_command(serve)
    main.add_command(mcp)
    bench = main.commands.get("bench")
    if isinstance(bench, click.Group):
        bench.add_command(bench_serve)

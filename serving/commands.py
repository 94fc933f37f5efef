"""`generate-skills serve`, `generate-skills mcp` and `generate-skills bench serve`."""

from __future__ import annotations

import logging
import os
import sys

import click

from skillmill.runtime.precision import QUANTIZED

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
    "skills",
    multiple=True,
    metavar="CLASS",
    help="transformers class whose skill serves, e.g. BertModel or GPT2LMHeadModel. Repeat "
    "it, each with its --model, to serve several skills behind one endpoint.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="DIR|tiny",
    help="Local checkpoint folder, or 'tiny' for the tiny random model (one per --skill).",
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
    type=click.Choice(QUANTIZED),
    help="Quantized weights, run by the native executor (see `generate-skills quantize` for "
    "what a scheme costs in quality); /health says what ran.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--name",
    "names",
    multiple=True,
    help="Model id clients use (default: from the folder); one per --skill, in order.",
)
@click.option(
    "--serve-config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="FILE",
    help="YAML: the skills (skill, model, name, device, precision, quantize), the server "
    "settings and the Ray replicas; flags given beside it override its values.",
)
@click.option("--batch-size", default=None, type=click.IntRange(1, 1024), help=BATCH_HELP + " [32]")
@click.option(
    "--max-wait-ms",
    default=None,
    type=click.FloatRange(0, 1000),
    help="How long the oldest waiting request waits for others to batch with. [5]",
)
@click.option(
    "--max-batch-tokens",
    default=None,
    type=click.IntRange(1),
    help="Most tokens per model batch (encoders; summed over inputs, as TEI). A longer input "
    "is refused with 413, or truncated when the request asks for truncation. [16384]",
)
@click.option(
    "--max-concurrent-requests",
    "--max-queue",
    "max_concurrent_requests",
    default=None,
    type=click.IntRange(1),
    help="Most requests admitted at once per skill (waiting or in the model; per replica on "
    "Ray); beyond it, HTTP 429. [512]",
)
@click.option("--max-body-bytes", default=None, type=click.IntRange(1024), help="[2097152]")
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(1, 256),
    help="Compute threads for torch and the native kernels (default: theirs; on Ray: the "
    "replica's CPUs).",
)
@click.option(
    "--ray",
    "ray_address",
    default=None,
    metavar="auto|ADDRESS|local",
    help="Deploy on Ray Serve instead of one process: 'auto' joins the cluster running on "
    "this machine, HOST:PORT or ray://HOST:10001 another one, 'local' starts a throwaway one.",
)
@click.option("--replicas", default=None, type=click.IntRange(1), help="Ray: replicas. [1]")
@click.option(
    "--min-replicas", default=None, type=click.IntRange(0), help="Ray: autoscale from this many."
)
@click.option(
    "--max-replicas", default=None, type=click.IntRange(1), help="Ray: autoscale up to this many."
)
@click.option(
    "--target-ongoing-requests",
    default=None,
    type=click.FloatRange(0, min_open=True),
    help="Ray autoscaling: requests in flight per replica it aims at. [2]",
)
@click.option(
    "--replica-cpus",
    default=None,
    type=click.FloatRange(0),
    help="Ray: CPUs each replica asks for (and its compute threads). [1]",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(skills, models, device, precision, quantize, host, port, names, serve_config,
          batch_size, max_wait_ms, max_batch_tokens, max_concurrent_requests, max_body_bytes,
          threads, ray_address, replicas, min_replicas, max_replicas, target_ongoing_requests,
          replica_cpus, log_level):  # fmt: skip
    """Serve skills over an OpenAI-compatible HTTP API (FastAPI + uvicorn, or Ray Serve).

    \b
    Endpoints: /v1/models, /v1/embeddings (encoders), /v1/completions and
    /v1/chat/completions (causal LMs, stream=true for SSE), /health, /metrics;
    text-embeddings-inference's /embed, /predict and /rerank (sequence
    classifiers, cross-encoders), /tokenize and /info.
    Several skills: repeat --skill/--model (and --name); requests route by model id.
    Examples:
      generate-skills serve --skill GPT2LMHeadModel --model tiny --port 8000
      generate-skills serve --ray auto --replicas 2 --skill BertModel --model DIR
    """
    from .ray_serve import ServeConfigError

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        config = _serve_config(
            skills, models, names, serve_config, device=device, precision=precision,
            quantize=quantize,
            settings={"batch_size": batch_size, "max_wait_ms": max_wait_ms,
                      "max_batch_tokens": max_batch_tokens,
                      "max_concurrent_requests": max_concurrent_requests,
                      "max_body_bytes": max_body_bytes},
            replicas={"replicas": replicas, "min_replicas": min_replicas,
                      "max_replicas": max_replicas,
                      "target_ongoing_requests": target_ongoing_requests,
                      "num_cpus": replica_cpus, "threads": threads},
        )  # fmt: skip
    except ServeConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if ray_address:
        _serve_on_ray(config, ray_address, host, port)
        return
    ray_only = [f for f, v in (("--replicas", replicas), ("--min-replicas", min_replicas),
                               ("--max-replicas", max_replicas), ("--replica-cpus", replica_cpus),
                               ("--target-ongoing-requests", target_ongoing_requests)) if v]  # fmt: skip
    if ray_only:
        raise click.UsageError(f"{', '.join(ray_only)} need --ray (one process has one copy)")
    from .server import serve_forever

    if threads:
        set_compute_threads(threads)
    served = []
    for spec in config.skills:
        model = _served_model(spec.skill, spec.model, spec.device, spec.name,
                              config.settings.batch_size, precision=spec.precision,
                              quantize=spec.quantize)  # fmt: skip
        where = f"{model.backend} at {model.precision}" + (
            f" (fallback: {model.fallback_reason})" if model.fallback_reason else ""
        )
        click.echo(
            f"serving {model.id} ({model.class_name}, {model.kind}) on {where}; "
            f"loaded in {model.load_seconds:.1f} s",
            err=True,
        )
        served.append(model)
    serve_forever(served, config.settings, host, port, log_level=log_level)


def _serve_config(skills, models, names, path, *, device, precision, quantize, settings,
                  replicas):  # fmt: skip
    """The skills and settings from --serve-config and the flags (flags win)."""
    from .ray_serve import (
        ServeConfig,
        ServeConfigError,
        SkillSpec,
        check_unique_names,
        load_serve_config,
        with_overrides,
    )

    if path is not None:
        config = load_serve_config(path)
        if skills or models:
            raise ServeConfigError(
                f"--skill/--model and --serve-config {path} both name skills; use one of them"
            )
    else:
        if not skills:
            raise ServeConfigError("name a skill: --skill CLASS --model DIR (or --serve-config)")
        if len(models) != len(skills):
            raise ServeConfigError(
                f"{len(skills)} --skill but {len(models)} --model: give each skill its model"
            )
        if len(names) > len(skills):
            raise ServeConfigError(f"{len(names)} --name for {len(skills)} --skill")
        specs = tuple(
            SkillSpec(s, m, names[i] if i < len(names) else None, device, precision, quantize)
            for i, (s, m) in enumerate(zip(skills, models))
        )
        check_unique_names(specs)
        config = ServeConfig(specs)
    return with_overrides(config, settings, replicas)


def _serve_on_ray(config, address: str, host: str, port: int) -> None:
    import signal
    import time

    from . import ray_serve

    cluster = None
    if address == "local":
        cluster = ray_serve.LocalRayCluster(port=ray_serve._free_port(), num_cpus=os.cpu_count())
        address = cluster.address
    try:
        ray_serve.connect(address)
        click.echo(
            f"deploying {len(config.skills)} skill(s) on Ray Serve ({address}) ...", err=True
        )
        url = ray_serve.deploy(config, host=host, port=port)
        click.echo(f"serving on {url} (Ctrl-C stops the app)", err=True)
        _say_how_requests_arrive(url)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        # a second Ctrl-C (or a signal forwarded twice) must not leave the cluster running
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            ray_serve.undeploy(shutdown_serve=cluster is not None)
        finally:
            if cluster is not None:
                cluster.stop()


def _say_how_requests_arrive(url: str) -> None:
    """Print the ingress a replica reports; Serve's default proxy costs ~14 ms a request here."""
    import httpx

    from .ray_serve import INGRESS_ENV

    try:
        ingress = httpx.get(url + "/health", timeout=30).json().get("ingress", "unknown")
    except (httpx.HTTPError, ValueError) as exc:
        click.echo(f"could not ask a replica how requests reach it: {exc}", err=True)
        return
    click.echo(f"requests reach the replicas through: {ingress}", err=True)
    if ingress == "serve proxy":
        env = " ".join(f"{k}={v}" for k, v in INGRESS_ENV["haproxy"].items())
        click.echo(
            "  Serve's Python proxy adds about 14 ms and 13 ms of CPU per request on a small "
            f"machine; start every node of the cluster with {env} (`{env} ray start ...`) for "
            "HAProxy and direct ingress (docs/ray.md)",
            err=True,
        )


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


@click.command("serve-ray")
@click.option(
    "--model",
    default="tiny",
    show_default=True,
    metavar="DIR|tiny",
    help="BertModel checkpoint; the tiny one keeps the model's share of a request small, so "
    "the difference between the servers is what shows.",
)
@click.option("--clients", default=32, show_default=True, type=click.IntRange(2, 512))
@click.option(
    "--requests", "total", default=2000, show_default=True, type=click.IntRange(1, 100000)
)
@click.option(
    "--single-requests",
    default=400,
    show_default=True,
    type=click.IntRange(1, 100000),
    help="Requests of the one-client runs.",
)
@click.option("--rounds", default=2, show_default=True, type=click.IntRange(1, 10))
@click.option("--time-limit", default=300.0, show_default=True, type=click.FloatRange(1, 3600))
@click.option(
    "--ingress",
    "ingresses",
    multiple=True,
    default=("haproxy", "proxy"),
    show_default=True,
    type=click.Choice(["haproxy", "proxy"]),
    help="How requests reach the replicas, one local cluster each: 'haproxy' (HAProxy and "
    "Serve's direct ingress, what `serve --ray local` uses) or 'proxy' (Serve's default Python "
    "proxy). Repeat to compare.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the raw results here (Ray's own messages share standard output).",
)
def bench_serve_ray(model, clients, total, single_requests, rounds, time_limit, ingresses,
                    json_path):  # fmt: skip
    """Ray Serve against the plain server (1 and N clients, p50/p95), 2 replicas vs 1, and a
    replica killed under load; on a local Ray cluster of this machine, once per ingress."""
    import json

    from skillmill.measure.bench.serve_ray import format_ray_report, run_ray_comparison

    report = run_ray_comparison(model=model, clients=clients, total=total,
                                single_total=single_requests, rounds=rounds,
                                time_limit=time_limit, ingresses=tuple(dict.fromkeys(ingresses)),
                                progress=lambda m: click.echo(m, err=True))  # fmt: skip
    click.echo(format_ray_report(report))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)
    if any(run["errors"] for run in report["runs"]):
        sys.exit(1)


def register_serving_commands(main: click.Group) -> None:
    main.add_command(serve)
    main.add_command(mcp)
    bench = main.commands.get("bench")
    if isinstance(bench, click.Group):
        bench.add_command(bench_serve)
        bench.add_command(bench_serve_ray)

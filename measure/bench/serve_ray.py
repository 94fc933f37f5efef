"""`generate-skills bench serve-ray`: Ray Serve against the plain one-process server.

For each way a request can reach a replica (``INGRESS_ENV``: HAProxy with Serve's direct
ingress, or Serve's own Python proxy) a local Ray cluster is started with that setting, and the
same skill is served by it and by a plain ``generate-skills serve`` process, both up at once.
They are measured alternately, at 1 client and at N clients, with one replica and one compute
thread each.  Serve is then measured with 2 replicas, and with one of them killed under load.
The plain server's runs are interleaved with each cluster's, so each overhead is taken against
plain runs made under the same machine load."""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from typing import Any, Callable

import httpx

from .serving import _drive, _shown, _summary, cpu_seconds, start_server_process
from .serving import stop_server_process

GOAL_P50_1_CLIENT_MS = 1.5


def run_ray_comparison(
    model: str | None = None,
    skill: str = "BertModel",
    clients: int = 32,
    total: int = 2000,
    single_total: int = 400,
    rounds: int = 2,
    batch_size: int = 32,
    max_wait_ms: float = 5.0,
    time_limit: float = 300.0,
    kill_after_s: float = 3.0,
    ingresses: tuple[str, ...] = ("haproxy", "proxy"),
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Every run, and per ingress: Serve's overhead over the plain server (p50/p95 at 1 and
    ``clients`` clients), CPU per request, 2 replicas against 1, and the killed-replica run
    (whose client sends a 5xx or a broken connection again, up to 5 times)."""
    from skillmill.serving.ray_serve import INGRESS_ENV

    from ..machine import describe_machine

    unknown = [i for i in ingresses if i not in INGRESS_ENV]
    if unknown or not ingresses:
        raise ValueError(f"ingress must be among {sorted(INGRESS_ENV)}, got {list(ingresses)}")
    machine = describe_machine(threads=1)
    model = model or "tiny"
    runs: list[dict[str, Any]] = []
    progress("starting the plain server ...")
    plain, plain_url = start_server_process(skill, model, batch_size, max_wait_ms, threads=1)
    try:
        model_id = httpx.get(plain_url + "/health").json()["model"]
        for ingress in ingresses:
            runs += _measure_one_ingress(
                ingress, plain, plain_url, skill, model, model_id, clients, total, single_total,
                rounds, batch_size, max_wait_ms, time_limit, kill_after_s, progress,
            )  # fmt: skip
    finally:
        stop_server_process(plain)
    return {
        "machine": machine,
        "skill": skill,
        "model": model,
        "clients": clients,
        "rounds": rounds,
        "batch_size": batch_size,
        "runs": runs,
        "ingresses": {i: _verdict(runs, i, clients) for i in ingresses},
        "ingress_env": {i: INGRESS_ENV[i] for i in ingresses},
        "serve_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("RAY_SERVE_")},
        "goal_p50_1_client_ms": GOAL_P50_1_CLIENT_MS,
    }


def _measure_one_ingress(ingress, plain, plain_url, skill, model, model_id, clients, total,
                         single_total, rounds, batch_size, max_wait_ms, time_limit,
                         kill_after_s, progress) -> list[dict[str, Any]]:  # fmt: skip
    import ray
    from ray import serve

    from skillmill.serving.app import ServeSettings
    from skillmill.serving.ray_serve import (
        LocalRayCluster,
        ReplicaOptions,
        ServeConfig,
        SkillSpec,
        _free_port as free_port,
        deploy,
        replica_actor_names,
    )

    runs: list[dict[str, Any]] = []
    serve_label = f"ray serve ({ingress})"

    def measure(label: str, url: str, replicas: int, n_clients: int, n: int,
                retries: int = 0) -> dict[str, Any]:  # fmt: skip
        progress(f"{label}: {n} requests from {n_clients} client(s) ...")
        # the server's side of the work: the plain server's process, or every process of the
        # Ray cluster (HAProxy or proxy, replicas, controller, raylet, GCS)
        probe = (
            {"pids": {plain.pid}} if label == "plain server" else {"groups": set(cluster.groups)}
        )
        cpu_before = cpu_seconds(**probe)
        raw = asyncio.run(_drive(url, "embeddings", model_id, n_clients, n, time_limit, retries))
        run = _summary(label, replicas, n_clients, raw)
        run["ingress"] = ingress  # the block it belongs to (plain runs too, for pairing)
        # the warm-up and /metrics requests inside _drive are counted in too (a few percent)
        run["server_cpu_ms_per_request"] = round(
            (cpu_seconds(**probe) - cpu_before) * 1000 / max(1, run["ok"]), 2
        )
        runs.append(run)
        return run

    progress(f"starting a local Ray cluster, ingress {ingress} ...")
    cluster = LocalRayCluster(port=free_port(), num_cpus=os.cpu_count() or 2, ingress=ingress)
    try:
        ray.init(address=cluster.address, logging_level="warning", log_to_driver=False)
        settings = ServeSettings(batch_size=batch_size, max_wait_ms=max_wait_ms)
        spec = (SkillSpec(skill, model, name=model_id, device="cpu"),)
        serve_port = free_port()

        def deploy_with(replicas: int) -> str:
            options = ReplicaOptions(replicas=replicas, num_cpus=1, threads=1)
            url = deploy(ServeConfig(spec, settings, options), port=serve_port)
            _wait_for_replicas(url, replicas)
            return url

        ray_url = deploy_with(1)
        reported = httpx.get(ray_url + "/health", timeout=30).json().get("ingress")
        if reported != _REPORTED[ingress]:  # the setting did not reach the replica: say so
            raise RuntimeError(f"cluster started for {ingress} but its replica reports {reported}")
        for _ in range(rounds):
            for n_clients, n in ((1, single_total), (clients, total)):
                measure("plain server", plain_url, 1, n_clients, n)
                measure(serve_label, ray_url, 1, n_clients, n)
        progress(f"{serve_label}: 2 replicas ...")
        ray_url = deploy_with(2)
        for _ in range(rounds):
            measure(serve_label, ray_url, 2, clients, total)
        victims = replica_actor_names()
        killed: list[str] = []

        def kill_one() -> None:
            time.sleep(kill_after_s)
            ray.kill(ray.get_actor(victims[0], namespace="serve"), no_restart=True)
            killed.append(victims[0])

        killer = threading.Thread(target=kill_one, daemon=True)
        killer.start()
        kill_run = measure(f"{serve_label}, 1 killed", ray_url, 2, clients, total, retries=5)
        killer.join(30)
        kill_run["killed"] = killed
        # the killed replica's CPU leaves the accounting with its process: no figure
        kill_run["server_cpu_ms_per_request"] = None
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            cluster.stop()
    return runs


_REPORTED = {"haproxy": "haproxy", "proxy": "serve proxy"}


def _wait_for_replicas(url: str, replicas: int, timeout: float = 120.0) -> None:
    """Until ``replicas`` different replicas have answered /health through the endpoint:
    ``serve.run`` returns once the replicas are up, but HAProxy learns of a new one a moment
    later (and reloads, closing idle connections), which a measured run must not straddle."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # a new connection each time: the one before may be closed by a reload
            seen.add(httpx.get(url + "/health", timeout=10).json()["replica"])
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        if len(seen) >= replicas:
            time.sleep(1.0)  # let a reload that started with the last replica finish
            return
        time.sleep(0.1)
    raise RuntimeError(
        f"only {len(seen)} of {replicas} replicas answered at {url} in {timeout:.0f} s"
    )


def _verdict(runs: list[dict[str, Any]], ingress: str, clients: int) -> dict[str, Any]:
    """One ingress's figures: overhead against the plain runs of its own block."""
    serve_label = f"ray serve ({ingress})"

    def mean_of(label: str, replicas: int, n_clients: int, key: str) -> float | None:
        values = [r[key] for r in runs
                  if (r["ingress"], r["label"], r["replicas"], r["clients"])
                  == (ingress, label, replicas, n_clients) and r[key] is not None]  # fmt: skip
        return statistics.fmean(values) if values else None

    overhead = {}
    for n_clients in (1, clients):
        for key in ("p50_ms", "p95_ms"):
            ray_value = mean_of(serve_label, 1, n_clients, key)
            plain_value = mean_of("plain server", 1, n_clients, key)
            if ray_value is not None and plain_value is not None:
                overhead[f"{key[:3]}_{n_clients}_clients_ms"] = round(ray_value - plain_value, 3)
    one, two = (mean_of(serve_label, r, clients, "throughput_rps") for r in (1, 2))
    plain_rps = mean_of("plain server", 1, clients, "throughput_rps")
    cpu = {
        f"{label} at {n} client(s)": round(value, 2)
        for label in ("plain server", serve_label)
        for n in (1, clients)
        if (value := mean_of(label, 1, n, "server_cpu_ms_per_request")) is not None
    }
    kills = [r for r in runs if r["ingress"] == ingress and "killed" in r]
    return {
        "serve_overhead": overhead,
        "goal_met": (overhead.get("p50_1_clients_ms") or 99) <= GOAL_P50_1_CLIENT_MS,
        "server_cpu_ms_per_request": cpu,
        "throughput_vs_plain": round(one / plain_rps, 2) if one and plain_rps else None,
        "throughput_2_vs_1_replicas": round(two / one, 2) if one and two else None,
        "killed": [{"replica": ", ".join(r["killed"]) or "none killed", "failed": r["errors"],
                    "retried": r["retried"]} for r in kills],  # fmt: skip
    }


def format_ray_report(report: dict[str, Any]) -> str:
    from ..machine import machine_line

    clients = report["clients"]
    lines = [
        machine_line(report["machine"]),
        f"Ray Serve vs the plain server: {report['skill']} ({report['model']}), loopback, "
        f"one compute thread per server/replica, batch {report['batch_size']}, "
        f"{report['rounds']} alternating round(s) per ingress"
        + "".join(f", {k}={v}" for k, v in report["serve_env"].items()),
        *(f"ingress {i}: cluster started with "
          + (" ".join(f"{k}={v}" for k, v in env.items()) or "Serve's defaults")
          for i, env in report["ingress_env"].items()),  # fmt: skip
        f"{'run':<30} {'replicas':>8} {'clients':>7} {'ok':>6} {'errors':>6} {'retried':>7} "
        f"{'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'cpu ms/req':>10}  load",
    ]
    for run in report["runs"]:
        lines.append(
            f"{run['label']:<30} {run['replicas']:>8} {run['clients']:>7} {run['ok']:>6} "
            f"{run['errors']:>6} {run['retried']:>7} {run['throughput_rps']:>8} "
            f"{run['p50_ms']:>8} {run['p95_ms']:>8} {run['p99_ms']:>8} "
            f"{_shown(run['server_cpu_ms_per_request']):>10}  {run['loadavg']}"
            + ("  (stopped by time limit)" if run["stopped_by_time_limit"] else "")
        )
        for sample in run["error_samples"]:
            lines.append(f"    error: {sample}")
    goal = report["goal_p50_1_client_ms"]
    for ingress, v in report["ingresses"].items():
        o = v["serve_overhead"]
        lines.append(f"ingress {ingress}:")
        if "p50_1_clients_ms" in o:
            lines.append(
                f"  Serve overhead (Ray minus plain, mean over rounds): 1 client p50 "
                f"{o['p50_1_clients_ms']} ms, p95 {o.get('p95_1_clients_ms')} ms (goal <= {goal} "
                f"ms at p50: {'met' if v['goal_met'] else 'not met'}); {clients} clients p50 "
                f"{o.get(f'p50_{clients}_clients_ms')} ms, p95 {o.get(f'p95_{clients}_clients_ms')} ms"
            )
        if v["server_cpu_ms_per_request"]:
            lines.append(
                "  server CPU per request (Ray: every process of the cluster): "
                + "; ".join(f"{k} {c} ms" for k, c in v["server_cpu_ms_per_request"].items())
            )
        lines.append(
            f"  throughput at {clients} clients: 1 replica / plain server "
            f"{_shown(v['throughput_vs_plain'])}x; 2 replicas / 1 "
            f"{_shown(v['throughput_2_vs_1_replicas'])}x"
        )
        for kill in v["killed"]:
            lines.append(
                f"  replica killed under load ({kill['replica']}): {kill['failed']} failed "
                f"requests after retries, {kill['retried']} retries"
            )
    return "\n".join(lines)

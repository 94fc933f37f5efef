"""`generate-skills bench serve`: a bounded load test on loopback, batching on vs off.

Each configuration gets its own server process (so the load generator does not share a
Python interpreter with the model), the same request mix, the same number of concurrent
clients and requests, and a time limit.  Reported per run: requests, errors, throughput,
p50/p95/p99 latency and the mean batch size the server's /metrics recorded over the measured
requests (the warm-up requests before them are left out)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import httpx

SENTENCES = (
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The cat sits on the warm windowsill.",
    "Stock markets fell sharply after the announcement.",
    "The recipe needs two cups of flour.",
)
WARMUP_REQUESTS = 16
START_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_model(workload: str) -> tuple[str, str]:
    if workload == "embeddings":
        from .models import minilm_folder

        return "BertModel", minilm_folder()
    return "GPT2LMHeadModel", "tiny"


def _request(workload: str, model_id: str, i: int) -> tuple[str, dict[str, Any]]:
    sentence = SENTENCES[i % len(SENTENCES)]
    if workload == "embeddings":
        return "/v1/embeddings", {"model": model_id, "input": sentence}
    return "/v1/chat/completions", {
        "model": model_id,
        "max_tokens": 16,
        "temperature": 0.0,
        "messages": [{"role": "user", "content": sentence}],
    }


def start_server_process(
    skill: str,
    model: str,
    batch_size: int,
    max_wait_ms: float,
    device: str = "cpu",
    threads: int | None = None,
) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [sys.executable, "-c", "from skillmill.generator.cli import main; main()", "serve",
               "--skill", skill, "--model", model, "--device", device, "--port", str(port),
               "--batch-size", str(batch_size), "--max-wait-ms", str(max_wait_ms),
               "--log-level", "warning"]  # fmt: skip
    if threads:
        command += ["--threads", str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}: {process.stderr.read()[-2000:]}"
            )
        try:
            if httpx.get(url + "/health", timeout=2.0).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    process.kill()
    raise RuntimeError(f"server did not answer /health within {START_TIMEOUT_S:.0f} s")


def stop_server_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _KeepAliveClient:
    """One HTTP/1.1 keep-alive connection, as lean as a load generator needs (httpx's pool
    costs more CPU per request than the server's model call on this 2-core machine, so it,
    not the server, set the pace).  Answers must carry Content-Length, as the server's do."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        self.writer.write(head + payload)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def _drive(
    url: str,
    workload: str,
    model_id: str,
    clients: int,
    total: int,
    time_limit: float,
    retries: int = 0,
) -> dict[str, Any]:
    """``retries``: a 5xx or a broken connection is sent again up to that many times (the
    latency then counts every try), as a client with retries does; ``retried`` counts them."""
    latencies: list[float] = []
    errors: list[str] = []
    retried = 0
    issued = 0
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connections = [_KeepAliveClient(host, int(port)) for _ in range(clients)]
    for i in range(WARMUP_REQUESTS):  # one-off costs (first batch shapes, allocator) first
        status, answer = await connections[0].post(*_request(workload, model_id, i))
        if status != 200:
            raise RuntimeError(f"warm-up request failed: {status}: {answer[:200]!r}")
    async with httpx.AsyncClient(base_url=url) as client:  # the measured phase starts here
        metrics_before = (await client.get("/metrics")).text
    deadline = time.monotonic() + time_limit

    async def worker(connection: _KeepAliveClient) -> None:
        nonlocal issued, retried
        while issued < total and time.monotonic() < deadline:
            i = issued
            issued += 1
            path, body = _request(workload, model_id, i)
            start = time.perf_counter()
            outcome = None  # None: answered 200; else why not, after the last try
            for attempt in range(retries + 1):
                if attempt:
                    retried += 1
                    await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
                try:
                    status, answer = await connection.post(path, body)
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                    try:
                        await connection.close()
                    except OSError:
                        pass
                    connection.writer = None
                    continue
                outcome = (
                    None if status == 200 else f"{status}: {answer[:200].decode(errors='replace')}"
                )
                if status < 500:
                    break
            if outcome is not None:
                errors.append(outcome)
                continue
            latencies.append((time.perf_counter() - start) * 1000.0)

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = time.perf_counter() - start
    for connection in connections:
        await connection.close()
    async with httpx.AsyncClient(base_url=url) as client:
        metrics = (await client.get("/metrics")).text
    return {
        "latencies": latencies,
        "errors": errors,
        "seconds": elapsed,
        "stopped_by_time_limit": issued < total,
        "retried": retried,
        "metrics": metrics,
        "metrics_before": metrics_before,
    }


def _batch_totals(metrics: str) -> tuple[float, float]:
    """(rows, model calls) so far, from the server's skillmill_batch_size histogram."""
    total = re.search(r"^skillmill_batch_size_sum\{[^}]*\} ([0-9.e+]+)$", metrics, re.M)
    count = re.search(r"^skillmill_batch_size_count\{[^}]*\} ([0-9.e+]+)$", metrics, re.M)
    if not total or not count:
        return 0.0, 0.0
    return float(total.group(1)), float(count.group(1))


def _mean_batch(metrics: str, before: str | None = None) -> float | None:
    """Mean rows per model call; with ``before`` (the /metrics text when the measured phase
    began), over the calls made since then only, so warm-up requests do not dilute it."""
    rows, calls = _batch_totals(metrics)
    if before is not None:
        rows_before, calls_before = _batch_totals(before)
        rows, calls = rows - rows_before, calls - calls_before
    return rows / calls if calls > 0 else None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def run_one(
    label: str,
    skill: str,
    model: str,
    workload: str,
    clients: int,
    total: int,
    batch_size: int,
    max_wait_ms: float,
    time_limit: float,
    threads: int | None = None,
) -> dict[str, Any]:
    process, url = start_server_process(skill, model, batch_size, max_wait_ms, threads=threads)
    try:
        health = httpx.get(url + "/health").json()
        load_before = os.getloadavg()
        raw = asyncio.run(_drive(url, workload, health["model"], clients, total, time_limit))
        load_after = os.getloadavg()
    finally:
        stop_server_process(process)
    lat = raw["latencies"]
    return {
        "label": label,
        "batch_size": batch_size,
        "max_wait_ms": max_wait_ms,
        "threads": threads,
        "backend": health["backend"],
        "device": health["device"],
        "requests": len(lat) + len(raw["errors"]),
        "ok": len(lat),
        "errors": len(raw["errors"]),
        "error_samples": raw["errors"][:5],
        "seconds": round(raw["seconds"], 3),
        "throughput_rps": round(len(lat) / raw["seconds"], 2) if raw["seconds"] else None,
        "p50_ms": round(_percentile(lat, 50), 2) if lat else None,
        "p95_ms": round(_percentile(lat, 95), 2) if lat else None,
        "p99_ms": round(_percentile(lat, 99), 2) if lat else None,
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
        "mean_batch_rows": (
            round(b, 2) if (b := _mean_batch(raw["metrics"], raw["metrics_before"])) else None
        ),
        "stopped_by_time_limit": raw["stopped_by_time_limit"],
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }


def run_comparison(
    workload: str = "embeddings",
    model: str | None = None,
    clients: int = 64,
    total: int = 2000,
    batch_size: int = 32,
    max_wait_ms: float = 5.0,
    time_limit: float = 300.0,
    rounds: int = 1,
    threads: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Batching on, then off, ``rounds`` times (alternating, so a change in the machine's load
    hits both); the speedup compares the summed throughput of each mode."""
    skill, default = _default_model(workload)
    model = model or default
    runs = []
    for round_ in range(1, rounds + 1):
        for label, size in (("batching on", batch_size), ("batching off", 1)):
            progress(
                f"round {round_}/{rounds}, {label}: {total} {workload} requests from "
                f"{clients} clients ..."
            )
            runs.append(
                run_one(
                    label,
                    skill,
                    model,
                    workload,
                    clients,
                    total,
                    size,
                    max_wait_ms,
                    time_limit,
                    threads,
                )
            )
    rates = {
        label: [r["throughput_rps"] or 0.0 for r in runs if r["label"] == label]
        for label in ("batching on", "batching off")
    }
    on, off = statistics.fmean(rates["batching on"]), statistics.fmean(rates["batching off"])
    return {
        "workload": workload,
        "skill": skill,
        "model": model,
        "clients": clients,
        "requests_per_run": total,
        "rounds": rounds,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "runs": runs,
        "throughput_speedup": round(on / off, 2) if on and off else None,
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['workload']} load test: {report['skill']} ({report['model']}), "
        f"{report['clients']} concurrent clients, {report['requests_per_run']} requests per "
        f"run, {report['rounds']} round(s), loopback, {report['cpu_count']} CPUs, compute "
        f"threads {report['threads'] or 'default'}",
        f"{'run':<14} {'batch':>5} {'ok':>6} {'errors':>6} {'req/s':>8} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'p99 ms':>8} {'rows/call':>9}  load avg (1 min) before/after",
    ]
    for run in report["runs"]:
        lines.append(
            f"{run['label']:<14} {run['batch_size']:>5} {run['ok']:>6} {run['errors']:>6} "
            f"{run['throughput_rps']:>8} {run['p50_ms']:>8} {run['p95_ms']:>8} {run['p99_ms']:>8} "
            f"{run['mean_batch_rows'] or '-':>9}  {run['loadavg_before'][0]} / "
            f"{run['loadavg_after'][0]}"
            + ("  (stopped by time limit)" if run["stopped_by_time_limit"] else "")
        )
        for sample in run["error_samples"]:
            lines.append(f"    error: {sample}")
    if report["throughput_speedup"]:
        lines.append(f"mean throughput with batching / without: {report['throughput_speedup']}x")
    return "\n".join(lines)


# ---- Ray Serve against the plain server (`generate-skills bench serve-ray`) -------------------
def _summary(label: str, replicas: int, clients: int, raw: dict[str, Any]) -> dict[str, Any]:
    lat = raw["latencies"]
    return {
        "label": label,
        "replicas": replicas,
        "clients": clients,
        "requests": len(lat) + len(raw["errors"]),
        "ok": len(lat),
        "errors": len(raw["errors"]),
        "error_samples": raw["errors"][:5],
        "retried": raw.get("retried", 0),
        "seconds": round(raw["seconds"], 3),
        "throughput_rps": round(len(lat) / raw["seconds"], 2) if raw["seconds"] else None,
        "p50_ms": round(_percentile(lat, 50), 3) if lat else None,
        "p95_ms": round(_percentile(lat, 95), 3) if lat else None,
        "p99_ms": round(_percentile(lat, 99), 3) if lat else None,
        "stopped_by_time_limit": raw["stopped_by_time_limit"],
        "loadavg": round(os.getloadavg()[0], 2),
    }


def cpu_seconds(groups: set[int] | None = None, pids: set[int] | None = None) -> float:
    """CPU time (user + system) used so far by the live processes of these process groups or
    with these ids, and by all their descendants (Ray's raylet starts the proxy and the
    replicas in sessions of their own), read from /proc (Linux): what serving cost in CPU,
    whoever else loads the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, int, int]] = {}  # pid -> (ppid, pgrp, cpu ticks)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        # after the command: state, ppid, pgrp, ..., utime (the 12th), stime (the 13th)
        table[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]))
    chosen = {p for p, (_, pgrp, _) in table.items()
              if p in (pids or ()) or pgrp in (groups or ())}  # fmt: skip
    grown = True
    while grown:
        more = {p for p, (ppid, _, _) in table.items() if ppid in chosen and p not in chosen}
        chosen |= more
        grown = bool(more)
    return sum(table[p][2] for p in chosen) / tick


def _shown(value: Any) -> str:
    return "-" if value is None else str(value)

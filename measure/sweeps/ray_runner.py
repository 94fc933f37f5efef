"""The coverage sweeps on a Ray cluster (``--ray auto|ADDRESS``): ``RayRunner`` has the local
runner's interface (measure/harness.py ``LocalRunner``: ``run`` per type, ``run_chunks`` per chunk
of types), with each type, or chunk, a Ray task.  docs/ray.md says how to point a sweep at a
cluster of several machines.

- A type's task runs the local runner's forked worker on its node (``run_parallel`` of one item:
  the same time limit and memory cap), so a model that crashes, hangs or blows memory is a
  verdict row there as here.  The task declares ``TASK_CPUS`` and ``TYPE_MEMORY`` (a MAX chunk
  ``CHUNK_MEMORY``); the driver stops one still running ``WARM_UP_LIMIT`` past its own
  limit (a hung warm-up), and its row says so.
- Ray retries a task whose worker or node was lost (``MAX_RETRIES``); it never retries one that
  returned, and ``retry_exceptions`` is off: a model error is a row, not a retry.  A task lost
  more often than that, or one that failed outside the check (a node without skillmill, a
  warm-up that raised), comes back ``not_measured``, which ``--resume`` measures again.
- Rows come back as they finish (``ray.wait``) to ``on_result``, the caller's report writer,
  so the report is the local runner's, each row with a ``measured_on`` stamp naming its node.
- A zero-CPU actor (``_Board``) records the node each task started on, for the progress line:
  "node 10.0.0.5: 2 running, 5 done; node 10.0.0.6: 1 running, 4 done; queued 10".

Ray is imported only here, only when ``connect`` is called; ``generate-skills`` without
``--ray`` never imports it."""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable

from skillmill.registry.support import NOT_MEASURED

TASK_CPUS = 1  # the forked worker pins torch to one thread, as the local runner's does
TYPE_MEMORY = 2 * 1024**3  # what a tiny model's worker holds at most, roughly; Ray schedules by it
CHUNK_MEMORY = 6 * 1024**3  # a MAX chunk: its compile of up to eight types in one graph
MAX_RETRIES = 3  # per task, on worker or node loss only
CONNECT_TIMEOUT = 5.0  # seconds for the head's GCS to answer one call before saying it did not
WARM_UP_LIMIT = 900.0  # seconds a fresh worker may spend warming up, on top of a task's limit
PROGRESS_EVERY = 0.5  # seconds between progress lines while nothing lands
INSTALL_HINT = "pip install 'skillmill[ray]'"
LOST = "lost"  # the progress line's node for a task that came back without rows


class RayUnavailable(RuntimeError):
    """``--ray`` cannot be used: Ray is not installed, or no cluster answers at the address."""


def connect(address: str, env: dict[str, str] | None = None) -> RayRunner:
    """A runner on the cluster at ``address`` ("auto": the one this machine belongs to, or
    RAY_ADDRESS); raises ``RayUnavailable`` with the reason, within ``CONNECT_TIMEOUT``, rather
    than wait on an address nothing answers at."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"--ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    if not address.startswith("ray://"):  # Ray Client (ray://host:10001) has its own timeout
        address = _answering(address)
    try:
        ray.init(
            address=address,
            runtime_env={"env_vars": forwarded_env(env)},
            log_to_driver=False,
            logging_level="WARNING",
        )
    except Exception as exc:  # noqa: BLE001 — every failure to join is the same refusal
        raise RayUnavailable(
            f"could not join the Ray cluster at {address!r}: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}"
        ) from None
    return RayRunner(ray)


def _answering(address: str) -> str:
    """``address`` as HOST:PORT ("auto": the cluster this machine is a node of, or RAY_ADDRESS),
    once its GCS has answered one call within ``CONNECT_TIMEOUT``: ``ray.init`` itself waits
    minutes on an address that accepts connections but is not a Ray head."""
    import grpc

    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address

            found = canonicalize_bootstrap_address("auto")
        except Exception:  # noqa: BLE001 — Ray's own lookup moved: let ray.init find it
            return address
        if not found:
            raise RayUnavailable(
                "--ray auto: no Ray cluster runs on this machine and RAY_ADDRESS is not set "
                "(start one with `ray start --head`, or pass --ray HEAD:6379)"
            )
        address = found
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(
            f"--ray {address!r}: expected auto or HOST:PORT (the head's GCS port, 6379 by default)"
        )
    channel = grpc.insecure_channel(address)
    try:  # the call every Ray client makes first; an empty request is b""
        channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")(b"", timeout=CONNECT_TIMEOUT)
    except grpc.RpcError as exc:
        raise RayUnavailable(
            f"no Ray cluster answers at {address} ({exc.code().name}: {exc.details()}); start "
            f"one with `ray start --head --port {port}`, or check the head's address and port"
        ) from None
    finally:
        channel.close()
    return address


def forwarded_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """What the tasks see of the driver's environment: skillmill's and the hub's switches (the
    local runner's forked workers inherit all of it; a node of the cluster has its own), then
    the sweep's own settings (``CoverageBackend.env``)."""
    keep = {k: v for k, v in os.environ.items()
            if k.startswith("SKILLMILL_") or k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}  # fmt: skip
    return {**keep, **(extra or {})}


# -- what runs on the nodes ---------------------------------------------------------------------
_WARMED: set[str] = set()


def _warm_once(warm_up: Callable[[], Any] | None) -> None:
    """The local runner warms its parent once before forking; a Ray worker warms once, on its
    first task, so its forked workers start warm too."""
    if warm_up is None:
        return
    key = f"{getattr(warm_up, '__module__', '')}.{getattr(warm_up, '__qualname__', repr(warm_up))}"
    if key not in _WARMED:
        warm_up()
        _WARMED.add(key)


def node_name() -> str:
    """This node as a row's ``measured_on`` names it: hostname (IP)."""
    import ray

    return f"node {socket.gethostname()} ({ray.util.get_node_ip_address()})"


def _started(board: Any, key: str) -> str:
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    board.started.remote(key, node_id)  # not awaited: progress never holds a task up
    return node_id


def _type_task(board: Any, key: str, check: Callable[[str], dict], item: str, timeout: float,
               warm_up: Callable[[], Any] | None, stamp: Callable[[], str]) -> tuple[str, dict[str, dict]]:  # fmt: skip
    from ..harness import run_parallel

    node_id = _started(board, key)
    _warm_once(warm_up)
    row = run_parallel([item], check, jobs=1, timeout=timeout)[item]
    return node_id, {item: {**row, "measured_on": f"{node_name()}: {stamp()}"}}


def _chunk_task(board: Any, key: str, work: Callable[[list[str]], dict[str, dict]], chunk: list[str],
                stamp: Callable[[], str]) -> tuple[str, dict[str, dict]]:  # fmt: skip
    node_id = _started(board, key)
    where = f"{node_name()}: {stamp()}"
    return node_id, {item: {**row, "measured_on": where} for item, row in work(chunk).items()}


class _Board:
    """Which node each started task is on (a task retried elsewhere moves), as an actor."""

    def __init__(self) -> None:
        self.tasks: dict[str, tuple[str, float]] = {}

    def started(self, key: str, node_id: str) -> None:
        self.tasks[key] = (node_id, time.monotonic())

    def snapshot(self) -> tuple[float, dict[str, tuple[str, float]]]:
        return time.monotonic(), dict(self.tasks)


# -- the driver ----------------------------------------------------------------------------------
def progress_line(labels: dict[str, str], running: dict[str, str], done: dict[str, int], queued: int) -> str:  # fmt: skip
    """'node A: 1 running, 4 done; node B: ...; queued N' (``running``: task -> node id;
    ``done``: node id -> tasks landed)."""
    nodes = list(dict.fromkeys([*done, *running.values()]))
    parts = []
    for node in sorted(nodes, key=lambda n: labels.get(n, n)):
        busy = sum(n == node for n in running.values())
        parts.append(f"node {labels.get(node, node[:8])}: {busy} running, {done.get(node, 0)} done")
    return "; ".join([*parts, f"queued {queued}"])


class RayRunner:
    """``LocalRunner``'s interface on a Ray cluster (``connect`` makes one)."""

    on_progress: Callable[[str], None] | None = None

    def __init__(self, ray: Any) -> None:
        self.ray = ray
        self._line = ""
        self.labels = self._node_labels()
        self.board = ray.remote(num_cpus=0)(_Board).remote()
        common = {"num_cpus": TASK_CPUS, "max_retries": MAX_RETRIES, "retry_exceptions": False}
        self.type_task = ray.remote(memory=TYPE_MEMORY, **common)(_type_task)
        self.chunk_task = ray.remote(memory=CHUNK_MEMORY, **common)(_chunk_task)

    def _node_labels(self) -> dict[str, str]:
        """node id -> "IP", or "IP [id]" where several nodes share an IP (one host, two nodes)."""
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        ips = [n["NodeManagerAddress"] for n in nodes]
        labels = {n["NodeID"]: n["NodeManagerAddress"] + (f" [{n['NodeID'][:6]}]" if ips.count(n["NodeManagerAddress"]) > 1 else "")
                  for n in nodes}  # fmt: skip
        return {**labels, LOST: "none (Ray lost the task)"}

    def run(self, items: list[str], check: Callable[[str], dict], *, jobs: int | None = None, timeout: float = 120.0,
            on_result: Callable[[str, dict], None] | None = None, warm_up: Callable[[], Any] | None = None,
            stamp: Callable[[], str] | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
        """{item: row}: one task per item.  ``jobs`` is the local runner's; here each node runs
        as many tasks as it has CPUs."""
        from ..harness import machine_stamp

        stamp = stamp or machine_stamp
        refs = {self.type_task.options(name=f"check {item}").remote(self.board, str(i), check, item, timeout,
                                                                    warm_up, stamp): (str(i), [item])
                for i, item in enumerate(items)}  # fmt: skip
        rows: dict[str, dict[str, Any]] = {}

        def landed(chunk: list[str], got: dict[str, dict]) -> None:
            rows.update(got)
            if on_result:
                on_result(chunk[0], got[chunk[0]])

        self._collect(refs, timeout + WARM_UP_LIMIT, landed)
        return {item: rows[item] for item in items}

    def run_chunks(self, chunks: list[list[str]], work: Callable[[list[str]], dict[str, dict]], *,
                   jobs: int | None = None, timeout: float | None = None,
                   on_rows: Callable[[list[str], dict[str, dict]], None], stamp: Callable[[], str] | None = None,
                   ) -> None:  # fmt: skip
        """``work(chunk)`` as one task per chunk, on whichever node has room."""
        from ..harness import machine_stamp

        stamp = stamp or machine_stamp
        refs = {self.chunk_task.options(name=f"chunk {chunk[0]}+{len(chunk) - 1}").remote(
                    self.board, str(i), work, chunk, stamp): (str(i), chunk)
                for i, chunk in enumerate(chunks)}  # fmt: skip
        limit = (timeout or 24 * 3600.0) + WARM_UP_LIMIT
        self._collect(refs, limit, on_rows)

    def _collect(self, refs: dict[Any, tuple[str, list[str]]], limit: float,
                 landed: Callable[[list[str], dict[str, dict]], None]) -> None:  # fmt: skip
        """Hand each task's rows to ``landed`` as it finishes; say where tasks run; stop a task
        that outlives ``limit`` seconds from its start (its rows say so)."""
        ray = self.ray
        pending = dict(refs)
        done: dict[str, int] = {}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=PROGRESS_EVERY)
                if ready:
                    ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                for ref in ready:
                    key, chunk = pending.pop(ref)
                    node, rows = self._result(ref, chunk, limit)
                    done[node] = done.get(node, 0) + 1
                    landed(chunk, rows)
                self._report(pending, done, limit)
        except BaseException:
            for ref in pending:  # an interrupted sweep leaves nothing running on the cluster
                ray.cancel(ref, force=True)
            raise

    def _result(self, ref: Any, chunk: list[str], limit: float) -> tuple[str, dict[str, dict]]:
        """(node id, {item: row}) of a finished task; a task Ray lost, stopped or failed gives
        each of its items a row that says so."""
        ray = self.ray
        try:
            node, rows = ray.get(ref)
            missing = {"status": "error", "reason": "the task returned no row for it"}
            return node, {item: rows.get(item, missing) for item in chunk}
        except ray.exceptions.TaskCancelledError:
            row = {"status": "fail", "stage": "timeout",
                   "reason": f"Timeout: the Ray task gave no result {limit:.0f} s after it started; it was stopped"}  # fmt: skip
        except ray.exceptions.RayTaskError as exc:  # outside the check, which never raises
            row = {"status": NOT_MEASURED,
                   "reason": f"the Ray task failed outside the check: {' '.join(str(exc).split())[:250]}; "
                             "`--resume` measures it again"}  # fmt: skip
        except ray.exceptions.RayError as exc:  # worker or node lost more than MAX_RETRIES times
            row = {"status": NOT_MEASURED,
                   "reason": f"Ray lost this task {MAX_RETRIES + 1} times ({type(exc).__name__}); "
                             "`--resume` measures it again"}  # fmt: skip
        return LOST, {item: dict(row) for item in chunk}

    def _report(self, pending: dict[Any, tuple[str, list[str]]], done: dict[str, int], limit: float) -> None:  # fmt: skip
        """The progress line, and the stop of a task past ``limit``."""
        ray = self.ray
        try:
            now, started = ray.get(self.board.snapshot.remote(), timeout=5)
        except Exception:  # noqa: BLE001 — the progress line is not worth a stalled sweep
            return
        keys = {key for key, _ in pending.values()}
        running = {key: node for key, (node, _) in started.items() if key in keys}
        for ref, (key, _) in pending.items():
            if key in started and now - started[key][1] > limit:
                ray.cancel(ref, force=True)  # it comes back TaskCancelledError: a timeout row
        if any(node not in self.labels for node in running.values()):
            self.labels = self._node_labels()
        line = progress_line(self.labels, running, done, len(pending) - len(running))
        if self.on_progress and line != self._line:
            self.on_progress(line)
        self._line = line

    def close(self) -> None:
        """Leave the cluster (it keeps running for the next sweep)."""
        try:
            self.ray.kill(self.board)
        finally:
            self.ray.shutdown()

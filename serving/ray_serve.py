"""Serving on Ray Serve: the same app (``app.create_app``) in every replica of one deployment.

Each replica loads every skill it is given (``device="auto"`` by default, so each lands on the
best backend its own node has, read from the backend manager's decision table where one was
measured there), runs the project's dynamic batching per skill (token budget and the bounded
queue included) and reports its replica id beside the backend in /health and /metrics.  Ray
Serve adds what one process cannot: replicas on any node of a cluster, autoscaling, and a new
replica in place of one that died.

Serve's ``@serve.batch`` is not used: the project's batcher already gathers by rows *and*
tokens, refuses with 429 beyond a bound and reports TEI's batch metrics, and it sits behind the
same routes on both servers; ``@serve.batch`` has no token budget and no bound of its own.

Where the replica does its queueing: Serve's ``max_ongoing_requests`` is set above the app's
``max_concurrent_requests``, so a burst reaches the replica and meets the app's 429 (Retry-After)
instead of waiting in Serve's router, and Serve's own queue limit (a 503) never applies.

How a request reaches a replica is the cluster's setting, read by every Ray process when it
starts (``INGRESS_ENV``): by default Serve's Python proxy carries each request to a replica (about
14 ms and 13 ms of CPU per request on a 2-core machine); with HAProxy and Serve's direct ingress
each replica runs its own HTTP server and HAProxy (C) forwards to it, the overhead then too small
to measure against the plain server (docs/ray.md).  The clusters this module starts use HAProxy;
a replica reports in /health which one carried it."""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .app import ServeSettings, create_app
from .engine import ServedModel

log = logging.getLogger("skillmill.serving")

APP_NAME = "skillmill"
DEPLOYMENT_NAME = "skillmill"
# Requests beyond the app's bound that Serve still hands to a replica, so they get the app's 429.
ONGOING_MARGIN = 32
# What each Ray process of a cluster needs in its environment (at `ray start`) for each way in:
# "haproxy" is Ray Serve's throughput-optimised mode (HAProxy in front of each replica's own HTTP
# server, gRPC between Serve's parts, user code on the replica's event loop), "proxy" its default.
INGRESS_ENV = {
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    "proxy": {"RAY_SERVE_ENABLE_HA_PROXY": "0", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"},
}


class ServeConfigError(ValueError):
    """A --serve-config file (or the flags) describe something that cannot be deployed."""


@dataclass(frozen=True)
class SkillSpec:
    """One skill to serve: what ``generate-skills serve --skill X --model DIR`` names."""

    skill: str
    model: str
    name: str | None = None
    device: str = "auto"
    precision: str | None = None
    quantize: str | None = None

    def load(self, batch_size: int) -> ServedModel:
        return ServedModel(
            self.skill,
            self.model,
            device=self.device,
            model_id=self.name,
            max_rows=batch_size,
            skill_options={"precision": self.precision, "quantize": self.quantize},
        )


@dataclass(frozen=True)
class ReplicaOptions:
    """How many replicas, and what each one asks of Ray.  ``min_replicas``/``max_replicas``
    turn on Serve's autoscaling (``target_ongoing_requests`` per replica); else ``replicas``
    is fixed."""

    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_ongoing_requests: float = 2.0
    num_cpus: float = 1.0
    threads: int | None = None  # compute threads per replica (default: its CPUs, at least 1)

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None or self.max_replicas is not None

    def validate(self) -> "ReplicaOptions":
        if self.replicas < 1:
            raise ServeConfigError(f"replicas must be at least 1, got {self.replicas}")
        if self.autoscaling:
            low = self.min_replicas if self.min_replicas is not None else 1
            high = self.max_replicas if self.max_replicas is not None else max(low, self.replicas)
            if low < 0 or high < 1 or low > high:
                raise ServeConfigError(
                    f"min_replicas ({low}) and max_replicas ({high}) must satisfy "
                    "0 <= min_replicas <= max_replicas, max_replicas >= 1"
                )
            if self.target_ongoing_requests <= 0:
                raise ServeConfigError(
                    f"target_ongoing_requests must be positive, got {self.target_ongoing_requests}"
                )
        if self.num_cpus < 0:
            raise ServeConfigError(f"num_cpus must not be negative, got {self.num_cpus}")
        return self

    def compute_threads(self) -> int:
        return self.threads or max(1, math.floor(self.num_cpus))

    def deployment_options(self, settings: ServeSettings) -> dict[str, Any]:
        bound = settings.max_concurrent_requests or 512
        options: dict[str, Any] = {
            "name": DEPLOYMENT_NAME,
            "max_ongoing_requests": bound + ONGOING_MARGIN,
            "ray_actor_options": {"num_cpus": self.num_cpus},
            "health_check_period_s": 5,
            "graceful_shutdown_timeout_s": 5,
        }
        if self.autoscaling:
            low = self.min_replicas if self.min_replicas is not None else 1
            high = self.max_replicas if self.max_replicas is not None else max(low, self.replicas)
            options["autoscaling_config"] = {
                "min_replicas": low,
                "max_replicas": high,
                "initial_replicas": min(max(self.replicas, low), high),
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


@dataclass(frozen=True)
class ServeConfig:
    skills: tuple[SkillSpec, ...]
    settings: ServeSettings = field(default_factory=ServeSettings)
    replicas: ReplicaOptions = field(default_factory=ReplicaOptions)


# ---- the YAML file ---------------------------------------------------------------------------
SETTINGS_KEYS = {f.name for f in fields(ServeSettings)}
REPLICA_KEYS = {f.name for f in fields(ReplicaOptions)}
SKILL_KEYS = {f.name for f in fields(SkillSpec)}
EXAMPLE = """\
skills:
  - {skill: BertModel, model: /path/to/all-MiniLM-L6-v2, name: minilm}
  - {skill: BertModel, model: tiny}
replicas: {replicas: 2, num_cpus: 1}          # or min_replicas / max_replicas / target_ongoing_requests
settings: {batch_size: 32, max_batch_tokens: 16384, max_concurrent_requests: 512}"""


def load_serve_config(path: str | Path) -> ServeConfig:
    """Read and check a --serve-config YAML file (see ``EXAMPLE``); every mistake is a
    ``ServeConfigError`` naming the file and the key."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ServeConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ServeConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_serve_config(data, where=str(path))


def parse_serve_config(data: Any, where: str = "the serve config") -> ServeConfig:
    if not isinstance(data, dict):
        raise ServeConfigError(f"{where}: expected a mapping with 'skills', got {_kind(data)}")
    _only(data, {"skills", "settings", "replicas"}, where)
    raw_skills = data.get("skills")
    if not isinstance(raw_skills, list) or not raw_skills:
        raise ServeConfigError(
            f"{where}: 'skills' must be a non-empty list of {{skill, model}} mappings, e.g.\n"
            + EXAMPLE
        )
    skills = []
    for i, entry in enumerate(raw_skills):
        here = f"{where}: skills[{i}]"
        if not isinstance(entry, dict):
            raise ServeConfigError(f"{here} must be a mapping, got {_kind(entry)}")
        _only(entry, SKILL_KEYS, here)
        for key in ("skill", "model"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ServeConfigError(f"{here}: '{key}' is required and must be a string")
        for key in SKILL_KEYS - {"skill", "model"}:
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise ServeConfigError(f"{here}: '{key}' must be a string")
        skills.append(SkillSpec(**entry))
    settings = ServeSettings(**_section(data, "settings", SETTINGS_KEYS, ServeSettings, where))
    if settings.batch_size < 1 or settings.max_wait_ms < 0:
        raise ServeConfigError(f"{where}: settings.batch_size >= 1 and max_wait_ms >= 0, please")
    for key in ("max_batch_tokens", "max_concurrent_requests"):
        value = getattr(settings, key)
        if value is not None and value < 1:
            raise ServeConfigError(f"{where}: settings.{key} must be at least 1, got {value}")
    replicas = ReplicaOptions(**_section(data, "replicas", REPLICA_KEYS, ReplicaOptions, where))
    try:
        config = ServeConfig(tuple(skills), settings, replicas.validate())
        check_unique_names(config.skills)
    except ServeConfigError as exc:
        raise ServeConfigError(f"{where}: {exc}") from None
    return config


def check_unique_names(skills: tuple[SkillSpec, ...] | list[SkillSpec]) -> None:
    from .engine import default_model_id

    seen: dict[str, int] = {}
    for i, spec in enumerate(skills):
        name = spec.name or default_model_id(spec.skill, spec.model)
        if name in seen:
            raise ServeConfigError(
                f"skills {seen[name]} and {i} would both be served as '{name}'; give one a "
                "name (--name, or 'name:' in the config)"
            )
        seen[name] = i


def _section(data: dict, key: str, allowed: set[str], cls: type, where: str) -> dict[str, Any]:
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise ServeConfigError(f"{where}: '{key}' must be a mapping, got {_kind(section)}")
    _only(section, allowed, f"{where}: {key}")
    defaults = cls()
    for name, value in section.items():
        expected = type(getattr(defaults, name))
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is None or (expected in (int, float) and number) or isinstance(value, expected):
            continue
        if getattr(defaults, name) is None and number:
            continue
        raise ServeConfigError(f"{where}: {key}.{name} must be a number, got {_kind(value)}")
    return section


def _only(mapping: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ServeConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _kind(value: Any) -> str:
    return type(value).__name__ if value is not None else "nothing"


# ---- the deployment --------------------------------------------------------------------------
@functools.cache
def _replica_class() -> type:
    """The deployment's class, built on first use so that importing this module needs no Ray
    (and once, so that a redeploy with other replica settings keeps the same code version)."""
    from ray import serve

    @serve.ingress()
    class SkillmillReplica:
        """One replica: every skill loaded once, probed once, then served by ``create_app``."""

        def __init__(self, skills: list[dict], settings: dict, threads: int):
            from .commands import set_compute_threads

            set_compute_threads(threads)  # as many compute threads as the replica has CPUs
            self.settings = ServeSettings(**settings)
            self.models = [SkillSpec(**s).load(self.settings.batch_size) for s in skills]
            import ray

            # the Serve replica id and the node it runs on (the start of its Ray node id)
            node = ray.get_runtime_context().get_node_id()[:8]
            self.replica = f"{serve.get_replica_context().replica_id.unique_id}@{node}"
            self.ingress = ingress_of_this_process()
            for model in self.models:
                log.info(
                    "replica %s (ingress %s): %s on %s (%s)", self.replica, self.ingress,
                    model.id, model.backend, model.fallback_reason or "first choice",
                )  # fmt: skip

        def __serve_build_asgi_app__(self):
            return create_app(self.models, self.settings, replica=self.replica,
                              ingress=self.ingress)  # fmt: skip

    return SkillmillReplica


def ingress_of_this_process() -> str:
    """How requests reach the replicas of this process's Serve: "haproxy" (HAProxy, then the
    replica's own HTTP server), "direct" (the replica's own server, no HAProxy) or "serve proxy".
    Serve 2.60 has no public call for it; its constants module holds what this process read
    from its environment at start."""
    try:
        from ray.serve._private import constants
    except ImportError:  # a Serve that moved its constants: say so rather than guess
        return "unknown"
    if getattr(constants, "RAY_SERVE_ENABLE_HA_PROXY", False):
        return "haproxy"
    if getattr(constants, "RAY_SERVE_ENABLE_DIRECT_INGRESS", False):
        return "direct"
    return "serve proxy"


def build_application(config: ServeConfig) -> Any:
    """The Serve application (``serve.run`` it, or ``serve build``-style deploy it)."""
    from ray import serve

    options = config.replicas.validate().deployment_options(config.settings)
    deployment = serve.deployment(_replica_class()).options(**options)
    return deployment.bind(
        [asdict(s) for s in config.skills],
        asdict(config.settings),
        config.replicas.compute_threads(),
    )


def connect(address: str, num_cpus: int | None = None, **init_args: Any) -> None:
    """``ray.init`` for ``--ray``: ``local`` starts a cluster of this process's own (gone when
    it exits); ``auto`` joins the cluster already running on this machine (``ray start``);
    anything else is a cluster address (``HOST:6379`` from a node, ``ray://HOST:10001`` from
    outside)."""
    import ray

    if ray.is_initialized():
        return
    if address == "local":
        ray.init(num_cpus=num_cpus, include_dashboard=False, **init_args)
    else:
        ray.init(address=address, **init_args)


def deploy(
    config: ServeConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> str:
    """Start Serve's HTTP proxy (head node only, on ``host:port``; where Serve already runs
    in the cluster its proxy keeps its own address) and deploy the app at ``/``; returns once
    every replica is up, with the URL."""
    from ray import serve

    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port})
    started = time.monotonic()
    # serve.run returns once every replica is up (blocking=False only means "do not block
    # forever afterwards")
    # Serve's per-request access log is off: on a small machine it costs more than the model
    serve.run(
        build_application(config), name=APP_NAME, route_prefix="/", blocking=False,
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )  # fmt: skip
    log.info("Serve app %s running after %.1f s", APP_NAME, time.monotonic() - started)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def undeploy(shutdown_serve: bool = False) -> None:
    """Delete the app (and stop Serve itself when this process started it)."""
    from ray import serve

    try:
        serve.delete(APP_NAME)
        if shutdown_serve:
            serve.shutdown()
    except Exception as exc:  # the cluster may already be gone: nothing left to stop
        log.warning("could not delete the Serve app: %s", exc)


def replica_actor_names() -> list[str]:
    """The Ray actor names of this app's replicas (for a test or an operator to kill one)."""
    import ray

    prefix = f"SERVE_REPLICA::{APP_NAME}#{DEPLOYMENT_NAME}#"
    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(prefix)
    )


def with_overrides(config: ServeConfig, settings: dict[str, Any], replicas: dict[str, Any]):
    """``config`` with the flags given on the command line (not None) in place of its values."""
    settings = {k: v for k, v in settings.items() if v is not None}
    replicas = {k: v for k, v in replicas.items() if v is not None}
    return ServeConfig(
        config.skills,
        replace(config.settings, **settings),
        replace(config.replicas, **replicas).validate(),
    )


# ---- a throwaway cluster on this host (tests, the benchmark, `serve --ray local`) -------------
class LocalRayCluster:
    """A Ray head (and ``workers`` more nodes) on 127.0.0.1, each started by ``ray start`` as
    the leader of its own process group, with every port its own, so that other clusters on the
    machine are left alone.  ``stop()`` ends those process groups (``ray stop`` would stop every
    Ray on the machine)."""

    def __init__(self, port: int = 6392, num_cpus: int = 2, workers: int = 0,
                 worker_cpus: int = 1, temp_dir: str | None = None,
                 env: dict[str, str] | None = None, ingress: str = "haproxy"):  # fmt: skip
        import tempfile

        self.port = port
        self.temp = temp_dir or tempfile.mkdtemp(prefix="ray-serve-", dir="/tmp")  # short paths
        self.groups: list[int] = []
        # Serve's proxy runs on the head only; by default it prefers replicas on its own node,
        # so the other nodes' replicas would get traffic only once the head's are saturated
        if ingress not in INGRESS_ENV:
            raise ValueError(f"ingress must be one of {sorted(INGRESS_ENV)}, got {ingress!r}")
        self.ingress = ingress
        # HAProxy runs on this host and hears of a stopping replica at once: the 30 s a replica
        # otherwise keeps serving while it stops (for load balancers elsewhere) only slows a
        # redeploy here
        self.env = {"RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0", **INGRESS_ENV[ingress],
                    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2", **(env or {})}  # fmt: skip
        try:
            self._start(self._head(num_cpus))
            for _ in range(workers):
                self._start(self._worker(worker_cpus))
        except BaseException:
            self.stop()
            raise

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _common(self, num_cpus: int) -> list[str]:
        return ["--num-cpus", str(num_cpus), "--node-ip-address", "127.0.0.1",
                "--disable-usage-stats", "--dashboard-agent-listen-port", str(_free_port()),
                "--metrics-export-port", str(_free_port()),
                "--runtime-env-agent-port", str(_free_port())]  # fmt: skip

    def _head(self, num_cpus: int) -> list[str]:
        return ["--head", "--port", str(self.port), "--temp-dir", self.temp,
                "--include-dashboard=false", "--dashboard-port", str(_free_port()),
                "--ray-client-server-port", str(_free_port()), *self._common(num_cpus)]  # fmt: skip

    def _worker(self, num_cpus: int) -> list[str]:
        return ["--address", self.address, *self._common(num_cpus)]

    def _start(self, args: list[str]) -> None:
        import os
        import subprocess
        import sys

        ray_cli = str(Path(sys.executable).with_name("ray"))
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **self.env}
        proc = subprocess.Popen([ray_cli, "start", *args], env=env, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        self.groups.append(proc.pid)
        out, _ = proc.communicate(timeout=180)
        if proc.returncode != 0:
            raise RuntimeError(f"`ray start {' '.join(args[:2])}` failed:\n{out[-2000:]}")

    def stop(self) -> None:
        import os
        import shutil
        import signal

        for sig in (signal.SIGTERM, signal.SIGKILL):
            for group in self.groups:
                try:
                    os.killpg(group, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(1.5)
        shutil.rmtree(self.temp, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

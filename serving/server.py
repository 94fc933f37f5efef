"""Running the app: in the foreground (``generate-skills serve``) or on a background thread that
hands back its real URL once it is accepting connections (``start_server``, ``deploy_max``)."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import uvicorn

from .app import ServeSettings, create_app
from .engine import ServedModel, ServeError

START_TIMEOUT_S = 60.0


def serve_forever(
    served: ServedModel | Sequence[ServedModel],
    settings: ServeSettings,
    host: str,
    port: int,
    log_level: str = "info",
) -> None:
    uvicorn.run(
        create_app(served, settings), host=host, port=port, log_level=log_level, access_log=False
    )


@dataclass
class RunningServer:
    """A server on a background thread of this process; ``stop()`` shuts it down."""

    url: str
    served: ServedModel
    settings: ServeSettings
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def backend(self) -> str:
        return self.served.backend

    @property
    def fallback_reason(self) -> str | None:
        return self.served.fallback_reason

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, **self.served.describe()}

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()


def start_server(
    served: ServedModel,
    settings: ServeSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
) -> RunningServer:
    """Serve ``served`` on a background thread; port 0 picks a free port.  Returns once the
    socket accepts connections, with the URL it really listens on."""
    settings = settings or ServeSettings()
    config = uvicorn.Config(
        create_app(served, settings), host=host, port=port, log_level=log_level, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="skillmill-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise ServeError(f"the server on {host}:{port} stopped during start-up (see the log)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise ServeError(
                f"the server on {host}:{port} did not start in {START_TIMEOUT_S:.0f} s"
            )
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    shown_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return RunningServer(f"http://{shown_host}:{bound[1]}", served, settings, server, thread)


def skill_class_for(model_id: str) -> tuple[str, Any]:
    """(skill class name, model argument) for ``deploy_max``'s model_id: a local checkpoint
    folder (the class is the first of its config.json ``architectures``) or a transformers
    class name, served as its tiny random model."""
    path = Path(model_id).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.exists():
            raise ServeError(f"'{model_id}' is a folder without config.json")
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
        if not architectures:
            raise ServeError(
                f"{config} names no architectures; start the server with "
                "`generate-skills serve --skill <ClassName>` instead"
            )
        return architectures[0], str(path)
    if "/" in model_id or model_id.startswith("."):
        raise ServeError(f"model folder '{model_id}' does not exist (nothing is downloaded)")
    return model_id, "tiny"


def deploy_max(
    model_id: str,
    target_hardware: str = "auto",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    settings: ServeSettings | None = None,
    model_name: str | None = None,
) -> RunningServer:
    """Start an OpenAI-compatible server for ``model_id`` on the MAX backend; return it running.

    ``target_hardware``: ``"auto"`` asks for MAX and, where MAX cannot run the model, lets the
    skill fall back to the best other target present; any other target name (``"cpu"``,
    ``"cuda"``) is the fallback instead.  Nothing is pretended: the returned server's
    ``backend`` is where the model really runs, and ``fallback_reason`` (also in /health and
    /metrics) says why MAX was not used when it was not."""
    class_name, model = skill_class_for(model_id)
    skill_class = _skill_class(class_name)
    if target_hardware == "auto":
        order = ["max", *[t for t in skill_class.targets if t != "max"]]
    elif target_hardware in skill_class.targets:
        order = list(dict.fromkeys(["max", target_hardware]))
    else:
        raise ServeError(
            f"unknown target_hardware '{target_hardware}'; choose 'auto' or one of: "
            f"{', '.join(skill_class.targets)}"
        )
    served = ServedModel(
        class_name,
        model,
        device="max",
        model_id=model_name,
        max_rows=(settings or ServeSettings()).batch_size,
        order=order,
    )
    logging.getLogger("skillmill.serving").info(
        "deploy_max: %s runs on %s (%s)",
        served.id,
        served.backend,
        served.fallback_reason or "MAX ran it",
    )
    return start_server(served, settings, host=host, port=port)


def _skill_class(class_name: str) -> type:
    from skillmill import skill_class

    try:
        return skill_class(class_name)
    except KeyError as exc:
        raise ServeError(str(exc.args[0] if exc.args else exc)) from None

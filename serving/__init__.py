"""Serving generated skills: an OpenAI-compatible HTTP server and an MCP server (issue 6).

    from skillmill.serving import deploy_max
    server = deploy_max("path/to/checkpoint")      # or a class name for its tiny model
    server.url, server.backend, server.fallback_reason
    server.stop()

``generate-skills serve`` and ``generate-skills mcp`` are the command-line entry points; see
docs/serving.md."""

from __future__ import annotations

from typing import Any

__all__ = ["deploy_max", "start_server"]


def __getattr__(name: str) -> Any:  # fastapi/uvicorn load only when a server is wanted
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module 'skillmill.serving' has no attribute {name!r}")

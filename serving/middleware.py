"""The ASGI layer around the app: request metrics, the request body size limit, and the last
word on unexpected failures (a 500 with an error id, logged with its traceback).

The limit is enforced twice: a declared ``Content-Length`` over it is refused before the body is
read, and a chunked body is counted as it arrives, so neither kind can make the server buffer
more than the limit.  Both answer 413 in the OpenAI error format."""

from __future__ import annotations

import json
import logging
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body
from .metrics import Metrics

log = logging.getLogger("skillmill.serving")


def too_large_message(limit: int) -> str:
    return f"Request body too large: this server accepts at most {limit} bytes."


class ServingMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int):
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500, "started": False}
        limit = self.max_body_bytes

        async def send_tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large_message(limit))
            return message

        self.metrics.started()
        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                await _send_json(
                    send_tracked,
                    413,
                    error_body(
                        too_large_message(limit), "invalid_request_error", None, "request_too_large"
                    ),
                )
                return
            await self.app(scope, receive_limited, send_tracked)
        except Exception as exc:
            # An unexpected failure: logged with an id the client also gets, and contained here
            # so the server goes on serving the next request.
            error_id = uuid.uuid4().hex
            log.error(
                "%s %s failed (error id %s)",
                scope.get("method"),
                scope.get("path"),
                error_id,
                exc_info=exc,
            )
            if not status["started"]:
                await _send_json(
                    send_tracked,
                    500,
                    error_body(
                        f"The server had an error while processing your request (error id "
                        f"{error_id}).",
                        "server_error",
                        None,
                        "internal_error",
                        id=error_id,
                    ),
                )
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.finished(
                scope.get("method", "?"), label, status["code"], time.perf_counter() - start
            )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})

"""Errors in two wire formats: OpenAI's ``{"error": {"message", "type", "param", "code"}}`` on
the OpenAI routes, and text-embeddings-inference's ``{"error": message, "error_type": kind}``
on TEI's routes (/embed, /predict, /rerank, /tokenize), so each kind of client parses what it
expects.  One ``APIError`` carries what both need; the app picks the format by the route.

Every 4xx names what was wrong with the request; a 500 carries an id that is also in the
server's log beside the traceback, so an operator can find it without the body leaking it."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """A request the server refuses, with the HTTP status and OpenAI error fields to send."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        tei_type: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        # TEI's error_type: validation, tokenizer, overloaded, backend (its own vocabulary)
        self.tei_type = tei_type or TEI_TYPES.get(status, "validation")

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)

    def tei_body(self) -> dict[str, Any]:
        return {"error": self.message, "error_type": self.tei_type}


TEI_TYPES = {429: "overloaded", 424: "backend", 503: "unhealthy"}


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code, **extra}}


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(requested: str, served: str | list[str]) -> APIError:
    names = ", ".join(f"'{s}'" for s in ([served] if isinstance(served, str) else served))
    return APIError(
        404,
        f"The model '{requested}' does not exist on this server; it serves {names}.",
        param="model",
        code="model_not_found",
        tei_type="validation",
    )


def context_too_long(prompt_tokens: int, max_tokens: int, limit: int, param: str) -> APIError:
    return APIError(
        400,
        f"This model's maximum context length is {limit} tokens. However, you requested "
        f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, {max_tokens} for the "
        "completion). Please reduce the prompt or max_tokens.",
        param=param,
        code="context_length_exceeded",
    )


def overloaded(limit: int) -> APIError:
    return APIError(
        429,
        f"Model is overloaded: this server holds at most {limit} concurrent requests "
        "(--max-concurrent-requests); retry later.",
        type="server_overloaded",
        code="queue_full",
    )


def input_too_long(index: int, tokens: int, limit: int, why: str, param: str) -> APIError:
    """One input longer than the model reads or than a batch holds: 413, naming both numbers."""
    return APIError(
        413,
        f"'{param}[{index}]' is {tokens} tokens long; {why} is {limit} tokens. Shorten it, or "
        "ask for truncation (truncate: true on the TEI routes).",
        param=param,
        code="input_too_long",
        tei_type="validation",
    )

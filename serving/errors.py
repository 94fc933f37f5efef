"""Errors in the OpenAI wire format: ``{"error": {"message", "type", "param", "code"}}``.

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
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code, **extra}}


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(requested: str, served: str) -> APIError:
    return APIError(
        404,
        f"The model '{requested}' does not exist on this server; it serves '{served}'.",
        param="model",
        code="model_not_found",
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

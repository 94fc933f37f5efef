"""Request bodies of the OpenAI-compatible and the TEI endpoints, validated strictly.

Strict mode so that ``"temperature": "hot"`` or ``"n": 1.5`` is a 400 naming the field rather
than a silent coercion; unknown fields are refused (the real API does the same), so a typo such
as ``max_token`` is reported instead of ignored.  Options this server does not implement are
accepted only at their neutral value, and anything else is refused with a message saying so
(see ``unsupported_options``)."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

MAX_N = 8
MAX_STOP_STRINGS = 4
INT64 = 2**63

TokenIds = list[int]
Prompt = Union[str, list[str], TokenIds, list[TokenIds]]


class StrictModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class EmbeddingRequest(StrictModel):
    model: str
    input: Prompt = Field(
        description="A string, a list of strings, or token ids (one list or many)."
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class StreamOptions(StrictModel):
    include_usage: bool = False


class SamplingFields(StrictModel):
    """Fields shared by completions and chat completions."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1, le=MAX_N)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-INT64, lt=INT64)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    user: str | None = None


class CompletionRequest(SamplingFields):
    prompt: Prompt
    echo: bool | None = None
    logprobs: int | None = Field(default=None, ge=0)
    best_of: int | None = Field(default=None, ge=1)
    suffix: str | None = None


class TextPart(StrictModel):
    type: Literal["text"]
    text: str


class ChatMessage(StrictModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ResponseFormat(StrictModel):
    type: Literal["text"]


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none"] | None = None
    parallel_tool_calls: bool | None = None


def unsupported_options(request: SamplingFields) -> list[tuple[str, str]]:
    """(field, why) for options given at a value this server cannot honour."""
    found = []
    if request.logit_bias:
        found.append(("logit_bias", "logit_bias is not supported by this server"))
    if isinstance(request, CompletionRequest):
        if request.logprobs is not None:
            found.append(("logprobs", "logprobs are not supported by this server"))
        if request.best_of is not None and request.best_of != (request.n or 1):
            found.append(("best_of", "best_of other than n is not supported by this server"))
        if request.suffix:
            found.append(("suffix", "suffix (insertion) is not supported by this server"))
    if isinstance(request, ChatCompletionRequest):
        if request.logprobs or request.top_logprobs:
            found.append(("logprobs", "logprobs are not supported by this server"))
        if request.tools:
            found.append(("tools", "tool calling is not supported by this server"))
    return found


# ---- text-embeddings-inference's routes (field names and defaults as TEI documents them) ----
TruncationDirection = Literal["Right", "Left"]


class TruncationFields(StrictModel):
    truncate: bool = False
    truncation_direction: TruncationDirection = "Right"


class EmbedRequest(TruncationFields):
    inputs: Union[str, list[str]]
    normalize: bool = True


class PredictRequest(TruncationFields):
    # a text, a [text, text_pair] pair, or a batch of [text] / [text, text_pair] entries
    inputs: Union[str, list[str], list[list[str]]]
    raw_scores: bool = False


class RerankRequest(TruncationFields):
    query: str
    texts: list[str]
    raw_scores: bool = False
    return_text: bool = False


class TokenizeRequest(StrictModel):
    inputs: Union[str, list[str]]
    add_special_tokens: bool = True

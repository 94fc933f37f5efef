"""The OpenAI-compatible FastAPI app around one ``ServedModel``.

Endpoints: /v1/models, /v1/embeddings (encoder skills), /v1/completions and
/v1/chat/completions (causal-LM skills; greedy or sampled, optionally streamed as server-sent
events), text-embeddings-inference's /embed, /predict, /rerank and /tokenize (``tei.py``),
/health and /metrics.  Every refusal is a 4xx in the OpenAI error format (TEI's on TEI's
routes); a full queue is a 429; an unexpected failure is a 500 whose id is logged beside the
traceback, and the server goes on."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Sequence

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from skillmill.runtime.postprocess import l2_normalize

from .batching import DynamicBatcher, QueueFull
from .engine import GenerationJob, RowOutcome, ServedModel
from .errors import (
    APIError,
    context_too_long,
    error_body,
    input_too_long,
    invalid,
    model_not_found,
    overloaded,
)
from .metrics import Metrics
from .middleware import ServingMiddleware
from skillmill.runtime.generation.sampling import SamplingParams
from .schemas import (
    MAX_STOP_STRINGS,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    SamplingFields,
    unsupported_options,
)
from .tei import TEI_PATHS, RequestAccount, add_tei_routes

log = logging.getLogger("skillmill.serving")


@dataclass(frozen=True)
class ServeSettings:
    batch_size: int = 32  # rows per model call; 1 turns dynamic batching off
    max_wait_ms: float = 5.0  # how long the oldest request waits for company
    max_inputs: int = 256  # embedding inputs or completion prompts per request
    max_rows_per_request: int = 32  # prompts x n for completions
    max_completion_tokens: int = 1024
    default_completion_max_tokens: int = 16  # OpenAI's default for /v1/completions
    max_body_bytes: int = 2 * 1024 * 1024
    # Tokens per model batch (encoder models), summed over the inputs as TEI does; an input
    # longer than this is refused, or truncated when the request asks for it.
    max_batch_tokens: int | None = 16384
    # Requests admitted at once (waiting or in the model); beyond it, 429 (TEI's default).
    max_concurrent_requests: int | None = 512

    @property
    def batching(self) -> bool:
        return self.batch_size > 1


class ServedSkill:
    """One skill inside the app: its model, its own batcher and model thread, and what the
    routes read about it.  An app holds one or several, told apart by model id."""

    def __init__(self, served: ServedModel, settings: ServeSettings, metrics: Metrics):
        self.served = served
        self.encoder = served.kind != "generation"
        # A budget applies to encoders only: a generation batch's size is set by its rows.
        self.budget = settings.max_batch_tokens if self.encoder else None
        # The most tokens one TEI input may hold: what the model reads and what a batch holds.
        self.limit = min(served.context_length, self.budget or served.context_length)
        self.headers = {"x-skillmill-backend": served.backend}
        self._method = {"embedding": "embed_batch", "classification": "classify_batch"}.get(
            served.kind, "generate_batch"
        )
        self._metrics = metrics
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skillmill-model")
        self.batcher = DynamicBatcher(
            self._run_batch,
            executor=self.executor,
            max_batch_size=settings.batch_size,
            max_wait_s=settings.max_wait_ms / 1000.0,
            max_batch_tokens=self.budget,
            max_pending=settings.max_concurrent_requests,
            on_batch=self._on_batch,
        )

    @property
    def id(self) -> str:
        return self.served.id

    def _run_batch(self, items: list) -> list:
        # Looked up per call, so a test (or an operator's hook) can wrap the model method.
        model = getattr(self.served, self._method)
        return model(items, max_tokens=self.budget) if self.encoder else model(items)

    def _on_batch(self, rows: int, tokens: int) -> None:
        self._metrics.batch(self.served.kind, rows)
        self._metrics.tei_observe("te_batch_next_size", rows)
        self._metrics.tei_observe("te_batch_next_tokens", tokens)

    async def run_model(self, item: Any, size: int, tokens: int = 0, timing: dict | None = None):
        try:
            return await self.batcher.submit(item, size=size, tokens=tokens, timing=timing)
        except QueueFull as full:
            raise overloaded(full.limit) from None

    def card(self) -> dict[str, Any]:
        served = self.served
        return {
            "id": served.id,
            "object": "model",
            "created": served.created,
            "owned_by": "skillmill",
            "skill": served.class_name,
            "kind": served.kind,
            "backend": served.backend,
        }


def create_app(
    served: ServedModel | Sequence[ServedModel],
    settings: ServeSettings | None = None,
    replica: str | None = None,
    ingress: str | None = None,
) -> FastAPI:
    """The app for one skill or several behind one endpoint (requests route by ``model``; the
    first skill is the default of the routes that name none: TEI's, /health's top level).
    ``replica`` names this copy of the app where several serve (a Ray Serve replica id); it is
    reported in /health and /metrics, and ``ingress`` (how requests reach it on Ray) in
    /health."""
    settings = settings or ServeSettings()
    metrics = Metrics()
    models = [served] if isinstance(served, ServedModel) else list(served)
    if not models:
        raise ValueError("create_app needs at least one ServedModel")
    skills: dict[str, ServedSkill] = {}
    for model in models:
        if model.id in skills:
            raise ValueError(
                f"two skills are served as '{model.id}'; give each its own model id (--name)"
            )
        skills[model.id] = ServedSkill(model, settings, metrics)
    default = next(iter(skills.values()))
    served_ids = list(skills)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for skill in skills.values():
            skill.batcher.start()
        yield
        for skill in skills.values():
            await skill.batcher.stop()
            skill.executor.shutdown(wait=False, cancel_futures=True)

    names = ", ".join(f"{m.id} ({m.class_name})" for m in models)
    app = FastAPI(
        title="skillmill OpenAI-compatible server",
        version="1",
        description=f"Serves {names} through their skills.",
        lifespan=lifespan,
    )
    app.state.served = default.served
    app.state.skills = skills
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.batcher = default.batcher
    app.state.replica = replica
    _install_error_handlers(app)
    app.add_middleware(ServingMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)

    def info(skill: ServedSkill) -> dict[str, Any]:
        served = skill.served
        labels = {
            "model": served.id,
            "kind": served.kind,
            "backend": served.backend,
            "device": served.device,
            "engine": served.engine,
            "requested_device": served.requested_device,
            "fallback_reason": served.fallback_reason or "",
            "decoder": getattr(served.stepper, "name", "") or "",
            "batch_size": settings.batch_size,
            "precision": served.precision or "",
        }
        if replica is not None:
            labels["replica"] = replica
        return labels

    def resolve(name: str) -> ServedSkill:
        skill = skills.get(name)
        if skill is None:
            raise model_not_found(name, served_ids)
        return skill

    def check_model(name: str, kind: str) -> ServedSkill:
        skill = resolve(name)
        served = skill.served
        if served.kind != kind:
            what = {"embedding": "embeddings", "generation": "completions"}[kind]
            raise APIError(
                400,
                f"The model '{served.id}' ({served.class_name}) does not support "
                f"{what}: it serves {served.kind}s.",
                param="model",
                code="unsupported_model_task",
            )
        return skill

    # ---- introspection ---------------------------------------------------------------------
    def skill_health(skill: ServedSkill) -> dict[str, Any]:
        return {
            **skill.served.describe(),
            "batching": {
                "max_batch_size": settings.batch_size,
                "max_batch_tokens": skill.budget,
                "max_wait_ms": settings.max_wait_ms,
                "enabled": settings.batching,
            },
            "queue": {
                "max_concurrent_requests": settings.max_concurrent_requests,
                "pending": skill.batcher.pending,
                "waiting": skill.batcher.waiting,
            },
        }

    @app.get("/health")
    async def health() -> dict[str, Any]:
        # The default skill's fields at the top level (what a one-skill client reads), every
        # skill's under "models".
        return {
            "status": "ok",
            **skill_health(default),
            "replica": replica,
            **({"ingress": ingress} if ingress is not None else {}),
            "models": [skill_health(s) for s in skills.values()],
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics_text() -> PlainTextResponse:
        return PlainTextResponse(
            metrics.render(
                [info(s) for s in skills.values()],
                queue_size=sum(s.batcher.waiting for s in skills.values()),
            ),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [s.card() for s in skills.values()]}

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str) -> dict[str, Any]:
        return resolve(model).card()

    # ---- embeddings ------------------------------------------------------------------------
    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest) -> JSONResponse:
        with RequestAccount(metrics, "single" if isinstance(body.input, str) else "batch") as acc:
            return await embeddings_answer(body, acc)

    async def embeddings_answer(body: EmbeddingRequest, account: RequestAccount) -> JSONResponse:
        skill = check_model(body.model, "embedding")
        served = skill.served
        if body.dimensions is not None and body.dimensions != served.dimensions:
            raise invalid(
                f"dimensions={body.dimensions} is not available: {served.id} gives "
                f"{served.dimensions}-dimensional embeddings and does not shorten them.",
                param="dimensions",
            )
        inputs = prompt_ids(skill, body.input, "input")
        tokens = sum(len(ids) for ids in inputs)
        metrics.tei_count("te_embed_count", len(inputs))
        pooled = await skill.run_model(
            inputs, size=len(inputs), tokens=tokens, timing=account.timing
        )
        vectors = l2_normalize(np.ascontiguousarray(pooled, dtype=np.float32))
        metrics.tei_count("te_embed_success", len(inputs))
        metrics.count_tokens("prompt", tokens)
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _encode_vector(v, body.encoding_format),
            }
            for i, v in enumerate(vectors)
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": served.id,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            headers=skill.headers,
        )

    def prompt_ids(skill: ServedSkill, value: Any, param: str) -> list[list[int]]:
        """Token ids for each input of a string / list of strings / ids / list of ids."""
        served = skill.served
        if not value:
            raise invalid(f"'{param}' must not be empty.", param=param)
        several = isinstance(value, list) and not isinstance(value[0], int)
        count = len(value) if several else 1
        if count > settings.max_inputs:  # before any tokenizing: a huge list costs nothing
            raise invalid(
                f"'{param}' has {count} entries; this server accepts at most "
                f"{settings.max_inputs} per request.",
                param=param,
                code="too_many_inputs",
            )
        if isinstance(value, str):
            rows = [served.codec.encode(value)]
        elif not several:
            rows = [list(value)]
        else:
            rows = [served.codec.encode(v) if isinstance(v, str) else list(v) for v in value]
        for i, ids in enumerate(rows):
            if not ids:
                raise invalid(f"'{param}[{i}]' is an empty list of token ids.", param=param)
            if served.vocab_size and any(t < 0 or t >= served.vocab_size for t in ids):
                raise invalid(
                    f"'{param}[{i}]' holds token ids outside [0, {served.vocab_size}).",
                    param=param,
                    code="invalid_token_id",
                )
            if served.kind == "embedding" and len(ids) > served.context_length:
                raise invalid(
                    f"'{param}[{i}]' is {len(ids)} tokens long; {served.id} reads at most "
                    f"{served.context_length} tokens per input.",
                    param=param,
                    code="context_length_exceeded",
                )
            if skill.encoder and skill.budget is not None and len(ids) > skill.budget:
                why = "the most one batch holds (--max-batch-tokens)"
                raise input_too_long(i, len(ids), skill.budget, why, param)
        return rows

    # ---- completions -------------------------------------------------------------------------
    def sampling(
        served: ServedModel,
        body: SamplingFields,
        prompts: list[list[int]],
        default_max: int | None,
        param: str,
    ) -> SamplingParams:
        for name, why in unsupported_options(body):
            raise invalid(why + ".", param=name, code="unsupported_parameter")
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        if len(stop) > MAX_STOP_STRINGS:
            raise invalid(
                f"'stop' may hold at most {MAX_STOP_STRINGS} strings, got {len(stop)}.",
                param="stop",
            )
        longest = max(len(p) for p in prompts)
        room = served.context_length - longest
        max_tokens = getattr(body, "max_completion_tokens", None) or body.max_tokens
        if max_tokens is None:
            max_tokens = min(default_max or room, settings.max_completion_tokens)
            if room < 1:
                raise context_too_long(longest, 1, served.context_length, param)
            max_tokens = max(1, min(max_tokens, room))
        if max_tokens > settings.max_completion_tokens:
            raise invalid(
                f"max_tokens={max_tokens} is more than this server allows "
                f"({settings.max_completion_tokens}).",
                param="max_tokens",
            )
        if longest + max_tokens > served.context_length:
            raise context_too_long(longest, max_tokens, served.context_length, param)
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            stop=tuple(s for s in stop if s),
            seed=body.seed,
            presence_penalty=body.presence_penalty or 0.0,
            frequency_penalty=body.frequency_penalty or 0.0,
        )

    def rows_for(prompts: list[list[int]], n: int) -> list[list[int]]:
        if len(prompts) * n > settings.max_rows_per_request:
            raise invalid(
                f"{len(prompts)} prompt(s) x n={n} is {len(prompts) * n} sequences; this "
                f"server generates at most {settings.max_rows_per_request} per request.",
                param="n",
            )
        return [p for p in prompts for _ in range(n)]  # choice index = prompt * n + j

    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest) -> Any:
        skill = check_model(body.model, "generation")
        served = skill.served
        prompts = prompt_ids(skill, body.prompt, "prompt")
        params = sampling(served, body, prompts, settings.default_completion_max_tokens, "prompt")
        rows = rows_for(prompts, body.n or 1)
        prefixes = [served.codec.decode(p) if body.echo else "" for p in rows]
        prompt_tokens = sum(len(p) for p in prompts)
        return await respond(
            skill, body, rows, params, prompt_tokens, chat=False, prefixes=prefixes
        )

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest) -> Any:
        skill = check_model(body.model, "generation")
        served = skill.served
        ids, _ = served.codec.chat_prompt([(m.role, m.text()) for m in body.messages])
        if served.vocab_size and any(t >= served.vocab_size for t in ids):
            raise invalid(
                "the chat prompt tokenizes to ids outside the model's vocabulary.", param="messages"
            )
        params = sampling(served, body, [ids], None, "messages")
        rows = rows_for([ids], body.n or 1)
        return await respond(
            skill, body, rows, params, len(ids), chat=True, prefixes=[""] * len(rows)
        )

    async def respond(
        skill: ServedSkill,
        body: SamplingFields,
        rows: list[list[int]],
        params: SamplingParams,
        prompt_tokens: int,
        chat: bool,
        prefixes: list[str],
    ) -> Any:
        served = skill.served
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        if body.stream:
            if skill.batcher.full:  # refused before the headers go: a stream cannot change status
                raise overloaded(settings.max_concurrent_requests)
            return StreamingResponse(
                stream(skill, ident, body, rows, params, prompt_tokens, chat, prefixes),
                media_type="text/event-stream",
                headers={**skill.headers, "cache-control": "no-cache"},
            )
        outcomes: list[RowOutcome] = await skill.run_model(
            GenerationJob(rows, params), size=len(rows)
        )
        completion_tokens = sum(o.completion_tokens for o in outcomes)
        metrics.count_tokens("prompt", prompt_tokens)
        metrics.count_tokens("completion", completion_tokens)
        if chat:
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": o.text},
                    "finish_reason": o.finish_reason,
                    "logprobs": None,
                }
                for i, o in enumerate(outcomes)
            ]
        else:
            choices = [
                {
                    "index": i,
                    "text": prefixes[i] + o.text,
                    "finish_reason": o.finish_reason,
                    "logprobs": None,
                }
                for i, o in enumerate(outcomes)
            ]
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": served.id,
                "system_fingerprint": f"skillmill-{served.backend}",
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
            headers=skill.headers,
        )

    async def stream(
        skill: ServedSkill,
        ident: str,
        body: SamplingFields,
        rows: list[list[int]],
        params: SamplingParams,
        prompt_tokens: int,
        chat: bool,
        prefixes: list[str],
    ) -> AsyncIterator[str]:
        served = skill.served
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def on_text(row: int, delta: str) -> None:  # called on the model thread
            loop.call_soon_threadsafe(events.put_nowait, (row, delta))

        job = GenerationJob(rows, params, on_text=on_text)
        task = asyncio.ensure_future(skill.batcher.submit(job, size=len(rows)))
        task.add_done_callback(lambda _: events.put_nowait(None))
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices: list[dict], **extra: Any) -> str:
            return (
                "data: "
                + json.dumps(
                    {
                        "id": ident,
                        "object": kind,
                        "created": created,
                        "model": served.id,
                        "system_fingerprint": f"skillmill-{served.backend}",
                        "choices": choices,
                        **extra,
                    }
                )
                + "\n\n"
            )

        def choice(i: int, text: str | None, finish: str | None = None, role: bool = False) -> dict:
            if not chat:
                return {"index": i, "text": text or "", "finish_reason": finish, "logprobs": None}
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            return {"index": i, "delta": delta, "finish_reason": finish, "logprobs": None}

        try:
            if chat:
                yield chunk([choice(i, "", role=True) for i in range(len(rows))])
            elif any(prefixes):
                yield chunk([choice(i, p) for i, p in enumerate(prefixes)])
            while (event := await events.get()) is not None:
                yield chunk([choice(event[0], event[1])])
            outcomes: list[RowOutcome] = task.result()
            yield chunk(
                [choice(i, None if chat else "", o.finish_reason) for i, o in enumerate(outcomes)]
            )
            completion_tokens = sum(o.completion_tokens for o in outcomes)
            metrics.count_tokens("prompt", prompt_tokens)
            metrics.count_tokens("completion", completion_tokens)
            if body.stream_options is not None and body.stream_options.include_usage:
                yield chunk(
                    [],
                    usage={
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                )
            yield "data: [DONE]\n\n"
        except Exception as exc:  # the headers are gone: report in-band, as OpenAI does
            error_id = uuid.uuid4().hex
            log.error("stream %s failed (error id %s)", ident, error_id, exc_info=exc)
            yield "data: " + json.dumps(
                error_body(
                    f"The server had an error while generating (error id {error_id}).",
                    "server_error",
                    None,
                    "internal_error",
                    id=error_id,
                )
            ) + "\n\n"
        finally:
            job.cancelled.set()  # a client that left stops its rows; a finished job ignores it
            task.cancel()

    add_tei_routes(app, skills, metrics, settings)
    return app


def _encode_vector(vector: Any, encoding: str) -> Any:
    if encoding == "base64":  # float32 little-endian, as the OpenAI client decodes it
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.astype(float).tolist()


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        body = exc.tei_body() if request.url.path in TEI_PATHS else exc.body()
        headers = {"retry-after": "1"} if exc.status == 429 else None
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = loc[0] if loc else None
        where = ".".join(loc) if loc else "body"
        message = f"Invalid request: {where}: {first.get('msg', 'invalid')}"
        if first.get("type") == "json_invalid":
            message, param = "Invalid request: the body is not valid JSON.", None
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        if request.url.path in TEI_PATHS:  # TEI's format; a well-formed body of wrong shape: 422
            request.app.state.metrics.tei_count("te_request_failure", err="validation")
            status = 400 if first.get("type") == "json_invalid" else 422
            return JSONResponse({"error": message, "error_type": "validation"}, status_code=status)
        return JSONResponse(
            error_body(message, "invalid_request_error", param, "invalid_value"), status_code=400
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {
            404: f"Unknown endpoint: {request.method} {request.url.path}",
            405: f"Method {request.method} is not allowed on {request.url.path}",
        }
        message = messages.get(exc.status_code, str(exc.detail))
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = {413: "request_too_large", 404: "unknown_url", 405: "method_not_allowed"}.get(
            exc.status_code
        )
        return JSONResponse(
            error_body(message, kind, None, code),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

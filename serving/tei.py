"""text-embeddings-inference's routes beside the OpenAI ones: /embed, /predict, /rerank and
/tokenize, with TEI's request fields, response shapes, error format and ``te_*`` metrics.

Each route serves one kind of skill (/embed an encoder, /predict any sequence classifier,
/rerank a cross-encoder: a sequence classifier with one score); asked of another kind it answers
424 with TEI's ``error_type: backend`` and says which route the loaded skill does serve, as TEI
does.  Inputs longer than the model reads or than one batch holds (``--max-batch-tokens``) are
truncated when the request says ``truncate: true`` and refused with 413, naming both numbers,
when it does not."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from skillmill.runtime.postprocess import l2_normalize

from .engine import ServedModel
from .errors import APIError, input_too_long
from .metrics import Metrics
from .schemas import EmbedRequest, PredictRequest, RerankRequest, TokenizeRequest
from .tokens import TokenRow, encode, tokens_with_offsets

TEI_PATHS = frozenset({"/embed", "/predict", "/rerank", "/tokenize"})
FAILURE_REASONS = {"overloaded": "overloaded", "backend": "model_type", "tokenizer": "tokenization"}

RunModel = Callable[..., Awaitable[Any]]  # (item, size=, tokens=, timing=) -> the model's answer


class RequestAccount:
    """TEI's per-request series: te_request_count / _success / _failure{err} and the duration
    histograms, recorded however the request ends."""

    def __init__(self, metrics: Metrics, method: str):
        self.metrics, self.method = metrics, method
        self.started = time.perf_counter()
        self.timing: dict[str, float] = {}
        metrics.tei_count("te_request_count", method=method)

    def __enter__(self) -> "RequestAccount":
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, _: Any) -> None:
        metrics = self.metrics
        if exc is not None:
            reason = "inference"
            if isinstance(exc, APIError):
                reason = FAILURE_REASONS.get(exc.tei_type, exc.tei_type)
            metrics.tei_count("te_request_failure", err=reason)
            return
        metrics.tei_count("te_request_success", method=self.method)
        metrics.tei_observe("te_request_duration", time.perf_counter() - self.started)
        for key, name in (
            ("tokenization_s", "te_request_tokenization_duration"),
            ("queue_s", "te_request_queue_duration"),
            ("inference_s", "te_request_inference_duration"),
        ):
            if key in self.timing:
                metrics.tei_observe(name, self.timing[key])

    def headers(self, tokens: int, chars: int, backend: str) -> dict[str, str]:
        """TEI's timing headers (milliseconds), and the backend as every route here reports."""
        ms = {k: str(int(v * 1000)) for k, v in self.timing.items()}
        return {
            "x-compute-tokens": str(tokens),
            "x-compute-characters": str(chars),
            "x-total-time": str(int((time.perf_counter() - self.started) * 1000)),
            "x-tokenization-time": ms.get("tokenization_s", "0"),
            "x-queue-time": ms.get("queue_s", "0"),
            "x-inference-time": ms.get("inference_s", "0"),
            "x-skillmill-backend": backend,
        }


def add_tei_routes(
    app: FastAPI, served: ServedModel, metrics: Metrics, run_model: RunModel, max_inputs: int,
    max_batch_tokens: int | None,
) -> None:  # fmt: skip
    limit = min(served.context_length, max_batch_tokens or served.context_length)

    def what_it_serves() -> str:
        if served.kind == "embedding":
            return "an embedding model: use /embed or /v1/embeddings"
        if served.is_reranker:
            return "a cross-encoder (one score per pair): use /rerank or /predict"
        if served.kind == "classification":
            return f"a classifier with {len(served.id2label)} labels: use /predict"
        return "a causal language model: use /v1/completions or /v1/chat/completions"

    def require(route: str, needs: str, ok: bool) -> None:
        if not ok:
            raise APIError(
                424,
                f"{route} needs {needs}; {served.id} ({served.class_name}) is {what_it_serves()}.",
                code="unsupported_model_task",
                tei_type="backend",
            )

    def listed(value: Any, param: str) -> list:
        items = [value] if isinstance(value, str) else list(value)
        if not items:
            raise APIError(422, f"'{param}' must not be empty.", param=param, tei_type="validation")
        if len(items) > max_inputs:
            raise APIError(
                413,
                f"batch size {len(items)} > maximum allowed batch size {max_inputs} ('{param}').",
                param=param,
                code="too_many_inputs",
                tei_type="validation",
            )
        return items

    def rows_for(
        account: RequestAccount, pairs: list[tuple[str, str | None]], body: Any, param: str
    ) -> list[TokenRow]:
        started = time.perf_counter()
        rows = []
        for i, (text, pair) in enumerate(pairs):
            encoded = encode(
                served.codec, text, pair, limit=limit, truncate=body.truncate,
                direction=body.truncation_direction,
            )  # fmt: skip
            if len(encoded.row.ids) > limit:
                if encoded.full_length > served.context_length:
                    why, most = f"the most {served.id} reads per input", served.context_length
                else:
                    why, most = "the most one batch holds (--max-batch-tokens)", limit
                raise input_too_long(i, encoded.full_length, most, why, param)
            metrics.tei_observe("te_request_input_length", len(encoded.row.ids))
            rows.append(encoded.row)
        account.timing["tokenization_s"] = time.perf_counter() - started
        return rows

    async def run(account: RequestAccount, rows: list[TokenRow]) -> np.ndarray:
        tokens = sum(len(r.ids) for r in rows)
        return await run_model(rows, size=len(rows), tokens=tokens, timing=account.timing)

    def answer(account: RequestAccount, content: Any, rows: list[TokenRow], chars: int):
        tokens = sum(len(r.ids) for r in rows)
        metrics.count_tokens("prompt", tokens)
        return JSONResponse(content, headers=account.headers(tokens, chars, served.backend))

    @app.post("/embed")
    async def embed(body: EmbedRequest) -> JSONResponse:
        with RequestAccount(metrics, _method(body.inputs)) as account:
            require("/embed", "an embedding model", served.kind == "embedding")
            texts = listed(body.inputs, "inputs")
            rows = rows_for(account, [(t, None) for t in texts], body, "inputs")
            metrics.tei_count("te_embed_count", len(rows))
            vectors = await run(account, rows)
            if body.normalize:
                vectors = l2_normalize(np.ascontiguousarray(vectors, dtype=np.float32))
            metrics.tei_count("te_embed_success", len(rows))
            return answer(account, vectors.astype(float).tolist(), rows, _chars(texts))

    @app.post("/predict")
    async def predict(body: PredictRequest) -> JSONResponse:
        batch = isinstance(body.inputs, list) and any(isinstance(v, list) for v in body.inputs)
        with RequestAccount(metrics, "batch" if batch else "single") as account:  # a pair is one
            require("/predict", "a sequence classifier", served.kind == "classification")
            pairs, batched = _predict_inputs(body.inputs, max_inputs)
            rows = rows_for(account, pairs, body, "inputs")
            metrics.tei_count("te_predict_count", len(rows))
            scores = _scores(await run(account, rows), body.raw_scores)
            metrics.tei_count("te_predict_success", len(rows))
            predictions = [
                sorted(
                    ({"score": float(s), "label": served.id2label[j]} for j, s in enumerate(row)),
                    key=lambda p: -p["score"],
                )
                for row in scores
            ]
            chars = sum(len(a) + len(b or "") for a, b in pairs)
            return answer(account, predictions if batched else predictions[0], rows, chars)

    @app.post("/rerank")
    async def rerank(body: RerankRequest) -> JSONResponse:
        with RequestAccount(metrics, "batch") as account:
            require("/rerank", "a cross-encoder (a sequence classifier with one score)",
                    served.is_reranker)  # fmt: skip
            texts = listed(body.texts, "texts")
            rows = rows_for(account, [(body.query, t) for t in texts], body, "texts")
            metrics.tei_count("te_predict_count", len(rows))
            scores = _scores(await run(account, rows), body.raw_scores)[:, 0]
            metrics.tei_count("te_predict_success", len(rows))
            ranks = []
            for index in sorted(range(len(texts)), key=lambda i: -scores[i]):
                rank: dict[str, Any] = {"index": index, "score": float(scores[index])}
                if body.return_text:
                    rank["text"] = texts[index]
                ranks.append(rank)
            chars = len(body.query) * len(texts) + _chars(texts)
            return answer(account, ranks, rows, chars)

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> JSONResponse:
        texts = listed(body.inputs, "inputs")
        return JSONResponse(
            [tokens_with_offsets(served.codec, t, body.add_special_tokens) for t in texts]
        )


def _method(inputs: Any) -> str:
    return "single" if isinstance(inputs, str) else "batch"


def _chars(texts: list[str]) -> int:
    return sum(len(t) for t in texts)


def _predict_inputs(value: Any, max_inputs: int) -> tuple[list[tuple[str, str | None]], bool]:
    """TEI's reading of /predict ``inputs``: a text, a [text, text_pair] list (one input), or a
    batch of [text] / [text, text_pair] lists.  Returns the (text, pair) list and whether the
    request was a batch (a batch is answered with one list of predictions per entry)."""
    if isinstance(value, str):
        return [(value, None)], False
    if not value:
        raise APIError(422, "'inputs' must not be empty.", param="inputs", tei_type="validation")
    if all(isinstance(v, str) for v in value):
        if len(value) > 2:
            raise APIError(
                422,
                f"'inputs' is a list of {len(value)} strings; a list of strings is one input, "
                "[text] or [text, text_pair]. Send a batch as [[text], [text, text_pair], ...].",
                param="inputs",
                tei_type="validation",
            )
        return [(value[0], value[1] if len(value) == 2 else None)], False
    if len(value) > max_inputs:
        raise APIError(
            413,
            f"batch size {len(value)} > maximum allowed batch size {max_inputs} ('inputs').",
            param="inputs",
            code="too_many_inputs",
            tei_type="validation",
        )
    for i, entry in enumerate(value):
        if len(entry) not in (1, 2):
            raise APIError(
                422,
                f"'inputs[{i}]' has {len(entry)} strings; each batch entry is [text] or "
                "[text, text_pair].",
                param="inputs",
                tei_type="validation",
            )
    return [(e[0], e[1] if len(e) == 2 else None) for e in value], True


def _scores(logits: np.ndarray, raw: bool) -> np.ndarray:
    """TEI's scores: the logits when raw, else softmax over the labels, or the sigmoid of a
    single score (a cross-encoder's relevance)."""
    logits = np.asarray(logits, dtype=np.float64)
    if raw:
        return logits
    if logits.shape[-1] == 1:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)

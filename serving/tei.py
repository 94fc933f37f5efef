"""text-embeddings-inference's routes beside the OpenAI ones: /embed, /predict, /rerank,
/tokenize and /info, with TEI's request fields, response shapes, error format and ``te_*``
metrics.  Where several skills are served, ``?model=ID`` picks one (see ``add_tei_routes``).

Each route serves one kind of skill (/embed an encoder, /predict any sequence classifier,
/rerank a cross-encoder: a sequence classifier with one score); asked of another kind it answers
424 with TEI's ``error_type: backend`` and says which route the loaded skill does serve, as TEI
does.  Inputs longer than the model reads or than one batch holds (``--max-batch-tokens``) are
truncated when the request says ``truncate: true`` and refused with 413, naming both numbers,
when it does not."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from skillmill.runtime.postprocess import l2_normalize

from .engine import ServedModel
from .errors import APIError, input_too_long, model_not_found
from .metrics import Metrics
from .schemas import EmbedRequest, PredictRequest, RerankRequest, TokenizeRequest
from .tokens import TokenRow, encode, tokens_with_offsets

if TYPE_CHECKING:
    from .app import ServeSettings, ServedSkill

TEI_PATHS = frozenset({"/embed", "/predict", "/rerank", "/tokenize", "/info"})
FAILURE_REASONS = {"overloaded": "overloaded", "backend": "model_type", "tokenizer": "tokenization"}



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
    app: FastAPI, skills: dict[str, "ServedSkill"], metrics: Metrics, settings: "ServeSettings"
) -> None:
    """TEI's routes over the app's skills.  TEI serves one model and its bodies have no
    ``model`` field, so where several skills are served a request picks one with the query
    parameter ``?model=ID``; without it, the first skill (in the order they were given) that can
    serve the route answers, or the first skill, which then says which route it does serve."""
    max_inputs = settings.max_inputs
    ordered = list(skills.values())
    served_ids = list(skills)

    def pick(request: Request, fits: Callable[[ServedModel], bool]) -> "ServedSkill":
        name = request.query_params.get("model")
        if name is not None:
            if name not in skills:
                raise model_not_found(name, served_ids)
            return skills[name]
        return next((s for s in ordered if fits(s.served)), ordered[0])

    def what_it_serves(served: ServedModel) -> str:
        if served.kind == "embedding":
            return "an embedding model: use /embed or /v1/embeddings"
        if served.is_reranker:
            return "a cross-encoder (one score per pair): use /rerank or /predict"
        if served.kind == "classification":
            return f"a classifier with {len(served.id2label)} labels: use /predict"
        return "a causal language model: use /v1/completions or /v1/chat/completions"

    def require(served: ServedModel, route: str, needs: str, ok: bool) -> None:
        if not ok:
            raise APIError(
                424,
                f"{route} needs {needs}; {served.id} ({served.class_name}) is "
                f"{what_it_serves(served)}.",
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
        skill: "ServedSkill",
        account: RequestAccount,
        pairs: list[tuple[str, str | None]],
        body: Any,
        param: str,
    ) -> list[TokenRow]:
        served, limit = skill.served, skill.limit
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

    async def run(skill: "ServedSkill", account: RequestAccount, rows: list[TokenRow]):
        tokens = sum(len(r.ids) for r in rows)
        return await skill.run_model(rows, size=len(rows), tokens=tokens, timing=account.timing)

    def answer(
        skill: "ServedSkill",
        account: RequestAccount,
        content: Any,
        rows: list[TokenRow],
        chars: int,
    ) -> JSONResponse:
        tokens = sum(len(r.ids) for r in rows)
        metrics.count_tokens("prompt", tokens)
        return JSONResponse(content, headers=account.headers(tokens, chars, skill.served.backend))

    def is_embedder(served: ServedModel) -> bool:
        return served.kind == "embedding"

    def is_classifier(served: ServedModel) -> bool:
        return served.kind == "classification"

    def is_reranker(served: ServedModel) -> bool:
        return served.is_reranker

    @app.post("/embed")
    async def embed(body: EmbedRequest, request: Request) -> JSONResponse:
        with RequestAccount(metrics, _method(body.inputs)) as account:
            skill = pick(request, is_embedder)
            require(skill.served, "/embed", "an embedding model", is_embedder(skill.served))
            texts = listed(body.inputs, "inputs")
            rows = rows_for(skill, account, [(t, None) for t in texts], body, "inputs")
            metrics.tei_count("te_embed_count", len(rows))
            vectors = await run(skill, account, rows)
            if body.normalize:
                vectors = l2_normalize(np.ascontiguousarray(vectors, dtype=np.float32))
            metrics.tei_count("te_embed_success", len(rows))
            return answer(skill, account, vectors.astype(float).tolist(), rows, _chars(texts))

    @app.post("/predict")
    async def predict(body: PredictRequest, request: Request) -> JSONResponse:
        batch = isinstance(body.inputs, list) and any(isinstance(v, list) for v in body.inputs)
        with RequestAccount(metrics, "batch" if batch else "single") as account:  # a pair is one
            skill = pick(request, is_classifier)
            served = skill.served
            require(served, "/predict", "a sequence classifier", is_classifier(served))
            pairs, batched = _predict_inputs(body.inputs, max_inputs)
            rows = rows_for(skill, account, pairs, body, "inputs")
            metrics.tei_count("te_predict_count", len(rows))
            scores = _scores(await run(skill, account, rows), body.raw_scores)
            metrics.tei_count("te_predict_success", len(rows))
            predictions = [
                sorted(
                    ({"score": float(s), "label": served.id2label[j]} for j, s in enumerate(row)),
                    key=lambda p: -p["score"],
                )
                for row in scores
            ]
            chars = sum(len(a) + len(b or "") for a, b in pairs)
            return answer(skill, account, predictions if batched else predictions[0], rows, chars)

    @app.post("/rerank")
    async def rerank(body: RerankRequest, request: Request) -> JSONResponse:
        with RequestAccount(metrics, "batch") as account:
            skill = pick(request, is_reranker)
            require(skill.served, "/rerank",
                    "a cross-encoder (a sequence classifier with one score)",
                    is_reranker(skill.served))  # fmt: skip
            texts = listed(body.texts, "texts")
            rows = rows_for(skill, account, [(body.query, t) for t in texts], body, "texts")
            metrics.tei_count("te_predict_count", len(rows))
            scores = _scores(await run(skill, account, rows), body.raw_scores)[:, 0]
            metrics.tei_count("te_predict_success", len(rows))
            ranks = []
            for index in sorted(range(len(texts)), key=lambda i: -scores[i]):
                rank: dict[str, Any] = {"index": index, "score": float(scores[index])}
                if body.return_text:
                    rank["text"] = texts[index]
                ranks.append(rank)
            chars = len(body.query) * len(texts) + _chars(texts)
            return answer(skill, account, ranks, rows, chars)

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest, request: Request) -> JSONResponse:
        skill = pick(request, lambda _: True)
        texts = listed(body.inputs, "inputs")
        return JSONResponse(
            [tokens_with_offsets(skill.served.codec, t, body.add_special_tokens) for t in texts]
        )

    @app.get("/info")
    async def info(request: Request) -> dict[str, Any]:
        skill = pick(request, lambda _: True)
        return model_info(skill, settings, served_ids, app.state.replica)


def model_info(
    skill: "ServedSkill", settings: "ServeSettings", served_ids: list[str], replica: str | None
) -> dict[str, Any]:
    """TEI's /info fields for one skill, and where it runs (skillmill's own fields after)."""
    served = skill.served
    if served.is_reranker:
        model_type: dict[str, Any] = {"reranker": _label_maps(served)}
    elif served.kind == "classification":
        model_type = {"classifier": _label_maps(served)}
    elif served.kind == "embedding":
        model_type = {"embedding": {"pooling": served.pooling.get("mode", "mean")}}
    else:
        model_type = {"generation": {}}
    return {
        "model_id": served.id,
        "model_sha": None,
        "model_dtype": served.precision,
        "model_type": model_type,
        "max_concurrent_requests": settings.max_concurrent_requests,
        "max_input_length": served.context_length,
        "max_batch_tokens": skill.budget,
        "max_batch_requests": settings.batch_size,
        "max_client_batch_size": settings.max_inputs,
        "auto_truncate": False,
        "tokenization_workers": None,
        "version": "skillmill",
        "sha": None,
        "docker_label": None,
        # skillmill's own, beside TEI's
        "skill": served.class_name,
        "backend": served.backend,
        "engine": served.engine,
        "device": served.device,
        "precision": served.precision,
        "replica": replica,
        "served_models": served_ids,
    }


def _label_maps(served: ServedModel) -> dict[str, Any]:
    id2label = {str(i): label for i, label in sorted(served.id2label.items())}
    return {"id2label": id2label, "label2id": {v: int(k) for k, v in id2label.items()}}


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

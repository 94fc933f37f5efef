"""Refusals in the OpenAI error format, and an internal failure that leaves the server serving."""

import httpx
import pytest


def post(server, path, body=None, **kwargs):
    if body is not None:
        kwargs["json"] = body
    return httpx.post(server.url + path, timeout=60, **kwargs)


def error_of(response, status):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["message"]
    return error


def test_unknown_model_is_404_for_the_openai_client(gpt2_client):
    import openai

    with pytest.raises(openai.NotFoundError) as caught:
        gpt2_client.completions.create(model="gpt-4", prompt="hi", max_tokens=2)
    assert "gpt-4" in str(caught.value)


@pytest.mark.parametrize(
    "body, param",
    [
        ({"prompt": "x", "temperature": "hot"}, "temperature"),
        ({"prompt": "x", "max_tokens": 2.5}, "max_tokens"),
        ({"prompt": "x", "n": 0}, "n"),
        ({"prompt": "x", "top_p": 1.5}, "top_p"),
        ({"prompt": 7}, "prompt"),
        ({"prompt": "x", "max_token": 3}, "max_token"),
        ({}, "prompt"),
    ],
)
def test_wrong_types_are_400_naming_the_field(gpt2_server, body, param):
    error = error_of(
        post(gpt2_server, "/v1/completions", {"model": gpt2_server.served.id, **body}), 400
    )
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_too_many_tokens_is_400_with_the_context_length(gpt2_server):
    served = gpt2_server.served
    error = error_of(
        post(
            gpt2_server,
            "/v1/completions",
            {"model": served.id, "prompt": "x" * (served.context_length - 4), "max_tokens": 10},
        ),
        400,
    )
    assert error["code"] == "context_length_exceeded"
    assert str(served.context_length) in error["message"]
    error = error_of(
        post(
            gpt2_server,
            "/v1/completions",
            {"model": served.id, "prompt": "x", "max_tokens": 100000},
        ),
        400,
    )
    assert error["param"] == "max_tokens"


def test_too_many_or_too_long_inputs_are_400(tiny_bert_server):
    served = tiny_bert_server.served
    error = error_of(
        post(tiny_bert_server, "/v1/embeddings", {"model": served.id, "input": ["a"] * 9}), 400
    )
    assert error["code"] == "too_many_inputs"
    error = error_of(
        post(
            tiny_bert_server,
            "/v1/embeddings",
            {"model": served.id, "input": "word " * served.context_length},
        ),
        400,
    )
    assert error["code"] == "context_length_exceeded"
    error = error_of(
        post(tiny_bert_server, "/v1/embeddings", {"model": served.id, "input": [[1, 2, 10**9]]}),
        400,
    )
    assert error["code"] == "invalid_token_id"
    error_of(post(tiny_bert_server, "/v1/embeddings", {"model": served.id, "input": []}), 400)


def test_oversize_bodies_are_413_declared_or_chunked(tiny_bert_server):
    limit = tiny_bert_server.settings.max_body_bytes
    big = b'{"model": "x", "input": "' + b"a" * (2 * limit) + b'"}'
    error = error_of(
        post(
            tiny_bert_server,
            "/v1/embeddings",
            content=big,
            headers={"content-type": "application/json"},
        ),
        413,
    )
    assert str(limit) in error["message"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(2 * limit // 4096 + 1):
            yield b"a" * 4096

    error_of(
        post(
            tiny_bert_server,
            "/v1/embeddings",
            content=chunks(),
            headers={"content-type": "application/json"},
        ),
        413,
    )


def test_bad_json_wrong_task_unsupported_options_and_routes(gpt2_server, tiny_bert_server):
    model = gpt2_server.served.id
    assert (
        error_of(
            post(
                gpt2_server,
                "/v1/completions",
                content=b"{nope",
                headers={"content-type": "application/json"},
            ),
            400,
        )["param"]
        is None
    )
    assert (
        error_of(post(gpt2_server, "/v1/embeddings", {"model": model, "input": "x"}), 400)["code"]
        == "unsupported_model_task"
    )
    assert (
        error_of(
            post(
                tiny_bert_server,
                "/v1/chat/completions",
                {
                    "model": tiny_bert_server.served.id,
                    "messages": [{"role": "user", "content": "x"}],
                },
            ),
            400,
        )["code"]
        == "unsupported_model_task"
    )
    assert (
        error_of(
            post(gpt2_server, "/v1/completions", {"model": model, "prompt": "x", "logprobs": 2}),
            400,
        )["param"]
        == "logprobs"
    )
    assert (
        error_of(
            post(
                gpt2_server,
                "/v1/chat/completions",
                {
                    "model": model,
                    "messages": [{"role": "user", "content": "x"}],
                    "tools": [{"type": "function"}],
                },
            ),
            400,
        )["param"]
        == "tools"
    )
    assert (
        error_of(post(gpt2_server, "/v1/chat/completions", {"model": model, "messages": []}), 400)[
            "param"
        ]
        == "messages"
    )
    error_of(httpx.get(gpt2_server.url + "/v2/nothing"), 404)
    error_of(httpx.delete(gpt2_server.url + "/v1/models"), 405)


def test_internal_failure_is_500_with_an_id_and_the_server_goes_on(gpt2_server, monkeypatch):
    served = gpt2_server.served
    body = {"model": served.id, "prompt": "hi", "max_tokens": 2, "temperature": 0}

    def broken(jobs):
        raise RuntimeError("simulated failure inside the model call")

    monkeypatch.setattr(served, "generate_batch", broken)
    error = error_of(post(gpt2_server, "/v1/completions", body), 500)
    assert error["type"] == "server_error" and len(error["id"]) == 32
    assert error["id"] in error["message"]
    assert "simulated" not in error["message"]  # internals stay in the log
    streamed = post(gpt2_server, "/v1/completions", {**body, "stream": True})
    assert streamed.status_code == 200 and '"server_error"' in streamed.text
    monkeypatch.undo()
    assert post(gpt2_server, "/v1/completions", body).status_code == 200
    assert httpx.get(gpt2_server.url + "/health").json()["status"] == "ok"


def _sample(text, series):
    """The value of one series in /metrics text (0 when the series is not there yet)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_health_and_metrics_say_where_the_model_runs(gpt2_server):
    health = httpx.get(gpt2_server.url + "/health").json()
    assert health["requested_device"] == "cpu"
    # the decoding loop runs the native executor's decode graph with its explicit KV cache
    assert (health["backend"], health["device"], health["engine"]) == ("cpu", "cpu", "native")
    assert health["decoder"] == "native-kv-cache"
    assert health["fallback_reason"] is None  # cpu was asked for and cpu runs it
    assert health["batching"]["enabled"] and health["batching"]["max_batch_size"] > 1
    ok_series = 'skillmill_requests_total{method="POST",route="/v1/completions",status="200"}'
    tokens_series = 'skillmill_tokens_total{kind="completion"}'
    before = httpx.get(gpt2_server.url + "/metrics").text  # shared server: compare two readings
    answer = post(
        gpt2_server, "/v1/completions", {"model": health["model"], "prompt": "x", "max_tokens": 1}
    )
    assert answer.status_code == 200 and answer.headers["x-skillmill-backend"] == "cpu"
    metrics = httpx.get(gpt2_server.url + "/metrics")
    text = metrics.text
    assert metrics.headers["content-type"].startswith("text/plain")
    assert _sample(text, ok_series) == _sample(before, ok_series) + 1
    assert _sample(text, tokens_series) == _sample(before, tokens_series) + 1
    for needle in (
        "# TYPE skillmill_request_latency_seconds histogram",
        'skillmill_request_latency_seconds_bucket{route="/v1/completions",le="+Inf"}',
        "# TYPE skillmill_batch_size histogram",
        'skillmill_backend_info{model="GPT2LMHeadModel-tiny",kind="generation",backend="cpu",'
        'device="cpu",engine="native",requested_device="cpu",fallback_reason=""',
    ):
        assert needle in text, needle
    for line in text.splitlines():  # every sample line is `name{labels} number`
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])

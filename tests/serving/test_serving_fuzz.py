"""A fuzzing pass: hypothesis builds bad (and some good) requests for every endpoint — arbitrary
JSON, valid bodies with fields replaced, added or dropped, raw bytes, odd content types — and
not one may produce a 5xx, a broken error body, or take the server down."""

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
FIELDS = [
    "model",
    "input",
    "prompt",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "encoding_format",
    "dimensions",
    "echo",
    "logprobs",
    "user",
    "response_format",
    "tools",
    "tool_choice",
]
TEI_FIELDS = [
    "inputs",
    "normalize",
    "truncate",
    "truncation_direction",
    "raw_scores",
    "query",
    "texts",
    "return_text",
    "add_special_tokens",
]
TEI_BODIES = {
    "/embed": {"inputs": ["hello", "world"], "normalize": True, "truncate": False},
    "/tokenize": {"inputs": "hello", "add_special_tokens": True},
    "/predict": {"inputs": [["hello", "world"], ["again"]], "raw_scores": False},
    "/rerank": {"query": "q", "texts": ["a", "b"], "return_text": True, "truncate": True},
}
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def valid_bodies(embedding_model, generation_model):
    messages = [{"role": "user", "content": "hi"}]
    return {
        "/v1/embeddings": {"model": embedding_model, "input": ["hello", "world"]},
        "/v1/completions": {"model": generation_model, "prompt": "hi", "max_tokens": 3},
        "/v1/chat/completions": {"model": generation_model, "messages": messages, "max_tokens": 3},
    }


def mutated(base, fields=FIELDS):
    """A valid body with some fields replaced by arbitrary JSON, some added, some dropped."""
    return st.builds(
        lambda replace, add, drop: {
            **{k: v for k, v in base.items() if k not in drop},
            **replace,
            **add,
        },
        st.dictionaries(st.sampled_from(sorted(base)), JSON_VALUES, max_size=2),
        st.dictionaries(st.sampled_from(fields), JSON_VALUES, max_size=2),
        st.sets(st.sampled_from(sorted(base)), max_size=1),
    )


def check(response):
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    if response.status_code >= 400 and response.url.path in TEI_BODIES:  # TEI's error format
        body = response.json()
        assert set(body) == {"error", "error_type"} and body["error"], body
    elif response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) >= {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"]
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        assert '"server_error"' not in response.text, response.text[:500]
        assert response.text.rstrip().endswith("data: [DONE]")
    return response


@pytest.fixture(scope="module")
def servers(small_gpt2_server, tiny_bert_server):
    return {
        "/v1/embeddings": tiny_bert_server,
        "/v1/completions": small_gpt2_server,
        "/v1/chat/completions": small_gpt2_server,
    }


@pytest.fixture(scope="module")
def bodies(small_gpt2_server, tiny_bert_server):
    return valid_bodies(tiny_bert_server.served.id, small_gpt2_server.served.id)


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=60) as client:
        yield client


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/completions", "/v1/chat/completions"])
def test_mutated_bodies_never_500(servers, bodies, http, path):
    server = servers[path]
    valid = http.post(server.url + path, json=bodies[path])  # the fuzzer's starting point works
    assert valid.status_code == 200, valid.text[:500]

    @FUZZ
    @given(body=mutated(bodies[path]))
    def run(body):
        check(
            http.post(
                server.url + path,
                content=json.dumps(body, allow_nan=True),
                headers={"content-type": "application/json"},
            )
        )

    run()
    assert http.get(server.url + "/health").status_code == 200


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/completions", "/v1/chat/completions"])
def test_arbitrary_payloads_never_500(servers, http, path):
    server = servers[path]

    @FUZZ
    @given(
        payload=JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True).encode())
        | st.binary(max_size=300),
        content_type=st.sampled_from(
            [
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
                "application/json; charset=latin-1",
                "",
            ]
        ),
    )
    def run(payload, content_type):
        headers = {"content-type": content_type} if content_type else {}
        check(http.post(server.url + path, content=payload, headers=headers))

    run()
    assert http.get(server.url + "/health").status_code == 200


def test_odd_paths_and_methods_never_500(small_gpt2_server, http):
    @FUZZ
    @given(
        path=st.text(
            alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="?#%"),
            max_size=30,
        ),
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    )
    def run(path, method):
        response = http.request(method, small_gpt2_server.url + "/" + path.lstrip("/"))
        assert response.status_code < 500, f"{method} /{path}: {response.status_code}"
        if method != "HEAD":  # a HEAD answer has no body to check
            check(response)

    run()


def test_deeply_nested_json_is_a_400(small_gpt2_server, http):
    body = b'{"model": "x", "prompt": ' + b"[" * 20000 + b"]" * 20000 + b"}"
    response = check(
        http.post(
            small_gpt2_server.url + "/v1/completions",
            content=body,
            headers={"content-type": "application/json"},
        )
    )
    assert response.status_code == 400, response.text[:500]
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert http.get(small_gpt2_server.url + "/health").status_code == 200


@pytest.fixture(scope="module")
def tiny_cross_encoder_server():
    """A tiny random cross-encoder (one label), so /predict and /rerank run their pair path."""
    from skillmill.registry.tiny import tiny_config
    from skillmill.serving.app import ServeSettings
    from skillmill.serving.engine import ServedModel
    from skillmill.serving.server import start_server

    config = tiny_config("bert")
    config.num_labels = 1
    served = ServedModel("BertForSequenceClassification", config, device="cpu")
    settings = ServeSettings(max_inputs=8, max_body_bytes=64 * 1024, max_batch_tokens=96)
    with start_server(served, settings) as server:
        yield server


@pytest.mark.parametrize("path", sorted(TEI_BODIES))
def test_tei_bodies_never_500(tiny_bert_server, tiny_cross_encoder_server, http, path):
    server = tiny_bert_server if path in ("/embed", "/tokenize") else tiny_cross_encoder_server
    valid = http.post(server.url + path, json=TEI_BODIES[path])
    assert valid.status_code == 200, valid.text[:500]

    @FUZZ
    @given(body=mutated(TEI_BODIES[path], TEI_FIELDS))
    def run(body):
        check(
            http.post(
                server.url + path,
                content=json.dumps(body, allow_nan=True),
                headers={"content-type": "application/json"},
            )
        )

    run()
    assert http.get(server.url + "/health").status_code == 200

"""text-embeddings-inference's routes on the single-process server: /embed, /predict, /rerank
and /tokenize against real MiniLM weights (and classifier heads put on them), compared with
transformers run directly; TEI's error format for bad input and for a route the skill cannot
serve; token-budget batching; the bounded queue's 429; TEI's metric names."""

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch

from skillmill.serving.app import ServeSettings
from skillmill.serving.engine import ServedModel
from skillmill.serving.server import start_server

SENTENCES = ["A man is eating food.", "A man is riding a horse.", "A monkey plays a drum."]
QUERY = "What is a man eating?"
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


def post(server, path, body=None, **kwargs):
    if body is not None:
        kwargs["json"] = body
    return httpx.post(server.url + path, timeout=60, **kwargs)


def tei_error(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type"} and body["error"], body
    return body


def _head_on_minilm(minilm_dir, folder, labels):
    """MiniLM's weights with a seeded sequence-classification head: a real tokenizer and a
    real encoder, so the scores can be checked against transformers run directly."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        minilm_dir,
        num_labels=len(labels),
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(f"{minilm_dir}/{name}", folder)
    return str(folder)


@pytest.fixture(scope="module")
def cross_encoder_dir(minilm_dir, tmp_path_factory):
    return _head_on_minilm(minilm_dir, tmp_path_factory.mktemp("cross-encoder"), {0: "LABEL_0"})


@pytest.fixture(scope="module")
def classifier_dir(minilm_dir, tmp_path_factory):
    return _head_on_minilm(minilm_dir, tmp_path_factory.mktemp("classifier"), LABELS)


@pytest.fixture(scope="module")
def rerank_server(cross_encoder_dir):
    served = ServedModel("BertForSequenceClassification", cross_encoder_dir, device="cpu")
    with start_server(served) as server:
        yield server


@pytest.fixture(scope="module")
def classifier_server(classifier_dir):
    served = ServedModel("BertForSequenceClassification", classifier_dir, device="cpu")
    with start_server(served) as server:
        yield server


def _reference_logits(folder, texts, pairs=None):
    from transformers import AutoTokenizer, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = BertForSequenceClassification.from_pretrained(folder).eval()
    batch = tokenizer(texts, pairs, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits.numpy()


# ---- /embed and /tokenize ------------------------------------------------------------------
def test_embed_equals_the_openai_route_and_unnormalised_mean_pooling(minilm_server, minilm_dir):
    from transformers import AutoModel, AutoTokenizer

    one = post(minilm_server, "/embed", {"inputs": SENTENCES[0]})
    assert one.status_code == 200, one.text
    assert np.asarray(one.json()).shape == (1, 384)
    many = np.asarray(post(minilm_server, "/embed", {"inputs": SENTENCES}).json())
    openai = post(
        minilm_server, "/v1/embeddings", {"model": minilm_server.served.id, "input": SENTENCES}
    )
    expected = np.asarray([d["embedding"] for d in openai.json()["data"]])
    np.testing.assert_allclose(many, expected, atol=1e-5)
    np.testing.assert_allclose(many[0], one.json()[0], atol=1e-5)

    raw = np.asarray(
        post(minilm_server, "/embed", {"inputs": SENTENCES, "normalize": False}).json()
    )
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    model = AutoModel.from_pretrained(minilm_dir).eval()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(raw, pooled, atol=1e-4)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-2)


def test_embed_truncates_only_when_asked_and_from_the_side_asked(minilm_server, minilm_dir):
    from transformers import AutoTokenizer

    served = minilm_server.served
    text = " ".join(f"word{i}" for i in range(served.context_length))  # well over the limit
    error = tei_error(post(minilm_server, "/embed", {"inputs": text}), 413)
    assert error["error_type"] == "validation"
    assert str(served.context_length) in error["error"]
    full_length = len(AutoTokenizer.from_pretrained(minilm_dir)(text)["input_ids"])
    assert str(full_length) in error["error"]

    right = post(minilm_server, "/embed", {"inputs": text, "truncate": True})
    assert right.status_code == 200, right.text
    assert right.headers["x-compute-tokens"] == str(served.context_length)
    left = post(
        minilm_server,
        "/embed",
        {"inputs": text, "truncate": True, "truncation_direction": "Left"},
    )
    assert left.status_code == 200
    assert not np.allclose(right.json(), left.json(), atol=1e-3)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    for side, response in (("right", right), ("left", left)):
        tokenizer.truncation_side = side
        ids = tokenizer(text, truncation=True, max_length=served.context_length)["input_ids"]
        same = post(minilm_server, "/v1/embeddings", {"model": served.id, "input": ids})
        np.testing.assert_allclose(
            response.json()[0], same.json()["data"][0]["embedding"], atol=1e-5
        )


def test_tokenize_gives_ids_tokens_and_character_offsets(minilm_server, minilm_dir):
    from transformers import AutoTokenizer

    text = "Héllo wörld, again"
    response = post(minilm_server, "/tokenize", {"inputs": text})
    assert response.status_code == 200, response.text
    (tokens,) = response.json()
    assert [t["id"] for t in tokens] == AutoTokenizer.from_pretrained(minilm_dir)(text)["input_ids"]
    assert tokens[0] == {"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None}
    assert tokens[-1]["special"] and tokens[-1]["text"] == "[SEP]"
    for token in tokens[1:-1]:
        assert not token["special"]
        assert token["text"] == text[token["start"] : token["stop"]]
    assert tokens[1]["text"] == "Héllo"
    plain = post(minilm_server, "/tokenize", {"inputs": [text, "b"], "add_special_tokens": False})
    assert [len(t) for t in plain.json()] == [len(tokens) - 2, 1]


# ---- /predict and /rerank ------------------------------------------------------------------
def test_predict_scores_every_label_as_transformers_does(classifier_server, classifier_dir):
    logits = _reference_logits(classifier_dir, SENTENCES)
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

    single = post(classifier_server, "/predict", {"inputs": SENTENCES[0]})
    assert single.status_code == 200, single.text
    predictions = single.json()
    assert sorted(p["label"] for p in predictions) == sorted(LABELS.values())
    assert [p["score"] for p in predictions] == sorted(
        (p["score"] for p in predictions), reverse=True
    )
    by_label = {p["label"]: p["score"] for p in predictions}
    np.testing.assert_allclose([by_label[LABELS[i]] for i in range(3)], probabilities[0], atol=1e-4)

    batch = post(
        classifier_server, "/predict", {"inputs": [[s] for s in SENTENCES], "raw_scores": True}
    )
    assert batch.status_code == 200, batch.text
    for row, expected in zip(batch.json(), logits):
        got = {p["label"]: p["score"] for p in row}
        np.testing.assert_allclose([got[LABELS[i]] for i in range(3)], expected, atol=1e-4)

    pair = post(
        classifier_server, "/predict", {"inputs": [QUERY, SENTENCES[0]], "raw_scores": True}
    )
    expected = _reference_logits(classifier_dir, [QUERY], [SENTENCES[0]])[0]
    got = {p["label"]: p["score"] for p in pair.json()}
    np.testing.assert_allclose([got[LABELS[i]] for i in range(3)], expected, atol=1e-4)


def test_rerank_sorts_by_the_cross_encoders_score(rerank_server, cross_encoder_dir):
    logits = _reference_logits(cross_encoder_dir, [QUERY] * 3, SENTENCES)[:, 0]
    response = post(
        rerank_server, "/rerank", {"query": QUERY, "texts": SENTENCES, "return_text": True}
    )
    assert response.status_code == 200, response.text
    ranks = response.json()
    assert [r["index"] for r in ranks] == list(np.argsort(-logits))
    for rank in ranks:
        assert rank["text"] == SENTENCES[rank["index"]]
        np.testing.assert_allclose(
            rank["score"], 1 / (1 + np.exp(-logits[rank["index"]])), atol=1e-4
        )
    raw = post(rerank_server, "/rerank", {"query": QUERY, "texts": SENTENCES, "raw_scores": True})
    for rank in raw.json():
        assert set(rank) == {"index", "score"}
        np.testing.assert_allclose(rank["score"], logits[rank["index"]], atol=1e-4)
    # a cross-encoder also answers /predict, with its one label's sigmoid
    (prediction,) = post(rerank_server, "/predict", {"inputs": [QUERY, SENTENCES[0]]}).json()
    assert prediction["label"] == "LABEL_0"
    np.testing.assert_allclose(prediction["score"], 1 / (1 + np.exp(-logits[0])), atol=1e-4)


def test_a_route_the_skill_cannot_serve_says_why(minilm_server, classifier_server, rerank_server):
    cases = [
        (minilm_server, "/rerank", {"query": "q", "texts": ["t"]}, "use /embed"),
        (minilm_server, "/predict", {"inputs": "t"}, "use /embed"),
        (classifier_server, "/rerank", {"query": "q", "texts": ["t"]}, "use /predict"),
        (classifier_server, "/embed", {"inputs": "t"}, "use /predict"),
        (rerank_server, "/embed", {"inputs": "t"}, "use /rerank"),
    ]
    for server, path, body, hint in cases:
        error = tei_error(post(server, path, body), 424)
        assert error["error_type"] == "backend"
        assert path in error["error"] and hint in error["error"], error


@pytest.mark.parametrize(
    "path, body, status, words",
    [
        ("/embed", b"{nope", 400, "not valid JSON"),
        ("/embed", {"inputs": 5}, 422, "inputs"),
        ("/embed", {"inputs": []}, 422, "empty"),
        ("/embed", {"inputs": "x", "normalize": "yes"}, 422, "normalize"),
        ("/embed", {"inputs": "x", "truncation_direction": "Up"}, 422, "truncation_direction"),
        ("/embed", {"input": "x"}, 422, "inputs"),
        ("/embed", {"inputs": ["x"] * 300}, 413, "300"),
        ("/tokenize", {"inputs": []}, 422, "empty"),
        ("/tokenize", {"inputs": "x", "add_special_tokens": 1}, 422, "add_special_tokens"),
    ],
)
def test_bad_input_is_a_4xx_with_the_reason(minilm_server, path, body, status, words):
    if isinstance(body, bytes):
        response = post(
            minilm_server, path, content=body, headers={"content-type": "application/json"}
        )
    else:
        response = post(minilm_server, path, body)
    assert words in tei_error(response, status)["error"]


@pytest.mark.parametrize(
    "server_name, path, body, status, words",
    [
        ("rerank_server", "/rerank", {"query": "q", "texts": []}, 422, "empty"),
        ("rerank_server", "/rerank", {"query": 1, "texts": ["t"]}, 422, "query"),
        ("rerank_server", "/rerank", {"query": "q", "texts": ["t"], "top_n": 1}, 422, "top_n"),
        ("classifier_server", "/predict", {"inputs": ["a", "b", "c"]}, 422, "[text, text_pair]"),
        ("classifier_server", "/predict", {"inputs": [["a", "b", "c"]]}, 422, "inputs[0]"),
        ("classifier_server", "/predict", {"inputs": []}, 422, "empty"),
        ("classifier_server", "/predict", {"inputs": "x", "raw_scores": "no"}, 422, "raw_scores"),
    ],
)
def test_bad_classifier_input_is_a_4xx_with_the_reason(
    request, server_name, path, body, status, words
):
    server = request.getfixturevalue(server_name)
    assert words in tei_error(post(server, path, body), status)["error"]


# ---- token budget and the bounded queue ----------------------------------------------------
class Gate:
    """Wraps a served model's batch method: records each call's items and holds the first call
    until released, so a test can fill the queue behind it deterministically."""

    def __init__(self, served, method):
        self.inner = getattr(served, method)
        self.entered, self.release = threading.Event(), threading.Event()
        self.calls = []
        setattr(served, method, self)

    def __call__(self, items, **kwargs):
        self.calls.append(items)
        self.entered.set()
        assert self.release.wait(60)
        return self.inner(items, **kwargs)


def _health(server):
    return httpx.get(server.url + "/health", timeout=30).json()


def _wait_for(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_batches_hold_at_most_max_batch_tokens():
    served = ServedModel("BertModel", "tiny", device="cpu")
    settings = ServeSettings(max_batch_tokens=64, max_wait_ms=0)
    # the tiny model's trained WordPiece spells "yyy..." as y ##y ##y ...: 28 letters and [CLS] [SEP]
    text = "y" * 28
    assert len(served.skill.tokenizer(text)["input_ids"]) == 30
    too_long = len(served.skill.tokenizer("y" * 65)["input_ids"])
    process, rows_per_call = served.skill.process, []

    def recording_process(batch, **kwargs):
        rows_per_call.append(batch["attention_mask"].sum(1).tolist())
        return process(batch, **kwargs)

    served.skill.process = recording_process
    with start_server(served, settings) as server, ThreadPoolExecutor(8) as pool:
        error = tei_error(post(server, "/embed", {"inputs": "y" * 65}), 413)
        assert str(too_long) in error["error"] and "64" in error["error"]
        openai = post(server, "/v1/embeddings", {"model": served.id, "input": "y" * 65})
        assert openai.status_code == 413 and "64" in openai.json()["error"]["message"]
        cut = post(server, "/embed", {"inputs": "y" * 65, "truncate": True})
        assert cut.status_code == 200 and cut.headers["x-compute-tokens"] == "64"
        gate = Gate(served, "embed_batch")

        first = pool.submit(post, server, "/embed", {"inputs": text})
        assert gate.entered.wait(30)
        queued = [pool.submit(post, server, "/embed", {"inputs": text}) for _ in range(4)]
        _wait_for(lambda: _health(server)["queue"]["waiting"] == 4, "four queued requests")
        big = pool.submit(post, server, "/embed", {"inputs": [text] * 3})  # 90 tokens: alone
        _wait_for(lambda: _health(server)["queue"]["waiting"] == 5, "the big one queued")
        gate.release.set()
        assert all(f.result().status_code == 200 for f in [first, big, *queued])
        metrics = httpx.get(server.url + "/metrics").text

    tokens_per_batch = [sum(len(row.ids) for item in call for row in item) for call in gate.calls]
    assert tokens_per_batch == [30, 60, 60, 90], tokens_per_batch  # two 30-token requests a batch
    assert rows_per_call[-2:] == [[30, 30], [30]]  # the 90-token request split within 64 tokens
    assert 'te_batch_next_tokens_bucket{le="64"}' in metrics


def test_a_full_queue_answers_429_at_once_and_serves_again_after():
    served = ServedModel("BertModel", "tiny", device="cpu")
    bound = 2
    gate = Gate(served, "embed_batch")
    settings = ServeSettings(max_concurrent_requests=bound)
    with start_server(served, settings) as server, ThreadPoolExecutor(32) as pool:
        admitted = [pool.submit(post, server, "/embed", {"inputs": "held"}) for _ in range(bound)]
        assert gate.entered.wait(30)
        _wait_for(lambda: _health(server)["queue"]["pending"] == bound, "the queue to fill")

        started = time.monotonic()
        excess = [
            pool.submit(post, server, "/embed", {"inputs": f"extra {i}"}) for i in range(10 * bound)
        ]
        refused = [f.result() for f in excess]
        assert time.monotonic() - started < 20  # answered, not parked behind the held batch
        for response in refused:
            error = tei_error(response, 429)
            assert error["error_type"] == "overloaded" and str(bound) in error["error"]
            assert response.headers["retry-after"] == "1"
        openai = post(server, "/v1/embeddings", {"model": served.id, "input": "x"})
        assert openai.status_code == 429
        assert openai.json()["error"]["code"] == "queue_full"

        gate.release.set()
        assert [f.result().status_code for f in admitted] == [200] * bound
        assert post(server, "/embed", {"inputs": "after"}).status_code == 200
        assert _health(server)["queue"]["pending"] == 0
        metrics = httpx.get(server.url + "/metrics").text
    # the excess on /embed, and the one on /v1/embeddings
    assert f'te_request_failure{{err="overloaded"}} {10 * bound + 1}' in metrics
    assert 'skillmill_requests_total{method="POST",route="/embed",status="429"}' in metrics


# ---- metrics -------------------------------------------------------------------------------
def test_metrics_carry_teis_names_beside_skillmills(classifier_server):
    assert post(classifier_server, "/predict", {"inputs": "fine"}).status_code == 200
    assert post(classifier_server, "/predict", {"inputs": []}).status_code == 422
    text = httpx.get(classifier_server.url + "/metrics").text
    for line in (
        'te_request_count{method="single"}',
        'te_request_success{method="single"}',
        'te_request_failure{err="validation"}',
        "te_predict_count ",
        "te_predict_success ",
        "te_queue_size 0",
        "te_request_duration_bucket",
        "te_request_queue_duration_count",
        "te_request_inference_duration_count",
        "te_request_tokenization_duration_count",
        "te_request_input_length_bucket",
        "te_batch_next_size_bucket",
        "te_batch_next_tokens_bucket",
        "skillmill_requests_total",
        "skillmill_batch_size_bucket",
    ):
        assert line in text, line
    assert "# TYPE te_request_count counter" in text
    assert "te_request_count_total" not in text  # TEI's names carry no _total

"""Serving on Ray Serve (issue 23): a Ray head and a worker node on 127.0.0.1 started and stopped
by the module's fixture, the app deployed on it as two replicas (one per node) each holding two
skills (the tiny random BERT on ``device="auto"`` and the real MiniLM), and the official
``openai`` client on loopback.

- both skills behind one endpoint: /v1/models lists them, embeddings route by model id and equal
  the same skill run in this process; an unknown id is OpenAI's 404;
- /health, /metrics and /info name each replica and where each skill runs, and /health how the
  request reached it (HAProxy and Serve's direct ingress, which the test cluster is started with);
- the queue bound answers 429 with Retry-After and no 5xx, on Ray as on one process, and each
  replica's resident memory grows by less than MEMORY_CAP_MIB under the burst;
- a replica killed under load (``ray.kill`` on its actor) leaves zero failed requests after the
  client's retries.
The --serve-config file's checks run without Ray."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from skillmill.runtime.postprocess import l2_normalize
from skillmill.serving.app import ServeSettings
from skillmill.serving.ray_serve import (
    ReplicaOptions,
    ServeConfig,
    ServeConfigError,
    SkillSpec,
    parse_serve_config,
)

HEAD_PORT = 6392  # this suite's own ports: other clusters may run on the machine
HTTP_PORT = 8431
MINILM_ID = "all-MiniLM-L6-v2"
TINY_ID = "BertModel-tiny"
BOUND = 4  # max_concurrent_requests per skill per replica
SENTENCES = ["A man is eating food.", "A man is riding a horse.", "A monkey plays a drum."]
ATOL = 1e-5  # unit vectors from the same weights, the same engine and the same batch shapes
# A replica's resident memory may grow this much under the 10x burst. It holds at most BOUND
# requests per skill (a few KiB each here) and refuses the rest before they become work, so
# what grows is the working memory of the largest batch that runs: MiniLM on 32 inputs of ~100
# tokens has 32 x 12 x 100 x 100 float32 attention scores (15 MiB) per layer, plus the
# allocator's pools.  54 MiB was measured here; an unbounded queue would grow with the burst.
MEMORY_CAP_MIB = 128


# ---- the config file (no Ray) ----------------------------------------------------------------
def test_serve_config_is_read_and_checked():
    config = parse_serve_config(
        {
            "skills": [{"skill": "BertModel", "model": "tiny"},
                       {"skill": "BertModel", "model": "/w/minilm", "name": "minilm"}],
            "replicas": {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 4},
            "settings": {"max_concurrent_requests": 16, "max_batch_tokens": 512},
        }
    )  # fmt: skip
    assert [s.name for s in config.skills] == [None, "minilm"]
    options = config.replicas.deployment_options(config.settings)
    assert options["autoscaling_config"] == {
        "min_replicas": 1, "max_replicas": 3, "initial_replicas": 1, "target_ongoing_requests": 4
    }  # fmt: skip
    assert options["max_ongoing_requests"] > 16  # the app's 429 answers first, not Serve's 503
    assert config.settings.max_batch_tokens == 512

    for bad, needle in (
        ([], "expected a mapping"),
        ({"skills": []}, "non-empty list"),
        ({"skills": [{"skill": "BertModel"}]}, "'model' is required"),
        ({"skills": [{"skill": "BertModel", "model": "tiny", "devise": "cpu"}]}, "devise"),
        ({"skills": [{"skill": "BertModel", "model": "tiny"}] * 2}, "both be served as"),
        ({"skills": [{"skill": "BertModel", "model": "tiny"}], "settings": {"batch_size": "x"}},
         "settings.batch_size must be a number"),
        ({"skills": [{"skill": "BertModel", "model": "tiny"}], "replicas": {"replica": 2}},
         "unknown key replica"),
        ({"skills": [{"skill": "BertModel", "model": "tiny"}],
          "replicas": {"min_replicas": 3, "max_replicas": 2}}, "min_replicas (3)"),
    ):  # fmt: skip
        with pytest.raises(ServeConfigError, match=None) as caught:
            parse_serve_config(bad, where="c.yaml")
        assert needle in str(caught.value) and "c.yaml" in str(caught.value), caught.value


def test_serve_command_checks_its_flags(tmp_path):
    from click.testing import CliRunner

    from skillmill.generator.cli import main

    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text("skills: [{skill: BertModel}]\n")
    for args, needle in (
        (["--skill", "BertModel"], "give each skill its model"),
        (["--skill", "BertModel", "--model", "tiny", "--replicas", "2"], "need --ray"),
        (["--serve-config", str(bad)], "'model' is required"),
        (["--skill", "BertModel", "--model", "tiny", "--skill", "BertModel", "--model", "tiny"],
         "both be served as"),
    ):  # fmt: skip
        result = runner.invoke(main, ["serve", *args])
        assert result.exit_code == 2 and needle in result.output, result.output


# ---- several skills on one process (the same app the replicas run) ---------------------------
def test_several_skills_behind_one_process(gpt2_served):
    from fastapi.testclient import TestClient

    from skillmill.serving.app import create_app
    from skillmill.serving.engine import ServedModel

    bert = ServedModel("BertModel", "tiny", device="cpu")
    with TestClient(create_app([gpt2_served, bert])) as client:
        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert ids == [gpt2_served.id, TINY_ID]
        embedded = client.post("/v1/embeddings", json={"model": TINY_ID, "input": "hi"})
        assert embedded.status_code == 200 and embedded.json()["model"] == TINY_ID
        completed = client.post(
            "/v1/completions", json={"model": gpt2_served.id, "prompt": "hi", "max_tokens": 2}
        )
        assert completed.status_code == 200 and completed.json()["model"] == gpt2_served.id
        wrong = client.post("/v1/embeddings", json={"model": gpt2_served.id, "input": "hi"})
        assert wrong.json()["error"]["code"] == "unsupported_model_task"
        # TEI: /embed finds the embedding model though the causal LM comes first
        assert client.post("/embed", json={"inputs": "hi"}).status_code == 200
        gpt2_tokens = client.post(f"/tokenize?model={gpt2_served.id}", json={"inputs": "hi"})
        first = client.post("/tokenize", json={"inputs": "hi"})  # the first skill: GPT-2's
        bert_tokens = client.post(f"/tokenize?model={TINY_ID}", json={"inputs": "hi"})
        assert first.json() == gpt2_tokens.json() != bert_tokens.json()
        assert client.get(f"/info?model={TINY_ID}").json()["model_type"] == {
            "embedding": {"pooling": "mean"}
        }
        health = client.get("/health").json()
        assert health["model"] == gpt2_served.id and health["replica"] is None
        assert [m["model"] for m in health["models"]] == ids
        info = [line for line in client.get("/metrics").text.splitlines()
                if line.startswith("skillmill_backend_info{")]  # fmt: skip
        assert len(info) == 2


# ---- a cluster and the app -------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")  # in the test extra: SKILLMILL_STRICT_SKIPS=1 fails it instead
    import ray
    from ray import serve

    from skillmill.serving.ray_serve import LocalRayCluster

    # a head and one worker node, one CPU each: the two replicas land one on each
    started = LocalRayCluster(port=HEAD_PORT, num_cpus=1, workers=1, worker_cpus=1)
    try:
        ray.init(address=started.address, logging_level="warning", log_to_driver=False)
        yield started
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            started.stop()


def _specs(minilm_dir):
    return (SkillSpec("BertModel", "tiny", device="auto"),
            SkillSpec("BertModel", minilm_dir, name=MINILM_ID, device="cpu"))  # fmt: skip


@pytest.fixture(scope="module")
def serve_url(cluster, minilm_dir):
    from skillmill.serving.ray_serve import deploy

    config = ServeConfig(
        _specs(minilm_dir),
        ServeSettings(max_concurrent_requests=BOUND, max_wait_ms=2.0),
        ReplicaOptions(replicas=2, num_cpus=1),
    )
    url = deploy(config, host="127.0.0.1", port=HTTP_PORT)
    for model in (TINY_ID, MINILM_ID):  # first calls (shapes, allocator) before any timing
        httpx.post(url + "/v1/embeddings", json={"model": model, "input": "x"}, timeout=120)
    return url


def _client(url, retries=0, seen=None):
    from openai import OpenAI

    hooks = {"response": [lambda r: seen.append(r.status_code)]} if seen is not None else {}
    return OpenAI(base_url=url + "/v1", api_key="unused", max_retries=retries, timeout=60,
                  http_client=httpx.Client(event_hooks=hooks, timeout=60))  # fmt: skip


def test_two_skills_behind_one_endpoint_equal_the_in_process_skills(serve_url, minilm_dir):
    import openai

    client = _client(serve_url)
    assert sorted(m.id for m in client.models.list().data) == sorted([TINY_ID, MINILM_ID])
    in_replica = {m["model"]: m for m in httpx.get(serve_url + "/health").json()["models"]}
    for spec in _specs(minilm_dir):
        served = spec.load(batch_size=32)  # the same skill, loaded here
        # the same node, the same decision: the replica's backend is the one auto picks here
        assert in_replica[served.id]["backend"] == served.backend, in_replica[served.id]
        expected = l2_normalize(
            served.embed_batch([[served.codec.encode(s) for s in SENTENCES]])[0]
        )
        answer = client.embeddings.create(model=served.id, input=SENTENCES)
        got = np.array([d.embedding for d in answer.data], dtype=np.float32)
        assert answer.model == served.id and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="no-such-model", input="x")
    error = missing.value.body
    assert missing.value.status_code == 404 and error["code"] == "model_not_found", error
    assert TINY_ID in error["message"] and MINILM_ID in error["message"]

    # TEI's routes on the same endpoint: ?model= picks a skill, else the first that serves it
    tei = httpx.post(serve_url + f"/embed?model={MINILM_ID}", json={"inputs": SENTENCES[:1]})
    assert tei.status_code == 200, tei.text
    openai_minilm = client.embeddings.create(model=MINILM_ID, input=SENTENCES[:1])
    np.testing.assert_allclose(tei.json()[0], openai_minilm.data[0].embedding, atol=ATOL)
    unknown = httpx.post(serve_url + "/embed?model=nope", json={"inputs": "x"})
    assert unknown.status_code == 404 and set(unknown.json()) == {"error", "error_type"}
    info = httpx.get(serve_url + f"/info?model={MINILM_ID}").json()
    assert info["model_id"] == MINILM_ID and info["max_concurrent_requests"] == BOUND
    assert info["model_type"] == {"embedding": {"pooling": "mean"}} and info["backend"] == "cpu"


def test_every_replica_reports_where_each_skill_runs(serve_url):
    replicas = {}
    deadline = time.monotonic() + 30
    while len(replicas) < 2 and time.monotonic() < deadline:  # the proxy spreads requests
        health = httpx.get(serve_url + "/health", timeout=30).json()
        replicas[health["replica"]] = health
    assert len(replicas) == 2, f"only replica(s) {sorted(replicas)} answered"
    assert len({r.split("@")[1] for r in replicas}) == 2, f"one node runs both: {list(replicas)}"
    for replica, health in replicas.items():
        assert health["ingress"] == "haproxy", health  # LocalRayCluster's default way in
        models = {m["model"]: m for m in health["models"]}
        assert set(models) == {TINY_ID, MINILM_ID}
        assert models[TINY_ID]["requested_device"] == "auto"  # the replica's own choice
        for m in models.values():
            assert m["backend"] and m["engine"] and m["precision"] == "float32", m
            assert m["queue"]["max_concurrent_requests"] == BOUND
    text = httpx.get(serve_url + "/metrics", timeout=30).text
    info = [line for line in text.splitlines() if line.startswith("skillmill_backend_info{")]
    assert len(info) == 2 and all('replica="' in line and "precision=" in line for line in info)


def test_the_queue_bound_answers_429_and_no_5xx(serve_url):
    # 10x the bound at once, each request heavy (32 inputs of ~100 tokens for MiniLM), so the
    # two replicas' 2 x BOUND slots stay taken while the rest arrive
    text = " ".join(["the quick brown fox jumps over the lazy dog"] * 10)
    body = {"model": MINILM_ID, "input": [text] * 32}
    gate = threading.Barrier(10 * BOUND)

    def one(_):
        gate.wait(30)
        answer = httpx.post(serve_url + "/v1/embeddings", json=body, timeout=120)
        return answer.status_code, answer.headers.get("retry-after"), answer.json()

    resident_before = _replica_memory_mib()
    with ThreadPoolExecutor(10 * BOUND) as pool:
        answers = list(pool.map(one, range(10 * BOUND)))
    resident_after = _replica_memory_mib()
    grown = {r: resident_after[r] - resident_before[r] for r in resident_before}
    print(f"replica resident memory before and after the burst, MiB: {resident_before} -> "
          f"{resident_after}")  # fmt: skip
    assert len(grown) == 2 and max(grown.values()) < MEMORY_CAP_MIB, grown
    statuses = [s for s, _, _ in answers]
    assert set(statuses) <= {200, 429}, statuses
    refused = [(r, b) for s, r, b in answers if s == 429]
    assert refused and statuses.count(200) >= 2, statuses
    assert all(r == "1" and b["error"]["code"] == "queue_full" for r, b in refused)
    # and then it serves again
    assert httpx.post(serve_url + "/v1/embeddings", json={"model": MINILM_ID, "input": "x"},
                      timeout=60).status_code == 200  # fmt: skip


def _replica_memory_mib() -> dict[int, float]:
    """Each live replica's resident memory (VmRSS) in MiB, by process id: Ray titles a
    replica's worker process ``ray::ServeReplica:<app>:<deployment>``."""
    resident = {}
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or not (proc / "cmdline").read_bytes().startswith(
                b"ray::ServeReplica:"
            ):
                continue
            status = (proc / "status").read_text()
        except OSError:  # gone meanwhile
            continue
        kib = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS:"))  # fmt: skip
        resident[int(proc.name)] = round(kib / 1024, 1)
    return resident


def test_a_replica_killed_under_load_fails_no_request(serve_url):
    """Runs last: it leaves the deployment replacing a replica."""
    import ray

    from skillmill.serving.ray_serve import replica_actor_names

    before = replica_actor_names()
    assert len(before) == 2, before
    seen: list[int] = []  # every status the clients saw, retried ones included
    client = _client(serve_url, retries=8, seen=seen)
    done, failures, stop = [], [], threading.Event()

    def load(worker: int) -> None:
        i = 0
        while not stop.is_set():
            model = (TINY_ID, MINILM_ID)[(worker + i) % 2]
            try:
                client.embeddings.create(model=model, input=SENTENCES[i % 3])
                done.append(time.monotonic())
            except Exception as exc:  # a request that failed after every retry
                failures.append(f"{type(exc).__name__}: {exc}")
            i += 1

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(done) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(done) >= 20, f"the load did not get going: {len(done)} done, {failures[:3]}"
    ray.kill(ray.get_actor(before[0], namespace="serve"), no_restart=True)
    killed_at, after_kill = time.monotonic(), len(done)
    while len(done) < after_kill + 60 and time.monotonic() < killed_at + 60:
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(90)
    served_after = sum(1 for t in done if t > killed_at)
    print(f"replica killed under load: {len(done)} requests answered ({served_after} after the "
          f"kill), {len(failures)} failed after retries, {sum(s >= 500 for s in seen)} 5xx "
          f"answers retried by the client")  # fmt: skip
    assert failures == [], failures[:5]
    assert served_after >= 30, f"only {served_after} requests were answered after the kill"
    assert before[0] not in replica_actor_names()

"""deploy_max starts a real server asking for MAX and says honestly where the model runs: on MAX
where MAX is installed (the test dependencies pin it: without it these tests skip, which CI's
SKILLMILL_STRICT_SKIPS=1 turns into failures), on the fallback with the reason when MAX cannot
run the model."""

import httpx
import numpy as np
import pytest

from skillmill.serving import deploy_max
from skillmill.serving.engine import ServeError

SENTENCES = ["hello world", "MAX runs the whole MiniLM graph, padding and all."]


def _cpu_reference(minilm_dir, sentences):
    from skillmill import load_skill

    return load_skill("BertModel", model=minilm_dir, device="cpu").process(sentences).embeddings


def _embed(server, sentences):
    response = httpx.post(
        server.url + "/v1/embeddings",
        json={"model": "minilm", "input": sentences},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return response, np.array([d["embedding"] for d in response.json()["data"]])


def test_deploy_max_runs_the_model_on_max(minilm_dir):
    pytest.importorskip("max", reason="MAX (max==26.7.0) is not installed")
    with deploy_max(minilm_dir, target_hardware="cpu", model_name="minilm") as server:
        assert server.url.startswith("http://127.0.0.1:")
        health = httpx.get(server.url + "/health").json()
        assert health["requested_device"] == "max"
        # MAX is installed: it must be what runs the model, with nothing skipped or fallen back.
        assert (server.backend, health["backend"], health["engine"]) == ("max", "max", "max")
        assert health["device"].startswith("max:")  # max:cpu here; max:gpu where MAX picks one
        assert server.fallback_reason is None and health["fallback_reason"] is None
        assert health["skipped"] == {}
        # Later calls are pinned to MAX (no fallback): a 200 is MAX's answer, and it agrees with
        # PyTorch on the CPU, for a batch of two sentences of different lengths too.
        response, vectors = _embed(server, SENTENCES)
        assert response.headers["x-skillmill-backend"] == "max"
        assert vectors.shape == (2, 384)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(vectors, _cpu_reference(minilm_dir, SENTENCES), atol=1e-4)
        metrics = httpx.get(server.url + "/metrics").text
        device = health["device"]
        assert f'backend="max",device="{device}",engine="max"' in metrics
        assert 'requested_device="max",fallback_reason=""' in metrics


def test_deploy_max_falls_back_with_the_reason_when_max_cannot_run(minilm_dir, monkeypatch):
    pytest.importorskip("max", reason="MAX (max==26.7.0) is not installed")
    from skillmill.engines.modular.max_model import MaxModel

    def refuse(*args, **kwargs):
        raise RuntimeError("simulated: MAX's compiler refused the graph")

    monkeypatch.setattr(MaxModel, "from_graph", refuse)
    with deploy_max(minilm_dir, target_hardware="cpu", model_name="minilm") as server:
        health = httpx.get(server.url + "/health").json()
        assert (server.backend, health["backend"], health["device"]) == ("cpu", "cpu", "cpu")
        assert health["engine"] != "max"
        reason = server.fallback_reason
        assert reason is not None and reason.startswith("max: "), reason
        assert "simulated: MAX's compiler refused the graph" in reason
        assert health["fallback_reason"] == reason
        assert "max" in health["skipped"]
        response, vectors = _embed(server, SENTENCES[:1])
        assert response.headers["x-skillmill-backend"] == "cpu"
        np.testing.assert_allclose(vectors, _cpu_reference(minilm_dir, SENTENCES[:1]), atol=1e-4)
        metrics = httpx.get(server.url + "/metrics").text
        assert 'backend="cpu"' in metrics and "simulated: MAX" in metrics


def test_deploy_max_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(ServeError, match="target_hardware"):
        deploy_max("BertModel", target_hardware="tpu")
    with pytest.raises(ServeError, match="config.json"):
        deploy_max(str(tmp_path))
    with pytest.raises(ServeError, match="does not exist"):
        deploy_max(str(tmp_path / "missing"))

"""deploy_max starts a real server asking for MAX and says honestly where the model runs."""

import httpx
import numpy as np
import pytest

from skillmill.serving import deploy_max
from skillmill.serving.engine import ServeError


def test_deploy_max_returns_a_live_url_and_the_real_backend(minilm_dir):
    with deploy_max(minilm_dir, target_hardware="cpu", model_name="minilm") as server:
        assert server.url.startswith("http://127.0.0.1:")
        health = httpx.get(server.url + "/health").json()
        assert health["requested_device"] == "max"
        assert health["backend"] == server.backend
        if server.backend == "max":
            assert health["fallback_reason"] is None
        else:  # MAX could not run it: the reason is given, never a pretend MAX answer
            assert server.backend == "cpu"
            assert (
                "max" in server.fallback_reason
                and health["fallback_reason"] == server.fallback_reason
            )
        response = httpx.post(
            server.url + "/v1/embeddings", json={"model": "minilm", "input": ["hello world"]}
        )
        assert response.status_code == 200
        assert response.headers["x-skillmill-backend"] == server.backend
        vector = np.array(response.json()["data"][0]["embedding"])
        assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1) < 1e-5
        metrics = httpx.get(server.url + "/metrics").text
        assert f'backend="{server.backend}"' in metrics and 'requested_device="max"' in metrics


def test_deploy_max_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(ServeError, match="target_hardware"):
        deploy_max("BertModel", target_hardware="tpu")
    with pytest.raises(ServeError, match="config.json"):
        deploy_max(str(tmp_path))
    with pytest.raises(ServeError, match="does not exist"):
        deploy_max(str(tmp_path / "missing"))

"""Servers for the serving tests: real uvicorn servers on loopback (background threads of the
test process), one per model, shared by the tests of a session."""

import pytest

from skillmill.serving.app import ServeSettings
from skillmill.serving.engine import ServedModel
from skillmill.serving.server import start_server

MINILM_ID = "all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def gpt2_served():
    return ServedModel("GPT2LMHeadModel", "tiny", device="cpu")


@pytest.fixture(scope="session")
def gpt2_server(gpt2_served):
    with start_server(gpt2_served) as server:
        yield server


@pytest.fixture(scope="session")
def minilm_server(minilm_dir):
    served = ServedModel("BertModel", minilm_dir, device="cpu", model_id=MINILM_ID)
    with start_server(served) as server:
        yield server


@pytest.fixture(scope="session")
def tiny_bert_server():
    """Small limits, so the fuzzer's valid requests stay cheap."""
    served = ServedModel("BertModel", "tiny", device="cpu")
    with start_server(served, ServeSettings(max_inputs=8, max_body_bytes=64 * 1024)) as server:
        yield server


@pytest.fixture(scope="session")
def small_gpt2_server(gpt2_served):
    settings = ServeSettings(
        max_completion_tokens=8, max_rows_per_request=4, max_body_bytes=64 * 1024, max_inputs=4
    )
    with start_server(gpt2_served, settings) as server:
        yield server


def _openai(server):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="session")
def gpt2_client(gpt2_server):
    return _openai(gpt2_server)


@pytest.fixture(scope="session")
def minilm_client(minilm_server):
    return _openai(minilm_server)

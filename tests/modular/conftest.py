"""Fixtures for the MAX / Mojo tests: they run MAX and Mojo for real, and skip (saying why) only
where the ``max`` package is absent.  Compiled graphs and modules are cached under
MODULAR_CACHE_DIR (default ~/.cache/skillmill/modular), so only a cold cache pays the compiles."""

import pytest
import torch

# an importorskip, so that SKILLMILL_STRICT_SKIPS=1 (tests/conftest.py) turns it into a failure
pytest.importorskip("max", reason="Modular MAX is not installed (pip install 'skillmill[modular]')")

from modular_helpers import SENTENCES


@pytest.fixture(scope="session")
def minilm_skill_factory(minilm_dir):
    from skillmill import load_skill

    def make(device: str):
        return load_skill("BertModel", model=minilm_dir, device=device)

    return make


@pytest.fixture(scope="session")
def minilm_reference(minilm_skill_factory):
    """PyTorch eager on the real MiniLM: (tokenized batch, last_hidden_state, embeddings)."""
    skill = minilm_skill_factory("cpu")
    batch = skill.prepare_inputs(SENTENCES)
    with torch.inference_mode():
        hidden = skill.model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return batch, hidden.numpy(), pooled.numpy()

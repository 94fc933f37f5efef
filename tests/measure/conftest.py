"""Fixtures the backend-manager tests share."""

from __future__ import annotations

import pytest

from skillmill.runtime import decisions


@pytest.fixture
def table(tmp_path, monkeypatch):
    """A fresh decision table for this test ($SKILLMILL_DECISIONS), its parsed copy dropped
    before and after so no test reads another's."""
    path = tmp_path / "decisions.json"
    monkeypatch.setenv(decisions.ENV_PATH, str(path))
    decisions.clear_cache()
    yield path
    decisions.clear_cache()

"""Fixtures for the native kernel tests: every kernel test runs once per ISA path this CPU
can execute (the scalar reference included); helpers live in native_helpers.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

native = pytest.importorskip("skillmill.native")


@pytest.fixture(params=native.supported_isas() if native.available() else ["unavailable"])
def isa(request):
    """Forces one ISA path for the test (through the API; test_control covers the env var)."""
    if not native.available():
        pytest.skip(f"native kernels {native.unavailable_reason()}")
    with native.using_isa(request.param):
        yield request.param


@pytest.fixture
def rng(request):
    # A stable seed per test so failures reproduce.
    return np.random.default_rng(abs(hash(request.node.nodeid)) % (2**32))


def pytest_collection_modifyitems(config, items):
    """`slow` sweeps run only when asked for (`-m slow`), keeping CI's default run short."""
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow sweep: run with -m slow")
    here = Path(__file__).parent
    for item in items:
        if "slow" in item.keywords and here in Path(str(item.fspath)).parents:
            item.add_marker(skip)

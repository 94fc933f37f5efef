"""Shared fixtures: every kernel test runs once per ISA path this CPU can execute (the scalar
reference included), and compares against float64 numpy/torch with a normalized error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

native = pytest.importorskip("skillmill.native")

if not native.available():  # pragma: no cover - only on machines without a compiler
    pytest.skip(f"native kernels {native.unavailable_reason()}", allow_module_level=True)

ISAS = native.supported_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Forces one ISA path for the test (through the API; test_control covers the env var)."""
    with native.using_isa(request.param):
        yield request.param


@pytest.fixture
def rng(request):
    # A stable seed per test so failures reproduce.
    return np.random.default_rng(abs(hash(request.node.nodeid)) % (2**32))


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def nerr(out, ref, scale=None) -> float:
    """max |out - ref| / scale, scale defaulting to max |ref| (1 if all zero)."""
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    if out.size == 0:
        return 0.0
    if scale is None:
        scale = float(np.max(np.abs(ref))) or 1.0
    return float(np.max(np.abs(out - ref))) / scale


def gemm_err(c, a, b) -> float:
    """GEMM error normalised by max (|A| |B|): independent of cancellation in the result."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = a64 @ b64
    scale = float(np.max(np.abs(a64) @ np.abs(b64))) if ref.size else 1.0
    return nerr(c, ref, scale or 1.0)


def pytest_collection_modifyitems(config, items):
    """`slow` sweeps run only when asked for (`-m slow`), keeping CI's default run short."""
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow sweep: run with -m slow")
    here = Path(__file__).parent
    for item in items:
        if "slow" in item.keywords and here in Path(str(item.fspath)).parents:
            item.add_marker(skip)

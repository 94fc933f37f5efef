"""Hardware probes are real: each kind answers from the machine, not from a table."""

import platform

from skillmill.runtime.cpu_features import cpu_features
from skillmill.runtime.hardware import evaluate


def test_probe_kinds(tmp_path, monkeypatch):
    assert evaluate("x", {"always": True}).available
    assert evaluate("x", {"python_package": "numpy"}).version
    assert not evaluate("x", {"python_package": "no_such_package_xyz"}).available
    monkeypatch.setenv("SKILLMILL_TEST_HOME", str(tmp_path))
    assert evaluate("x", {"env": "SKILLMILL_TEST_HOME"}).available
    monkeypatch.setenv("SKILLMILL_TEST_HOME", str(tmp_path / "missing"))
    status = evaluate("x", {"env": "SKILLMILL_TEST_HOME"})
    assert not status.available and "not a directory" in status.reason
    both = evaluate("x", {"all_of": [{"always": True}, {"python_package": "no_such_package_xyz"}]})
    assert not both.available
    either = evaluate("x", {"any_of": [{"executable": "no-such-exe-xyz"}, {"always": True}]})
    assert either.available


def test_unknown_probe_kind_is_reported_not_raised():
    status = evaluate("x", {"teleport": "now"})
    assert not status.available and "unknown probe kind" in status.reason


def test_cpu_features_read_from_the_os():
    features = cpu_features()
    if platform.machine() in ("x86_64", "AMD64"):
        assert features["sse2"] and not features["neon"]
        with open("/proc/cpuinfo") as handle:
            assert features["avx2"] == (" avx2" in handle.read())

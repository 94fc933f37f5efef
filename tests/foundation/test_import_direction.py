"""Imports run with the grain: what a skill runs (the runtime, the IR, the registry, the native
kernels, the generated skills) never imports what measures it (skillmill.measure) or the CLIs
(skillmill.generator, skillmill.serving).  Every module's imports are read with ``ast``: top-level
and function-level ones, absolute and relative, and ``importlib.import_module("...")`` literals.

Before measure/ existed (commit b6759ea), the sweeps and benchmarks lived in the layers they
measure, and these imports ran against the grain:

- runtime/backends/modular/coverage.py (the MAX sweep) -> skillmill.generator.coverage
  (``load_report``): runtime -> generator; and -> skillmill.ir.coverage (``FLOOR_TYPES``,
  ``relative_error``, ``base_model_types``, ``coverage_model``, ``normalise_row``, ``warm_up``)
  and skillmill.registry.sweep (``run_parallel``).
- runtime/backends/modular/bench.py -> skillmill.ir.bench (``minilm_folder``) and
  skillmill.native.machine; runtime/backends/gpu_check.py -> skillmill.ir.bench.
- ir/coverage.py (the native sweep) -> skillmill.registry, skillmill.registry.dummy_inputs,
  skillmill.registry.tiny, skillmill.registry.sweep: ir -> registry; and
  skillmill.runtime.outputs: ir -> runtime.
- ir/bench.py -> skillmill.native.machine.
- native/machine.py -> skillmill.runtime.cpu_features: native -> runtime.
- registry/tiny_sweep.py -> registry/sweep.py: the sweep harness lived in the registry.
- generator/commands.py -> skillmill.registry.sweep, skillmill.native.bench, skillmill.ir.bench,
  skillmill.runtime.backends.modular.bench; serving/loadtest.py -> skillmill.generator.commands:
  serving -> generator.
- Earlier still, the runners took ``relative_error`` from ir/coverage.py, a sweep module, on the
  hot path; engines/parity.py (then runtime/backends/parity.py) takes it from skillmill.ir.numerics.

All of them now live in measure/ (sweeps/, bench/, harness.py, machine.py, gpu_check.py), which
imports downward only.  The last edge against the layer order went with the engines' move
(issue 21): registry/tiny.py resolved a class name with skillmill.runtime.loading (registry ->
runtime) while runtime/loading.py built ``model="tiny"`` from registry/tiny.py; the resolver is
now skillmill.registry.classes.  The engines left runtime/backends/ for engines/, one layer
above the runtime: the runtime's modules import no engine (hardware detection calls the MAX and
Mojo probes by the name their declarations give).  ``KNOWN_AGAINST_THE_GRAIN`` is empty, so a
new edge fails."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a skill runs; none of it may import what measures it or a command line.
HOT_PATH = ("runtime", "engines", "ir", "registry", "native", "generated")
FORBIDDEN = ("skillmill.measure", "skillmill.generator", "skillmill.serving")
# Which layers each one may import (itself always): the grain, bottom to top.
MAY_IMPORT = {
    "native": set(),
    "ir": {"native"},
    "registry": set(),
    "runtime": {"native", "ir", "registry"},
    "engines": {"native", "ir", "registry", "runtime"},
}
KNOWN_AGAINST_THE_GRAIN: set[tuple[str, str]] = set()  # (file, module) pairs; none left


def folders() -> dict[str, str]:
    """setup.py's folder -> package map (``FOLDERS``), read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FOLDERS" for t in node.targets):
            return {folder: package for package, folder in ast.literal_eval(node.value).items()}
    raise AssertionError("setup.py has no FOLDERS mapping")


def module_name(path: Path, root: Path = ROOT) -> tuple[str, bool]:
    """(dotted module name, whether it is a package's __init__) of a file under ``root``."""
    rel = path.relative_to(root).with_suffix("")
    package = folders()[rel.parts[0]] if root == ROOT else rel.parts[0]
    parts = [package, *rel.parts[1:]]
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def imported(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in ``source``, wherever it sits; ``from X
    import y`` yields X and X.y (y may be a submodule)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):  # fmt: skip
            found.append((node.lineno, node.args[0].value))
    return found


def imports_of(folder: str) -> list[tuple[str, int, str]]:
    """(file relative to the repository, line, module) for every import under ``folder``."""
    rows = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        name, is_package = module_name(path)
        source = path.read_text(encoding="utf-8")
        rows += [(path.relative_to(ROOT).as_posix(), line, target) for line, target in imported(source, name, is_package)]
    return rows


def under(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


def test_the_reader_sees_every_kind_of_import(tmp_path):
    """The check below is only as good as this reader: relative, nested and dynamic imports."""
    source = (
        "import skillmill.measure.harness\n"
        "from .. import measure\n"
        "from ..generator.commands import minilm_folder\n"
        "def f():\n"
        "    from skillmill.serving import commands\n"
        "    importlib.import_module('skillmill.measure.sweeps.max')\n"
    )
    got = {target for _, target in imported(source, "skillmill.engines.parity", False)}
    assert {"skillmill.measure.harness", "skillmill.measure", "skillmill.generator.commands",
            "skillmill.serving.commands", "skillmill.measure.sweeps.max"} <= got  # fmt: skip
    assert module_name(ROOT / "engines" / "parity.py") == ("skillmill.engines.parity", False)
    assert module_name(ROOT / "measure" / "sweeps" / "__init__.py") == ("skillmill.measure.sweeps", True)


@pytest.mark.parametrize("folder", HOT_PATH)
def test_the_hot_path_imports_no_measurement_or_cli_module(folder):
    rows = imports_of(folder)
    assert len({path for path, _, _ in rows}) >= 5, f"read no modules under {folder}/"
    wrong = [f"{path}:{line} imports {target}" for path, line, target in rows
             if any(under(target, bad) for bad in FORBIDDEN)]  # fmt: skip
    assert not wrong, "against the grain (move it to measure/, or the import out):\n" + "\n".join(wrong)


def test_layers_import_downward_only():
    packages = {folder: package for folder, package in folders().items()}
    wrong = []
    for folder, allowed in MAY_IMPORT.items():
        for path, line, target in imports_of(folder):
            layer = next((f for f, p in packages.items() if under(target, p) and p != "skillmill"), None)
            known = any(path == p and under(target, t) for p, t in KNOWN_AGAINST_THE_GRAIN)
            if layer in (None, folder) or layer in allowed or known:
                continue
            wrong.append(f"{path}:{line} ({folder} -> {layer}) imports {target}")
    assert not wrong, "against the grain:\n" + "\n".join(wrong)


def test_the_known_back_edges_are_still_there():
    """An entry of KNOWN_AGAINST_THE_GRAIN whose import is gone must leave the list."""
    for path, target in KNOWN_AGAINST_THE_GRAIN:
        assert any(p == path and t == target for p, _, t in imports_of(path.split("/")[0])), (path, target)


def test_running_a_skill_loads_no_measurement_or_cli_module():
    """The same, as Python sees it: a tiny skill built and run, then sys.modules."""
    code = (
        "import sys\n"
        "from skillmill import load_skill\n"
        "load_skill('BertModel', model='tiny', device='cpu').process(['hello world'])\n"
        f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"

"""A template author adds a hardware target: one partial plus one declaration in any folder.
The partial is rendered once, into the output's _targets.py, which every module there imports."""

import importlib
import importlib.util
import sys

from click.testing import CliRunner

from skillmill.generator.cli import main

DECLARATION = """\
# A throwaway accelerator: "present" when $FAKE_NPU_HOME names a folder.
name: fakenpu
priority: 95
detect:
  env: FAKE_NPU_HOME
supports:
  modalities: [text]
  families: [encoder]
imports:
  - from skillmill.engines.pytorch import runner as torch_runner
"""

PARTIAL = '''\
def run_on_fakenpu(skill, batch):
    """Pretend NPU: runs the model with torch on the CPU, reports its own device name."""
    ran = torch_runner.run(skill, batch, device="cpu")
    ran.device = "fakenpu:0"
    return ran
'''


def _import_package(folder, name):
    """The output folder as a package (its index is __init__.py), so ``from ._targets import``
    in its modules finds the folder's own _targets.py."""
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package


def test_throwaway_target_from_a_temporary_folder(tmp_path, monkeypatch):
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "fakenpu.yaml").write_text(DECLARATION)
    (targets / "fakenpu.py.j2").write_text(PARTIAL)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["--targets-dir", str(targets), "--model", "bert", "--model", "vit", "--output", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output

    # The partial is rendered once, into _targets.py; the modules name the target where it fits.
    assert "def run_on_fakenpu" in (out / "_targets.py").read_text()
    assert "def run_on_" not in (out / "bert.py").read_text()
    assert "fakenpu" not in (out / "vit.py").read_text()  # supports says text encoders only

    _import_package(out, "fake_generated")
    try:
        bert = importlib.import_module("fake_generated.bert")
        _check_the_target_runs(bert, tmp_path, monkeypatch)
    finally:
        for name in [m for m in sys.modules if m == "fake_generated" or m.startswith("fake_generated.")]:
            del sys.modules[name]


def _check_the_target_runs(bert, tmp_path, monkeypatch):
    assert list(bert.BertModelSkill.targets)[:2] == ["max", "fakenpu"]  # priority 95 sits after max

    skill = bert.BertModelSkill(model="tiny")
    monkeypatch.delenv("FAKE_NPU_HOME", raising=False)
    from skillmill.runtime.hardware import refresh

    refresh()
    # Without its probe the target is skipped, saying so, and the next present target runs.
    result = skill.process(["hi"])
    assert result.backend != "fakenpu" and result.skipped["fakenpu"].startswith("not present")
    monkeypatch.setenv("FAKE_NPU_HOME", str(tmp_path))
    refresh()
    result = skill.process(["hi"])
    assert (result.backend, result.device) == ("fakenpu", "fakenpu:0")
    refresh()

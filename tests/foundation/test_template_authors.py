"""A template author adds a hardware target: one partial plus one declaration in any folder."""

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
  - from skillmill.runtime.backends import torch_runner
"""

PARTIAL = '''\
def run_on_fakenpu(skill, batch):
    """Pretend NPU: runs the model with torch on the CPU, reports its own device name."""
    ran = torch_runner.run(skill, batch, device="cpu")
    ran.device = "fakenpu:0"
    return ran
'''


def _import(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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

    bert = _import(out / "bert.py", "fake_generated_bert")
    assert list(bert.BertModelSkill.targets)[:2] == ["max", "fakenpu"]  # priority 95 sits after max
    assert "fakenpu" not in (out / "vit.py").read_text()  # supports says text encoders only

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

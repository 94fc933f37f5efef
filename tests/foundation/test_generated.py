"""Generated modules: complete, importable, stamped, black-clean and deterministic; the
hardware targets rendered once, into _targets.py; rendering without torch."""

import importlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import black
import pytest

from skillmill.generator.render import (
    BASE_CLASS_NAMES,
    BLACK_MODE,
    TARGETS_MODULE,
    RenderContext,
    module_name,
    render_module,
    render_targets_module,
)
from skillmill.generator.targets import builtin_dir, load_declarations
from skillmill.generator.write import INDEX, render_tree

GENERATED = Path(__file__).resolve().parents[2] / "generated"
# `cat generated/*.py | wc -l` when every module carried its own copy of every hardware target's
# runner and the TARGETS table (commit 7e32c08): 114,587 lines.  Rendered once, they left 64,254.
LINES_WITH_TARGETS_IN_EVERY_MODULE = 114_587
# One model type per modality, and both with and without the targets that only some support.
SAMPLE_TYPES = ["bert", "gpt2", "vit", "whisper", "llava", "videomae", "patchtst", "decision_transformer"]


def test_every_registered_class_has_a_skill(registry):
    from skillmill.generated import SKILL_MODULES

    assert set(SKILL_MODULES) == set(registry.classes)
    shared = importlib.import_module("skillmill.generated._targets").TARGETS
    missing = []
    for model_type, records in registry.model_types.items():
        module = importlib.import_module(f"skillmill.generated.{module_name(model_type)}")
        for record in records:
            cls = getattr(module, f"{record.class_name}Skill", None)
            if cls is None:
                missing.append(record.class_name)
                continue
            from skillmill.runtime.mixin import MojoMaxTargetMixin

            assert issubclass(cls, MojoMaxTargetMixin)
            assert cls.model_class_name == record.class_name
            assert list(cls.targets) == record.targets
            assert all(cls.targets[n] is shared[n] for n in cls.targets)  # the one table's entries
    assert not missing


def test_every_base_type_has_a_coverage_row(registry):
    from skillmill.measure.sweeps import load_report

    rows = load_report()["model_types"]
    assert set(rows) == set(registry.base_classes), "run `generate-skills coverage`"
    for model_type, row in rows.items():
        assert row["status"] in ("pass", "fail"), model_type
        if row["status"] == "fail":
            assert row.get("reason"), f"{model_type} fails without a reason"


@pytest.mark.parametrize("model_type", ["bert", "llava", "whisper", "vision-text-dual-encoder"])
def test_render_is_deterministic_black_clean_and_stamped(registry, model_type):
    ctx = RenderContext.create(registry, load_declarations())
    first = render_module(ctx, model_type, registry.model_types[model_type])
    second = render_module(RenderContext.create(registry, load_declarations()), model_type,
                           registry.model_types[model_type])
    assert first == second
    assert black.format_str(first, mode=BLACK_MODE) == first
    assert "do not edit" in first.splitlines()[0]
    assert registry.digest[:16] in first
    compile(first, f"{model_type}.py", "exec")


def test_render_targets_module_is_deterministic_black_clean_and_stamped(registry):
    declarations = load_declarations()
    first = render_targets_module(RenderContext.create(registry, declarations))
    assert first == render_targets_module(RenderContext.create(registry, load_declarations()))
    assert black.format_str(first, mode=BLACK_MODE) == first
    assert "do not edit" in first.splitlines()[0]
    namespace = {}
    exec(compile(first, TARGETS_MODULE, "exec"), namespace)
    table = namespace["TARGETS"]
    assert list(table) == [d["name"] for d in declarations]  # priority order, max ... cpu
    for decl in declarations:
        assert table[decl["name"]].priority == decl["priority"]
        assert table[decl["name"]].detect == decl["detect"]
        assert table[decl["name"]].runner is namespace[f"run_on_{decl['name']}"]


def test_generated_modules_carry_only_per_model_data():
    """The runners and the TARGETS table live in _targets.py alone; the per-model modules name
    targets, and the tree is at least 40% smaller than with a copy of them in every module."""
    files = sorted(GENERATED.glob("*.py"))
    lines = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in files}
    assert (GENERATED / TARGETS_MODULE).exists()
    for path in files:
        if path.name in (TARGETS_MODULE, INDEX):
            continue
        text = path.read_text(encoding="utf-8")
        assert "def run_on_" not in text and "HardwareTarget(" not in text, path.name
        assert "from ._targets import TARGETS" in text, path.name
    total = sum(lines.values())
    assert total <= 0.6 * LINES_WITH_TARGETS_IN_EVERY_MODULE, (
        f"{total} generated lines: less than a 40% cut from {LINES_WITH_TARGETS_IN_EVERY_MODULE}"
    )


def test_editing_a_hardware_partial_changes_only_targets_module(registry, tmp_path):
    """A template edit that touches no per-model data (one partial's body) changes one file."""
    edited = tmp_path / "targets"
    edited.mkdir()
    for suffix in (".yaml", ".py.j2"):
        shutil.copy(builtin_dir() / f"cpu{suffix}", edited / f"cpu{suffix}")
    partial = edited / "cpu.py.j2"
    source = partial.read_text(encoding="utf-8")
    assert "return native_runner.run(skill, batch)" in source
    partial.write_text(
        source.replace("return native_runner.run(skill, batch)",
                       "ran = native_runner.run(skill, batch)\n    return ran"),
        encoding="utf-8",
    )
    before = render_tree(registry, load_declarations(), SAMPLE_TYPES)
    after = render_tree(registry, load_declarations([edited]), SAMPLE_TYPES)
    modules = {f"{module_name(t)}.py" for t in SAMPLE_TYPES}
    assert set(before) == set(after) == {INDEX, TARGETS_MODULE, *modules}
    assert [name for name in before if before[name] != after[name]] == [TARGETS_MODULE]
    assert "ran = native_runner.run(skill, batch)" in after[TARGETS_MODULE]
    # The committed tree is what the unedited templates render.
    for name, text in before.items():
        assert (GENERATED / name).read_text(encoding="utf-8") == text, f"{name}: run generate-skills"


def test_base_class_names_are_the_runtime_bases():
    from skillmill.runtime.skill import MODALITY_BASES

    assert BASE_CLASS_NAMES == {modality: cls.__name__ for modality, cls in MODALITY_BASES.items()}


def test_rendering_does_not_import_torch(tmp_path):
    """generate-skills renders from data: a fresh interpreter renders the index, _targets.py and
    modules of every modality without importing torch or transformers."""
    script = textwrap.dedent(f"""
        import sys
        from skillmill.generator.cli import main

        args = [a for t in {SAMPLE_TYPES!r} for a in ("--model", t)]
        main(args + ["--output", {str(tmp_path / "out")!r}, "-q", "-j", "1"], standalone_mode=False)
        print(sorted(m for m in ("torch", "transformers") if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]", result.stdout
    assert (tmp_path / "out" / TARGETS_MODULE).exists() and (tmp_path / "out" / "bert.py").exists()

"""Generated modules: complete, importable, stamped, black-clean and deterministic."""

import importlib

import black
import pytest

from skillmill.generator.render import BLACK_MODE, RenderContext, module_name, render_module
from skillmill.generator.targets import load_declarations


def test_every_registered_class_has_a_skill(registry):
    from skillmill.generated import SKILL_MODULES

    assert set(SKILL_MODULES) == set(registry.classes)
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
    assert not missing


def test_every_base_type_has_a_coverage_row(registry):
    from skillmill.generator.coverage import load_report

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

"""Render the generated tree from the registry and the templates: one skill module per model
type (per-model data only) and _targets.py, every hardware target rendered once.

Rendering imports neither torch nor transformers: the registry snapshot and the target
declarations are data, and the skill base classes are named, not imported."""

from __future__ import annotations

import functools
import hashlib
import keyword
import re
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Callable, Iterable

import black
import jinja2

from skillmill.registry import ClassRecord, Registry

BLACK_MODE = black.Mode(line_length=100, target_versions={black.TargetVersion.PY310})


class TemplateError(ValueError):
    """A template could not be loaded or rendered; the message names file and line."""


def module_name(model_type: str) -> str:
    """A Python module name for a model type: ``vision-text-dual-encoder`` ->
    ``vision_text_dual_encoder``."""
    name = re.sub(r"\W", "_", model_type)
    if name[0].isdigit() or keyword.iskeyword(name):
        name = f"m_{name}"
    return name


def templates_root() -> Path:
    return Path(str(resources.files("skillmill.templates")))


# The generated tree has two kinds of file, each stamped with the digest of the templates it is
# rendered from, so a template edit rewrites only the files that template renders:
#   <model type>.py - skill_module.py.j2 and skills/*.py.j2, one class per registered class;
#   _targets.py     - targets_module.py.j2, each declaration's partial and YAML and
#                     targets_table.py.j2: every hardware target, rendered once.
TARGETS_MODULE = "_targets.py"
SKILL_TEMPLATES = ("skill_module.py.j2", "skills/*.py.j2")
TARGET_TEMPLATES = ("targets_module.py.j2", "targets_table.py.j2")

# The runtime's Skill base class per modality (runtime/skill.py's MODALITY_BASES), by name only:
# importing the classes would import torch to learn a name.  A test keeps the two equal.
BASE_CLASS_NAMES = {
    "text": "TextSkill",
    "vision": "VisionSkill",
    "audio": "AudioSkill",
    "multimodal": "MultimodalSkill",
    "video": "VideoSkill",
    "time-series": "TimeSeriesSkill",
    "other": "GenericSkill",
}


def _digest(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(set(paths)):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def skill_template_digest() -> str:
    """sha256 over the templates of the per-model modules: stamped into each of them."""
    root = templates_root()
    return _digest(path for pattern in SKILL_TEMPLATES for path in root.glob(pattern))


def targets_template_digest(declarations: list[dict[str, Any]]) -> str:
    """sha256 over the hardware-target templates in use: stamped into _targets.py."""
    files = [templates_root() / name for name in TARGET_TEMPLATES]
    files += [Path(d["partial_path"]) for d in declarations]
    files += [Path(d["partial_path"]).with_suffix("").with_suffix(".yaml") for d in declarations]
    return _digest(files)


def _pytuple(values: Iterable[Any]) -> str:
    values = list(values)
    return "(" + ", ".join(repr(v) for v in values) + ("," if len(values) == 1 else "") + ")"


def make_environment(declarations: list[dict[str, Any]]) -> jinja2.Environment:
    partials = {f"target:{d['name']}": d["partial_path"] for d in declarations}

    def load_partial(name: str):
        path = partials.get(name)
        if path is None:
            return None
        source = Path(path).read_text(encoding="utf-8")
        return source, path, lambda: True

    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(str(templates_root())), jinja2.FunctionLoader(load_partial)]
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["pyrepr"] = repr
    env.filters["pytuple"] = _pytuple
    return env


@dataclass
class RenderContext:
    registry: Registry
    declarations: list[dict[str, Any]]
    environment: jinja2.Environment
    template_digest: str  # of the per-model modules' templates
    targets_digest: str  # of _targets.py's templates
    skillmill_version: str

    @classmethod
    def create(cls, registry: Registry, declarations: list[dict[str, Any]]) -> "RenderContext":
        try:
            version = metadata.version("skillmill")
        except metadata.PackageNotFoundError:
            version = "0+unknown"
        return cls(registry, declarations, make_environment(declarations),
                   skill_template_digest(), targets_template_digest(declarations), version)


def _class_context(record: ClassRecord, declarations: list[dict[str, Any]]) -> dict[str, Any]:
    from skillmill.registry.scan import supported_targets

    data = dict(record.__dict__)
    # Recomputed from the declarations in use (the snapshot's list is for the built-in ones), so
    # `--hardware` and a template author's new target take effect without a rescan.
    data["targets"] = supported_targets(record.modality, record.family, declarations)
    data["base"] = BASE_CLASS_NAMES[record.modality]
    data["template"] = f"skills/{record.modality}.py.j2"
    return data


def _render(ctx: RenderContext, what: str, pieces: Callable[[jinja2.Environment], list[str]]) -> str:
    try:
        rendered = pieces(ctx.environment)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"{exc.filename or exc.name}:{exc.lineno}: template syntax error: {exc.message}"
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"rendering {what}: {type(exc).__name__}: {exc}") from None
    # Each piece is a top-level block; black puts two blank lines between such blocks, so
    # formatting pieces one by one (the shared ones only once) equals formatting the file.
    return "\n\n".join(format_piece(piece, what) for piece in rendered)


def render_targets_module(ctx: RenderContext) -> str:
    """generated/_targets.py: every declared target's runner (its partial, rendered once) and
    the TARGETS table the per-model modules pick their targets from."""
    targets = [{**decl, "partial_name": f"target:{decl['name']}"} for decl in ctx.declarations]
    imports = sorted({line for t in targets for line in t.get("imports", [])})

    def pieces(env: jinja2.Environment) -> list[str]:
        head = env.get_template("targets_module.py.j2").render(
            imports=imports, template_digest=ctx.targets_digest,
            skillmill_version=ctx.skillmill_version,
        )
        return ([head] + [env.get_template(t["partial_name"]).render(target=t) for t in targets]
                + [env.get_template("targets_table.py.j2").render(targets=targets)])

    return _render(ctx, "the hardware targets", pieces)


def render_module(ctx: RenderContext, model_type: str, records: list[ClassRecord]) -> str:
    """One model type's module: one skill class per registered class, each naming the targets
    (in _targets.py) that support it."""
    classes = [_class_context(record, ctx.declarations) for record in records]
    bases = sorted({data["base"] for data in classes})

    def pieces(env: jinja2.Environment) -> list[str]:
        head = env.get_template("skill_module.py.j2").render(
            model_type=model_type, classes=classes, bases=bases,
            registry_digest=ctx.registry.digest,
            transformers_version=ctx.registry.transformers_version,
            template_digest=ctx.template_digest, skillmill_version=ctx.skillmill_version,
        )
        return [head] + [env.get_template(data["template"]).render(cls=data) for data in classes]

    return _render(ctx, model_type, pieces)


@functools.lru_cache(maxsize=256)
def _black(text: str) -> str:
    return black.format_str(text, mode=BLACK_MODE)


def format_piece(text: str, what: str) -> str:
    try:
        return _black(text.strip("\n") + "\n")
    except black.InvalidInput as exc:
        raise TemplateError(f"the templates produced invalid Python for {what}: {exc}") from None


def render_index(ctx: RenderContext) -> str:
    """generated/__init__.py: class name -> module, so load_skill imports one module only."""
    lines = [
        f"# Generated by skillmill {ctx.skillmill_version} — do not edit; regenerate with `generate-skills`.",
        f"# registry sha256:{ctx.registry.digest[:16]} (transformers {ctx.registry.transformers_version})",
        '"""Generated skill modules, one per transformers model type."""',
        "",
        "SKILL_MODULES = {",
    ]
    for name in sorted(ctx.registry.classes):
        lines.append(f"    {name!r}: {module_name(ctx.registry.classes[name].model_type)!r},")
    lines += ["}", ""]
    return black.format_str("\n".join(lines), mode=BLACK_MODE)

"""Render one skill module per model type from the registry and the templates."""

from __future__ import annotations

import functools
import hashlib
import keyword
import re
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Iterable

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


def template_digest(declarations: list[dict[str, Any]]) -> str:
    """sha256 over every template file in use: stamped into each generated file."""
    digest = hashlib.sha256()
    files = sorted(templates_root().rglob("*.j2")) + [Path(d["partial_path"]) for d in declarations]
    files += [Path(d["partial_path"]).with_suffix("").with_suffix(".yaml") for d in declarations]
    for path in sorted(set(files)):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


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
    template_digest: str
    skillmill_version: str

    @classmethod
    def create(cls, registry: Registry, declarations: list[dict[str, Any]]) -> "RenderContext":
        try:
            version = metadata.version("skillmill")
        except metadata.PackageNotFoundError:
            version = "0+unknown"
        return cls(registry, declarations, make_environment(declarations),
                   template_digest(declarations), version)


def _class_context(record: ClassRecord, declarations: list[dict[str, Any]]) -> dict[str, Any]:
    from skillmill.registry.scan import supported_targets
    from skillmill.runtime.skill import MODALITY_BASES

    data = dict(record.__dict__)
    # Recomputed from the declarations in use (the snapshot's list is for the built-in ones), so
    # `--hardware` and a template author's new target take effect without a rescan.
    data["targets"] = supported_targets(record.modality, record.family, declarations)
    data["base"] = MODALITY_BASES[record.modality].__name__
    data["template"] = f"skills/{record.modality}.py.j2"
    return data


def render_module(ctx: RenderContext, model_type: str, records: list[ClassRecord]) -> str:
    classes = [_class_context(record, ctx.declarations) for record in records]
    used = {name for data in classes for name in data["targets"]}
    targets = []
    for decl in ctx.declarations:
        if decl["name"] in used:
            targets.append({**decl, "partial_name": f"target:{decl['name']}"})
    imports = sorted({line for t in targets for line in t.get("imports", [])})
    bases = sorted({data["base"] for data in classes})
    env = ctx.environment
    try:
        pieces = [env.get_template("skill_module.py.j2").render(
            model_type=model_type, classes=classes, imports=imports, bases=bases,
            registry_digest=ctx.registry.digest,
            transformers_version=ctx.registry.transformers_version,
            template_digest=ctx.template_digest, skillmill_version=ctx.skillmill_version,
        )]
        pieces += [env.get_template(t["partial_name"]).render(target=t, model_type=model_type)
                   for t in targets]
        pieces.append(env.get_template("targets_table.py.j2").render(targets=targets))
        pieces += [env.get_template(data["template"]).render(cls=data) for data in classes]
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"{exc.filename or exc.name}:{exc.lineno}: template syntax error: {exc.message}"
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"rendering {model_type}: {type(exc).__name__}: {exc}") from None
    # Each piece is a top-level block; black puts two blank lines between such blocks, so
    # formatting pieces one by one (the shared partials only once) equals formatting the file.
    return "\n\n".join(format_piece(piece, model_type) for piece in pieces)


@functools.lru_cache(maxsize=256)
def _black(text: str) -> str:
    return black.format_str(text, mode=BLACK_MODE)


def format_piece(text: str, model_type: str) -> str:
    try:
        return _black(text.strip("\n") + "\n")
    except black.InvalidInput as exc:
        raise TemplateError(f"the templates produced invalid Python for {model_type}: {exc}") from None


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

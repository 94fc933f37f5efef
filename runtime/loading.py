"""Turn ``load_skill(..., model=...)`` into a ready torch module, offline, with clear errors.

``model`` may be a local directory (config.json + weights), a config (object or dict), an
already-built ``PreTrainedModel``, or ``"tiny"`` for the registry's tiny random model.  Nothing
is ever fetched from a hub."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from skillmill.registry import classes

from .errors import SkillLoadError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def resolve_model_class(class_name: str, model_type: str | None = None) -> type:
    """``skillmill.registry.classes.resolve_model_class``, its error a ``SkillLoadError``."""
    try:
        return classes.resolve_model_class(class_name, model_type)
    except classes.ModelClassError as exc:
        raise SkillLoadError(str(exc)) from None


def _config_from_dict(model_class: type, data: dict[str, Any]):
    config_class = model_class.config_class
    expected = getattr(config_class, "model_type", "")
    given = data.get("model_type", expected)
    if expected and given != expected:
        raise SkillLoadError(
            f"the config is for model type '{given}' but {model_class.__name__} needs '{expected}'"
        )
    try:
        return config_class.from_dict({k: v for k, v in data.items() if k != "model_type"})
    except Exception as exc:
        raise SkillLoadError(f"invalid {config_class.__name__}: {type(exc).__name__}: {exc}") from exc


def _from_directory(model_class: type, path: Path, dtype: Any):
    if not path.exists():
        raise SkillLoadError(
            f"model directory '{path}' does not exist (skillmill loads local folders, 'tiny', or a "
            "config; it never downloads from a hub)"
        )
    if not path.is_dir():
        raise SkillLoadError(f"model path '{path}' is a file; expected a directory with config.json")
    config_path = path / "config.json"
    if not config_path.exists():
        raise SkillLoadError(f"'{path}' has no config.json")
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SkillLoadError(f"{config_path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SkillLoadError(f"{config_path} must hold a JSON object")
    config = _config_from_dict(model_class, data)
    if not any((path / name).exists() for name in WEIGHT_FILES):
        raise SkillLoadError(
            f"'{path}' has a config but no weights (looked for {', '.join(WEIGHT_FILES)})"
        )
    try:
        model, info = model_class.from_pretrained(
            # Mis-shaped tensors are collected (not raised) so the error below can name them.
            str(path), config=config, local_files_only=True, output_loading_info=True,
            ignore_mismatched_sizes=True,
            **({"dtype": dtype} if dtype is not None else {}),
        )
    except Exception as exc:
        raise SkillLoadError(
            f"could not load {model_class.__name__} weights from '{path}': {type(exc).__name__}: {exc}"
        ) from exc
    missing = info.get("missing_keys") or []
    mismatched = info.get("mismatched_keys") or []
    if missing or mismatched:
        sample = ", ".join(sorted(map(str, [*missing, *mismatched]))[:5])
        raise SkillLoadError(
            f"the weights in '{path}' do not fit {model_class.__name__} with its config.json: "
            f"{len(missing)} missing and {len(mismatched)} mis-shaped tensors (e.g. {sample}); "
            "the model would run with random values there"
        )
    return model


def load_model(model_class: type, model_type: str, model: Any, dtype: Any = None):
    """The eval-mode torch module for ``model`` (see the module docstring for the forms)."""
    from transformers import PretrainedConfig, PreTrainedModel

    if model is None:
        raise SkillLoadError(
            "no model given: pass model=<local directory>, a config, or model='tiny' for a tiny "
            "random model"
        )
    if isinstance(model, PreTrainedModel):
        if not isinstance(model, model_class):
            raise SkillLoadError(f"expected a {model_class.__name__}, got {type(model).__name__}")
        return model.eval()
    if isinstance(model, str) and model == "tiny":
        from skillmill.registry.tiny import tiny_config, tiny_model

        return tiny_model(model_class, config=tiny_config(model_type))
    if isinstance(model, dict):
        model = _config_from_dict(model_class, model)
    if isinstance(model, PretrainedConfig):
        from skillmill.registry.tiny import tiny_model

        try:
            return tiny_model(model_class, config=model)
        except Exception as exc:
            raise SkillLoadError(
                f"could not build {model_class.__name__} from this config: {type(exc).__name__}: {exc}"
            ) from exc
    if isinstance(model, (str, os.PathLike)):
        return _from_directory(model_class, Path(model).expanduser(), dtype).eval()
    raise SkillLoadError(
        f"model must be a local directory, a config, a PreTrainedModel or 'tiny'; got "
        f"{type(model).__name__}"
    )


def sentence_pooling(path: Any) -> dict[str, Any]:
    """How sentence-transformers pools this checkpoint (modules.json + 1_Pooling/config.json):
    {"mode": "mean"|"cls"|"max", "normalize": bool}.  Defaults to mean pooling, no normalisation."""
    spec = {"mode": "mean", "normalize": False}
    if not isinstance(path, (str, os.PathLike)) or path == "tiny":
        return spec
    folder = Path(path)
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        return spec
    for module in json.loads(modules_file.read_text(encoding="utf-8")):
        kind = module.get("type", "")
        if kind.endswith("Normalize"):
            spec["normalize"] = True
        if kind.endswith("Pooling"):
            pooling_config = folder / module.get("path", "") / "config.json"
            if pooling_config.exists():
                conf = json.loads(pooling_config.read_text(encoding="utf-8"))
                for mode in ("mean", "cls", "max"):
                    if conf.get(f"pooling_mode_{mode}_tokens"):
                        spec["mode"] = mode
                        break
    return spec

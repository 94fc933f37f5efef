"""Scan the installed transformers: every concrete PreTrainedModel class in its top-level
namespace, and every auto mapping in ``transformers.models.auto.modeling_auto``."""

from __future__ import annotations

import inspect
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable

import yaml

from . import classify

ABSTRACT_SUFFIXES = ("PreTrainedModel", "PretrainedModel")


@dataclass
class ClassRecord:
    """What the registry knows about one model class."""

    class_name: str
    model_type: str
    config_class: str
    tasks: list[str]
    modality: str
    family: str
    main_input_names: list[str]
    input_names: list[str]
    is_base: bool  # the MODEL_MAPPING class of its model type
    in_auto_mapping: bool
    targets: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "class_name"}


def load_task_table() -> dict[str, str]:
    text = resources.files(__package__).joinpath("tasks.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def auto_mappings() -> dict[str, dict[str, tuple[str, ...]]]:
    """{"MODEL_FOR_CAUSAL_LM": {model_type: (class names...)}, ...} from modeling_auto."""
    from transformers.models.auto import modeling_auto

    mappings = {}
    for attr in sorted(dir(modeling_auto)):
        if attr.startswith("MODEL") and attr.endswith("_MAPPING_NAMES"):
            table = getattr(modeling_auto, attr)
            mappings[attr[: -len("_MAPPING_NAMES")]] = {
                model_type: tuple(names) if isinstance(names, (list, tuple)) else (names,)
                for model_type, names in table.items()
            }
    return mappings


def concrete_model_classes() -> dict[str, type]:
    import transformers
    from transformers import PreTrainedModel

    found = {}
    for name in sorted(dir(transformers)):
        if name.endswith(ABSTRACT_SUFFIXES):
            continue
        try:
            obj = getattr(transformers, name)
        except Exception:  # a lazy import whose optional dependency is missing
            continue
        if inspect.isclass(obj) and issubclass(obj, PreTrainedModel) and obj is not PreTrainedModel:
            found[name] = obj
    return found


def base_classes_outside_namespace(found: dict[str, type]) -> dict[str, type]:
    """Base classes of MODEL_MAPPING that the top-level namespace does not export (or exports
    under an abstract-looking name, e.g. Qwen2_5_VisionTransformerPretrainedModel)."""
    from transformers import CONFIG_MAPPING, MODEL_MAPPING, PreTrainedModel

    extra = {}
    for model_type, names in auto_mappings()["MODEL"].items():
        if names[0] in found:
            continue
        try:
            model_class = MODEL_MAPPING[CONFIG_MAPPING[model_type]]
        except Exception:  # the coverage report records this type as failing, with the reason
            continue
        # A placeholder for a missing optional dependency (e.g. torchaudio) is no model class.
        if inspect.isclass(model_class) and issubclass(model_class, PreTrainedModel):
            extra[names[0]] = model_class
    return extra


def model_type_of(model_class: type) -> str:
    """The config's model_type; a few sub-model configs have none, so fall back to the
    transformers.models.<folder> the class lives in."""
    config_class = getattr(model_class, "config_class", None)
    model_type = getattr(config_class, "model_type", "") if config_class else ""
    if model_type:
        return model_type
    parts = model_class.__module__.split(".")
    return parts[parts.index("models") + 1] if "models" in parts else parts[-1]


def default_config(model_class: type) -> Any:
    config_class = getattr(model_class, "config_class", None)
    if config_class is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return config_class()
    except Exception:  # a config that cannot be built without arguments
        return None


def supported_targets(modality: str, family: str, declarations: Iterable[dict]) -> list[str]:
    """Targets (priority order) whose declaration supports this modality and family."""
    chosen = []
    for decl in sorted(declarations, key=lambda d: -d["priority"]):
        supports = decl.get("supports", {})
        modalities, families = supports.get("modalities", "*"), supports.get("families", "*")
        if (modalities == "*" or modality in modalities) and (families == "*" or family in families):
            chosen.append(decl["name"])
    return chosen


def scan(declarations: list[dict], progress=None) -> dict[str, ClassRecord]:
    """Scan transformers; returns {class_name: ClassRecord} for every concrete model class."""
    task_table = load_task_table()
    mappings = auto_mappings()
    unknown = sorted(set(mappings) - set(task_table))
    if unknown:
        raise RuntimeError(
            f"transformers has auto mappings that registry/tasks.yaml does not name: {unknown}"
        )
    class_tasks: dict[str, set[str]] = defaultdict(set)
    type_tasks: dict[str, set[str]] = defaultdict(set)
    mapped_types: dict[str, str] = {}
    for mapping, table in mappings.items():
        for model_type, names in table.items():
            for name in names:
                class_tasks[name].add(task_table[mapping])
                type_tasks[model_type].add(task_table[mapping])
                mapped_types.setdefault(name, model_type)
    base_types_of: dict[str, list[str]] = defaultdict(list)  # GPT2Model serves gpt2 and gpt-sw3
    for model_type, names in mappings["MODEL"].items():
        base_types_of[names[0]].append(model_type)
    classes = concrete_model_classes()
    classes.update(base_classes_outside_namespace(classes))

    # A class that sits in no mapping (e.g. CLIPTextModel) gets no tasks of its own.
    records = {}
    configs: dict[str, Any] = {}
    for class_name, model_class in classes.items():
        model_type = model_type_of(model_class)
        if class_name in base_types_of and model_type not in base_types_of[class_name]:
            model_type = base_types_of[class_name][0]
        config_class = getattr(model_class, "config_class", None)
        key = config_class.__name__ if config_class else ""
        if key not in configs:
            configs[key] = default_config(model_class)
        tasks = class_tasks.get(class_name, set())
        kind = classify.modality(model_class, configs[key], tasks)
        fam = classify.family(model_class, configs[key], kind, tasks, type_tasks[model_type])
        records[class_name] = ClassRecord(
            class_name=class_name,
            model_type=model_type,
            config_class=key,
            tasks=sorted(tasks),
            modality=kind,
            family=fam,
            main_input_names=classify.main_input_names(model_class),
            input_names=classify.input_names(model_class),
            is_base=model_type in base_types_of.get(class_name, ()),
            in_auto_mapping=class_name in class_tasks,
            targets=supported_targets(kind, fam, declarations),
        )
        if progress:
            progress(class_name)
    return records


def base_classes() -> dict[str, str]:
    """{base model type: its MODEL_MAPPING class}: the unit coverage is measured over.  Some
    classes serve several types (GPT2Model for gpt2 and gpt-sw3, with different configs)."""
    return {t: names[0] for t, names in sorted(auto_mappings()["MODEL"].items())}

"""Which transformers class a registry name means.  Here, not in the runtime, because the
registry's own tiny models need it too (registry/tiny.py); the runtime turns the error into a
``SkillLoadError`` (runtime/loading.py)."""

from __future__ import annotations


class ModelClassError(ValueError):
    """The name is not a transformers model class that can be built here."""


def resolve_model_class(class_name: str, model_type: str | None = None) -> type:
    """The transformers class called `class_name`; a base class the top-level namespace does not
    export is found through `model_type`'s entry in MODEL_MAPPING."""
    import transformers

    model_class = getattr(transformers, class_name, None)
    if model_class is None:  # a base class the top-level namespace does not export
        from transformers import CONFIG_MAPPING, MODEL_MAPPING

        if model_type is None or model_type not in CONFIG_MAPPING:
            raise ModelClassError(f"unknown model class {class_name!r}: not exported by transformers")
        model_class = MODEL_MAPPING[CONFIG_MAPPING[model_type]]
    from transformers import PreTrainedModel

    if not (isinstance(model_class, type) and issubclass(model_class, PreTrainedModel)):
        raise ModelClassError(
            f"transformers cannot build {class_name} here: {getattr(model_class, '__name__', model_class)}"
            " is a placeholder for a missing optional dependency"
        )
    return model_class

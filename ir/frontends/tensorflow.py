"""TensorFlow frontend.  TensorFlow is an optional extra; without it the call fails with a clear
"install skillmill[tensorflow]" error.  With it, the model is traced to a concrete function and
converted through ONNX when ``tf2onnx`` is present (the only supported route for now)."""

from __future__ import annotations

from typing import Any

from ..errors import ConversionError, MissingDependency
from ..graph import Graph


def convert_from_tensorflow(model: Any, input_shapes: dict[str, Any]) -> Graph:
    try:
        import tensorflow as tf  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(
            "convert_from_tensorflow needs TensorFlow: pip install 'skillmill[tensorflow]'"
        ) from exc
    try:
        import tf2onnx
    except ImportError as exc:
        raise MissingDependency(
            "convert_from_tensorflow converts through ONNX and needs tf2onnx: "
            "pip install 'skillmill[tensorflow]' tf2onnx"
        ) from exc
    import tempfile

    import tensorflow as tf

    from .onnx import convert_from_onnx

    signature = [tf.TensorSpec([None if isinstance(d, str) else d for d in shape], tf.float32, name=name)
                 for name, shape in input_shapes.items()]  # fmt: skip
    try:
        with tempfile.NamedTemporaryFile(suffix=".onnx") as handle:
            tf2onnx.convert.from_keras(model, input_signature=signature, output_path=handle.name)
            graph = convert_from_onnx(handle.name, input_shapes)
    except MissingDependency:
        raise
    except Exception as exc:
        raise ConversionError(f"TensorFlow conversion failed: {type(exc).__name__}: {exc}") from exc
    graph.metadata["source"] = "tensorflow"
    return graph

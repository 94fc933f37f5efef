"""``MojoMaxIRConverter``: the design's converter API, backed by the real frontends, passes and
.mojomodel writer.

    converter = MojoMaxIRConverter()
    ir = converter.convert_from_pytorch(model, example_inputs)      # or input_shapes
    optimised = converter.optimize_max_ir(ir)                       # .optimizations_applied
    path = converter.compile_to_mojomodel(optimised, "my_model")    # -> my_model.mojomodel
"""

from __future__ import annotations

import os
from typing import Any

from .graph import Graph
from .mojomodel import compile_to_mojomodel as _compile
from .passes import optimize_graph


class MojoMaxIRConverter:
    """Converts PyTorch / ONNX / TensorFlow models to the skillmill IR, optimises, compiles."""

    def __init__(self, passes: list[str] | None = None):
        self.passes = passes
        self.last_report: dict[str, Any] = {}

    def convert_from_pytorch(self, pytorch_model: Any, input_shapes: dict[str, Any] | None = None,
                             example_inputs: dict[str, Any] | None = None, **kwargs: Any) -> Graph:  # fmt: skip
        """``input_shapes`` may also be a dict of example tensors (then used as examples)."""
        from .frontends.pytorch import convert_from_pytorch

        if example_inputs is None and input_shapes and all(hasattr(v, "shape") for v in input_shapes.values()):
            example_inputs, input_shapes = input_shapes, None
        return convert_from_pytorch(pytorch_model, example_inputs, input_shapes, **kwargs)

    def convert_from_onnx(self, onnx_model_path: str | os.PathLike, input_shapes: dict[str, Any] | None = None
                          ) -> Graph:  # fmt: skip
        from .frontends.onnx import convert_from_onnx

        return convert_from_onnx(onnx_model_path, input_shapes)

    def convert_from_tensorflow(self, tensorflow_model: Any, input_shapes: dict[str, Any]) -> Graph:
        from .frontends.tensorflow import convert_from_tensorflow

        return convert_from_tensorflow(tensorflow_model, input_shapes)

    def optimize_max_ir(self, max_ir: Graph, passes: list[str] | None = None,
                        memory_bindings: dict[str, int] | None = None) -> Graph:  # fmt: skip
        """Optimised copy; ``.metadata["optimizations_applied"]`` lists the passes run, and
        ``self.last_report`` holds per-pass counts and the memory plan."""
        optimised, report = optimize_graph(max_ir, passes if passes is not None else self.passes,
                                           memory_bindings=memory_bindings)  # fmt: skip
        optimised.metadata["optimization_report"] = report
        self.last_report = report
        return optimised

    def compile_to_mojomodel(self, optimized_ir: Graph, output_path: str | os.PathLike) -> str:
        return _compile(optimized_ir, output_path)


def optimize_max_ir(max_ir: Graph, passes: list[str] | None = None,
                    memory_bindings: dict[str, int] | None = None) -> Graph:  # fmt: skip
    """Module-level form of ``MojoMaxIRConverter().optimize_max_ir`` (``from skillmill import
    optimize_max_ir``): an optimised copy, the passes run in ``.metadata["optimizations_applied"]``."""
    return MojoMaxIRConverter(passes).optimize_max_ir(max_ir, memory_bindings=memory_bindings)

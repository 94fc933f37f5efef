"""Errors raised by the IR, its frontends, passes, executor and the .mojomodel loader."""

from __future__ import annotations


class IRError(Exception):
    """Base class for every error skillmill.ir raises on purpose."""


class ValidationError(IRError):
    """The graph is malformed; the message names the offending node."""

    def __init__(self, message: str, node: str | None = None):
        self.node = node
        super().__init__(f"node {node!r}: {message}" if node else message)


class ConversionError(IRError):
    """A frontend could not turn a model into IR."""


class UnsupportedOp(ConversionError):
    """An operator has no IR lowering yet; never dropped silently."""

    def __init__(self, op: str, model_name: str = "<model>", detail: str = ""):
        self.op = op
        self.model_name = model_name
        suffix = f": {detail}" if detail else ""
        super().__init__(f"unsupported op {op!r} in {model_name}{suffix}")


class ExecutionError(IRError):
    """A node failed while the executor ran it; the message names the node."""

    def __init__(self, message: str, node: str | None = None):
        self.node = node
        super().__init__(f"node {node!r}: {message}" if node else message)


class MojoModelError(IRError):
    """A .mojomodel file is truncated, tampered with, or of an unknown version/schema."""


class MissingDependency(IRError, ImportError):
    """An optional framework (TensorFlow, onnx, openvino) is not installed."""

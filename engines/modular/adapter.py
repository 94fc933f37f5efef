"""The one place skillmill imports Modular's ``max`` package.

MAX's Python API moves fast (``Tensor`` became ``Buffer``, sessions grew ``compile``/``init``),
so every other module talks to MAX through the names below and nothing else.  Importing this
module fails with ``ModularUnavailable`` (naming the fix) when ``max`` is not installed.

Pinned against MAX 26.7.0 (pyproject's ``modular`` extra)."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np


class ModularUnavailable(ImportError):
    """``max`` (or the ``mojo`` compiler it brings) is not installed or cannot start."""


from .cache import cache_root

# MAX reads MODULAR_CACHE_DIR when it compiles; a persistent default outside any clone keeps
# the kernel cache (tens of seconds per graph cold) between runs, CI included.
os.environ.setdefault("MODULAR_CACHE_DIR", str(cache_root()))
os.environ.setdefault("MODULAR_TELEMETRY_ENABLED", "0")

try:
    from max import driver, engine
    from max.dtype import DType
    from max.graph import DeviceRef, Dim, Graph, SymbolicDim, TensorType, TensorValue, Weight, ops
    from max.graph.type import ConvInputLayout, FilterLayout
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ModularUnavailable(
        f"Modular MAX is not installed ({exc}); pip install 'skillmill[modular]' (max==26.7.0)"
    ) from exc

MAX_VERSION = importlib.metadata.version("max")

__all__ = [
    "MAX_VERSION", "ModularUnavailable", "Dim", "TensorValue", "ops", "ConvInputLayout",
    "FilterLayout", "GraphBuilder", "dtype_of", "numpy_dtype_of", "device_ref", "accelerator_count",
    "Session", "is_dim", "is_minus_symbol", "static_int",
]  # fmt: skip

_DTYPES = {
    "float32": DType.float32, "float64": DType.float64, "float16": DType.float16,
    "bfloat16": DType.bfloat16, "int8": DType.int8, "int16": DType.int16, "int32": DType.int32,
    "int64": DType.int64, "uint8": DType.uint8, "uint16": DType.uint16, "uint32": DType.uint32,
    "uint64": DType.uint64, "bool": DType.bool,
}  # fmt: skip
_NAMES = {v: k for k, v in _DTYPES.items()}


def dtype_of(name: str) -> Any:
    """MAX ``DType`` for an IR dtype name; KeyError names what MAX lacks (e.g. "string")."""
    if name not in _DTYPES:
        raise KeyError(f"MAX has no dtype for {name!r}")
    return _DTYPES[name]


def numpy_dtype_of(dtype: Any) -> str:
    """IR dtype name of a MAX ``DType``."""
    return _NAMES[dtype]


def accelerator_count() -> int:
    try:
        return int(driver.accelerator_count())
    except Exception:  # a broken GPU driver means "no accelerator", not a crash
        return 0


def device_ref(target: str) -> Any:
    """``DeviceRef`` for "cpu" or "gpu"."""
    return DeviceRef.GPU() if target == "gpu" else DeviceRef.CPU()


def is_dim(value: Any) -> bool:
    return isinstance(value, Dim)


def is_minus_symbol(value: Any) -> bool:
    """Whether a dim is minus a symbolic one (``-seq``, which MAX keeps as ``seq * -1``)."""
    return isinstance(value, Dim) and isinstance(-value, SymbolicDim)


def static_int(value: Any) -> int | None:
    """The int value of an int or a static ``Dim``; None for a symbolic one."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, Dim):
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return None


class GraphBuilder:
    """A MAX graph under construction: typed inputs, external weights, constants, outputs.

    Use as a context manager (MAX records ops into the innermost open graph)::

        with GraphBuilder("m", {"ids": ("int64", ["batch", "seq"])}, "cpu") as g:
            y = ops.gather(g.weight("emb", array), g.inputs["ids"], axis=0)
            g.output([y])
    """

    def __init__(self, name: str, inputs: dict[str, tuple[str, Sequence[Any]]], target: str = "cpu",
                 custom_extensions: Iterable[Path] = ()):  # fmt: skip
        self.device = device_ref(target)
        self.target = target
        self.input_names = list(inputs)
        types = [TensorType(dtype_of(dtype), list(shape), device=self.device)
                 for dtype, shape in inputs.values()]  # fmt: skip
        self.graph = Graph(name, input_types=types, custom_extensions=list(custom_extensions))
        self.weights: dict[str, np.ndarray] = {}
        self.inputs: dict[str, TensorValue] = {}

    def __enter__(self) -> "GraphBuilder":
        self.graph.__enter__()
        self.inputs = {n: v.tensor for n, v in zip(self.input_names, self.graph.inputs)}
        return self

    def __exit__(self, *exc: Any) -> None:
        self.graph.__exit__(*exc)

    def weight(self, name: str, array: np.ndarray) -> TensorValue:
        """An external weight: the compiled graph holds its shape only, so the cached artifact
        serves any checkpoint of the same architecture; values are bound at load time."""
        array = np.ascontiguousarray(array)
        self.weights[name] = array
        spec = Weight(name, dtype_of(array.dtype.name), list(array.shape), device=self.device)
        return self.graph.add_weight(spec)

    def constant(self, value: Any, dtype: str) -> TensorValue:
        return ops.constant(np.asarray(value, dtype=dtype), dtype_of(dtype), self.device)

    def tensor_type(self, dtype: str, shape: Sequence[Any]) -> Any:
        return TensorType(dtype_of(dtype), list(shape), device=self.device)

    def custom(self, name: str, values: Sequence[TensorValue], out_types: Sequence[Any],
               parameters: dict[str, Any] | None = None) -> list[TensorValue]:  # fmt: skip
        """A Mojo custom op (registered with ``@extensibility.register``) from the graph's
        ``custom_extensions`` folder."""
        outs = ops.custom(name, self.device, list(values), list(out_types), parameters=parameters)
        return [o.tensor for o in outs]

    def output(self, values: Sequence[TensorValue]) -> None:
        self.graph.output(*values)


class Session:
    """An ``InferenceSession`` on the CPU (or the first accelerator): compile, export, load."""

    def __init__(self, target: str = "cpu"):
        self.target = target
        device = driver.Accelerator() if target == "gpu" else driver.CPU()
        self.device = device
        # num_threads is left alone: passing it aborts the process in MAX 26.7.
        self.session = engine.InferenceSession(devices=[device])

    def compile(self, builder: GraphBuilder) -> Any:
        """Compile without binding weights; raises RuntimeError with MAX's diagnostic."""
        return self.session.compile(builder.graph)

    @staticmethod
    def export(compiled: Any, path: Path) -> None:
        compiled.export_mef(str(path))

    def init(self, compiled: Any, weights: dict[str, np.ndarray]) -> Any:
        return self.session.init(compiled, weights_registry=weights)

    def load(self, path: Path, weights: dict[str, np.ndarray],
             custom_extensions: Iterable[Path] = ()) -> Any:  # fmt: skip
        """Load a compiled artifact (.mef) and bind weights: no compilation."""
        extensions = [str(p) for p in custom_extensions] or None
        return self.session.load(str(path), weights_registry=weights, custom_extensions=extensions)

    def execute(self, model: Any, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run with host numpy arrays in, host numpy arrays out (copies; the model may reuse
        its buffers)."""
        # np.asarray(order="C"), not ascontiguousarray: that one turns a 0-d input into shape [1]
        buffers = [driver.Buffer.from_numpy(np.asarray(a, order="C")) for a in arrays]
        if self.target == "gpu":
            buffers = [b.to(self.device) for b in buffers]
        outs = model.execute(*buffers)
        return [np.array(o.to(driver.CPU()).to_numpy() if self.target == "gpu" else o.to_numpy())
                for o in outs]  # fmt: skip

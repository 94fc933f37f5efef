"""Lower a skillmill IR graph (``skillmill.ir.graph.Graph``) to a MAX graph.

Every IR op with a MAX lowering has one function in ``lower_elementwise``, ``lower_shape``,
``lower_nn`` or ``lower_moe`` (each module's ``TABLE``, merged by ``lowerings()``).  An op without
one, or an attribute combination a lowering cannot express (a data-dependent output shape, say),
raises ``MaxLoweringError`` naming the op and the node, and the skill falls back with that reason.

Values while lowering: tensors are MAX ``TensorValue``s; the IR's runtime scalars (``SymSize``,
``Scalar``) become ints or MAX ``Dim``s (``batch``, ``seq``, ``batch * seq``), so a reshape to
``[batch * seq, 384]`` stays symbolic in the compiled graph.

Weights: float tensors above ``CONSTANT_LIMIT`` elements become external MAX weights (their
values are bound when the compiled graph is loaded, so one compiled artifact serves every
checkpoint of an architecture); small or integer tensors become constants, and their values are
part of the cache key (``constant_weight``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from skillmill.ir.graph import Graph, Node, dtype_name, resolve_attr

from . import adapter
from .adapter import GraphBuilder, ops

CONSTANT_LIMIT = 64  # elements; at most this many (or any non-float weight) -> graph constant
FLOAT_TYPES = ("float32", "float64", "float16", "bfloat16")


def lowering_sources() -> list[Path]:
    """The files whose source decides how an IR graph becomes a MAX graph: this file,
    lower_*.py, adapter.py and the custom-op hooks (custom_op.py, and mojo_kernels.py, which
    packs their weights).  The Mojo kernels' own source is in the key through the custom-op
    package's name, a digest of its rendered templates (``custom_op.folder``)."""
    here = Path(__file__).resolve().parent
    names = ["lowering.py", "adapter.py", "custom_op.py", "mojo_kernels.py"]
    return sorted([*(here / name for name in names), *here.glob("lower_*.py")])


def _lowering_source_digest() -> str:
    """sha256 of the lowering's own source (``lowering_sources``): part of the compile-cache
    key, so an artifact compiled by an older lowering is never loaded for the same IR (a
    hand-bumped version string was forgotten once: the broadcast workaround changed the graphs
    without changing the key)."""
    import hashlib

    digest = hashlib.sha256()
    for path in lowering_sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


LOWERING_VERSION = f"skillmill-max-lowering/{_lowering_source_digest()}"  # part of the cache key


class MaxLoweringError(Exception):
    """The IR uses something the MAX lowering cannot express; names the op and node."""

    plain_message = True  # fallback reasons quote it as it stands (engines/parity.describe)

    def __init__(self, op: str, node: str, reason: str):
        self.op = op
        self.node = node
        self.reason = reason
        super().__init__(f"no MAX lowering for op {op!r} (node {node!r}): {reason}")


Lower = Callable[["Lowering", Node, list[Any], dict[str, Any]], list[Any]]


def constant_weight(array: np.ndarray) -> bool:
    """Whether a weight is baked into the compiled graph (its values then key the cache)."""
    return array.dtype.name not in FLOAT_TYPES or array.size <= CONSTANT_LIMIT


def lowerings() -> dict[str, Lower]:
    from . import lower_elementwise, lower_moe, lower_nn, lower_shape

    return {**lower_elementwise.TABLE, **lower_shape.TABLE, **lower_nn.TABLE, **lower_moe.TABLE}


def missing_ops(graph: Graph) -> list[str]:
    """IR ops in ``graph`` with no MAX lowering at all, sorted."""
    table = lowerings()
    return sorted({node.op for node in graph.nodes if node.op not in table})


def materialise(t: Any) -> Any:
    """``t`` computed into a buffer of its own before use: a cumulative sum over a new axis of
    one (an identity) is a scan, which MAX does not fuse into its consumer.  MAX 26.7 miscomputes
    some broadcasting chains once fused into a consumer (attention masks fused into the score
    matmuls' epilogues came out all zeros; see ``materialise_value``)."""
    return ops.squeeze(ops.cumsum(ops.unsqueeze(t, 0), axis=0), 0)


def _padded_ones(a: Any, b: Any) -> tuple[list[bool], list[bool]]:
    sa, sb = list(a.shape), list(b.shape)
    rank = max(len(sa), len(sb))
    sa, sb = [1] * (rank - len(sa)) + sa, [1] * (rank - len(sb)) + sb
    return [adapter.static_int(d) == 1 for d in sa], [adapter.static_int(d) == 1 for d in sb]


def broadcasts(t: Any, other: Any) -> bool:
    """Whether ``t`` is broadcast against ``other`` (a size-1 or missing dim where ``other`` is
    larger)."""
    ones_t, ones_o = _padded_ones(t, other)
    return any(x and not y for x, y in zip(ones_t, ones_o))


def outer_broadcast(a: Any, b: Any) -> bool:
    """Whether two operands broadcast against each other (each has a size-1 dim where the other
    does not), as rows [S, 1] against columns [1, T] do."""
    ones_a, ones_b = _padded_ones(a, b)
    return any(x and not y for x, y in zip(ones_a, ones_b)) and any(y and not x for x, y in zip(ones_a, ones_b))


def materialise_value(t: Any) -> Any:
    """``materialise`` for any dtype.  Used for the result of an outer-broadcasting binary op: MAX
    26.7 computes such a result wrongly when it is fused into a consumer that broadcasts it
    again (causal masks built as ``rows >= cols`` and combined with a [B, 1, 1, T] padding mask
    came out all true: GPT-2, Llama, CLIP; reproduced with four ops on symbolic dims), and for
    computed operands that a binary op broadcasts.  Bool and integer values go through float
    (exact for the small integers such chains carry: positions, indices)."""
    name = adapter.numpy_dtype_of(t.dtype)
    if name in FLOAT_TYPES:
        return materialise(t)
    if name == "bool":
        f = materialise(ops.cast(t, adapter.dtype_of("float32")))
        return ops.greater(f, ops.constant(np.asarray(0.5, np.float32), adapter.dtype_of("float32"), t.device))
    f = materialise(ops.cast(t, adapter.dtype_of("float64")))
    return ops.cast(f, t.dtype)


@dataclass
class Lowered:
    """A MAX graph built from an IR graph, plus what loading it needs."""

    builder: GraphBuilder
    input_names: list[str]
    output_names: list[str]
    output_dtypes: list[str]
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    custom_ops: list[str] = field(default_factory=list)


class Lowering:
    """One lowering run: the value environment and the helpers the op lowerings share."""

    def __init__(self, graph: Graph, builder: GraphBuilder, custom_kernels: dict[str, Any] | None = None,
                 prefix: str = ""):  # fmt: skip
        self.graph = graph
        self.builder = builder
        self.prefix = prefix  # names this graph's inputs and weights inside a shared MAX graph
        self.env: dict[str, Any] = {}
        self.custom_kernels = custom_kernels or {}
        self.custom_ops_used: list[str] = []
        self._derived: dict[str, Any] = {}
        self.memo: dict[tuple, Any] = {}  # values several nodes share (e.g. an attention mask's terms)

    # -- values -------------------------------------------------------------------------------
    def value(self, name: str) -> Any:
        if name in self.env:
            return self.env[name]
        if name in self.graph.weights:
            self.env[name] = self._materialise(name, self.graph.weights[name])
            return self.env[name]
        raise MaxLoweringError("?", name, f"value {name!r} is used before it is defined")

    def _materialise(self, name: str, array: np.ndarray) -> Any:
        if array.dtype.name == "string" or array.dtype == object:
            raise MaxLoweringError("weight", name, "string tensors have no MAX dtype")
        if constant_weight(array):
            return self.builder.constant(array, array.dtype.name)
        return self.builder.weight(self.prefix + name, array)

    def derived_weight(self, name: str, transform: str, fn: Callable[[np.ndarray], np.ndarray],
                       external: bool = False) -> Any:  # fmt: skip
        """A weight stored in another layout (e.g. transposed for matmul), computed once in numpy
        and bound as its own external weight, so the graph holds no runtime transpose.
        ``external`` keeps even a small one out of the graph's constants (MAX 26.7's constant
        folding cannot re-lay out a constant conv filter: "mo.layout.transform not supported")."""
        key = f"{self.prefix}{name}::{transform}"
        if key not in self._derived:
            array = np.ascontiguousarray(fn(self.graph.weights[name]))
            small = constant_weight(array) and not external
            self._derived[key] = (self.builder.constant(array, array.dtype.name)
                                  if small else self.builder.weight(key, array))  # fmt: skip
        return self._derived[key]

    def is_weight(self, name: str) -> bool:
        return bool(name) and name in self.graph.weights

    def tensor(self, name: str) -> Any:
        """The value as a MAX tensor (runtime scalars become 0-d tensors)."""
        value = self.value(name)
        if isinstance(value, adapter.TensorValue):
            return value
        return self.scalar_tensor(value, self.dtype(name))

    def shape_tensor(self, dims: list[Any], on_host: bool = False) -> Any:
        """A 1-d int64 tensor of (symbolic) dims.  MAX builds it on the host; it moves to the
        graph's device unless ``on_host`` (slice bounds stay there): a GPU graph's ops refuse
        operands on two devices."""
        t = ops.shape_to_tensor(dims)
        return t if on_host else ops.transfer_to(t, self.builder.device)

    def scalar_tensor(self, value: Any, dtype: str, on_host: bool = False) -> Any:
        if adapter.is_dim(value) and adapter.static_int(value) is None:
            t = ops.reshape(self.shape_tensor([value], on_host), [])
            return t if dtype == "int64" else ops.cast(t, adapter.dtype_of(dtype))
        if adapter.is_dim(value):
            value = adapter.static_int(value)
        return self.builder.constant(value, dtype)

    def dtype(self, name: str) -> str:
        """IR dtype of a value: the graph's declared spec, else the lowered tensor's own."""
        value = self.env.get(name)
        if isinstance(value, adapter.TensorValue):
            return adapter.numpy_dtype_of(value.dtype)
        spec = self.graph.spec(name)
        if spec is not None:
            return spec.dtype
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, float):
            return "float64"
        return "int64"

    def out_dtype(self, node: Node, index: int = 0) -> str | None:
        spec = self.graph.value_info.get(node.outputs[index]) if node.outputs[index] else None
        return spec.dtype if spec is not None else None

    # -- tensor helpers ------------------------------------------------------------------------
    def const(self, value: Any, dtype: str) -> Any:
        """A constant; a symbolic dim (a scalar attribute read from a shape, such as
        deepseek_vl's image-token count 128 * seq) becomes a 0-d tensor computed at run time."""
        if adapter.is_dim(value):
            return self.scalar_tensor(value, dtype)
        return self.builder.constant(value, dtype)

    @staticmethod
    def tdtype(t: Any) -> str:
        return adapter.numpy_dtype_of(t.dtype)

    def cast(self, t: Any, dtype: str) -> Any:
        if self.tdtype(t) == dtype:
            return t
        if dtype == "bool":
            return ops.not_equal(t, self.const(0, self.tdtype(t)))
        return ops.cast(t, adapter.dtype_of(dtype))

    def shape(self, t: Any) -> list[Any]:
        """Dims of a tensor: ints where static, ``Dim``s where symbolic."""
        dims = []
        for d in t.shape:
            n = adapter.static_int(d)
            dims.append(n if n is not None else d)
        return dims

    # -- driving ------------------------------------------------------------------------------
    def run(self) -> list[Any]:
        table = lowerings()
        for name in self.graph.inputs:
            self.env[name] = self.builder.inputs[self.prefix + name]
        for node in self.graph.nodes:
            fn = table.get(node.op)
            if fn is None:
                raise MaxLoweringError(node.op, node.name, "the op has no MAX lowering")
            # weights are handed over as numpy arrays and materialised only when a lowering asks
            # (lw.tensor): one re-laid out for a kernel is then never bound twice
            args = [self.env.get(n, self.graph.weights.get(n)) if n else None for n in node.inputs]
            for n, a in zip(node.inputs, args):
                if n and a is None:
                    self.value(n)  # raises: used before it is defined
            attrs = resolve_attr(node.attrs, self.env)
            try:
                results = fn(self, node, args, attrs)
            except MaxLoweringError:
                raise
            except Exception as exc:  # MAX's own shape/dtype checks name what it refused
                message = f"{type(exc).__name__}: " + " ".join(str(exc).split())[:300]
                if _data_dependent(attrs):  # e.g. TopK's k read from a tensor (TensorToScalar)
                    message = f"an attribute is a value read from a tensor at run time ({message})"
                raise MaxLoweringError(node.op, node.name, message) from exc
            for out, result in zip(node.outputs, results):
                if out:
                    self.env[out] = result
        return [self.tensor(name) for name in self.graph.outputs]


def _data_dependent(attrs: Any) -> bool:
    """Whether a resolved attribute holds a run-time tensor value: a shape or count MAX must
    know when it compiles cannot come from one."""
    if isinstance(attrs, adapter.TensorValue):
        return True
    if isinstance(attrs, dict):
        return any(_data_dependent(v) for v in attrs.values())
    if isinstance(attrs, (list, tuple)):
        return any(_data_dependent(v) for v in attrs)
    return False


def lower_graph(graph: Graph, target: str = "cpu", custom_kernels: dict[str, Any] | None = None,
                custom_extensions: list[Path] | None = None) -> Lowered:  # fmt: skip
    """Build the MAX graph for ``graph``; raises ``MaxLoweringError`` naming what is missing.

    ``custom_kernels`` maps IR op names to Mojo custom ops to use instead of MAX's built-ins
    (see ``custom_op.py``); their folder goes in ``custom_extensions``."""
    builder, parts = lower_graphs({"": graph}, _graph_name(graph), target, custom_kernels,
                                  custom_extensions)  # fmt: skip
    outputs, custom_ops = parts[""]
    return Lowered(builder, list(graph.inputs), list(graph.outputs), outputs, dict(builder.weights),
                   custom_ops)  # fmt: skip


def check_inputs(graph: Graph) -> None:
    """Raise unless every op has a lowering and every input has a MAX type."""
    missing = missing_ops(graph)
    if missing:
        node = next(n for n in graph.nodes if n.op == missing[0])
        raise MaxLoweringError(missing[0], node.name,
                               f"the op has no MAX lowering (all missing: {', '.join(missing)})")  # fmt: skip
    for name, spec in graph.inputs.items():
        if spec.shape is None or any(d == "?" for d in spec.shape):
            raise MaxLoweringError("input", name, f"input dims must be ints or named symbols: {spec}")
        if spec.dtype not in adapter._DTYPES:
            raise MaxLoweringError("input", name, f"MAX has no dtype {spec.dtype}")


def lower_graphs(graphs: dict[str, Graph], name: str, target: str = "cpu",
                 custom_kernels: dict[str, Any] | None = None,
                 custom_extensions: list[Path] | None = None
                 ) -> tuple[GraphBuilder, dict[str, tuple[list[str], list[str]]]]:  # fmt: skip
    """Lower several IR graphs into one MAX graph, each under its prefix (the key): inputs,
    weights and outputs side by side.  Returns the builder and, per prefix, (output dtypes,
    custom ops used); the MAX graph's outputs are every graph's outputs in order."""
    inputs: dict[str, tuple[str, list[Any]]] = {}
    for prefix, graph in graphs.items():
        check_inputs(graph)
        for input_name, spec in graph.inputs.items():
            inputs[prefix + input_name] = (spec.dtype, list(spec.shape))
    builder = GraphBuilder(name, inputs, target, custom_extensions or [])
    parts: dict[str, tuple[list[str], list[str]]] = {}
    with builder:
        outputs: list[Any] = []
        for prefix, graph in graphs.items():
            lowering = Lowering(graph, builder, custom_kernels, prefix)
            values = lowering.run()
            outputs += values
            parts[prefix] = ([Lowering.tdtype(t) for t in values], sorted(set(lowering.custom_ops_used)))
        builder.output(outputs)
    return builder, parts


def _graph_name(graph: Graph) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in graph.name) or "graph"


def numpy_result_type(*dtypes: str) -> str:
    """numpy's promotion over IR dtype names (bfloat16 treated as float32)."""
    names = ["float32" if d == "bfloat16" else d for d in dtypes]
    return dtype_name(np.result_type(*(np.dtype(n) for n in names)))

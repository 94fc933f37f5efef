"""The skillmill graph IR: values, nodes, weights, symbolic dimensions, printing and validation.

A graph is a list of nodes in topological order.  Every value has exactly one definition: a graph
input, a named weight, or one node output.  Node attributes are JSON values; an attribute that
depends on a runtime scalar (a symbolic sequence length, say) holds ``{"$ref": value_name}`` and the
executor substitutes the scalar before the op runs.  Dimensions in shapes are ints or symbol names
("batch", "seq"); "?" is an unknown dimension.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from .errors import ValidationError

Dim = int | str
DTYPES = (
    "float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool", "string",
)  # fmt: skip


@dataclass
class TensorSpec:
    """Static description of a value: element type and shape (None = unknown rank)."""

    dtype: str
    shape: list[Dim] | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValidationError(f"unknown dtype {self.dtype!r}")
        if self.shape is not None:
            self.shape = [d if isinstance(d, str) else int(d) for d in self.shape]

    def is_concrete(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def to_json(self) -> dict:
        return {"dtype": self.dtype, "shape": self.shape}

    @staticmethod
    def from_json(data: dict) -> "TensorSpec":
        return TensorSpec(data["dtype"], data.get("shape"))

    def __str__(self) -> str:
        dims = "?" if self.shape is None else ", ".join(str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


def ref(name: str) -> dict:
    """An attribute slot filled at run time from the scalar value ``name``."""
    return {"$ref": name}


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$ref"}


def attr_refs(value: Any) -> Iterator[str]:
    """Every value name referenced anywhere inside an attribute value."""
    if is_ref(value):
        yield value["$ref"]
    elif isinstance(value, dict):
        for item in value.values():
            yield from attr_refs(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from attr_refs(item)


def resolve_attr(value: Any, env: dict[str, Any]) -> Any:
    """Replace every ``{"$ref": name}`` by ``env[name]`` (a python scalar)."""
    if is_ref(value):
        scalar = env[value["$ref"]]
        return scalar.item() if isinstance(scalar, np.ndarray) else scalar
    if isinstance(value, dict):
        return {key: resolve_attr(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_attr(item, env) for item in value]
    return value


def rename_in_attr(value: Any, mapping: dict[str, str]) -> Any:
    if is_ref(value):
        return ref(mapping.get(value["$ref"], value["$ref"]))
    if isinstance(value, dict):
        return {key: rename_in_attr(item, mapping) for key, item in value.items()}
    if isinstance(value, list):
        return [rename_in_attr(item, mapping) for item in value]
    return value


@dataclass
class Node:
    """One operation.  ``inputs`` may contain "" for an absent optional input."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def uses(self) -> list[str]:
        """Values this node reads: tensor inputs and scalars referenced from attributes."""
        used = [name for name in self.inputs if name]
        used += [name for name in attr_refs(self.attrs) if name not in used]
        return used

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "op": self.op,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "attrs": self.attrs,
        }

    @staticmethod
    def from_json(data: dict) -> "Node":
        return Node(data["name"], data["op"], list(data["inputs"]), list(data["outputs"]),
                    dict(data.get("attrs", {})))  # fmt: skip


@dataclass
class Graph:
    """A model: inputs, weights, nodes in topological order, outputs, and metadata."""

    name: str = "graph"
    inputs: dict[str, TensorSpec] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    value_info: dict[str, TensorSpec] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    # -- building -------------------------------------------------------------------------
    def add_node(self, op: str, inputs: list[str], num_outputs: int = 1, attrs: dict | None = None,
                 name: str | None = None, outputs: list[str] | None = None) -> list[str]:  # fmt: skip
        """Append a node; returns its output value names (fresh unless given)."""
        name = name or self.fresh_name(op.lower())
        if outputs is None:
            outputs = [name] if num_outputs == 1 else [f"{name}:{i}" for i in range(num_outputs)]
        self.nodes.append(Node(name, op, list(inputs), list(outputs), dict(attrs or {})))
        return list(outputs)

    def fresh_name(self, stem: str) -> str:
        taken = self._taken_names()
        counter = len(self.nodes)
        while f"{stem}_{counter}" in taken:
            counter += 1
        return f"{stem}_{counter}"

    def _taken_names(self) -> set[str]:
        taken = set(self.inputs) | set(self.weights)
        for node in self.nodes:
            taken.add(node.name)
            taken.update(node.outputs)
        return taken

    def copy(self) -> "Graph":
        """Deep copy of the structure; weight arrays are shared (passes never mutate them)."""
        return Graph(
            name=self.name,
            inputs={k: copy.deepcopy(v) for k, v in self.inputs.items()},
            outputs=list(self.outputs),
            nodes=[copy.deepcopy(node) for node in self.nodes],
            weights=dict(self.weights),
            value_info={k: copy.deepcopy(v) for k, v in self.value_info.items()},
            metadata=copy.deepcopy(self.metadata),
        )

    # -- queries --------------------------------------------------------------------------
    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs if out}

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.uses():
                users.setdefault(name, []).append(node)
        return users

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return dict(sorted(counts.items()))

    def spec(self, name: str) -> TensorSpec | None:
        if name in self.inputs:
            return self.inputs[name]
        if name in self.weights:
            array = self.weights[name]
            return TensorSpec(dtype_name(array.dtype), list(array.shape))
        return self.value_info.get(name)

    # -- validation -----------------------------------------------------------------------
    def validate(self, known_ops: set[str] | None = None) -> None:
        """Raise ValidationError (naming the node) unless the graph is well formed.

        Checks: every value defined exactly once and before use, graph outputs defined, ops
        known (when ``known_ops`` is given), and declared shapes consistent with the op table's
        shape inference where input shapes are known.
        """
        defined: dict[str, str] = {}
        for name in self.inputs:
            defined[name] = "graph input"
        for name in self.weights:
            if name in defined:
                raise ValidationError(f"weight {name!r} has the same name as a graph input")
            defined[name] = "weight"
        node_names: set[str] = set()
        for node in self.nodes:
            if not node.name or node.name in node_names:
                raise ValidationError("node name is empty or used twice", node.name)
            node_names.add(node.name)
            if known_ops is not None and node.op not in known_ops:
                raise ValidationError(f"unknown op {node.op!r}", node.name)
            for name in node.uses():
                if name not in defined:
                    raise ValidationError(f"input {name!r} is not defined before use", node.name)
            if not node.outputs:
                raise ValidationError("node has no outputs", node.name)
            for out in node.outputs:
                if not out:
                    continue
                if out in defined:
                    raise ValidationError(
                        f"output {out!r} is already defined (by {defined[out]})", node.name
                    )
                defined[out] = f"node {node.name!r}"
        for out in self.outputs:
            if out not in defined:
                raise ValidationError(f"graph output {out!r} is never defined")
        if not self.outputs:
            raise ValidationError("graph has no outputs")
        self._check_declared_shapes()

    def _check_declared_shapes(self) -> None:
        from .ops import OPS, infer_node

        for node in self.nodes:
            declared = [self.value_info.get(out) for out in node.outputs]
            if node.op not in OPS or not any(declared):
                continue
            in_specs = [self.spec(name) if name else None for name in node.inputs]
            if any(name and spec is None for name, spec in zip(node.inputs, in_specs)):
                continue
            try:
                inferred = infer_node(node, in_specs)
            except ValidationError:
                raise
            except Exception as exc:  # an infer function that cannot judge is not an error
                _ = exc
                continue
            for out, want, got in zip(node.outputs, declared, inferred or []):
                if want is None or got is None:
                    continue
                if want.dtype != got.dtype:
                    raise ValidationError(
                        f"output {out!r} is declared {want} but the op yields dtype {got.dtype}",
                        node.name,
                    )
                if not shapes_compatible(want.shape, got.shape):
                    raise ValidationError(
                        f"output {out!r} is declared {want} but the op yields {got}", node.name
                    )

    # -- printing -------------------------------------------------------------------------
    def to_text(self, max_attr_chars: int = 80) -> str:
        lines = [f"graph {self.name} ({len(self.nodes)} nodes, {len(self.weights)} weights)"]
        for name, spec in self.inputs.items():
            lines.append(f"  input  %{name}: {spec}")
        for name, array in self.weights.items():
            lines.append(f"  weight %{name}: {dtype_name(array.dtype)}{list(array.shape)}")
        for node in self.nodes:
            outs = ", ".join(f"%{o}" for o in node.outputs)
            args = ", ".join(f"%{i}" if i else "_" for i in node.inputs)
            attrs = ""
            if node.attrs:
                text = ", ".join(f"{k}={_short(v)}" for k, v in node.attrs.items())
                attrs = " {" + (text if len(text) <= max_attr_chars else text[:max_attr_chars] + "…") + "}"
            specs = [str(self.value_info[o]) for o in node.outputs if o in self.value_info]
            typed = f"  : {', '.join(specs)}" if specs else ""
            lines.append(f"  {outs} = {node.op}({args}){attrs}{typed}")
        lines.append("  return " + ", ".join(f"%{o}" for o in self.outputs))
        return "\n".join(lines)

    __str__ = to_text


def _short(value: Any) -> str:
    if is_ref(value):
        return "%" + value["$ref"]
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def shapes_compatible(a: list[Dim] | None, b: list[Dim] | None) -> bool:
    if a is None or b is None:
        return True
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, int) and isinstance(y, int) and x != y:
            return False
    return True


def dtype_name(dtype: Any) -> str:
    """Canonical dtype string for a numpy dtype (bfloat16 via ml_dtypes when present)."""
    name = np.dtype(dtype).name
    return "string" if name.startswith("str") or name == "object" else name


def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    if name == "string":
        return np.dtype(object)
    return np.dtype(name)

"""Graph <-> JSON (structure) and safetensors bytes (weights).  Never pickle."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .errors import ValidationError
from .graph import Graph, Node, TensorSpec

SCHEMA = "skillmill.ir/1"


def _plain(value: Any) -> Any:
    """JSON-able copy of an attribute value (numpy scalars/arrays, tuples)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"$array": value.tolist(), "dtype": value.dtype.name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$array", "dtype"}:
            return np.asarray(value["$array"], dtype=value["dtype"])
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def graph_to_json(graph: Graph) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "name": graph.name,
        "inputs": {k: v.to_json() for k, v in graph.inputs.items()},
        "outputs": list(graph.outputs),
        "nodes": [{**n.to_json(), "attrs": _plain(n.attrs)} for n in graph.nodes],
        "weights": {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in graph.weights.items()},
        "value_info": {k: v.to_json() for k, v in graph.value_info.items()},
        "metadata": _plain(graph.metadata),
    }


def graph_from_json(data: dict[str, Any], weights: dict[str, np.ndarray]) -> Graph:
    """Rebuild a graph; checks the schema and that the weights match the declared table."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValidationError(f"IR schema is {data.get('schema') if isinstance(data, dict) else None!r}, "
                              f"expected {SCHEMA!r}")  # fmt: skip
    try:
        declared = data["weights"]
        if set(declared) != set(weights):
            missing = sorted(set(declared) - set(weights))[:3]
            extra = sorted(set(weights) - set(declared))[:3]
            raise ValidationError(f"weights do not match the IR (missing {missing}, extra {extra})")
        for name, info in declared.items():
            array = weights[name]
            if array.dtype.name != info["dtype"] or list(array.shape) != list(info["shape"]):
                raise ValidationError(f"weight {name!r} is {array.dtype}{list(array.shape)}, "
                                      f"IR declares {info['dtype']}{info['shape']}")  # fmt: skip
        graph = Graph(
            name=str(data["name"]),
            inputs={k: TensorSpec.from_json(v) for k, v in data["inputs"].items()},
            outputs=[str(o) for o in data["outputs"]],
            nodes=[Node.from_json({**n, "attrs": _restore(n.get("attrs", {}))}) for n in data["nodes"]],
            weights={name: weights[name] for name in declared},
            value_info={k: TensorSpec.from_json(v) for k, v in data.get("value_info", {}).items()},
            metadata=dict(data.get("metadata", {})),
        )
    except ValidationError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValidationError(f"malformed IR document: {type(exc).__name__}: {exc}") from exc
    return graph


def dumps_graph(graph: Graph) -> bytes:
    return json.dumps(graph_to_json(graph), separators=(",", ":")).encode("utf-8")


def weights_to_bytes(weights: dict[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    # Not np.ascontiguousarray: it turns a 0-d weight (Gemma's embed_scale) into shape [1].
    return save({k: v if v.flags.c_contiguous else np.array(v, order="C") for k, v in weights.items()})


def weights_from_bytes(data: bytes) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    return {k: v.copy() for k, v in load(data).items()}

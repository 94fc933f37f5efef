"""Weight quantization: ``Linear`` nodes with a constant float32 weight become ``QLinear``, and
``Embedding`` tables become ``QEmbedding`` (int8, one scale per row, whatever the scheme: a
lookup reads a few rows, so only size matters there, and int8 keeps the table's error at ~1%).

Opt-in (not in ``DEFAULT_PASSES``): ``quantize_graph(graph, "int8")`` runs after the fusion
passes, so a fused Linear keeps its bias, activation and residual.  A layer stays float32 when

- its weight's name matches the skip list (fnmatch patterns; e.g. a classifier head), or
- the rule measures too much error: the relative Frobenius error of the dequantized weight,
  ``||W - deq(q(W))|| / ||W||``, is above the scheme's limit.  A weight with outliers (a few
  huge values stretch the scale of their row or block) is where this bites; the limits sit a few
  times above what well-behaved weights give (all-MiniLM-L6-v2: int8 per-channel 1-3.4%, its
  worst the token-type table; Q4_0 up to ~10%; Q8_0 ~0.5%, and never above 2.2%).

What happened to each layer goes in the report, and ``quantize_<scheme>`` in
``optimizations_applied`` only when at least one layer was quantized: a model with nothing to
quantize says so rather than calling itself quantized.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..graph import Graph, Node
from ..ops.quantized import SCHEMES, dequantize

# Relative Frobenius error of the dequantized weight above which a layer stays float32.
# q8_0's error is bounded by construction: half a step per value at most, the step is
# max|block| / 127, and a block's largest value alone holds >= 1/32 of its energy, so the error
# is <= sqrt(32) / 254 = 2.2% (~0.5% on Gaussian weights, 1.1-1.3% for blocks each dominated by
# one outlier).  0.02 keeps only a layer near that bound (nearly every value half a step off),
# which would not give the near-float32 result q8_0 is asked for.
MAX_WEIGHT_ERROR = {"int8": 0.05, "q4_0": 0.15, "q8_0": 0.02}
# Layers smaller than this many weights are not worth a quantized copy (and tiny heads are
# where the error shows most).
MIN_WEIGHTS = 256


class NothingToQuantize(ValueError):
    """The graph holds no Linear layer with a constant float32 weight."""


@dataclass
class QuantizeReport:
    scheme: str
    quantized: list[dict[str, Any]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)  # {"weight", "why"}
    bytes_before: int = 0  # the weights of the layers considered
    bytes_after: int = 0

    def as_dict(self) -> dict[str, Any]:
        worst = max((row["weight_error"] for row in self.quantized), default=0.0)
        return {"scheme": self.scheme, "layers_quantized": len(self.quantized), "layers_kept": self.kept,
                "worst_weight_error": worst, "linear_bytes_before": self.bytes_before,
                "linear_bytes_after": self.bytes_after}  # fmt: skip


def quantize_weight(w: np.ndarray, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """(q, scales) in the native library's layout for ``scheme``."""
    from skillmill import native

    if scheme == "int8":
        return native.quantize_int8(w)
    if scheme == "q4_0":
        return native.quantize_q4_0(w)
    if scheme == "q8_0":
        return native.quantize_q8_0(w)
    raise ValueError(f"unknown quantization scheme {scheme!r}; known: {', '.join(SCHEMES)}")


def weight_error(w: np.ndarray, q: np.ndarray, scales: np.ndarray, scheme: str) -> float:
    norm = float(np.linalg.norm(w))
    if norm == 0.0:
        return 0.0
    return float(np.linalg.norm(w - dequantize(q, scales, scheme, w.shape[1])) / norm)


def quantize_graph(graph: Graph, scheme: str, skip: tuple[str, ...] = (),
                   max_weight_error: float | None = None) -> tuple[Graph, QuantizeReport]:  # fmt: skip
    """(quantized copy, report).  Raises ``NothingToQuantize`` when no layer qualifies at all,
    ``ValueError`` for an unknown scheme."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    limit = MAX_WEIGHT_ERROR[scheme] if max_weight_error is None else float(max_weight_error)
    result = graph.copy()
    report = QuantizeReport(scheme)
    readers: dict[str, int] = {}
    for node in result.nodes:
        for name in node.inputs:
            readers[name] = readers.get(name, 0) + 1
    candidates = 0
    nodes = []
    for node in result.nodes:
        table = result.weights.get(node.inputs[0]) if node.op == "Embedding" else None
        if table is not None and table.dtype == np.float32 and table.ndim == 2:
            candidates += 1
            nodes.append(_quantize_embedding(result, node, skip, report, max_weight_error) or node)
            continue
        weight = node.inputs[1] if node.op == "Linear" and len(node.inputs) > 1 else None
        array = result.weights.get(weight) if weight else None
        if array is None or array.dtype != np.float32 or array.ndim != 2 or node.attrs.get("alpha", 1.0) != 1.0 \
                or node.attrs.get("beta", 1.0) != 1.0:  # fmt: skip
            nodes.append(node)
            continue
        candidates += 1
        report.bytes_before += array.nbytes
        why = _keep_reason(weight, array, skip)
        q = scales = None
        if why is None:
            q, scales = quantize_weight(array, scheme)
            error = weight_error(array, q, scales, scheme)
            if error > limit:
                why = f"weight error {error:.2e} > {limit:g} for {scheme}"
        if why is not None:
            report.kept.append({"weight": weight, "why": why})
            report.bytes_after += array.nbytes
            nodes.append(node)
            continue
        q_name, s_name = f"{weight}.{scheme}", f"{weight}.{scheme}_scales"
        result.weights[q_name], result.weights[s_name] = q, scales
        report.bytes_after += q.nbytes + scales.nbytes
        report.quantized.append({"weight": weight, "shape": list(array.shape), "weight_error": error})
        inputs = [node.inputs[0], q_name, s_name] + list(node.inputs[2:3])
        attrs = {"scheme": scheme, "in_features": int(array.shape[1]),
                 "activation": node.attrs.get("activation", "none")}  # fmt: skip
        residual = node.inputs[3] if len(node.inputs) > 3 else ""
        if residual:  # the int8 kernel has no residual epilogue: the add is a node of its own
            product = f"{node.outputs[0]}.qlinear"
            nodes.append(Node(node.name, "QLinear", inputs, [product], attrs))
            nodes.append(Node(f"{node.name}.residual", "Add", [product, residual], list(node.outputs)))
        else:
            nodes.append(Node(node.name, "QLinear", inputs, list(node.outputs), attrs))
    if candidates == 0:
        raise NothingToQuantize(f"{graph.name}: nothing to quantize: no Linear layer or Embedding table "
                                "with a constant float32 weight")  # fmt: skip
    result.nodes = nodes
    # A float32 weight no node reads any more is dropped, or the file would hold both copies.
    still_read = {name for node in result.nodes for name in node.inputs}
    for row in report.quantized:
        if row["weight"] not in still_read and row["weight"] not in result.outputs:
            result.weights.pop(row["weight"], None)
    if report.quantized:
        applied = list(result.metadata.get("optimizations_applied", []))
        result.metadata["optimizations_applied"] = applied + [f"quantize_{scheme}"]
    result.metadata["quantization"] = report.as_dict()
    return result, report


def _quantize_embedding(graph: Graph, node: Node, skip: tuple[str, ...], report: QuantizeReport,
                        max_weight_error: float | None) -> Node | None:  # fmt: skip
    """The QEmbedding for ``node``, or None when its table stays float32 (the report says why)."""
    limit = MAX_WEIGHT_ERROR["int8"] if max_weight_error is None else float(max_weight_error)
    table = node.inputs[0]
    q_name, s_name = f"{table}.int8", f"{table}.int8_scales"
    if q_name in graph.weights:  # a table several lookups read is quantized once
        return Node(node.name, "QEmbedding", [q_name, s_name, node.inputs[1]], list(node.outputs), {})
    array = graph.weights[table]
    report.bytes_before += array.nbytes
    why = _keep_reason(table, array, skip)
    if why is None:
        q, scales = quantize_weight(array, "int8")
        error = weight_error(array, q, scales, "int8")
        if error > limit:
            why = f"weight error {error:.2e} > {limit:g} for int8"
    if why is not None:
        if not any(row["weight"] == table for row in report.kept):
            report.kept.append({"weight": table, "why": why})
            report.bytes_after += array.nbytes
        return None
    graph.weights[q_name], graph.weights[s_name] = q, scales
    report.bytes_after += q.nbytes + scales.nbytes
    report.quantized.append({"weight": table, "shape": list(array.shape), "weight_error": error})
    return Node(node.name, "QEmbedding", [q_name, s_name, node.inputs[1]], list(node.outputs), {})


def _keep_reason(weight: str, array: np.ndarray, skip: tuple[str, ...]) -> str | None:
    for pattern in skip:
        if fnmatch.fnmatchcase(weight, pattern):
            return f"in the skip list ({pattern})"
    if array.size < MIN_WEIGHTS:
        return f"{array.size} weights < {MIN_WEIGHTS}: too small to be worth quantizing"
    if not np.isfinite(array).all():
        return "weight holds NaN or inf"
    return None

"""Dead-code elimination: nodes whose outputs nobody reads, unused optional outputs, and weights
no node uses."""

from __future__ import annotations

from ..graph import Graph
from ..ops import OPS


def eliminate_dead_code(graph: Graph) -> int:
    live = set(graph.outputs)
    kept = []
    removed = 0
    for node in reversed(graph.nodes):
        keep = node.op in OPS and OPS[node.op].keep  # runtime assertions stay
        if keep or any(out in live for out in node.outputs if out):
            if len(node.outputs) > 1:
                node.outputs = [out if out in live else "" for out in node.outputs]
            live.update(node.uses())
            kept.append(node)
        else:
            removed += 1
    graph.nodes = list(reversed(kept))
    for name in [w for w in graph.weights if w not in live]:
        del graph.weights[name]
    for name in [v for v in graph.value_info if v not in live]:
        del graph.value_info[name]
    return removed

"""Small graph-rewriting helpers shared by the passes."""

from __future__ import annotations

from typing import Any

from ..graph import Graph, Node, rename_in_attr


class Index:
    """Producer/consumer maps, rebuilt by a pass after each round of rewrites."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.producer = graph.producers()
        self.consumers = graph.consumers()
        self.outputs = set(graph.outputs)

    def only_use(self, value: str) -> Node | None:
        """The single consumer of ``value`` (None if several, none, or a graph output)."""
        users = self.consumers.get(value, [])
        if len(users) != 1 or value in self.outputs:
            return None
        return users[0]

    def single_use(self, value: str) -> bool:
        return value not in self.outputs and len(self.consumers.get(value, [])) == 1

    def made_by(self, value: str, *ops: str) -> Node | None:
        node = self.producer.get(value)
        return node if node is not None and node.op in ops else None


def replace_uses(graph: Graph, old: str, new: str) -> None:
    mapping = {old: new}
    for node in graph.nodes:
        if old in node.inputs:
            node.inputs = [new if i == old else i for i in node.inputs]
        if node.attrs:
            node.attrs = rename_in_attr(node.attrs, mapping)
    graph.outputs = [new if o == old else o for o in graph.outputs]


def scalar_attr(node: Node, key: str = "b") -> Any:
    """The python scalar of a tensor-op-scalar node, or None."""
    if len(node.inputs) != 1 or key not in node.attrs:
        return None
    value = node.attrs[key]
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def same_shape(graph: Graph, a: str, b: str) -> bool:
    sa, sb = graph.spec(a), graph.spec(b)
    if sa is None or sb is None or sa.shape is None or sb.shape is None:
        return False
    return sa.shape == sb.shape and "?" not in sa.shape and sa.dtype == sb.dtype

"""Canonicalisation: drop identities, same-dtype casts, no-op reshapes/expands, empty concat
operands, and collapse reshape chains, so that the fusion patterns see the maths and not the
export's bookkeeping."""

from __future__ import annotations

from ..graph import Graph, Node
from .rewrite import replace_uses, same_shape


def _is_noop(graph: Graph, node: Node) -> bool:
    if node.op == "Identity":
        return True
    if node.op == "Cast":
        spec = graph.spec(node.inputs[0])
        return spec is not None and spec.dtype == node.attrs.get("to")
    if node.op in ("Reshape", "Expand") and len(node.inputs) == 1:
        return same_shape(graph, node.inputs[0], node.outputs[0])
    if node.op == "Transpose":
        perm = node.attrs.get("perm")
        return perm is not None and list(perm) == list(range(len(perm)))
    return False


def _empty_along(graph: Graph, value: str, axis: int) -> bool:
    """``value`` has a static size of zero along ``axis`` (e.g. ``x[..., rotary_dim:]`` when the
    rotary part is the whole head: partial-rotary models concatenate that empty tail back)."""
    spec = graph.spec(value)
    if spec is None or not spec.shape:
        return False
    return spec.shape[axis % len(spec.shape)] == 0


def simplify(graph: Graph) -> int:
    """Rewrites in place; returns the number of nodes removed or rewritten."""
    changed = 0
    producers = graph.producers()
    kept: list[Node] = []
    protected = set(graph.outputs) | set(graph.inputs)
    for node in graph.nodes:
        if len(node.outputs) == 1 and node.outputs[0] not in protected and _is_noop(graph, node):
            replace_uses(graph, node.outputs[0], node.inputs[0])
            changed += 1
            continue
        if node.op == "Concat" and len(node.inputs) > 1:
            # an empty operand adds nothing, and backends without zero-size tensors (MAX) can't
            # even build it; its producer is then dead code
            full = [v for v in node.inputs if not _empty_along(graph, v, node.attrs.get("axis", 0))]
            if full and len(full) < len(node.inputs):
                changed += 1
                if len(full) == 1 and node.outputs[0] not in protected:
                    replace_uses(graph, node.outputs[0], full[0])
                    continue
                node.inputs = full
        if node.op == "Reshape" and len(node.inputs) == 1 and not node.attrs.get("copy_zero"):
            inner = producers.get(node.inputs[0])
            if inner is not None and inner.op == "Reshape" and len(inner.inputs) == 1 and not inner.attrs.get(
                "copy_zero"
            ):
                node.inputs = [inner.inputs[0]]
                changed += 1
        kept.append(node)
    graph.nodes = kept
    return changed

"""``fuse_gelu_tanh``: the tanh-approximated GELU written out as arithmetic -> one Gelu node.

GPT-2's ``NewGELUActivation`` (transformers' "gelu_new", also GPT-J, CodeGen, Phi, T5's gated
FFN and many others) is

    0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x ** 3)))

which torch.export hands over as eight elementwise nodes (Mul, Pow, Mul, Add, Mul, Tanh, Add,
Mul), each a numpy pass over the FFN's widest tensor: GPT-2's largest numpy cost in the native
sweep's profile.  As ``Gelu(approximate="tanh")`` it is one native activation, which
``fuse_linear`` then folds into the Linear before it.  The formula is the same; only float32
rounding differs (the sweep's 1e-4 parity bar holds it)."""

from __future__ import annotations

import math

from ..graph import Graph, Node
from .rewrite import Index, scalar_attr

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


def _near(value: float | None, want: float, rel: float = 1e-6) -> bool:
    return value is not None and abs(value - want) <= rel * abs(want)


def fuse_gelu_tanh(graph: Graph) -> int:
    fused = 0
    ix = Index(graph)
    for node in list(graph.nodes):
        if node.op != "Tanh":
            continue
        match = _match(graph, ix, node)
        if match is None:
            continue
        x, chain, last = match
        gelu = Node(
            last.name, "Gelu", [x], list(last.outputs), {"approximate": "tanh", "dtype": "float32"}
        )
        drop = {id(n) for n in chain}
        graph.nodes = [
            gelu if n is last else n for n in graph.nodes if id(n) not in drop or n is last
        ]
        fused += 1
        ix = Index(graph)
    return fused


def _match(graph: Graph, ix: Index, tanh: Node) -> tuple[str, list[Node], Node] | None:
    """(x, every node of the pattern, its last node) or None."""
    scale = ix.made_by(tanh.inputs[0], "Mul")
    if (
        scale is None
        or not _near(scalar_attr(scale), SQRT_2_OVER_PI)
        or not ix.single_use(scale.outputs[0])
    ):
        return None
    inner = ix.made_by(scale.inputs[0], "Add")
    if inner is None or len(inner.inputs) != 2 or not ix.single_use(inner.outputs[0]):
        return None
    for x, cubic_term in (inner.inputs, inner.inputs[::-1]):
        times = ix.made_by(cubic_term, "Mul")
        if times is None or not _near(scalar_attr(times), CUBIC) or not ix.single_use(cubic_term):
            continue
        cube = ix.made_by(times.inputs[0], "Pow")
        if (
            cube is None
            or scalar_attr(cube) != 3
            or cube.inputs[0] != x
            or not ix.single_use(cube.outputs[0])
        ):
            continue
        one_plus = ix.only_use(tanh.outputs[0])
        if one_plus is None or one_plus.op != "Add" or scalar_attr(one_plus) != 1.0:
            continue
        last = ix.only_use(one_plus.outputs[0])
        if last is None or last.op != "Mul" or len(last.inputs) != 2:
            continue
        half_name = last.inputs[0] if last.inputs[1] == one_plus.outputs[0] else last.inputs[1]
        half = ix.made_by(half_name, "Mul")
        if (
            half is None
            or scalar_attr(half) != 0.5
            or half.inputs[0] != x
            or not ix.single_use(half_name)
        ):
            continue
        spec = graph.spec(x)
        if spec is None or spec.dtype != "float32":
            continue
        if any(
            n.attrs.get("dtype") not in (None, "float32")
            for n in (scale, inner, times, cube, tanh, one_plus, last, half)
        ):
            continue
        return x, [half, cube, times, inner, scale, tanh, one_plus, last], last
    return None

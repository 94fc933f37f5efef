"""Self-attention with one fused q/k/v projection.

The encoder pattern after ``fuse_attention`` and ``fuse_linear``::

    q = Transpose(Reshape(Linear(x, Wq, bq), [B, S, H, D]), [0, 2, 1, 3])     (k, v alike)
    o = Transpose(Attention(q, k, v, mask), [0, 2, 1, 3])  -> only Reshapes read o

becomes ``qkv = Linear(x, [Wq; Wk; Wv], [bq; bk; bv])`` and ``QKVAttention(qkv, mask)`` with a
[B, S, H*D] result.  One GEMM replaces three (one weight pass, one kernel call), the kernel
reads the heads in place through strides, and the five transposed copies are gone.  The
Reshapes that read ``o`` read the new result instead: [B, S, H, D] and [B, S, H*D] are the same
bytes in the same order.  Afterwards ``fuse_linear`` runs again, so the output projection's
flatten/unflatten reshapes fold and its residual add fuses into it.
"""

from __future__ import annotations

import os

import numpy as np

from ..graph import Graph, Node, TensorSpec
from .fuse import fuse_linear
from .rewrite import Index

_HEADS_FIRST = [0, 2, 1, 3]


def fuse_qkv_attention(graph: Graph) -> int:
    fused = 0
    ix = Index(graph)
    for node in list(graph.nodes):
        match = _match(graph, ix, node) if node.op == "Attention" else None
        if match is None:
            continue
        _rewrite(graph, node, *match)
        fused += 1
        ix = Index(graph)
    if fused:
        fuse_linear(graph)
    return fused


def _projection(graph: Graph, ix: Index, value: str):
    """(linear, reshape, transpose, source x, [B, S, H, D]) for one of q/k/v, or None."""
    transpose = ix.made_by(value, "Transpose")
    if transpose is None or transpose.attrs.get("perm") != _HEADS_FIRST or not ix.single_use(value):
        return None
    reshape = ix.made_by(transpose.inputs[0], "Reshape")
    if reshape is None or len(reshape.inputs) != 1 or not ix.single_use(reshape.outputs[0]):
        return None
    linear = ix.made_by(reshape.inputs[0], "Linear")
    if linear is None or not ix.single_use(linear.outputs[0]) or len(linear.inputs) > 3:
        return None
    if linear.attrs.get("activation", "none") != "none" or linear.attrs.get("alpha", 1.0) != 1.0:
        return None
    if linear.attrs.get("beta", 1.0) != 1.0 or linear.inputs[1] not in graph.weights:
        return None
    split = graph.spec(reshape.outputs[0])
    if split is None or split.shape is None or len(split.shape) != 4 or split.dtype != "float32":
        return None
    source = linear.inputs[0]
    spec = graph.spec(source)
    if spec is not None and spec.shape is not None and len(spec.shape) == 2:
        flatten = ix.made_by(source, "Reshape")  # torch flattens [B, S, E] around addmm
        source = flatten.inputs[0] if flatten is not None and len(flatten.inputs) == 1 else source
        spec = graph.spec(source)
    if (
        spec is None
        or spec.shape is None
        or len(spec.shape) != 3
        or spec.shape[:2] != split.shape[:2]
    ):
        return None
    if "?" in spec.shape[:2] or not all(isinstance(d, int) for d in split.shape[2:]):
        return None
    return linear, reshape, transpose, source, split.shape


def _match(graph: Graph, ix: Index, attention: Node):
    parts = [_projection(graph, ix, value) for value in attention.inputs[:3]]
    if any(p is None for p in parts) or len({p[3] for p in parts}) != 1:
        return None
    if len({tuple(p[4]) for p in parts}) != 1:  # same heads and head size: no GQA here
        return None
    linears = [p[0] for p in parts]
    weights = [graph.weights[lin.inputs[1]] for lin in linears]
    biases = [lin.inputs[2] if len(lin.inputs) > 2 else "" for lin in linears]
    if (
        any(w.dtype != np.float32 or w.ndim != 2 for w in weights)
        or len({w.shape for w in weights}) != 1
    ):
        return None
    if any(biases) and not all(b in graph.weights and graph.weights[b].shape == (weights[0].shape[0],)
                               for b in biases):  # fmt: skip
        return None
    heads, head_dim = parts[0][4][2], parts[0][4][3]
    if heads * head_dim != weights[0].shape[0]:
        return None
    out = attention.outputs[0]
    back = ix.only_use(out)
    if back is None or back.op != "Transpose" or back.attrs.get("perm") != _HEADS_FIRST:
        return None
    readers = ix.consumers.get(back.outputs[0], [])
    if back.outputs[0] in ix.outputs or not readers or any(r.op != "Reshape" or r.inputs[0] != back.outputs[0]
                                                         for r in readers):  # fmt: skip
        return None
    return parts, back, readers, heads


def _fused_name(graph: Graph, names: list[str], suffix: str) -> str:
    prefix = os.path.commonprefix(names)
    stem = prefix[: prefix.rfind(".") + 1] + "qkv." + suffix if "." in prefix else f"{names[0]}.qkv"
    name, counter = stem, 1
    while name in graph.weights or name in graph.value_info:
        name, counter = f"{stem}_{counter}", counter + 1
    return name


def _rewrite(
    graph: Graph, attention: Node, parts, back: Node, readers: list[Node], heads: int
) -> None:
    linears = [p[0] for p in parts]
    source = parts[0][3]
    w_names = [lin.inputs[1] for lin in linears]
    weight = _fused_name(graph, w_names, "weight")
    graph.weights[weight] = np.ascontiguousarray(
        np.concatenate([graph.weights[w] for w in w_names])
    )
    inputs = [source, weight]
    if len(linears[0].inputs) > 2 and linears[0].inputs[2]:
        b_names = [lin.inputs[2] for lin in linears]
        bias = _fused_name(graph, b_names, "bias")
        graph.weights[bias] = np.ascontiguousarray(
            np.concatenate([graph.weights[b] for b in b_names])
        )
        inputs.append(bias)
    lead = list(graph.spec(source).shape[:2])
    width = graph.weights[weight].shape[0]
    qkv = graph.fresh_name(f"{attention.name}_qkv")
    context = graph.fresh_name(f"{attention.name}_context")
    graph.value_info[qkv] = TensorSpec("float32", lead + [width])
    graph.value_info[context] = TensorSpec("float32", lead + [width // 3])
    project = Node(qkv, "Linear", inputs, [qkv], {"activation": "none"})
    attrs = {
        "heads": heads,
        "scale": attention.attrs.get("scale"),
        "causal": bool(attention.attrs.get("causal")),
    }
    mask = attention.inputs[3:4] if len(attention.inputs) > 3 and attention.inputs[3] else []
    attend = Node(context, "QKVAttention", [qkv] + mask, [context], attrs)
    for reader in readers:
        reader.inputs = [context]
    removed = [n for p in parts for n in p[:3]] + [attention]
    drop = {id(n) for n in removed}
    nodes = []
    for node in graph.nodes:
        if node is back:
            nodes += [project, attend]
        elif id(node) not in drop:
            nodes.append(node)
    graph.nodes = nodes

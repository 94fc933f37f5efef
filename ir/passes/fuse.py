"""Fusion passes.  Each rewrites one pattern into one op-table node, placed where the pattern's
last node was (so every input is still defined before use), and returns how many it fused.

- ``fuse_linear``: MatMul(x, Transpose(W)) [through batch Expand/Reshape] or MatMul(x, W) with W
  a 2-D weight -> Linear; then + bias, then activation, then + residual into the same Linear.
- ``fuse_rms_norm``: w * (x * rsqrt(mean(x^2, -1) + eps)) -> RMSNorm (Gemma's (1 + w) too).
- ``fuse_attention``: softmax(q @ k^T * s + mask) @ v (with the batch reshapes torch inserts
  around bmm, and the fully-masked-row fix-up transformers adds) -> Attention.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Node
from .rewrite import Index, replace_uses, same_shape, scalar_attr

_ACTIVATIONS = {"Relu": "relu", "Silu": "silu", "Tanh": "tanh", "Sigmoid": "sigmoid"}


def _replace(graph: Graph, remove: list[Node], last: Node, fused: Node) -> None:
    """Drop ``remove`` nodes and put ``fused`` where ``last`` is."""
    drop = {id(n) for n in remove}
    nodes = []
    for node in graph.nodes:
        if node is last:
            nodes.append(fused)
        elif id(node) not in drop:
            nodes.append(node)
    graph.nodes = nodes


# -- linear -----------------------------------------------------------------------------------
def _weight_transpose(graph: Graph, ix: Index, value: str) -> str | None:
    """Weight W [N, K] when ``value`` is W^T, possibly expanded/reshaped with batch dims."""
    node = ix.producer.get(value)
    while node is not None and node.op in ("Reshape", "Expand") and len(node.inputs) == 1:
        spec_in, spec_out = graph.spec(node.inputs[0]), graph.spec(node.outputs[0])
        if spec_in is None or spec_out is None or spec_in.shape is None or spec_out.shape is None:
            return None
        if len(spec_in.shape) < 2 or spec_out.shape[-2:] != spec_in.shape[-2:]:
            return None
        if any(d != 1 for d in spec_in.shape[:-2]):
            return None
        node = ix.producer.get(node.inputs[0])
    if node is None or node.op != "Transpose":
        return None
    weight = node.inputs[0]
    array = graph.weights.get(weight)
    if array is None or array.ndim != 2 or node.attrs.get("perm") not in (None, [1, 0]):
        return None
    return weight


def fuse_linear(graph: Graph) -> int:
    fused = 0
    ix = Index(graph)
    for node in list(graph.nodes):
        if node.op != "MatMul" or node.attrs.get("dtype") not in (None, "float32"):
            continue
        x, b = node.inputs
        x_spec = graph.spec(x)
        if x_spec is None or x_spec.dtype != "float32":
            continue
        weight = _weight_transpose(graph, ix, b)
        if weight is None and b in graph.weights and graph.weights[b].ndim == 2:
            weight = f"{b}.T"
            if weight not in graph.weights:
                graph.weights[weight] = np.ascontiguousarray(graph.weights[b].T)
        if weight is None or graph.weights[weight].dtype != np.float32:
            continue
        if x_spec.shape is not None and len(x_spec.shape) < 1:
            continue
        linear = Node(node.name, "Linear", [x, weight], list(node.outputs), {"activation": "none"})
        _replace(graph, [], node, linear)
        fused += 1
    if fused:
        ix = Index(graph)
    # bias first (it may sit before the un-flattening reshape), then drop the reshape pair
    changed = True
    while changed:
        changed = False
        for node in list(graph.nodes):
            user = ix.only_use(node.outputs[0]) if node.op == "Linear" else None
            if user is not None and user.op == "Add" and len(node.inputs) == 2 and _absorb(graph, node, user):
                fused += 1
                changed = True
                ix = Index(graph)
                break
    fused += _fold_linear_reshapes(graph)
    ix = Index(graph)
    # bias, activation, residual: repeat until nothing changes
    changed = True
    while changed:
        changed = False
        for node in list(graph.nodes):
            if node.op != "Linear":
                continue
            out = node.outputs[0]
            user = ix.only_use(out)
            if user is None:
                continue
            step = _absorb(graph, node, user)
            if step:
                fused += 1
                changed = True
                ix = Index(graph)
                break
    return fused


def _fold_linear_reshapes(graph: Graph) -> int:
    """Reshape(Linear(Reshape(x, [-1, K])), x.shape[:-1] + [N]) -> Linear(x): torch flattens
    the batch dims around addmm; Linear takes any leading dims."""
    folded = 0
    ix = Index(graph)
    for node in list(graph.nodes):
        if node.op != "Linear":
            continue
        flatten = ix.made_by(node.inputs[0], "Reshape")
        after = ix.only_use(node.outputs[0])
        if flatten is None or after is None or after.op != "Reshape" or len(flatten.inputs) != 1:
            continue
        source = graph.spec(flatten.inputs[0])
        out = graph.spec(after.outputs[0])
        n_out = graph.weights[node.inputs[1]].shape[0]
        if source is None or out is None or source.shape is None or out.shape is None or "?" in source.shape:
            continue
        if out.shape != list(source.shape[:-1]) + [n_out]:
            continue
        fused = Node(node.name, "Linear", [flatten.inputs[0]] + node.inputs[1:], list(after.outputs),
                     dict(node.attrs))  # fmt: skip
        _replace(graph, [node], after, fused)
        folded += 1
        ix = Index(graph)
    return folded


def _absorb(graph: Graph, linear: Node, user: Node) -> bool:
    out = linear.outputs[0]
    n_out = graph.weights[linear.inputs[1]].shape[0]
    has_bias = len(linear.inputs) > 2 and linear.inputs[2]
    activation = linear.attrs.get("activation", "none")
    has_residual = len(linear.inputs) > 3
    if user.op == "Add" and len(user.inputs) == 2 and user.attrs.get("dtype") in (None, "float32"):
        other = user.inputs[1] if user.inputs[0] == out else user.inputs[0]
        if other == out:
            return False
        bias = graph.weights.get(other)
        if not has_bias and activation == "none" and not has_residual and bias is not None:
            if bias.dtype == np.float32 and bias.reshape(-1).shape == (n_out,) and bias.ndim <= 2:
                if bias.ndim == 2:
                    graph.weights[other] = np.ascontiguousarray(bias.reshape(-1))
                fused = Node(user.name, "Linear", [linear.inputs[0], linear.inputs[1], other],
                             list(user.outputs), dict(linear.attrs))  # fmt: skip
                _replace(graph, [linear], user, fused)
                return True
        if not has_residual and other not in graph.weights and same_shape(graph, other, user.outputs[0]) \
                and same_shape(graph, out, user.outputs[0]):  # fmt: skip
            inputs = list(linear.inputs) + ([""] if len(linear.inputs) == 2 else []) + [other]
            fused = Node(user.name, "Linear", inputs, list(user.outputs), dict(linear.attrs))
            _replace(graph, [linear], user, fused)
            return True
        return False
    if activation != "none" or has_residual:
        return False
    kind = None
    if user.op == "Gelu" and user.attrs.get("dtype") in (None, "float32"):
        kind = "gelu_tanh" if user.attrs.get("approximate") == "tanh" else "gelu"
    elif user.op in _ACTIVATIONS and user.attrs.get("dtype") in (None, "float32"):
        kind = _ACTIVATIONS[user.op]
    if kind is None:
        return False
    fused = Node(user.name, "Linear", list(linear.inputs), list(user.outputs),
                 {**linear.attrs, "activation": kind})  # fmt: skip
    _replace(graph, [linear], user, fused)
    return True


# -- RMSNorm ----------------------------------------------------------------------------------
def fuse_rms_norm(graph: Graph) -> int:
    fused = 0
    ix = Index(graph)
    for node in list(graph.nodes):
        match = _match_rms(graph, ix, node)
        if match is None:
            continue
        x, weight, eps, offset, chain = match
        inputs = [x] + ([weight] if weight else [])
        rms = Node(node.name, "RMSNorm", inputs, list(node.outputs), {"eps": eps, "offset": offset})
        _replace(graph, chain, node, rms)
        fused += 1
        ix = Index(graph)
    return fused


def _match_rms(graph: Graph, ix: Index, node: Node):
    """node = Mul(w, normed) with normed = Mul(x, Rsqrt(Add(ReduceMean(Pow(x, 2)), eps)))."""
    if node.op != "Mul" or len(node.inputs) != 2:
        return None
    for w_name, normed in (node.inputs, node.inputs[::-1]):
        offset = 0.0
        weight = w_name
        w_node = ix.made_by(w_name, "Add")
        if weight not in graph.weights and w_node is not None and scalar_attr(w_node) == 1.0 \
                and w_node.inputs[0] in graph.weights:  # fmt: skip
            weight, offset = w_node.inputs[0], 1.0
        if weight not in graph.weights or graph.weights[weight].ndim != 1:
            continue
        inner = ix.made_by(normed, "Mul")
        if inner is None or not ix.single_use(normed) or len(inner.inputs) != 2:
            continue
        for x, r in (inner.inputs, inner.inputs[::-1]):
            rsqrt = ix.made_by(r, "Rsqrt")
            if rsqrt is None or not ix.single_use(r):
                continue
            add = ix.made_by(rsqrt.inputs[0], "Add")
            eps = scalar_attr(add) if add is not None else None
            if eps is None or not ix.single_use(add.outputs[0]):
                continue
            mean = ix.made_by(add.inputs[0], "ReduceMean")
            if mean is None or mean.attrs.get("axes") not in ([-1],) or not mean.attrs.get("keepdims"):
                if mean is None or not _is_last_axis(graph, mean):
                    continue
            square = ix.made_by(mean.inputs[0], "Pow")
            if square is None or scalar_attr(square) != 2 or square.inputs[0] != x:
                square = ix.made_by(mean.inputs[0], "Mul")
                if square is None or square.inputs != [x, x]:
                    continue
            if not ix.single_use(mean.outputs[0]) or not ix.single_use(square.outputs[0]):
                continue
            spec = graph.spec(x)
            if spec is None or spec.dtype != "float32":
                continue
            chain = [square, mean, add, rsqrt, inner] + ([w_node] if offset else [])
            if offset and not ix.single_use(w_name):
                chain = chain[:-1]
            return x, weight, float(eps), offset, chain
    return None


def _is_last_axis(graph: Graph, mean: Node) -> bool:
    spec = graph.spec(mean.inputs[0])
    axes = mean.attrs.get("axes")
    if spec is None or spec.shape is None or not mean.attrs.get("keepdims") or not axes or len(axes) != 1:
        return False
    return axes[0] % len(spec.shape) == len(spec.shape) - 1


# -- batch-reshape folding around bmm, then attention ------------------------------------------
def fold_bmm_reshapes(graph: Graph) -> int:
    """Reshape(MatMul(Reshape(A4), Reshape(B4))) -> MatMul(A4, B4) when the reshapes only merge
    and split the two leading dims (what torch emits around bmm)."""
    folded = 0
    ix = Index(graph)
    for node in list(graph.nodes):
        if node.op != "MatMul":
            continue
        sources = []
        for value in node.inputs:
            reshape = ix.made_by(value, "Reshape")
            spec = graph.spec(reshape.inputs[0]) if reshape is not None else None
            if reshape is None or spec is None or spec.shape is None or len(spec.shape) != 4:
                break
            sources.append((reshape.inputs[0], spec))
        if len(sources) != 2:
            continue
        (a, sa), (b, sb) = sources
        if sa.shape[:2] != sb.shape[:2] and not (sb.shape[1] == 1 or sa.shape[1] == 1):
            continue
        if sa.shape[:2] != sb.shape[:2] or "?" in sa.shape[:2]:
            continue
        after = ix.only_use(node.outputs[0])
        if after is None or after.op != "Reshape":
            continue
        out_spec = graph.spec(after.outputs[0])
        want = list(sa.shape[:3]) + [sb.shape[3]]
        if out_spec is None or out_spec.shape != want:
            continue
        fused = Node(node.name, "MatMul", [a, b], list(after.outputs), dict(node.attrs))
        _replace(graph, [node], after, fused)
        folded += 1
        ix = Index(graph)
    return folded


def fuse_attention(graph: Graph) -> int:
    from .dce import eliminate_dead_code

    if fold_bmm_reshapes(graph):
        eliminate_dead_code(graph)  # the old reshapes would count as extra consumers
    fused = 0
    ix = Index(graph)
    for node in list(graph.nodes):
        match = _match_attention(graph, ix, node)
        if match is None:
            continue
        inputs, scale, chain, last = match
        attention = Node(last.name, "Attention", inputs, list(last.outputs), {"scale": scale, "causal": False})
        _replace(graph, chain, last, attention)
        fused += 1
        ix = Index(graph)
    return fused


def _strip_scale(ix: Index, value: str) -> tuple[str, float, list[Node]]:
    node = ix.made_by(value, "Mul", "Div")
    if node is not None and ix.single_use(value):
        c = scalar_attr(node)
        if c is not None and c != 0:
            return node.inputs[0], (c if node.op == "Mul" else 1.0 / c), [node]
    return value, 1.0, []


def _match_attention(graph: Graph, ix: Index, node: Node):
    """node = MatMul(P, V), P = Softmax(S [+ mask]) [fix-up], S = MatMul(Q, K^T) [* scale]."""
    if node.op != "MatMul":
        return None
    probs, v = node.inputs
    chain: list[Node] = []
    fixup = ix.made_by(probs, "Where")
    fix_nodes: list[Node] = []
    if fixup is not None and ix.single_use(probs):
        probs, fix_nodes = _match_fixup(graph, ix, fixup)
        if probs is None:
            return None
    soft = ix.made_by(probs, "Softmax")
    if soft is None or (not fix_nodes and not ix.single_use(probs)):
        return None
    if fix_nodes and len(ix.consumers.get(probs, [])) != 1 + (1 if _fullike_reads(fix_nodes, probs) else 0):
        return None
    scores = soft.inputs[0]
    spec = graph.spec(scores)
    if spec is None or spec.shape is None or len(spec.shape) != 4 or soft.attrs.get("axis", -1) % 4 != 3:
        return None
    chain += [soft] + fix_nodes
    mask = ""
    allowed_users = 1 + (1 if fix_nodes else 0)
    add = ix.made_by(scores, "Add")
    if add is not None and len(add.inputs) == 2 and len(ix.consumers.get(scores, [])) <= allowed_users:
        chain.append(add)
        product_scaled, mask = add.inputs
        if ix.made_by(product_scaled, "MatMul", "Mul", "Div") is None:
            product_scaled, mask = mask, product_scaled
    else:
        product_scaled = scores
    product, scale, scale_nodes = _strip_scale(ix, product_scaled)
    chain += scale_nodes
    qk = ix.made_by(product, "MatMul")
    if qk is None or not (ix.single_use(product) or product == scores):
        return None
    chain.append(qk)
    q, kt = qk.inputs
    q, q_scale, q_nodes = _strip_scale(ix, q)
    kt, k_scale, k_nodes = _strip_scale(ix, kt)
    transpose = ix.made_by(kt, "Transpose")
    if transpose is None or transpose.attrs.get("perm") != [0, 1, 3, 2] or not ix.single_use(kt):
        return None
    k = transpose.inputs[0]
    chain += q_nodes + k_nodes + [transpose]
    for value in (q, k, v):
        s = graph.spec(value)
        if s is None or s.shape is None or len(s.shape) != 4 or s.dtype != "float32":
            return None
    inputs = [q, k, v] + ([mask] if mask else [])
    return inputs, float(scale * q_scale * k_scale), chain, node


def _fullike_reads(nodes: list[Node], value: str) -> bool:
    return any(n.op == "FullLike" and n.inputs == [value] for n in nodes)


def _match_fixup(graph: Graph, ix: Index, where: Node):
    """Where(Not(Any(Not(Eq(S, -inf)))), 0, softmax(S)): rows with nothing to attend give 0."""
    if len(where.inputs) == 3:
        cond, zeros, probs = where.inputs
        zero_node = ix.made_by(zeros, "FullLike", "Full")
        if zero_node is None or zero_node.attrs.get("value") not in (0, 0.0):
            return None, []
        extra = [zero_node]
    elif len(where.inputs) == 2 and where.attrs.get("a") in (0, 0.0):
        cond, probs = where.inputs
        extra = []
    else:
        return None, []
    not2 = ix.made_by(cond, "Not")
    anyn = ix.made_by(not2.inputs[0], "ReduceAny") if not2 is not None else None
    not1 = ix.made_by(anyn.inputs[0], "Not") if anyn is not None else None
    eq = ix.made_by(not1.inputs[0], "Equal") if not1 is not None else None
    if eq is None or eq.attrs.get("b") != float("-inf"):
        return None, []
    return probs, [where, not2, anyn, not1, eq] + extra


def fuse_residual_adds(graph: Graph) -> int:
    """Count same-shape float adds (residual connections) that run on the native add kernel."""
    return sum(1 for n in graph.nodes if n.op == "Add" and len(n.inputs) == 2
               and same_shape(graph, n.inputs[0], n.inputs[1]))  # fmt: skip

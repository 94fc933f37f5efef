"""MAX lowerings of the ops mixture-of-experts routing produces: ``Sort`` (tokens ordered by
expert), ``Histc`` (tokens per expert), ``IndexPut`` / ``Scatter`` (inverse permutations,
scatter-backs) and ``GroupedMatMul`` (each expert's rows times its weight).

Everything here keeps static (or symbolic) shapes: where the IR's numpy reference picks rows by
data, the lowering computes every candidate and selects with masks, gathers and scatters, so no
output shape depends on tensor values.  Each lowering matches the reference in
``ir/ops/extended.py`` / ``ir/ops/shape.py`` exactly, tie order and duplicate writes included."""

from __future__ import annotations

from typing import Any

import numpy as np

from skillmill.ir.graph import Node

from .adapter import ops
from .lower_shape import _range_of, broadcast_dims, norm_axis, wrap_negative
from .lowering import FLOAT_TYPES, Lowering, MaxLoweringError, numpy_result_type


def _int64(lw: Lowering, value: Any) -> Any:
    """A dim (int or symbolic) as a 0-d int64 tensor."""
    return lw.scalar_tensor(value, "int64")


def _filled(lw: Lowering, value: Any, dtype: str, shape: list[Any]) -> Any:
    return ops.broadcast_to(lw.const(value, dtype), shape)


def _previous(lw: Lowering, t: Any, n: Any) -> Any:
    """t[i - 1] at each i of a rank-1 tensor (t[0] at 0): a gather, not a slice and concat, so a
    symbolic length stays the same ``Dim``."""
    return ops.gather(t, ops.max(_range_of(lw, n) - lw.const(1, "int64"), lw.const(0, "int64")), axis=0)


# -- Sort --------------------------------------------------------------------------------------
def _sort_keys(lw: Lowering, flat: Any) -> tuple[Any, Any | None]:
    """Keys MAX's argsort orders correctly, and the NaN mask for float input.  MAX 26.7's argsort
    returns garbage orders when NaNs are present, so NaN sorts as +inf here and the NaN mask
    later puts NaNs after (ascending) or before (descending) the real infinities, as numpy does."""
    dtype = lw.tdtype(flat)
    if dtype in FLOAT_TYPES:
        keys = lw.cast(flat, "float32") if dtype in ("float16", "bfloat16") else flat  # exact widening
        nan = ops.is_nan(keys)
        return ops.where(nan, lw.const(np.inf, lw.tdtype(keys)), keys), nan
    if dtype == "uint64":
        raise ValueError("uint64 sort keys do not fit int64")
    return lw.cast(flat, "int64"), None  # order-preserving for every other integer/bool type


def _stable_order(lw: Lowering, flat: Any, row_len: Any, descending: bool) -> Any:
    """Flat indices that sort each row of ``flat`` (rows of ``row_len`` consecutive elements)
    stably, as numpy's ``argsort(kind="stable")`` does.

    MAX's argsort is rank-1 and not documented as stable, so: (1) argsort all elements at once
    (any tie order); (2) number the runs of equal keys in that order (dense ranks < n, whatever
    the key values, so nothing overflows); (3) argsort the unique composite key
    (row, rank, NaN-ness, column), whose order is fully determined.  Two argsorts of n elements."""
    keys, nan = _sort_keys(lw, flat)
    first = ops.argsort(keys, ascending=not descending)
    ordered = ops.gather(keys, first, axis=0)
    n = lw.shape(flat)[0]
    starts_run = ops.not_equal(ordered, _previous(lw, ordered, n))  # position 0 equals itself: rank 0
    rank = ops.cumsum(lw.cast(starts_run, "int64"), axis=0)  # 0-based dense rank in sort order
    classes = _int64(lw, n)
    if nan is not None:  # NaN and inf share a run: split it, NaN last ascending / first descending
        is_nan = lw.cast(ops.gather(nan, first, axis=0), "int64")
        rank = rank * lw.const(2, "int64") + (lw.const(1, "int64") - is_nan if descending else is_nan)
        classes = classes * lw.const(2, "int64")
    row_len_t = _int64(lw, row_len)
    row, column = ops.floor_div(first, row_len_t), ops.mod(first, row_len_t)
    composite = (row * classes + rank) * row_len_t + column  # < 2 n^2: exact in int64
    return ops.gather(first, ops.argsort(composite, ascending=True), axis=0)


def _sort(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """(values, int64 indices) along ``axis``; ties keep their order (the reference's stable
    sort), NaN last ascending and first descending."""
    x = lw.tensor(node.inputs[0])
    rank = len(x.shape)
    if rank == 0:
        return [x, lw.const(0, "int64")]
    axis = norm_axis(int(attrs.get("axis", -1)), rank)
    descending = bool(attrs.get("descending", False))
    perm = [a for a in range(rank) if a != axis] + [axis]  # the sorted axis last, rows contiguous
    moved = ops.permute(x, perm) if axis != rank - 1 else x
    row_len = lw.shape(moved)[-1]
    flat = ops.reshape(moved, [-1])
    order = _stable_order(lw, flat, row_len, descending)
    values = ops.reshape(ops.gather(flat, order, axis=0), moved.shape)
    indices = ops.reshape(ops.mod(order, _int64(lw, row_len)), moved.shape)
    if axis != rank - 1:
        back = [perm.index(a) for a in range(rank)]
        values, indices = ops.permute(values, back), ops.permute(indices, back)
    return [values, indices]


# -- Histc -------------------------------------------------------------------------------------
def _histc_range(lw: Lowering, node: Node, values: Any, attrs: dict[str, Any]) -> tuple[Any, Any]:
    """(low, high) as float64 scalars: the attributes, or the data's range when both are 0;
    an empty range widens by 1 each side."""
    low, high = attrs.get("min", 0.0), attrs.get("max", 0.0)
    low, high = (0.0 if low is None else low), (0.0 if high is None else high)
    if not all(isinstance(v, (int, float, np.integer, np.floating)) for v in (low, high)):
        raise MaxLoweringError(node.op, node.name, f"histc range must be constant numbers, got {low!r}, {high!r}")
    low, high = float(low), float(high)
    if low == 0.0 and high == 0.0:  # the data's range, known only at run time
        low_t, high_t = ops.min(values, axis=0), ops.max(values, axis=0)
        empty = ops.equal(low_t, high_t)
        one = lw.const(1.0, "float64")
        return ops.where(empty, low_t - one, low_t), ops.where(empty, high_t + one, high_t)
    if low == high:
        low, high = low - 1.0, high + 1.0
    return lw.const(low, "float64"), lw.const(high, "float64")


def _histc(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """torch.histc over the flattened input, in float64 as the reference computes it; counts
    by comparing each value's bin with every bin (n x bins booleans: bins is small, an expert
    count in MoE routing) rather than a scatter-add whose float accumulation order varies."""
    x = lw.tensor(node.inputs[0])
    bins = int(attrs.get("bins", 100))
    values = lw.cast(ops.reshape(x, [-1]), "float64")
    low, high = _histc_range(lw, node, values, attrs)
    inside = ops.logical_and(ops.greater_equal(values, low), ops.greater_equal(high, values))  # NaN: outside
    safe = ops.where(inside, values, low)  # outside values never reach the int cast
    scaled = (safe - low) / (high - low) * lw.const(float(bins), "float64")
    index = ops.min(lw.cast(scaled, "int64"), lw.const(bins - 1, "int64"))  # >= 0: truncation is floor
    hit = ops.logical_and(ops.equal(ops.unsqueeze(index, 1), ops.unsqueeze(_range_of(lw, bins), 0)),
                          ops.unsqueeze(inside, 1))  # fmt: skip
    counts = ops.reshape(ops.sum(lw.cast(hit, "int64"), axis=0), [bins])
    return [lw.cast(counts, lw.tdtype(x))]


# -- GroupedMatMul -----------------------------------------------------------------------------
def _row_groups(lw: Lowering, offs: Any, rows: Any) -> Any:
    """For each row r of x, the group whose rows offs[g-1] <= r < offs[g] write it last (the
    reference loops over groups in order), or -1 when none does (rows past the last offset).
    Exact for any offsets, also non-monotone ones; [S, G] comparisons."""
    ends = lw.cast(ops.reshape(offs, [-1]), "int64")
    count = lw.shape(ends)[0]
    first = ops.equal(_range_of(lw, count), lw.const(0, "int64"))
    starts = ops.where(first, lw.const(0, "int64"), _previous(lw, ends, count))
    r = ops.unsqueeze(_range_of(lw, rows), 1)
    covered = ops.logical_and(ops.greater_equal(r, ops.unsqueeze(starts, 0)), ops.greater(ops.unsqueeze(ends, 0), r))
    group_ids = ops.unsqueeze(_range_of(lw, count), 0)
    return ops.reshape(ops.max(ops.where(covered, group_ids, lw.const(-1, "int64")), axis=1), [rows])


def _grouped_matmul(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """x[S, K] row groups (cumulative ``offs``) times weight[E, K, N]; rows in no group are 0.

    Chosen: every row times every expert ([E, S, N], one batched matmul), then each row takes
    its own expert's result.  Costs E times the grouped FLOPs and an E*S*N buffer; the
    alternative, gathering each row's weight, needs an S*K*N buffer, larger whenever K > E
    (always in MoE), and a batched matvec that runs slower than one dense matmul."""
    x, weight, offs = (lw.tensor(n) for n in node.inputs[:3])
    dtype = numpy_result_type(lw.tdtype(x), lw.tdtype(weight))
    x, weight = lw.cast(x, dtype), lw.cast(weight, dtype)
    experts, groups = lw.shape(weight)[0], lw.shape(ops.reshape(offs, [-1]))[0]
    if isinstance(experts, int) and isinstance(groups, int) and groups > experts:
        raise MaxLoweringError(node.op, node.name, f"{groups} offsets but only {experts} expert weights")
    rows = lw.shape(x)[0]
    group = _row_groups(lw, offs, rows)
    every = ops.matmul(ops.broadcast_to(ops.unsqueeze(x, 0), [experts, *lw.shape(x)]), weight)  # [E, S, N]
    flat = ops.reshape(every, [-1, lw.shape(weight)[-1]])  # row e * S + r: expert e on row r
    pick = ops.max(group, lw.const(0, "int64")) * _int64(lw, rows) + _range_of(lw, rows)
    taken = ops.gather(flat, pick, axis=0)
    return [ops.where(ops.unsqueeze(ops.greater_equal(group, lw.const(0, "int64")), 1), taken, lw.const(0, dtype))]


# -- IndexPut / Scatter ------------------------------------------------------------------------
def _last_write(lw: Lowering, base: Any, updates: Any, coords: Any) -> Any:
    """``base`` with ``base[coords[i]] = updates[i]`` (coords [M, k] index base's leading k
    dims; updates [M, *base.shape[k:]]), the LAST i winning where coords repeat, as numpy's
    sequential assignment does (MAX's scatter leaves duplicates unordered).  The winner per
    target is a scatter-max of update numbers; then a gather and a where."""
    k = lw.shape(coords)[-1]
    target = lw.shape(base)[:k]
    numbers = _range_of(lw, lw.shape(coords)[0])
    winner = ops.scatter_nd_max(_filled(lw, -1, "int64", target), numbers, coords)
    taken = ops.gather(updates, ops.max(winner, lw.const(0, "int64")), axis=0)
    written = ops.greater_equal(winner, lw.const(0, "int64"))
    written = ops.reshape(written, [*target] + [1] * (len(base.shape) - k))
    return ops.where(written, taken, base)


def _index_put(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """torch ``x[..., idx, ...] = values`` (or ``+=`` with ``accumulate``): the indexed dims move
    to the front, the values are laid out as numpy's indexing result [B..., rest...] and written
    with one scatter over the leading dims."""
    x = lw.tensor(node.inputs[0])
    rank = len(x.shape)
    positions = [norm_axis(int(p), rank) for p in attrs.get("positions") or []]
    indices = [lw.tensor(n) for n in node.inputs[1:-1]]
    if any(lw.tdtype(i) == "bool" for i in indices):
        raise MaxLoweringError(node.op, node.name, "boolean-mask index_put: the written count depends on the data")
    if not positions or len(set(positions)) != len(positions) or len(positions) != len(indices):
        raise MaxLoweringError(node.op, node.name, f"index positions {positions} for {len(indices)} indices")
    accumulate = bool(attrs.get("accumulate", False))
    if accumulate and lw.tdtype(x) == "bool":
        raise MaxLoweringError(node.op, node.name, "accumulating index_put on bool (numpy's logical or)")
    pairs = sorted(zip(positions, indices), key=lambda p: p[0])
    positions = [p for p, _ in pairs]
    rest = [a for a in range(rank) if a not in positions]
    moved = ops.permute(x, positions + rest)
    dims = lw.shape(x)
    batch = broadcast_dims(lw, [i for _, i in pairs])
    coords = ops.stack([ops.broadcast_to(wrap_negative(lw, i, dims[p]), batch) for p, i in pairs], axis=-1)
    updates = _updates_in_front(lw, lw.cast(lw.tensor(node.inputs[-1]), lw.tdtype(x)), dims, positions, rest, batch)
    coords = ops.reshape(coords, [-1, len(positions)])
    updates = ops.reshape(updates, [-1, *[dims[a] for a in rest]])
    out = ops.scatter_nd_add(moved, updates, coords) if accumulate else _last_write(lw, moved, updates, coords)
    order = positions + rest
    return [ops.permute(out, [order.index(a) for a in range(rank)])]


def _updates_in_front(lw: Lowering, values: Any, dims: list[Any], positions: list[int], rest: list[int],
                      batch: list[Any]) -> Any:  # fmt: skip
    """``values`` broadcast to numpy's result shape of ``x[index]`` and permuted to
    [batch..., rest...]: numpy puts the broadcast index dims where the first indexed dim was
    when the indexed dims are adjacent, else in front."""
    adjacent = positions == list(range(positions[0], positions[-1] + 1))
    if not adjacent or positions[0] == 0:
        return ops.broadcast_to(values, [*batch, *[dims[a] for a in rest]])
    before = [dims[a] for a in rest if a < positions[0]]
    after = [dims[a] for a in rest if a > positions[-1]]
    laid_out = ops.broadcast_to(values, [*before, *batch, *after])
    nb, nbefore = len(batch), len(before)
    perm = list(range(nbefore, nbefore + nb)) + list(range(nbefore)) + list(range(nbefore + nb, len(laid_out.shape)))
    return ops.permute(laid_out, perm)


_SCATTER_REDUCE = {"add": ops.scatter_nd_add, "sum": ops.scatter_nd_add, "mul": ops.scatter_nd_mul,
                   "prod": ops.scatter_nd_mul, "multiply": ops.scatter_nd_mul, "max": ops.scatter_nd_max,
                   "min": ops.scatter_nd_min}  # fmt: skip


def _scatter(lw: Lowering, node: Node, args: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """torch.scatter / scatter_add / scatter_reduce: element i of ``index`` names the ``dim``
    coordinate and its own position the others; written (last one wins) or reduced into x."""
    x = lw.tensor(node.inputs[0])
    rank = len(x.shape)
    dim = norm_axis(int(attrs.get("dim", 0)), rank)
    reduce = attrs.get("reduce")
    if reduce is not None and reduce not in _SCATTER_REDUCE:
        raise MaxLoweringError(node.op, node.name, f"scatter reduce {reduce!r}")
    index = lw.tensor(node.inputs[1])
    shape = lw.shape(index)
    src = ops.broadcast_to(lw.cast(lw.tensor(node.inputs[2]), lw.tdtype(x)), shape)
    grids = []
    for axis in range(rank):
        if axis == dim:
            grids.append(wrap_negative(lw, index, lw.shape(x)[dim]))
            continue
        view = [1] * rank
        view[axis] = shape[axis]
        grids.append(ops.broadcast_to(ops.reshape(_range_of(lw, shape[axis]), view), shape))
    coords = ops.reshape(ops.stack(grids, axis=-1), [-1, rank])
    updates = ops.reshape(src, [-1])
    if reduce is None:
        return [_last_write(lw, x, updates, coords)]
    return [_SCATTER_REDUCE[reduce](x, updates, coords)]


TABLE: dict[str, Any] = {
    "Sort": _sort, "Histc": _histc, "GroupedMatMul": _grouped_matmul, "IndexPut": _index_put,
    "Scatter": _scatter,
}  # fmt: skip

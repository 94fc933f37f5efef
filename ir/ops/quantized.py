"""Linear layers whose weight is stored quantized (``ir/passes/quantize.py`` writes them).

``QLinear(x, q, scales[, bias[, residual]])`` computes ``act(x @ W.T + b) [+ residual]`` with
``W`` the weight the scheme stores:

- ``int8``: ``q`` int8 [out, in], one float32 scale per output channel (symmetric); the
  activations are quantized too, per token at run time (``quantize_per_token``), and the
  product is exact int32 arithmetic scaled back: the native kernel's definition
  (``skillmill.native.linear_int8_dynamic``), which this reference reproduces.
- ``q4_0``: ``q`` uint8 [out, ceil(in/32), 16], two 4-bit values a byte, one float32 scale per
  32-value block (ggml's Q4_0 layout: value = (nibble - 8) * scale).
- ``q8_0``: ``q`` int8 [out, ceil(in/32), 32], one float32 scale per 32-value block (ggml's
  Q8_0 idea: scale = max|block| / 127, value = q * scale); weight-only, like q4_0.

``QEmbedding(q, scales, ids)`` is ``Embedding`` over an int8 table with one scale per row: only
the rows looked up are dequantized.

For q4_0 and q8_0 the numpy reference dequantizes and runs ``Linear``'s reference, so every
kernel that runs a QLinear is checked against exactly the weight the file stores.  The layouts
are the native library's (``skillmill.native.quantize_int8`` / ``quantize_q4_0`` /
``quantize_q8_0``), which make them.
"""

from __future__ import annotations

import numpy as np

from ..graph import TensorSpec
from .base import OpDef
from .nn import ACTIVATIONS, _linear

SCHEMES = ("int8", "q4_0", "q8_0")
Q4_BLOCK = 32
Q8_BLOCK = 32


def dequantize(q: np.ndarray, scales: np.ndarray, scheme: str, in_features: int) -> np.ndarray:
    """The float32 [out, in] weight a quantized one stands for."""
    if scheme == "int8":
        return q.astype(np.float32) * scales.astype(np.float32)[:, None]
    if scheme == "q4_0":
        nibbles = np.stack([q & 15, q >> 4], axis=-1).reshape(q.shape[0], q.shape[1], Q4_BLOCK)
        w = (nibbles.astype(np.float32) - 8.0) * scales.astype(np.float32)[:, :, None]
        return np.ascontiguousarray(w.reshape(q.shape[0], -1)[:, :in_features])
    if scheme == "q8_0":
        w = q.astype(np.float32) * scales.astype(np.float32)[:, :, None]
        return np.ascontiguousarray(w.reshape(q.shape[0], -1)[:, :in_features])
    raise ValueError(f"unknown quantization scheme {scheme!r}; known: {', '.join(SCHEMES)}")


def check_quantized_layers(graph) -> None:
    """Every QLinear's weight, as a file holds it, matches its scheme's layout: a damaged or
    hand-edited artifact is refused at load, not handed to a kernel."""
    for node in graph.nodes:
        if node.op == "QEmbedding":
            q, scales = (graph.weights.get(name) for name in node.inputs[:2])
            if q is None or scales is None or q.dtype != np.int8 or q.ndim != 2 or scales.dtype != np.float32 \
                    or scales.shape != q.shape[:1] or not np.isfinite(scales).all():  # fmt: skip
                raise ValueError(f"QEmbedding {node.name!r}: needs a constant int8 [rows, dim] table and "
                                 "finite float32 scales [rows]")  # fmt: skip
            continue
        if node.op != "QLinear":
            continue
        scheme, k = node.attrs.get("scheme"), node.attrs.get("in_features")
        q = graph.weights.get(node.inputs[1]) if len(node.inputs) > 2 else None
        scales = graph.weights.get(node.inputs[2]) if len(node.inputs) > 2 else None
        where = f"QLinear {node.name!r}"
        if scheme not in SCHEMES or not isinstance(k, int) or k < 1:
            raise ValueError(f"{where}: scheme {scheme!r} / in_features {k!r} are not a known layout")
        if q is None or scales is None:
            raise ValueError(f"{where}: its quantized weight and scales must be constants")
        if scales.dtype != np.float32 or not np.isfinite(scales).all():
            raise ValueError(f"{where}: scales must be finite float32, got {scales.dtype}")
        if scheme == "int8":
            want_q, want_s, dtype = (q.shape[0], k), (q.shape[0],), np.int8
        elif scheme == "q4_0":
            blocks = -(-k // Q4_BLOCK)
            want_q, want_s, dtype = (q.shape[0], blocks, 16), (q.shape[0], blocks), np.uint8
        else:
            blocks = -(-k // Q8_BLOCK)
            want_q, want_s, dtype = (q.shape[0], blocks, Q8_BLOCK), (q.shape[0], blocks), np.int8
        if q.dtype != dtype or q.shape != want_q or scales.shape != want_s:
            raise ValueError(f"{where}: {scheme} weight must be {np.dtype(dtype).name}{list(want_q)} with "
                             f"scales float32{list(want_s)}, got {q.dtype}{list(q.shape)} and "
                             f"{scales.dtype}{list(scales.shape)}")  # fmt: skip


def quantize_per_token(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(xq int8, xs float32[rows]): xs = max|x| / 127 per row, xq = rint(x / xs) (half to
    even) clipped to [-127, 127], in float32 as the kernel computes it; a zero row gives xs 0
    and zeros; a row with NaN or inf gives xs NaN (its outputs are NaN)."""
    rows = np.asarray(x, np.float32).reshape(-1, x.shape[-1])
    amax = np.abs(rows).max(axis=1) if rows.shape[1] else np.zeros(rows.shape[0], np.float32)
    xs = (amax / np.float32(127)).astype(np.float32)
    bad = ~np.isfinite(rows).all(axis=1)
    safe = np.where(xs > 0, xs, np.float32(1)).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        xq = np.rint(np.clip(rows / safe[:, None], np.float32(-127), np.float32(127)))
    xq[~(xs > 0) | bad] = 0
    return xq.astype(np.int8), np.where(bad, np.float32(np.nan), xs).astype(np.float32)


def _int8_dynamic(x: np.ndarray, q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """act-free product of the int8 scheme: (float32(acc) * xs) * scales, acc exact."""
    xq, xs = quantize_per_token(x)
    acc = xq.astype(np.float64) @ q.astype(np.float64).T  # exact: integers far below 2**53
    with np.errstate(invalid="ignore"):
        out = (acc.astype(np.float32) * xs[:, None]) * scales.astype(np.float32)[None, :]
    return out.reshape(x.shape[:-1] + (q.shape[0],))


def _qlinear(inputs, scheme="int8", in_features=0, activation="none"):
    x, q, scales = np.asarray(inputs[0]), np.asarray(inputs[1]), np.asarray(inputs[2])
    if scheme == "int8":
        y = _int8_dynamic(x, q, scales)
        if len(inputs) > 3 and inputs[3] is not None:
            y = y + inputs[3]
        y = ACTIVATIONS[activation](y)
        if len(inputs) > 4 and inputs[4] is not None:
            y = y + inputs[4]
        return y
    weight = dequantize(q, scales, scheme, int(in_features))
    return _linear([x, weight, *inputs[3:]], activation=activation)


def _qlinear_infer(specs, scheme="int8", in_features=0, activation="none"):
    x, q = specs[0], specs[1]
    if x is None or q is None or x.shape is None or q.shape is None:
        return [None]
    return [TensorSpec(x.dtype, list(x.shape[:-1]) + [q.shape[0]])]


def _qembedding(inputs):
    q, scales, ids = np.asarray(inputs[0]), np.asarray(inputs[1]), np.asarray(inputs[2])
    if ids.size and (ids.min() < 0 or ids.max() >= q.shape[0]):
        raise ValueError(f"embedding ids must lie in [0, {q.shape[0]}), got {ids.min()}..{ids.max()}")
    return q[ids].astype(np.float32) * scales[ids][..., None]


def _qembedding_infer(specs):
    q, ids = specs[0], specs[2]
    if q is None or ids is None or q.shape is None or ids.shape is None:
        return [None]
    return [TensorSpec("float32", list(ids.shape) + list(q.shape[1:]))]


def build() -> dict[str, OpDef]:
    embedding = OpDef("QEmbedding", _qembedding, _qembedding_infer,
                      doc="rows ids of an int8 table (q int8 [rows, dim], scales float32 [rows]), dequantized")
    op = OpDef("QLinear", _qlinear, _qlinear_infer,
               doc="act(x @ W.T + b) [+ residual] with W stored quantized: scheme int8 (q int8 [out, in], "
                   "scale per row), q4_0 (q uint8 [out, blocks, 16], scale per 32-value block) or q8_0 "
                   "(q int8 [out, blocks, 32], scale per 32-value block)")  # fmt: skip
    return {op.name: op, embedding.name: embedding}

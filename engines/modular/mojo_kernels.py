"""Which IR nodes the Mojo kernels take, the render context for templates/mojo/, and the Python
side of each kernel (argument blocks, packing, output buffers).

A node is taken when its kernel's contract holds statically (float32, the normalised dim is the
last one and known, the weight is a graph constant, ...); every other node stays on the
executor's native/numpy kernels.  At run time a kernel also checks its inputs and hands back
``None`` for anything outside the contract, so the reference runs instead (never a wrong result).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from skillmill.ir.graph import Graph, Node

ACTIVATIONS = {"none": 0, "relu": 1, "gelu": 2, "gelu_tanh": 3, "silu": 4, "tanh": 5, "sigmoid": 6}
F32 = np.dtype(np.float32)


def simd_width() -> int:
    """float32 lanes of the widest vector unit here (AVX-512 16, AVX2/NEON-pair 8, else 4)."""
    from skillmill.runtime.cpu_features import cpu_features

    features = cpu_features()
    if features.get("avx512f"):
        return 16
    if features.get("avx2"):
        return 8
    return 4


@dataclass
class KernelPlan:
    """What to render (per kernel family, one entry per distinct specialisation) and which node
    runs which kernel."""

    linear: dict[str, dict[str, Any]] = field(default_factory=dict)
    layer_norm: dict[str, dict[str, Any]] = field(default_factory=dict)
    attention: dict[str, dict[str, Any]] = field(default_factory=dict)
    softmax: bool = False
    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)  # node -> (family, kernel name)

    def kernel_names(self) -> list[str]:
        names = list(self.linear) + list(self.layer_norm) + list(self.attention)
        return names + (["softmax_rows"] if self.softmax else [])

    def context(self, model_name: str, width: int) -> dict[str, Any]:
        body = {"dtype": "float32", "simd_width": width, "mr": micro_rows(width),
                "linear": list(self.linear.values()), "layer_norm": list(self.layer_norm.values()),
                "attention": list(self.attention.values()), "softmax": self.softmax,
                "kernel_names": self.kernel_names()}  # fmt: skip
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        return {**body, "model_name": model_name, "module_name": f"skm_{digest}"}


def _spec(graph: Graph, name: str) -> Any:
    return graph.spec(name) if name else None


def _static_last(graph: Graph, name: str) -> int | None:
    spec = _spec(graph, name)
    if spec is None or spec.shape is None or not spec.shape or spec.dtype != "float32":
        return None
    last = spec.shape[-1]
    return last if isinstance(last, int) else None


def plan_kernels(graph: Graph, width: int) -> KernelPlan:
    """Choose the nodes the Mojo kernels run and the specialisations to render for SIMD
    ``width`` (float32 lanes).  Every width takes the same nodes: a Linear's N need not be a
    whole number of 2 * width panels."""
    plan = KernelPlan()
    for node in graph.nodes:
        choice = _choose(graph, node, plan)
        if choice is not None:
            plan.nodes[node.name] = choice
    return plan


def _choose(graph: Graph, node: Node, plan: KernelPlan) -> tuple[str, str] | None:
    if node.op == "Linear":
        w = graph.weights.get(node.inputs[1])
        act = node.attrs.get("activation", "none")
        if (w is None or w.ndim != 2 or w.dtype != F32 or act not in ACTIVATIONS
                or node.attrs.get("alpha", 1.0) != 1.0 or node.attrs.get("beta", 1.0) != 1.0
                or _static_last(graph, node.inputs[0]) != w.shape[1]):  # fmt: skip
            return None
        n, k = w.shape
        has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
        has_res = len(node.inputs) > 3 and bool(node.inputs[3])
        name = f"linear_k{k}_n{n}_{act}{'_b' if has_bias else ''}{'_r' if has_res else ''}"
        # any N: the kernel computes the last, partial panel over its padded width and stores
        # only the valid columns, so its output and residual are [M, N] as they are
        plan.linear[name] = {"name": name, "K": k, "N": n, "activation": act, "act": ACTIVATIONS[act],
                             "has_bias": has_bias, "has_res": has_res}  # fmt: skip
        return "linear", name
    if node.op == "LayerNorm":
        if any(node.outputs[1:]):
            return None
        h = _static_last(graph, node.inputs[0])
        axis = node.attrs.get("axis", -1)
        spec = _spec(graph, node.inputs[0])
        if h is None or (axis != -1 and axis != len(spec.shape) - 1):
            return None
        eps = float(node.attrs.get("eps", 1e-5))
        has_w = len(node.inputs) > 1 and bool(node.inputs[1])
        has_b = len(node.inputs) > 2 and bool(node.inputs[2])
        for index in (1, 2):
            if len(node.inputs) > index and node.inputs[index]:
                other = _spec(graph, node.inputs[index])
                if other is None or other.shape != [h] or other.dtype != "float32":
                    return None
        tag = hashlib.sha256(repr(eps).encode()).hexdigest()[:6]
        name = f"layer_norm_h{h}_e{tag}{'_w' if has_w else ''}{'_b' if has_b else ''}"
        plan.layer_norm[name] = {"name": name, "H": h, "eps": repr(eps), "has_w": has_w, "has_b": has_b}
        return "layer_norm", name
    if node.op == "Softmax":
        spec = _spec(graph, node.inputs[0])
        axis = node.attrs.get("axis", -1)
        if (spec is None or spec.dtype != "float32" or spec.shape is None or node.attrs.get("dtype")
                or axis not in (-1, len(spec.shape) - 1)):  # fmt: skip
            return None
        plan.softmax = True
        return "softmax", "softmax_rows"
    if node.op in ("Attention", "QKVAttention"):
        if node.op == "Attention":
            d = _static_last(graph, node.inputs[0])
            heads = None
        else:
            e3 = _static_last(graph, node.inputs[0])
            heads = int(node.attrs.get("heads", 1))
            d = e3 // 3 // heads if e3 and e3 % (3 * heads) == 0 else None
        if d is None:
            return None
        scale = node.attrs.get("scale")
        scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
        causal = bool(node.attrs.get("causal", False))
        tag = hashlib.sha256(repr(scale).encode()).hexdigest()[:6]
        name = f"attention_d{d}_s{tag}{'_causal' if causal else ''}"
        plan.attention[name] = {"name": name, "D": d, "scale": repr(scale), "causal": causal}
        return ("qkv_attention" if node.op == "QKVAttention" else "attention"), name
    return None


# -- the Python side of each kernel ----------------------------------------------------------
def _addr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _c32(a: Any) -> np.ndarray | None:
    if not isinstance(a, np.ndarray) or a.dtype != F32:
        return None
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def micro_rows(width: int) -> int:
    """Rows of the Linear microkernel: MR x 2 accumulators + 2 B vectors + 1 broadcast fit the
    16 vector registers of AVX2 (MR 6) or the 32 of AVX-512 (MR 8)."""
    return 6 if width <= 8 else 8


def pack_weight(w: np.ndarray, nr: int) -> np.ndarray:
    """w [N, K] -> column panels wp[ceil(N / nr)][K][nr] of w.T, zero-padded."""
    n, k = w.shape
    panels = -(-n // nr)
    padded = np.zeros((panels * nr, k), dtype=F32)
    padded[:n] = w
    return np.ascontiguousarray(padded.reshape(panels, nr, k).transpose(0, 2, 1))


def linear_kernel(fn: Callable, spec: dict[str, Any], weight: np.ndarray, nr: int) -> Callable:
    """The Python side of one rendered Linear kernel: the weight packed into ``nr``-column
    panels once; each call writes y [M, N] directly (bias and residual read as they are)."""
    k, n = spec["K"], spec["N"]
    packed = pack_weight(weight, nr)

    def run(args: list[Any], attrs: dict[str, Any]) -> Any:
        x = _c32(args[0])
        if x is None or x.shape[-1] != k:
            return None
        lead = x.shape[:-1]
        x2 = x.reshape(-1, k)
        m = x2.shape[0]
        y = np.empty((m, n), dtype=F32)
        keep = [x2, y]
        b_addr = r_addr = 0
        if spec["has_bias"]:
            b = _c32(args[2])
            if b is None or b.shape != (n,):
                return None
            keep.append(b)
            b_addr = _addr(b)
        if spec["has_res"]:
            residual = _c32(np.broadcast_to(args[3], lead + (n,)) if isinstance(args[3], np.ndarray) else None)
            if residual is None:
                return None
            r2 = residual.reshape(m, n)
            keep.append(r2)
            r_addr = _addr(r2)
        if m:
            block = np.array([_addr(x2), _addr(packed), b_addr, r_addr, _addr(y), m], dtype=np.int64)
            fn(_addr(block))
        return y.reshape(lead + (n,))

    return run


def layer_norm_kernel(fn: Callable, spec: dict[str, Any]) -> Callable:
    h = spec["H"]

    def run(args: list[Any], attrs: dict[str, Any]) -> Any:
        x = _c32(args[0])
        if x is None or x.shape[-1] != h:
            return None
        w = _c32(args[1]) if spec["has_w"] else None
        b = _c32(args[2]) if spec["has_b"] else None
        if (spec["has_w"] and (w is None or w.shape != (h,))) or (spec["has_b"] and (b is None or b.shape != (h,))):
            return None
        y = np.empty_like(x)
        rows = x.size // h if h else 0
        if rows:
            block = np.array([_addr(x), _addr(w) if w is not None else 0, _addr(b) if b is not None else 0,
                              _addr(y), rows], dtype=np.int64)  # fmt: skip
            fn(_addr(block))
        return (y, None, None)

    return run


def softmax_kernel(fn: Callable) -> Callable:
    def run(args: list[Any], attrs: dict[str, Any]) -> Any:
        x = _c32(args[0])
        if x is None or x.ndim == 0:
            return None
        y = np.empty_like(x)
        length = x.shape[-1]
        rows = x.size // length if length else 0
        if rows:
            block = np.array([_addr(x), _addr(y), rows, length], dtype=np.int64)
            fn(_addr(block))
        return y

    return run


def _mask_view(mask: Any, b: int, h: int, s: int, t: int) -> tuple[np.ndarray, list[int]] | None:
    """An additive float32 mask broadcast to [B, H, S, T]: (array, element strides)."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype == bool:
        mask = np.where(mask, np.float32(0.0), np.float32(-np.inf))
    elif mask.dtype != F32:
        mask = mask.astype(F32)
    view = np.broadcast_to(mask, (b, h, s, t))
    if view.strides[-1] != F32.itemsize:
        view = np.ascontiguousarray(view)
    return view, [st // F32.itemsize for st in view.strides[:3]]


def attention_kernel(fn: Callable, spec: dict[str, Any], fused_qkv: bool, heads: int | None) -> Callable:
    d = spec["D"]

    def run(args: list[Any], attrs: dict[str, Any]) -> Any:
        if fused_qkv:
            qkv = _c32(args[0])
            if qkv is None or qkv.ndim != 3:
                return None
            bsz, s, e3 = qkv.shape
            e = e3 // 3
            h = hkv = heads
            t = s
            base = _addr(qkv)
            q_addr, k_addr, v_addr = base, base + e * 4, base + 2 * e * 4
            qs = ks = vs = [s * e3, d, e3]  # [B, S, H, D] read as (batch, head, row)
            out = np.empty((bsz, s, e), dtype=F32)
            os_ = [s * e, d, e]
            keep = [qkv]
            mask = args[1] if len(args) > 1 else None
        else:
            q, k, v = args[0], args[1], args[2]
            if not all(isinstance(a, np.ndarray) and a.dtype == F32 and a.ndim == 4 for a in (q, k, v)):
                return None
            q, k, v = (a if a.strides[-1] == 4 else np.ascontiguousarray(a) for a in (q, k, v))
            bsz, h, s, _ = q.shape
            hkv, t = k.shape[1], k.shape[2]
            if h % hkv or k.shape[0] != bsz or v.shape[:3] != k.shape[:3]:
                return None
            q_addr, k_addr, v_addr = _addr(q), _addr(k), _addr(v)
            qs, ks, vs = ([st // 4 for st in a.strides[:3]] for a in (q, k, v))
            out = np.empty((bsz, h, s, d), dtype=F32)
            os_ = [h * s * d, s * d, d]
            keep = [q, k, v]
            mask = args[3] if len(args) > 3 else None
        masked = _mask_view(mask, bsz, h, s, t)
        m_addr, ms = (0, [0, 0, 0]) if masked is None else (_addr(masked[0]), masked[1])
        if masked is not None:
            keep.append(masked[0])
        scratch = np.empty((max(bsz * h, 1), max(t, 1)), dtype=F32)
        block = np.array([q_addr, k_addr, v_addr, m_addr, _addr(out), _addr(scratch), bsz, h, hkv, s, t,
                          *qs, *ks, *vs, *os_, *ms, int(masked is not None)], dtype=np.int64)  # fmt: skip
        if bsz and h and s:
            fn(_addr(block))
        return out

    return run

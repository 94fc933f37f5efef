"""Mojo kernels as MAX custom ops: the kernel folder (rendered from
templates/mojo/max_custom_ops.mojo.jinja) and the lowering hooks that call them.

    model = MaxModel.from_graph(ir, custom_kernels=custom_kernels(), custom_extensions=[folder()])

With these, every IR ``LayerNorm`` over a static last dim (float32, weight and bias present,
statistics unused) becomes ``ops.custom("skillmill_layer_norm", ...)`` in the MAX graph instead
of MAX's built-in ``layer_norm``; MAX compiles the Mojo source itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skillmill.ir.graph import Node

from . import cache


def folder(width: int | None = None) -> Path:
    """The rendered custom-op package (a folder with ``__init__.mojo``), cached by content."""
    import jinja2

    from . import mojo_kernels
    from .mojo_build import template_dir

    width = width or mojo_kernels.simd_width()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir().parent)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)  # fmt: skip
    source = env.get_template("mojo/max_custom_ops.mojo.jinja").render(dtype="float32", simd_width=width, mr=mojo_kernels.micro_rows(width))
    path = cache.cache_root() / f"skillmill-maxops-{cache.text_key(source)}"
    if not (path / "ops.mojo").exists():
        path.mkdir(parents=True, exist_ok=True)
        (path / "__init__.mojo").write_text("")
        tmp = path / "ops.mojo.tmp"
        tmp.write_text(source)
        tmp.replace(path / "ops.mojo")
    return path


def package(width: int | None = None) -> Path:
    """The custom-op package precompiled once with MAX's own ``mojo precompile`` call, cached by
    content.  Given the source folder, MAX precompiles it again in every process, twice (graph
    build and session load): a cached MiniLM load took 5.5 s that way, 0.4 s without custom
    ops.  Falls back to the folder (MAX then compiles it and reports any error itself)."""
    import os

    source = folder(width)
    target = source.parent / (source.name.replace("-", "_") + ".mojoc")
    if target.exists():
        return target
    try:
        from mojo.run import subprocess_run_mojo

        staging = target.with_name(f".{target.name}.{os.getpid()}")
        staging.mkdir(exist_ok=True)
        # the file name is the module name the graph compiler imports: compile under the final
        # name in a private folder, then move it into place
        subprocess_run_mojo(["precompile", str(source), "-o", str(staging / target.name)],
                            capture_output=True, check=True, timeout=600)  # fmt: skip
        os.replace(staging / target.name, target)
        staging.rmdir()
    except Exception:  # noqa: BLE001 — the folder still works, only slower to load
        return source
    return target


def _layer_norm(lw: Any, node: Node, attrs: dict[str, Any]) -> Any | None:
    """The custom op for a LayerNorm it fits, else None (MAX's own layer_norm then)."""
    from .adapter import ops

    if len(node.inputs) < 3 or not node.inputs[1] or not node.inputs[2]:
        return None
    x = lw.tensor(node.inputs[0])
    shape = lw.shape(x)
    h = shape[-1] if shape else None
    if not isinstance(h, int) or lw.tdtype(x) != "float32":
        return None
    w, b = lw.tensor(node.inputs[1]), lw.tensor(node.inputs[2])
    if lw.shape(w) != [h] or lw.shape(b) != [h] or lw.tdtype(w) != "float32" or lw.tdtype(b) != "float32":
        return None
    flat = ops.reshape(x, [-1, h])
    out_type = lw.builder.tensor_type("float32", flat.shape)
    (y,) = lw.builder.custom("skillmill_layer_norm", [flat, w, b], [out_type],
                             {"H": h, "eps": float(attrs.get("eps", 1e-5))})  # fmt: skip
    lw.custom_ops_used.append("skillmill_layer_norm")
    return ops.reshape(y, shape)


def _linear(lw: Any, node: Node, attrs: dict[str, Any]) -> Any | None:
    """The custom op for a Linear it fits (float32 weight of the graph, K static; any N and
    any number of rows), else None (MAX's matmul then).  The weight is packed once, in numpy,
    into panels of 2 * SIMD-width columns (the last one zero-padded; the kernel stores only its
    valid columns) and bound as its own external weight."""
    from . import mojo_kernels
    from .adapter import ops

    w_name = node.inputs[1]
    w = lw.graph.weights.get(w_name) if lw.is_weight(w_name) else None
    act = attrs.get("activation", "none")
    if (w is None or w.ndim != 2 or w.dtype != np.float32 or act not in mojo_kernels.ACTIVATIONS
            or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):  # fmt: skip
        return None
    n, k = w.shape
    nr = 2 * mojo_kernels.simd_width()
    x = lw.tensor(node.inputs[0])
    shape = lw.shape(x)
    if not shape or shape[-1] != k or lw.tdtype(x) != "float32":
        return None
    flat = ops.reshape(x, [-1, k])
    rows = flat.shape[0]
    packed = lw.derived_weight(w_name, f"panels{nr}", lambda a: mojo_kernels.pack_weight(a, nr), True)
    has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
    bias = lw.tensor(node.inputs[2]) if has_bias else lw.const(np.zeros(1, np.float32), "float32")
    if has_bias and (lw.tdtype(bias) != "float32" or lw.shape(bias) != [n]):
        return None
    out_shape = list(shape[:-1]) + [n]
    residual, fused_res = None, False
    if len(node.inputs) > 3 and node.inputs[3]:
        residual = lw.tensor(node.inputs[3])
        fused_res = lw.tdtype(residual) == "float32" and [str(d) for d in lw.shape(residual)] == [str(d) for d in out_shape]
    res_arg = ops.reshape(residual, [rows, n]) if fused_res else lw.const(np.zeros((1, 1), np.float32), "float32")
    out_type = lw.builder.tensor_type("float32", [rows, n])
    (y,) = lw.builder.custom("skillmill_linear", [flat, packed, bias, res_arg], [out_type],
                             {"K": k, "N": n, "act": mojo_kernels.ACTIVATIONS[act],
                              "has_bias": has_bias, "has_res": fused_res})  # fmt: skip
    lw.custom_ops_used.append("skillmill_linear")
    y = ops.reshape(y, out_shape)
    if residual is not None and not fused_res:
        y = y + residual
    return y


def _qkv_attention(lw: Any, node: Node, attrs: dict[str, Any]) -> Any | None:
    """The custom op for a QKVAttention over a float32 [B, S, 3*H*D] projection with static
    hidden size, else None (MAX's ops then).  A bool mask becomes additive (0 / -inf) and is
    brought to rank 4; a query row with every key masked yields zeros, as in the IR."""
    from .adapter import ops

    qkv = lw.tensor(node.inputs[0])
    shape = lw.shape(qkv)
    heads = int(attrs.get("heads", 1))
    if len(shape) != 3 or not isinstance(shape[2], int) or shape[2] % (3 * heads) or lw.tdtype(qkv) != "float32":
        return None
    b, s, e3 = shape
    d = e3 // (3 * heads)
    scale = attrs.get("scale")
    scale = 1.0 / float(np.sqrt(d)) if scale is None else float(scale)
    has_mask = len(node.inputs) > 1 and bool(node.inputs[1])
    if has_mask:
        mask = lw.tensor(node.inputs[1])
        if lw.tdtype(mask) == "bool":
            mask = ops.where(mask, lw.const(0.0, "float32"), lw.const(-np.inf, "float32"))
        elif lw.tdtype(mask) != "float32":
            return None
        while len(lw.shape(mask)) < 4:
            mask = ops.unsqueeze(mask, 0)
        full = (b, heads, s, s)
        dims = lw.shape(mask)
        if len(dims) != 4 or any(not (str(m) == "1" or str(m) == str(f)) for m, f in zip(dims, full)):
            return None
        if str(dims[3]) != str(s):
            mask = ops.broadcast_to(mask, [dims[0], dims[1], dims[2], s])
    else:
        mask = lw.const(np.zeros((1, 1, 1, 1), np.float32), "float32")
    out_types = [lw.builder.tensor_type("float32", [b, s, e3 // 3]),
                 lw.builder.tensor_type("float32", [b * heads, s])]  # fmt: skip
    out, _ = lw.builder.custom("skillmill_qkv_attention", [qkv, mask], out_types,
                               {"D": d, "H": heads, "scale": scale,
                                "causal": bool(attrs.get("causal")), "has_mask": has_mask})  # fmt: skip
    lw.custom_ops_used.append("skillmill_qkv_attention")
    return out


def custom_kernels() -> dict[str, Any]:
    """IR op -> lowering hook that emits a Mojo custom op (or None to use MAX's built-in)."""
    return {"LayerNorm": _layer_norm, "Linear": _linear, "QKVAttention": _qkv_attention}


# What the CPU default lowers to custom ops (see ``defaults`` for the measurements behind it).
DEFAULT_CUSTOM_OPS = frozenset({"Linear", "LayerNorm"})


def defaults(target: str) -> tuple[dict[str, Any], list[Path]]:
    """The custom ops a MAX graph gets unless told otherwise: on the CPU, skillmill's Mojo
    Linear and LayerNorm kernels.  Measured on MiniLM (generate-skills bench modular, 2 rounds,
    2-core machine; docs/modular.md): MAX's own ops 5.8 / 25.6 / 672 ms at (1, 16) / (1, 128) /
    (32, 128), with Linear + LayerNorm as custom ops 3.8 / 21.5 / 647 ms, with the fused
    attention as a custom op too 4.1 / 29.2 / 827 ms (its per-row kernel loses to MAX's
    matmul + softmax on long sequences), so attention stays MAX's unless asked for.
    ``SKILLMILL_MAX_CUSTOM_OPS=0`` keeps MAX's built-in ops, a comma list of IR ops (e.g.
    ``Linear,LayerNorm,QKVAttention``) picks them; no custom op runs on a GPU."""
    import os

    choice = os.environ.get("SKILLMILL_MAX_CUSTOM_OPS", "1").strip()
    if target != "cpu" or choice in ("0", ""):
        return {}, []
    wanted = DEFAULT_CUSTOM_OPS if choice == "1" else {op.strip() for op in choice.split(",")}
    return {op: fn for op, fn in custom_kernels().items() if op in wanted}, [package()]

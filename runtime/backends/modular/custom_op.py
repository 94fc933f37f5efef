"""Mojo kernels as MAX custom ops: the kernel folder (rendered from
templates/mojo/max_custom_ops.mojo.jinja) and the lowering hooks that call them.

    model = MaxModel.from_graph(ir, custom_kernels=custom_kernels(), custom_extensions=[folder()])

With these, every IR ``LayerNorm`` over a static last dim (float32, weight and bias present,
statistics unused) becomes ``ops.custom("skillmill_layer_norm", ...)`` in the MAX graph instead
of MAX's built-in ``layer_norm``; MAX compiles the Mojo source itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skillmill.ir.graph import Node

from . import cache


def folder(width: int | None = None) -> Path:
    """The rendered custom-op package (a folder with ``__init__.mojo``), cached by content."""
    import jinja2

    from .mojo_build import template_dir
    from .mojo_kernels import simd_width

    width = width or simd_width()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir().parent)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)  # fmt: skip
    source = env.get_template("mojo/max_custom_ops.mojo.jinja").render(simd_width=width)
    path = cache.cache_root() / f"skillmill-maxops-{cache.text_key(source)}"
    if not (path / "ops.mojo").exists():
        path.mkdir(parents=True, exist_ok=True)
        (path / "__init__.mojo").write_text("")
        tmp = path / "ops.mojo.tmp"
        tmp.write_text(source)
        tmp.replace(path / "ops.mojo")
    return path


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


def custom_kernels() -> dict[str, Any]:
    """IR op -> lowering hook that emits a Mojo custom op (or None to use MAX's built-in)."""
    return {"LayerNorm": _layer_norm}

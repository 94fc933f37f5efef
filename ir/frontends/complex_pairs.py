"""Complex tensors in the PyTorch frontend, as (real, imaginary) pairs.

The IR has no complex dtype.  Models build rotary embeddings with ``torch.polar`` and apply them
with ``view_as_complex(x) * freqs_cis`` then ``view_as_real`` (DeepSeek-V2, Llama 4), and the
complex values never leave the graph.  So a complex64 value of shape ``S`` is lowered as a
float32 value of shape ``S + [2]`` (the layout ``view_as_real`` gives): ``view_as_complex`` and
``view_as_real`` become identities, ``polar`` and complex arithmetic are written out on the
pair, and shape ops go through the ordinary lowerings with their dims counted from the front
(the pair axis stays last).  ``pytorch._Lowering`` sends a node here when any tensor it reads or
writes is complex; an op without an entry in ``COMPLEX`` is unsupported on complex values.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import UnsupportedOp
from .aten import ATEN

COMPLEX: dict[str, Callable[..., Any]] = {}


def is_complex(arg: Any) -> bool:
    import torch

    val = getattr(arg, "meta", {}).get("val") if hasattr(arg, "meta") else None
    return isinstance(val, torch.Tensor) and val.dtype.is_complex


def _complex(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            COMPLEX[name] = fn
        return fn

    return register


def _rank(x: Any) -> int:
    """The complex rank of an fx tensor: its pair axis, in the lowered value."""
    return x.meta["val"].dim()


def _dim(dim: int, rank: int) -> int:
    return dim % rank if rank else 0


def _parts(cx: Any, node: Any, x: Any) -> tuple[str, str]:
    """(real, imaginary) of a complex fx operand, each of its complex shape."""
    axis = _rank(x)
    value = cx.value(x)
    return tuple(cx.temp(node, "Select", [value], {"dim": axis, "index": i}) for i in (0, 1))


def _pair(cx: Any, node: Any, real: str, imag: str) -> list[str]:
    """The lowered complex result of ``node`` from its parts."""
    axis = _rank(node)
    halves = [cx.temp(node, "Unsqueeze", [v], {"axes": [axis]}) for v in (real, imag)]
    return cx.emit(node, "Concat", halves, {"axis": axis})


@_complex("aten.view_as_complex.default", "aten.view_as_real.default",
          "aten.clone.default", "aten.alias.default", "aten.detach.default",
          "aten.contiguous.default", "aten.lift_fresh_copy.default")  # fmt: skip
def _same(cx, node, x, *args, **kwargs):
    return cx.emit(node, "Identity", [cx.value(x)])


@_complex("aten._to_copy.default", "aten.to.dtype")
def _to_copy(cx, node, x, *args, **kwargs):
    dtype = cx.out_dtype(node)
    if is_complex(x) and is_complex(node):
        return cx.emit(node, "Cast", [cx.value(x)], {"to": dtype})
    if is_complex(node):  # a real value as complex: imaginary parts zero (fftn of real input)
        real = cx.temp(node, "Cast", [cx.value(x)], {"to": dtype})
        zero = cx.temp(node, "FullLike", [real], {"value": 0.0, "dtype": dtype})
        return _pair(cx, node, real, zero)
    # complex to real keeps the real part, as torch does (with a warning)
    real = cx.temp(node, "Select", [cx.value(x)], {"dim": _rank(x), "index": 0})
    return cx.emit(node, "Cast", [real], {"to": dtype})


@_complex("aten.polar.default")
def _polar(cx, node, magnitude, angle):
    dtype = cx.out_dtype(node)
    mag, ang = cx.value(magnitude), cx.value(angle)
    parts = []
    for op in ("Cos", "Sin"):
        wave = cx.temp(node, op, [ang], {"dtype": dtype})
        parts.append(cx.temp(node, "Mul", [mag, wave], {"dtype": dtype}))
    return _pair(cx, node, *parts)


@_complex("aten.mul.Tensor", "aten.mul.Scalar", "aten.div.Tensor", "aten.div.Scalar",
          "aten.add.Tensor", "aten.sub.Tensor")  # fmt: skip
def _arithmetic(cx, node, a, b, *rest, **kwargs):
    op = str(node.target).split(".")[1]
    if rest or kwargs.get("alpha", 1) != 1:
        raise UnsupportedOp(f"{node.target}(alpha) on complex values", cx.model_name)
    dtype = cx.out_dtype(node)
    if not cx.is_tensor(b) and not cx.is_tensor(a):
        raise UnsupportedOp(f"{node.target} without a tensor", cx.model_name)
    if not cx.is_tensor(b) or not cx.is_tensor(a):
        tensor, scalar = (a, b) if cx.is_tensor(a) else (b, a)
        if isinstance(scalar, complex) or op in ("add", "sub") or (op == "div" and tensor is b):
            raise UnsupportedOp(f"{node.target} of a complex value and a scalar", cx.model_name)
        return cx.emit(node, "Mul" if op == "mul" else "Div", [cx.value(tensor)],
                       {"b": cx.attr(scalar), "dtype": dtype})  # fmt: skip
    if is_complex(a) and is_complex(b):
        if op in ("add", "sub"):  # part by part; the pair axes line up, last in both
            return cx.emit(node, op.capitalize(), [cx.value(a), cx.value(b)], {"dtype": dtype})
        if op == "mul":
            (ar, ai), (br, bi) = _parts(cx, node, a), _parts(cx, node, b)
            mul = lambda x, y: cx.temp(node, "Mul", [x, y], {"dtype": dtype})  # noqa: E731
            real = cx.temp(node, "Sub", [mul(ar, br), mul(ai, bi)], {"dtype": dtype})
            imag = cx.temp(node, "Add", [mul(ar, bi), mul(ai, br)], {"dtype": dtype})
            return _pair(cx, node, real, imag)
        raise UnsupportedOp(f"{node.target} of two complex values", cx.model_name)
    # a complex value times (or over) a real tensor: the real one gains the pair axis
    real_arg = b if is_complex(a) else a
    if op not in ("mul", "div") or (op == "div" and real_arg is a):
        raise UnsupportedOp(f"{node.target} of a complex and a real tensor", cx.model_name)
    widened = cx.temp(node, "Unsqueeze", [cx.value(real_arg)], {"axes": [_rank(real_arg)]})
    inputs = [cx.value(a), widened] if real_arg is b else [widened, cx.value(b)]
    return cx.emit(node, "Mul" if op == "mul" else "Div", inputs, {"dtype": dtype})


@_complex("aten.unsqueeze.default")
def _unsqueeze(cx, node, x, dim):
    return ATEN["aten.unsqueeze.default"](cx, node, x, _dim(dim, _rank(x) + 1))


@_complex("aten.squeeze.dims", "aten.squeeze.dim", "aten.squeeze.default")
def _squeeze(cx, node, x, dims=None):
    rank = _rank(x)
    if dims is None:  # every size-1 axis except the pair axis
        dims = [i for i, size in enumerate(x.meta["val"].shape) if size == 1]
    dims = [dims] if isinstance(dims, int) else dims
    return ATEN["aten.squeeze.dims"](cx, node, x, [_dim(d, rank) for d in dims])


@_complex("aten.slice.Tensor")
def _slice(cx, node, x, dim=0, *args):
    return ATEN["aten.slice.Tensor"](cx, node, x, _dim(dim, _rank(x)), *args)


@_complex("aten.select.int")
def _select(cx, node, x, dim, index):
    return ATEN["aten.select.int"](cx, node, x, _dim(dim, _rank(x)), index)


@_complex("aten.cat.default")
def _cat(cx, node, tensors, dim=0):
    if not all(is_complex(t) for t in tensors):
        raise UnsupportedOp("aten.cat of complex and real tensors", cx.model_name)
    return ATEN["aten.cat.default"](cx, node, tensors, _dim(dim, _rank(tensors[0])))


@_complex("aten.permute.default")
def _permute(cx, node, x, dims):
    rank = _rank(x)
    return ATEN["aten.permute.default"](cx, node, x, [_dim(d, rank) for d in dims] + [rank])


@_complex("aten.transpose.int")
def _transpose(cx, node, x, a, b):
    rank = _rank(x)
    return ATEN["aten.transpose.int"](cx, node, x, _dim(a, rank), _dim(b, rank))


@_complex("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default")
def _view(cx, node, x, shape):
    return ATEN["aten.view.default"](cx, node, x, list(shape) + [2])


@_complex("aten.expand.default")
def _expand(cx, node, x, shape, implicit=False):
    return ATEN["aten.expand.default"](cx, node, x, list(shape) + [2])


@_complex("aten.index.Tensor")
def _index(cx, node, x, indices):
    # the indices address the leading (complex) axes; the pair axis rides along
    if any(is_complex(i) for i in indices if i is not None):
        raise UnsupportedOp("aten.index.Tensor with complex indices", cx.model_name)
    return ATEN["aten.index.Tensor"](cx, node, x, indices)


@_complex("aten._fft_r2c.default")
def _fft_r2c(cx, node, x, dim, normalization, onesided):
    dims = [_dim(d, _rank(x)) for d in dim]
    return cx.emit(node, "FFT", [cx.value(x)], {"kind": "r2c", "dims": dims,
                   "normalization": normalization, "onesided": onesided})  # fmt: skip


@_complex("aten._fft_c2c.default")
def _fft_c2c(cx, node, x, dim, normalization, forward):
    dims = [_dim(d, _rank(x)) for d in dim]
    return cx.emit(node, "FFT", [cx.value(x)], {"kind": "c2c", "dims": dims,
                   "normalization": normalization, "forward": forward})  # fmt: skip


@_complex("aten._fft_c2r.default")
def _fft_c2r(cx, node, x, dim, normalization, last_dim_size):
    dims = [_dim(d, _rank(x)) for d in dim]
    return cx.emit(node, "FFT", [cx.value(x)], {"kind": "c2r", "dims": dims,
                   "normalization": normalization, "last_dim_size": cx.attr(last_dim_size)})  # fmt: skip


@_complex("aten.real.default", "aten.imag.default")
def _part(cx, node, x):
    index = 0 if "real" in str(node.target) else 1
    return cx.emit(node, "Select", [cx.value(x)], {"dim": _rank(x), "index": index})


def lower_complex(cx: Any, node: Any, key: str) -> Any:
    lowering = COMPLEX.get(key)
    if lowering is None:
        raise UnsupportedOp(key, cx.model_name, "on complex values")
    return lowering(cx, node, *node.args, **node.kwargs)

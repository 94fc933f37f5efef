"""Every op of the IR's op table (``skillmill.ir.ops.OPS``) has its numpy reference checked here
against an implementation it was not derived from: PyTorch (``torch``, ``torch.nn.functional``)
wherever torch has the op, else ONNX's own reference evaluator (``onnx.reference``, for the
ONNX-only semantics) or plain Python.

The IR reference is the ground truth the native kernels, MAX and Mojo are compared with
(tests/native, tests/modular, ``Executor(use_native=False)``), so it must not only be
self-consistent: an op the reference gets wrong would be "correct" everywhere else.  Inputs are
random (a fixed seed per op) and include the awkward cases: duplicate indices for the
scatters and IndexPut with accumulate, ties for the sorts and cumulative extremes, NaN and inf
where the op defines them, negative operands for the divisions and remainders.

``test_every_op_is_checked`` lists the op table and fails for an op that no check here covers.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skillmill.ir.ops import OPS, run_reference

f32 = np.float32
CHECKS: dict[str, Callable[[str, np.random.Generator], None]] = {}


def checks(*ops: str):
    def register(fn):
        for op in ops:
            assert op not in CHECKS, f"{op} has two checks"
            CHECKS[op] = fn
        return fn

    return register


def ref(op: str, *inputs: Any, **attrs: Any) -> Any:
    """The IR reference: one array, or a tuple when the op has several outputs."""
    out = run_reference(op, list(inputs), attrs)
    return out[0] if len(out) == 1 else tuple(out)


def T(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def same(got: Any, want: Any, rtol: float = 1e-5, atol: float = 1e-6, dtype: bool = True, what: str = ""):
    """Same shape, dtype (unless told otherwise) and values (NaN equals NaN)."""
    if isinstance(want, torch.Tensor):
        want = want.detach().numpy()
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if dtype:
        assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def randn(rng, *shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(f32)


def onnx_ref(op_type: str, inputs: list[np.ndarray], n_out: int = 1, opset: int = 18, **attrs: Any) -> list:
    """ONNX's Python reference implementation of one node (the spec's own semantics)."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"i{i}" for i in range(len(inputs))]
    outs = [f"o{i}" for i in range(n_out)]
    node = helper.make_node(op_type, names, outs, **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in zip(names, inputs)],
        [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outs],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(model).run(None, dict(zip(names, inputs)))


# -- elementwise ------------------------------------------------------------------------------
def _wide(rng, *shape):
    return randn(rng, *shape, scale=3.0)


def _pos(rng, *shape):
    return (rng.random(shape) * 5 + 0.05).astype(f32)


def _unit(rng, *shape):
    return (rng.random(shape) * 1.98 - 0.99).astype(f32)


def _halves(rng, *shape):  # exact halves: round-half-to-even and the floors/ceils of negatives
    return (rng.integers(-12, 12, shape) / 2).astype(f32)


UNARY = {  # op: (torch function, input maker)
    "Neg": (torch.neg, _wide), "Abs": (torch.abs, _wide), "Exp": (torch.exp, _wide),
    "Log": (torch.log, _pos), "Log1p": (torch.log1p, lambda r, *s: _pos(r, *s) - 1.0 + 0.01),
    "Expm1": (torch.expm1, _wide), "Sqrt": (torch.sqrt, _pos), "Rsqrt": (torch.rsqrt, _pos),
    "Reciprocal": (torch.reciprocal, _pos), "Sin": (torch.sin, _wide), "Cos": (torch.cos, _wide),
    "Tan": (torch.tan, lambda r, *s: _unit(r, *s) * 1.4), "Asin": (torch.asin, _unit),
    "Acos": (torch.acos, _unit), "Atan": (torch.atan, _wide), "Sinh": (torch.sinh, _wide),
    "Cosh": (torch.cosh, _wide), "Asinh": (torch.asinh, _wide),
    "Acosh": (torch.acosh, lambda r, *s: _pos(r, *s) + 1.0), "Atanh": (torch.atanh, _unit),
    "Tanh": (torch.tanh, _wide), "Sigmoid": (torch.sigmoid, lambda r, *s: randn(r, *s, scale=40.0)),
    "Relu": (torch.relu, _wide), "Silu": (F.silu, _wide), "Erf": (torch.erf, _wide),
    "Floor": (torch.floor, _halves), "Ceil": (torch.ceil, _halves), "Round": (torch.round, _halves),
    "Trunc": (torch.trunc, _halves), "Sign": (torch.sign, _halves),
    "Softplus": (F.softplus, lambda r, *s: randn(r, *s, scale=15.0)), "Identity": (torch.clone, _wide),
    "Erfinv": (torch.erfinv, _unit),
}  # fmt: skip


@checks(*UNARY)
def check_unary(op, rng):
    fn, make = UNARY[op]
    x = make(rng, 3, 17)
    same(ref(op, x), fn(T(x)), rtol=2e-5, atol=2e-6, what=op)


def test_unary_int_inputs_give_float32_like_torch():
    """torch promotes an integer tensor to float32 for the transcendental ops; so does the IR."""
    x = np.arange(1, 9, dtype=np.int64).reshape(2, 4)
    for op, fn in (("Exp", torch.exp), ("Log", torch.log), ("Sqrt", torch.sqrt), ("Sin", torch.sin),
                   ("Tanh", torch.tanh), ("Sigmoid", torch.sigmoid), ("Erf", torch.erf)):  # fmt: skip
        same(ref(op, x), fn(T(x)), what=op)
    for op, fn in (("Neg", torch.neg), ("Abs", torch.abs), ("Relu", torch.relu), ("Sign", torch.sign)):
        same(ref(op, x - 4), fn(T(x - 4)), what=op)  # integers stay integers


@checks("Not", "BitwiseNot", "IsNaN", "IsInf")
def check_logical_unary(op, rng):
    b = rng.random((4, 5)) > 0.5
    i = rng.integers(-100, 100, (4, 5))
    x = randn(rng, 4, 5)
    x[0, :3] = [np.nan, np.inf, -np.inf]
    if op == "Not":
        same(ref(op, b), torch.logical_not(T(b)))
    elif op == "BitwiseNot":
        same(ref(op, i), torch.bitwise_not(T(i)))
        same(ref(op, b), torch.bitwise_not(T(b)))
    else:
        same(ref(op, x), (torch.isnan if op == "IsNaN" else torch.isinf)(T(x)))


BINARY = {  # op: torch function
    "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div,
    "FloorDiv": torch.floor_divide, "Mod": torch.remainder, "Fmod": torch.fmod, "Pow": torch.pow,
    "Max": torch.maximum, "Min": torch.minimum, "Atan2": torch.atan2,  # (a python scalar as a 0-d tensor)
    "Equal": torch.eq, "NotEqual": torch.ne, "Less": torch.lt, "LessEqual": torch.le,
    "Greater": torch.gt, "GreaterEqual": torch.ge,
}  # fmt: skip


@checks(*BINARY)
def check_binary(op, rng):
    fn = BINARY[op]
    a, b = randn(rng, 3, 4, 5, scale=4.0), randn(rng, 4, 1, scale=4.0)  # broadcasting
    if op == "Pow":
        a = np.abs(a) + 0.1
    if op in ("Max", "Min"):
        a[0, 0, :2] = np.nan  # propagates, as in torch
    if op.endswith("Equal") or op == "Equal":
        b[1, 0] = a[0, 1, 0]
    same(ref(op, a, b), fn(T(a), T(b)), rtol=2e-5, what=f"{op} float")
    # integers, negatives included (floor vs truncation vs remainder signs)
    ia = rng.integers(-20, 20, (3, 6))
    ib = rng.integers(1, 7, (3, 6)) * rng.choice([-1, 1], (3, 6))
    if op == "Pow":
        ia, ib = ia % 5, np.abs(ib) % 4
    if op != "Atan2":
        same(ref(op, ia, ib), fn(T(ia), T(ib)), what=f"{op} int")
    # a python scalar operand: attr b (x op s) and attr a (s op x)
    s = 2.0 if op != "Pow" else 3.0
    scalar = torch.tensor(s) if op in ("Max", "Min", "Atan2") else s
    same(ref(op, a, b=s), fn(T(a), scalar), rtol=2e-5, what=f"{op} scalar b")
    same(ref(op, a, a=s), fn(torch.tensor(s), T(a)), rtol=2e-5, what=f"{op} scalar a")


@checks("DivTrunc")
def check_div_trunc(op, rng):
    """ONNX Div: integers truncate toward zero (torch's rounding_mode='trunc'); floats divide."""
    ia = rng.integers(-20, 20, (3, 6)).astype(np.int32)
    ib = (rng.integers(1, 7, (3, 6)) * rng.choice([-1, 1], (3, 6))).astype(np.int32)
    same(ref(op, ia, ib), torch.div(T(ia), T(ib), rounding_mode="trunc"))
    a, b = randn(rng, 4, 5), randn(rng, 5)
    same(ref(op, a, b), torch.div(T(a), T(b)))
    same(ref(op, ia, ib)[0], onnx_ref("Div", [ia, ib])[0][0])


@checks("And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor")
def check_logical_binary(op, rng):
    a, b = rng.random((3, 5)) > 0.5, rng.random((5,)) > 0.5
    fn = {"And": torch.logical_and, "Or": torch.logical_or, "Xor": torch.logical_xor,
          "BitwiseAnd": torch.bitwise_and, "BitwiseOr": torch.bitwise_or, "BitwiseXor": torch.bitwise_xor}[op]  # fmt: skip
    same(ref(op, a, b), fn(T(a), T(b)), what=f"{op} bool")
    if op.startswith("Bitwise"):
        ia, ib = rng.integers(-64, 64, (3, 5)), rng.integers(-64, 64, (5,))
        same(ref(op, ia, ib), fn(T(ia), T(ib)), what=f"{op} int")


@checks("Gelu", "LeakyRelu", "Elu", "HardSigmoid", "HardSwish")
def check_activations(op, rng):
    x = randn(rng, 4, 9, scale=4.0)
    if op == "Gelu":
        same(ref(op, x), F.gelu(T(x)))
        same(ref(op, x, approximate="tanh"), F.gelu(T(x), approximate="tanh"))
    elif op == "LeakyRelu":
        same(ref(op, x), F.leaky_relu(T(x)))
        same(ref(op, x, alpha=0.3), F.leaky_relu(T(x), 0.3))
    elif op == "Elu":
        same(ref(op, x), F.elu(T(x)))
        same(ref(op, x, alpha=0.7), F.elu(T(x), 0.7))
    elif op == "HardSigmoid":
        same(ref(op, x), F.hardsigmoid(T(x)))
        same(ref(op, x, alpha=0.2, beta=0.5), onnx_ref("HardSigmoid", [x], alpha=0.2, beta=0.5)[0])
    else:
        same(ref(op, x), F.hardswish(T(x)))


@checks("Where")
def check_where(op, rng):
    cond = rng.random((3, 1, 5)) > 0.5
    a, b = randn(rng, 4, 5), randn(rng, 3, 4, 1)
    same(ref(op, cond, a, b), torch.where(T(cond), T(a), T(b)))
    same(ref(op, cond, b, a=2.5), torch.where(T(cond), 2.5, T(b)))
    same(ref(op, cond, a, b=-1.0), torch.where(T(cond), T(a), -1.0))


@checks("Cast")
def check_cast(op, rng):
    x = randn(rng, 3, 7, scale=10.0)
    x[0, :3] = [0.0, -0.0, 2.5]
    for to, dtype in (("int64", torch.int64), ("int32", torch.int32), ("bool", torch.bool),
                      ("float64", torch.float64), ("float16", torch.float16)):  # fmt: skip
        same(ref(op, x, to=to), T(x).to(dtype), what=to)  # float -> int truncates toward zero
    i = rng.integers(-5, 5, (4,))
    same(ref(op, i, to="float32"), T(i).to(torch.float32))
    same(ref(op, i, to="bool"), T(i).to(torch.bool))
    same(ref(op, i > 0, to="int64"), T(i > 0).to(torch.int64))


@checks("Clip")
def check_clip(op, rng):
    x = randn(rng, 5, 6, scale=3.0)
    same(ref(op, x, min=-1.0, max=0.5), torch.clamp(T(x), -1.0, 0.5))
    same(ref(op, x, min=0.0), torch.clamp(T(x), min=0.0))
    same(ref(op, x, max=0.0), torch.clamp(T(x), max=0.0))
    lo, hi = np.asarray(-0.5, f32), np.asarray(1.5, f32)
    same(ref(op, x, lo, hi), torch.clamp(T(x), T(lo), T(hi)))
    i = rng.integers(-10, 10, (8,))
    same(ref(op, i, min=-3, max=4), torch.clamp(T(i), -3, 4))


# -- matmul, normalisation, attention ---------------------------------------------------------
@checks("MatMul")
def check_matmul(op, rng):
    for sa, sb in (((3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((4,), (4,))):
        a, b = randn(rng, *sa), randn(rng, *sb)
        same(ref(op, a, b), torch.matmul(T(a), T(b)), rtol=1e-5, atol=1e-5, what=str((sa, sb)))


@checks("Linear")
def check_linear(op, rng):
    x, w, b, r = randn(rng, 2, 5, 8), randn(rng, 6, 8), randn(rng, 6), randn(rng, 2, 5, 6)
    acts = {"none": lambda y: y, "relu": F.relu, "gelu": F.gelu, "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"),
            "silu": F.silu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}  # fmt: skip
    for name, act in acts.items():
        same(ref(op, x, w, b, activation=name), act(F.linear(T(x), T(w), T(b))), atol=1e-5, what=name)
    same(ref(op, x, w), F.linear(T(x), T(w)), atol=1e-5)
    same(ref(op, x, w, b, r, activation="gelu"), F.gelu(F.linear(T(x), T(w), T(b))) + T(r), atol=1e-5)
    x2 = x.reshape(10, 8)
    same(ref(op, x2, w, b, alpha=0.5, beta=2.0), torch.addmm(T(b), T(x2), T(w).T, beta=2.0, alpha=0.5), atol=1e-5)


@checks("QLinear")
def check_qlinear(op, rng):
    """int8: activations quantized per token (round half to even, as torch.round does), exact
    integer products, scaled back; q4_0: nibbles unpacked with torch's bit ops, then F.linear;
    q8_0: int8 blocks times their scales, then F.linear."""
    x, b, r = randn(rng, 2, 5, 40), randn(rng, 6), randn(rng, 2, 5, 6)
    x[0, 0] = 0.0  # a zero row: its output is act(bias)
    q8 = rng.integers(-128, 128, (6, 40), dtype=np.int8)
    s8 = (rng.random(6) * 0.05).astype(f32)
    xt = T(x)
    xs = xt.abs().amax(-1, keepdim=True) / 127
    xq = torch.where(xs > 0, torch.round(torch.clamp(xt / torch.where(xs > 0, xs, 1), -127, 127)), 0)
    acc = (xq.double() @ torch.from_numpy(q8).double().T).float()
    want = F.gelu((acc * xs) * T(s8) + T(b)) + T(r)
    same(ref(op, x, q8, s8, b, r, scheme="int8", in_features=40, activation="gelu"), want, atol=1e-5)
    q4 = rng.integers(0, 256, (6, 2, 16), dtype=np.uint8)  # 40 values: 2 blocks, the last one short
    s4 = (rng.random((6, 2)) * 0.1).astype(f32)
    nibbles = torch.stack([T(q4).int() & 15, T(q4).int() >> 4], -1).reshape(6, 2, 32).float() - 8
    w = (nibbles * T(s4)[..., None]).reshape(6, 64)[:, :40]
    same(ref(op, x, q4, s4, b, scheme="q4_0", in_features=40, activation="silu"),
         F.silu(F.linear(xt, w, T(b))), atol=1e-5)  # fmt: skip
    qb = rng.integers(-128, 128, (6, 2, 32), dtype=np.int8)  # q8_0: the padding is ignored
    sb = (rng.random((6, 2)) * 0.01).astype(f32)
    w = (T(qb).float() * T(sb)[..., None]).reshape(6, 64)[:, :40]
    same(ref(op, x, qb, sb, b, r, scheme="q8_0", in_features=40, activation="relu"),
         F.relu(F.linear(xt, w, T(b))) + T(r), atol=1e-5)  # fmt: skip


@checks("QEmbedding")
def check_qembedding(op, rng):
    q = rng.integers(-127, 128, (9, 4), dtype=np.int8)
    scales = (rng.random(9) * 0.1).astype(f32)
    ids = rng.integers(0, 9, (2, 3))
    same(ref(op, q, scales, ids), F.embedding(T(ids), T(q).float() * T(scales)[:, None]))


@checks("Softmax", "LogSoftmax")
def check_softmax(op, rng):
    x = randn(rng, 3, 4, 7, scale=5.0)
    fn = F.softmax if op == "Softmax" else F.log_softmax
    for axis in (-1, 1, 0):
        same(ref(op, x, axis=axis), fn(T(x), dim=axis), atol=2e-6, what=f"axis {axis}")
    if op == "Softmax":
        i = rng.integers(-3, 3, (2, 5))
        same(ref(op, i), F.softmax(T(i).float(), dim=-1))


@checks("LayerNorm")
def check_layer_norm(op, rng):
    x = randn(rng, 2, 3, 6, scale=2.0) + 3.0
    w, b = randn(rng, 6), randn(rng, 6)
    y, mean, rstd = ref(op, x, w, b, axis=-1, eps=1e-5)
    want = torch.native_layer_norm(T(x), [6], T(w), T(b), 1e-5)
    for got, exp, name in zip((y, mean, rstd), want, ("y", "mean", "rstd")):
        same(got, exp, rtol=1e-4, atol=1e-5, what=name)
    y, mean, rstd = ref(op, x, axis=1, eps=1e-3)  # over the last two dims, no affine
    want = torch.native_layer_norm(T(x), [3, 6], None, None, 1e-3)
    for got, exp, name in zip((y, mean, rstd), want, ("y", "mean", "rstd")):
        same(got, exp, rtol=1e-4, atol=1e-5, what=name)


@checks("RMSNorm")
def check_rms_norm(op, rng):
    x, w = randn(rng, 2, 5, 8, scale=2.0), randn(rng, 8)
    same(ref(op, x, w, eps=1e-6), F.rms_norm(T(x), (8,), T(w), 1e-6), rtol=1e-5, atol=1e-6)
    same(ref(op, x, eps=1e-5), F.rms_norm(T(x), (8,), None, 1e-5), rtol=1e-5, atol=1e-6)
    # Gemma: (1 + w)
    same(ref(op, x, w, eps=1e-6, offset=1.0), F.rms_norm(T(x), (8,), 1.0 + T(w), 1e-6), rtol=1e-5, atol=1e-6)


@checks("GroupNorm")
def check_group_norm(op, rng):
    x, w, b = randn(rng, 2, 6, 4, 5) + 1.0, randn(rng, 6), randn(rng, 6)
    same(ref(op, x, w, b, groups=3, eps=1e-5), F.group_norm(T(x), 3, T(w), T(b), 1e-5), rtol=1e-4, atol=1e-5)
    same(ref(op, x, groups=2), F.group_norm(T(x), 2), rtol=1e-4, atol=1e-5)


@checks("BatchNorm")
def check_batch_norm(op, rng):
    x, w, b = randn(rng, 2, 3, 4, 5), randn(rng, 3), randn(rng, 3)
    mean, var = randn(rng, 3), _pos(rng, 3)
    want = F.batch_norm(T(x), T(mean), T(var), T(w), T(b), training=False, eps=1e-3)
    same(ref(op, x, w, b, mean, var, eps=1e-3), want, rtol=1e-5, atol=1e-5)
    same(ref(op, x, None, None, mean, var), F.batch_norm(T(x), T(mean), T(var), training=False), rtol=1e-5, atol=1e-5)


def _bottom_right_causal(s: int, t: int) -> torch.Tensor:
    """The IR's causal mask: query i sees keys up to i + (t - s) (the last query sees them all,
    as when decoding with a cache); SDPA's own is_causal aligns top-left, so it is given as a mask."""
    return torch.ones(s, t, dtype=torch.bool).tril(t - s)


@checks("Attention")
def check_attention(op, rng):
    sdpa = F.scaled_dot_product_attention
    q, k, v = randn(rng, 2, 4, 5, 8), randn(rng, 2, 4, 7, 8), randn(rng, 2, 4, 7, 6)
    same(ref(op, q, k, v), sdpa(T(q), T(k), T(v)), atol=1e-5)
    same(ref(op, q, k, v, scale=0.3), sdpa(T(q), T(k), T(v), scale=0.3), atol=1e-5)
    additive = randn(rng, 2, 1, 5, 7)
    same(ref(op, q, k, v, additive), sdpa(T(q), T(k), T(v), attn_mask=T(additive)), atol=1e-5)
    keep = rng.random((2, 1, 5, 7)) > 0.3
    keep[0, 0, 2] = False  # a query that sees no key: zeros (torch's SDPA agrees)
    same(ref(op, q, k, v, keep), sdpa(T(q), T(k), T(v), attn_mask=T(keep)), atol=1e-5)
    qs = randn(rng, 2, 4, 7, 8)
    same(ref(op, qs, k, v, causal=True), sdpa(T(qs), T(k), T(v), is_causal=True), atol=1e-5)
    same(ref(op, q, k, v, causal=True), sdpa(T(q), T(k), T(v), attn_mask=_bottom_right_causal(5, 7)), atol=1e-5)
    kg, vg = randn(rng, 2, 2, 7, 8), randn(rng, 2, 2, 7, 6)  # grouped-query attention
    same(ref(op, q, kg, vg), sdpa(T(q), T(kg), T(vg), enable_gqa=True), atol=1e-5)


@checks("QKVAttention")
def check_qkv_attention(op, rng):
    b, s, heads, d = 2, 6, 3, 4
    qkv = randn(rng, b, s, 3 * heads * d)
    q, k, v = (T(part).reshape(b, s, heads, d).transpose(1, 2) for part in np.split(qkv, 3, axis=-1))
    mask = rng.random((b, 1, 1, s)) > 0.2
    for kwargs, torch_kwargs in (({}, {}), ({"causal": True}, {"is_causal": True}), ({"scale": 0.5}, {"scale": 0.5})):
        want = F.scaled_dot_product_attention(q, k, v, **torch_kwargs).transpose(1, 2).reshape(b, s, heads * d)
        same(ref(op, qkv, heads=heads, **kwargs), want, atol=1e-5, what=str(kwargs))
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=T(mask)).transpose(1, 2).reshape(b, s, heads * d)
    same(ref(op, qkv, mask, heads=heads), want, atol=1e-5, what="mask")


# -- convolution and pooling ------------------------------------------------------------------
@checks("Conv")
def check_conv(op, rng):
    x, w, b = randn(rng, 2, 4, 9, 8), randn(rng, 6, 2, 3, 2), randn(rng, 6)
    kw = {"stride": [2, 1], "padding": [1, 2], "dilation": [1, 2], "groups": 2}
    same(ref(op, x, w, b, **kw), F.conv2d(T(x), T(w), T(b), **kw), rtol=1e-4, atol=1e-5)
    x1, w1 = randn(rng, 1, 3, 11), randn(rng, 5, 3, 4)
    same(ref(op, x1, w1, stride=[3], padding=[2]), F.conv1d(T(x1), T(w1), stride=3, padding=2), rtol=1e-4, atol=1e-5)
    x3, w3 = randn(rng, 1, 2, 4, 5, 6), randn(rng, 3, 2, 2, 3, 2)
    same(ref(op, x3, w3, padding=[1]), F.conv3d(T(x3), T(w3), padding=1), rtol=1e-4, atol=1e-5)
    # ONNX's asymmetric pads [(before, after)]: the same as padding the input first
    pads = [(0, 2), (1, 0)]
    want = F.conv2d(F.pad(T(x), (1, 0, 0, 2)), T(w), T(b), groups=2)
    same(ref(op, x, w, b, groups=2, pads=pads), want, rtol=1e-4, atol=1e-5)


@checks("ConvTranspose")
def check_conv_transpose(op, rng):
    x, w, b = randn(rng, 2, 4, 5, 6), randn(rng, 4, 3, 3, 2), randn(rng, 6)
    kw = {"stride": [2, 3], "padding": [1, 0], "output_padding": [1, 2], "groups": 2, "dilation": [1, 2]}
    same(ref(op, x, w, b, **kw), F.conv_transpose2d(T(x), T(w), T(b), **kw), rtol=1e-4, atol=1e-5)
    x1, w1 = randn(rng, 1, 3, 7), randn(rng, 3, 2, 4)
    same(ref(op, x1, w1, stride=[2], padding=[1]), F.conv_transpose1d(T(x1), T(w1), stride=2, padding=1), rtol=1e-4, atol=1e-5)


@checks("MaxPool")
def check_max_pool(op, rng):
    x = randn(rng, 2, 3, 9, 8)
    x[0, 0, :2, :2] = 5.0  # a tie inside a window: the first in scan order wins, in both
    for kw in ({"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
               {"kernel_size": 3, "stride": 2, "ceil_mode": True}, {"kernel_size": 2, "dilation": 2, "padding": 1}):  # fmt: skip
        attrs = {"kernel": [kw["kernel_size"]], "stride": [kw["stride"]] if "stride" in kw else None,
                 "padding": [kw.get("padding", 0)], "dilation": [kw.get("dilation", 1)],
                 "ceil_mode": kw.get("ceil_mode", False)}  # fmt: skip
        values, where = F.max_pool2d(T(x), return_indices=True, **kw)
        same(ref(op, x, **attrs), values, what=str(kw))
        # ONNX's Indices address the whole input: the (n, c) plane's offset is added
        got_values, got_index = ref(op, x, return_indices=True, **attrs)
        plane = torch.arange(2 * 3).reshape(2, 3, 1, 1) * (9 * 8)
        same(got_values, values, what=str(kw))
        same(got_index, where + plane, what=f"indices {kw}")
    x1 = randn(rng, 1, 2, 10)
    same(ref(op, x1, kernel=[3], stride=[2]), F.max_pool1d(T(x1), 3, 2))
    i = rng.integers(-50, 50, (1, 1, 4, 4)).astype(np.int64)
    same(ref(op, i, kernel=[2]), F.max_pool2d(T(i).float(), 2).long())


@checks("AvgPool")
def check_avg_pool(op, rng):
    x = randn(rng, 2, 3, 9, 8)
    for kw in ({"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
               {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
               {"kernel_size": 3, "stride": 2, "ceil_mode": True},
               {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
               {"kernel_size": 2, "divisor_override": 3}):  # fmt: skip
        attrs = {"kernel": [kw["kernel_size"]], "stride": [kw["stride"]] if "stride" in kw else None,
                 "padding": [kw.get("padding", 0)], "ceil_mode": kw.get("ceil_mode", False),
                 "count_include_pad": kw.get("count_include_pad", True),
                 "divisor_override": kw.get("divisor_override")}  # fmt: skip
        same(ref(op, x, **attrs), F.avg_pool2d(T(x), **kw), what=str(kw))


@checks("AdaptiveAvgPool")
def check_adaptive_avg_pool(op, rng):
    x = randn(rng, 2, 3, 7, 10)
    for size in ((1, 1), (3, 4), (7, 10), (5, 3)):
        same(ref(op, x, output_size=list(size)), F.adaptive_avg_pool2d(T(x), size), what=str(size))
    x1 = randn(rng, 1, 2, 11)
    same(ref(op, x1, output_size=[4]), F.adaptive_avg_pool1d(T(x1), 4))


# -- reductions -------------------------------------------------------------------------------
def _torch_reduce(fn, x, axes, keepdims):
    """Apply a one-dim torch reduction over several dims (highest first)."""
    for axis in sorted(axes, reverse=True):
        x = fn(x, axis, keepdim=True)
    return x if keepdims else x.squeeze(tuple(axes)) if axes else x


REDUCTIONS = {  # op: torch(x, dims, keepdim)
    "ReduceSum": lambda x, d, k: torch.sum(x, d, keepdim=k),
    "ReduceMean": lambda x, d, k: torch.mean(x, d, keepdim=k),
    "ReduceMax": lambda x, d, k: torch.amax(x, d, keepdim=k),
    "ReduceMin": lambda x, d, k: torch.amin(x, d, keepdim=k),
    "ReduceProd": lambda x, d, k: _torch_reduce(torch.prod, x, d, k),
    "ReduceAny": lambda x, d, k: torch.any(x, d, keepdim=k),
    "ReduceAll": lambda x, d, k: torch.all(x, d, keepdim=k),
    "ReduceL2": lambda x, d, k: torch.linalg.vector_norm(x, 2, d, keepdim=k),
    "ReduceL1": lambda x, d, k: torch.linalg.vector_norm(x, 1, d, keepdim=k),
    "ReduceSumSquare": lambda x, d, k: torch.sum(x * x, d, keepdim=k),
    "ReduceLogSum": lambda x, d, k: torch.log(torch.sum(x, d, keepdim=k)),
    "ReduceLogSumExp": lambda x, d, k: torch.logsumexp(x, d, keepdim=k),
}


@checks(*REDUCTIONS)
def check_reduction(op, rng):
    fn = REDUCTIONS[op]
    x = randn(rng, 3, 4, 5, scale=2.0)
    if op in ("ReduceAny", "ReduceAll"):
        x = rng.random((3, 4, 5)) > 0.2
    elif op == "ReduceLogSum":
        x = _pos(rng, 3, 4, 5)
    elif op == "ReduceLogSumExp":
        x[0, 0, :] = -np.inf  # a row of -inf: -inf, not NaN
        x[1, 1, 0] = 80.0  # exp overflows float32 unless shifted
    for axes, keepdims in (([1], False), ([0, 2], True), ([-1], True), ([0, 1, 2], False)):
        same(ref(op, x, axes=axes, keepdims=keepdims), fn(T(x), [a % 3 for a in axes], keepdims),
             rtol=2e-5, atol=1e-5, what=f"{axes} {keepdims}")  # fmt: skip
    # axes as an input tensor (ONNX 18), and "all axes" when none are given
    same(ref(op, x, np.array([2]), keepdims=True), fn(T(x), [2], True), rtol=2e-5, atol=1e-5, what="axes input")
    same(ref(op, x, keepdims=False), fn(T(x), [0, 1, 2], False), rtol=2e-5, atol=1e-5, what="all axes")
    if op == "ReduceSum":
        i = rng.integers(-9, 9, (3, 4))
        same(ref(op, i, axes=[1]), torch.sum(T(i), 1))
        same(ref(op, x > 0, axes=[1]), torch.sum(T(x > 0), 1))  # bool sums count (int64)
        same(ref(op, x, np.zeros(0, np.int64), noop_with_empty_axes=1), x)  # ONNX's no-op


@checks("Var")
def check_var(op, rng):
    x = randn(rng, 3, 4, 5)
    same(ref(op, x, axes=[1]), torch.var(T(x), 1), atol=1e-6)
    same(ref(op, x, axes=[0, 2], correction=0, keepdims=True), torch.var(T(x), [0, 2], correction=0, keepdim=True), atol=1e-6)


@checks("ArgMax", "ArgMin")
def check_arg_reduce(op, rng):
    fn = torch.argmax if op == "ArgMax" else torch.argmin
    x = rng.integers(0, 4, (3, 6)).astype(f32)  # ties: the first index, in both
    same(ref(op, x, axis=1), fn(T(x), 1))
    same(ref(op, x, axis=0, keepdims=True), fn(T(x), 0, keepdim=True))
    same(ref(op, x), fn(T(x)))  # over the flattened tensor
    flipped = fn(T(x).flip(1), 1)
    same(ref(op, x, axis=1, select_last_index=1), 5 - flipped)
    same(ref(op, x, axis=1, select_last_index=1), onnx_ref(op, [x], axis=1, keepdims=0, select_last_index=1)[0])


@checks("TopK")
def check_topk(op, rng):
    x = rng.permutation(60).reshape(3, 4, 5).astype(f32)  # distinct: torch's tie order is unspecified
    for kw in ({"k": 3}, {"k": 2, "axis": 1}, {"k": 4, "largest": False}, {"k": 1, "axis": 0}):
        values, idx = ref(op, x, **kw)
        want = torch.topk(T(x), kw["k"], dim=kw.get("axis", -1), largest=kw.get("largest", True))
        same(values, want.values, what=str(kw))
        same(idx, want.indices, what=str(kw))
    values, idx = ref(op, x, np.array([2]))  # k as an input (ONNX)
    same(values, torch.topk(T(x), 2).values)
    u = rng.permutation(200)[:12].astype(np.uint8)  # unsigned, largest first
    want = torch.topk(T(u).long(), 5)
    got = ref(op, u, k=5)
    same(got[0], want.values.to(torch.uint8))
    same(got[1], want.indices)


# -- layout -----------------------------------------------------------------------------------
@checks("Reshape")
def check_reshape(op, rng):
    x = randn(rng, 2, 3, 4)
    same(ref(op, x, shape=[4, -1]), T(x).reshape(4, -1))
    same(ref(op, x, np.array([3, 8])), T(x).reshape(3, 8))
    same(ref(op, x, np.array([0, -1]), copy_zero=True), onnx_ref("Reshape", [x, np.array([0, -1])])[0])
    same(ref(op, np.zeros((0, 4), f32), np.array([0, 2, 2]), copy_zero=True, allowzero=1),
         onnx_ref("Reshape", [np.zeros((0, 4), f32), np.array([0, 2, 2])], allowzero=1)[0])  # fmt: skip


@checks("Transpose")
def check_transpose(op, rng):
    x = randn(rng, 2, 3, 4)
    same(ref(op, x, perm=[1, 2, 0]), T(x).permute(1, 2, 0))
    same(ref(op, x), T(x).permute(2, 1, 0))


@checks("Expand")
def check_expand(op, rng):
    x = randn(rng, 3, 1)
    same(ref(op, x, shape=[2, 3, 4]), T(x).expand(2, 3, 4))
    same(ref(op, x, shape=[2, -1, 5]), T(x).expand(2, -1, 5))
    same(ref(op, x, np.array([4, 1, 1]), bidirectional=True), onnx_ref("Expand", [x, np.array([4, 1, 1])])[0])
    b = rng.random((1, 3)) > 0.5
    same(ref(op, b, np.array([2, 1]), bidirectional=True), onnx_ref("Expand", [b, np.array([2, 1])])[0])


@checks("Unsqueeze", "Squeeze")
def check_unsqueeze_squeeze(op, rng):
    x = randn(rng, 3, 1, 4, 1)
    if op == "Unsqueeze":
        same(ref(op, x, axes=[0]), T(x).unsqueeze(0))
        same(ref(op, x, axes=[-1]), T(x).unsqueeze(-1))
        axes = np.array([0, -1, 2])
        same(ref(op, x, axes), onnx_ref("Unsqueeze", [x, axes], opset=13)[0])
    else:
        same(ref(op, x), T(x).squeeze())
        same(ref(op, x, axes=[1]), T(x).squeeze(1))
        same(ref(op, x, axes=[-1, 1]), T(x).squeeze((-1, 1)))
        same(ref(op, x, np.array([3])), onnx_ref("Squeeze", [x, np.array([3])], opset=13)[0])


@checks("Slice")
def check_slice(op, rng):
    x = randn(rng, 4, 10)
    for start, end, step in ((1, 7, 2), (None, -2, 1), (-5, None, 3), (3, 100, 1), (8, 2, 1), (0, 2**63 - 1, 1)):
        same(ref(op, x, dim=1, start=start, end=end, step=step), T(x)[:, slice(start, end, step)], what=str((start, end, step)))


@checks("SliceOnnx")
def check_slice_onnx(op, rng):
    x = randn(rng, 5, 8)
    cases = [
        ([1, 0], [4, 8], [0, 1], [1, 2]),
        ([-1], [-9], [1], [-1]),  # reversed, clamped past the start
        ([2, -100], [100, 3], None, None),
        ([7], [1], [1], [-2]),
    ]
    for starts, ends, axes, steps in cases:
        inputs = [x, np.array(starts), np.array(ends)]
        if axes is not None:
            inputs += [np.array(axes), np.array(steps)]
        same(ref(op, *inputs), onnx_ref("Slice", inputs)[0], what=str((starts, ends, axes, steps)))


@checks("Select")
def check_select(op, rng):
    x = randn(rng, 3, 4, 5)
    same(ref(op, x, dim=1, index=2), T(x).select(1, 2))
    same(ref(op, x, dim=-1, index=-1), T(x).select(-1, -1))


@checks("Concat")
def check_concat(op, rng):
    a, b, c = randn(rng, 2, 3), randn(rng, 4, 3), randn(rng, 1, 3)
    same(ref(op, a, b, c, axis=0), torch.cat([T(a), T(b), T(c)], 0))
    same(ref(op, a, a, axis=-1), torch.cat([T(a), T(a)], -1))
    empty = np.zeros(0, f32)  # torch.cat skips a legacy empty 1-D tensor
    same(ref(op, a, empty, b, axis=0), torch.cat([T(a), T(empty), T(b)], 0))


@checks("Split")
def check_split(op, rng):
    x = randn(rng, 3, 10)
    for got, want in zip(ref(op, x, axis=1, sizes=[2, 5, 3]), torch.split(T(x), [2, 5, 3], 1)):
        same(got, want)
    parts = ref(op, x, np.array([4, 6]), axis=1)
    for got, want in zip(parts, torch.split(T(x), [4, 6], 1)):
        same(got, want)
    for n in (2, 3, 4):  # ONNX 18 num_outputs: ceil-sized parts, the last smaller
        got = ref(op, x, axis=1, num_outputs=n)
        want = onnx_ref("Split", [x], n_out=n, axis=1, num_outputs=n)
        assert len(got) == len(want) == n
        for g, w in zip(got, want):
            same(g, w, what=f"num_outputs={n}")


@checks("Gather", "GatherOnnx")
def check_gather(op, rng):
    x = randn(rng, 3, 5)
    idx = rng.integers(0, 5, (3, 4))
    same(ref(op, x, idx, dim=1), torch.gather(T(x), 1, T(idx)))
    idx0 = rng.integers(0, 3, (2, 5))
    same(ref(op, x, idx0, dim=0), torch.gather(T(x), 0, T(idx0)))
    if op == "Gather":  # torch: an index smaller than x in the other dims reads that block only
        small = rng.integers(0, 3, (2, 3))
        same(ref(op, x, small, dim=0), torch.gather(T(x), 0, T(small)))
        same(ref(op, x, small, dim=-1), torch.gather(T(x), -1, T(small)))
    if op == "GatherOnnx":  # GatherElements: negative indices count from the end
        neg = rng.integers(-5, 5, (3, 2))
        same(ref(op, x, neg, dim=1), onnx_ref("GatherElements", [x, neg], axis=1)[0])


@checks("Flatten")
def check_flatten(op, rng):
    x = randn(rng, 2, 3, 4, 5)
    for axis in (0, 1, 2, 4, -1):
        same(ref(op, x, axis=axis), onnx_ref("Flatten", [x], axis=axis)[0], what=str(axis))
    same(ref(op, x, axis=1), T(x).flatten(1))
    same(ref(op, np.zeros((0, 3, 2), f32), axis=1), torch.zeros(0, 3, 2).flatten(1))


@checks("Einsum")
def check_einsum(op, rng):
    a, b, c = randn(rng, 2, 3, 4), randn(rng, 2, 4, 5), randn(rng, 5)
    for eq, args in (("bij,bjk->bik", (a, b)), ("bik,k->bi", (b[:, :3].copy(), c)), ("bij->ji", (a,)),
                     ("bij,bjk,k->bi", (a, b, c)), ("ii->i", (a[0, :3, :3].copy(),))):  # fmt: skip
        same(ref(op, *args, equation=eq), torch.einsum(eq, *(T(v) for v in args)), atol=1e-5, what=eq)


@checks("Take")
def check_take(op, rng):
    x = randn(rng, 4, 6)
    idx = rng.integers(0, 6, (2, 3))
    same(ref(op, x, idx, axis=1), T(x)[:, T(idx)])
    same(ref(op, x, np.array([3, 0, 3]), axis=0), torch.index_select(T(x), 0, torch.tensor([3, 0, 3])))
    neg = np.array([[-1, 0], [-4, 2]])  # ONNX Gather: negative indices wrap
    same(ref(op, x, neg, axis=0), onnx_ref("Gather", [x, neg], axis=0)[0])


@checks("Embedding")
def check_embedding(op, rng):
    w, ids = randn(rng, 10, 4), rng.integers(0, 10, (2, 5))
    same(ref(op, w, ids), F.embedding(T(ids), T(w)))


@checks("Index")
def check_index(op, rng):
    x = randn(rng, 4, 5, 6)
    i0, i2 = rng.integers(0, 4, (3,)), rng.integers(-6, 6, (3,))
    same(ref(op, x, i0, positions=[0]), T(x)[T(i0)])
    same(ref(op, x, i2, positions=[1]), T(x)[:, T(i2 % 5)])
    same(ref(op, x, i0, i2, positions=[0, 2]), T(x)[T(i0), :, T(i2)])  # split: advanced dims first
    rows = rng.integers(0, 4, (2, 1))
    cols = rng.integers(0, 5, (1, 3))
    same(ref(op, x, rows, cols, positions=[0, 1]), T(x)[T(rows), T(cols)])  # broadcast indices
    mask = rng.random((4, 5)) > 0.5
    same(ref(op, x, mask, positions=[0]), T(x)[T(mask)])  # a boolean index covers its rank
    cols = rng.random(6) > 0.5
    same(ref(op, x, cols, positions=[2]), T(x)[:, :, T(cols)])


@checks("IndexPut")
def check_index_put(op, rng):
    """torch.index_put: accumulate=True adds every duplicate; accumulate=False writes (unique
    positions: torch leaves duplicates unspecified)."""
    for dtype in (f32, np.int64):
        x = (rng.standard_normal((5, 4)) * 10).astype(dtype)
        dup = np.array([1, 3, 1, 1, 0, 3])  # duplicates
        values = (rng.standard_normal((6, 4)) * 10).astype(dtype)
        want = torch.index_put(T(x), (T(dup),), T(values), accumulate=True)
        same(ref(op, x, dup, values, positions=[0], accumulate=True), want, what=f"accumulate {dtype}")
        unique = np.array([4, 0, 2])
        want = torch.index_put(T(x), (T(unique),), T(values[:3]), accumulate=False)
        same(ref(op, x, unique, values[:3], positions=[0], accumulate=False), want, what=f"put {dtype}")
        # two index tensors (elementwise pairs), duplicated pairs accumulate
        r, c = np.array([0, 2, 0, 4, 0]), np.array([1, 3, 1, 0, 1])
        v = (rng.standard_normal(5) * 10).astype(dtype)
        want = torch.index_put(T(x), (T(r), T(c)), T(v), accumulate=True)
        same(ref(op, x, r, c, v, positions=[0, 1], accumulate=True), want, what=f"pairs {dtype}")
        # an index on dim 1 only (x[:, idx] += v), values broadcast from a row
        col = np.array([2, 2, 0])
        row = (rng.standard_normal((5, 1)) * 10).astype(dtype)
        want = torch.index_put(T(x), (torch.arange(5)[:, None], T(col)[None]), T(row), accumulate=True)
        same(ref(op, x, col, row, positions=[1], accumulate=True), want, what=f"dim 1 {dtype}")
    # a boolean mask, a scalar value broadcast (masked_fill as index_put)
    x = randn(rng, 3, 4)
    mask = rng.random((3, 4)) > 0.5
    value = np.asarray(-7.0, f32)
    same(ref(op, x, mask, value, positions=[0]), torch.index_put(T(x), (T(mask),), T(value)))
    same(ref(op, x, mask, value, positions=[0], accumulate=True),
         torch.index_put(T(x), (T(mask),), T(value), accumulate=True))  # fmt: skip
    # the input is not modified
    before = x.copy()
    ref(op, x, np.array([0, 0]), np.ones((2, 4), f32), positions=[0], accumulate=True)
    same(x, before)


@checks("Scatter")
def check_scatter(op, rng):
    """torch.scatter / scatter_add / scatter_reduce(include_self=True) with duplicate indices
    for the reductions (unique ones for the plain write, which torch leaves unspecified)."""
    for dtype in (f32, np.int64):
        x = (rng.standard_normal((4, 5)) * 10).astype(dtype)
        dup = rng.integers(0, 4, (6, 5))  # many duplicates along dim 0
        src = (rng.standard_normal((6, 5)) * 10).astype(dtype)
        same(ref(op, x, dup, src, dim=0, reduce="add"), torch.scatter_add(T(x), 0, T(dup), T(src)), what=f"add {dtype}")
        same(ref(op, x, dup, src, dim=0, reduce="sum"), torch.scatter_add(T(x), 0, T(dup), T(src)), what=f"sum {dtype}")
        for reduce, name in (("max", "amax"), ("min", "amin"), ("prod", "prod"), ("mul", "prod")):
            want = torch.scatter_reduce(T(x), 0, T(dup), T(src), name, include_self=True)
            same(ref(op, x, dup, src, dim=0, reduce=reduce), want, rtol=1e-5, what=f"{reduce} {dtype}")
        with warnings.catch_warnings():  # aten.scatter.reduce, what the frontend lowers; deprecated
            warnings.simplefilter("ignore", UserWarning)
            want = torch.scatter(T(x), 0, T(dup), T(src), reduce="multiply")
        same(ref(op, x, dup, src, dim=0, reduce="multiply"), want, rtol=1e-5, what=f"multiply {dtype}")
        # the plain write: a permutation per column (no duplicates), along dim 1 too
        perm = np.stack([rng.permutation(4) for _ in range(5)], axis=1)[:3]
        same(ref(op, x, perm, src[:3], dim=0), torch.scatter(T(x), 0, T(perm), T(src[:3])), what=f"none {dtype}")
        idx1 = np.stack([rng.permutation(5)[:2] for _ in range(4)])
        same(ref(op, x, idx1, src[:4, :2], dim=1), torch.scatter(T(x), 1, T(idx1), T(src[:4, :2])), what=f"dim1 {dtype}")
        same(ref(op, x, idx1, src[:4, :2], dim=1, reduce="add"),
             torch.scatter_add(T(x), 1, T(idx1), T(src[:4, :2])), what=f"dim1 add {dtype}")  # fmt: skip
    # torch reads only the block of src that the (smaller) index covers
    x = randn(rng, 4, 5)
    small, big = np.array([[2, 0, 1], [1, 3, 0]]), randn(rng, 6, 7)
    same(ref(op, x, small, big, dim=0), torch.scatter(T(x), 0, T(small), T(big)))
    same(ref(op, x, small, big, dim=0, reduce="add"), torch.scatter_add(T(x), 0, T(small), T(big)))
    # a scalar source (scatter.value), and duplicates adding a scalar
    x = randn(rng, 4, 5)
    dup = rng.integers(0, 4, (3, 5))
    same(ref(op, x, dup, np.asarray(2.5, f32), dim=0, reduce="add"),
         torch.scatter_add(T(x), 0, T(dup), torch.full((3, 5), 2.5)))  # fmt: skip
    perm = np.stack([rng.permutation(4) for _ in range(5)], axis=1)[:2]
    same(ref(op, x, perm, np.asarray(2.5, f32), dim=0), torch.scatter(T(x), 0, T(perm), 2.5))
    # ONNX ScatterElements: negative indices count from the end
    neg = np.array([[-1, 0, -4, 1, 2]])
    upd = randn(rng, 1, 5)
    same(ref(op, x, neg, upd, dim=0), onnx_ref("ScatterElements", [x, neg, upd], axis=0)[0])
    same(ref(op, x, neg, upd, dim=0, reduce="add"),
         onnx_ref("ScatterElements", [x, neg, upd], axis=0, reduction="add")[0])  # fmt: skip
    before = x.copy()
    ref(op, x, dup, np.ones((3, 5), f32), dim=0, reduce="add")
    same(x, before)  # the input is not modified


# -- creation, shape and runtime scalars ------------------------------------------------------
@checks("Full", "FullLike", "ConstantOfShape")
def check_full(op, rng):
    if op == "Full":
        same(ref(op, shape=[2, 3], value=1.5, dtype="float32"), torch.full((2, 3), 1.5))
        same(ref(op, shape=[4], value=7, dtype="int64"), torch.full((4,), 7))
        same(ref(op, shape=[2], value=True, dtype="bool"), torch.full((2,), True))
    elif op == "FullLike":
        x = randn(rng, 3, 2)
        same(ref(op, x, value=-2.0), torch.full_like(T(x), -2.0))
        same(ref(op, x, value=3, dtype="int64"), torch.full_like(T(x), 3, dtype=torch.int64))
    else:
        same(ref(op, np.array([2, 3]), value=0.5, dtype="float32"), torch.full((2, 3), 0.5))
        same(ref(op, np.array([3]), value=4, dtype="int64"),
             onnx_ref("ConstantOfShape", [np.array([3])], value=__import__("onnx").helper.make_tensor("v", 7, [1], [4]))[0])  # fmt: skip


@checks("Arange")
def check_arange(op, rng):
    same(ref(op, start=0, end=7, step=2, dtype="int64"), torch.arange(0, 7, 2))
    same(ref(op, start=5, end=-3, step=-3, dtype="int64"), torch.arange(5, -3, -3))
    same(ref(op, start=0.5, end=2.0, step=0.25, dtype="float32"), torch.arange(0.5, 2.0, 0.25))
    # ONNX Range(start, limit, delta), typed like start
    inputs = [np.asarray(1.0, f32), np.asarray(4.0, f32), np.asarray(0.5, f32)]
    same(ref(op, *inputs, dtype=None), onnx_ref("Range", inputs)[0])
    ints = [np.asarray(10, np.int32), np.asarray(2, np.int32), np.asarray(-3, np.int32)]
    same(ref(op, *ints, dtype=None), onnx_ref("Range", ints)[0])


@checks("Shape", "Size", "SymSize")
def check_shape(op, rng):
    x = randn(rng, 2, 3, 4)
    if op == "Shape":
        same(ref(op, x), torch.tensor(T(x).shape))
        same(ref(op, x, start=1), torch.tensor(T(x).shape[1:]))
        same(ref(op, x, start=-2, end=-1), torch.tensor(T(x).shape[-2:-1]))
    elif op == "Size":
        same(ref(op, x), torch.tensor(T(x).numel()))
    else:
        for dim in (0, 2, -1):
            got = ref(op, x, dim=dim)
            assert isinstance(got, int) and got == T(x).size(dim)


@checks("Scalar")
def check_scalar(op, rng):
    """Python arithmetic on runtime sizes, against torch on 0-d tensors (python's floor / mod
    signs are torch's floor_divide / remainder)."""
    from skillmill.ir.ops.shape import SCALAR_FNS

    t = torch.tensor
    want = {
        "add": lambda a, b: t(a) + b, "sub": lambda a, b: t(a) - b, "mul": lambda a, b: t(a) * b,
        "truediv": lambda a, b: torch.true_divide(t(float(a), dtype=torch.float64), b),
        "floordiv": lambda a, b: torch.floor_divide(t(a), b), "mod": lambda a, b: torch.remainder(t(a), b),
        "pow": lambda a, b: torch.pow(t(a), b), "max": lambda a, b: torch.maximum(t(a), t(b)),
        "min": lambda a, b: torch.minimum(t(a), t(b)), "eq": lambda a, b: t(a) == b,
        "ne": lambda a, b: t(a) != b, "lt": lambda a, b: t(a) < b, "le": lambda a, b: t(a) <= b,
        "gt": lambda a, b: t(a) > b, "ge": lambda a, b: t(a) >= b,
        "and": lambda a, b: torch.logical_and(t(a), t(b)), "or": lambda a, b: torch.logical_or(t(a), t(b)),
    }  # fmt: skip
    unary = {"neg": lambda a: -t(a), "not": lambda a: torch.logical_not(t(a)), "float": lambda a: t(a).double(),
             "int": lambda a: t(a).trunc().long(), "ceil": lambda a: torch.ceil(t(a)), "floor": lambda a: torch.floor(t(a)),
             "sqrt": lambda a: torch.sqrt(t(float(a), dtype=torch.float64)), "abs": lambda a: torch.abs(t(a))}  # fmt: skip
    assert set(SCALAR_FNS) == set(want) | set(unary) | {"ite"}, "a new Scalar fn needs a check here"
    for a, b in ((7, 3), (-7, 3), (7, -3), (0, 5), (12, 4)):
        for fn, expected in want.items():
            if fn == "pow" and b < 0:
                continue
            got = ref(op, a, b=b, fn=fn) if fn not in ("and", "or") else ref(op, a > 0, b=b > 0, fn=fn)
            exp = expected(a, b) if fn not in ("and", "or") else expected(a > 0, b > 0)
            assert got == exp.item(), (fn, a, b, got, exp)
    for a in (7.5, -2.25, 3, 0):
        for fn, expected in unary.items():
            if fn == "sqrt" and a < 0:
                continue
            arg = bool(a) if fn == "not" else a
            got = ref(op, arg, fn=fn)
            assert got == pytest.approx(expected(arg).item()), (fn, a, got)
    assert ref(op, True, fn="ite", args=[True, 4, 9]) == 4 and ref(op, False, fn="ite", args=[False, 4, 9]) == 9
    assert ref(op, 3, fn="sub", a=10) == 7  # the constant first: 10 - 3


@checks("ScalarToTensor", "TensorToScalar")
def check_scalar_tensor(op, rng):
    if op == "ScalarToTensor":
        same(ref(op, 5), torch.tensor(5))
        same(ref(op, 2.5, dtype="float32"), torch.tensor(2.5, dtype=torch.float32))
        same(ref(op, True, dtype="bool"), torch.tensor(True))
    else:
        for value in (np.asarray(3, np.int64), np.asarray(-1.5, f32), np.array([7])):
            got, want = ref(op, value), T(value).item()
            assert got == want and type(got) is type(want), (got, want)


@checks("Tile")
def check_tile(op, rng):
    x = randn(rng, 2, 3)
    for reps in ([2, 1], [1, 3], [2, 2, 2], [3]):
        same(ref(op, x, repeats=reps), torch.tile(T(x), reps), what=str(reps))
    same(ref(op, x, np.array([2, 3])), torch.tile(T(x), (2, 3)))


@checks("Flip")
def check_flip(op, rng):
    x = randn(rng, 2, 3, 4)
    same(ref(op, x, dims=[0, 2]), torch.flip(T(x), [0, 2]))
    same(ref(op, x, dims=[-1]), torch.flip(T(x), [-1]))


@checks("Triu", "Tril")
def check_triangles(op, rng):
    fn = torch.triu if op == "Triu" else torch.tril
    x = randn(rng, 2, 4, 6)
    for diagonal in (0, 1, -2, 7):
        same(ref(op, x, diagonal=diagonal), fn(T(x), diagonal), what=str(diagonal))
    same(ref(op, x, np.asarray(-1)), fn(T(x), -1))  # ONNX Trilu's k input


@checks("Pad")
def check_pad(op, rng):
    x = randn(rng, 2, 3, 5)
    pads = [(0, 0), (1, 2), (2, 1)]
    torch_pads = (2, 1, 1, 2)  # last dim first
    same(ref(op, x, pads=pads, value=0.5), F.pad(T(x), torch_pads, value=0.5))
    crop = [(0, 0), (-1, 1), (2, -3)]  # negative pads crop
    same(ref(op, x, pads=crop), F.pad(T(x), (2, -3, -1, 1)))
    for mode, torch_mode in (("reflect", "reflect"), ("edge", "replicate"), ("wrap", "circular")):
        same(ref(op, x, pads=pads, mode=mode), F.pad(T(x), torch_pads, mode=torch_mode), what=mode)


@checks("CumSum")
def check_cumsum(op, rng):
    x = randn(rng, 3, 5)
    same(ref(op, x, axis=1), torch.cumsum(T(x), 1), atol=1e-5)
    same(ref(op, x, np.asarray(0)), torch.cumsum(T(x), 0), atol=1e-5)
    i = rng.integers(-5, 5, (3, 5))
    same(ref(op, i, axis=1, dtype="int64"), torch.cumsum(T(i), 1))
    same(ref(op, x > 0, axis=1, dtype="int64"), torch.cumsum(T(x > 0), 1))
    for exclusive in (0, 1):
        for reverse in (0, 1):
            want = onnx_ref("CumSum", [i, np.asarray(1)], exclusive=exclusive, reverse=reverse)[0]
            same(ref(op, i, axis=1, exclusive=bool(exclusive), reverse=bool(reverse)), want, what=f"{exclusive} {reverse}")
    same(ref(op, i, axis=1, reverse=True), torch.flip(torch.cumsum(torch.flip(T(i), [1]), 1), [1]))


@checks("OneHot")
def check_one_hot(op, rng):
    idx = rng.integers(0, 5, (3, 4))
    same(ref(op, idx, num_classes=6), F.one_hot(T(idx), 6))
    same(ref(op, idx), F.one_hot(T(idx)))


# -- extended ops -----------------------------------------------------------------------------
@checks("Sort")
def check_sort(op, rng):
    x = rng.integers(0, 4, (3, 8)).astype(f32)  # many ties: stable in both directions
    x[0, 2] = np.nan
    for descending in (False, True):
        for axis in (-1, 0):
            values, idx = ref(op, x, axis=axis, descending=descending, stable=True)
            want = torch.sort(T(x), dim=axis, descending=descending, stable=True)
            same(values, want.values, what=f"{descending} {axis}")
            same(idx, want.indices, what=f"{descending} {axis}")


@checks("SliceScatter")
def check_slice_scatter(op, rng):
    x = randn(rng, 3, 8)
    src = randn(rng, 3, 3)
    same(ref(op, x, src, dim=1, start=1, end=7, step=2), torch.slice_scatter(T(x), T(src), 1, 1, 7, 2))
    src0 = randn(rng, 2, 8)
    same(ref(op, x, src0, dim=0, start=-2), torch.slice_scatter(T(x), T(src0), 0, -2))


@checks("MaskedScatter")
def check_masked_scatter(op, rng):
    x = randn(rng, 3, 4)
    mask = rng.random((3, 4)) > 0.5
    source = randn(rng, 20)
    same(ref(op, x, mask, source), T(x).masked_scatter(T(mask), T(source)))
    row = rng.random((4,)) > 0.5  # broadcast over the rows
    same(ref(op, x, row, source), T(x).masked_scatter(T(row), T(source)))


@checks("GroupedMatMul")
def check_grouped_matmul(op, rng):
    x, w = randn(rng, 9, 4), randn(rng, 3, 4, 5)
    offs = np.array([3, 3, 7], np.int32)  # expert 1 gets no rows; rows 7, 8 in no group
    want = torch.zeros(9, 5)
    start = 0
    for group, end in enumerate(offs.tolist()):
        want[start:end] = T(x)[start:end] @ T(w)[group]
        start = end
    same(ref(op, x, w, offs), want, atol=1e-5)


@checks("Bucketize")
def check_bucketize(op, rng):
    x = np.array([[0.0, 1.0, 2.5], [3.0, -1.0, 9.0]], f32)
    edges = np.array([1.0, 2.0, 3.0], f32)
    for right in (False, True):
        same(ref(op, x, edges, right=right), torch.bucketize(T(x), T(edges), right=right))
    same(ref(op, x, edges, out_int32=True), torch.bucketize(T(x), T(edges), out_int32=True))


@checks("GridSample")
def check_grid_sample(op, rng):
    x = randn(rng, 2, 3, 4, 6)
    grid = (rng.random((2, 3, 5, 2)) * 2.4 - 1.2).astype(f32)  # some points outside the image
    for mode in ("bilinear", "nearest", "bicubic"):
        for padding in ("zeros", "border"):
            for align in (False, True):
                want = F.grid_sample(T(x), T(grid), mode=mode, padding_mode=padding, align_corners=align)
                got = ref(op, x, grid, mode=mode, padding_mode=padding, align_corners=align)
                same(got, want, atol=1e-5, what=f"{mode} {padding} {align}")


@checks("AssertScalar")
def check_assert_scalar(op, rng):
    """No torch counterpart: Python's own assert semantics (truthy passes, falsy raises)."""
    for value in (True, 1, np.asarray(True), np.asarray(3)):
        assert ref(op, value, msg="m") == np.asarray(True)
    for value in (False, 0, np.asarray(False)):
        with pytest.raises(AssertionError, match="seq must be even"):
            ref(op, value, msg="seq must be even")


@checks("Unfold")
def check_unfold(op, rng):
    x = randn(rng, 2, 9, 4)
    same(ref(op, x, dim=1, size=3, step=2), T(x).unfold(1, 3, 2))
    same(ref(op, x, dim=-1, size=4, step=1), T(x).unfold(-1, 4, 1))


@checks("CumMax", "CumMin")
def check_cumulative_extreme(op, rng):
    fn = torch.cummax if op == "CumMax" else torch.cummin
    x = np.array([[1.0, 1.0, 0.0, 1.0, 2.0, 2.0], [3.0, -1.0, 3.0, 0.0, 4.0, 4.0]], f32)  # ties
    for axis in (1, 0):
        values, idx = ref(op, x, axis=axis)
        want = fn(T(x), axis)
        same(values, want.values, what=str(axis))
        same(idx, want.indices, what=str(axis))


@checks("AsStrided")
def check_as_strided(op, rng):
    x = randn(rng, 3, 6)
    same(ref(op, x, size=[2, 4, 2], stride=[6, 1, 2], offset=1), torch.as_strided(T(x), (2, 4, 2), (6, 1, 2), 1))
    same(ref(op, x, size=[3, 3], stride=[1, 3]), torch.as_strided(T(x), (3, 3), (1, 3)))


@checks("RepeatIndex")
def check_repeat_index(op, rng):
    repeats = np.array([2, 0, 3, 1])
    same(ref(op, repeats), torch.repeat_interleave(T(repeats)))


@checks("NonZero")
def check_nonzero(op, rng):
    x = randn(rng, 3, 5)
    x[x < 0.3] = 0
    same(ref(op, x), torch.nonzero(T(x)))
    same(ref(op, np.zeros((2, 2), f32)), torch.nonzero(torch.zeros(2, 2)))


@checks("EmbeddingBag")
def check_embedding_bag(op, rng):
    weight, indices = randn(rng, 10, 4), np.array([1, 4, 4, 9, 0, 2, 2, 7], np.int64)
    offsets, scale = np.array([0, 3, 3, 5], np.int64), randn(rng, 8)
    for mode, name in enumerate(("sum", "mean", "max")):
        want = F.embedding_bag(T(indices), T(weight), T(offsets), mode=name)
        same(ref(op, weight, indices, offsets, mode=mode)[0], want, atol=1e-6, what=name)
    want = F.embedding_bag(T(indices), T(weight), T(offsets), mode="sum", per_sample_weights=T(scale))
    same(ref(op, weight, indices, offsets, scale, mode=0)[0], want, atol=1e-6, what="weighted")
    want = F.embedding_bag(T(indices), T(weight), T(offsets), mode="sum", padding_idx=4)
    same(ref(op, weight, indices, offsets, mode=0, padding_idx=4)[0], want, atol=1e-6, what="padding")


@checks("UniqueConsecutive")
def check_unique_consecutive(op, rng):
    for x in (np.array([0, 0, 16, 16, 32, 32, 48]), np.array([[1, 1], [2, 1]]), np.array([5])):
        for got, want in zip(ref(op, x), torch.unique_consecutive(T(x), return_inverse=True, return_counts=True)):
            same(got, want)


@checks("Histc")
def check_histc(op, rng):
    x = np.array([[0.0, 3.0, 3.0], [1.0, 7.0, 2.5]], f32)  # 7 is outside; 3 -> the last bin
    same(ref(op, x, bins=4, min=0, max=3), torch.histc(T(x), bins=4, min=0, max=3))
    y = randn(rng, 4, 6)
    same(ref(op, y, bins=5), torch.histc(T(y), bins=5))  # the data's own range
    same(ref(op, np.full((3,), 2.0, f32), bins=3), torch.histc(torch.full((3,), 2.0), bins=3))  # an empty range


@checks("Resize")
def check_resize(op, rng):
    x = randn(rng, 2, 3, 4, 6)
    cases = [
        ({"size": [8, 3], "mode": "nearest"}, {"size": (8, 3), "mode": "nearest"}),
        ({"size": [9, 4], "mode": "linear"}, {"size": (9, 4), "mode": "bilinear"}),
        ({"size": [9, 13], "mode": "linear", "align_corners": True}, {"size": (9, 13), "mode": "bilinear", "align_corners": True}),
        ({"size": None, "scales": [2.0, 1.5], "mode": "linear"}, {"scale_factor": (2.0, 1.5), "mode": "bilinear"}),
        ({"size": None, "scales": [2.0, 2.0], "mode": "nearest"}, {"scale_factor": 2.0, "mode": "nearest"}),
        ({"size": [3, 2], "mode": "linear", "antialias": True}, {"size": (3, 2), "mode": "bilinear", "antialias": True}),
        ({"size": [7, 4], "mode": "linear", "antialias": True}, {"size": (7, 4), "mode": "bilinear", "antialias": True}),
        ({"size": [3, 10], "mode": "cubic", "antialias": True}, {"size": (3, 10), "mode": "bicubic", "antialias": True}),
        ({"size": [2, 5], "mode": "cubic", "antialias": True, "align_corners": True},
         {"size": (2, 5), "mode": "bicubic", "antialias": True, "align_corners": True}),
    ]  # fmt: skip
    for attrs, kw in cases:
        same(ref(op, x, **attrs), F.interpolate(T(x), **kw), atol=1e-5, what=str(attrs))
    x1 = randn(rng, 1, 2, 5)
    same(ref(op, x1, size=[8], mode="linear"), F.interpolate(T(x1), size=8, mode="linear"), atol=1e-5)
    x3 = randn(rng, 1, 2, 3, 4, 5)
    same(ref(op, x3, size=[5, 6, 7], mode="linear"), F.interpolate(T(x3), size=(5, 6, 7), mode="trilinear"), atol=1e-5)


@checks("FFT")
def check_fft(op, rng):
    """Against torch.fft's own entry points, complex results as view_as_real pairs."""
    x = randn(rng, 2, 6, 5)
    pairs = lambda z: torch.view_as_real(z)  # noqa: E731
    same(ref(op, x, kind="r2c", dims=[1, 2]), pairs(torch.fft.rfftn(T(x), dim=(1, 2))), atol=1e-5)
    same(ref(op, x, kind="r2c", dims=[1, 2], onesided=False, normalization=1),
         pairs(torch.fft.fftn(T(x), dim=(1, 2), norm="ortho")), atol=1e-5)  # fmt: skip
    z = randn(rng, 2, 6, 5, 2)
    zc = torch.view_as_complex(T(z))
    same(ref(op, z, kind="c2c", dims=[1]), pairs(torch.fft.fft(zc, dim=1)), atol=1e-5)
    same(ref(op, z, kind="c2c", dims=[1, 2], forward=False, normalization=2),
         pairs(torch.fft.ifftn(zc, dim=(1, 2))), atol=1e-6)  # fmt: skip
    same(ref(op, z, kind="c2r", dims=[2], normalization=2, last_dim_size=8),
         torch.fft.irfft(zc, n=8, dim=2), atol=1e-6)  # fmt: skip
    same(ref(op, z, kind="c2r", dims=[1, 2], normalization=1, last_dim_size=9),
         torch.fft.irfftn(zc, s=(6, 9), dim=(1, 2), norm="ortho"), atol=1e-6)  # fmt: skip


# -- the table and its completeness -----------------------------------------------------------
@pytest.mark.parametrize("op", sorted(CHECKS))
def test_reference_matches_an_independent_implementation(op):
    rng = np.random.default_rng(sum(map(ord, op)))
    CHECKS[op](op, rng)


def test_every_op_is_checked():
    """An op added to the table without an independent check here fails this test."""
    unchecked = sorted(set(OPS) - set(CHECKS))
    assert not unchecked, f"ops whose reference nothing independent checks: {unchecked}"
    stale = sorted(set(CHECKS) - set(OPS))
    assert not stale, f"checks for ops that are not in the table: {stale}"

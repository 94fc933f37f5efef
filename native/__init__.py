"""skillmill.native: the C SIMD kernel library, the CPU fast path every skill calls.

The kernels are C, built by cffi at ``pip install`` time, written once against a small SIMD
vocabulary and compiled for AVX-512, AVX2+FMA, NEON and scalar; the path is chosen at run
time from CPUID (``info()`` says which).  If no compiler was available the package still
imports: ``available()`` is False, ``unavailable_reason()`` says why, and every op raises
``NativeUnavailableError`` so callers fall back to torch.

Stable API (numpy in, numpy out; see each docstring for details)
-----------------------------------------------------------------
Linear algebra
    matmul(a, b, out=None)                       a[..., M, K] @ b[..., K, N], batch broadcast;
                                                 transposed views (w.T, k.swapaxes(-1, -2)) are
                                                 read in place
    linear(x, w, bias=None, activation="none", out=None)
                                                 act(x @ w.T + bias); w [out, in] like torch
    pack_linear_weight(w) -> PackedLinearWeight   w packed once for the active ISA's GEMM
    linear_packed(x, packed, bias=None, activation="none", residual=None, out=None)
                                                 act(x @ w.T + bias) + residual, no packing
    quantize_int8(w) -> (q, scales)               per-output-channel symmetric int8
    matmul_int8(x, q, scales, bias=None, activation="none", out=None)   weight-only int8
    linear_int8_dynamic(x, q, scales, bias=None, activation="none", out=None)
                                                 int8 x int8: x quantized per token at run
                                                 time, exact int32 products, scaled back;
                                                 q int8 [out, in] or pack_int8_weight(q)
    pack_int8_weight(q) -> PackedInt8Weight       q repacked once for the active ISA
    quantize_per_token_int8(x) -> (xq, xs)       that activation quantization on its own
    quantize_q4_0(w) -> (q, scales)               32-value blocks, one fp32 scale each
    matmul_q4_0(x, q, scales, bias=None, activation="none", out=None)
    quantize_q8_0(w) -> (q, scales)               32 int8 values a block, one fp32 scale each
    matmul_q8_0(x, q, scales, bias=None, activation="none", out=None)
    dequantize_int8(q, scales), dequantize_q4_0(q, scales, in_features),
    dequantize_q8_0(q, scales, in_features)
Transformer blocks
    softmax(x, mask=None, causal=False, out=None)          last axis; mask additive or bool
    layer_norm(x, weight=None, bias=None, eps=1e-5, out=None)
    rms_norm(x, weight=None, eps=1e-6, out=None)
    attention(q, k, v, mask=None, causal=False, scale=None, out=None)
                                                 q [B,Hq,S,D], k/v [B,Hkv,S,D]; GQA when Hkv<Hq
    qkv_attention(qkv, heads, mask=None, causal=False, scale=None, out=None)
                                                 fused projection [B,S,3E] -> [B,S,E], heads
                                                 read in place (no transposed copies)
    gelu(x, approximate="none"|"tanh"), silu(x), relu(x), tanh(x), activation(x, kind)
    add(a, b, out=None)                          residual add (b same shape or one row)
    embedding(ids, table, out=None)              table[ids]
Vision
    conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)   NCHW
    max_pool2d(x, kernel_size, stride=None, padding=0)
    avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True)
Post-processing (every skill)
    mean_pool(hidden, mask=None)                 [B,S,H] x [B,S] -> [B,H]
    l2_normalize(x, eps=1e-12)
    topk(x, k) -> (values, indices)              last axis, best first
Control
    available(), unavailable_reason(), info(), cpu_features(), supported_isas()
    set_isa("auto"|"scalar"|"avx2"|"avx512"|"neon"), get_isa(), using_isa(name)
    set_num_threads(n), get_num_threads()
    reset_arena(), arena_stats()                 call reset_arena() between inferences
    get_gemm_blocking(), set_gemm_blocking(mc, kc, nc), peak_gflops(threads)

Argument policy: float arrays must be float32, C-contiguous and aligned, else TypeError /
ValueError before any C call (nothing is silently copied; matmul also takes transposed views
of C-contiguous arrays, read in place); masks and integer ids are converted deliberately.  ``out`` must match shape/dtype exactly and may not overlap inputs,
except that elementwise/row-wise ops may run in place (``out is x``).  Zero-size inputs
return empty (or zero-filled, for reductions over an empty axis) results.  The GIL is
released inside every kernel.

Environment: SKILLMILL_NATIVE_ISA (force a path; an unusable value falls back with a
warning and a note in info()), SKILLMILL_NATIVE_THREADS (default: usable cores),
SKILLMILL_NATIVE_DISABLE=1 (behave as if not built).
"""

from __future__ import annotations

from ._lib import NativeUnavailableError
from .control import (
    arena_stats,
    available,
    configure_from_env,
    cpu_features,
    get_gemm_blocking,
    get_isa,
    get_num_threads,
    info,
    peak_gflops,
    reset_arena,
    set_gemm_blocking,
    set_isa,
    set_num_threads,
    supported_isas,
    unavailable_reason,
    using_isa,
)
from .conv import avg_pool2d, conv2d, max_pool2d
from .linalg import (
    PackedInt8Weight,
    PackedLinearWeight,
    dequantize_int8,
    dequantize_q4_0,
    dequantize_q8_0,
    linear,
    linear_int8_dynamic,
    linear_packed,
    matmul,
    matmul_int8,
    matmul_q4_0,
    matmul_q8_0,
    pack_int8_weight,
    pack_linear_weight,
    quantize_int8,
    quantize_per_token_int8,
    quantize_q4_0,
    quantize_q8_0,
)
from .nn import (
    activation,
    add,
    attention,
    embedding,
    gelu,
    layer_norm,
    qkv_attention,
    relu,
    rms_norm,
    silu,
    softmax,
    tanh,
)
from .postprocess import l2_normalize, mean_pool, topk

__all__ = [
    "NativeUnavailableError",
    "PackedInt8Weight",
    "PackedLinearWeight",
    "activation",
    "add",
    "arena_stats",
    "attention",
    "available",
    "avg_pool2d",
    "conv2d",
    "cpu_features",
    "dequantize_int8",
    "dequantize_q4_0",
    "dequantize_q8_0",
    "embedding",
    "gelu",
    "get_gemm_blocking",
    "get_isa",
    "get_num_threads",
    "info",
    "l2_normalize",
    "layer_norm",
    "linear",
    "linear_int8_dynamic",
    "linear_packed",
    "matmul",
    "matmul_int8",
    "matmul_q4_0",
    "matmul_q8_0",
    "max_pool2d",
    "mean_pool",
    "pack_int8_weight",
    "pack_linear_weight",
    "peak_gflops",
    "qkv_attention",
    "quantize_int8",
    "quantize_per_token_int8",
    "quantize_q4_0",
    "quantize_q8_0",
    "relu",
    "reset_arena",
    "rms_norm",
    "set_gemm_blocking",
    "set_isa",
    "set_num_threads",
    "silu",
    "softmax",
    "supported_isas",
    "tanh",
    "topk",
    "unavailable_reason",
    "using_isa",
]

configure_from_env()

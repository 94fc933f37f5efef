"""The numeric precision a skill computes at: float32 unless the caller asks for another.

One table here says which precisions exist and how close each must come to PyTorch eager
float32 when an engine proves itself (``engines/parity.py``).  An engine that cannot compute at
the asked precision declines with the reason and the next one runs; PyTorch eager can always run
both, so the precision a result reports is the one that was asked for.

    load_skill("BertModel", model=path, precision="bf16")     # or SKILLMILL_PRECISION=bf16
    load_skill("BertModel", model=path, quantize="int8")      # int8, q4_0 or q8_0 weights

A quantization scheme is a precision too: the result says "int8" only when quantized weights
computed it (the native executor, ``ir/passes/quantize.py``); an engine that cannot run the
scheme declines with the reason, and the last resort, PyTorch eager, runs float32 and says so.
"""

from __future__ import annotations

import os

from .errors import SkillError

ENV_SWITCH = "SKILLMILL_PRECISION"
DEFAULT = "float32"

# max|engine - torch float32| / max|torch float32| an engine may reach on its first run.
# float32: reordered sums and fused kernels stay far below 1e-4 on every model the sweeps pass.
# bf16: 8 significant bits (a rounding step of 2^-8 = 3.9e-3 relative) at every matmul input;
# through a dozen layers that adds up to a few 1e-2 (OpenVINO's bf16 ResNet: 6.4e-2), so 1e-1
# passes honest bf16 and still catches a conversion that computes something else.
# int8 / q4_0 / q8_0 are compared on real tokens (engines/parity.py:real_positions).  int8
# (weights per channel, activations per token) moves all-MiniLM-L6-v2's hidden states by up to
# 3.5% of the largest value, q4_0's 4-bit weights by up to ~9%; a wrong conversion is off by
# ~100%.  q8_0's 8-bit blocks (weights only, activations float32) come closer than int8, so
# int8's bound holds them with room to spare.  Whether a scheme is good enough for a model is the quality gate's
# question (`generate-skills quantize`: cosine and ranking on real sentences), not this one's.
# qdq-w8a16 is what the qnn target computes (engines/qnn): uint8 weights and uint16 activations
# with ranges calibrated ahead (static QDQ), never asked for by name; all-MiniLM-L6-v2 on the
# HTP backend is within 1.7e-1 of float32 (pooler_output; last_hidden_state 7e-2).
PARITY_TOLERANCE = {"float32": 1e-4, "bf16": 1e-1, "int8": 2e-1, "q4_0": 5e-1, "q8_0": 2e-1,
                    "qdq-w8a16": 2.5e-1}  # fmt: skip
# Weight-quantization schemes (ir/passes/quantize.py); the native executor runs them.
QUANTIZED = ("int8", "q4_0", "q8_0")
# Precisions an engine arrives at by itself (weights and activations quantized), compared on real
# tokens like QUANTIZED, but not a precision= or quantize= a caller can ask for.
STATIC_QUANTIZED = ("qdq-w8a16",)

ALIASES = {"float32": "float32", "fp32": "float32", "f32": "float32",
           "bf16": "bf16", "bfloat16": "bf16", "int8": "int8", "q4_0": "q4_0", "q4": "q4_0",
           "q8_0": "q8_0", "q8": "q8_0"}  # fmt: skip


class UnknownPrecisionError(SkillError, ValueError):
    """``precision=`` (or ``SKILLMILL_PRECISION``) names no precision skillmill computes at."""


def resolve_precision(requested: str | None, quantize: str | None = None) -> tuple[str, str]:
    """(precision, where the choice came from): ``quantize=``, else the argument, else the
    environment, else float32."""
    if quantize is not None:
        scheme = ALIASES.get(quantize.strip().lower()) if isinstance(quantize, str) else None
        if scheme not in QUANTIZED:
            raise UnknownPrecisionError(f"unknown quantization scheme {quantize!r} (quantize=); "
                                        f"choose one of: {', '.join(QUANTIZED)}")  # fmt: skip
        if requested is not None and ALIASES.get(str(requested).strip().lower()) not in ("float32", scheme):
            raise UnknownPrecisionError(f"quantize={quantize!r} and precision={requested!r} contradict each "
                                        "other: quantized weights compute with float32 activations")  # fmt: skip
        return scheme, f"quantize={quantize}"
    if requested is not None:
        source, value = "precision=", requested
    else:
        value = os.environ.get(ENV_SWITCH, "").strip()
        if not value:
            return DEFAULT, "default"
        source = f"{ENV_SWITCH}="
    name = ALIASES.get(str(value).strip().lower()) if isinstance(value, str) else None
    if name is None:
        raise UnknownPrecisionError(
            f"unknown precision {value!r} ({source.rstrip('=')}); choose one of: "
            f"{', '.join(p for p in PARITY_TOLERANCE if p not in STATIC_QUANTIZED)} "
            f"(aliases: {', '.join(sorted(set(ALIASES) - set(PARITY_TOLERANCE)))})"
        )
    return name, f"{source}{value}"

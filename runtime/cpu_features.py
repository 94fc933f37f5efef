"""The CPU's SIMD features, read from the operating system (no compiled probe needed)."""

from __future__ import annotations

import functools
import platform

# Features we report, and the /proc/cpuinfo flag names that stand for them.
X86_FLAGS = {"sse2": "sse2", "avx": "avx", "avx2": "avx2", "fma": "fma", "avx512f": "avx512f",
             "avx512bw": "avx512bw", "avx512vl": "avx512vl", "avx512_vnni": "avx512_vnni",
             "avx512_bf16": "avx512_bf16", "amx_bf16": "amx_bf16"}  # fmt: skip


@functools.lru_cache(maxsize=1)
def cpu_features() -> dict[str, bool]:
    """{feature: bool} for the X86_FLAGS names and "neon"."""
    features = {name: False for name in (*X86_FLAGS, "neon")}
    machine = platform.machine().lower()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    for name, flag in X86_FLAGS.items():
        features[name] = flag in flags
    # AArch64 always has Advanced SIMD; 32-bit ARM lists it as "neon".
    features["neon"] = machine in ("arm64", "aarch64") or "neon" in flags or "asimd" in flags
    if machine == "arm64" and not flags:  # macOS: no /proc; Apple silicon has NEON, not x86 flags
        features["neon"] = True
    return features


def best_simd() -> str:
    features = cpu_features()
    for name in ("avx512f", "avx2", "avx", "sse2", "neon"):
        if features[name]:
            return name
    return "scalar"


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name ("AMD EPYC 9B45"), as the operating system reports it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"

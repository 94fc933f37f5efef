"""Compiled MAX graphs are cached by the IR's hash: a second load in a new process is fast, and
a Mojo kernel registered as a MAX custom op runs inside a MAX graph."""

import json
import subprocess
import sys
import textwrap

import numpy as np

from modular_helpers import ln_linear_graph, reference, relative_error

LOAD = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {helpers!r})
    from modular_helpers import ln_linear_graph
    import skillmill
    result = skillmill.compile_to_max(ln_linear_graph(), target_device="cpu", mojo_custom_ops={custom})
    print(json.dumps({{"ok": result.success, "error": result.error_message, "seconds": result.compilation_time,
                       "hit": result.metadata.get("cache_hit"), "path": result.compiled_path,
                       "custom": result.metadata.get("custom_ops")}}))
""")


def _compile_in_new_process(custom: bool) -> dict:
    import os

    code = LOAD.format(helpers=os.path.dirname(__file__), custom=custom)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1200)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stderr[-2000:]
    return json.loads(lines[-1])


def test_second_load_hits_the_cache_and_is_fast():
    first = _compile_in_new_process(custom=False)
    assert first["ok"], first["error"]
    second = _compile_in_new_process(custom=False)
    assert second["ok"] and second["hit"] is True
    assert second["path"] == first["path"]
    assert second["seconds"] < 5.0


def test_mojo_kernels_as_max_custom_ops():
    """LayerNorm and Linear (+ gelu, N = 48: whole panels at SIMD width 4 or 8, one and a half
    at AVX-512's 16) lower to skillmill's Mojo kernels registered as MAX custom ops at the host's
    width; with them off, MAX's own ops; both equal the IR.  Every width and many N, K and M:
    test_mojo_linear_panels.py."""
    import skillmill

    graph = ln_linear_graph(out=48)
    result = skillmill.compile_to_max(graph, target_device="cpu", mojo_custom_ops=True)
    assert result.success, result.error_message
    assert result.metadata["custom_ops"] == ["skillmill_layer_norm", "skillmill_linear"]
    x = np.random.default_rng(2).standard_normal((2, 7, 48)).astype(np.float32)
    want = reference(graph, {"x": x})["z"]
    assert relative_error(result.model.run({"x": x})["z"], want) <= 1e-5
    plain = skillmill.compile_to_max(graph, target_device="cpu", mojo_custom_ops=False)
    assert plain.success and plain.metadata["custom_ops"] == []
    assert relative_error(plain.model.run({"x": x})["z"], want) <= 1e-5
    assert plain.compiled_path != result.compiled_path  # the custom ops are part of the cache key


def test_the_key_changes_with_the_cpu_and_nothing_else(monkeypatch):
    """A cache folder may be shared by machines (CI keeps it between runs, and the CPU can change
    between sessions): an artifact compiled for an AVX-512 host must not load on an AVX2 one.
    Renaming the graph or its report changes nothing; the CPU's ISA or model does."""
    from skillmill.engines.modular import cache

    graph = ln_linear_graph()
    key = cache.graph_key(graph, "cpu")
    renamed = graph.copy()
    renamed.name = "another-name"
    renamed.metadata["report"] = {"anything": 1}
    assert cache.graph_key(renamed, "cpu") == key
    assert cache.graph_key(graph, "cpu") == key  # deterministic within a process (and across: above)
    here = cache.cpu_identity()
    monkeypatch.setattr(cache, "cpu_identity", lambda: here.replace("avx2", "") + " avx512f")
    assert cache.graph_key(graph, "cpu") != key


def test_cpu_identity_tells_isas_apart_on_a_shared_model_name(tmp_path, monkeypatch):
    """Two virtual CPUs both named "AMD EPYC": the flags and model numbers tell them apart, while
    kernel-side flags (constant_tsc) that do not change the code are left out."""
    from pathlib import Path

    from skillmill.engines.modular import cache

    def identity(model: str, flags: str) -> str:
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: {model}\n"
                        f"model name\t: AMD EPYC\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
        real_path = Path
        monkeypatch.setattr(cache, "Path", lambda p: real_path(info) if p == "/proc/cpuinfo" else real_path(p))
        return cache.cpu_identity()

    avx2 = identity("1", "fpu sse sse2 avx avx2 fma constant_tsc")
    avx512 = identity("17", "fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_bf16 constant_tsc")
    assert avx2 != avx512 and "avx512_bf16" in avx512 and "constant_tsc" not in avx2
    assert identity("1", "fpu sse sse2 avx avx2 fma") == avx2  # a kernel flag alone: same key

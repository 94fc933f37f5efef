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

"""Dispatch, environment overrides, threads, the arena, GIL release, fork safety and the
unavailable fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from native_helpers import native, rand


def run_py(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120
    )


def test_info_reports_dispatch():
    info = native.info()
    assert info["available"] and info["reason"] is None
    assert info["isa"] in info["supported_isas"]
    assert "scalar" in info["supported_isas"]
    # the widest runnable path, in the dispatcher's order of preference (dispatch.c skm_best_isa)
    preferred = [i for i in ("avx512", "avx2", "neon") if i in info["supported_isas"]]
    assert info["best_isa"] == (preferred[0] if preferred else "scalar")
    assert info["threads"] >= 1 and info["gemm"]["mr"] == 6


def test_set_isa_rejects_unknown_and_unsupported():
    with pytest.raises(ValueError, match="unknown ISA"):
        native.set_isa("sse9")
    missing = [i for i in ("avx512", "neon", "avx2") if i not in native.supported_isas()]
    for name in missing:
        with pytest.raises(ValueError, match="not available"):
            native.set_isa(name)
    before = native.get_isa()
    with native.using_isa("scalar"):
        assert native.get_isa() == "scalar"
    assert native.get_isa() == before


def test_env_var_forces_scalar_path():
    code = (
        "import json, numpy as np, skillmill.native as n; "
        "a = np.ones((7, 9), np.float32); "
        "print(json.dumps([n.get_isa(), n.get_num_threads(), float(n.matmul(a, a.T.copy())[0, 0])]))"
    )
    out = run_py(code, SKILLMILL_NATIVE_ISA="scalar", SKILLMILL_NATIVE_THREADS="1")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["scalar", 1, 9.0]


def test_env_var_with_unusable_isa_falls_back_with_reason():
    missing = [i for i in ("avx512", "neon") if i not in native.supported_isas()]
    name = missing[0] if missing else "bogus"
    out = run_py(
        "import json, skillmill.native as n; print(json.dumps(n.info()))", SKILLMILL_NATIVE_ISA=name
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["isa"] == info["best_isa"]
    assert any(name in note for note in info["notes"]) and "RuntimeWarning" in out.stderr


def test_disabled_library_reports_reason_and_raises():
    code = (
        "import numpy as np, skillmill.native as n\n"
        "print(n.available(), n.unavailable_reason())\n"
        "try:\n    n.softmax(np.ones(3, np.float32))\n"
        "except n.NativeUnavailableError as e:\n    print('raised', e)\n"
    )
    out = run_py(code, SKILLMILL_NATIVE_DISABLE="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("False unavailable:") and "raised" in out.stdout


def test_set_num_threads_validates():
    with pytest.raises(ValueError):
        native.set_num_threads(0)
    with pytest.raises(ValueError):
        native.set_num_threads(1000)
    before = native.get_num_threads()
    native.set_num_threads(3)
    assert native.get_num_threads() == 3
    native.set_num_threads(before)


def test_arena_steady_state_does_not_allocate(rng):
    x, w = rand(rng, 300, 200), rand(rng, 500, 200)
    q, k = rand(rng, 1, 4, 100, 32), rand(rng, 1, 4, 100, 32)

    def inference():
        native.linear(x, w, activation="gelu")
        native.attention(q, k, k, causal=True)
        native.conv2d(rand(rng, 1, 3, 20, 20), rand(rng, 8, 3, 3, 3), padding=1)

    inference()
    native.reset_arena()  # consolidates to the high-water mark
    before = native.arena_stats()["system_allocs"]
    for _ in range(3):
        inference()
        native.reset_arena()
    stats = native.arena_stats()
    assert stats["system_allocs"] == before
    assert stats["reserved_bytes"] >= stats["highwater_bytes"] > 0


def test_kernels_release_the_gil(rng):
    a = rand(rng, 700, 700)
    native.set_num_threads(1)
    try:

        def spin(seconds):
            count, end = 0, time.perf_counter() + seconds
            while time.perf_counter() < end:
                count += 1
            return count

        baseline = spin(0.2)
        done = threading.Event()

        def work():
            for _ in range(10):
                native.matmul(a, a)
            done.set()

        worker = threading.Thread(target=work)
        worker.start()
        time.sleep(0.01)
        start, count = time.perf_counter(), 0
        while not done.is_set():
            count += 1
        elapsed = time.perf_counter() - start
        worker.join()
        # With the GIL held through each ~10 ms matmul this loop would barely run.
        assert count / max(elapsed, 1e-9) > 0.05 * baseline / 0.2
    finally:
        native.set_num_threads(2)


def test_concurrent_python_threads_get_correct_results(rng):
    a, b = rand(rng, 150, 170), rand(rng, 170, 130)
    ref = native.matmul(a, b)
    errors = []

    def work():
        for _ in range(20):
            if not np.array_equal(native.matmul(a, b), ref):
                errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_survives_fork(rng):
    a = rand(rng, 300, 300)
    ref = native.matmul(a, a)  # starts the worker threads in the parent
    pid = os.fork()
    if pid == 0:  # child: the pool must restart its workers, not wait on dead ones
        ok = np.allclose(native.matmul(a, a), ref)
        os._exit(0 if ok else 1)
    deadline = time.time() + 60
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    pytest.fail("child hung after fork")


def test_peak_gflops_is_positive():
    assert native.peak_gflops(1, seconds=0.02) > 0

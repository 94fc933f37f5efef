"""The harness: forked sweep workers with a memory cap on top of what each one inherits, and
modules run in their own process with a time limit."""

import os
import resource

from skillmill.measure import harness


def _limits(_item):
    return {"cap": resource.getrlimit(resource.RLIMIT_AS)[0], "mapped": harness._address_space_bytes()}


def test_worker_memory_cap_counts_on_top_of_the_inherited_address_space():
    """A CUDA build of torch maps several GB before any model exists; a flat cap failed every
    type on an H100 machine with MemoryError."""
    import torch  # noqa: F401  (what the sweeps import before forking)

    inherited = harness._address_space_bytes()
    row = harness.run_parallel(["one"], _limits, jobs=1, timeout=60)["one"]
    assert inherited > 256 * 1024**2  # torch alone maps several hundred MB
    # The worker measures its own mapping after the fork; the parent's may shrink or grow by a
    # few MB in between (allocator trims, pipe buffers), so compare against half of it: a flat
    # cap (the bug) leaves nothing of the inherited space above MEMORY_LIMIT_BYTES.
    assert row["cap"] - harness.MEMORY_LIMIT_BYTES >= inherited // 2
    assert row["cap"] <= row["mapped"] + harness.MEMORY_LIMIT_BYTES


def test_a_module_in_its_own_process_answers_with_its_last_json_line_or_says_why_not(tmp_path):
    (tmp_path / "answers.py").write_text("print('warming up')\nprint('{\"a\": 1}')\nprint('{\"a\": 2}')\n")
    (tmp_path / "fails.py").write_text("print('{\"a\": 1}')\nraise ValueError('boom')\n")
    (tmp_path / "hangs.py").write_text("import time\ntime.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    assert harness.json_from_module("answers", [], 60, env) == ({"a": 2}, "", "")
    row, why, stderr = harness.json_from_module("fails", [], 60, env)
    assert row is None and why == "ValueError: boom" and "Traceback" in stderr
    assert harness.json_from_module("hangs", [], 1, env) == (None, "no result after 1 s", None)


def test_a_timeout_beside_other_work_is_measured_again_alone(tmp_path):
    """Issue 24: a type that times out is re-measured once alone before it counts as a timeout;
    every row records its seconds."""
    import time

    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def check(item: str) -> dict:
        tries = len(list(attempts.glob(f"{item}.*")))
        (attempts / f"{item}.{tries}").touch()
        if item == "always-slow" or (item == "slow-once" and tries == 0):
            time.sleep(5)
        return {"status": "pass"}

    seen = []
    rows = harness.run_parallel(["fast", "slow-once", "always-slow"], check, jobs=2, timeout=1.0,
                                on_result=lambda item, row: seen.append(item))  # fmt: skip
    assert rows["fast"]["status"] == "pass" and "note" not in rows["fast"]
    assert rows["slow-once"]["status"] == "pass"
    assert rows["slow-once"]["note"].startswith("timed out beside other work")
    assert rows["always-slow"]["stage"] == "timeout"
    assert rows["always-slow"]["note"] == "timed out twice, the second time measured alone"
    assert all(isinstance(r["seconds"], float) for r in rows.values())
    assert sorted(p.name for p in attempts.iterdir()) == [
        "always-slow.0", "always-slow.1", "fast.0", "slow-once.0", "slow-once.1"]
    assert sorted(seen) == ["always-slow", "fast", "slow-once"]  # one final row each
    # One job: nothing ran beside it, so a timeout counts at once.
    for p in attempts.iterdir():
        p.unlink()
    alone = harness.run_parallel(["always-slow"], check, jobs=1, timeout=1.0)
    assert alone["always-slow"]["stage"] == "timeout" and "note" not in alone["always-slow"]

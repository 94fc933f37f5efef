"""The forked sweep workers: a memory cap on top of what each one inherits."""

import resource

from skillmill.registry import sweep


def _limits(_item):
    return {"cap": resource.getrlimit(resource.RLIMIT_AS)[0], "mapped": sweep._address_space_bytes()}


def test_worker_memory_cap_counts_on_top_of_the_inherited_address_space():
    """A CUDA build of torch maps several GB before any model exists; a flat cap failed every
    type on an H100 machine with MemoryError."""
    import torch  # noqa: F401  (what the sweeps import before forking)

    inherited = sweep._address_space_bytes()
    row = sweep.run_parallel(["one"], _limits, jobs=1, timeout=60)["one"]
    assert inherited > 0
    assert row["cap"] >= inherited + sweep.MEMORY_LIMIT_BYTES
    assert row["cap"] <= row["mapped"] + sweep.MEMORY_LIMIT_BYTES

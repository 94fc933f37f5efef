"""Where compiled MAX graphs and Mojo modules live, and the keys that name them.

Everything goes under ``MODULAR_CACHE_DIR`` (default ``~/.cache/skillmill/modular``, outside any
clone, so CI keeps it between runs).  MAX keeps its own kernel cache there too.

A compiled MAX graph is keyed by the IR's structure (nodes, attributes, input and weight specs),
the values of the weights baked in as constants, a digest of the lowering's source, the MAX version, the
device and the host CPU (``cpu_identity``: MAX and mojo compile for the CPU they run on, so an
artifact built where AVX-512 exists must not be loaded where it does not).  The same
architecture with other weights hits the cache, because big weights are bound at load time;
names and reports do not change the key."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def cache_root() -> Path:
    return Path(os.environ.get("MODULAR_CACHE_DIR") or Path.home() / ".cache" / "skillmill" / "modular")


def graphs_dir() -> Path:
    path = cache_root() / "skillmill-max-graphs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def mojo_dir() -> Path:
    path = cache_root() / "skillmill-mojo-modules"
    path.mkdir(parents=True, exist_ok=True)
    return path


def graph_key(graph: Any, target: str, extra: dict[str, Any] | None = None) -> str:
    """sha256 over what determines the compiled artifact (see the module docstring)."""
    from skillmill.ir.serialize import graph_to_json

    from .lowering import LOWERING_VERSION, constant_weight

    document = graph_to_json(graph)
    document.pop("metadata", None)  # names and reports do not change the compiled graph
    document.pop("name", None)
    digest = hashlib.sha256()
    digest.update(json.dumps({"lowering": LOWERING_VERSION, "max": _max_version(), "target": target,
                              "cpu": cpu_identity(), "extra": extra or {}}, sort_keys=True).encode())  # fmt: skip
    digest.update(json.dumps(document, sort_keys=True, default=str).encode())
    for name in sorted(graph.weights):
        array = np.asarray(graph.weights[name])
        if constant_weight(array):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:32]


def text_key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


# /proc/cpuinfo flags that change what a compiler may emit for this host; the rest (kernel and
# hypervisor features such as constant_tsc) can change without the code changing, and must not
# throw a cache away.
_ISA_FLAG_PARTS = ("sse", "avx", "fma", "f16c", "bmi", "amx", "vnni", "bf16", "fp16", "vaes",
                   "vpclmul", "gfni", "sha", "aes", "popcnt", "movbe", "adx", "sve", "asimd")  # fmt: skip


def cpu_identity() -> str:
    """The host CPU as a compiler targeting it natively sees it: vendor, family, model, model name
    and instruction-set flags.  A virtual machine may call two CPUs "AMD EPYC"; family, model
    and flags tell an AVX-512 one from an AVX2 one."""
    import platform

    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.split("\n\n", 1)[0].splitlines():  # the first processor's block
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    if not fields:
        return f"{platform.machine()} {platform.processor()}".strip()
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    isa = sorted(f for f in flags if any(part in f for part in _ISA_FLAG_PARTS))
    described = [fields.get(k, "") for k in ("vendor_id", "cpu family", "model", "model name", "CPU part")]
    return " | ".join([platform.machine(), *described, " ".join(isa)])


def _max_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("max")
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write then rename, so a reader never sees half a file (two processes may compile the same
    graph at once; the last one wins with an identical artifact)."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(data, out, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None

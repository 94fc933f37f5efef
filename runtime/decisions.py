"""What ``device="auto"`` reads: the decision table that ``generate-skills tune`` measured, and
the choice it makes from it, with the reason in words.

The table is one JSON file in the user cache directory (``$SKILLMILL_DECISIONS``, else
``~/.cache/skillmill/decisions.json``).  Its entries are keyed by the model class, a digest of the
model's weights, an input-shape bucket and the precision; each stores the machine fingerprint it
was measured on, when, and per engine the median and p95 latency, the throughput, the first-call
cost, the peak memory growth, the parity verdict against PyTorch eager float32, or the reason the
engine did not run as itself.  An entry whose fingerprint differs from this machine's is ignored
(and the explanation says what changed); only engines whose parity passed are ever chosen.

This module is the read side and the file format; the measuring lives in
``skillmill.measure.manager`` (``UnifiedBackendManager``), which writes through ``record``.  On
the hot path a skill pays one ``os.stat`` per call: the table is parsed once per process and again
only when the file changes, the fingerprint is computed once per process and the weights digest
once per skill.  A corrupt table is never fatal and never rewritten here: ``decide`` says why it
was not used, and the next tune moves it aside and writes a fresh one.

    from skillmill.runtime.decisions import Constraints, choose
    choice = choose(skill, skill.example_inputs(1, 16), Constraints(startup_budget_s=60))
    choice.engine, choice.explanation
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .cpu_features import best_simd, cpu_model
from .native_switch import native_mode
from .precision import PARITY_TOLERANCE

ENV_PATH = "SKILLMILL_DECISIONS"
FORMAT = "skillmill-decisions"
VERSION = 1
# The packages whose versions are part of the fingerprint: each changes what an engine costs.
VERSIONED = ("torch", "max", "openvino", "onnxruntime")
# Parameter values sampled per tensor for the weights digest (evenly strided).
WEIGHT_SAMPLES = 256
FIXED_ORDER = "fixed order (run `generate-skills tune`)"


# ---- engines ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    """How a skill runs one engine: the hardware target, whether the cpu target's native
    executor is turned off for the call (PyTorch eager on the CPU), whether MAX/Mojo count as
    asked for, and the ``result.engine`` that proves it ran as itself (None: any, the target's
    own name is proof enough)."""

    target: str
    native_off: bool = False
    modular: bool = False
    engine: str | None = None

    def ran_as_itself(self, backend: str, engine: str) -> bool:
        return backend == self.target and (self.engine is None or engine == self.engine)


# Engine name in the table -> how it runs.  Compiled engines (max, mojo) pay a compile per model
# on their first call; the tune measures them only when asked (--include-compiled).
ROUTES = {
    "native": Route("cpu", engine="native"),
    "torch": Route("cpu", native_off=True, engine="torch"),
    "openvino": Route("openvino"),
    "onnxruntime": Route("onnxruntime"),
    "cuda": Route("cuda"),
    "rocm": Route("rocm"),
    "mps": Route("mps"),
    "max": Route("max", modular=True),
    "mojo": Route("mojo", modular=True),
}
COMPILED = ("max", "mojo")


# ---- constraints and choices -----------------------------------------------------------------
@dataclass(frozen=True)
class Constraints:
    """What an engine must satisfy to be chosen.

    objective: "latency" ranks by median milliseconds per call, "throughput" by items per second.
    max_error: the largest relative error against PyTorch eager float32 accepted; None means the
    precision's own tolerance (``runtime/precision.py`` PARITY_TOLERANCE).
    precisions: the precisions a skill may compute at.  memory_cap_bytes: the most the engine's
    first call may grow the process's peak resident memory (None: no cap; an engine whose growth
    was not measured is excluded under a cap).  startup_budget_s: an engine whose measured first
    call (conversion, compile, parity check) took longer is not chosen, and without a
    measurement auto starts no engine whose first call converts or compiles (its cost is
    unknown); None means no budget, for a long-running process that amortises a compile."""

    objective: str = "latency"
    max_error: float | None = None
    precisions: tuple[str, ...] = ("float32",)
    memory_cap_bytes: int | None = None
    startup_budget_s: float | None = 5.0

    def __post_init__(self):
        if self.objective not in ("latency", "throughput"):
            raise ValueError(f"objective must be 'latency' or 'throughput', not {self.objective!r}")
        if isinstance(self.precisions, str) or not self.precisions:
            raise ValueError("precisions must be a non-empty tuple such as ('float32',), not "
                             f"{self.precisions!r}")  # fmt: skip
        unknown = [p for p in self.precisions if p not in PARITY_TOLERANCE]
        if unknown:
            raise ValueError(
                f"unknown precisions {unknown}; choose from {', '.join(PARITY_TOLERANCE)}"
            )
        if self.max_error is not None and not _positive(self.max_error):
            raise ValueError(f"max_error must be a positive number (a relative error such as "
                             f"1e-4), not {self.max_error!r}: no engine's error can meet it")  # fmt: skip
        if self.memory_cap_bytes is not None and not _positive(self.memory_cap_bytes):
            raise ValueError(f"memory_cap_bytes must be a positive number of bytes, not "
                             f"{self.memory_cap_bytes!r}: no engine's first call can meet it")  # fmt: skip
        budget = self.startup_budget_s
        if budget is not None and not (_positive(budget) or budget == 0):
            raise ValueError(f"startup_budget_s must be seconds >= 0, or None for no budget "
                             f"(wait for any conversion or compile), not {budget!r}")  # fmt: skip

    def error_bound(self, precision: str) -> float:
        if self.max_error is not None:
            return self.max_error
        return PARITY_TOLERANCE.get(precision, PARITY_TOLERANCE["float32"])


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and value > 0  # fmt: skip


@dataclass(frozen=True)
class Bucket:
    """The input shape an entry stands for: the batch size, and the sequence length rounded up to
    a power of two, or an image's (frames,) height and width."""

    batch: int
    seq: int | None = None
    spatial: tuple[int, ...] | None = None

    def key(self) -> str:
        if self.spatial is not None:
            return f"b{self.batch}.hw{'x'.join(map(str, self.spatial))}"
        return f"b{self.batch}" + (f".s{self.seq}" if self.seq is not None else "")

    def describe(self) -> str:
        if self.spatial is not None:
            return f"batch {self.batch}, image {'x'.join(map(str, self.spatial))}"
        return f"batch {self.batch}" + (f", seq {self.seq}" if self.seq is not None else "")

    def as_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "seq": self.seq,
                "spatial": list(self.spatial) if self.spatial else None}  # fmt: skip


@dataclass(frozen=True)
class Choice:
    """What auto decided and why.  ``engine`` is None when no measurement decides (then the
    skill walks its fixed order and ``explanation`` says why); a Choice is truthy when it names
    an engine."""

    engine: str | None
    explanation: str
    route: Route | None = None
    bucket: Bucket | None = None
    measured_at: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)  # eligible engine -> median
    excluded: dict[str, str] = field(default_factory=dict)  # engine -> why not chosen
    # Engines ran as themselves and passed parity, but the caller's constraints (memory cap,
    # error bound, precisions) rule out every one: a request to refuse, not to fall back from.
    unsatisfiable: bool = False

    @property
    def target(self) -> str | None:
        return self.route.target if self.route else None

    def __bool__(self) -> bool:
        return self.engine is not None


# ---- the key ---------------------------------------------------------------------------------
def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def shape_bucket(skill: Any, batch: Mapping[str, Any]) -> Bucket:
    """The bucket of a prepared batch: its first main input decides (token ids: batch and
    sequence; images: batch and spatial shape; waveforms and features: batch and length)."""
    names = [*getattr(skill, "main_input_names", ()), *batch]
    tensor = next((batch[n] for n in names if n in batch and hasattr(batch[n], "shape")), None)
    if tensor is None or len(tensor.shape) == 0:
        return Bucket(1)
    shape = [int(d) for d in tensor.shape]
    floating = bool(getattr(tensor, "is_floating_point", lambda: False)())
    if floating and len(shape) >= 4:  # images [B, C, H, W]; video [B, F, C, H, W]
        return Bucket(shape[0], spatial=tuple(shape[1:2] + shape[-2:]) if len(shape) == 5
                      else tuple(shape[-2:]))  # fmt: skip
    if len(shape) >= 2:
        return Bucket(shape[0], seq=next_pow2(shape[1]))
    return Bucket(shape[0])


def weights_hash(skill: Any) -> str:
    """A cheap, stable digest of the skill's weights: every parameter's and buffer's name, shape
    and dtype, and an evenly strided sample of its values.  Computed once per skill (a model
    changed in place afterwards keeps its first digest)."""
    cached = skill.__dict__.get("_weights_hash")
    if cached is not None:
        return cached
    import torch

    digest = hashlib.sha256()
    tensors = [*skill.model.named_parameters(), *skill.model.named_buffers()]
    with torch.no_grad():
        for name, tensor in tensors:
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
            flat = tensor.detach().reshape(-1)
            if flat.numel() == 0 or flat.device.type == "meta":
                continue
            step = max(1, flat.numel() // WEIGHT_SAMPLES)
            sample = flat[::step][:WEIGHT_SAMPLES].contiguous().cpu()
            if sample.dtype in (torch.bfloat16, torch.float16):
                sample = sample.view(torch.int16)
            elif sample.dtype == torch.bool:
                sample = sample.to(torch.uint8)
            digest.update(sample.numpy().tobytes())
    value = skill.__dict__["_weights_hash"] = digest.hexdigest()[:16]
    return value


def entry_key(model_class: str, weights: str, bucket: Bucket, precision: str) -> str:
    return f"{model_class}|{weights}|{bucket.key()}|{precision}"


# ---- the machine -----------------------------------------------------------------------------
def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _accelerators() -> list[str]:
    try:
        import torch

        names = []
        if torch.cuda.is_available():
            names += [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            names.append("Apple MPS")
        return names
    except Exception as exc:  # a broken driver is part of what this machine is
        return [f"unreadable: {type(exc).__name__}"]


def machine_fingerprint() -> dict[str, Any]:
    """What a measurement is only valid on: CPU model, best SIMD, cores, accelerators, and the
    versions of the packages the engines come from (None when absent).  Read once per process;
    each call returns its own copy."""
    return copy.deepcopy(_fingerprint())


@functools.lru_cache(maxsize=1)
def _fingerprint() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "simd": best_simd(),
        "cores": os.cpu_count(),
        "accelerators": _accelerators(),
        "versions": {name: _version(name) for name in VERSIONED},
    }


def fingerprint_changes(recorded: Any, current: Mapping[str, Any]) -> list[str]:
    """What differs between a recorded fingerprint and this machine's, in words ([] = same)."""
    if not isinstance(recorded, Mapping):
        return ["no fingerprint recorded"]
    changes = []
    for key in ("cpu", "simd", "cores", "accelerators"):
        if recorded.get(key) != current.get(key):
            changes.append(f"{key} {recorded.get(key)!r} -> {current.get(key)!r}")
    old = recorded.get("versions") if isinstance(recorded.get("versions"), Mapping) else {}
    for name, now in current.get("versions", {}).items():
        if old.get(name) != now:
            changes.append(f"{name} {old.get(name) or 'absent'} -> {now or 'absent'}")
    return changes


# ---- the file --------------------------------------------------------------------------------
def table_path() -> Path:
    """``$SKILLMILL_DECISIONS``, else ``~/.cache/skillmill/decisions.json``."""
    return _path_for(os.environ.get(ENV_PATH, ""), os.environ.get("HOME", ""))


@functools.lru_cache(maxsize=16)
def _path_for(value: str, home: str) -> Path:  # building a Path costs more than the stat
    if value.strip():
        return Path(value.strip()).expanduser()
    return Path.home() / ".cache" / "skillmill" / "decisions.json"


@dataclass(frozen=True)
class Table:
    path: Path
    entries: dict[str, dict[str, Any]]
    error: str | None = None  # why the file cannot be used (corrupt, another format version)
    missing: bool = False


def parse_table(path: Path, text: str) -> Table:
    """The table in ``text``, or an empty one whose ``error`` says why it cannot be used."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Table(path, {}, f"not valid JSON: {exc}")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return Table(path, {}, f'not a skillmill decision table (no "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        return Table(path, {}, f"format version {data.get('version')!r}; this skillmill reads "
                               f"version {VERSION}")  # fmt: skip
    entries = data.get("entries")
    if not isinstance(entries, dict):
        return Table(path, {}, '"entries" is not an object')
    for key, entry in entries.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("engines"), dict)):
            return Table(path, {}, f'entry {key!r} has no "engines" object')
    return Table(path, entries)


_CACHE: dict[Path, tuple[tuple[int, int, int] | None, Table]] = {}


def read_table(path: Path | None = None) -> Table:
    """The table at ``path`` (default ``table_path()``), parsed once per process and again only
    when the file changes (inode, size or mtime).  Never raises, never warns, never writes."""
    path = path or table_path()
    cached = _CACHE.get(path)
    try:
        stat = os.stat(path)
    except OSError:
        if cached is None or cached[0] is not None:
            cached = _CACHE[path] = (None, Table(path, {}, missing=True))
        return cached[1]
    stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        table = parse_table(path, path.read_text(encoding="utf-8"))
    except OSError as exc:
        table = Table(path, {}, f"unreadable: {exc}")
    _CACHE[path] = (stamp, table)
    return table


def clear_cache() -> None:
    _CACHE.clear()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time (two tunes at once would drop each other's entries)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: last writer wins
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def record(entries: Mapping[str, dict[str, Any]], path: Path | None = None) -> str | None:
    """Add or replace ``entries`` in the table, written atomically (a temporary file, then
    ``os.replace``).  A table that cannot be read is moved aside to ``<name>.corrupt`` and a fresh
    one written; the returned note says so (None when nothing was replaced)."""
    path = path or table_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    note = None
    with _locked(path):
        try:
            table = parse_table(path, path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            table = Table(path, {}, missing=True)
        except OSError as exc:
            table = Table(path, {}, f"unreadable: {exc}")
        if table.error:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            note = f"the decision table {path} could not be used ({table.error}); moved it to " \
                   f"{aside} and wrote a fresh one"  # fmt: skip
        merged = {**table.entries, **entries}
        _write_atomically(path, {"format": FORMAT, "version": VERSION, "entries": merged})
    return note


def new_entry(skill: Any, bucket: Bucket, shape: Any, engines: dict[str, dict[str, Any]],
              repeats: int) -> dict[str, Any]:  # fmt: skip
    """A table entry for ``skill`` at ``bucket``, measured now on this machine."""
    return {
        "model_class": skill.model_class_name,
        "weights": weights_hash(skill),
        "bucket": bucket.as_dict(),
        "precision": skill.precision,
        "shape": list(shape),
        "fingerprint": machine_fingerprint(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeats": repeats,
        "engines": engines,
    }


# ---- the choice ------------------------------------------------------------------------------
def _megabytes(n: float) -> str:
    return f"{n / 2**20:.0f} MB"


def why_not(name: str, row: Any, skill: Any, constraints: Constraints) -> str | None:
    """Why the engine ``name`` with the measured ``row`` may not be chosen, or None."""
    return why_not_run(name, row, skill) or why_not_allowed(row, skill, constraints)


def why_not_run(name: str, row: Any, skill: Any) -> str | None:
    """Why the measurement itself rules the engine out (it fell back, has no timing, failed its
    parity check, is not a target of this skill), or None."""
    if not isinstance(row, Mapping):
        return "malformed row"
    if row.get("fallback_reason"):
        return f"did not run as itself in the tune: {str(row['fallback_reason'])[:160]}"
    median = row.get("median_ms")
    if not isinstance(median, (int, float)) or not math.isfinite(median) or median <= 0:
        return "no timing recorded"
    route = ROUTES.get(name)
    if route is None:
        return f"'{name}' is not an engine this skillmill knows"
    targets = getattr(skill, "targets", {})
    if route.target not in targets:
        return f"this skill has no '{route.target}' target"
    if route.engine == "native" and getattr(skill, "native", None) is False:
        return "the native executor is turned off for this skill (native=False)"
    parity = row.get("parity")
    if not isinstance(parity, Mapping) or parity.get("passed") is not True:
        detail = ""
        if isinstance(parity, Mapping) and parity.get("max_relative_error") is not None:
            detail = f": error {parity['max_relative_error']:.1e} > tolerance " \
                     f"{parity.get('tolerance', float('nan')):.0e}"  # fmt: skip
        return f"parity failed{detail}"
    return None


def why_not_allowed(row: Mapping[str, Any], skill: Any, constraints: Constraints) -> str | None:
    """Why the caller's own limits (precisions, error bound, memory cap) rule out an engine that
    ran as itself and passed parity, or None; the start-up budget is ``over_budget``'s."""
    precision = row.get("precision", skill.precision)
    if precision not in constraints.precisions:
        return f"ran at {precision}, not among the allowed precisions"
    bound = constraints.error_bound(precision)
    error = (row.get("parity") or {}).get("max_relative_error")
    if not isinstance(error, (int, float)) or error > bound:
        return f"error {error} > max_error {bound:.0e}"
    if constraints.memory_cap_bytes is not None:
        peak = row.get("peak_rss_delta_bytes")
        if not isinstance(peak, (int, float)):
            return "peak memory not measured, and a memory cap is set"
        if peak > constraints.memory_cap_bytes:
            return (
                f"peak memory +{_megabytes(peak)} > cap {_megabytes(constraints.memory_cap_bytes)}"
            )
    return over_budget(row, constraints)


def over_budget(row: Mapping[str, Any], constraints: Constraints) -> str | None:
    first = row.get("first_call_s")
    budget = constraints.startup_budget_s
    if budget is not None and isinstance(first, (int, float)) and first > budget:
        return f"first call {first:.1f} s > startup budget {budget:g} s"
    return None


def choose_from_entry(entry: Mapping[str, Any], skill: Any, bucket: Bucket,
                      constraints: Constraints) -> Choice:  # fmt: skip
    """The best engine of one valid entry under ``constraints``, explained."""
    eligible: dict[str, Mapping[str, Any]] = {}
    excluded: dict[str, str] = {}
    for name, row in entry["engines"].items():
        reason = why_not(name, row, skill, constraints)
        if reason is None:
            eligible[name] = row
        else:
            excluded[name] = reason
    where = bucket.describe()
    fingerprint = entry.get("fingerprint") or {}
    when = str(entry.get("measured_at", "?"))[:10]
    on = f"measured {when} on {fingerprint.get('cpu', '?')} ({fingerprint.get('simd', '?')})"
    not_chosen = "; ".join(f"{name}: {why}" for name, why in excluded.items())
    if not eligible:
        # Some engine ran as itself and passed parity, and the caller's own limits rule out every
        # such engine (the start-up budget alone does not: its default guards one-off calls).
        measured = [entry["engines"][n] for n in excluded
                    if why_not_run(n, entry["engines"][n], skill) is None]  # fmt: skip
        if measured and all(over_budget(row, constraints) is None for row in measured):
            return Choice(None, f"auto: the constraints rule out every engine measured for "
                                f"{skill.model_class_name} at {where}, {on}: {not_chosen}; relax "
                                f"them (memory_cap_bytes, max_error, precisions)",
                          bucket=bucket, excluded=excluded, unsatisfiable=True)  # fmt: skip
        return Choice(None, f"auto: no measured engine for {skill.model_class_name} at {where} "
                            f"meets the constraints ({not_chosen}); {FIXED_ORDER}",
                      bucket=bucket, excluded=excluded)  # fmt: skip
    if constraints.objective == "throughput":
        ranked = sorted(eligible, key=lambda n: -float(eligible[n].get("throughput") or 0.0))
    else:
        ranked = sorted(eligible, key=lambda n: float(eligible[n]["median_ms"]))
    best = ranked[0]
    timings = {name: float(eligible[name]["median_ms"]) for name in ranked}

    def figure(name: str) -> str:
        if constraints.objective == "throughput":
            return f"{float(eligible[name].get('throughput') or 0.0):.0f} items/s"
        return f"{timings[name]:.3g} ms"

    versus = "".join(f" vs {name} {figure(name)}" for name in ranked[1:])
    text = f"auto chose {best}: {figure(best)}{versus} at {where}, {on}"
    if excluded:
        text += f"; not eligible: {not_chosen}"
    return Choice(best, text, ROUTES[best], bucket, entry.get("measured_at"), timings, excluded)


def decide(skill: Any, signature: Any, constraints: Constraints | None = None,
           table: Table | None = None) -> Choice:  # fmt: skip
    """What auto does for ``skill`` on ``signature`` (a prepared batch, or a ``Bucket``): a Choice
    naming the engine, or one with ``engine=None`` whose explanation says why the fixed order
    runs (no entry, a changed fingerprint, a corrupt table, nothing eligible).  ``table``:
    another table than ``read_table()``'s."""
    constraints = constraints or Constraints()
    bucket = signature if isinstance(signature, Bucket) else shape_bucket(skill, signature)
    where = f"{skill.model_class_name} at {bucket.describe()}"
    if skill.precision not in constraints.precisions:
        return Choice(None, f"auto: precision {skill.precision} is not among the allowed "
                            f"({', '.join(constraints.precisions)}); {FIXED_ORDER}", bucket=bucket)  # fmt: skip
    table = table or read_table()
    if table.error:
        return Choice(None, f"auto: the decision table {table.path} is not used ({table.error}); "
                            "fixed order (the next `generate-skills tune` moves it aside and "
                            "writes a fresh one)", bucket=bucket)  # fmt: skip
    absent = Choice(None, f"auto: no measurement for {where} on this machine; {FIXED_ORDER}",
                    bucket=bucket)  # fmt: skip
    if not table.entries:
        return absent
    entry = table.entries.get(entry_key(skill.model_class_name, weights_hash(skill), bucket,
                                        skill.precision))  # fmt: skip
    if entry is None:
        return absent
    changes = fingerprint_changes(entry.get("fingerprint"), _fingerprint())
    if changes:
        return Choice(None, f"auto: the measurement for {where} ({entry.get('measured_at', '?')}) "
                            f"is ignored, the machine fingerprint changed ({'; '.join(changes)}); "
                            f"{FIXED_ORDER}", bucket=bucket)  # fmt: skip
    return choose_from_entry(entry, skill, bucket, constraints)


def choose(
    skill: Any, batch_signature: Any, constraints: Constraints | None = None
) -> Choice | None:
    """The measured choice for ``skill`` on ``batch_signature``, or None (``decide`` says why)."""
    choice = decide(skill, batch_signature, constraints)
    return choice if choice else None


def entries_for(skill: Any, table: Table | None = None) -> dict[str, dict[str, Any]]:
    """This skill's entries (its class, weights and precision), any bucket, by key."""
    table = table or read_table()
    prefix = f"{skill.model_class_name}|{weights_hash(skill)}|"
    suffix = f"|{skill.precision}"
    return {k: e for k, e in table.entries.items() if k.startswith(prefix) and k.endswith(suffix)}


def bucket_of(entry: Mapping[str, Any]) -> Bucket:
    data = entry.get("bucket") or {}
    spatial = data.get("spatial")
    return Bucket(int(data.get("batch", 1)), data.get("seq"), tuple(spatial) if spatial else None)


def within_budget(skill: Any, order: list[str], choice: Choice,
                  started: set[str]) -> tuple[list[str], Choice]:  # fmt: skip
    """Without a measured choice, the fixed ``order`` cut to what starts within the budget.

    An engine whose first call converts or compiles (OpenVINO, ONNX Runtime, MAX, Mojo, the
    native executor) costs seconds to minutes, unknown until measured, so under a start-up budget
    auto does not start one on an unmeasured shape: it keeps, in today's order, the engines this
    skill has ``started`` already and the targets whose declaration does not say ``converts``
    (CUDA, ROCm, MPS: PyTorch eager on the device; a template author's own), and runs the cpu
    target as PyTorch eager.  Its first result then arrives no later than the fastest-starting engine's.
    Unchanged where the caller lifted the budget (``startup_budget_s=None``), asked for another
    precision than float32 (the engine that computes it is the one asked for), or asked for the
    native executor by name (``native=True``/``"all"``)."""
    budget = skill.constraints.startup_budget_s
    if budget is None or skill.precision != "float32":
        return order, choice
    kept, deferred = [], []
    for name in order:
        target = skill.targets.get(name)
        if not getattr(target, "converts", False) or name in started or name == "cpu":
            kept.append(name)
        elif _runs_unasked(target):  # not probed: a probe imports the engine's package,
            deferred.append(name)  # which is part of what a first call costs
    mode, source = native_mode(skill)
    native_asked = mode != "off" and not source.endswith("=unset")
    eager_cpu = mode != "off" and not native_asked and "native" not in started and "cpu" in order
    if eager_cpu:
        deferred.append("native")
    if not deferred:  # nothing in the order converts, or it has started already
        return order, choice
    text = (f"{choice.explanation}; within the start-up budget ({budget:g} s) auto starts no "
            f"engine whose first call converts or compiles until it is measured (not started: "
            f"{', '.join(deferred)}){', so PyTorch eager ran' if eager_cpu else ''}; "
            f"`generate-skills tune`, auto_tune=True or Constraints(startup_budget_s=None) let "
            f"auto use them")  # fmt: skip
    if eager_cpu:  # no engine chosen (falsy), but the cpu target runs as PyTorch eager
        return kept, Choice(None, text, ROUTES["torch"], choice.bucket)
    return kept, replace(choice, explanation=text)


def _runs_unasked(target: Any) -> bool:
    """Whether a target would run under auto without being asked for by name (the browser and
    QNN targets, with negative priorities, run only when asked)."""
    return getattr(target, "priority", 0) >= 0


# ---- measuring on first use -------------------------------------------------------------------
# What ``auto_tune=True`` calls to measure: ``tuner(skill, batch)`` records the engines' figures
# for the batch's bucket in the table.  The measuring lives in skillmill.measure, above the
# runtime and never imported from it: the package root hands it over
# (``skillmill._measure_for_auto_tune``), unless ``register_tuner`` named another.
_TUNER: list[Callable[[Any, Any], Any]] = []


def register_tuner(tuner: Callable[[Any, Any], Any]) -> None:
    _TUNER[:] = [tuner]


def tune(skill: Any, batch: Any) -> Any:
    if not _TUNER:
        import skillmill

        register_tuner(skillmill._measure_for_auto_tune)
    return _TUNER[0](skill, batch)

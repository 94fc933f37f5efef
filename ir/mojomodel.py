"""The .mojomodel container: a versioned, hashed, length-prefixed file (see ir/README.md).

Layout (all integers little-endian)::

    magic          8 bytes   b"MOJOMDL\\x00"
    version        u32       FORMAT_VERSION
    header_length  u64
    header         JSON      {"format", "version", "schema", "created_by",
                              "sections": [{"name", "offset", "length", "sha256"}...],
                              "content_sha256"}
    sections       bytes     "ir" (JSON graph), "weights" (safetensors), "metadata" (JSON)
    trailer        32 bytes  sha256 of every byte before it
    end magic      8 bytes   b"MOJOEND\\x00"

Offsets are relative to the first byte after the header.  ``content_sha256`` is the hash of the
three sections in order; the trailer covers the header too, so any flipped bit, truncation or
appended garbage is refused before anything is parsed.  No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IRError, MojoModelError
from .graph import Graph
from .ops.quantized import check_quantized_layers
from .serialize import SCHEMA, dumps_graph, graph_from_json, weights_from_bytes, weights_to_bytes

MAGIC = b"MOJOMDL\x00"
END_MAGIC = b"MOJOEND\x00"
# 2: QLinear nodes with int8 / uint8 weights and float32 scales (quantized models).  Version 1
# files hold none, and read as before.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
SECTIONS = ("ir", "weights", "metadata")
_PREFIX = struct.Struct("<8sIQ")
_MAX_HEADER = 1 << 20


def compile_to_mojomodel(ir: Graph, output_path: str | os.PathLike, metadata: dict | None = None) -> str:
    """Write ``<output_path>.mojomodel`` (the suffix is added unless present); returns the path."""
    from .ops import OPS

    ir.validate(set(OPS))
    path = str(output_path)
    if not path.endswith(".mojomodel"):
        path += ".mojomodel"
    meta = {"name": ir.name, "inputs": {k: v.to_json() for k, v in ir.inputs.items()},
            "outputs": list(ir.outputs), "optimizations_applied":
            list(ir.metadata.get("optimizations_applied", [])), **(metadata or {})}  # fmt: skip
    blobs = {
        "ir": dumps_graph(ir),
        "weights": weights_to_bytes(ir.weights),
        "metadata": json.dumps(meta, sort_keys=True, default=str).encode("utf-8"),
    }
    sections, offset = [], 0
    for name in SECTIONS:
        blob = blobs[name]
        sections.append({"name": name, "offset": offset, "length": len(blob),
                         "sha256": hashlib.sha256(blob).hexdigest()})  # fmt: skip
        offset += len(blob)
    content = hashlib.sha256(b"".join(blobs[name] for name in SECTIONS)).hexdigest()
    header = json.dumps({"format": "mojomodel", "version": FORMAT_VERSION, "schema": SCHEMA,
                         "created_by": "skillmill.ir", "sections": sections,
                         "content_sha256": content}, sort_keys=True).encode("utf-8")  # fmt: skip
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header
    body += b"".join(blobs[name] for name in SECTIONS)
    data = body + hashlib.sha256(body).digest() + END_MAGIC
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
    return path


class LoadedMojoModel:
    """A loaded .mojomodel container: ``.run({input: array}) -> {output: array}`` on the native
    executor.  No Mojo is involved (the name is the file format's); the Mojo engine's model is
    ``skillmill.engines.modular.mojo_model.MojoModel``."""

    def __init__(self, graph: Graph, metadata: dict[str, Any], path: str, content_sha256: str):
        from .executor import Executor

        self.graph = graph
        self.metadata = metadata
        self.path = path
        self.content_sha256 = content_sha256
        self.executor = Executor(graph)

    @property
    def input_names(self) -> list[str]:
        return list(self.graph.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.graph.outputs)

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        return self.executor.run(feeds)

    def __repr__(self) -> str:
        return f"LoadedMojoModel({self.path!r}, inputs={self.input_names}, outputs={self.output_names})"


def load_mojomodel(path: str | os.PathLike) -> LoadedMojoModel:
    """Load and verify a .mojomodel; raises MojoModelError on any corruption or mismatch."""
    path = str(path)
    if not os.path.exists(path) and os.path.exists(path + ".mojomodel"):
        path += ".mojomodel"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MojoModelError(f"cannot read {path}: {exc}") from exc
    header, sections, content = _verify(data, path)
    try:
        graph_doc = json.loads(sections["ir"].decode("utf-8"))
        weights = weights_from_bytes(sections["weights"])
        metadata = json.loads(sections["metadata"].decode("utf-8"))
        graph = graph_from_json(graph_doc, weights)
        from .ops import OPS

        graph.validate(set(OPS))
        check_quantized_layers(graph)
        return LoadedMojoModel(graph, metadata, path, content)
    except MojoModelError:
        raise
    except (IRError, ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError) as exc:
        raise MojoModelError(f"{path}: invalid model content: {exc}") from exc
    except Exception as exc:  # safetensors raises its own error types
        raise MojoModelError(f"{path}: invalid model content: {type(exc).__name__}: {exc}") from exc


def _verify(data: bytes, path: str) -> tuple[dict, dict[str, bytes], str]:
    minimum = _PREFIX.size + 32 + len(END_MAGIC)
    if len(data) < minimum:
        raise MojoModelError(f"{path}: truncated ({len(data)} bytes) or not a .mojomodel file")
    magic, version, header_length = _PREFIX.unpack_from(data, 0)
    if magic != MAGIC:
        raise MojoModelError(f"{path}: not a .mojomodel file (bad magic {magic!r})")
    if version not in READABLE_VERSIONS:
        raise MojoModelError(f"{path}: format version {version} is not supported "
                             f"(this skillmill reads versions {', '.join(map(str, READABLE_VERSIONS))})")  # fmt: skip
    if data[-len(END_MAGIC) :] != END_MAGIC:
        raise MojoModelError(f"{path}: truncated (end marker missing)")
    body, digest = data[: -32 - len(END_MAGIC)], data[-32 - len(END_MAGIC) : -len(END_MAGIC)]
    if header_length > min(_MAX_HEADER, len(body) - _PREFIX.size):
        raise MojoModelError(f"{path}: truncated or corrupt header (length {header_length})")
    if hashlib.sha256(body).digest() != digest:
        raise MojoModelError(f"{path}: content hash mismatch: the file is truncated or was modified")
    try:
        header = json.loads(body[_PREFIX.size : _PREFIX.size + header_length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MojoModelError(f"{path}: corrupt header: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != "mojomodel":
        raise MojoModelError(f"{path}: header is not a mojomodel header")
    if header.get("version") != version:
        raise MojoModelError(f"{path}: header version {header.get('version')!r} != {version}")
    if header.get("schema") != SCHEMA:
        raise MojoModelError(f"{path}: IR schema {header.get('schema')!r} is not supported ({SCHEMA})")
    payload = body[_PREFIX.size + header_length :]
    sections: dict[str, bytes] = {}
    expected_offset = 0
    try:
        for entry, name in zip(header["sections"], SECTIONS, strict=True):
            if entry["name"] != name or entry["offset"] != expected_offset:
                raise MojoModelError(f"{path}: section table is malformed at {entry.get('name')!r}")
            blob = payload[entry["offset"] : entry["offset"] + entry["length"]]
            if len(blob) != entry["length"]:
                raise MojoModelError(f"{path}: section {name!r} is truncated")
            if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
                raise MojoModelError(f"{path}: section {name!r} hash mismatch (tampered)")
            sections[name] = blob
            expected_offset += entry["length"]
    except (KeyError, TypeError, ValueError) as exc:
        raise MojoModelError(f"{path}: section table is malformed: {exc}") from exc
    if expected_offset != len(payload):
        raise MojoModelError(f"{path}: {len(payload) - expected_offset} unexpected bytes after sections")
    content = hashlib.sha256(b"".join(sections[n] for n in SECTIONS)).hexdigest()
    if content != header.get("content_sha256"):
        raise MojoModelError(f"{path}: content hash mismatch (tampered)")
    return header, sections, content

"""The .mojomodel container: round trip, and a fuzz of corrupted files that must all be refused
with MojoModelError (never another exception, never a crash)."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest

from skillmill.ir import mojomodel
from skillmill.ir.errors import MojoModelError
from skillmill.ir.mojomodel import compile_to_mojomodel, load_mojomodel
from skillmill.ir.serialize import graph_from_json, graph_to_json

from test_graph import small_graph


@pytest.fixture()
def model_file(tmp_path):
    return compile_to_mojomodel(small_graph(), tmp_path / "mlp")


def test_suffix_added_and_round_trip(model_file):
    assert model_file.endswith("mlp.mojomodel")
    loaded = load_mojomodel(model_file)
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    from skillmill.ir.executor import Executor

    want = Executor(small_graph()).run({"x": x})["y"]
    np.testing.assert_array_equal(loaded.run({"x": x})["y"], want)
    assert loaded.output_names == ["y"] and loaded.metadata["name"] == "mlp"
    assert loaded.graph.to_text() == small_graph().to_text()


def test_zero_dim_and_strided_weights_round_trip(tmp_path):
    """A 0-d weight (Gemma's embed_scale) keeps its shape; a non-contiguous one its values."""
    g = small_graph()
    g.weights["scale"] = np.asarray(2.5, np.float32)
    g.weights["strided"] = np.arange(12, dtype=np.float32).reshape(3, 4).T
    loaded = load_mojomodel(compile_to_mojomodel(g, tmp_path / "odd"))
    assert loaded.graph.weights["scale"].shape == () and float(loaded.graph.weights["scale"]) == 2.5
    np.testing.assert_array_equal(loaded.graph.weights["strided"], g.weights["strided"])


def test_json_round_trip_keeps_structure():
    g = small_graph()
    again = graph_from_json(json.loads(json.dumps(graph_to_json(g))), g.weights)
    assert again.to_text() == g.to_text()


def test_tiny_bert_round_trip(tmp_path):
    import tiny_models
    from skillmill.ir.frontends.pytorch import convert_from_pytorch

    model = tiny_models.build("bert")
    graph = convert_from_pytorch(model, tiny_models.inputs("bert"))
    path = compile_to_mojomodel(graph, tmp_path / "bert")
    feeds = {k: v.numpy() for k, v in tiny_models.inputs("bert", 2, 5, seed=3).items()}
    from skillmill.ir.executor import Executor

    want = Executor(graph).run(feeds)
    got = load_mojomodel(path).run(feeds)
    assert sorted(got) == sorted(want) == sorted(graph.outputs)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def _rehash(data: bytes, header_edit=None, section_edit=None) -> bytes:
    """Rebuild a file after editing its header/sections, with every hash made consistent, so that
    the loader's later checks (version, schema, IR/weight agreement) are what must refuse it."""
    prefix = mojomodel._PREFIX
    magic, version, hlen = prefix.unpack_from(data, 0)
    header = json.loads(data[prefix.size : prefix.size + hlen])
    payload = data[prefix.size + hlen : -40]
    blobs = {s["name"]: payload[s["offset"] : s["offset"] + s["length"]] for s in header["sections"]}
    if section_edit:
        blobs = section_edit(blobs)
    offset = 0
    for s in header["sections"]:
        blob = blobs[s["name"]]
        s.update(offset=offset, length=len(blob), sha256=hashlib.sha256(blob).hexdigest())
        offset += len(blob)
    header["content_sha256"] = hashlib.sha256(b"".join(blobs[n] for n in mojomodel.SECTIONS)).hexdigest()
    if header_edit:
        version = header_edit(header) or version
    head = json.dumps(header).encode()
    body = prefix.pack(magic, version, len(head)) + head + b"".join(blobs[n] for n in mojomodel.SECTIONS)
    return body + hashlib.sha256(body).digest() + mojomodel.END_MAGIC


def _refused(tmp_path, data: bytes, match: str | None = None) -> None:
    path = tmp_path / "bad.mojomodel"
    path.write_bytes(data)
    with pytest.raises(MojoModelError, match=match):
        load_mojomodel(path)


def test_every_truncation_is_refused(model_file, tmp_path):
    data = open(model_file, "rb").read()
    for cut in list(range(0, 64)) + list(range(64, len(data), 7)) + [len(data) - 1]:
        _refused(tmp_path, data[:cut])


def test_random_bit_flips_are_refused(model_file, tmp_path):
    data = bytearray(open(model_file, "rb").read())
    rng = np.random.default_rng(1234)
    for _ in range(300):
        flipped = bytearray(data)
        position = int(rng.integers(len(flipped)))
        flipped[position] ^= 1 << int(rng.integers(8))
        _refused(tmp_path, bytes(flipped))


def test_appended_garbage_is_refused(model_file, tmp_path):
    data = open(model_file, "rb").read()
    _refused(tmp_path, data + b"\x00" * 16)
    _refused(tmp_path, b"not a model at all")


def test_wrong_version_is_refused(model_file, tmp_path):
    data = open(model_file, "rb").read()
    _refused(tmp_path, _rehash(data, header_edit=lambda h: 3), match="version 3")
    # the prefix and the header must agree on the version
    _refused(tmp_path, _rehash(data, header_edit=lambda h: 1), match="header version 2 != 1")
    _refused(tmp_path, _rehash(data, header_edit=lambda h: h.update(version=9)), match="version")
    _refused(tmp_path, _rehash(data, header_edit=lambda h: h.update(schema="other/9")), match="schema")


def test_tampered_weights_are_refused(model_file, tmp_path):
    data = bytearray(open(model_file, "rb").read())
    # flip a byte inside the weights section, leaving the hashes alone
    prefix = mojomodel._PREFIX
    _, _, hlen = prefix.unpack_from(data, 0)
    header = json.loads(bytes(data[prefix.size : prefix.size + hlen]))
    weights = next(s for s in header["sections"] if s["name"] == "weights")
    at = prefix.size + hlen + weights["offset"] + weights["length"] - 3
    data[at] ^= 0xFF
    _refused(tmp_path, bytes(data), match="hash")


def test_consistent_hashes_but_wrong_weights_are_refused(model_file, tmp_path):
    from safetensors.numpy import save

    data = open(model_file, "rb").read()

    def swap_weights(blobs):
        blobs["weights"] = save({"w": np.zeros((2, 2), np.float32), "b": np.ones(3, np.float32)})
        return blobs

    _refused(tmp_path, _rehash(data, section_edit=swap_weights), match="weight")

    def break_ir(blobs):
        doc = json.loads(blobs["ir"])
        doc["nodes"][1]["inputs"] = ["undefined_value"]
        blobs["ir"] = json.dumps(doc).encode()
        return blobs

    _refused(tmp_path, _rehash(data, section_edit=break_ir), match="undefined_value")

    def garbage_ir(blobs):
        blobs["ir"] = b"\xff\xfe{not json"
        return blobs

    _refused(tmp_path, _rehash(data, section_edit=garbage_ir))


def test_missing_file_is_a_clean_error(tmp_path):
    with pytest.raises(MojoModelError, match="cannot read"):
        load_mojomodel(tmp_path / "nowhere.mojomodel")


def test_header_layout_is_documented_size():
    assert struct.calcsize("<8sIQ") == mojomodel._PREFIX.size == 20

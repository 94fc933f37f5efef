"""Weight quantization (ir/passes/quantize.py, ir/ops/quantized.py): the pass, its rule and skip
list, every scheme's kernel against the numpy reference, and quantized .mojomodel files —
including damaged ones, which must be refused."""

from __future__ import annotations

import numpy as np
import pytest

import tiny_models
from skillmill import native
from skillmill.ir.executor import Executor
from skillmill.ir.graph import Graph, Node, TensorSpec
from skillmill.ir.mojomodel import compile_to_mojomodel, load_mojomodel
from skillmill.ir.ops import run_reference
from skillmill.ir.ops.native import bind_native
from skillmill.ir.ops.quantized import dequantize
from skillmill.ir.passes import optimize_graph
from skillmill.ir.passes.quantize import MAX_WEIGHT_ERROR, NothingToQuantize, quantize_graph
from hypothesis import given, settings, strategies as st

from test_mojomodel import _refused, _rehash

SCHEMES = ("int8", "q4_0", "q8_0")
QUANTIZERS = {
    "int8": native.quantize_int8,
    "q4_0": native.quantize_q4_0,
    "q8_0": native.quantize_q8_0,
}


@pytest.fixture(scope="module")
def bert():
    model, graph = tiny_models.converted("bert")
    optimized, _ = optimize_graph(graph)
    feeds = {k: v.numpy() for k, v in tiny_models.inputs("bert").items()}
    return optimized, feeds


def _linear_count(graph: Graph) -> int:
    return sum(1 for n in graph.nodes if n.op == "Linear")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_pass_rewrites_linears_and_embeddings_and_stays_close(bert, scheme):
    graph, feeds = bert
    quantized, report = quantize_graph(graph, scheme)
    ops = [n.op for n in quantized.nodes]
    assert ops.count("QLinear") == len(report.quantized) - ops.count("QEmbedding") > 0
    assert "QEmbedding" in ops and "Embedding" not in ops or report.kept
    assert quantized.metadata["optimizations_applied"][-1] == f"quantize_{scheme}"
    # q4_0: 4.5 bits a weight with its scales, q8_0 9; embedding tables stay int8 under every scheme
    assert report.bytes_after < report.bytes_before / {"int8": 3.5, "q4_0": 4, "q8_0": 3.2}[scheme]
    # the float32 copies of the quantized weights are gone from the graph
    assert not ({row["weight"] for row in report.quantized} & set(quantized.weights))
    want = Executor(graph).run(feeds)["last_hidden_state"]
    got = Executor(quantized).run(feeds)["last_hidden_state"]
    error = np.abs(got - want).max() / np.abs(want).max()
    assert 0 < error < (0.3 if scheme == "q4_0" else 0.05), error
    # the original graph is untouched
    assert _linear_count(graph) > 0 and "QLinear" not in {n.op for n in graph.nodes}


def test_skip_list_and_error_rule_keep_layers_float32(bert):
    graph, _ = bert
    first = next(n for n in graph.nodes if n.op == "Linear").inputs[1]
    _, report = quantize_graph(graph, "int8", skip=(first,))
    assert {"weight": first, "why": f"in the skip list ({first})"} in report.kept
    _, strict = quantize_graph(graph, "int8", max_weight_error=1e-9)
    assert not strict.quantized and all("weight error" in row["why"] or "too small" in row["why"]
                                        for row in strict.kept)  # fmt: skip


def test_an_outlier_weight_is_kept_by_the_rule():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    w[:, ::32] = 12.0  # one large value a block: Q4_0's step becomes 1.5, the rest round coarsely
    graph = Graph("outlier", {"x": TensorSpec("float32", [2, 64])}, ["y"],
                  [Node("lin", "Linear", ["x", "w"], ["y"], {"activation": "none"})], {"w": w})  # fmt: skip
    quantized, report = quantize_graph(graph, "q4_0")
    assert not report.quantized and report.kept[0]["why"].startswith("weight error")
    assert report.kept[0]["why"].endswith(f"> {MAX_WEIGHT_ERROR['q4_0']:g} for q4_0")
    # nothing quantized: the graph does not call itself quantized
    assert "quantize_q4_0" not in quantized.metadata.get("optimizations_applied", [])
    assert quantized.metadata["quantization"]["layers_quantized"] == 0
    # q8_0's 8-bit blocks keep the outlier exact and the rest within ~1%: under its limit
    quantized, report = quantize_graph(graph, "q8_0")
    assert len(report.quantized) == 1
    assert report.quantized[0]["weight_error"] < MAX_WEIGHT_ERROR["q8_0"]
    assert "quantize_q8_0" in quantized.metadata["optimizations_applied"]


def test_a_graph_with_nothing_to_quantize_says_so():
    graph = Graph("relu", {"x": TensorSpec("float32", [2, 3])}, ["y"], [Node("r", "Relu", ["x"], ["y"])], {})
    with pytest.raises(NothingToQuantize, match="nothing to quantize"):
        quantize_graph(graph, "int8")
    with pytest.raises(ValueError, match="unknown quantization scheme 'int3'"):
        quantize_graph(graph, "int3")


@settings(max_examples=25, deadline=None)
@given(scheme=st.sampled_from(SCHEMES), rows=st.integers(1, 4), n=st.integers(1, 40), k=st.integers(1, 100),
       act=st.sampled_from(["none", "relu", "gelu", "silu"]), bias=st.booleans(), residual=st.booleans())  # fmt: skip
def test_native_qlinear_matches_the_reference(scheme, rows, n, k, act, bias, residual):
    """Every scheme's kernel against the numpy reference (dequantize, then Linear), K not a
    multiple of 32 included."""
    rng = np.random.default_rng(k * 1000 + n)
    w = rng.standard_normal((n, k)).astype(np.float32)
    q, scales = QUANTIZERS[scheme](w)
    x = rng.standard_normal((rows, 3, k)).astype(np.float32)
    inputs = [x, q, scales] + ([rng.standard_normal(n).astype(np.float32)] if bias or residual else [])
    if residual:
        inputs.append(rng.standard_normal((rows, 3, n)).astype(np.float32))
    attrs = {"scheme": scheme, "in_features": k, "activation": act}
    want = run_reference("QLinear", inputs, attrs)[0]
    kernel = bind_native("QLinear", attrs)
    assert kernel is not None
    np.testing.assert_allclose(kernel(inputs, attrs), want, rtol=2e-5, atol=2e-5 * max(1.0, np.abs(want).max()))


def test_dequantize_inverts_the_native_layouts():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 70)).astype(np.float32)
    for scheme, (q, s) in ((name, QUANTIZERS[name](w)) for name in SCHEMES):
        np.testing.assert_allclose(dequantize(q, s, scheme, 70),
                                   native.dequantize_int8(q, s) if scheme == "int8" else
                                   getattr(native, f"dequantize_{scheme}")(q, s, 70))  # fmt: skip


def test_qembedding_refuses_ids_out_of_range():
    q, s = native.quantize_int8(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"embedding ids must lie in \[0, 4\)"):
        run_reference("QEmbedding", [q, s, np.array([[0, 4]])], {})


@pytest.mark.parametrize("scheme", SCHEMES)
def test_quantized_mojomodel_round_trips_smaller(bert, tmp_path, scheme):
    graph, feeds = bert
    quantized, _ = quantize_graph(graph, scheme)
    small = compile_to_mojomodel(quantized, tmp_path / scheme)
    full = compile_to_mojomodel(graph, tmp_path / "float32")
    assert (tmp_path / f"{scheme}.mojomodel").stat().st_size < 0.5 * (tmp_path / "float32.mojomodel").stat().st_size
    loaded = load_mojomodel(small)
    assert loaded.metadata["optimizations_applied"][-1] == f"quantize_{scheme}"
    np.testing.assert_array_equal(loaded.run(feeds)["last_hidden_state"],
                                  Executor(quantized).run(feeds)["last_hidden_state"])  # fmt: skip
    assert full


@pytest.mark.parametrize("scheme", ["q4_0", "q8_0"])
def test_damaged_quantized_files_are_refused(bert, tmp_path, scheme):
    graph, _ = bert
    quantized, _ = quantize_graph(graph, scheme)
    data = open(compile_to_mojomodel(quantized, tmp_path / "q"), "rb").read()
    rng = np.random.default_rng(19)
    for _ in range(150):
        flipped = bytearray(data)
        flipped[int(rng.integers(len(flipped)))] ^= 1 << int(rng.integers(8))
        _refused(tmp_path, bytes(flipped))
    for cut in range(0, len(data), max(1, len(data) // 97)):
        _refused(tmp_path, data[:cut])


def _edit_weights(edit):
    def section_edit(blobs):
        from skillmill.ir.serialize import weights_from_bytes, weights_to_bytes
        import json

        weights = weights_from_bytes(blobs["weights"])
        doc = json.loads(blobs["ir"])
        edit(weights, doc)
        doc["weights"] = {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in weights.items()}
        return {**blobs, "weights": weights_to_bytes(weights), "ir": json.dumps(doc).encode()}

    return section_edit


@pytest.mark.parametrize("damage, match", [
    (lambda w, d: w.update({k: v.astype(np.int16) for k, v in w.items() if k.endswith(".q4_0")}), "must be uint8"),
    (lambda w, d: w.update({k: v[:, :-1].copy() for k, v in w.items() if k.endswith(".q4_0")}), "must be uint8"),
    (lambda w, d: w.update({k: np.full_like(v, np.nan) for k, v in w.items() if k.endswith("q4_0_scales")}),
     "finite float32"),
    (lambda w, d: [n["attrs"].update(scheme="q3") for n in d["nodes"] if n["op"] == "QLinear"], "not a known layout"),
    (lambda w, d: w.update({k: v.astype(np.float32) for k, v in w.items() if k.endswith(".int8")}), "QEmbedding"),
])  # fmt: skip
def test_consistently_rehashed_but_wrong_quantized_weights_are_refused(bert, tmp_path, damage, match):
    """A file whose hashes are right but whose quantized weights do not fit their layout (a bug
    in a writer, a hand edit) is refused at load, before any kernel sees it."""
    graph, _ = bert
    quantized, _ = quantize_graph(graph, "q4_0")
    data = open(compile_to_mojomodel(quantized, tmp_path / "q"), "rb").read()
    _refused(tmp_path, _rehash(data, section_edit=_edit_weights(damage)), match=match)


@pytest.mark.parametrize("damage, match", [
    (lambda w, d: w.update({k: v.view(np.uint8) for k, v in w.items() if k.endswith(".q8_0")}), "must be int8"),
    (lambda w, d: w.update({k: v[:, :, :16].copy() for k, v in w.items() if k.endswith(".q8_0")}), "must be int8"),
    (lambda w, d: w.update({k: v[:, :-1].copy() for k, v in w.items() if k.endswith(".q8_0")}), "must be int8"),
    (lambda w, d: w.update({k: np.full_like(v, np.inf) for k, v in w.items() if k.endswith("q8_0_scales")}),
     "finite float32"),
    # the same bytes read as another scheme's layout
    (lambda w, d: [n["attrs"].update(scheme="q4_0") for n in d["nodes"] if n["op"] == "QLinear"], "must be uint8"),
    (lambda w, d: [n["attrs"].update(scheme="int8") for n in d["nodes"] if n["op"] == "QLinear"], "int8 weight must be"),
])  # fmt: skip
def test_wrong_q8_0_weights_are_refused(bert, tmp_path, damage, match):
    graph, _ = bert
    quantized, _ = quantize_graph(graph, "q8_0")
    data = open(compile_to_mojomodel(quantized, tmp_path / "q"), "rb").read()
    _refused(tmp_path, _rehash(data, section_edit=_edit_weights(damage)), match=match)


def test_version_1_files_still_load(tmp_path):
    from test_graph import small_graph

    data = open(compile_to_mojomodel(small_graph(), tmp_path / "m"), "rb").read()
    path = tmp_path / "v1.mojomodel"
    path.write_bytes(_rehash(data, header_edit=lambda h: h.update(version=1) or 1))
    assert load_mojomodel(path).output_names == ["y"]

"""Each optimisation pass: does its rewrite and leaves the outputs unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skillmill.ir.executor import Executor
from skillmill.ir.graph import Graph, TensorSpec
from skillmill.ir.passes import optimize_graph, plan_memory
from skillmill.ir.passes.dce import eliminate_dead_code
from skillmill.ir.passes.fold import fold_constants
from skillmill.ir.passes.infer import infer_concrete, infer_types

import tiny_models

def converted(kind: str):
    return tiny_models.converted(kind)


def run_both(kind: str, graph: Graph) -> None:
    model, _ = converted(kind)
    feeds = tiny_models.inputs(kind, 3, 6, seed=11)
    with torch.no_grad():
        out = model(**feeds)
    want = {k: v.numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}
    got = Executor(graph).run({k: v.numpy() for k, v in feeds.items()})
    # every tensor output, by name: a pass that drops (or adds) an output fails here
    assert sorted(got) == sorted(want) == sorted(graph.outputs), (sorted(got), sorted(want))
    for name, ref in want.items():
        assert got[name].shape == ref.shape, name
        assert np.abs(got[name] - ref).max() <= 1e-4 * np.abs(ref).max(), name


@pytest.mark.parametrize("kind, op, count", [("bert", "QKVAttention", 2), ("bert", "Linear", 9),
                                             ("gpt2", "Attention", 2), ("vit", "QKVAttention", 2),
                                             ("llama", "RMSNorm", 5)])  # fmt: skip
def test_fusions_fire_and_preserve_outputs(kind, op, count):
    _, graph = converted(kind)
    optimised, report = optimize_graph(graph)
    assert optimised.op_counts().get(op, 0) == count
    assert report["nodes_after"] < report["nodes_before"]
    optimised.validate()
    run_both(kind, optimised)


def test_each_pass_is_optional_and_listed():
    _, graph = converted("bert")
    only, report = optimize_graph(graph, passes=["simplify", "dead_code_elimination"])
    assert report["optimizations_applied"] == ["simplify", "dead_code_elimination"]
    assert "Linear" not in only.op_counts() and "Identity" not in only.op_counts()
    run_both("bert", only)
    none, report = optimize_graph(graph, passes=[])
    assert report["optimizations_applied"] == [] and len(none.nodes) == len(graph.nodes)
    with pytest.raises(ValueError, match="unknown passes"):
        optimize_graph(graph, passes=["make_it_fast"])


def test_linear_bias_activation_residual_fused():
    _, graph = converted("bert")
    optimised, _ = optimize_graph(graph)
    linears = [n for n in optimised.nodes if n.op == "Linear"]
    assert any(n.attrs["activation"] == "gelu" for n in linears)
    assert any(len(n.inputs) == 4 for n in linears)  # residual add folded in
    assert all(n.inputs[2] for n in linears)  # every BERT linear has its bias


def test_constant_folding_and_dce():
    g = Graph(name="fold")
    g.inputs["x"] = TensorSpec("float32", ["batch", 3])
    g.weights["w"] = np.arange(6, dtype=np.float32).reshape(2, 3)
    g.weights["unused"] = np.zeros(4, np.float32)
    g.add_node("Transpose", ["w"], attrs={"perm": [1, 0]}, name="wt", outputs=["wt"])
    g.add_node("Mul", ["wt"], attrs={"b": 2.0}, name="wt2", outputs=["wt2"])
    g.add_node("MatMul", ["x", "wt2"], name="mm", outputs=["y"])
    g.add_node("Relu", ["x"], name="dead", outputs=["dead"])
    g.outputs = ["y"]
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    want = Executor(g).run({"x": x})["y"]
    assert fold_constants(g) == 2
    assert eliminate_dead_code(g) == 1
    assert [n.op for n in g.nodes] == ["MatMul"] and "unused" not in g.weights
    np.testing.assert_allclose(Executor(g).run({"x": x})["y"], want, rtol=1e-6)


def test_fold_keeps_a_scalar_a_scalar():
    """A folded 0-d constant stays 0-d: Qwen2.5-VL's window bounds concatenate
    unsqueeze(scalar(0)) with unsqueeze(scalar(x)); a 1-d fold made the first [1, 1]."""
    g = Graph(name="scalar")
    g.inputs["x"] = TensorSpec("int32", [])
    g.add_node("Full", [], attrs={"shape": [], "value": 0, "dtype": "int32"}, name="zero", outputs=["zero"])
    g.add_node("Unsqueeze", ["zero"], attrs={"axes": [0]}, name="z1", outputs=["z1"])
    g.add_node("Unsqueeze", ["x"], attrs={"axes": [0]}, name="x1", outputs=["x1"])
    g.add_node("Concat", ["z1", "x1"], attrs={"axis": 0}, name="cat", outputs=["y"])
    g.outputs = ["y"]
    assert fold_constants(g) == 2
    assert g.weights["z1"].shape == (1,)
    np.testing.assert_array_equal(Executor(g).run({"x": np.asarray(7, np.int32)})["y"], [0, 7])


def test_shape_inference_symbolic_and_concrete():
    _, graph = converted("bert")
    g = graph.copy()
    g.value_info.clear()
    assert infer_types(g) > 10
    embedded = next(n.outputs[0] for n in g.nodes if n.op == "Embedding")
    assert g.value_info[embedded] == TensorSpec("float32", ["batch", "seq", 32])
    specs = infer_concrete(graph, {"batch": 3, "seq": 10})
    assert specs["last_hidden_state"].shape == [3, 10, 32]
    assert specs["pooler_output"].shape == [3, 32]


def test_memory_plan_reuses_buffers_without_overlap():
    _, graph = converted("bert")
    optimised, report = optimize_graph(graph, memory_bindings={"batch": 4, "seq": 16})
    plan = report["memory_plan"]
    assert 0 < plan["live_peak_bytes"] <= plan["arena_bytes"] < plan["unplanned_bytes"]
    assert "memory_planning" in report["optimizations_applied"]
    full = plan_memory(optimised, {"batch": 4, "seq": 16})
    assert full["arena_bytes"] == plan["arena_bytes"] and len(full["offsets"]) == plan["buffers"]


def test_empty_concat_operands_are_dropped():
    """Partial-rotary models slice ``x[..., rotary_dim:]`` and concatenate it back; when the rotary
    part is the whole head that slice is empty, which MAX cannot even build.  simplify drops it."""
    from skillmill.ir.passes.simplify import simplify

    g = Graph(name="rotary_tail")
    g.inputs["x"] = TensorSpec("float32", ["batch", 2, "seq", 4])
    g.add_node("Slice", ["x"], attrs={"dim": 3, "start": 4, "end": None, "step": 1}, name="tail", outputs=["tail"])
    g.add_node("Neg", ["x"], name="rot", outputs=["rot"])
    g.add_node("Concat", ["rot", "tail"], attrs={"axis": -1}, name="cat", outputs=["cat"])
    g.add_node("Concat", ["tail", "rot", "x"], attrs={"axis": 3}, name="cat3", outputs=["cat3"])
    g.outputs = ["cat", "cat3"]
    infer_types(g)
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 4)).astype(np.float32)
    want = Executor(g).run({"x": x})
    assert g.spec("tail").shape == ["batch", 2, "seq", 0]
    assert simplify(g) == 2 and eliminate_dead_code(g) == 1
    assert [n.op for n in g.nodes] == ["Neg", "Concat", "Concat"]  # "cat" is an output: kept, one operand
    assert [n.inputs for n in g.nodes if n.op == "Concat"] == [["rot"], ["rot", "x"]]
    got = Executor(g).run({"x": x})
    for name in ("cat", "cat3"):
        np.testing.assert_array_equal(got[name], want[name])

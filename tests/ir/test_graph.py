"""Graph IR: building, validation errors that name the node, printing, op table."""

from __future__ import annotations

import numpy as np
import pytest

from skillmill.ir.errors import ValidationError
from skillmill.ir.executor import Executor
from skillmill.ir.graph import Graph, TensorSpec, ref
from skillmill.ir.ops import OPS


def small_graph() -> Graph:
    g = Graph(name="mlp")
    g.inputs["x"] = TensorSpec("float32", ["batch", 4])
    g.weights["w"] = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    g.weights["b"] = np.ones(3, dtype=np.float32)
    g.add_node("Linear", ["x", "w", "b"], name="fc", outputs=["h"])
    g.add_node("Relu", ["h"], name="act", outputs=["y"])
    g.value_info["h"] = TensorSpec("float32", ["batch", 3])
    g.outputs = ["y"]
    return g


def test_valid_graph_runs():
    g = small_graph()
    g.validate(set(OPS))
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    y = Executor(g).run({"x": x})["y"]
    np.testing.assert_allclose(y, np.maximum(x @ g.weights["w"].T + 1, 0), rtol=1e-6)


def test_undefined_input_names_the_node():
    g = small_graph()
    g.nodes[1].inputs = ["nope"]
    with pytest.raises(ValidationError, match="'act'.*'nope'"):
        g.validate()


def test_value_defined_twice_names_the_node():
    g = small_graph()
    g.add_node("Relu", ["x"], name="again", outputs=["h"])
    with pytest.raises(ValidationError, match="'again'.*already defined"):
        g.validate()


def test_use_before_definition_is_rejected():
    g = small_graph()
    g.nodes.reverse()
    with pytest.raises(ValidationError, match="'act'"):
        g.validate()


def test_unknown_op_and_missing_output():
    g = small_graph()
    g.nodes[1].op = "Frobnicate"
    with pytest.raises(ValidationError, match="unknown op 'Frobnicate'"):
        g.validate(set(OPS))
    g = small_graph()
    g.outputs = ["ghost"]
    with pytest.raises(ValidationError, match="ghost"):
        g.validate()


def test_inconsistent_declared_shape_names_the_node():
    g = small_graph()
    g.value_info["h"] = TensorSpec("float32", ["batch", 7])
    with pytest.raises(ValidationError, match="'fc'.*float32\\[batch, 7\\]"):
        g.validate()


def test_attribute_refs_count_as_uses():
    g = Graph(name="refs")
    g.inputs["x"] = TensorSpec("float32", ["batch", "seq", 4])
    g.add_node("SymSize", ["x"], attrs={"dim": 1}, name="n", outputs=["n"])
    g.add_node("Scalar", ["n"], attrs={"fn": "mul", "b": 4}, name="m", outputs=["m"])
    g.add_node("Reshape", ["x"], attrs={"shape": [-1, ref("m")]}, name="flat", outputs=["y"])
    g.outputs = ["y"]
    g.validate()
    x = np.zeros((2, 5, 4), np.float32)
    assert Executor(g).run({"x": x})["y"].shape == (2, 20)
    g.nodes = [g.nodes[2]]
    with pytest.raises(ValidationError, match="'flat'.*'m'"):
        g.validate()


def test_printer_shows_inputs_weights_nodes_and_symbols():
    text = small_graph().to_text()
    assert "input  %x: float32[batch, 4]" in text
    assert "weight %w: float32[3, 4]" in text
    assert "%h = Linear(%x, %w, %b)" in text
    assert "return %y" in text


def test_bad_dtype_is_rejected():
    with pytest.raises(ValidationError):
        TensorSpec("float31", [1])


def test_every_op_has_reference_and_doc_name():
    assert len(OPS) > 100
    for name, op in OPS.items():
        assert op.name == name and callable(op.reference)

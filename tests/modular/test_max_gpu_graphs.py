"""What a GPU run needs of the MAX lowering, checked without a GPU: building a MAX graph for
``DeviceRef.GPU()`` type-checks every op's operands, so a value left on the host (a shape read
as a tensor, say) fails here as it did on the first real H100 run ("Input values must be on the
same device")."""

import numpy as np
import pytest
import torch

pytest.importorskip("max.graph", reason="MAX (the max package) is not installed")


def _tiny_bert_graph():
    from transformers import BertConfig, BertModel

    from skillmill.ir.frontends.pytorch import convert_from_pytorch
    from skillmill.ir.passes import optimize_graph

    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37)  # fmt: skip
    model = BertModel(config).eval()
    ids = torch.randint(0, 99, (2, 7))
    example = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    graph, _ = optimize_graph(convert_from_pytorch(model, example))
    return graph


def test_bert_lowers_to_a_gpu_graph():
    """BERT's padding mask indexes with a run-time size and slices by the symbolic sequence
    length: the size must reach the GPU, the slice bound must stay on the host."""
    from skillmill.engines.modular.lowering import lower_graph

    lowered = lower_graph(_tiny_bert_graph(), "gpu", {}, [])
    assert lowered.output_names


def test_symbolic_slice_and_negative_index_lower_for_the_gpu():
    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.lowering import lower_graph

    g = Graph(name="gpu_operands")
    g.inputs["x"] = TensorSpec("float32", ["batch", "seq"])
    g.inputs["idx"] = TensorSpec("int64", ["k"])
    g.nodes = [
        Node("n", "SymSize", ["x"], ["n"], {"dim": 1}),
        Node("neg", "Scalar", ["n"], ["neg"], {"fn": "neg"}),
        Node("tail", "Slice", ["x"], ["tail"], {"dim": 1, "start": {"$ref": "neg"}, "end": None, "step": 1}),
        Node("half", "Scalar", ["n"], ["half"], {"fn": "floordiv", "b": 2}),
        Node("head", "Slice", ["x"], ["head"], {"dim": 1, "start": 0, "end": {"$ref": "half"}, "step": 1}),
        Node("pick", "Index", ["x", "idx"], ["pick"], {"positions": [1]}),
        Node("shape", "Shape", ["x"], ["shape"], {}),
    ]
    g.outputs = ["tail", "head", "pick", "shape"]
    lowered = lower_graph(g, "gpu", {}, [])
    assert len(lowered.output_names) == 4


def test_reshape_max_cannot_prove_is_asserted_at_run_time():
    """musicgen views (batch, seq) as (batch // 4, 4, seq): MAX cannot prove (batch // 4) * 4 ==
    batch and refuses the reshape, so the lowering flattens and rebinds the element count, which
    MAX checks when the graph runs: the graph is built for the GPU and run on the CPU."""
    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.lowering import lower_graph
    from skillmill.engines.modular.max_model import MaxModel

    g = Graph(name="codebooks")
    g.inputs["x"] = TensorSpec("int64", ["batch", "seq"])
    g.nodes = [
        Node("n", "SymSize", ["x"], ["n"], {"dim": 0}),
        Node("s", "SymSize", ["x"], ["s"], {"dim": 1}),
        Node("q", "Scalar", ["n"], ["q"], {"fn": "floordiv", "b": 4}),
        Node("split", "Reshape", ["x"], ["split"], {"shape": [{"$ref": "q"}, 4, {"$ref": "s"}]}),
        Node("back", "Reshape", ["split"], ["back"], {"shape": [{"$ref": "n"}, {"$ref": "s"}]}),
        Node("view", "Reshape", ["x"], ["view"], {"shape": [-1, 4, {"$ref": "s"}]}),  # as musicgen exports it
        Node("again", "Reshape", ["view"], ["again"], {"shape": [{"$ref": "n"}, {"$ref": "s"}]}),
    ]
    g.outputs = ["back", "again"]
    assert lower_graph(g, "gpu", {}, []).output_names == ["back", "again"]  # builds for the GPU
    # on the CPU it runs: a batch of 8 splits into 2 x 4 and comes back unchanged ...
    model = MaxModel.from_graph(g, "cpu")
    x = np.arange(8 * 5, dtype=np.int64).reshape(8, 5)
    got = model.run({"x": x})
    assert sorted(got) == ["again", "back"]
    for name in ("back", "again"):
        np.testing.assert_array_equal(got[name], x, err_msg=name)
    # ... while a batch of 6 (6 // 4 * 4 != 6) is refused when it runs, not reshaped wrongly
    with pytest.raises(ValueError, match=r"(split|back|view|again): reshape changes the element count"):
        model.run({"x": np.zeros((6, 5), np.int64)})

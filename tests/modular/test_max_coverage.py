"""MAX over the registry: a fixed representative subset goes through the real grouped coverage
check on every run (one MAX compile for the lot), and the lowering's workaround for MAX 26.7's
broadcast-fusion miscompile is pinned by the smallest graph that showed it."""

import numpy as np

from skillmill.generator.coverage import BACKENDS

# Causal + padding masks (gpt2, llama: the MAX 26.7 outer-broadcast miscompile), relative
# position buckets (t5), a vision transformer and a CNN.
CI_SUBSET = ("gpt2", "llama", "t5", "vit", "resnet")


def test_max_is_a_coverage_backend():
    assert BACKENDS["max"].report.name == "max.yaml"


def test_ci_subset_on_max_equals_pytorch():
    from skillmill.runtime.backends.modular.coverage import TOLERANCE, run_coverage

    rows = run_coverage(list(CI_SUBSET), jobs=2)
    assert set(rows) == set(CI_SUBSET)
    bad = {t: r for t, r in rows.items() if r["status"] != "pass"}
    assert not bad, bad
    assert all(r["max_rel_err"] <= TOLERANCE and r["group_size"] == len(CI_SUBSET) for r in rows.values())


def test_outer_broadcast_mask_is_computed_right():
    """rows >= cols (an outer broadcast) combined with a [B, 1, 1, T] padding mask: MAX 26.7 fused
    this into one kernel and returned all true; the lowering materialises the outer result."""
    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.runtime.backends.modular.max_model import MaxModel

    g = Graph(name="causal_and_padding")
    g.inputs["mask"] = TensorSpec("int64", ["batch", "seq"])
    g.nodes = [
        Node("n", "SymSize", ["mask"], ["n"], {"dim": 1}),
        Node("r", "Arange", [], ["r"], {"start": 0, "end": {"$ref": "n"}, "step": 1, "dtype": "int64"}),
        Node("rows", "Unsqueeze", ["r"], ["rows"], {"axes": [1]}),
        Node("cols", "Unsqueeze", ["r"], ["cols"], {"axes": [0]}),
        Node("causal", "LessEqual", ["cols", "rows"], ["causal"], {"dtype": "bool"}),
        Node("pad", "Cast", ["mask"], ["pad"], {"to": "bool"}),
        Node("pad4", "Unsqueeze", ["pad"], ["pad4"], {"axes": [1, 2]}),
        Node("both", "BitwiseAnd", ["causal", "pad4"], ["both"], {"dtype": "bool"}),
    ]
    g.outputs = ["both"]
    mask = np.ones((2, 5), np.int64)
    mask[1, 3:] = 0
    got = MaxModel.from_graph(g, "cpu").run({"mask": mask})["both"]
    want = np.tril(np.ones((5, 5), bool))[None, None] & mask.astype(bool)[:, None, None, :]
    np.testing.assert_array_equal(got, want)

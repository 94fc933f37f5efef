"""Shared by the tests in tests/modular (a unique module name: conftest is taken elsewhere)."""

import numpy as np

SENTENCES = ["A man is eating food.", "A man is riding a horse.", "The weather is lovely today."]


def relative_error(got, want) -> float:
    """max|got - want| / max|want|, the project's parity measure."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.abs(got - want).max() / np.abs(want).max())


def ln_linear_graph(hidden: int = 48, out: int = 40, seed: int = 0):
    """A small IR graph, LayerNorm -> Linear(gelu), with symbolic batch and sequence dims."""
    from skillmill.ir.graph import Graph, TensorSpec

    rng = np.random.default_rng(seed)
    g = Graph(name="ln_linear")
    g.inputs["x"] = TensorSpec("float32", ["batch", "seq", hidden])
    g.weights.update({
        "ln.w": rng.standard_normal(hidden).astype(np.float32),
        "ln.b": rng.standard_normal(hidden).astype(np.float32),
        "fc.w": (rng.standard_normal((out, hidden)) * 0.2).astype(np.float32),
        "fc.b": rng.standard_normal(out).astype(np.float32),
    })  # fmt: skip
    g.add_node("LayerNorm", ["x", "ln.w", "ln.b"], outputs=["y", "", ""], attrs={"axis": -1, "eps": 1e-5}, name="ln")
    g.add_node("Linear", ["y", "fc.w", "fc.b"], outputs=["z"], attrs={"activation": "gelu"}, name="fc")
    g.outputs = ["z"]
    g.validate()
    return g


def reference(graph, feeds):
    from skillmill.ir.executor import Executor

    return Executor(graph, use_native=False).run(feeds)

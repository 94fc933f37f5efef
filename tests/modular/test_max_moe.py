"""The mixture-of-experts ops on MAX, against the IR's numpy references: one graph (one MAX
compile) with every op the MoE routing of mixtral / qwen2_moe / afmoe produces."""

import numpy as np


def test_moe_routing_ops_match_the_numpy_reference():
    """Sort (int keys with ties on a symbolic length, as MoE routing sorts expert ids; a float
    sort along a non-last axis, descending, with ties, inf and NaN), Histc (a fixed range and the
    data's range), IndexPut (the inverse permutation routing builds; duplicate targets, where the
    last write wins; accumulate; a non-leading position), Scatter (duplicates, add) and
    GroupedMatMul over an uneven split with an empty group and rows past the last offset."""
    from skillmill.ir.executor import Executor
    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.max_model import MaxModel

    rng = np.random.default_rng(0)
    g = Graph(name="moe_ops")
    g.inputs.update({
        "ids": TensorSpec("int64", ["n"]), "keys": TensorSpec("float32", [4, 6]),
        "x": TensorSpec("float32", ["s", 8]), "offs": TensorSpec("int32", [3]),
        "vals": TensorSpec("float32", [5, 3]), "pos": TensorSpec("int64", [4]),
        "upd": TensorSpec("float32", [4, 3]), "col": TensorSpec("int64", [2]),
        "upd2": TensorSpec("float32", [5, 2]), "sidx": TensorSpec("int64", [2, 3]),
        "src": TensorSpec("float32", [2, 3]),
    })  # fmt: skip
    g.weights["w"] = rng.standard_normal((3, 8, 5)).astype(np.float32)
    g.nodes = [
        Node("sort", "Sort", ["ids"], ["sorted", "order"], {"axis": -1, "descending": False}),
        Node("fsort", "Sort", ["keys"], ["fsorted", "forder"], {"axis": 0, "descending": True}),
        Node("idsf", "Cast", ["ids"], ["idsf"], {"to": "float32"}),
        Node("hist", "Histc", ["idsf"], ["counts"], {"bins": 4, "min": 0, "max": 3}),
        Node("hist_range", "Histc", ["x"], ["counts_range"], {"bins": 5}),
        Node("n", "SymSize", ["ids"], ["n"], {"dim": 0}),
        Node("r", "Arange", [], ["r"], {"start": 0, "end": {"$ref": "n"}, "step": 1, "dtype": "int64"}),
        Node("inverse", "IndexPut", ["ids", "order", "r"], ["inverse"], {"positions": [0], "accumulate": False}),
        Node("put_last", "IndexPut", ["vals", "pos", "upd"], ["put_last"], {"positions": [0]}),
        Node("put_add", "IndexPut", ["vals", "pos", "upd"], ["put_add"], {"positions": [0], "accumulate": True}),
        Node("put_col", "IndexPut", ["vals", "col", "upd2"], ["put_col"], {"positions": [1]}),
        Node("scatter", "Scatter", ["vals", "sidx", "src"], ["scattered"], {"dim": 0}),
        Node("scatter_add", "Scatter", ["vals", "sidx", "src"], ["scatter_added"], {"dim": 0, "reduce": "add"}),
        Node("gmm", "GroupedMatMul", ["x", "w", "offs"], ["experts_out"]),
    ]  # fmt: skip
    exact = ["sorted", "order", "fsorted", "forder", "counts", "counts_range", "inverse", "put_last", "put_col",
             "scattered"]  # fmt: skip
    close = ["put_add", "scatter_added", "experts_out"]
    g.outputs = exact + close
    keys = np.array([[1, 2, np.nan, 0, 5, np.inf], [1, 2, 3, 0, 5, np.nan], [0, 2, 3, 0, 5, np.inf],
                     [1, -1, np.inf, 0, 5, 1]], np.float32)  # fmt: skip
    feeds = {
        "ids": np.array([3, 1, 2, 1, 3, 0, 1, 2, 3, 1, 1, 0, 2]), "keys": keys,
        "x": rng.standard_normal((9, 8)).astype(np.float32),
        "offs": np.array([3, 3, 7], np.int32),  # 3 rows, none, 4 rows; rows 7 and 8 in no group
        "vals": rng.standard_normal((5, 3)).astype(np.float32), "pos": np.array([1, 3, 1, -1]),
        "upd": rng.standard_normal((4, 3)).astype(np.float32), "col": np.array([2, 0]),
        "upd2": rng.standard_normal((5, 2)).astype(np.float32), "sidx": np.array([[4, 0, 2], [4, 1, 2]]),
        "src": rng.standard_normal((2, 3)).astype(np.float32),
    }  # fmt: skip
    want = Executor(g, use_native=False).run(feeds)
    got = MaxModel.from_graph(g, "cpu").run(feeds)
    for name in exact:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    for name in close:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert not want["experts_out"][7:].any() and want["counts"].tolist() == [2, 5, 3, 3]  # the cases are hit

"""MAX over the registry: a fixed representative subset goes through the real grouped coverage
check on every run (one MAX compile for the lot), and the lowering's workaround for MAX 26.7's
broadcast-fusion miscompile is pinned by the smallest graph that showed it."""

import numpy as np
import pytest

from skillmill.measure.constants import FLOOR_TYPES, TOLERANCE
from skillmill.measure.sweeps import BACKENDS, load_report

# Causal + padding masks (gpt2, llama: the MAX 26.7 outer-broadcast miscompile), relative
# position buckets (t5), a vision transformer and a CNN.
CI_SUBSET = ("gpt2", "llama", "t5", "vit", "resnet")


def test_max_is_a_coverage_backend():
    assert BACKENDS["max"].report.name == "max.yaml"


@pytest.fixture(scope="module")
def max_report():
    return load_report("max")


def test_every_base_type_has_a_max_row(registry, max_report):
    """Every type has a row; a failure names its reason; a type the sweep has not reached yet
    says so (``not_measured``, picked up by ``coverage --backend max --resume``)."""
    rows = max_report["model_types"]
    assert set(rows) == set(registry.base_classes), "run `generate-skills coverage --backend max`"
    for model_type, row in rows.items():
        assert row["status"] == "pass" or row.get("reason"), f"{model_type}: a failure needs its reason"
    passed = [t for t, r in rows.items() if r["status"] == "pass"]
    assert max_report["passed"] == len(passed) and max_report["total"] == len(rows)
    assert all(rows[t]["max_rel_err"] <= TOLERANCE for t in passed)


def test_report_says_floor_families_pass_on_max(max_report):
    """Reads the committed report, not the code: test_ci_subset_on_max_equals_pytorch checks the
    code live on a subset, and `coverage --backend max` re-measures the report."""
    rows = max_report["model_types"]
    failing = {t: rows[t].get("reason") for t in FLOOR_TYPES if rows[t]["status"] != "pass"}
    assert not failing, failing


def test_report_says_max_passes_at_least_40_percent_of_all_base_types(max_report):
    """The issue's floor, read from the committed report over the whole registry: a type not
    measured yet counts as not passing."""
    rows = max_report["model_types"]
    passed = sum(r["status"] == "pass" for r in rows.values())
    assert passed / len(rows) >= 0.40, f"{passed} of {len(rows)}"


def test_passes_merged_from_another_machine_count_separately(max_report):
    """Rows swept on another machine or torch (coverage --merge) are summed apart from the rows
    measured here, in the report and in docs/coverage.md."""
    import torch

    rows = max_report["model_types"].values()
    elsewhere = [r for r in rows if r["status"] == "pass" and r.get("measured_on")
                 and f"torch {torch.__version__}" not in r["measured_on"]]  # fmt: skip
    assert max_report["passed_elsewhere"] >= len(elsewhere) > 0
    assert max_report["passed_here"] + max_report["passed_elsewhere"] == max_report["passed"]
    from skillmill.generator.coverage import REPORT_MD

    assert f"{max_report['passed_here']} measured here" in REPORT_MD.read_text(encoding="utf-8")


def test_sweep_goes_floor_first_then_small_native_passes_in_bounded_chunks():
    """What an interrupted sweep has measured: the floor, then the native passes smallest first;
    no MAX graph holds more than NODE_BUDGET nodes unless one type alone is larger."""
    from skillmill.measure.sweeps.max import NODE_BUDGET, chunked, sweep_order

    native = load_report("native")["model_types"]
    passes = [t for t, r in native.items() if r["status"] == "pass" and t not in ("bert", "gpt2")]
    big, small = max(passes, key=lambda t: native[t]["nodes"]), min(passes, key=lambda t: native[t]["nodes"])
    failed = next(t for t, r in native.items() if r["status"] != "pass")
    assert sweep_order([failed, big, small, "gpt2"]) == ["gpt2", small, big, failed]

    assert NODE_BUDGET == 2000  # the numbers below are picked around it
    nodes = {"a": 1500, "b": 400, "c": 200, "huge": 5000, "d": 10}
    assert chunked(["a", "b", "c", "huge", "d"], 16, nodes) == [["a", "b"], ["c"], ["huge"], ["d"]]
    assert chunked(list("abcd"), 2, {}) == [["a", "b"], ["c", "d"]]  # unknown size: the count rules


def test_ci_subset_on_max_equals_pytorch():
    from skillmill.measure.sweeps.max import run_coverage

    rows = run_coverage(list(CI_SUBSET), jobs=2, custom_ops=True)  # as the skills compile
    assert set(rows) == set(CI_SUBSET)
    bad = {t: r for t, r in rows.items() if r["status"] != "pass"}
    assert not bad, bad
    assert all(r["max_rel_err"] <= TOLERANCE and r["group_size"] == len(CI_SUBSET) for r in rows.values())
    assert "skillmill_linear" in rows["gpt2"]["custom_ops"]  # the skills' CPU defaults were in play


def test_outer_broadcast_mask_is_computed_right():
    """rows >= cols (an outer broadcast) combined with a [B, 1, 1, T] padding mask: MAX 26.7 fused
    this into one kernel and returned all true; the lowering materialises the outer result."""
    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.max_model import MaxModel

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


def test_constant_pad_on_symbolic_dims():
    """A constant pad's fill must reach MAX 26.7 as a 0-d value (a graph constant is [1] and MAX
    refused the op: the first sweep types that pad failed on it); float and int fills, and an asymmetrically
    padded max pool, which pads with -inf the same way; ceil-mode average pools."""
    from skillmill.ir.executor import Executor
    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.max_model import MaxModel

    g = Graph(name="pads")
    g.inputs["x"] = TensorSpec("float32", ["batch", 3, 8, 8])
    g.inputs["i"] = TensorSpec("int64", ["batch", "seq"])
    g.nodes = [Node("p1", "Pad", ["x"], ["y"], {"pads": [[0, 0], [0, 0], [0, 1], [2, 1]], "value": -1.5}),
               Node("p2", "Pad", ["i"], ["z"], {"pads": [[0, 0], [0, 1]], "value": 7}),
               Node("mp", "MaxPool", ["x"], ["w"], {"kernel": [2, 2], "stride": [2, 2], "pads": [[0, 1], [1, 0]]}),
               # ceil-mode average pools whose last window overhangs: the divisor counts only the
               # positions inside the padding (ALIGN's 128x128 pool over a 1x1 map was 1/16384 off)
               Node("ap1", "AvgPool", ["x"], ["a1"], {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1],
                                                      "ceil_mode": True, "count_include_pad": True}),
               Node("ap2", "AvgPool", ["x"], ["a2"], {"kernel": [16, 16], "stride": [16, 16], "padding": [0, 0],
                                                      "ceil_mode": True, "count_include_pad": True}),
               Node("ap3", "AvgPool", ["x"], ["a3"], {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1],
                                                      "ceil_mode": True, "count_include_pad": False}),
               Node("ap4", "AvgPool", ["x"], ["a4"], {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1],
                                                      "count_include_pad": False})]  # fmt: skip
    g.outputs = ["y", "z", "w", "a1", "a2", "a3", "a4"]
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32),
             "i": np.arange(10).reshape(2, 5)}  # fmt: skip
    want = Executor(g, use_native=False).run(feeds)
    got = MaxModel.from_graph(g, "cpu").run(feeds)
    for name in ["y", "z", "w"]:
        np.testing.assert_array_equal(got[name], want[name])
    for name in ["a1", "a2", "a3", "a4"]:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_scatters_indexing_and_run_time_checks():
    """SliceScatter (strided, negative bounds), MaskedScatter (a broadcast mask, as VLMs merge
    image features), Index at non-leading positions (adjacent and not), and torch.export's run-time
    assertions, on symbolic dims and on a value read from a tensor: MAX graphs cannot raise, so
    MaxModel checks the conditions after the run and raises the assertion's message."""
    from skillmill.ir.executor import Executor
    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.max_model import MaxModel

    g = Graph(name="scatters")
    g.inputs["x"] = TensorSpec("float32", ["batch", 4, 6])
    g.inputs["src"] = TensorSpec("float32", ["batch", 2, 6])
    g.inputs["mask"] = TensorSpec("bool", ["batch", 4, 1])
    g.inputs["img"] = TensorSpec("float32", ["images", 6])
    g.inputs["i0"] = TensorSpec("int64", [3])
    g.inputs["i1"] = TensorSpec("int64", [2, 1])
    g.inputs["flag"] = TensorSpec("int64", [])
    g.nodes = [Node("ss1", "SliceScatter", ["x", "src"], ["s1"], {"dim": 1, "start": 1, "end": None, "step": 2}),
               Node("ss2", "SliceScatter", ["x", "src"], ["s2"], {"dim": 1, "start": -3, "end": -1}),
               Node("ms", "MaskedScatter", ["x", "mask", "img"], ["m"], {}),
               Node("ix1", "Index", ["x", "i1", "i0"], ["j1"], {"positions": [1, 2]}),
               Node("ix2", "Index", ["x", "i1", "i0"], ["j2"], {"positions": [0, 2]}),
               Node("n", "SymSize", ["img"], ["n_images"], {"dim": 0}),
               Node("le", "Scalar", ["n_images"], ["few"], {"fn": "le", "b": 8}),
               Node("a1", "AssertScalar", ["few"], ["ok1"], {"msg": "at most 8 images"}),
               Node("f", "TensorToScalar", ["flag"], ["flag_value"], {}),
               Node("eq", "Scalar", ["flag_value"], ["flag_set"], {"fn": "eq", "b": 1}),
               Node("a2", "AssertScalar", ["flag_set"], ["ok2"], {"msg": "flag must be 1"}),
               Node("ite", "Scalar", [], ["picked"], {"fn": "ite", "args": [True, 5, 0]}),
               Node("eq5", "Scalar", ["picked"], ["picked_5"], {"fn": "eq", "b": 5}),
               Node("a3", "AssertScalar", ["picked_5"], ["ok3"], {"msg": "ite picked the wrong branch"})]  # fmt: skip
    g.outputs = ["s1", "s2", "m", "j1", "j2"]
    rng = np.random.default_rng(0)
    mask = np.zeros((2, 4, 1), bool)
    mask[0, 1], mask[1, 0], mask[1, 3] = True, True, True
    feeds = {"x": rng.standard_normal((2, 4, 6)).astype(np.float32),
             "src": rng.standard_normal((2, 2, 6)).astype(np.float32), "mask": mask,
             "img": rng.standard_normal((3, 6)).astype(np.float32),
             "i0": np.array([0, -1, 2]), "i1": np.array([[1], [3]]) % 2, "flag": np.array(1)}  # fmt: skip
    want = Executor(g, use_native=False).run(feeds)
    model = MaxModel.from_graph(g, "cpu")
    got = model.run(feeds)
    assert sorted(got) == sorted(g.outputs)  # the checks' values are not outputs
    for name in g.outputs:
        np.testing.assert_array_equal(got[name], want[name])
    with pytest.raises(AssertionError, match="at most 8 images"):
        model.run({**feeds, "img": np.zeros((9, 6), np.float32)})
    with pytest.raises(AssertionError, match="flag must be 1"):
        model.run({**feeds, "flag": np.array(0)})


def test_resize_follows_torch():
    """Resize as gathers at the IR reference's source positions: nearest (DETR's mask), bilinear
    with and without align_corners, a scale factor; compared with torch.nn.functional.interpolate."""
    import torch

    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.max_model import MaxModel

    g = Graph(name="resize")
    g.inputs["x"] = TensorSpec("float32", ["batch", 3, 5, 7])
    g.nodes = [Node("r1", "Resize", ["x"], ["near"], {"size": [8, 3], "mode": "nearest"}),
               Node("r2", "Resize", ["x"], ["lin"], {"size": [9, 4], "mode": "linear"}),
               Node("r3", "Resize", ["x"], ["corners"], {"size": [9, 13], "mode": "linear", "align_corners": True}),
               Node("r4", "Resize", ["x"], ["scaled"], {"scales": [2.0, 1.5], "mode": "linear"})]  # fmt: skip
    g.outputs = ["near", "lin", "corners", "scaled"]
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    got = MaxModel.from_graph(g, "cpu").run({"x": x})
    t = torch.from_numpy(x)
    interpolate = torch.nn.functional.interpolate
    want = {"near": interpolate(t, size=(8, 3), mode="nearest"),
            "lin": interpolate(t, size=(9, 4), mode="bilinear"),
            "corners": interpolate(t, size=(9, 13), mode="bilinear", align_corners=True),
            "scaled": interpolate(t, scale_factor=(2.0, 1.5), mode="bilinear")}  # fmt: skip
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


def test_conv_transpose_follows_torch():
    """ConvTranspose as a forward conv over the zero-spread input: stride with padding and
    output_padding (DAC's upsampler), groups, dilation, a crop wider than the spread's zeros,
    1-d; a symbolic height; compared with torch's conv_transpose1d/2d."""
    import torch

    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.max_model import MaxModel

    rng = np.random.default_rng(0)
    cases = {  # name: (weight shape, attrs)
        "up": ((4, 3, 3, 3), {"stride": [2, 2], "padding": [1, 1], "output_padding": [1, 1]}),
        "grouped": ((4, 2, 2, 3), {"stride": [2, 1], "groups": 2, "dilation": [1, 2]}),
        "cropped": ((4, 5, 2, 2), {"stride": [3, 3], "padding": [2, 1]}),
    }
    g = Graph(name="conv_transpose")
    g.inputs["x"] = TensorSpec("float32", ["batch", 4, "h", 6])
    g.inputs["x1"] = TensorSpec("float32", ["batch", 4, "t"])
    g.weights = {f"w_{name}": rng.standard_normal(shape).astype(np.float32) for name, (shape, _) in cases.items()}
    g.weights["w_1d"] = rng.standard_normal((4, 2, 5)).astype(np.float32)
    g.weights["b_1d"] = rng.standard_normal(2).astype(np.float32)
    g.nodes = [Node(name, "ConvTranspose", ["x", f"w_{name}"], [name], attrs) for name, (_, attrs) in cases.items()]
    g.nodes.append(Node("one_d", "ConvTranspose", ["x1", "w_1d", "b_1d"], ["one_d"],
                        {"stride": [4], "padding": [2], "output_padding": [1]}))  # fmt: skip
    g.outputs = [*cases, "one_d"]
    model = MaxModel.from_graph(g, "cpu")
    for h in (5, 7):
        x = rng.standard_normal((2, 4, h, 6)).astype(np.float32)
        x1 = rng.standard_normal((2, 4, 9)).astype(np.float32)
        got = model.run({"x": x, "x1": x1})
        for name, (_, attrs) in cases.items():
            kw = {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}
            want = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(g.weights[f"w_{name}"]), **kw)
            np.testing.assert_allclose(got[name], want.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)
        want = torch.nn.functional.conv_transpose1d(torch.from_numpy(x1), torch.from_numpy(g.weights["w_1d"]),
                                                    torch.from_numpy(g.weights["b_1d"]), stride=4, padding=2,
                                                    output_padding=1)  # fmt: skip
        np.testing.assert_allclose(got["one_d"], want.numpy(), rtol=1e-5, atol=1e-5, err_msg="1-d")


def test_grid_sample_and_antialiased_resize_follow_torch():
    """GridSample as corner gathers (Deformable DETR's sampling): bilinear with zeros and border
    padding, align_corners, nearest; grid points outside [-1, 1]. In the same graph (one
    compile), antialiased resizes as one matmul per axis (SigLIP 2): bilinear shrinking and
    growing, bicubic with align_corners. All compared with torch."""
    import torch

    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.max_model import MaxModel

    cases = {"zeros": {"mode": "bilinear", "padding_mode": "zeros", "align_corners": False},
             "border": {"mode": "bilinear", "padding_mode": "border", "align_corners": False},
             "corners": {"mode": "bilinear", "padding_mode": "zeros", "align_corners": True},
             "nearest": {"mode": "nearest", "padding_mode": "zeros", "align_corners": False}}  # fmt: skip
    g = Graph(name="grid_sample")
    g.inputs["x"] = TensorSpec("float32", ["batch", 3, 5, 7])
    g.inputs["grid"] = TensorSpec("float32", ["batch", "points", 4, 2])
    g.nodes = [Node(name, "GridSample", ["x", "grid"], [name], attrs) for name, attrs in cases.items()]
    resizes = {"aa_bilinear": {"size": [3, 10], "mode": "linear", "align_corners": False},
               "aa_bicubic": {"size": [2, 4], "mode": "cubic", "align_corners": True}}  # fmt: skip
    g.nodes += [Node(name, "Resize", ["x"], [name], {**attrs, "antialias": True})
                for name, attrs in resizes.items()]  # fmt: skip
    g.outputs = list(cases) + list(resizes)
    model = MaxModel.from_graph(g, "cpu")
    rng = np.random.default_rng(0)
    for points in (6, 9):
        x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
        grid = rng.uniform(-1.3, 1.3, (2, points, 4, 2)).astype(np.float32)
        got = model.run({"x": x, "grid": grid})
        for name, attrs in cases.items():
            want = torch.nn.functional.grid_sample(torch.from_numpy(x), torch.from_numpy(grid), **attrs)
            np.testing.assert_allclose(got[name], want.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)
        for name, attrs in resizes.items():
            mode = {"linear": "bilinear", "cubic": "bicubic"}[attrs["mode"]]
            want = torch.nn.functional.interpolate(torch.from_numpy(x), size=attrs["size"], mode=mode,
                                                   align_corners=attrs["align_corners"], antialias=True)  # fmt: skip
            np.testing.assert_allclose(got[name], want.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


def test_a_scalar_attribute_read_from_a_shape_is_a_run_time_value():
    """deepseek_vl compares a count with 128 * seq: the attribute is a symbolic dim, which
    reaches MAX as a 0-d tensor computed from the input's shape (it failed as a constant)."""
    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.max_model import MaxModel

    g = Graph(name="dim_attribute")
    g.inputs["ids"] = TensorSpec("int64", ["batch", "seq"])
    g.nodes = [
        Node("n", "SymSize", ["ids"], ["n"], {"dim": 1}),
        Node("m", "Scalar", ["n"], ["m"], {"fn": "mul", "a": 128}),
        Node("sum", "ReduceSum", ["ids"], ["sum"], {"axes": [1], "keepdims": False, "dtype": "int64"}),
        Node("count", "Mul", ["sum"], ["count"], {"b": 128, "dtype": "int64"}),
        Node("eq", "Equal", ["count"], ["eq"], {"b": {"$ref": "m"}, "dtype": "bool"}),
        Node("plus", "Add", ["sum"], ["plus"], {"b": {"$ref": "n"}, "dtype": "int64"}),
    ]
    g.outputs = ["eq", "plus"]
    model = MaxModel.from_graph(g, "cpu")
    for seq in (3, 6):
        ids = np.ones((2, seq), np.int64)
        ids[1, 0] = 0
        got = model.run({"ids": ids})
        np.testing.assert_array_equal(got["eq"], [True, False])
        np.testing.assert_array_equal(got["plus"], ids.sum(1) + seq)


def test_negative_symbolic_slice_and_dim_mod():
    """bamba's mask[:, -seq:] (a symbolic negative start, which torch wraps: the whole dim) and
    seq % 4 as Dim algebra (MAX's Dim has no %) sizing an Arange."""
    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.max_model import MaxModel

    g = Graph(name="negative_slice")
    g.inputs["x"] = TensorSpec("float32", ["batch", "seq"])
    g.inputs["mask"] = TensorSpec("float32", ["batch", "seq"])
    g.nodes = [
        Node("n", "SymSize", ["mask"], ["n"], {"dim": 1}),
        Node("neg", "Scalar", ["n"], ["neg"], {"fn": "neg"}),
        Node("tail", "Slice", ["mask"], ["tail"], {"dim": 1, "start": {"$ref": "neg"}, "end": None, "step": 1}),
        Node("masked", "Mul", ["x", "tail"], ["masked"], {"dtype": "float32"}),
        Node("m", "Scalar", ["n"], ["m"], {"fn": "mod", "b": 4}),
        Node("r", "Arange", [], ["r"], {"start": 0, "end": {"$ref": "m"}, "step": 1, "dtype": "int64"}),
    ]
    g.outputs = ["masked", "r"]
    model = MaxModel.from_graph(g, "cpu")
    rng = np.random.default_rng(0)
    for seq in (5, 7):
        x, mask = rng.standard_normal((2, seq)).astype(np.float32), (rng.random((2, seq)) > 0.5).astype(np.float32)
        got = model.run({"x": x, "mask": mask})
        np.testing.assert_allclose(got["masked"], x * mask)
        np.testing.assert_array_equal(got["r"], np.arange(seq % 4))


def test_unfold_follows_torch():
    """Tensor.unfold as one gather of a window grid (PatchTST's patching), along a middle and the
    last dim, with a step that leaves a remainder; the batch stays symbolic."""
    import torch

    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.max_model import MaxModel

    g = Graph(name="unfold")
    g.inputs["x"] = TensorSpec("float32", ["batch", 11, 6])
    g.nodes = [Node("u1", "Unfold", ["x"], ["last"], {"dim": -1, "size": 4, "step": 1}),
               Node("u2", "Unfold", ["x"], ["middle"], {"dim": 1, "size": 3, "step": 4})]  # fmt: skip
    g.outputs = ["last", "middle"]
    model = MaxModel.from_graph(g, "cpu")
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 11, 6)).astype(np.float32)
        got = model.run({"x": x})
        np.testing.assert_array_equal(got["last"], torch.from_numpy(x).unfold(-1, 4, 1).numpy())
        np.testing.assert_array_equal(got["middle"], torch.from_numpy(x).unfold(1, 3, 4).numpy())


def test_chunks_never_show_torch_the_gpu(monkeypatch, tmp_path):
    """A chunk forks its exports: on a CUDA build of torch a parent that touched CUDA makes each
    one fail, whatever MAX's target, so the chunk runs with CUDA hidden; a GPU group gets it back."""
    from skillmill.measure.sweeps import max as coverage

    seen = []
    monkeypatch.setattr(coverage, "_chunk_in_subprocess", lambda folder, chunk, env: seen.append(env) or {})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    for target in ("cpu", "gpu"):
        coverage.run_coverage(["bert"], jobs=1, workdir=tmp_path, target=target)
    cpu, gpu = seen
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and gpu["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.setattr(coverage.os, "environ", cpu)
    assert coverage._group_env() is None  # the CPU group keeps the GPU hidden
    monkeypatch.setattr(coverage.os, "environ", gpu)
    assert coverage._group_env()["CUDA_VISIBLE_DEVICES"] == "3"

"""Execution plans: a planned run equals the unplanned one, for any data of the planned shapes,
and falls back when a shape turns out to depend on the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skillmill.ir.errors import ExecutionError
from skillmill.ir.executor import Executor
from skillmill.ir.graph import Graph, TensorSpec
from skillmill.ir.passes import optimize_graph

import tiny_models

native = pytest.importorskip("skillmill.native")
if not native.available():  # pragma: no cover - only without a compiler
    pytest.skip("planned execution needs the native kernels", allow_module_level=True)


_MODELS: dict[str, tuple] = {}


def optimised(kind: str) -> tuple:
    """(torch model, optimised graph), converted once per test session."""
    if kind not in _MODELS:
        model, graph = tiny_models.converted(kind)
        _MODELS[kind] = (model, optimize_graph(graph)[0])
    return _MODELS[kind]


def planned_kinds(executor: Executor) -> list[dict]:
    return [plan["nodes_by_kind"] for plan in executor.plan_report().values() if plan is not None]


@pytest.mark.parametrize("kind", ["bert", "llama"])  # every tiny family: test_pytorch_parity
def test_planned_runs_equal_unplanned(kind):
    executor = Executor(optimised(kind)[1])
    shapes = [(2, 7), (1, 3)]
    for batch, seq in shapes:
        for seed in range(3):  # the first run builds the plan, the next two use it
            feeds = {
                k: v.numpy() for k, v in tiny_models.inputs(kind, batch, seq, seed=seed).items()
            }
            got = executor.run(feeds)
            want = executor.run_unplanned(feeds)
            assert sorted(got) == sorted(want) == sorted(executor.output_names)
            for name in want:
                np.testing.assert_allclose(
                    got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name
                )
    kinds = planned_kinds(executor)
    assert len(kinds) == len(shapes) and all(k.get("native", 0) > 0 for k in kinds), kinds


def test_planned_bert_follows_the_mask_and_keeps_results():
    """Padding differs run to run at one shape: nothing data-dependent may be planned away, and
    a returned array must not change when the next run reuses the arena."""
    model, graph = optimised("bert")
    executor = Executor(graph)
    results = []
    for pad in (0, 3, 5, 0):
        feeds = tiny_models.inputs("bert", 2, 8, seed=pad)
        feeds["attention_mask"][1, 8 - pad :] = 0
        with torch.no_grad():
            want = model(**feeds).last_hidden_state.numpy()
        got = executor.run({k: v.numpy() for k, v in feeds.items()})["last_hidden_state"]
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
        results.append((got, got.copy()))
    assert all(np.array_equal(kept, copy) for kept, copy in results)
    assert planned_kinds(executor)[0]["native"] > 0


def test_planned_bad_token_id_raises_like_unplanned():
    executor = Executor(optimised("bert")[1])
    feeds = {k: v.numpy() for k, v in tiny_models.inputs("bert", 1, 5).items()}
    executor.run(feeds)
    feeds["input_ids"] = feeds["input_ids"].copy()
    feeds["input_ids"][0, 2] = 10**6
    with pytest.raises(ExecutionError, match="Embedding"):
        executor.run(feeds)


def data_dependent_graph() -> Graph:
    """relu(x[x > 0]) * 2: the length after the boolean index depends on the data."""
    g = Graph(name="positives")
    g.inputs["x"] = TensorSpec("float32", [8])
    g.add_node("Greater", ["x"], attrs={"b": 0.0}, name="gt", outputs=["keep"])
    g.add_node("Index", ["x", "keep"], attrs={"positions": [0]}, name="pick", outputs=["picked"])
    g.add_node("Relu", ["picked"], name="relu", outputs=["y"])
    g.add_node("Add", ["y", "y"], name="double", outputs=["z"])
    g.outputs = ["z"]
    return g


def test_data_dependent_shape_falls_back():
    executor = Executor(data_dependent_graph())
    rng = np.random.default_rng(0)
    for positives in (3, 3, 5, 1):
        x = -np.abs(rng.standard_normal(8)).astype(np.float32)
        x[:positives] *= -1
        got = executor.run({"x": x})["z"]
        np.testing.assert_allclose(got, 2 * x[x > 0], rtol=1e-6)
    assert list(executor.plan_report().values()) == [None]  # dropped once the shape moved


@pytest.mark.skipif("scalar" not in native.supported_isas() or len(native.supported_isas()) < 2,
                    reason="needs a second ISA path")  # fmt: skip
def test_plans_follow_the_active_isa():
    executor = Executor(optimised("llama")[1])
    feeds = {k: v.numpy() for k, v in tiny_models.inputs("llama", 2, 6).items()}
    want = executor.run_unplanned(feeds)["last_hidden_state"]
    for isa in ("scalar", native.get_isa(), "scalar"):
        with native.using_isa(isa):
            for _ in range(2):
                got = executor.run(feeds)["last_hidden_state"]
                assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert len(planned_kinds(executor)) == 2


def test_unplanned_executor_option():
    executor = Executor(data_dependent_graph(), planned=False)
    executor.run({"x": np.ones(8, np.float32)})
    assert executor.plan_report() == {}


def test_packed_weight_budget_falls_back_to_unpacked(monkeypatch):
    """Past the budget for packed copies a Linear runs its ordinary kernel; results agree."""
    import skillmill.ir.executor as executor_module

    monkeypatch.setattr(executor_module, "PACKED_WEIGHT_BUDGET", 0)
    executor = Executor(optimised("bert")[1])
    feeds = {k: v.numpy() for k, v in tiny_models.inputs("bert", 2, 5).items()}
    want = executor.run_unplanned(feeds)
    for _ in range(2):
        got = executor.run(feeds)
        assert sorted(got) == sorted(want) == sorted(executor.output_names)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)
    kinds = planned_kinds(executor)[0]
    assert kinds["generic"] > 9 and not executor._packed  # every Linear left to its kernel


def test_runtime_assert_stays_in_the_plan():
    """A data-dependent AssertScalar (kept by dead-code elimination) still checks planned runs."""
    g = Graph(name="guarded")
    g.inputs["x"] = TensorSpec("float32", [4])
    g.add_node("ReduceSum", ["x"], name="total", outputs=["total"])
    g.add_node("Greater", ["total"], attrs={"b": 0.0}, name="positive", outputs=["positive"])
    g.add_node("AssertScalar", ["positive"], attrs={"msg": "sum must be positive"}, name="check",
               outputs=[""])  # fmt: skip
    g.add_node("Relu", ["x"], name="relu", outputs=["y"])
    g.outputs = ["y"]
    executor = Executor(g)
    for _ in range(2):
        executor.run({"x": np.ones(4, np.float32)})
    with pytest.raises(ExecutionError, match="sum must be positive"):
        executor.run({"x": -np.ones(4, np.float32)})


def test_q8_0_qlinears_are_planned_as_direct_calls(monkeypatch):
    """A decoded token is one small QLinear call per layer: q8_0's are compiled into the plan
    (skm_linear_q8_0, checked once) and give what the unplanned kernels give."""
    from skillmill.ir.ops import native_plan
    from skillmill.ir.passes.quantize import quantize_graph

    graph, _ = quantize_graph(optimised("llama")[1], "q8_0")
    qlinears = sum(1 for node in graph.nodes if node.op == "QLinear")
    feeds = {k: v.numpy() for k, v in tiny_models.inputs("llama", 1, 5).items()}
    executor = Executor(graph)
    want = executor.run_unplanned(feeds)
    for _ in range(2):
        got = executor.run(feeds)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)
    planned = planned_kinds(executor)[0]
    # the same graph with the q8_0 compiler off: exactly the QLinears leave the native steps
    monkeypatch.setattr(native_plan, "_qlinear_q8_0", lambda *args: None)
    without = Executor(graph)
    without.run(feeds)
    assert qlinears > 0 and planned["native"] - planned_kinds(without)[0]["native"] == qlinears


def test_q4_0_qlinears_are_planned_as_direct_calls(monkeypatch):
    """q4_0's QLinears are compiled into the plan too (skm_linear_q4_0, checked once), at one
    decoded token (the few-rows path that reads the 4-bit blocks in place) and at a prompt's
    rows (the packed path), and give what the unplanned kernels give."""
    from skillmill.ir.ops import native_plan
    from skillmill.ir.passes.quantize import quantize_graph

    graph, _ = quantize_graph(optimised("llama")[1], "q4_0")
    qlinears = sum(
        1 for node in graph.nodes if node.op == "QLinear" and node.attrs.get("scheme") == "q4_0"
    )
    for seq in (1, 7):
        feeds = {k: v.numpy() for k, v in tiny_models.inputs("llama", 1, seq).items()}
        executor = Executor(graph)
        want = executor.run_unplanned(feeds)
        for _ in range(2):
            got = executor.run(feeds)
            for name in want:
                np.testing.assert_allclose(
                    got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name
                )
        planned = planned_kinds(executor)[0]
        # the same graph with the q4_0 compiler off: exactly the QLinears leave the native steps
        with monkeypatch.context() as patch:
            patch.setattr(native_plan, "_qlinear_q4_0", lambda *args: None)
            without = Executor(graph)
            without.run(feeds)
        assert qlinears > 0
        assert planned["native"] - planned_kinds(without)[0]["native"] == qlinears

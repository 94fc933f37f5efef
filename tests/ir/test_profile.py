"""The executor's profile counts what really ran (issue 26): a bound native kernel that declines
its arguments at run time ran numpy, whatever the binder count says; views are no arithmetic."""

import numpy as np
import pytest

from skillmill.ir.executor import Executor
from skillmill.ir.graph import Graph, TensorSpec
from skillmill.ir.ops.native import _with_fallback


def _graph() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph(name="profiled")
    g.inputs["x"] = TensorSpec("float32", ["batch", 16])
    g.weights.update({"w": rng.standard_normal((8, 16)).astype(np.float32),
                      "b": rng.standard_normal(8).astype(np.float32)})  # fmt: skip
    g.add_node("Linear", ["x", "w", "b"], outputs=["y"], attrs={"activation": "none"}, name="fc")
    g.add_node("Reshape", ["y"], outputs=["z"], attrs={"shape": [-1, 2, 4]}, name="split")
    g.add_node("CumSum", ["z"], outputs=["c"], attrs={"axis": 1}, name="running")
    g.outputs = ["c"]
    g.validate()
    return g


@pytest.mark.parametrize("planned", [True, False])
def test_native_views_and_numpy_are_told_apart(planned):
    executor = Executor(_graph(), planned=planned)
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    report = executor.profile({"x": x}, runs=4)
    assert report["runs"] == 4 and report["planned"] is planned
    ops = report["ops"]
    assert ops["Linear"]["native_calls"] == 4 and "numpy_calls" not in ops["Linear"]
    if "CumSum" in executor.numpy_counts:  # no native kernel bound: numpy, by calls as by nodes
        assert ops["CumSum"]["numpy_calls"] == 4
    shares = report["native_time_share"] + report["view_time_share"] + report["numpy_time_share"]
    assert shares == pytest.approx(1.0)
    assert report["numpy_call_share"] + report["native_call_share"] + report[
        "view_call_share"
    ] == pytest.approx(1.0)
    if not planned:  # a plan makes a fixed view once, at bind time: no call left to count
        assert ops["Reshape"]["view_calls"] == 4


def test_a_kernel_that_declines_at_run_time_counts_as_numpy():
    executor = Executor(_graph(), planned=False)
    step = next(s for s in executor.steps if s.op == "Linear")
    assert step.native  # the binder counted it native ...
    step.kernel = _with_fallback("Linear", lambda inputs, attrs: None)  # ... but it declines
    x = np.ones((2, 16), np.float32)
    report = executor.profile({"x": x}, runs=3)
    assert executor.report()["native_ops"].get("Linear") == 1  # binders: still "native"
    assert (
        report["ops"]["Linear"]["numpy_calls"] == 3
        and "native_calls" not in report["ops"]["Linear"]
    )
    want = Executor(_graph(), use_native=False).run({"x": x})["c"]
    np.testing.assert_allclose(executor.run({"x": x})["c"], want, rtol=1e-5)  # numpy answered

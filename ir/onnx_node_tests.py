"""Run the ONNX backend node tests (built in memory by onnx.backend.test.loader) through the ONNX
frontend + executor, and optionally through ONNX Runtime on the same cases, and count passes.

    python -m skillmill.ir.onnx_node_tests [--ort] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections import defaultdict
from typing import Any, Callable

import numpy as np


def load_cases() -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.loader import load_model_tests

        return load_model_tests(kind="node")


def _as_array(value: Any) -> Any:
    """A case's stored tensor as a numpy array: the loader keeps some as ``TensorProto`` (the
    Cast cases, among others) and 0-d ones as numpy scalars (CumSum's axis); a sequence, map,
    optional or None stays as it is (not a tensor)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    return value


def data_sets(case: Any) -> list[tuple[list[Any], list[Any]]]:
    """``case.data_sets`` with every stored tensor as a numpy array."""
    return [([_as_array(a) for a in inputs], [_as_array(a) for a in outputs])
            for inputs, outputs in case.data_sets]  # fmt: skip


def tensor_only(case: Any) -> bool:
    """Every input and output of every data set is a tensor (not a sequence, map or string)."""
    for inputs, outputs in data_sets(case):
        if not all(isinstance(a, np.ndarray) and a.dtype != object for a in inputs + outputs):
            return False
    return True


def case_ops(case: Any) -> set[str]:
    return {n.op_type for n in case.model.graph.node}


def outputs_match(got: list[np.ndarray], want: list[np.ndarray], rtol: float, atol: float) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        g = np.asarray(g)
        if g.shape != w.shape or g.dtype != w.dtype:
            return False
        if w.dtype.kind in "fc":
            if not np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True):
                return False
        elif not np.array_equal(g, w):
            return False
    return True


def run_ir(case: Any) -> bool:
    from .executor import Executor
    from .frontends.onnx import convert_from_onnx

    graph = convert_from_onnx(case.model, model_name=case.name)
    executor = Executor(graph)
    for inputs, outputs in data_sets(case):
        feeds = dict(zip(executor.input_names, inputs))
        got = executor.run(feeds)
        if not outputs_match([got[n] for n in executor.output_names], list(outputs), case.rtol, case.atol):
            return False
    return True


def run_ort(case: Any) -> bool:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(case.model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for inputs, outputs in data_sets(case):
        got = session.run(None, dict(zip(names, inputs)))
        if not outputs_match(got, list(outputs), case.rtol, case.atol):
            return False
    return True


def _safe(fn: Callable[[Any], bool], case: Any) -> tuple[bool, str]:
    try:
        return fn(case), ""
    except Exception as exc:  # a failure to convert or run is a failed case, with its reason
        return False, f"{type(exc).__name__}: {str(exc)[:160]}"


def run_node_tests(with_ort: bool = False, name_filter: str | None = None) -> dict[str, Any]:
    from .frontends.onnx import CLAIMED_OPS

    cases = [c for c in load_cases() if tensor_only(c) and (not name_filter or name_filter in c.name)]
    per_op: dict[str, dict[str, int]] = defaultdict(lambda: {"cases": 0, "ir": 0, "ort": 0})
    failures: dict[str, str] = {}
    ir_pass = ort_pass = 0
    for case in cases:
        ok, why = _safe(run_ir, case)
        ir_pass += ok
        if not ok:
            failures[case.name] = why or "mismatch"
        ort_ok = _safe(run_ort, case)[0] if with_ort else False
        ort_pass += ort_ok
        for op in case_ops(case):
            per_op[op]["cases"] += 1
            per_op[op]["ir"] += ok
            per_op[op]["ort"] += ort_ok
    claimed = {op: per_op[op] for op in CLAIMED_OPS if op in per_op}
    fully = sorted(op for op, c in claimed.items() if c["ir"] == c["cases"])
    return {
        "tensor_only_cases": len(cases),
        "ir_passed": ir_pass,
        "ort_passed": ort_pass if with_ort else None,
        "claimed_ops": len(CLAIMED_OPS),
        "claimed_ops_all_cases_pass": fully,
        "claimed_ops_with_failures": {op: c for op, c in claimed.items() if c["ir"] != c["cases"]},
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ort", action="store_true", help="also run ONNX Runtime on the same cases")
    parser.add_argument("--filter", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    result = run_node_tests(args.ort, args.filter)
    print(f"tensor-only node cases: {result['tensor_only_cases']}")
    print(f"skillmill IR passed:     {result['ir_passed']}")
    if args.ort:
        print(f"ONNX Runtime passed:     {result['ort_passed']}")
    print(f"claimed ops: {result['claimed_ops']}, all cases pass for {len(result['claimed_ops_all_cases_pass'])}")
    for op, c in sorted(result["claimed_ops_with_failures"].items()):
        print(f"  {op}: {c['ir']}/{c['cases']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""ONNX frontend: a fixed subset of the ONNX backend node tests, plus unsupported-op reporting."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from skillmill.ir.errors import UnsupportedOp  # noqa: E402
from skillmill.ir.frontends.onnx import convert_from_onnx  # noqa: E402
from skillmill.ir.onnx_node_tests import load_cases, run_ir, tensor_only  # noqa: E402

SUBSET = ("test_add", "test_add_bcast", "test_matmul_2d", "test_matmul_4d", "test_gemm_default_vector_bias",
          "test_gemm_transposeB", "test_softmax_axis_1", "test_layer_normalization_4d_axis1",
          "test_reshape_negative_dim", "test_transpose_all_permutations_0", "test_gather_0",
          "test_slice", "test_concat_2d_axis_0", "test_relu", "test_gelu_default_1", "test_erf",
          "test_conv_with_strides_padding", "test_maxpool_2d_pads", "test_averagepool_2d_pads",
          "test_reduce_mean_keepdims_example", "test_where_example", "test_cast_FLOAT_to_DOUBLE",
          "test_expand_dim_changed", "test_split_equal_parts_1d_opset18", "test_div_int32_trunc",
          "test_einsum_batch_matmul", "test_argmax_default_axis_example", "test_cumsum_1d_reverse",
          "test_conv_with_autopad_same", "test_maxpool_2d_same_upper", "test_maxpool_2d_same_lower",
          "test_averagepool_2d_same_upper", "test_averagepool_2d_same_lower", "test_dropout_default_mask",
          "test_reduce_log_sum_exp_empty_set", "test_reduce_max_empty_set_bool", "test_top_k_uint64",
          "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True",
          "test_batchnorm_epsilon_training_mode", "test_maxpool_with_argmax_2d_precomputed_strides",
          "test_einsum_batch_matmul_bfloat16")  # fmt: skip


@pytest.fixture(scope="module")
def cases():
    return {c.name: c for c in load_cases()}


@pytest.mark.parametrize("name", SUBSET)
def test_node_case(cases, name):
    if name not in cases:  # the only reason to skip: the installed onnx does not ship the case
        pytest.skip(f"{name} not in onnx {onnx.__version__}")
    case = cases[name]
    assert tensor_only(case), f"{name}: a data set holds a non-tensor; the subset lists tensor cases only"
    assert run_ir(case)


def test_stored_tensors_are_read_as_arrays(cases):
    """The loader stores some tensors as TensorProto (Cast) and 0-d ones as numpy scalars
    (CumSum's axis): both are tensors, and the cases holding them run like any other."""
    from onnx import TensorProto

    from skillmill.ir.onnx_node_tests import data_sets

    kinds = {name: {type(a) for inputs, outputs in cases[name].data_sets for a in [*inputs, *outputs]}
             for name in ("test_cast_FLOAT_to_DOUBLE", "test_cumsum_1d_reverse") if name in cases}  # fmt: skip
    if not kinds:
        pytest.skip(f"neither case is in onnx {onnx.__version__}")
    assert any(TensorProto in k or any(issubclass(t, np.generic) for t in k) for k in kinds.values())
    for name in kinds:
        assert tensor_only(cases[name]), name
        for inputs, outputs in data_sets(cases[name]):
            assert all(isinstance(a, np.ndarray) for a in [*inputs, *outputs]), name


def test_unsupported_op_is_named():
    from onnx import TensorProto, helper

    node = helper.make_node("NonMaxSuppression", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1])])  # fmt: skip
    with pytest.raises(UnsupportedOp, match="NonMaxSuppression.*my_model"):
        convert_from_onnx(helper.make_model(graph), model_name="my_model")


def test_symbolic_input_dims_kept():
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])])  # fmt: skip
    ir = convert_from_onnx(helper.make_model(graph))
    assert ir.inputs["x"].shape == ["batch", 3]
    from skillmill.ir.executor import Executor

    out = Executor(ir).run({"x": -np.ones((5, 3), np.float32)})["y"]
    assert out.shape == (5, 3) and not out.any()

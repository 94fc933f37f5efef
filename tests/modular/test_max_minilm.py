"""Real all-MiniLM-L6-v2 on MAX: the skill's IR lowered to a MAX graph, compiled, executed."""

import pytest

from modular_helpers import SENTENCES, relative_error


def test_minilm_embeddings_on_max_equal_pytorch(minilm_skill_factory, minilm_reference):
    _, hidden, embeddings = minilm_reference
    result = minilm_skill_factory("max").process(SENTENCES)
    assert result.backend == "max", result.fallback_reason
    assert result.device.startswith("max:")
    assert relative_error(result["last_hidden_state"].numpy(), hidden) <= 1e-4
    assert relative_error(result.embeddings, embeddings) <= 1e-4


def test_compile_to_max_reports_real_values(minilm_skill_factory, minilm_reference):
    import os

    import skillmill

    batch, hidden, _ = minilm_reference
    model = minilm_skill_factory("cpu").model
    result = skillmill.compile_to_max(model, target_device="cpu", example_inputs=dict(batch))
    assert result.success, result.error_message
    assert result.error_message is None
    assert os.path.exists(result.compiled_path) and result.compiled_path.endswith(".mef")
    assert result.compilation_time > 0
    assert "fuse_attention" in result.optimizations_applied
    assert result.metadata["target"] == "cpu" and result.metadata["outputs"][0] == "last_hidden_state"
    # on the CPU the defaults lower Linear and LayerNorm to skillmill's Mojo kernels registered
    # as MAX custom ops (MAX compiles and runs them inside its graph)
    assert result.metadata["custom_ops"] == ["skillmill_layer_norm", "skillmill_linear"]


def test_every_mojo_custom_op_on_minilm_equals_pytorch(minilm_skill_factory, minilm_reference):
    """mojo_custom_ops=True adds the fused QKV attention kernel (padding mask) to the two."""
    import skillmill

    batch, hidden, _ = minilm_reference
    model = minilm_skill_factory("cpu").model
    result = skillmill.compile_to_max(model, target_device="cpu", example_inputs=dict(batch), mojo_custom_ops=True)
    assert result.success, result.error_message
    assert result.metadata["custom_ops"] == ["skillmill_layer_norm", "skillmill_linear", "skillmill_qkv_attention"]
    got = result.model.run({k: v.numpy() for k, v in batch.items()})["last_hidden_state"]
    assert relative_error(got, hidden) <= 1e-4
    got = result.model.run({k: v.numpy() for k, v in batch.items()})["last_hidden_state"]
    assert relative_error(got, hidden) <= 1e-4


def test_bad_target_device_is_a_clear_failure():
    import skillmill
    from skillmill.ir.graph import Graph

    result = skillmill.compile_to_max(Graph(name="empty"), target_device="tpu")
    assert not result.success
    # the device is what is refused (not, say, the empty graph)
    assert "target_device must be 'auto', 'cpu' or 'gpu', not 'tpu'" in result.error_message


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])

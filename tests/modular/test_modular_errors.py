"""When MAX or Mojo cannot run a model, the reason is kept and the skill falls back with it."""

import numpy as np
import pytest


def test_mojo_compiler_error_lands_in_error_message_and_the_skill_falls_back(monkeypatch):
    import skillmill
    from skillmill import load_skill
    from skillmill.engines.modular import mojo_build

    real_render = mojo_build.render
    monkeypatch.setattr(mojo_build, "render", lambda ctx: real_render(ctx) + "\ndef broken(:\n")
    from modular_helpers import ln_linear_graph

    result = skillmill.compile_to_mojo(ln_linear_graph(hidden=24, out=8))
    assert not result.success and result.compiled_path is None
    assert "mojo build failed" in result.error_message and "error" in result.error_message
    skill = load_skill("BertModel", model="tiny", device="mojo")
    ran = skill.process(["hello world"])
    assert ran.backend == "cpu"
    assert ran.fallback_reason.startswith("mojo: unavailable") and "mojo build failed" in ran.fallback_reason


def test_missing_max_lowering_names_the_op():
    import skillmill
    from skillmill.ir.graph import Graph, TensorSpec

    graph = Graph(name="einsum_only")
    graph.inputs["a"] = TensorSpec("float32", [2, 3])
    graph.inputs["b"] = TensorSpec("float32", [3, 4])
    graph.add_node("Einsum", ["a", "b"], outputs=["c"], attrs={"equation": "ij,jk->ik"}, name="mix")
    graph.outputs = ["c"]
    result = skillmill.compile_to_max(graph, target_device="cpu")
    assert not result.success
    assert "no MAX lowering for op 'Einsum'" in result.error_message
    assert result.metadata["missing_op"] == "Einsum"


def test_skill_on_max_names_the_missing_op_and_falls_back(monkeypatch):
    from skillmill import load_skill
    from skillmill.engines.modular import lowering

    table = lowering.lowerings()
    monkeypatch.setattr(lowering, "lowerings", lambda: {k: v for k, v in table.items() if k != "LayerNorm"})
    skill = load_skill("BertModel", model="tiny", device="max")
    result = skill.process(["hello"])
    assert result.backend == "cpu"
    assert "no MAX lowering for op 'LayerNorm'" in result.fallback_reason


def test_auto_leaves_modular_targets_alone_unless_asked(monkeypatch):
    from skillmill import load_skill

    monkeypatch.delenv("USE_MOJO_MAX_TARGET", raising=False)
    skill = load_skill("BertModel", model="tiny")
    assert "max" not in skill.preferred_order() and "mojo" not in skill.preferred_order()
    assert skill.modular_requested() == (False, "not asked for")
    monkeypatch.setenv("USE_MOJO_MAX_TARGET", "1")
    assert skill.preferred_order()[:2] == ["max", "mojo"]
    assert skill.modular_requested()[0]


def test_probes_report_max_and_mojo_really_present():
    """Through the declarations, as the skills probe them (the probes live in the engine)."""
    from skillmill.generator.targets import load_declarations
    from skillmill.runtime.hardware import evaluate

    declared = {d["name"]: d for d in load_declarations()}
    max_status, mojo_status = (evaluate(name, declared[name]["detect"]) for name in ("max", "mojo"))
    assert max_status.available and max_status.version == "26.7.0" and "MAX" in max_status.reason
    assert mojo_status.available and "Mojo" in mojo_status.reason


@pytest.mark.parametrize("value", [np.float32(1.0)])
def test_compile_to_max_rejects_what_it_cannot_compile(value):
    import skillmill

    result = skillmill.compile_to_max(value)
    assert not result.success and "torch.nn.Module" in result.error_message


def test_a_count_read_from_a_tensor_is_refused_as_data_dependent():
    """TopK's k read from a tensor's value (torch.export's TensorToScalar) cannot size a MAX
    output: the lowering says so by name (no compile needed to find out)."""
    from skillmill.ir.graph import Graph, Node, TensorSpec
    from skillmill.engines.modular.lowering import MaxLoweringError, lower_graph

    g = Graph(name="topk_k_from_tensor")
    g.inputs["x"] = TensorSpec("float32", ["batch", 8])
    g.inputs["k"] = TensorSpec("int64", [])
    g.nodes = [Node("k_value", "TensorToScalar", ["k"], ["k_scalar"], {}),
               Node("topk", "TopK", ["x"], ["values", "indices"], {"k": {"$ref": "k_scalar"}, "axis": -1})]  # fmt: skip
    g.outputs = ["values"]
    with pytest.raises(MaxLoweringError, match="TopK.*read from a tensor at run time"):
        lower_graph(g, "cpu", {}, [])

"""Real all-MiniLM-L6-v2 on the Mojo path: the IR on skillmill's executor with its fused ops on
Mojo kernels rendered for MiniLM's shapes and built with `mojo build`."""

from modular_helpers import SENTENCES, ln_linear_graph, reference, relative_error

from skillmill.engines import parity


def test_minilm_embeddings_on_mojo_equal_pytorch(minilm_skill_factory, minilm_reference):
    _, hidden, embeddings = minilm_reference
    skill = minilm_skill_factory("mojo")
    result = skill.process(SENTENCES)
    assert result.backend == "mojo", result.fallback_reason
    assert relative_error(result["last_hidden_state"].numpy(), hidden) <= 1e-4
    assert relative_error(result.embeddings, embeddings) <= 1e-4
    (prepared,) = [p for p in parity.verdicts(skill, "mojo").values() if not isinstance(p, str)]
    report = prepared.model.report()
    # every fused op of MiniLM runs on a Mojo kernel
    assert report["mojo_nodes"]["Linear"] >= 24 and report["mojo_nodes"]["LayerNorm"] == 13
    assert any(op in report["mojo_nodes"] for op in ("Attention", "QKVAttention"))


def test_compile_to_mojo_levels_map_to_compiler_flags():
    import numpy as np

    import skillmill
    from skillmill.engines.modular.mojo_build import optimization_flags

    assert optimization_flags(0)[0] == "--optimization-level=0" and "--fp-mode=contract=off" in optimization_flags(0)
    assert optimization_flags(3) == ["--optimization-level=3"]
    graph = ln_linear_graph()
    results = {level: skillmill.compile_to_mojo(graph, optimization_level=level) for level in (0, 3)}
    for level, result in results.items():
        assert result.success, result.error_message
        assert f"mojo build -O{level}" in result.optimizations_applied
        assert result.metadata["mojo_nodes"] == {"LayerNorm": 1, "Linear": 1}
    assert results[0].compiled_path != results[3].compiled_path  # a module per flag set
    x = np.random.default_rng(1).standard_normal((3, 5, 48)).astype(np.float32)
    want = reference(graph, {"x": x})["z"]
    for result in results.values():
        assert relative_error(result.model.run({"x": x})["z"], want) <= 1e-5
    bad = skillmill.compile_to_mojo(graph, optimization_level=7)
    assert not bad.success and "optimization_level" in bad.error_message

"""Every engine other than PyTorch eager float32 proves itself once against it, at the precision
the caller asked for (float32 unless asked), and a result says which engine ran at what.

OpenVINO gets its own parity tests here: with it installed, ``device="auto"`` picks it first, so
a broken OpenVINO must turn these red (``test_a_broken_openvino_turns_its_parity_test_red``)."""

import copy

import numpy as np
import pytest
import torch

from skillmill import load_skill
from skillmill.ir.numerics import relative_error
from skillmill.registry import load_registry
from skillmill.registry.tiny import tiny_config
from skillmill.engines import parity
from skillmill.engines.openvino import runner as openvino_runner
from skillmill.runtime.outputs import flatten_outputs
from skillmill.runtime.precision import PARITY_TOLERANCE, UnknownPrecisionError

openvino = pytest.importorskip("openvino")

# Types whose tiny models OpenVINO 2026.4 converts today, one per modality; the decoders fail its
# TorchScript trace (the reason is in their fallback), which the coverage work will take up.
OPENVINO_TYPES = ["bert", "vit", "resnet", "convnext", "wav2vec2"]


def tiny_skill(model_type: str, **options):
    class_name = load_registry().base_classes[model_type]
    return load_skill(class_name, model=tiny_config(model_type), **options)


def transformers_outputs(skill, inputs):
    """The same weights called directly, outside the skill (a copy: engines never touch it)."""
    model = copy.deepcopy(skill.model)
    with torch.inference_mode():
        return flatten_outputs(model(**inputs))


def assert_ran(result, backend: str, engine: str, precision: str = "float32") -> None:
    """The named engine ran, at the named precision, with no fallback and a parity it proved."""
    assert (result.backend, result.engine, result.precision) == (backend, engine, precision), result.summary()
    assert result.fallback_reason is None, result.fallback_reason
    assert result.parity is not None and result.parity.precision == precision
    assert result.parity.error <= PARITY_TOLERANCE[precision]


def assert_equal_by_name(got: dict, want: dict, tolerance: float) -> float:
    """Every reference output present, same shape, within ``tolerance``; returns the worst error."""
    worst = 0.0
    for name, expected in want.items():
        assert name in got, f"output '{name}' missing; got {sorted(got)}"
        error = relative_error(got[name].float().numpy(), expected.float().numpy())
        assert error <= tolerance, f"output '{name}': relative error {error:.2e} > {tolerance:g}"
        worst = max(worst, error)
    return worst


def compiled_openvino_models(skill) -> list:
    """The compiled OpenVINO models the skill holds (one per input signature it proved)."""
    entries = skill.__dict__.get("_proven_engines", {})
    return [entry[0].compiled for key, entry in entries.items() if key[0] == "openvino" and isinstance(entry, tuple)]


def openvino_parity(model_type: str) -> None:
    skill = tiny_skill(model_type, device="openvino")
    inputs = dict(skill.example_inputs(batch_size=2, seq_len=8))
    result = skill.process(inputs)
    assert_ran(result, "openvino", "openvino")
    assert_equal_by_name(result.outputs, transformers_outputs(skill, inputs), PARITY_TOLERANCE["float32"])
    # Not asked for anything else, so float32, as the compiled model itself says.
    (compiled,) = compiled_openvino_models(skill)
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.f32


@pytest.mark.parametrize("model_type", OPENVINO_TYPES)
def test_openvino_equals_transformers_at_float32(model_type):
    openvino_parity(model_type)


def test_a_broken_openvino_turns_its_parity_test_red(monkeypatch):
    """The suite's own check: an OpenVINO runner that raises, or that computes something else,
    must fail the parity test above, not pass quietly on a fallback."""

    def raises(self, tensors):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(openvino_runner._Compiled, "run", raises)
    with pytest.raises(AssertionError):
        openvino_parity("bert")


def test_openvino_that_computes_something_else_falls_back_with_engine_error_and_tolerance(monkeypatch):
    real = openvino_runner._Compiled.run

    def off_by_a_little(self, tensors):
        return {k: v * 1.001 if v.is_floating_point() else v for k, v in real(self, tensors).items()}

    monkeypatch.setattr(openvino_runner._Compiled, "run", off_by_a_little)
    with pytest.raises(AssertionError):
        openvino_parity("bert")
    skill = tiny_skill("bert", device="openvino")
    result = skill.process(dict(skill.example_inputs()))
    assert (result.backend, result.engine) == ("cpu", "native")
    reason = result.skipped["openvino"]
    assert "relative error 1.00e-03 > tolerance 0.0001 at float32" in reason, reason
    assert "differs from PyTorch eager float32" in reason
    # the verdict is kept: a second call pays no second conversion and says the same
    again = skill.process(dict(skill.example_inputs()))
    assert again.skipped["openvino"] == reason


def test_openvino_that_compiles_below_the_asked_precision_is_declined(monkeypatch):
    """OpenVINO's CPU plugin picks bf16 by itself on AVX512_BF16/AMX CPUs.  Whatever this CPU
    has, a compiled model whose own property says bf16 when float32 was asked never runs."""

    class Bf16Compiled:
        def __init__(self, compiled):
            self.compiled = compiled

        def get_property(self, name):
            return openvino.Type.bf16 if name == "INFERENCE_PRECISION_HINT" else self.compiled.get_property(name)

        def __getattr__(self, name):
            return getattr(self.compiled, name)

    real_compile = openvino.Core.compile_model
    monkeypatch.setattr(openvino.Core, "compile_model", lambda self, *a, **k: Bf16Compiled(real_compile(self, *a, **k)))
    skill = tiny_skill("bert", device="openvino")
    result = skill.process(dict(skill.example_inputs()))
    assert result.engine != "openvino" and result.precision == "float32"
    assert "the CPU plugin compiled at bf16 when float32 was asked" in result.skipped["openvino"]


def test_every_engine_runs_float32_unless_asked():
    """Read from each engine's own record: OpenVINO's compiled property, the native executor's
    proof, PyTorch's parameters."""
    skill = tiny_skill("bert", device="auto")
    inputs = dict(skill.example_inputs())
    assert skill.precision == "float32" and skill.precision_source == "default"
    for order in (["openvino"], ["cpu"]):
        result = skill.process(inputs, order=order)
        assert result.precision == "float32" and result.parity.precision == "float32", result.summary()
    for compiled in compiled_openvino_models(skill):
        assert openvino_runner.compiled_precision(compiled) == "float32"
    assert {p.dtype for p in skill.model.parameters()} == {torch.float32}
    engines = {key[0]: key[1] for key in skill._proven_engines}
    assert engines == {"openvino": "float32", "native executor": "float32"}


def test_bf16_is_opt_in_and_reports_its_error_against_float32():
    bf16 = tiny_skill("bert", device="cpu", precision="bf16")
    f32 = tiny_skill("bert", device="cpu", native=False)
    f32.model.load_state_dict(bf16.model.state_dict())
    inputs = dict(bf16.example_inputs(batch_size=2, seq_len=8))
    result = bf16.process(inputs)
    assert (result.engine, result.precision) == ("torch", "bf16")
    assert "native executor: computes at float32 only; bf16 was asked (precision=bf16)" in result.fallback_reason
    assert result["last_hidden_state"].dtype == torch.float32  # bf16 values, float32 tensors
    reference = f32.process(inputs)
    assert (reference.engine, reference.precision) == ("torch", "float32")
    error = relative_error(result["last_hidden_state"].numpy(), reference["last_hidden_state"].numpy())
    # bf16 really ran (the same weights at float32 give the same bits: 0) and the proof reports
    # the worst output
    assert 1e-6 < error <= result.parity.error <= PARITY_TOLERANCE["bf16"]
    assert result.summary()["parity"]["relative_error"] == result.parity.error


def test_openvino_bf16_runs_where_the_cpu_has_it_else_says_why():
    skill = tiny_skill("bert", device="openvino", precision="bf16")
    result = skill.process(dict(skill.example_inputs()))
    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "BF16" in capabilities:
        assert_ran(result, "openvino", "openvino", "bf16")
    else:
        assert (result.engine, result.precision) == ("torch", "bf16")
        assert "the CPU plugin compiled at float32 when bf16 was asked" in result.skipped["openvino"]


def test_precision_from_the_environment_and_bad_values(monkeypatch):
    monkeypatch.setenv("SKILLMILL_PRECISION", "bfloat16")
    skill = tiny_skill("bert", device="cpu")
    assert (skill.precision, skill.precision_source) == ("bf16", "SKILLMILL_PRECISION=bfloat16")
    monkeypatch.setenv("SKILLMILL_PRECISION", "fp8")
    with pytest.raises(UnknownPrecisionError, match="unknown precision 'fp8'.*float32, bf16"):
        tiny_skill("bert", device="cpu")
    with pytest.raises(UnknownPrecisionError, match="unknown precision 'int3'"):
        tiny_skill("bert", device="cpu", precision="int3")


# -- the shared proving core ------------------------------------------------------------------
class _Fake:
    device = "cpu"

    def __init__(self, outputs):
        self.outputs = outputs

    def run(self, batch):
        return self.outputs(batch)


def _bert():
    skill = tiny_skill("bert", device="cpu")
    return skill, dict(skill.example_inputs())


def test_run_proven_prepares_once_per_signature_and_keeps_both_verdicts():
    skill, inputs = _bert()
    calls = []

    def prepare(reference):
        calls.append(1)
        return _Fake(lambda batch: parity.reference_outputs(skill, batch))

    for _ in range(2):
        outputs, _, proof = parity.run_proven(skill, "fake", "float32", inputs, prepare)
        assert proof.error == 0.0 and set(outputs) == set(parity.reference_outputs(skill, inputs))
    assert len(calls) == 1
    longer = dict(skill.example_inputs(seq_len=20))  # same names, dtypes, ranks: same signature
    parity.run_proven(skill, "fake", "float32", longer, prepare)
    assert len(calls) == 1

    def broken(reference):
        calls.append(1)
        raise RuntimeError("cannot")

    for _ in range(2):
        with pytest.raises(parity.EngineDeclined, match="broken: cannot run BertModel at float32: RuntimeError: cannot"):
            parity.run_proven(skill, "broken", "float32", inputs, broken)
    assert len(calls) == 2


def test_engines_tried_in_turn_on_one_batch_share_one_reference(monkeypatch):
    """A declined engine and the next one proving itself on the same tensors run PyTorch for
    the reference once; new tensors, or the same ones changed in place, get a new reference."""
    skill, inputs = _bert()
    calls = []
    real = parity.reference_outputs
    monkeypatch.setattr(parity, "reference_outputs", lambda *a: calls.append(1) or real(*a))

    def broken(reference):
        raise RuntimeError("cannot")

    with pytest.raises(parity.EngineDeclined):
        parity.run_proven(skill, "first", "float32", inputs, broken)
    parity.run_proven(skill, "second", "float32", inputs, lambda ref: _Fake(lambda b: real(skill, b)))
    assert len(calls) == 1
    inputs["attention_mask"][0, -1] = 0  # in place: the reference must be computed again
    parity.run_proven(skill, "third", "float32", inputs, lambda ref: _Fake(lambda b: real(skill, b)))
    assert len(calls) == 2


def test_a_dropped_or_reshaped_output_fails_the_proof():
    skill, inputs = _bert()

    def drop(batch):
        outputs = parity.reference_outputs(skill, batch)
        outputs.pop("pooler_output")
        return outputs

    with pytest.raises(parity.EngineDeclined, match="dropper gave no output 'pooler_output'"):
        parity.run_proven(skill, "dropper", "float32", inputs, lambda ref: _Fake(drop))

    def reshape(batch):
        return {k: v.reshape(-1) for k, v in parity.reference_outputs(skill, batch).items()}

    with pytest.raises(parity.EngineDeclined, match="output 'last_hidden_state' has shape"):
        parity.run_proven(skill, "reshaper", "float32", inputs, lambda ref: _Fake(reshape))


def test_bad_inputs_leave_no_verdict_behind():
    skill, inputs = _bert()
    bad = {**inputs, "input_ids": inputs["input_ids"] + 10**6}  # out of the vocabulary
    with pytest.raises(parity.EngineDeclined, match="not tried, PyTorch eager rejects these inputs"):
        parity.run_proven(skill, "fake", "float32", bad, lambda ref: _Fake(lambda b: ref))
    assert not skill.__dict__.get("_proven_engines")
    outputs, _, _ = parity.run_proven(skill, "fake", "float32", inputs,
                                      lambda ref: _Fake(lambda b: parity.reference_outputs(skill, b)))
    assert outputs


def test_engines_share_one_export_per_signature(monkeypatch):
    """The native executor and MAX/Mojo read the same IR: a second engine pays no torch.export."""
    from skillmill.ir.frontends import pytorch as frontend

    exports = []
    real = frontend.convert_from_pytorch
    monkeypatch.setattr(frontend, "convert_from_pytorch", lambda *a, **k: exports.append(1) or real(*a, **k))
    skill = tiny_skill("bert", device="cpu", native="all")
    inputs = dict(skill.example_inputs())
    assert skill.process(inputs).engine == "native"
    graph, _ = parity.ir_graph(skill, inputs)  # what the max and mojo runners call first
    assert graph.outputs and len(exports) == 1
    np.testing.assert_equal(len(skill._ir_graphs), 1)

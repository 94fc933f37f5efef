"""ONNX out and ONNX Runtime in: tiny models export with the skill's output names and dynamic
batch / sequence axes, ONNX Runtime matches PyTorch eager on several shapes, the onnxruntime
target runs when asked for (and only then), and bad paths and files fail with a clear message."""

import copy
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from skillmill import load_skill
from skillmill.engines import parity
from skillmill.engines.onnxruntime import export as onnx_export
from skillmill.engines.onnxruntime.export import OnnxExportError, export_onnx, validate
from skillmill.engines.onnxruntime.runner import run_onnxruntime
from skillmill.ir.numerics import relative_error
from skillmill.runtime.errors import BackendUnavailable
from skillmill.runtime.outputs import flatten_outputs
from skillmill.runtime.precision import PARITY_TOLERANCE

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TOLERANCE = PARITY_TOLERANCE["float32"]
assert TOLERANCE == 1e-4
SENTENCES = (
    ["A man is eating food.", "Two men pushed carts through the woods."],  # traced
    ["A man is riding a horse."],  # batch 1, shorter
    ["A girl.", "A man is eating a piece of bread.",
     "A quick brown fox jumps over the lazy dog and runs along the river bank."],  # padded, longer
)  # fmt: skip


def text_batches(skill) -> list[dict]:
    return [skill.prepare_inputs(texts) for texts in SENTENCES]


def image_batches(skill) -> list[dict]:
    rng = np.random.default_rng(0)
    return [skill.prepare_inputs([rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(n)])
            for n in (2, 1, 3)]  # fmt: skip


CASES = {"BertModel": text_batches, "ViTModel": image_batches}


@pytest.fixture(scope="module")
def skills():
    return {name: load_skill(name, model="tiny") for name in CASES}


def graph_dims(value_info) -> list:
    """An ONNX input's or output's dims: a symbol ("batch") where dynamic, else the size."""
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("class_name", list(CASES))
def test_tiny_model_exports_and_validates_on_several_shapes(class_name, skills, tmp_path):
    skill = skills[class_name]
    batches = CASES[class_name](skill)
    report = export_onnx(skill.model, batches[0], tmp_path / "model.onnx")
    assert report.path.is_file() and report.size_bytes == report.path.stat().st_size > 0
    assert not list(tmp_path.glob(".*partial")), "the temporary file was left behind"
    assert skill.model.training is False, "the export turned the skill's model to training mode"

    # The outputs are the skill's outputs, by name and in order; batch (and sequence) are dynamic.
    with torch.inference_mode():
        expected_names = list(flatten_outputs(skill.model(**batches[0])))
    assert report.output_names == expected_names == ["last_hidden_state", "pooler_output"]
    graph = onnx.load(str(report.path)).graph
    assert [o.name for o in graph.output] == expected_names
    dims = {v.name: graph_dims(v) for v in [*graph.input, *graph.output]}
    assert dims["pooler_output"] == ["batch", skill.model.config.hidden_size]
    if class_name == "BertModel":
        assert dims["input_ids"] == dims["attention_mask"] == ["batch", "sequence"]
        assert dims["last_hidden_state"] == ["batch", "sequence", skill.model.config.hidden_size]
    else:
        assert dims["pixel_values"] == ["batch", 3, 32, 32]
        assert (
            dims["last_hidden_state"][0] == "batch" and "sequence" not in dims["last_hidden_state"]
        )

    rows = validate(report.path, skill.model, batches)
    shapes = {r.shape for r in rows}
    assert len(shapes) == 3 and len(rows) == 3 * len(expected_names)
    first_dims = {tuple(next(iter(b.values())).shape[:2]) for b in batches}
    assert len({d[0] for d in first_dims}) == 3  # batch 2, 1, 3
    if class_name == "BertModel":
        assert len({d[1] for d in first_dims}) == 3  # three sequence lengths
    for row in rows:
        assert row.passed and 0.0 <= row.error <= TOLERANCE == row.tolerance, row


def test_validate_fails_when_onnx_runtime_and_pytorch_disagree(skills, tmp_path):
    skill = skills["BertModel"]
    batches = text_batches(skill)
    report = export_onnx(skill.model, batches[0], tmp_path / "bert.onnx")
    changed = copy.deepcopy(skill.model)
    with torch.no_grad():
        changed.pooler.dense.bias += 0.5  # the file keeps the old bias
    rows = validate(report.path, changed, batches[:2])
    by_output = {(r.shape, r.output): r for r in rows}
    assert len(by_output) == 4
    for (shape, output), row in by_output.items():
        if output == "pooler_output":
            assert not row.passed and row.error > 10 * TOLERANCE, row
        else:  # the encoder is untouched
            assert row.passed and row.error <= TOLERANCE, row


@pytest.mark.parametrize("class_name", list(CASES))
def test_device_onnxruntime_runs_and_proves_parity(class_name, tmp_path):
    skill = load_skill(class_name, model="tiny", device="onnxruntime")
    batches = CASES[class_name](skill)
    with torch.inference_mode():
        want = flatten_outputs(copy.deepcopy(skill.model)(**batches[0]))
    result = skill.process(batches[0])
    assert (result.backend, result.engine) == ("onnxruntime", "onnxruntime"), result.summary()
    assert result.device == "onnxruntime:CPUExecutionProvider"
    assert result.fallback_reason is None and result.skipped == {}
    assert result.precision == "float32"
    proof = result.parity
    assert proof is not None and (proof.engine, proof.precision) == ("onnxruntime", "float32")
    assert 0.0 <= proof.error <= proof.tolerance == TOLERANCE
    assert proof.worst_output in want
    for name, expected in want.items():
        assert relative_error(result.outputs[name].numpy(), expected.numpy()) <= TOLERANCE, name

    # Another batch size (and sequence length): the same export, no second verdict.
    again = skill.process(batches[2])
    assert again.engine == "onnxruntime" and again.fallback_reason is None
    assert again.outputs["last_hidden_state"].shape[0] == 3
    assert len(parity.verdicts(skill, "onnxruntime")) == 1


def test_device_auto_never_uses_onnxruntime(skills):
    skill = load_skill("BertModel", model="tiny")
    assert "onnxruntime" in skill.targets and skill.targets["onnxruntime"].status().available
    order = skill.preferred_order()
    assert order.index("cpu") < order.index("onnxruntime"), order  # cpu always runs first
    assert skill.get_default_device_with_mojo_max() != "onnxruntime"
    result = skill.process(SENTENCES[0])
    assert result.engine != "onnxruntime" and result.backend != "onnxruntime"
    assert "onnxruntime" not in result.skipped
    assert parity.verdicts(skill, "onnxruntime") == {}  # never even exported
    # Even reached (every target before it gone), the runner declines a skill that did not ask.
    with pytest.raises(
        BackendUnavailable, match=re.escape("used when asked for (device='onnxruntime')")
    ):
        run_onnxruntime(skill, skill.prepare_inputs(SENTENCES[0]))
    assert parity.verdicts(skill, "onnxruntime") == {}


def test_a_declined_onnxruntime_falls_back_with_its_reason():
    skill = load_skill("BertModel", model="tiny", device="onnxruntime", precision="bf16")
    result = skill.process(SENTENCES[1])
    assert result.backend == "cpu" and result.engine != "onnxruntime"
    assert "computes at float32 only; bf16 was asked" in result.skipped["onnxruntime"]
    assert "onnxruntime: unavailable" in result.fallback_reason


def test_a_missing_output_folder_is_a_clear_error(skills, tmp_path):
    skill = skills["BertModel"]
    target = tmp_path / "no-such-folder" / "bert.onnx"
    with pytest.raises(
        OnnxExportError, match=re.escape(f"the folder {target.parent} does not exist")
    ):
        export_onnx(skill.model, text_batches(skill)[0], target)
    assert not target.parent.exists()


@pytest.mark.parametrize("content", [b"this is not an ONNX model", "truncated"])
def test_a_corrupt_onnx_file_is_a_clear_error_naming_it(content, skills, tmp_path):
    skill = skills["BertModel"]
    batches = text_batches(skill)
    path = tmp_path / "broken.onnx"
    if content == "truncated":
        whole = export_onnx(skill.model, batches[0], tmp_path / "whole.onnx").path.read_bytes()
        content = whole[: len(whole) // 2]
    path.write_bytes(content)
    with pytest.raises(OnnxExportError) as caught:
        validate(path, skill.model, batches)
    message = str(caught.value)
    assert message.startswith(f"{path} is not an ONNX model ONNX Runtime")
    assert "export it again" in message and "INVALID_PROTOBUF" in message
    assert issubclass(OnnxExportError, ValueError)


def test_an_exporter_failure_names_the_op_and_keeps_stdout_clean(tmp_path, capfd):
    class Spectrum(torch.nn.Module):
        def forward(self, signal):
            return {"spectrum": torch.fft.rfft(signal).abs()}

    path = tmp_path / "spectrum.onnx"
    with pytest.raises(OnnxExportError) as caught:
        export_onnx(Spectrum(), {"signal": torch.randn(2, 8)}, path)
    message = str(caught.value)
    assert message.startswith("torch.onnx.export could not export Spectrum at opset 17: ")
    assert "aten::fft_rfft" in message and "\n" not in message
    assert not path.exists() and not list(tmp_path.iterdir())
    assert "Torch IR graph" not in capfd.readouterr().out  # the exporter's dump is not on stdout


def cli(*args):
    from skillmill.generator.cli import main

    return CliRunner().invoke(main, list(args))


def table_errors(output: str) -> dict[tuple[str, str], float]:
    """{(shape, output): error} from the validation table the CLI prints."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"^\s+(input_ids \d+x\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(yes|NO)", line)
        if match:
            found[match.group(1), match.group(2)] = float(match.group(3))
            assert float(match.group(4)) == TOLERANCE
    return found


def test_cli_exports_tiny_bert_and_validates(tmp_path):
    out = tmp_path / "bert.onnx"
    result = cli(
        "export", "--skill", "BertModel", "--model", "tiny", "--format", "onnx", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert out.is_file()
    onnx.checker.check_model(str(out))
    assert "outputs: last_hidden_state, pooler_output" in result.output
    errors = table_errors(result.output)
    assert len({shape for shape, _ in errors}) == 3 and len(errors) == 6, result.output
    assert all(0.0 <= e <= TOLERANCE for e in errors.values()), errors
    assert "validation passed: 6 of 6" in result.output


def test_cli_exits_1_when_validation_fails(tmp_path, monkeypatch):
    real = onnx_export.export_onnx

    def export_then_change_the_model(model, *args, **kwargs):
        report = real(model, *args, **kwargs)
        with torch.no_grad():
            model.pooler.dense.bias += 0.5  # PyTorch now differs from the file
        return report

    monkeypatch.setattr(onnx_export, "export_onnx", export_then_change_the_model)
    result = cli(
        "export", "--skill", "BertModel", "--model", "tiny", "--out", str(tmp_path / "b.onnx")
    )
    assert result.exit_code == 1, result.output
    errors = table_errors(result.output)
    assert errors and all(
        e > TOLERANCE for (_, name), e in errors.items() if name == "pooler_output"
    )
    assert "validation failed: 3 of 6 outputs beyond tolerance" in result.output


def test_cli_errors_are_one_clear_line(tmp_path):
    missing = tmp_path / "absent" / "bert.onnx"
    result = cli("export", "--skill", "BertModel", "--model", "tiny", "--out", str(missing))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        f"Error: cannot write {missing}: the folder {missing.parent} does not exist"
        in result.output
    )
    result = cli(
        "export", "--skill", "BertModle", "--model", "tiny", "--out", str(tmp_path / "b.onnx")
    )
    assert result.exit_code == 1 and "is not a registered transformers model class" in result.output
    result = cli("export", "--skill", "BertModel", "--model", "tiny", "--format", "tflite",
                 "--out", str(tmp_path / "b.onnx"))  # fmt: skip
    assert result.exit_code == 2 and "'tflite' is not 'onnx'" in result.output

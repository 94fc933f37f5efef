"""The task sweep (measure/sweeps/tasks.py): a pair or two per task, as CI runs it, and the
comparison it rests on, which must notice every kind of difference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skillmill.measure.sweeps import tasks

# One pair per task, each through its class's tiny model and processors built for it.
CI_PAIRS = [
    "BertForSequenceClassification/text-classification",
    "DistilBertForSequenceClassification/zero-shot-classification",
    "RobertaForTokenClassification/token-classification",
    "BertForMaskedLM/fill-mask",
    "BertModel/feature-extraction",
    "ViTForImageClassification/image-classification",
    "DetrForObjectDetection/object-detection",
    "SegformerForSemanticSegmentation/image-segmentation",
    "ASTForAudioClassification/audio-classification",
    "Wav2Vec2ForCTC/automatic-speech-recognition",
    "CLIPModel/zero-shot-image-classification",
    "LlamaForCausalLM/text-generation",
    "BertForQuestionAnswering/question-answering",  # no pipeline: the sweep's own reference
]


@pytest.mark.parametrize("pair", CI_PAIRS)
def test_the_skill_answers_as_the_pipeline_does(pair):
    row = tasks.check_pair(pair)
    assert row["status"] == "pass", row
    assert row["engines"] == "cpu/torch"


@pytest.mark.parametrize("pair", ["RobertaForTokenClassification/token-classification",
                                  "GPT2LMHeadModel/text-generation"])  # fmt: skip
def test_on_the_native_engine_too(pair):
    row = tasks.check_pair(pair, engine="native")
    assert row == {**row, "status": "pass", "engines": "cpu/native"}


@pytest.mark.parametrize("pair", ["WhisperForConditionalGeneration/automatic-speech-recognition",
                                  "LlavaForConditionalGeneration/image-text-to-text"])  # fmt: skip
def test_a_pipeline_that_calls_generate_counts_as_refused_against_the_floor(pair):
    row = tasks.check_pair(pair)
    assert row["status"] == "refused" and "model.generate()" in row["reason"]
    assert row["status"] not in tasks.OUTSIDE_THE_FLOOR


def test_every_registered_pair_is_listed_once():
    pairs = tasks.task_pairs()
    assert len(pairs) == len(set(pairs)) > 1000
    assert set(CI_PAIRS) <= set(pairs)
    # aliases: a segmentation head serves image-segmentation, a sequence classifier zero-shot
    assert "SegformerForSemanticSegmentation/image-segmentation" in pairs
    assert "BertForSequenceClassification/zero-shot-classification" in pairs
    # question answering has no pipeline in transformers 5; skills serve it, compared with a reference
    assert "RobertaForQuestionAnswering/question-answering" in pairs


WANT = [{"label": "positive", "score": 0.75, "box": {"xmin": 1}, "mask": np.ones((2, 2))}]


@pytest.mark.parametrize("change, where", [
    (lambda o: o[0].update(label="negative"), "output[0].label"),
    (lambda o: o[0].update(score=0.75 * (1 + 3e-4)), "output[0].score"),
    (lambda o: o[0].update(box={"xmin": 2}), "output[0].box.xmin"),
    (lambda o: o[0].update(mask=np.ones((2, 3))), "output[0].mask: shape"),
    (lambda o: o[0].pop("score"), "output[0]: keys"),
    (lambda o: o.append({}), "output: list of 2"),
    (lambda o: o[0].update(score=np.float32(0.75).item() + 0j), "output[0].score"),
])  # fmt: skip
def test_first_difference_names_every_kind_of_difference(change, where):
    got = [{k: (v.copy() if isinstance(v, (dict, np.ndarray)) else v) for k, v in WANT[0].items()}]
    assert tasks.first_difference(got, WANT) is None
    change(got)
    found = tasks.first_difference(got, WANT)
    assert found is not None and found.startswith(where), found


def test_first_difference_accepts_scores_within_the_tolerance_and_tensors():
    assert tasks.first_difference([{"score": 0.5 * (1 + 5e-5)}], [{"score": 0.5}]) is None
    assert tasks.first_difference(torch.ones(3), torch.ones(3) + 1e-7) is None
    assert "max |difference|" in tasks.first_difference(torch.ones(3), torch.ones(3) * 1.01)
    nan = float("nan")  # a random tiny model's degenerate score: equal only where both are NaN
    assert tasks.first_difference([{"score": nan}], [{"score": nan}]) is None
    assert tasks.first_difference([{"score": 0.5}], [{"score": nan}]) is not None
    assert "NaN at other positions" in tasks.first_difference(torch.tensor([nan, 1.0]), torch.tensor([1.0, nan]))


def test_the_report_counts_only_pairs_the_pipeline_runs_toward_the_floor(tmp_path):
    rows = {"A/text-classification": {"status": "pass"}, "B/text-classification": {"status": "mismatch", "reason": "x"},
            "C/fill-mask": {"status": "pipeline_failed", "reason": "y"}, "D/fill-mask": {"status": "pass"}}  # fmt: skip
    path = tasks.write_report(rows, tmp_path / "tasks.yaml")
    doc = tasks.load_report(path)
    assert (doc["pairs"], doc["pipeline_runs"], doc["passed"], doc["share"]) == (4, 3, 2, round(2 / 3, 4))
    every = tasks.with_unmeasured(rows, [*rows, "E/fill-mask"])
    assert every["E/fill-mask"]["status"] == tasks.NOT_MEASURED
    assert tasks.summary(every)["pipeline_runs"] == 3 and tasks.summary(every)["not_measured"] == 1
    assert doc["by_task"] == {"fill-mask": {"pipeline_failed": 1, "pass": 1},
                              "text-classification": {"pass": 1, "mismatch": 1}}  # fmt: skip
    assert doc["pairs_checked"]["C/fill-mask"]["reason"] == "y"

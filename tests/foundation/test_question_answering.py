"""Extractive question answering (transformers 5 removed its pipeline): answers in the 4.x format,
checked against a span decoder written here from the definition, over every window of a long
context, on logits computed by calling the transformers model directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skillmill import load_skill
from skillmill.runtime.errors import SkillInputError

CONTEXT = ("Marie Curie won two Nobel prizes, one in physics and one in chemistry. "
           "She was born in Warsaw in 1867 and worked in Paris for most of her life. ") * 5  # fmt: skip
QUESTION = "Where was Marie Curie born?"


@pytest.fixture(scope="module")
def skill():
    return load_skill("BertForQuestionAnswering", model="tiny", device="cpu", native=False)


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def reference_answers(skill, question, context, max_seq_len, doc_stride, max_answer_len):
    """Every window's best span by brute force over (start, end) pairs, from the model itself."""
    tokenizer = skill.tokenizer
    enc = tokenizer(question, context, truncation="only_second", max_length=max_seq_len, stride=doc_stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True)  # fmt: skip
    answers = []
    for w in range(len(enc["input_ids"])):
        feed = {k: torch.tensor([enc[k][w]]) for k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            out = skill.model(**feed)
        ctx = [i for i, s in enumerate(enc.sequence_ids(w)) if s == 1]
        keep = set(ctx) | {0}
        start = _softmax(np.array([v if i in keep else -1e4 for i, v in enumerate(out.start_logits[0].tolist())]))
        end = _softmax(np.array([v if i in keep else -1e4 for i, v in enumerate(out.end_logits[0].tolist())]))
        best = max(((start[s] * end[e], s, e) for s in ctx for e in ctx if s <= e < s + max_answer_len))
        score, s, e = best
        words = enc.word_ids(w)
        begin = enc.word_to_chars(w, words[s], sequence_index=1).start
        finish = enc.word_to_chars(w, words[e], sequence_index=1).end
        answers.append((float(score), begin, finish))
    return answers


def test_the_best_span_of_every_window_equals_a_brute_force_decoder(skill):
    want = reference_answers(skill, QUESTION, CONTEXT, max_seq_len=48, doc_stride=16, max_answer_len=6)
    assert len(want) >= 4  # the long context really was split
    got = skill({"question": QUESTION, "context": CONTEXT}, task="question-answering",
                max_seq_len=48, doc_stride=16, max_answer_len=6, top_k=len(want) * 6)  # fmt: skip
    for score, begin, finish in want:  # each window's best span is among the answers, same score
        # (overlapping windows can offer the same span, each with its own score, as 4.x did)
        same = [a["score"] for a in got if (a["start"], a["end"]) == (begin, finish)]
        assert any(abs(s - score) <= 1e-4 * score for s in same), (begin, finish, score, same)
    top = max(want)
    assert got[0]["score"] == pytest.approx(top[0], rel=1e-4) and (got[0]["start"], got[0]["end"]) == top[1:]
    for answer in got:  # character offsets into the context, in the 4.x format
        assert list(answer) == ["score", "start", "end", "answer"]
        assert CONTEXT[answer["start"]:answer["end"]] == answer["answer"]
        assert len(answer["answer"].split()) <= 6
    assert [a["score"] for a in got] == sorted((a["score"] for a in got), reverse=True)


def test_one_question_gives_one_answer_and_a_batch_runs_as_one(skill):
    ran = skill.run_task([{"question": QUESTION, "context": "She was born in Warsaw."},
                          {"question": "Who won?", "context": "Marie Curie won two Nobel prizes."}])  # fmt: skip
    assert ran.task == "question-answering"  # the class's main task
    assert len(ran.output) == 2 and all(isinstance(a, dict) for a in ran.output)
    assert len(ran.results) == 1 and ran.results[0].outputs["start_logits"].shape[0] == 2
    single = skill(question="Who won?", context="Marie Curie won two Nobel prizes.")
    assert single == ran.output[1]


def test_no_answer_is_offered_when_asked_with_the_null_score(skill):
    got = skill({"question": "Where?", "context": "In Warsaw."}, handle_impossible_answer=True, top_k=5)
    empty = [a for a in got if a["answer"] == ""]
    assert len(empty) == 1 and empty[0]["start"] == empty[0]["end"] == 0
    enc = skill.tokenizer("Where?", "In Warsaw.", return_tensors="pt")
    with torch.no_grad():
        out = skill.model(**enc)
    keep = np.array([s == 1 or i == 0 for i, s in enumerate(enc.sequence_ids(0))])
    start = _softmax(np.where(keep, out.start_logits[0].numpy(), -1e4))
    end = _softmax(np.where(keep, out.end_logits[0].numpy(), -1e4))
    assert empty[0]["score"] == pytest.approx(float(start[0] * end[0]), rel=1e-4)


def test_the_native_engine_gives_the_same_answer():
    native = load_skill("BertForQuestionAnswering", model="tiny", device="cpu")
    eager = load_skill("BertForQuestionAnswering", model="tiny", device="cpu", native=False)
    ran = native.run_task({"question": QUESTION, "context": CONTEXT}, max_seq_len=64, top_k=3)
    assert ran.engines == ["cpu/native"]
    want = eager({"question": QUESTION, "context": CONTEXT}, max_seq_len=64, top_k=3)
    assert [(a["start"], a["end"]) for a in ran.output] == [(a["start"], a["end"]) for a in want]
    np.testing.assert_allclose([a["score"] for a in ran.output], [a["score"] for a in want], rtol=1e-4)


@pytest.mark.parametrize("inputs, options, message", [
    ({"question": QUESTION}, {}, "needs a non-empty context"),
    ({"question": " ", "context": CONTEXT}, {}, "needs a non-empty question"),
    ("just text", {}, "takes {'question'"),
    ({"question": QUESTION, "context": CONTEXT}, {"max_answer_length": 3}, "does not take max_answer_length"),
    ({"question": QUESTION, "context": CONTEXT}, {"top_k": 0}, "top_k and max_answer_len must be at least 1"),
])  # fmt: skip
def test_bad_questions_get_a_clear_error(skill, inputs, options, message):
    with pytest.raises(SkillInputError, match=message.replace("{", "\\{")):
        skill(inputs, task="question-answering", **options)

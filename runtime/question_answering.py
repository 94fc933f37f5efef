"""Extractive question answering, which transformers 5 no longer has a pipeline for
(``transformers.pipelines.REMOVED_TASKS``) while its model classes (BertForQuestionAnswering, ...)
remain.  Answers have the format the transformers 4.x pipeline gave: ``{"score", "start", "end",
"answer"}`` with character offsets into the context, a list of them for ``top_k > 1``.

A context longer than ``max_seq_len`` is split into windows that overlap by ``doc_stride`` tokens,
all windows of all questions run as one batch through ``skill.process`` (the skill's fastest
proved engine), and the best spans of every window compete.  A span's score is
``p_start(s) * p_end(e)``, each a softmax over the window's context tokens; spans end at or after
they start and hold at most ``max_answer_len`` tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import SkillInputError

MASKED = -10000.0  # what a logit outside the context becomes before the softmax, as in 4.x


def _questions(inputs: Any, options: dict[str, Any]) -> list[tuple[str, str]]:
    question, context = options.pop("question", None), options.pop("context", None)
    if inputs is None and question is not None:
        inputs = {"question": question, "context": context}
    items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    pairs = []
    for item in items:
        if not isinstance(item, Mapping):
            raise SkillInputError("question-answering takes {'question': ..., 'context': ...} "
                                  f"(or a list of them), not {type(item).__name__}")  # fmt: skip
        missing = [k for k in ("question", "context") if not isinstance(item.get(k), str) or not item[k].strip()]
        if missing:
            raise SkillInputError(f"question-answering needs a non-empty {' and '.join(missing)}")
        pairs.append((item["question"], item["context"]))
    return pairs


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def best_spans(start: np.ndarray, end: np.ndarray, top_k: int, max_answer_len: int,
               allowed: np.ndarray) -> list[tuple[int, int, float]]:  # fmt: skip
    """The ``top_k`` best (start, end, score) with start <= end < start + max_answer_len, then
    those whose both ends are ``allowed`` (as 4.x's ``decode_spans``: the filter follows the cut,
    so fewer than ``top_k`` may come back)."""
    scores = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)
    flat = scores.ravel()
    order = np.argsort(-flat, kind="stable")[:top_k]
    spans = [(int(i // scores.shape[1]), int(i % scores.shape[1]), float(flat[i])) for i in order]
    return [(s, e, score) for s, e, score in spans if allowed[s] and allowed[e]]


def answer(skill: Any, inputs: Any = None, top_k: int = 1, doc_stride: int = 128, max_answer_len: int = 15,
           max_seq_len: int = 384, max_question_len: int = 64, handle_impossible_answer: bool = False,
           align_to_words: bool = True, **options: Any) -> tuple[Any, list]:  # fmt: skip
    """(the answers, the SkillResult of the batch).  ``max_question_len`` is accepted for 4.x
    compatibility; as there, a fast tokenizer truncates only the context."""
    pairs = _questions(inputs, options)
    if options:
        raise SkillInputError(f"question-answering does not take {', '.join(sorted(options))}")
    if top_k < 1 or max_answer_len < 1 or doc_stride < 0:
        raise SkillInputError("top_k and max_answer_len must be at least 1, doc_stride at least 0")
    tokenizer = skill.processor("tokenizer").value
    question_first = tokenizer.padding_side == "right"
    limit = min(max_seq_len, tokenizer.model_max_length, skill.max_positions() or max_seq_len)
    questions, contexts = [q.lstrip() for q, _ in pairs], [c for _, c in pairs]
    encoded = tokenizer(
        questions if question_first else contexts, contexts if question_first else questions,
        truncation="only_second" if question_first else "only_first", max_length=limit,
        stride=min(doc_stride, limit // 2), return_overflowing_tokens=True, return_offsets_mapping=True,
        padding=True, return_tensors="pt",
    )  # fmt: skip
    owner = encoded.pop("overflow_to_sample_mapping").tolist()
    offsets = encoded.pop("offset_mapping").tolist()
    result = skill.process({k: v for k, v in encoded.items() if k in skill.input_names})
    starts = result.outputs["start_logits"].float().numpy()
    ends = result.outputs["end_logits"].float().numpy()
    context_index = 1 if question_first else 0
    ids = encoded["input_ids"].tolist()
    mask = encoded["attention_mask"].numpy().astype(bool)
    found: list[list[dict[str, Any]]] = [[] for _ in pairs]
    null_score = [1e6 for _ in pairs]
    for window, sample in enumerate(owner):
        # Candidates: the window's context tokens, and its [CLS] (4.x's p_mask), never padding.
        allowed = np.array([s == context_index for s in encoded.sequence_ids(window)]) & mask[window]
        allowed |= np.array([t == tokenizer.cls_token_id for t in ids[window]]) & mask[window]
        start = _softmax(np.where(allowed, starts[window], MASKED))
        end = _softmax(np.where(allowed, ends[window], MASKED))
        if handle_impossible_answer:
            null_score[sample] = min(null_score[sample], float(start[0] * end[0]))
        start[0] = end[0] = 0.0  # the first token ([CLS]) answers "no answer", never a span
        context, word_ids = contexts[sample], encoded.word_ids(window)
        for s, e, score in best_spans(start, end, top_k, max_answer_len, allowed):
            if align_to_words and word_ids[s] is not None and word_ids[e] is not None:
                begin = encoded.word_to_chars(window, word_ids[s], sequence_index=context_index).start
                finish = encoded.word_to_chars(window, word_ids[e], sequence_index=context_index).end
            else:
                begin, finish = offsets[window][s][0], offsets[window][e][1]
            found[sample].append({"score": score, "start": begin, "end": finish, "answer": context[begin:finish]})
    answers = []
    for sample, candidates in enumerate(found):
        if handle_impossible_answer:
            candidates.append({"score": null_score[sample], "start": 0, "end": 0, "answer": ""})
        ranked = sorted(candidates, key=lambda c: c["score"], reverse=True)[:top_k]
        answers.append(ranked[0] if len(ranked) == 1 else ranked)
    return (answers[0] if len(answers) == 1 else answers), [result]

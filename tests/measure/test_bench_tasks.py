"""The task-layer benchmark's inputs and report (the timed run is `generate-skills bench tasks`)."""

from __future__ import annotations

from skillmill.measure.bench import tasks


def test_the_texts_are_exactly_the_benchmark_shape():
    from transformers import AutoTokenizer

    from skillmill.measure.bench.models import minilm_folder

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    texts = tasks._texts(tokenizer)
    assert len(texts) == tasks.BATCH and len(set(texts)) == tasks.BATCH
    shape = tokenizer(texts, padding=True, truncation=True, max_length=tasks.SEQ, return_tensors="pt")["input_ids"].shape
    assert tuple(shape) == (tasks.BATCH, tasks.SEQ)


def test_the_report_shows_each_row_and_each_failure():
    machine = {"cpu": "X", "cores": 2, "simd": ["avx2"], "isa": "avx2", "threads": 2,
               "peak": {"per_core_gflops": 100.0, "peak_gflops": 200.0}}
    row = {"task": "text-classification", "engines": ["cpu/native"], "forward_ms": 10.0, "task_ms": 11.0,
           "forward_in_task_ms": 10.0, "tokenize_ms": 0.5, "layer_share": 0.1, "layer_share_without_tokenizing": 0.05}
    text = tasks.format_report({"machine": machine, "engine": "native", "repeats": 5, "floor": tasks.FLOOR,
                                "rows": [row, {"task": "question-answering", "error": "boom"}]})
    assert "| text-classification | cpu/native | 10.0 | 11.0 | 10.0 | 0.5 | 10.0% | 5.0% |" in text
    assert "| question-answering | failed: boom |" in text and "machine: X" in text

"""The serving pieces on their own: sampling, stop handling, byte decoding, batching, metrics."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from skillmill.runtime.inputs import ByteTokenizer
from skillmill.serving.batching import DynamicBatcher
from skillmill.runtime.generation.loop import Row, _settled_length, left_pad
from skillmill.serving.metrics import Metrics
from skillmill.runtime.generation.sampling import SamplingParams, apply_penalties, choose_token, make_generator
from skillmill.runtime.generation.textcodec import TextCodec


@pytest.fixture
def codec():
    return TextCodec(ByteTokenizer(1024), eos_token_id=1023)


def test_byte_codec_round_trips_text_and_shows_non_byte_ids(codec):
    text = "héllo, wörld ✓"
    assert codec.decode(codec.encode(text)) == text
    assert codec.decode([codec.encode("a")[0], 700, 0]) == "a<|700|>"  # 0 is padding: no text


def test_greedy_and_top_p_sampling():
    logits = torch.tensor([0.0, 5.0, 1.0, 4.9])
    greedy = SamplingParams(max_tokens=1, temperature=0.0)
    assert choose_token(logits, greedy, make_generator(0), []) == 1
    narrow = SamplingParams(max_tokens=1, temperature=1.0, top_p=0.01)  # nucleus of one token
    assert {choose_token(logits, narrow, make_generator(s), []) for s in range(20)} == {1}
    wide = SamplingParams(max_tokens=1, temperature=1.0, top_p=1.0)
    picks = {choose_token(logits, wide, make_generator(s), []) for s in range(200)}
    assert {1, 3} <= picks
    seeded = [choose_token(logits, wide, make_generator(42), []) for _ in range(5)]
    assert len(set(seeded)) == 1


def test_penalties_follow_openai_definition():
    params = SamplingParams(max_tokens=1, presence_penalty=0.5, frequency_penalty=0.25)
    out = apply_penalties(torch.zeros(4), [2, 2, 3], params)
    assert out.tolist() == [0.0, 0.0, -(2 * 0.25 + 0.5), -(0.25 + 0.5)]


def test_settled_text_holds_back_partial_stops_and_characters():
    assert _settled_length("hello wor", ("world",)) == len("hello ")
    assert _settled_length("abc\ufffd", ()) == 3
    assert _settled_length("abc", ("xyz",)) == 3


def test_row_stops_on_stop_string_eos_and_budget(codec):
    emitted = []
    row = Row.make([5], SamplingParams(max_tokens=50, stop=("lo",)), codec, on_text=emitted.append)
    for ch in "hello":
        row.accept(codec.encode(ch)[0])
        if row.done:
            break
    assert (row.text, row.finish_reason, "".join(emitted)) == ("hel", "stop", "hel")
    row = Row.make([5], SamplingParams(max_tokens=50), codec)
    row.accept(codec.encode("a")[0])
    row.accept(1023)
    assert (row.text, row.finish_reason, len(row.tokens)) == ("a", "stop", 2)
    row = Row.make([5], SamplingParams(max_tokens=2), codec)
    row.accept(codec.encode("a")[0])
    row.accept(codec.encode("b")[0])
    assert (row.text, row.finish_reason) == ("ab", "length")


def test_left_pad():
    ids, mask = left_pad([[7, 8, 9], [5]], pad_id=0)
    assert ids.tolist() == [[7, 8, 9], [0, 0, 5]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_batcher_gathers_concurrent_requests_and_respects_the_cap():
    calls = []

    def run(items):
        calls.append(list(items))
        time.sleep(0.02)
        return [item * 10 for item in items]

    async def main():
        batcher = DynamicBatcher(
            run, executor=ThreadPoolExecutor(1), max_batch_size=4, max_wait_s=0.05
        )
        results = await asyncio.gather(
            *(batcher.submit(i) for i in range(10)), return_exceptions=True
        )
        alone = await batcher.submit(99, size=7)  # bigger than the cap: runs by itself
        await batcher.stop()
        return results, alone

    results, alone = asyncio.run(main())
    assert results == [i * 10 for i in range(10)]
    assert alone == 990
    assert all(len(c) <= 4 for c in calls[:-1]) and max(len(c) for c in calls) > 1
    assert sum(len(c) for c in calls) == 11


def test_batcher_sends_exceptions_to_their_own_caller_only():
    def run(items):
        return [ValueError("bad") if item == 1 else item for item in items]

    async def main():
        batcher = DynamicBatcher(
            run, executor=ThreadPoolExecutor(1), max_batch_size=8, max_wait_s=0.02
        )
        out = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
        await batcher.stop()
        return out

    out = asyncio.run(main())
    assert out[0] == 0 and isinstance(out[1], ValueError) and out[2] == 2


def test_batch_off_means_one_row_per_call():
    sizes = []

    async def main():
        batcher = DynamicBatcher(
            lambda items: items,
            executor=ThreadPoolExecutor(1),
            max_batch_size=1,
            max_wait_s=0.0,
            on_batch=lambda rows, tokens: sizes.append(rows),
        )
        await asyncio.gather(*(batcher.submit(i) for i in range(6)))
        await batcher.stop()

    asyncio.run(main())
    assert sizes == [1] * 6


def test_metrics_text_is_prometheus_shaped():
    metrics = Metrics()
    metrics.started()
    metrics.finished("POST", "/v1/embeddings", 200, 0.03)
    metrics.batch("embedding", 3)
    metrics.count_tokens("prompt", 12)
    text = metrics.render({"model": 'a"b', "backend": "cpu"})
    assert 'skillmill_request_latency_seconds_bucket{route="/v1/embeddings",le="0.05"} 1' in text
    assert 'skillmill_request_latency_seconds_bucket{route="/v1/embeddings",le="0.025"} 0' in text
    assert 'skillmill_batch_size_bucket{kind="embedding",le="4"} 1' in text
    assert 'skillmill_backend_info{model="a\\"b",backend="cpu"} 1' in text
    assert text.endswith("\n")
    threads = [threading.Thread(target=metrics.batch, args=("embedding", 1)) for _ in range(50)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert 'skillmill_batch_size_count{kind="embedding"} 51' in metrics.render({})

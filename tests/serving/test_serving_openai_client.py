"""The official OpenAI client against the server on localhost: real MiniLM embeddings equal to
the skill's own output, greedy chat equal to transformers' generate, streaming equal to the
non-streamed answer, seeded sampling reproducible, stop strings, n, and concurrent batching."""

import asyncio

import numpy as np
import pytest
import torch

SENTENCES = [
    "A man is eating food.",
    "A man is riding a horse.",
    "The quick brown fox jumps over the lazy dog, twice, to be sure the padding differs.",
]


def test_models_lists_the_served_model(gpt2_client, gpt2_server):
    models = gpt2_client.models.list().data
    assert [m.id for m in models] == [gpt2_server.served.id]
    assert gpt2_client.models.retrieve(gpt2_server.served.id).id == gpt2_server.served.id


def test_embeddings_equal_the_skills_own_output(minilm_client, minilm_server, minilm_dir):
    from skillmill import load_skill

    response = minilm_client.embeddings.create(model="all-MiniLM-L6-v2", input=SENTENCES)
    served = np.array([d.embedding for d in response.data], dtype=np.float32)
    skill = load_skill("BertModel", model=minilm_dir, device="cpu")
    own = skill.process(SENTENCES).embeddings
    assert served.shape == own.shape == (3, 384)
    np.testing.assert_allclose(served, own, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    expected_tokens = sum(len(skill.tokenizer(s)["input_ids"]) for s in SENTENCES)
    assert response.usage.prompt_tokens == expected_tokens


def test_embeddings_match_sentence_transformers(minilm_client, minilm_dir):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    model = sentence_transformers.SentenceTransformer(minilm_dir, device="cpu")
    reference = model.encode(SENTENCES, normalize_embeddings=True)
    response = minilm_client.embeddings.create(
        model="all-MiniLM-L6-v2", input=SENTENCES, encoding_format="float"
    )
    served = np.array([d.embedding for d in response.data], dtype=np.float32)
    np.testing.assert_allclose(served, reference, atol=1e-4)


def _greedy_reference(served, prompt_ids, max_new):
    model = served.skill.model
    ids = torch.tensor([prompt_ids])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=None,
    )
    return out[0, len(prompt_ids) :].tolist()


def test_greedy_chat_equals_transformers_generate(gpt2_client, gpt2_served):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]
    response = gpt2_client.chat.completions.create(
        model=gpt2_served.id, messages=messages, max_tokens=12, temperature=0
    )
    prompt, _ = gpt2_served.codec.chat_prompt([(m["role"], m["content"]) for m in messages])
    tokens = _greedy_reference(gpt2_served, prompt, 12)
    eos = [i for i, t in enumerate(tokens) if t in gpt2_served.codec.eos_ids]
    tokens = tokens[: eos[0]] if eos else tokens
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == gpt2_served.codec.decode(tokens)
    assert response.usage.prompt_tokens == len(prompt)
    assert response.usage.completion_tokens == (len(tokens) + 1 if eos else 12)
    assert choice.finish_reason == ("stop" if eos else "length")


def test_streamed_chat_equals_the_non_streamed_answer(gpt2_client, gpt2_served):
    kwargs = dict(
        model=gpt2_served.id,
        messages=[{"role": "user", "content": "Tell me a story"}],
        max_tokens=16,
        temperature=0,
    )
    whole = gpt2_client.chat.completions.create(**kwargs)
    stream = gpt2_client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs
    )
    pieces, finish, usage, roles = [], None, None, []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            roles.append(choice.delta.role)
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == whole.choices[0].message.content
    assert roles[0] == "assistant"
    assert finish == whole.choices[0].finish_reason
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert len([p for p in pieces if p]) > 1  # really streamed, not one final chunk


def test_seeded_sampling_is_reproducible(gpt2_client, gpt2_served):
    def sample(seed):
        return (
            gpt2_client.completions.create(
                model=gpt2_served.id,
                prompt="Once upon",
                max_tokens=16,
                temperature=1.0,
                top_p=0.95,
                seed=seed,
            )
            .choices[0]
            .text
        )

    assert sample(7) == sample(7)
    assert len({sample(7), sample(8), sample(9)}) > 1


def test_stop_string_cuts_the_text_in_both_modes(gpt2_client, gpt2_served):
    kwargs = dict(model=gpt2_served.id, prompt="The answer is", max_tokens=12, temperature=0)
    full = gpt2_client.completions.create(**kwargs).choices[0].text
    assert len(full) >= 6
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    expected = full[: full.find(stop)]
    cut = gpt2_client.completions.create(stop=[stop], **kwargs).choices[0]
    assert (cut.text, cut.finish_reason) == (expected, "stop")
    streamed = "".join(
        c.choices[0].text
        for c in gpt2_client.completions.create(stop=stop, stream=True, **kwargs)
        if c.choices
    )
    assert streamed == expected


def _greedy_answer(served, prompt_ids, max_new):
    """(text, completion tokens, finish reason) that greedy decoding must give, from
    transformers' generate: the answer stops at the first end-of-sequence token (counted)."""
    tokens = _greedy_reference(served, prompt_ids, max_new)
    eos = [i for i, t in enumerate(tokens) if t in served.codec.eos_ids]
    if eos:
        return served.codec.decode(tokens[: eos[0]]), eos[0] + 1, "stop"
    return served.codec.decode(tokens), max_new, "length"


def test_n_and_several_prompts(gpt2_client, gpt2_served):
    response = gpt2_client.completions.create(
        model=gpt2_served.id, prompt=["abc", "xyz"], n=2, max_tokens=4, temperature=0
    )
    assert [c.index for c in response.choices] == [0, 1, 2, 3]
    expected = [_greedy_answer(gpt2_served, gpt2_served.codec.encode(p), 4) for p in ("abc", "xyz")]
    for i, choice in enumerate(response.choices):  # choice index = prompt * n + copy
        text, _, finish = expected[i // 2]
        assert (choice.text, choice.finish_reason) == (text, finish), i
    # each prompt counted once, in the tiny model's (trained) tokens
    assert response.usage.prompt_tokens == sum(len(gpt2_served.codec.encode(p)) for p in ("abc", "xyz"))
    assert response.usage.completion_tokens == 2 * sum(tokens for _, tokens, _ in expected)


def _generation_batches(server):
    """(model calls, calls that held one row) so far: the server is shared with other tests, so
    callers compare two readings."""
    import httpx

    counts = {}
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith('skillmill_batch_size_bucket{kind="generation",le="1"}'):
            counts["le1"] = float(line.split()[-1])
        if line.startswith('skillmill_batch_size_count{kind="generation"}'):
            counts["all"] = float(line.split()[-1])
    return counts.get("all", 0.0), counts.get("le1", 0.0)


def test_concurrent_requests_are_batched_and_answer_as_alone(gpt2_server, gpt2_served):
    from openai import AsyncOpenAI

    prompts = [f"prompt number {i} " * (i % 3 + 1) for i in range(8)]

    async def ask(client, prompt):
        response = await client.completions.create(
            model=gpt2_served.id, prompt=prompt, max_tokens=8, temperature=0
        )
        return response.choices[0].text

    async def concurrently():
        async with AsyncOpenAI(
            base_url=gpt2_server.url + "/v1", api_key="unused", max_retries=0
        ) as client:
            return await asyncio.gather(*(ask(client, p) for p in prompts))

    async def one_by_one():
        async with AsyncOpenAI(
            base_url=gpt2_server.url + "/v1", api_key="unused", max_retries=0
        ) as client:
            return [await ask(client, p) for p in prompts]

    calls_before, single_before = _generation_batches(gpt2_server)
    batched = asyncio.run(concurrently())
    calls_after, single_after = _generation_batches(gpt2_server)
    alone = asyncio.run(one_by_one())
    assert batched == alone
    calls, multi_row = calls_after - calls_before, (calls_after - single_after) - (
        calls_before - single_before
    )
    assert calls < len(prompts), f"8 concurrent requests took {calls:.0f} model calls"
    assert multi_row >= 1, "no model call during the concurrent requests held more than one row"

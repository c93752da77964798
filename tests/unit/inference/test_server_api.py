"""The API through the official `openai` client against a real uvicorn server: replies, streaming, n, stop, seed,
usage, and prompts built by the training template (QUALITY C17)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from lmforge.inference.engine import ChatEngine, GenerationOptions, load_engine
from lmforge.inference.server import create_app
from tests.fixtures.server import running_server

KEY = "test-key-3f9a"
MODEL = "tiny"
MESSAGES = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> ChatEngine:
    return load_engine(str(tiny_model_dir), dtype="float32")


@pytest.fixture(scope="module")
def served(engine: ChatEngine) -> Iterator[tuple[openai.OpenAI, Any]]:
    app = create_app(engine, api_key=KEY, model_name=MODEL, max_wait_ms=2)
    with running_server(app) as base_url:
        yield openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=60), app


@pytest.fixture()
def client(served: tuple[openai.OpenAI, Any]) -> openai.OpenAI:
    return served[0]


def _chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=kwargs.pop("messages", MESSAGES), **kwargs)


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")


def test_greedy_chat_reply_equals_engine_reply_with_usage(client: openai.OpenAI, engine: ChatEngine) -> None:
    reply = _chat(client, max_tokens=12, temperature=0)
    expected_ids = engine.generate_ids(
        [engine.prompt_ids(MESSAGES)], GenerationOptions(temperature=0, max_new_tokens=12)
    )[0]
    choice = reply.choices[0]
    assert choice.message.content == engine.tokenizer.decode(expected_ids, skip_special_tokens=True)
    assert choice.finish_reason == "length" and len(expected_ids) == 12
    assert reply.usage.prompt_tokens == len(engine.prompt_ids(MESSAGES))
    assert reply.usage.completion_tokens == 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12


def test_streamed_chat_equals_non_streamed(client: openai.OpenAI) -> None:
    whole = _chat(client, max_tokens=16, temperature=0).choices[0].message.content
    chunks = list(_chat(client, max_tokens=16, temperature=0, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == whole and finishes == ["length"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 16


def test_stop_string_cuts_the_reply_in_both_modes(client: openai.OpenAI) -> None:
    whole = _chat(client, max_tokens=24, temperature=0).choices[0].message.content
    stop = whole[len(whole) // 2 : len(whole) // 2 + 2]
    assert stop.strip(), f"pick another cut of {whole!r}"
    cut = _chat(client, max_tokens=24, temperature=0, stop=[stop, "never-appears"]).choices[0]
    assert cut.message.content == whole[: whole.index(stop)] and cut.finish_reason == "stop"
    chunks = list(_chat(client, max_tokens=24, temperature=0, stop=stop, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == cut.message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


def test_n_choices_and_seed_reproducibility(client: openai.OpenAI) -> None:
    first = _chat(client, max_tokens=10, temperature=1.0, top_p=0.95, n=3, seed=7)
    again = _chat(client, max_tokens=10, temperature=1.0, top_p=0.95, n=3, seed=7)
    other = _chat(client, max_tokens=10, temperature=1.0, top_p=0.95, n=3, seed=8)
    texts = [c.message.content for c in first.choices]
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert texts == [c.message.content for c in again.choices]
    assert texts != [c.message.content for c in other.choices]
    assert len(set(texts)) > 1  # each choice samples with its own seed
    full = sum(10 for c in first.choices if c.finish_reason == "length")  # a sampled stop id ends a choice early
    assert full <= first.usage.completion_tokens <= 30 and first.usage.prompt_tokens == again.usage.prompt_tokens
    assert first.usage.completion_tokens == again.usage.completion_tokens


def test_tiny_temperature_is_greedy_and_extreme_seeds_work(client: openai.OpenAI) -> None:
    greedy = _chat(client, max_tokens=6, temperature=0).choices[0].message.content
    assert _chat(client, max_tokens=6, temperature=1e-38).choices[0].message.content == greedy
    for seed in (-(2**63), 2**63 - 1):  # choice 1 of the second one wraps past 2**63
        assert len(_chat(client, max_tokens=3, temperature=1.0, seed=seed, n=2).choices) == 2


def test_streamed_n_choices_each_finish(client: openai.OpenAI) -> None:
    chunks = list(_chat(client, max_tokens=6, temperature=0, n=2, stream=True))
    texts = ["", ""]
    for c in chunks:
        texts[c.choices[0].index] += c.choices[0].delta.content or ""
    assert sorted(c.choices[0].index for c in chunks if c.choices[0].finish_reason) == [0, 1]
    assert texts[0] == texts[1] == _chat(client, max_tokens=6, temperature=0).choices[0].message.content


def test_text_completion_uses_raw_prompt(client: openai.OpenAI, engine: ChatEngine) -> None:
    reply = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8, temperature=0)
    ids = engine.tokenizer.encode("Once upon a time")
    expected = engine.generate_ids([ids], GenerationOptions(temperature=0, max_new_tokens=8))[0]
    assert reply.choices[0].text == engine.tokenizer.decode(expected, skip_special_tokens=True)
    assert reply.usage.prompt_tokens == len(ids)
    streamed = client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text


def test_text_completion_prompt_list_with_n(client: openai.OpenAI, engine: ChatEngine) -> None:
    reply = client.completions.create(model=MODEL, prompt=["One", "Two three"], n=2, max_tokens=4, temperature=0)
    texts = [c.text for c in sorted(reply.choices, key=lambda c: c.index)]
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    assert texts[0] == texts[1] != texts[2] == texts[3]  # greedy: both choices of a prompt agree
    assert (
        texts[2]
        == client.completions.create(model=MODEL, prompt="Two three", max_tokens=4, temperature=0).choices[0].text
    )
    encode = engine.tokenizer.encode
    assert reply.usage.prompt_tokens == len(encode("One")) + len(encode("Two three"))


def test_api_prompt_ids_equal_training_prefix_ids(served: tuple[openai.OpenAI, Any], engine: ChatEngine) -> None:
    """C17: the ids the server queues for a conversation are the training prefix of its last assistant turn."""
    client, app = served
    conversation = [*MESSAGES, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"}]
    encoded = engine.template.encode(engine.tokenizer, [*conversation, {"role": "assistant", "content": "Red."}])
    prefix = encoded.input_ids[: encoded.replies[-1][0]]
    worker, seen = app.state.worker, []
    original = worker.submit
    worker.submit = lambda rows: (seen.extend(r.prompt_ids for r in rows), original(rows))[1]
    try:
        _chat(client, messages=conversation, max_tokens=2, temperature=0)
    finally:
        worker.submit = original
    assert seen == [prefix]


def test_unknown_model_is_404_with_served_name(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="serves 'tiny'"):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)

"""Scoring through the API, as benchmark clients use it: `/v1/completions` with `echo` + `logprobs` (+ `max_tokens` 0)
and chat `logprobs`, through the official `openai` client, checked against transformers' own log-softmax of the same
model and against `lmforge eval`'s scoring; a shifted-by-one alignment is the negative control."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import torch

from lmforge.evaluation.perplexity import row_losses
from lmforge.inference.engine import ChatEngine, GenerationOptions, load_engine
from lmforge.inference.server import create_app
from tests.fixtures.server import running_server

MODEL = "tiny"
TEXT = "The quick brown fox jumps over the lazy dog while the cat sleeps."
TOL = 1e-4


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> ChatEngine:
    return load_engine(str(tiny_model_dir), dtype="float32")


@pytest.fixture(scope="module")
def served(engine: ChatEngine) -> Iterator[tuple[openai.OpenAI, Any]]:
    app = create_app(engine, model_name=MODEL, max_wait_ms=2)
    with running_server(app) as base_url:
        yield openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=60), app


@pytest.fixture()
def client(served: tuple[openai.OpenAI, Any]) -> openai.OpenAI:
    return served[0]


def _log_softmax(engine: ChatEngine, ids: list[int]) -> torch.Tensor:
    """transformers' [len(ids), vocab] log-probabilities of one unpadded sequence."""
    with torch.no_grad():
        logits = engine.model(input_ids=torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits, dim=-1)


def _score(client: openai.OpenAI, prompt: Any, **kwargs: Any) -> Any:
    return client.completions.create(model=MODEL, prompt=prompt, echo=True, max_tokens=0, **kwargs)


def test_echo_logprobs_equal_transformers_log_softmax_and_shifted_alignment_does_not(
    client: openai.OpenAI, engine: ChatEngine
) -> None:
    ids = engine.tokenizer.encode(TEXT)
    reply = _score(client, TEXT, logprobs=3)
    choice = reply.choices[0]
    lp = choice.logprobs
    logp = _log_softmax(engine, ids)
    expected = logp[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]  # position t predicts token t + 1
    shifted = logp[1:].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]  # the off-by-one a server could make
    got = torch.tensor(lp.token_logprobs[1:])
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert len(lp.tokens) == len(ids) and choice.text == TEXT and choice.finish_reason == "length"
    assert torch.allclose(got, expected, atol=TOL, rtol=0)
    assert not torch.allclose(got, shifted, atol=TOL, rtol=0)
    assert lp.tokens == [engine.tokenizer.decode([i]) for i in ids]
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:k]) for k in range(len(ids))]
    for position, top in enumerate(lp.top_logprobs[1:]):  # the top 3 + the chosen token, keyed by token string
        best = logp[position].topk(3).values
        assert 1 <= len(top) <= 4 and max(top.values()) == pytest.approx(float(best[0]), abs=TOL)
        assert all(v >= float(best[-1]) - TOL or v == lp.token_logprobs[position + 1] for v in top.values())
    assert reply.usage.prompt_tokens == len(ids) and reply.usage.completion_tokens == 0


def test_scored_prompt_equals_lmforge_eval_scoring(client: openai.OpenAI, engine: ChatEngine) -> None:
    """Served and offline scoring give the same benchmark numbers: the NLL `lmforge eval` sums for the same ids."""
    ids = engine.tokenizer.encode(TEXT)
    served = -sum(_score(client, [ids], logprobs=0).choices[0].logprobs.token_logprobs[1:])
    (offline, count), *_ = row_losses(engine.model, [{"input_ids": ids, "labels": ids}], 1, engine.pad_id)
    assert count == len(ids) - 1 and served == pytest.approx(offline, abs=TOL * len(ids))


def test_token_id_prompts_equal_the_same_prompts_as_text(client: openai.OpenAI, engine: ChatEngine) -> None:
    texts = [TEXT, "Short one.", "A third prompt, of another length entirely."]
    ids = [engine.tokenizer.encode(t) for t in texts]
    as_text = _score(client, texts, logprobs=2)
    as_ids = _score(client, ids, logprobs=2)
    flat = _score(client, ids[1], logprobs=2)
    for a, b in zip(as_text.choices, as_ids.choices, strict=True):
        assert a.index == b.index and a.logprobs.tokens == b.logprobs.tokens
        assert a.logprobs.token_logprobs[1:] == pytest.approx(b.logprobs.token_logprobs[1:], abs=1e-6)
    assert flat.choices[0].logprobs.token_logprobs == as_ids.choices[1].logprobs.token_logprobs
    assert as_ids.choices[1].text == engine.tokenizer.decode(ids[1])
    assert as_ids.usage.prompt_tokens == sum(map(len, ids))


def test_scoring_requests_are_batched_and_equal_one_at_a_time(
    served: tuple[openai.OpenAI, Any], engine: ChatEngine
) -> None:
    client, app = served
    texts = [TEXT, "Short one.", "A third prompt, of another length entirely.", "Four."]
    alone = [_score(client, t, logprobs=1).choices[0].logprobs.token_logprobs for t in texts]
    before = app.state.worker.batches
    together = _score(client, texts, logprobs=1)
    assert app.state.worker.batches == before + 1  # one prefill scored all four prompts
    for single, choice in zip(alone, together.choices, strict=True):
        assert choice.logprobs.token_logprobs[1:] == pytest.approx(single[1:], abs=TOL)


def test_echo_with_generated_tokens_scores_both(client: openai.OpenAI, engine: ChatEngine) -> None:
    reply = client.completions.create(model=MODEL, prompt=TEXT, echo=True, logprobs=2, max_tokens=5, temperature=0)
    choice, prompt_ids = reply.choices[0], engine.tokenizer.encode(TEXT)
    generated = reply.usage.completion_tokens
    lp = choice.logprobs
    assert choice.text.startswith(TEXT) and len(lp.tokens) >= len(prompt_ids) + generated
    new_ids = engine.generate_ids([prompt_ids], GenerationOptions(temperature=0, max_new_tokens=5))[0]
    full = _log_softmax(engine, prompt_ids + new_ids)
    for k in range(len(prompt_ids), len(prompt_ids) + generated):  # greedy: each generated token is the argmax
        assert lp.token_logprobs[k] == pytest.approx(max(lp.top_logprobs[k].values()), abs=1e-6)
        assert lp.token_logprobs[k] == pytest.approx(float(full[k - 1].max()), abs=TOL)
    streamed = client.completions.create(
        model=MODEL, prompt=TEXT, echo=True, logprobs=2, max_tokens=5, temperature=0, stream=True
    )
    chunks = [c.choices[0] for c in streamed]
    assert "".join(c.text for c in chunks) == choice.text
    streamed_lp = [v for c in chunks if c.logprobs for v in c.logprobs.token_logprobs]
    assert streamed_lp == lp.token_logprobs
    assert [o for c in chunks if c.logprobs for o in c.logprobs.text_offset] == lp.text_offset


def test_chat_logprobs_are_probabilities_with_the_greedy_token_on_top(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Name a colour."}]
    kwargs = {"model": MODEL, "messages": messages, "max_tokens": 8, "temperature": 0, "logprobs": True}
    reply = client.chat.completions.create(**kwargs, top_logprobs=5)
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    for entry in content:
        assert len(entry.top_logprobs) == 5 and entry.top_logprobs[0].token == entry.token
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob, abs=1e-6)
        assert sum(math.exp(t.logprob) for t in entry.top_logprobs) <= 1 + 1e-6
        assert entry.bytes == list(entry.token.encode())
    assert "".join(e.token for e in content) == reply.choices[0].message.content
    streamed = [c for c in client.chat.completions.create(**kwargs, top_logprobs=5, stream=True) if c.choices]
    entries = [e for c in streamed if c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [(e.token, e.logprob) for e in entries] == [(e.token, e.logprob) for e in content]
    plain = client.chat.completions.create(**kwargs)  # logprobs without top_logprobs: no alternatives
    assert all(e.top_logprobs == [] for e in plain.choices[0].logprobs.content)

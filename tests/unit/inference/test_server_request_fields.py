"""Request fields common clients always send: empty prompts are refused by name (never zero tokens to the model),
harmless fields are accepted and honoured or ignored as docs/serving.md says, JSON modes are a clear 400."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lmforge.inference.engine import ChatEngine, load_engine
from lmforge.inference.server import create_app
from tests.fixtures.server import running_server

MODEL = "tiny"
USER = {"role": "user", "content": "Name a colour."}


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> ChatEngine:
    return load_engine(str(tiny_model_dir), dtype="float32")


@pytest.fixture(scope="module")
def served(engine: ChatEngine) -> Iterator[tuple[str, Any]]:
    app = create_app(engine, model_name=MODEL, max_wait_ms=2)
    with running_server(app) as base_url:
        yield base_url, app


@pytest.fixture()
def base_url(served: tuple[str, Any]) -> str:
    return served[0]


@pytest.fixture()
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=60)


def _post(base_url: str, route: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{base_url}/{route}", json={"model": MODEL, **body}, timeout=60)


@pytest.mark.parametrize(
    ("prompt", "says"),
    [
        ("", "must not be empty"),
        ([], "not empty"),
        (["fine", ""], "prompt[1] is empty"),
        ([[]], "prompt[0] is an empty token list"),
        ([[5, 6], []], "prompt[1] is an empty token list"),
        ([1, "a"], "not a mix"),
        ([-1, 2], "a list of token ids"),
        ({"text": "x"}, "must be a string"),
    ],
)
def test_empty_or_malformed_prompts_are_400_naming_the_field(served: tuple[str, Any], prompt: Any, says: str) -> None:
    base_url, app = served
    batches = app.state.worker.batches
    response = _post(base_url, "completions", {"prompt": prompt, "max_tokens": 2})
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == "prompt" and says in error["message"], error
    assert app.state.worker.batches == batches  # nothing reached the model


def test_token_ids_outside_the_vocabulary_are_400(base_url: str, engine: ChatEngine) -> None:
    vocab = engine.model.config.vocab_size
    response = _post(base_url, "completions", {"prompt": [[1, 2], [3, vocab]], "max_tokens": 1})
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == "prompt"
    assert f"prompt[1]: token id {vocab} is outside the vocabulary" in error["message"]


def test_max_tokens_zero_needs_echo(base_url: str) -> None:
    response = _post(base_url, "completions", {"prompt": "x", "max_tokens": 0})
    assert response.status_code == 400 and response.json()["error"]["param"] == "max_tokens"
    chat = _post(base_url, "chat/completions", {"messages": [USER], "max_tokens": 0})
    assert chat.status_code == 400 and chat.json()["error"]["param"] == "max_tokens"


def test_lenient_fields_are_accepted_and_change_nothing(client: openai.OpenAI) -> None:
    base = {"model": MODEL, "messages": [USER], "max_tokens": 6, "temperature": 0}
    plain = client.chat.completions.create(**base).choices[0].message.content
    lenient = client.chat.completions.create(
        **base, response_format={"type": "text"}, store=False, user="someone", parallel_tool_calls=True
    )
    assert lenient.choices[0].message.content == plain
    text = client.completions.create(model=MODEL, prompt="Once", max_tokens=4, temperature=0).choices[0].text
    assert (
        client.completions.create(
            model=MODEL, prompt="Once", max_tokens=4, temperature=0, best_of=1, user="u", extra_body={"store": False}
        )
        .choices[0]
        .text
        == text
    )


def test_max_completion_tokens_is_max_tokens(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=[USER], max_completion_tokens=3, temperature=0)
    same = client.chat.completions.create(model=MODEL, messages=[USER], max_tokens=3, temperature=0)
    assert reply.usage.completion_tokens <= 3 and reply.choices[0].message.content == same.choices[0].message.content


def test_developer_role_is_the_system_prompt(served: tuple[str, Any], client: openai.OpenAI) -> None:
    _, app = served
    worker, seen = app.state.worker, []
    original = worker.submit
    worker.submit = lambda rows: (seen.append(rows[0].prompt_ids), original(rows))[1]
    try:
        for role in ("developer", "system"):
            messages = [{"role": role, "content": "You answer briefly."}, USER]
            client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1)
    finally:
        worker.submit = original
    assert seen[0] == seen[1]


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format.type", "no constrained decoding"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
            "response_format.type",
            "no constrained decoding",
        ),
        ({"top_logprobs": 2}, "top_logprobs", "needs logprobs: true"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "less than or equal to 20"),
        ({"tool_choice": "auto"}, "tool_choice", "needs tools"),
    ],
)
def test_unsupported_chat_fields_are_400_that_say_why(base_url: str, body: dict, param: str, says: str) -> None:
    response = _post(base_url, "chat/completions", {"messages": [USER], "max_tokens": 2, **body})
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == param and says in error["message"], error


def test_best_of_above_n_is_400(base_url: str) -> None:
    response = _post(base_url, "completions", {"prompt": "x", "max_tokens": 2, "best_of": 3})
    assert response.status_code == 400 and response.json()["error"]["param"] == "best_of"

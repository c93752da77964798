"""Tool calling: `tools` rendered by the chat template's own tool format, the model's calls parsed back into
`tool_calls` (checked on calls rendered by real model templates: Qwen2.5, Llama-3.1, Mistral v3), and 400s for
what cannot be honoured (a template without a tool format, forced tool_choice)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import torch

from lmforge.inference import tool_calls
from lmforge.inference.engine import ChatEngine, load_engine
from lmforge.inference.server import create_app
from lmforge.templates import get_template
from tests.fixtures.family_tokenizers import load_template_tokenizer
from tests.fixtures.server import running_server
from tests.fixtures.tokenizers import load_fixture_tokenizer

MODEL = "tiny"
TEMPLATES = Path(__file__).resolve().parents[2] / "fixtures" / "real_templates"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.mark.parametrize("real", [None, "qwen2.5", "llama3.1", "mistral-v3"])
def test_calls_rendered_by_the_models_own_template_parse_back(real: str | None) -> None:
    """The model's own (real) template writes a call; the server's parser reads it back."""
    if real is None:
        tokenizer = load_fixture_tokenizer("qwen")
        template = get_template("chatml", tokenizer)
    else:
        tokenizer = load_template_tokenizer(real)
        template = get_template("auto", tokenizer)
    calls = [
        {"id": "abcDEF123", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    messages = [*ASK, {"role": "assistant", "content": "", "tool_calls": calls}]
    encoded = template.encode(tokenizer, messages, json.dumps([WEATHER]))
    reply = encoded.input_ids[slice(*encoded.replies[-1])]
    stops = set(template.stop_token_ids(tokenizer))
    said = reply[: next(i for i, t in enumerate(reply) if t in stops)]  # what the server has when the reply ends
    use = tool_calls.ToolUse("[]", tool_calls.detect_format(template.jinja()), parallel=True)
    content, parsed = tool_calls.parse(tokenizer.decode(said, skip_special_tokens=False), use)
    assert content == "" and len(parsed) == 1
    assert parsed[0]["function"]["name"] == "get_weather"
    assert json.loads(parsed[0]["function"]["arguments"]) == {"city": "Paris"}
    assert parsed[0]["type"] == "function" and parsed[0]["id"]


def test_text_that_is_not_a_valid_call_stays_content() -> None:
    use = tool_calls.ToolUse("[]", "hermes", parallel=True)
    for text in ["Just words.", "<tool_call>\n{not json}\n</tool_call>", '<tool_call>{"name": "f"}</tool_call>']:
        assert tool_calls.parse(text, use) == (text, [])
    two = CALL_TEXT + "\n" + CALL_TEXT.replace("Paris", "Rome")
    assert len(tool_calls.parse(two, use)[1]) == 2
    assert len(tool_calls.parse(two, tool_calls.ToolUse("[]", "hermes", parallel=False))[1]) == 1


class ScriptedModel(torch.nn.Module):
    """The tiny model, forced to answer `script` after a prompt of `prompt_len` tokens (a model that calls a tool)."""

    def __init__(self, inner: Any, script: list[int], prompt_len: int) -> None:
        super().__init__()
        self.inner, self.script, self.prompt_len = inner, script, prompt_len
        self.config = inner.config

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def forward(self, **kwargs: Any) -> Any:
        out = self.inner(**kwargs)
        for row, position in enumerate(kwargs["position_ids"][:, -1].tolist()):
            k = position + 1 - self.prompt_len
            if 0 <= k < len(self.script):
                out.logits[row, -1] = float("-inf")
                out.logits[row, -1, self.script[k]] = 0.0
        return out


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> ChatEngine:
    return load_engine(str(tiny_model_dir), dtype="float32")


@pytest.fixture(scope="module")
def tools_json() -> str:
    return json.dumps([WEATHER])


@pytest.fixture(scope="module")
def served(engine: ChatEngine, tools_json: str) -> Iterator[tuple[openai.OpenAI, Any]]:
    prompt = engine.prompt_ids(ASK, tools_json)
    script = [*engine.tokenizer.encode(CALL_TEXT), engine.stop_ids[0]]
    scripted = ChatEngine(ScriptedModel(engine.model, script, len(prompt)), engine.tokenizer, engine.template)
    app = create_app(scripted, model_name=MODEL, max_wait_ms=2)
    with running_server(app) as base_url:
        yield openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=60), app


def test_a_tool_call_comes_back_as_tool_calls_streamed_or_not(
    served: tuple[openai.OpenAI, Any], engine: ChatEngine, tools_json: str
) -> None:
    client, app = served
    worker, seen = app.state.worker, []
    original = worker.submit
    worker.submit = lambda rows: (seen.append(rows[0].prompt_ids), original(rows))[1]
    try:
        reply = client.chat.completions.create(
            model=MODEL, messages=ASK, tools=[WEATHER], max_tokens=100, temperature=0
        )
    finally:
        worker.submit = original
    assert seen == [engine.prompt_ids(ASK, tools_json)] != [engine.prompt_ids(ASK)]  # tools in the template's format
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=ASK, tools=[WEATHER], max_tokens=100, temperature=0, stream=True
        )
    )
    deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(deltas) == 1 and deltas[0][0].index == 0 and deltas[0][0].function.name == "get_weather"
    assert json.loads(deltas[0][0].function.arguments) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]


def test_tool_choice_none_renders_no_tools_and_parses_nothing(served: tuple[openai.OpenAI, Any]) -> None:
    client, _ = served
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=3, temperature=0
    )
    assert reply.choices[0].message.tool_calls is None


def test_a_conversation_with_tool_results_renders_through_the_template(
    served: tuple[openai.OpenAI, Any], engine: ChatEngine, tools_json: str
) -> None:
    client, app = served
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    messages = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24 C"},
    ]
    worker, seen = app.state.worker, []
    original = worker.submit
    worker.submit = lambda rows: (seen.append(rows[0].prompt_ids), original(rows))[1]
    try:
        client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], max_tokens=2, temperature=0)
    finally:
        worker.submit = original
    as_template_sees_it = [
        *ASK,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{**call, "function": {**call["function"], "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24 C"},
    ]
    assert seen == [engine.prompt_ids(as_template_sees_it, tools_json)]


def test_forced_tool_choice_and_templates_without_a_tool_format_are_400(
    served: tuple[openai.OpenAI, Any], engine: ChatEngine
) -> None:
    client, _ = served
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        with pytest.raises(openai.BadRequestError, match="constrained decoding") as info:
            client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice=choice)
        assert info.value.body["param"] == "tool_choice"
    plain = ChatEngine(engine.model, engine.tokenizer, get_template("llama2", engine.tokenizer))
    with running_server(create_app(plain, model_name=MODEL)) as base_url:
        other = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=60)
        with pytest.raises(openai.BadRequestError, match="no tool-call format") as info:
            other.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], max_tokens=2)
        assert info.value.body["param"] == "tools" and info.value.body["code"] == "tools_not_supported"


def test_a_template_that_ignores_tools_is_refused() -> None:
    template = get_template("mistral-v1", load_fixture_tokenizer("mistral"))
    with pytest.raises(Exception, match="does not render tool definitions"):
        tool_calls.check_rendered(template, [1, 2], [1, 2])

"""Conversation shapes every chat template is checked on: (id, messages, tools).

Each conversation ends with an assistant reply (training); its prompt form drops that reply. Tool-call ids are
9-character alphanumeric strings, as Mistral's templates require.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = field(default=None)

    def prompt(self) -> list[dict[str, Any]]:
        """The conversation up to the last reply, as sent for generation."""
        return self.messages[:-1] if self.messages[-1]["role"] == "assistant" else self.messages


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _assistant(text: str | None, **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, **extra}


def _system(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


def _call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _tool(call_id: str, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


THREE_TURNS = [
    _user("Name a prime number."),
    _assistant("Seven."),
    _user("And an even one?"),
    _assistant("Two."),
    _user("Thanks!"),
    _assistant("You are welcome."),
]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "city name"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

CASES = [
    Case("one_turn", [_user("Hello!"), _assistant("Hi there.")]),
    Case("three_turns", THREE_TURNS),
    Case("system_one_turn", [_system("You are terse."), _user("Hello!"), _assistant("Hi.")]),
    Case("system_three_turns", [_system("You are terse."), *THREE_TURNS]),
    Case("empty_system", [_system(""), _user("Hello!"), _assistant("Hi.")]),
    Case("system_with_spaces", [_system("  Be brief.\n"), _user("Hello!"), _assistant("Hi.")]),
    Case(
        "reply_spaces_and_newlines",
        [
            _user("  padded question  "),
            _assistant(" leading space"),
            _user("\nnewline first"),
            _assistant("\n\nleading newlines"),
            _user("last"),
            _assistant("trailing space and newline \n"),
        ],
    ),
    Case(
        "unicode_and_emoji",
        [_user("Ça va? 你好 🚀 — naïve"), _assistant("Très bien 👍 好的 ✓"), _user("ü"), _assistant("é 中 😀")],
    ),
    Case(
        "think_in_content",
        [
            _user("What is 2+2?"),
            _assistant("<think>\nAdd two and two.\n</think>\n\nFour."),
            _user("And 3+3?"),
            _assistant("<think>\nAdd three and three.\n</think>\n\nSix."),
        ],
    ),
    Case(
        "reasoning_content",
        [
            _user("What is 2+2?"),
            _assistant("Four.", reasoning_content="Add two and two."),
            _user("And 3+3?"),
            _assistant("Six.", reasoning_content="\nAdd three and three.\n"),
        ],
    ),
    Case(
        "tool_call",
        [
            _system("You can look things up."),
            _user("Weather in Paris?"),
            _assistant("", tool_calls=[_call("call12345", "get_weather", {"city": "Paris"})]),
            _tool("call12345", '{"temp_c": 21}'),
            _assistant("It is 21 °C in Paris."),
        ],
        tools=[WEATHER_TOOL, TIME_TOOL],
    ),
    Case(
        "tool_call_openai_shape",  # content None and JSON-string arguments, as the OpenAI API sends them
        [
            _user("Weather in Oslo?"),
            _assistant(None, tool_calls=[_call("abcDEF123", "get_weather", '{"city": "Oslo"}')]),
            _tool("abcDEF123", "cold"),
            _assistant("It is cold in Oslo."),
        ],
        tools=[WEATHER_TOOL],
    ),
    Case(
        "parallel_tool_calls",
        [
            _user("Weather and time in Rome?"),
            _assistant(
                "Let me check.",
                tool_calls=[
                    _call("rome00001", "get_weather", {"city": "Rome"}),
                    _call("rome00002", "get_time", {"city": "Rome"}),
                ],
            ),
            _tool("rome00001", "sunny"),
            _tool("rome00002", "14:00"),
            _assistant("Sunny, and it is 14:00."),
            _user("Thanks."),
            _assistant("Any time."),
        ],
        tools=[WEATHER_TOOL, TIME_TOOL],
    ),
    Case(
        "builtin_tool_call",  # Llama 3.1 writes calls to its builtin tools (option builtin_tools) as python calls
        [
            _user("Search the news."),
            _assistant(None, tool_calls=[_call("srch00001", "brave_search", {"query": "news today"})]),
            _tool("srch00001", "Nothing new."),
            _assistant("Nothing new today."),
        ],
        tools=[WEATHER_TOOL],
    ),
    Case(
        "tools_on_the_system_message",  # GLM-4 reads tool definitions from a message's own `tools`
        [{**_system("Use tools when needed."), "tools": [WEATHER_TOOL]}, _user("Weather?"), _assistant("Sunny.")],
    ),
    Case("consecutive_users", [_user("First part."), _user("Second part."), _assistant("Both read.")]),
    Case("consecutive_assistants", [_user("Go on."), _assistant("One."), _assistant("Two.")]),
    Case("assistant_first", [_assistant("How can I help?"), _user("Say hi."), _assistant("Hi.")]),
    Case("system_in_the_middle", [_user("Hello!"), _system("Be formal."), _assistant("Good day.")]),
    Case("two_systems", [_system("Be brief."), _user("Hello!"), _system("Be formal."), _assistant("Good day.")]),
    Case(
        "tool_response_user_turn",  # a user turn that only carries a tool response (Qwen3 skips it as a query)
        [
            _user("Weather in Paris?"),
            _assistant("<think>\nNeed the tool.\n</think>\n\nChecking."),
            _user("<tool_response>\nsunny\n</tool_response>"),
            _assistant("<think>\nIt is sunny.\n</think>\n\nSunny."),
        ],
    ),
]

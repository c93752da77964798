"""Every format converges on one conversation shape; wrong shapes are rejected precisely (A3, A4, A9)."""

from __future__ import annotations

import re

import pytest

from lmforge.config.schema import DatasetSpec
from lmforge.data.formats import FORMATS, DropRow, check_columns, convert_row
from lmforge.utils.errors import DataError


def _convert(fmt: str, row: dict, index: int = 0, **spec_kw) -> dict:
    spec = DatasetSpec(name="d", path="d.json", format=fmt, **spec_kw)
    mapping = check_columns(spec, list(row), "pt" if fmt == "text" else "sft")
    return convert_row(FORMATS.get(fmt), row, spec, mapping, index)


def test_alpaca_with_system_history_and_input():
    row = {"instruction": "Add", "input": "1+1", "output": "2", "system": "Be brief.", "history": [["hi", "hello"]]}
    assert _convert("alpaca", row) == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "Add\n1+1"},
            {"role": "assistant", "content": "2"},
        ],
        "tools": None,
    }


def test_alpaca_column_mapping():
    row = {"question": "Q?", "answer": "A."}
    out = _convert("alpaca", row, columns={"prompt": "question", "response": "answer"})
    assert out["messages"] == [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]


def test_sharegpt_function_call_observation_system_and_tools():
    row = {
        "conversations": [
            {"from": "system", "value": "sys"},
            {"from": "human", "value": "weather?"},
            {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'},
            {"from": "observation", "value": '{"temp": 3}'},
            {"from": "gpt", "value": "3 degrees"},
        ],
        "tools": '[{"name": "get_weather"}]',
    }
    out = _convert("sharegpt", row)
    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}, "id": "call00000"}
    assert out == {
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": '{"temp": 3}', "tool_call_id": "call00000"},
            {"role": "assistant", "content": "3 degrees"},
        ],
        "tools": '[{"type": "function", "function": {"name": "get_weather"}}]',  # the shape templates read
    }


def test_sharegpt_custom_tags_and_system_column():
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    row = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "sys": "S"}
    out = _convert("sharegpt", row, columns={"messages": "messages", "system": "sys"}, tags=tags)
    assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant"]


def test_openai_messages_and_text_parts():
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "c"},
        ]
    }
    assert _convert("openai", row)["messages"][0] == {"role": "user", "content": "ab"}


def test_text_format():
    assert _convert("text", {"text": "doc"}) == {"text": "doc"}
    with pytest.raises(DropRow, match="empty text"):
        _convert("text", {"text": "  "})


@pytest.mark.parametrize(
    ("content", "kind"), [(None, "NoneType"), (3, "int"), ([{"type": "image", "url": "x"}], "list")]
)
def test_a4_wrong_content_types_name_row_and_field_path(content, kind):
    row = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "assistant", "content": content},
        ]
    }
    with pytest.raises(DataError, match=re.escape(f"row 7 (0-based): messages[2].content: expected text, got {kind}")):
        _convert("openai", row, index=7)


@pytest.mark.parametrize("role", ["gpt", "human", "tool_result"])
def test_a4_unknown_roles_are_rejected_not_mapped(role):
    row = {"messages": [{"role": "user", "content": "a"}, {"role": role, "content": "b"}]}
    with pytest.raises(DataError, match=re.escape(f"messages[1].role: unknown role '{role}'")):
        _convert("openai", row)
    sharegpt = {"conversations": [{"from": "human", "value": "a"}, {"from": "tool_result", "value": "b"}]}
    with pytest.raises(DataError, match=re.escape("conversations[1].from: unknown role 'tool_result'")):
        _convert("sharegpt", sharegpt)


def test_a3_missing_column_lists_found_columns_and_mapping():
    spec = DatasetSpec(name="d", path="d.json", format="openai")
    with pytest.raises(DataError) as exc:
        check_columns(spec, ["conversations"], "sft")
    assert "missing column(s) 'messages'" in str(exc.value)
    assert "columns found: conversations" in str(exc.value) and "'messages': 'messages'" in str(exc.value)
    assert "set format: sharegpt" in str(exc.value)
    with pytest.raises(DataError, match=r"missing column.*'output'.*columns found: instruction, input"):
        check_columns(DatasetSpec(name="d", path="p", format="alpaca"), ["instruction", "input"], "sft")


def test_a9_preference_data_given_to_sft_names_expected_fields():
    spec = DatasetSpec(name="d", path="d.json", format="alpaca")
    with pytest.raises(DataError, match=r"dataset format preference does not match stage sft.*alpaca \(instruction"):
        check_columns(spec, ["prompt", "chosen", "rejected"], "sft")
    with pytest.raises(DataError, match="dataset format text does not match stage sft"):
        check_columns(DatasetSpec(name="d", path="p", format="text"), ["text"], "sft")
    with pytest.raises(DataError, match=r"dataset format alpaca does not match stage pt.*text \(text\)"):
        check_columns(DatasetSpec(name="d", path="p", format="alpaca"), ["instruction", "output"], "pt")


@pytest.mark.parametrize("output", ["", "   \n"])
def test_a5_empty_assistant_response_is_dropped(output):
    with pytest.raises(DropRow, match="empty assistant response"):
        _convert("alpaca", {"instruction": "q", "output": output})

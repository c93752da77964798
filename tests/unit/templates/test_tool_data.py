"""LLaMA-Factory's sharegpt tool-call data (function_call / observation turns, bare function schemas) encodes
through the templates whose real Jinja supports tools exactly as apply_chat_template renders it (issue 9.5)."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from lmforge.config.schema import DataConfig, DatasetSpec
from lmforge.data.formats import iter_conversations
from lmforge.data.report import DatasetCounts
from lmforge.templates import get_template
from tests.fixtures.family_tokenizers import load_template_tokenizer

GLAIVE = Path(__file__).resolve().parents[3] / "examples" / "data" / "glaive_toolcall_en_demo.json"


@functools.cache
def glaive_conversations() -> list[dict[str, Any]]:
    spec = DatasetSpec(name="glaive", path=str(GLAIVE), format="sharegpt", columns={"tools": "tools"})
    return list(iter_conversations(spec, DataConfig(), "sft", DatasetCounts("glaive"), []))[:60]


def test_sharegpt_tool_calls_get_ids_and_tools_the_openai_shape():
    conv = next(c for c in glaive_conversations() if any(m.get("tool_calls") for m in c["messages"]))
    call = next(m for m in conv["messages"] if m.get("tool_calls"))["tool_calls"][0]
    result = next(m for m in conv["messages"] if m["role"] == "tool")
    assert len(call["id"]) == 9 and call["id"].isalnum() and result["tool_call_id"] == call["id"]
    assert all(tool["type"] == "function" and "name" in tool["function"] for tool in json.loads(conv["tools"]))


@pytest.mark.parametrize("real", ["qwen2.5", "qwen3", "llama3.1", "mistral-v0.3", "mistral-v3"])
@pytest.mark.parametrize("mode", ["named", "auto"])
def test_tool_call_conversations_encode_like_apply_chat_template(real: str, mode: str):
    logging.getLogger("transformers").setLevel(logging.ERROR)
    tokenizer = load_template_tokenizer(real)
    template = get_template(real if mode == "named" else "auto", tokenizer)
    for conv in glaive_conversations():
        tools = json.loads(conv["tools"]) if conv["tools"] else None
        expected = tokenizer.apply_chat_template(conv["messages"], tools=tools, tokenize=True, return_dict=False)
        encoded = template.encode(tokenizer, conv["messages"], conv["tools"])
        assert encoded.input_ids == expected
        trained = "".join(tokenizer.decode(encoded.input_ids[a:b]) for a, b in encoded.replies)
        names = [call["function"]["name"] for m in conv["messages"] for call in m.get("tool_calls") or []]
        assert all(name in trained for name in names)  # the calls are trained, not only the text replies

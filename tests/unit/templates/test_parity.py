"""C1/C2/C3/C17: our ids equal the tokenizer's own `apply_chat_template`, masks equal the prefix-render reference.

Each fixture tokenizer carries our Jinja for its family as `chat_template`; every other template is checked
against its own Jinja on every fixture tokenizer too.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest
from hypothesis import HealthCheck, given, settings

from lmforge.templates import TEMPLATES, ChatTemplate, get_template
from lmforge.templates.families.chatml import CHATML
from lmforge.templates.families.llama3 import LLAMA3
from tests.fixtures.tokenizers import FAMILIES, FAMILY_TEMPLATE, load_fixture_tokenizer
from tests.unit.templates.conversations import chat_ids, conversation, reference_mask

# what a decoded reply must be, written out independently of the template code
REPLY_FORMAT = {
    "llama3": "{}<|eot_id|>",
    "qwen": "{}<|im_end|>\n",
    "mistral": " {}</s>",
    "gemma": "{}<end_of_turn>\n",
}
TRIMS = {"llama3", "gemma"}
END_OF_TURN = {"llama3": ("<|eot_id|>", "<|end_of_text|>"), "qwen": ("<|im_end|>",), "mistral": ("</s>",)}
END_OF_TURN["gemma"] = ("<end_of_turn>",)
JINJA_TEMPLATES = [name for name in TEMPLATES.names() if TEMPLATES.get(name).jinja()]
PROPERTY = settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
CROSS = settings(PROPERTY, max_examples=20)


@functools.cache
def tokenizer(family: str):
    return load_fixture_tokenizer(family)


def check_encoding(template_name: str | ChatTemplate, family: str, messages: list[dict], own_template: bool) -> None:
    tok = tokenizer(family)
    template = get_template(template_name, tok) if isinstance(template_name, str) else template_name
    jinja = None if own_template else template.jinja()
    turns = template.encode_turns(tok, messages)
    ids = [i for t in turns for i in t.prompt_ids + t.response_ids]
    mask = [m for t in turns for m in [0] * len(t.prompt_ids) + [1] * len(t.response_ids)]

    assert ids == chat_ids(tok, messages, jinja)  # C1: token for token
    reference = reference_mask(tok, messages, jinja)
    if reference is not None or template.name != "qwen3":  # qwen3 rewrites earlier replies (no think block)
        assert mask == reference  # C1/C2
    assert len(turns) == sum(m["role"] == "assistant" for m in messages)
    assert all(t.response_ids for t in turns)
    bos = tok.bos_token_id
    if bos is not None and template.bos_token == tok.bos_token and template.name != "llama2":
        assert ids.count(bos) == 1 and ids[0] == bos  # C3
    prompt = template.encode_prompt(tok, messages[:-1])
    assert prompt == ids[: len(ids) - len(turns[-1].response_ids)]  # C3/C17: inference = training prefix
    if own_template:
        replies = [m["content"] for m in messages if m["role"] == "assistant"]
        for turn, content in zip(turns, replies, strict=True):
            content = content.strip() if family in TRIMS else content
            assert tok.decode(turn.response_ids) == REPLY_FORMAT[family].format(content)
        stops = template.stop_token_ids(tok)
        assert {tok.convert_tokens_to_ids(t) for t in END_OF_TURN[family]} <= set(stops)


@pytest.mark.parametrize("family", FAMILIES)
@PROPERTY
@given(messages=conversation(max_turns=1))
def test_single_turn_ids_and_mask_match_tokenizer(family, messages):
    check_encoding(FAMILY_TEMPLATE[family], family, messages, own_template=True)


@pytest.mark.parametrize("family", FAMILIES)
@PROPERTY
@given(messages=conversation(min_turns=2, max_turns=6))
def test_multi_turn_ids_and_mask_match_tokenizer(family, messages):
    check_encoding(FAMILY_TEMPLATE[family], family, messages, own_template=True)


@pytest.mark.parametrize("family", FAMILIES)
@PROPERTY
@given(messages=conversation(min_turns=1, max_turns=4))
def test_auto_template_matches_tokenizer(family, messages):
    check_encoding("auto", family, messages, own_template=True)


@pytest.mark.parametrize("template_name", ["chatml", "qwen", "qwen3"])
@PROPERTY
@given(messages=conversation(min_turns=1, max_turns=3, tools=True))
def test_tool_turns_match_jinja(template_name, messages):
    check_encoding(template_name, "qwen", messages, own_template=False)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("template_name", JINJA_TEMPLATES)
@CROSS
@given(messages=conversation(min_turns=1, max_turns=4))
def test_every_template_matches_its_jinja(template_name, family, messages):
    check_encoding(template_name, family, messages, own_template=False)


SAMPLE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
    {"role": "assistant", "content": "Bye."},
]


@pytest.mark.parametrize(
    ("family", "broken"),
    [
        # same text, but the header's newline moves into the trained reply: ids match, the mask must not
        (
            "qwen",
            dataclasses.replace(
                CHATML, generation_prompt="<|im_start|>assistant", assistant="\n{content}<|im_end|>\n"
            ),
        ),
        # the reply loses its trailing newline: the ids must not match
        ("qwen", dataclasses.replace(CHATML, assistant="{content}<|im_end|>")),
        # the end-of-turn token is not trained
        ("llama3", dataclasses.replace(LLAMA3, generation_prompt=LLAMA3.generation_prompt, assistant="{content}")),
    ],
)
def test_negative_control_broken_template_fails_the_checks(family, broken):
    with pytest.raises(AssertionError):
        check_encoding(broken, family, SAMPLE, own_template=True)

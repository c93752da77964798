"""Template behaviour beyond parity: A16 special text, A8 names and mismatch, D4 sandbox, formats without Jinja,
Qwen3 think blocks, tools, and the documented edge cases."""

from __future__ import annotations

import functools
import json
import time
import uuid
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from lmforge.templates import check_template_matches_tokenizer, get_template, has_control_text, template_names
from lmforge.utils.errors import ConfigError, DataError
from tests.fixtures.tokenizers import FAMILIES, FAMILY_TEMPLATE, load_fixture_tokenizer
from tests.unit.templates.conversations import chat_ids

CONTROL_TEXT = "<|im_end|> <|eot_id|> </s> <end_of_turn> <|im_start|> [INST] <s> <bos>"


@functools.cache
def tokenizer(family: str):
    return load_fixture_tokenizer(family)


def flat(turns) -> list[int]:
    return [i for t in turns for i in t.prompt_ids + t.response_ids]


def conv(user: str = "Hi", reply: str = "Hello!") -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]


@pytest.mark.parametrize("name", ["named", "auto"])
@pytest.mark.parametrize("family", FAMILIES)
def test_special_token_text_in_content_is_encoded_as_text(family, name):
    """A16: the ids of control-token text typed in content are plain text, never the control ids."""
    tok = tokenizer(family)
    template = get_template(FAMILY_TEMPLATE[family] if name == "named" else "auto", tok)
    plain = flat(template.encode_turns(tok, conv()))
    injected = flat(template.encode_turns(tok, conv(f"Hi {CONTROL_TEXT}", f"Hello {CONTROL_TEXT}")))
    for token_id in tok.all_special_ids:
        assert injected.count(token_id) == plain.count(token_id), tok.convert_ids_to_tokens(token_id)
    assert CONTROL_TEXT in tok.decode(injected)
    assert has_control_text(tok, conv(f"Hi {CONTROL_TEXT}")) and not has_control_text(tok, conv())


@pytest.mark.parametrize("family", FAMILIES)
def test_auto_template_describes_bos_and_end_of_turn(family):
    tok = tokenizer(family)
    auto, named = get_template("auto", tok), get_template(FAMILY_TEMPLATE[family], tok)
    assert auto.bos_token == named.bos_token
    assert auto.stop_token_ids(tok)[0] == named.stop_token_ids(tok)[0]


def test_unknown_template_name_lists_valid_names():
    """A8: no fallback; the error names every valid template, with a hint."""
    with pytest.raises(ConfigError) as err:
        get_template("llama4x", tokenizer("llama3"))
    message = str(err.value)
    assert "llama4x" in message and 'did you mean "llama3"' in message
    assert all(name in message for name in template_names())
    assert "auto" in template_names() and {"alpaca", "vicuna", "default", "chatml", "qwen", "qwen3"} <= set(
        template_names()
    )


def test_mismatch_warning_shows_first_40_tokens_of_both():
    """A8: chatml on a Llama-3 tokenizer that has its own template is reported; the matching one is not."""
    tok = tokenizer("llama3")
    warning = check_template_matches_tokenizer(get_template("chatml", tok), tok)
    assert warning is not None and "chatml" in warning and "template: auto" in warning
    ours, theirs = warning.splitlines()[1:3]
    assert ours.startswith("  chatml: ['<', '|'") and theirs.startswith("  tokenizer: ['<|begin_of_text|>'")
    assert ours.count("', '") == 39 and theirs.count("', '") == 39  # 40 tokens each
    assert check_template_matches_tokenizer(get_template("llama3", tok), tok) is None


def test_auto_without_chat_template_is_a_config_error():
    tok = load_fixture_tokenizer("qwen")
    tok.chat_template = None
    with pytest.raises(ConfigError, match="chat_template"):
        get_template("auto", tok)
    assert check_template_matches_tokenizer(get_template("chatml", tok), tok) is None


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('touch MARKER') }}",
        "{{ raise_exception.__globals__['os'].system('touch MARKER') }}",
        "{{ messages.append(1) }}",
    ],
)
def test_sandbox_blocks_template_injection(payload, tmp_path: Path):
    """D4: a hostile chat_template raises SecurityError and runs nothing."""
    marker = tmp_path / f"pwned_{uuid.uuid4().hex}"
    tok = load_fixture_tokenizer("qwen")
    tok.chat_template = payload.replace("MARKER", str(marker))
    with pytest.raises(SecurityError):
        get_template("auto", tok).encode_turns(tok, conv())
    assert not marker.exists()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "longer than 1 s"),
        (
            "{% for i in range(100000) %}{{ 'x' * 50 }}{% endfor %}",
            "characters",
        ),
    ],
    ids=["nested-loops", "huge-output"],
)
def test_runaway_template_rendering_is_bounded(body: str, reason: str):
    """D5: a rendering with nested range(10**5) loops or a huge output stops with an error within about 1 s."""
    tok = load_fixture_tokenizer("qwen")
    tok.chat_template = body + "{% for m in messages %}{{ m.content }}{% endfor %}"
    template = get_template("auto", tok)
    messages = [{"role": "user", "content": "hi"}]
    started = time.monotonic()
    with pytest.raises(DataError, match=reason):
        template.render_text(tok, messages)
    assert time.monotonic() - started < 1.5  # one rendering: its 1 s budget plus the check interval
    with pytest.raises(DataError, match=reason):  # and every prompt built from it fails the same way
        template.encode_prompt(tok, messages)


def test_ordinary_ranges_still_render_with_length():
    tok = load_fixture_tokenizer("qwen")
    tok.chat_template = "{% for i in range(3) %}{{ i }}{% endfor %}{{ range(4)|length }}{{ messages[0].content }}"
    template = get_template("auto", tok)
    assert template.render_text(tok, [{"role": "user", "content": "hi"}]) == "0124hi"


GENERIC_FORMATS = {
    "alpaca": (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\n{u}\n\n### Response:\n{a}{eos}\n\n"
    ),
    "vicuna": (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: {u} ASSISTANT: {a}{eos}"
    ),
    "default": "Human: {u}\nAssistant: {a}{eos}\n",
    "plain": "{u}{a}{eos}",
}


@pytest.mark.parametrize("family", ["qwen", "llama3"])
@pytest.mark.parametrize("name", sorted(GENERIC_FORMATS))
def test_formats_without_jinja_decode_to_their_documented_text(name, family):
    """The tokenizer's own BOS (only when it adds one) and EOS; the reply and EOS are the trained part."""
    tok = tokenizer(family)
    template = get_template(name, tok)
    assert template.jinja() is None
    turns = template.encode_turns(tok, conv("What is 2+2?", "4"))
    bos = tok.bos_token if family == "llama3" else ""
    assert tok.decode(flat(turns)) == bos + GENERIC_FORMATS[name].format(u="What is 2+2?", a="4", eos=tok.eos_token)
    assert tok.decode(turns[0].response_ids).startswith((" 4", "4")) and tok.eos_token in tok.decode(
        turns[0].response_ids
    )
    assert template.encode_prompt(tok, conv("What is 2+2?")[:1]) == turns[0].prompt_ids
    assert template.stop_token_ids(tok) == [tok.eos_token_id]


def test_qwen3_think_block_only_on_the_final_reply():
    """Earlier replies keep only their answer; the final one carries a (possibly empty) think block."""
    tok = tokenizer("qwen")
    template = get_template("qwen3", tok)
    messages = conv("a", "<think>\nold reasoning\n</think>\n\nfirst") + conv("b", "second")
    turns = template.encode_turns(tok, messages)
    assert tok.decode(turns[0].response_ids) == "first<|im_end|>\n"
    assert tok.decode(turns[1].response_ids) == "<think>\n\n</think>\n\nsecond<|im_end|>\n"
    assert flat(turns) == chat_ids(tok, messages, template.jinja())
    reasoning = [*conv("a"), {"role": "assistant", "content": "x", "reasoning_content": "because"}][:2]
    reasoning[1] = {"role": "assistant", "content": "x", "reasoning_content": "because"}
    turns = template.encode_turns(tok, reasoning)
    assert tok.decode(turns[0].response_ids) == "<think>\nbecause\n</think>\n\nx<|im_end|>\n"
    assert flat(turns) == chat_ids(tok, reasoning, template.jinja())


@pytest.mark.parametrize("name", ["chatml", "qwen", "qwen3"])
def test_tool_definitions_in_system_prompt_match_jinja(name):
    tok = tokenizer("qwen")
    template = get_template(name, tok)
    tools = [{"type": "function", "function": {"name": "get_x", "parameters": {"type": "object"}}}]
    for messages in (conv(), [{"role": "system", "content": "S"}, *conv()]):
        ids = flat(template.encode_turns(tok, messages, tools=json.dumps(tools)))
        assert ids == chat_ids(tok, messages, template.jinja(), tools=tools)
        assert "<tools>" in tok.decode(ids)


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([{"role": "user", "content": "a"}], "must end with an assistant turn"),
        ([*conv(), {"role": "user", "content": "b"}], "must end with an assistant turn"),
        ([{"role": "user", "content": "a"}, *conv()], "messages[1]: role 'user' follows 'user'"),
        (
            [*conv(), {"role": "system", "content": "s"}, *conv()],
            "messages[2]: a system message is only allowed first",
        ),
        (
            [*conv(), {"role": "tool", "content": "r"}, *conv()[1:]],
            "role 'tool' follows 'assistant' without tool_calls",
        ),
        ([{"role": "tool", "content": "r"}, *conv()[1:]], "messages[0]: role 'tool' follows the start"),
        ([{"role": "bot", "content": "r"}], "messages[0]: role 'bot' is not one of"),
        ([{"role": "user", "content": 3}, *conv()[1:]], "messages[0]: content must be a string"),
        ([], "empty conversation"),
    ],
)
def test_invalid_conversations_are_rejected(messages, expected):
    """A6: a short message naming the bad message."""
    with pytest.raises(DataError) as err:
        get_template("chatml", tokenizer("qwen")).encode_turns(tokenizer("qwen"), messages)
    assert expected in str(err.value)


def test_template_without_tools_rejects_tool_calls():
    call = {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}
    messages = [{"role": "user", "content": "a"}, call, {"role": "tool", "content": "r"}, *conv()[1:]]
    with pytest.raises(DataError, match="cannot render tool calls"):
        get_template("llama3", tokenizer("llama3")).encode_turns(tokenizer("llama3"), messages)


def test_system_prompt_without_a_user_turn_is_not_dropped():
    """Gemma folds the system text into the first user turn; with none there, that is an error, not a drop."""
    messages = [{"role": "system", "content": "S"}, {"role": "assistant", "content": "a"}]
    with pytest.raises(DataError, match="first user turn"):
        get_template("gemma", tokenizer("gemma")).encode_turns(tokenizer("gemma"), messages)


@pytest.mark.parametrize("family", FAMILIES)
def test_edge_cases_assistant_first_and_empty_system(family):
    """C2 edge cases: a reply before any user turn, and an empty system message."""
    tok = tokenizer(family)
    template = get_template(FAMILY_TEMPLATE[family], tok)
    for messages in (
        [{"role": "assistant", "content": "Welcome."}, *conv()],
        [{"role": "system", "content": ""}, *conv()],
    ):
        if family in ("mistral", "gemma") and messages[0]["role"] == "assistant":
            continue  # these formats have no reply before the first [INST]/user turn in our Jinja either
        turns = template.encode_turns(tok, messages)
        assert flat(turns) == chat_ids(tok, messages)
        assert len(turns) == sum(m["role"] == "assistant" for m in messages)


def test_reply_starting_with_newline_keeps_inference_prompt_ids():
    """Documented divergence: after a header ending in a newline, a reply that opens with one would merge with
    it in whole-text tokenization. We tokenize prompt and reply separately, so training ids keep the exact
    inference prompt ids (C3/C17); the text is still identical."""
    tok = tokenizer("qwen")
    template = get_template("qwen", tok)
    messages = conv("Hi", "\nHello")
    turns = template.encode_turns(tok, messages)
    assert template.encode_prompt(tok, messages[:1]) == turns[0].prompt_ids
    assert tok.decode(flat(turns)) == tok.decode(chat_ids(tok, messages))

"""Template behaviour beyond the parity table: names and aliases, stop ids, the A8 mismatch warning, the D4/D5
sandbox, generic formats, template options, batch encoding, and conversation checks."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from lmforge.cli import main
from lmforge.templates import check_template_matches_tokenizer, get_template, template_names
from lmforge.utils.errors import ConfigError, DataError
from tests.fixtures.family_tokenizers import load_template_tokenizer, stop_token_ids
from tests.fixtures.tokenizers import load_fixture_tokenizer
from tests.unit.templates.conversations import conversation


@functools.cache
def real_tokenizer(name: str) -> Any:
    logging.getLogger("transformers").setLevel(logging.ERROR)
    return load_template_tokenizer(name)


def conv(user: str = "Hi", reply: str = "Hello!") -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]


def test_unknown_template_name_lists_valid_names():
    """A8: no fallback; the error names every valid template, with a hint."""
    with pytest.raises(ConfigError) as err:
        get_template("llama3.9", None)
    message = str(err.value)
    assert 'did you mean "llama3.' in message
    assert all(name in message for name in template_names())


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("qwen", "qwen2.5"),
        ("mistral", "mistral-v3"),
        ("gemma", "gemma3"),
        ("deepseek", "deepseek-v3"),
        ("phi", "phi3.5"),
    ],
)
def test_old_and_short_names_select_the_current_release(alias: str, name: str):
    assert get_template(alias, None).name == name


@pytest.mark.parametrize(
    ("real", "expected"),
    [
        ("glm4", ["<|endoftext|>", "<|user|>", "<|observation|>"]),
        ("llama3.1", ["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"]),
        ("qwen2.5", ["<|im_end|>", "<|endoftext|>"]),
    ],
)
def test_auto_stops_on_what_the_model_generation_config_stops_on(real: str, expected: list[str]):
    """Every id of generation_config.json's eos_token_id (GLM-4 ends a reply with the next role token)."""
    tok = real_tokenizer(real)
    stops = get_template("auto", tok).stop_token_ids(tok)
    assert set(tok.convert_ids_to_tokens(stops)) >= set(expected)
    assert set(stop_token_ids(real)) <= set(stops)


@pytest.mark.parametrize(
    ("named", "real"),
    [
        ("qwen2", "qwen2.5"),  # the old `qwen`: another default system prompt
        ("llama3", "llama3.1"),  # the old `llama3`: no knowledge-cutoff/date block
        ("mistral-v0.1", "mistral-v3"),  # [INST] spacing and where the system message goes
        ("phi3", "phi3.5-mini"),  # EOS at the end of a conversation
        ("deepseek-v3", "deepseek-llm"),  # User:/Assistant: vs special tokens
        ("chatml", "llama3.1"),
    ],
)
def test_mismatch_warning_names_the_first_differing_tokens(named: str, real: str):
    """A8 compares ids with the tokenizer's own apply_chat_template, with and without a system message."""
    tok = real_tokenizer(real)
    warning = check_template_matches_tokenizer(get_template(named, tok), tok)
    assert warning is not None and named in warning and "template: auto" in warning
    assert "First difference at token" in warning and "  tokenizer: [" in warning


@pytest.mark.parametrize("real", ["qwen2.5", "llama3.1", "mistral-v3", "gemma2", "glm4", "phi4", "deepseek-v3"])
def test_no_mismatch_warning_for_the_matching_named_template(real: str):
    tok = real_tokenizer(real)
    assert check_template_matches_tokenizer(get_template(real, tok), tok) is None


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
        get_template("auto", tok).encode(tok, conv())
    assert not marker.exists()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "longer than 1 s"),
        ("{% for i in range(100000) %}{{ 'x' * 50 }}{% endfor %}", "characters"),
    ],
    ids=["nested-loops", "huge-output"],
)
def test_runaway_template_rendering_is_bounded(body: str, reason: str):
    """D5: a rendering with nested range(10**5) loops or a huge output stops with an error within about 1 s."""
    tok = load_fixture_tokenizer("qwen")
    tok.chat_template = body + "{% for m in messages %}{{ m.content }}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(DataError, match=reason):  # getting the template renders its probes: it fails right there
        get_template("auto", tok)
    assert time.monotonic() - started < 1.5  # one rendering: its 1 s budget plus the check interval


def test_ordinary_ranges_still_render_with_length():
    tok = load_fixture_tokenizer("qwen")
    tok.chat_template = "{% for i in range(3) %}{{ i }}{% endfor %}{{ range(4)|length }}{{ messages[0].content }}"
    assert get_template("auto", tok).render(tok, [{"role": "user", "content": "hi"}]) == "0124hi"


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
def test_generic_formats_decode_to_their_documented_text(name, family):
    """The tokenizer's own BOS (only when its encoding adds one) and EOS; the reply and EOS are trained."""
    tok = load_fixture_tokenizer(family)
    template = get_template(name, tok)
    encoded = template.encode(tok, conv("What is 2+2?", "4"))
    bos = tok.bos_token if family == "llama3" else ""
    text = bos + GENERIC_FORMATS[name].format(u="What is 2+2?", a="4", eos=tok.eos_token)
    assert tok.decode(encoded.input_ids) == text
    start, end = encoded.replies[0]
    assert tok.decode(encoded.input_ids[start:end]).strip() == "4" + tok.eos_token
    assert template.encode_prompt(tok, conv("What is 2+2?")[:1]) == encoded.input_ids[:start]
    assert template.stop_token_ids(tok) == [tok.eos_token_id]


def test_qwen3_enable_thinking_option_closes_the_think_block_in_the_prompt():
    tok = real_tokenizer("qwen3")
    messages = conv()[:1]
    thinking = get_template("qwen3", tok).encode_prompt(tok, messages)
    direct = get_template("qwen3", tok, {"enable_thinking": False}).encode_prompt(tok, messages)
    assert tok.decode(thinking).endswith("<|im_start|>assistant\n")
    assert tok.decode(direct).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    expected = tok.apply_chat_template(
        messages, tokenize=True, return_dict=False, add_generation_prompt=True, enable_thinking=False
    )
    assert direct == expected


def test_llama31_date_string_option():
    tok = real_tokenizer("llama3.1")
    encoded = get_template("llama3.1", tok, {"date_string": "01 Jan 2030"}).encode(tok, conv())
    assert "Today Date: 01 Jan 2030" in tok.decode(encoded.input_ids)


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([{"role": "user", "content": "a"}], "must end with an assistant turn"),
        ([*conv(), {"role": "user", "content": "b"}], "must end with an assistant turn"),
        ([{"role": "bot", "content": "r"}], "messages[0]: role 'bot' is not one of"),
        ([{"role": "user", "content": 3}, *conv()[1:]], "messages[0]: content must be a string"),
        ([{"role": "user"}, *conv()[1:]], "messages[0]: content is missing"),
        ([], "empty conversation"),
    ],
)
def test_invalid_conversations_are_rejected(messages, expected):
    """A6: a short message naming the bad message."""
    tok = load_fixture_tokenizer("qwen")
    with pytest.raises(DataError) as err:
        get_template("chatml", tok).encode(tok, messages)
    assert expected in str(err.value)


def test_a_template_refusal_names_the_template_and_its_rule():
    tok = real_tokenizer("gemma2")
    with pytest.raises(DataError, match=r"template 'gemma2' refused the conversation: .*system role"):
        get_template("gemma2", tok).encode(tok, [{"role": "system", "content": "S"}, *conv()])


def test_a_reply_the_template_leaves_out_is_an_error_not_a_silent_drop():
    """phi4's template renders no tool calls: training such a reply would train nothing, silently."""
    tok = real_tokenizer("phi4")
    call = {"type": "function", "function": {"name": "get_x", "arguments": "{}"}}
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    with pytest.raises(DataError, match=r"messages\[1\]: the chat template does not render this assistant"):
        get_template("phi4", tok).encode(tok, messages)


@pytest.mark.parametrize("real", ["qwen2.5", "mistral-v0.1", "llama2"])
@settings(max_examples=6, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(conversation(max_turns=2), min_size=3, max_size=300))
def test_batch_encoding_equals_encoding_one_by_one(real: str, batch: list[list[dict]]):
    """encode_many tokenises on threads above 256 texts; ids and labels equal per-conversation encoding."""
    tok = real_tokenizer(real)
    template = get_template(real, tok)
    batch = [m for m in batch if m[0]["role"] != "system"] if real == "mistral-v0.1" else batch
    together = template.encode_many(tok, [(messages, None) for messages in batch])
    assert together == [template.encode(tok, messages) for messages in batch]


def test_templates_command_lists_names_aliases_and_models(capsys):
    assert main(["templates"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5" in out and "Qwen2.5" in out and "mistral-v3" in out and "auto" in out

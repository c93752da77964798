"""Training ids, labels and inference prompts against the real models' templates (issue 9).

Ground truth is `tokenizer.apply_chat_template` with the verbatim real template (tests/fixtures/real_templates)
and a tiny tokenizer that tokenises like the family's real one (tests/fixtures/family_tokenizers). Every real
template x conversation shape x {named template, auto}: ids equal, prompts equal, and labels train exactly each
reply with its stop token. Labels are checked by what they decode to, not by our own locator. The negative
control encodes the same renderings segment by segment (the old encoder) and must fail the same table.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytest

from lmforge.templates import ChatTemplate, Encoded, get_template
from lmforge.templates.locate import locate_replies
from lmforge.utils.errors import DataError
from tests.fixtures.family_tokenizers import REAL_TEMPLATES, SENTENCEPIECE_FAMILIES, load_template_tokenizer
from tests.unit.templates.cases import CASES, Case

IGNORE = -100
# real template name -> our named template
NAMED = {"mistral-v1-sys": "mistral-v1", "phi3-mini": "phi3", "phi3.5-mini": "phi3.5"}


@functools.cache
def tokenizer_for(real: str) -> Any:
    logging.getLogger("transformers").setLevel(logging.ERROR)
    return load_template_tokenizer(real)


@functools.cache
def template_for(real: str, mode: str) -> ChatTemplate:
    return get_template(NAMED.get(real, real) if mode == "named" else "auto", tokenizer_for(real))


def expected_ids(tokenizer: Any, messages: list[dict], tools: Any, prompt: bool = False) -> list[int] | None:
    """apply_chat_template's ids, or None when the real template refuses the conversation."""
    try:
        return tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=True, return_dict=False, add_generation_prompt=prompt
        )
    except Exception:
        return None


def reply_core(message: dict) -> str:
    """The text of a reply that any rendering of it must contain (think blocks may be dropped from history)."""
    content = message.get("content") or ""
    return content.split("</think>")[-1].strip()


def drops_a_reply(tokenizer: Any, case: Case) -> bool:
    """Whether the real template silently leaves out a reply (e.g. tool calls in a template without tools):
    such a conversation cannot be trained, and encoding it must say so."""
    text = tokenizer.apply_chat_template(case.messages, tools=case.tools, tokenize=False)
    for message in case.messages:
        if message["role"] != "assistant":
            continue
        names = [call["function"]["name"] for call in message.get("tool_calls") or []]
        if not any(part and part in text for part in [reply_core(message), *names]):
            return True
    return False


def check_labels(tokenizer: Any, template: ChatTemplate, encoded: Encoded, case: Case, real: str) -> None:
    ids, labels = encoded.input_ids, encoded.labels
    assert all(label in (IGNORE, token) for label, token in zip(labels, ids, strict=True))
    trained = [i for i, label in enumerate(labels) if label != IGNORE]
    assert trained == [i for start, end in encoded.replies for i in range(start, end)]
    messages = case.messages
    positions = [
        i for i, m in enumerate(messages) if m["role"] == "assistant" and (m.get("content") or m.get("tool_calls"))
    ]
    assert len(encoded.replies) == len(positions)
    stops = set(template.stop_token_ids(tokenizer))
    rendered = template.render(tokenizer, messages, case.tools)
    others = [m["content"].strip() for m in messages if m["role"] != "assistant" and m.get("content")]
    for (start, end), i in zip(encoded.replies, positions, strict=True):
        message, text = messages[i], tokenizer.decode(ids[start:end], skip_special_tokens=False)
        # GLM-4 ends a reply only by the next role token: a reply followed at once by another reply, or by an
        # OpenAI `tool` message (which its template writes as a <|tool|> role of no meaning to it), has no stop
        following = messages[i + 1]["role"] if i + 1 < len(messages) else None
        if not (following == "assistant" or (following == "tool" and real == "glm4")):
            assert ids[end - 1] in stops, f"{case.id}: reply {text!r} does not end with a stop token"
        if reply_core(message) in rendered:  # some templates drop the text of a reply with tool calls (Mistral)
            assert reply_core(message) in text, f"{case.id}: {reply_core(message)!r} not trained in {text!r}"
        leaked = [o for o in others if len(o) > 3 and o in text and o not in reply_core(message)]
        assert not leaked, f"{case.id}: prompt text {leaked} trained"


PARAMS = [
    pytest.param(real, mode, case, id=f"{real}-{mode}-{case.id}")
    for real in REAL_TEMPLATES
    for mode in ("named", "auto")
    for case in CASES
]


@pytest.mark.parametrize(("real", "mode", "case"), PARAMS)
def test_encoding_matches_apply_chat_template(real: str, mode: str, case: Case) -> None:
    tokenizer, template = tokenizer_for(real), template_for(real, mode)
    expected = expected_ids(tokenizer, case.messages, case.tools)
    if expected is None:
        with pytest.raises(DataError):
            template.encode(tokenizer, case.messages, case.tools)
    elif drops_a_reply(tokenizer, case):
        with pytest.raises(DataError, match="does not render this assistant message"):
            template.encode(tokenizer, case.messages, case.tools)
    else:
        encoded = template.encode(tokenizer, case.messages, case.tools)
        ids = encoded.input_ids[:-1] if encoded.appended_stop else encoded.input_ids
        assert ids == expected
        check_labels(tokenizer, template, encoded, case, real)
    prompt = expected_ids(tokenizer, case.prompt(), case.tools, prompt=True)
    if prompt is not None:
        assert template.encode_prompt(tokenizer, case.prompt(), case.tools) == prompt


@pytest.mark.parametrize("real", list(REAL_TEMPLATES))
def test_special_token_text_in_messages_stays_text_as_transformers_sanitizes_it(real: str) -> None:
    """QUALITY A16: a user typing an end-of-turn token cannot inject a turn; the ids equal transformers' own
    `sanitize_control_tokens=True` encoding, also for SentencePiece tokenizers."""
    tokenizer, template = tokenizer_for(real), template_for(real, "named")
    specials = sorted(t.content for t in tokenizer.added_tokens_decoder.values() if t.special)
    messages = [
        {"role": "user", "content": "say " + " ".join(specials[:3]) + " now"},
        {"role": "assistant", "content": f"ok {specials[-1]} done"},
    ]
    kwargs = {"tokenize": True, "return_dict": False, "sanitize_control_tokens": True}
    encoded = template.encode(tokenizer, messages)
    ids = encoded.input_ids[:-1] if encoded.appended_stop else encoded.input_ids
    assert ids == tokenizer.apply_chat_template(messages, **kwargs)
    prompt = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, **kwargs)
    assert template.encode_prompt(tokenizer, messages[:1]) == prompt
    assert ids != tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)  # negative control


@pytest.mark.parametrize("real", list(REAL_TEMPLATES))
def test_the_verbatim_shortcut_finds_what_the_sentinel_rendering_finds(real: str) -> None:
    """Replies found verbatim in the rendering skip the second rendering; the spans must be the same."""
    tokenizer, template = tokenizer_for(real), template_for(real, "named")
    facts = template._facts_for(tokenizer)
    compared = 0
    for case in CASES:
        try:
            text = template.render(tokenizer, case.messages, case.tools)
        except DataError:
            continue
        render = lambda messages, tools=case.tools: template.render(tokenizer, messages, tools)  # noqa: E731
        outcomes = []
        for shortcut in (True, False):
            try:
                outcomes.append(locate_replies(text, render, case.messages, facts.header, facts.stops, shortcut))
            except DataError as err:
                outcomes.append(str(err))
        assert outcomes[0] == outcomes[1], case.id
        compared += 1
    assert compared >= 5


def test_only_formats_without_an_end_of_reply_token_get_one_appended() -> None:
    appended = {
        real
        for real in REAL_TEMPLATES
        if template_for(real, "named").encode(tokenizer_for(real), CASES[0].messages).appended_stop
    }
    assert appended == {"glm4"}


def segmentwise_ids(tokenizer: Any, template: ChatTemplate, case: Case) -> list[int]:
    """The old encoder: the rendering tokenised in pieces cut where a reply's text starts, and where rendering
    prefixes (`messages[:k]` with the generation prompt, `messages[:k+1]`) end."""
    text = template.render(tokenizer, case.messages, case.tools)
    cuts = {len(text)}
    pos = 0
    for k, message in enumerate(case.messages):
        if message["role"] == "assistant":
            start = text.find(reply_core(message), pos) if reply_core(message) else -1
            if start >= 0:  # the old encoder's response segment began with the reply text
                cuts.add(start)
                pos = start
            for prefix in (
                template.render(tokenizer, case.messages[:k], case.tools, add_generation_prompt=True),
                template.render(tokenizer, case.messages[: k + 1], case.tools),
            ):
                cuts |= {len(prefix)} if text.startswith(prefix) else set()
    pieces, pos = [], 0
    for cut in sorted(cuts):
        pieces.append(text[pos:cut])
        pos = cut
    return [i for piece in pieces if piece for i in tokenizer(piece, add_special_tokens=False)["input_ids"]]


@pytest.mark.parametrize("real", ["llama2", "mistral-v0.1", "mistral-v3", "phi3-mini", "qwen2.5"])
def test_negative_control_segmentwise_encoding_fails_the_table(real: str) -> None:
    tokenizer, template = tokenizer_for(real), template_for(real, "named")
    failures = []
    for case in CASES:
        expected = expected_ids(tokenizer, case.messages, case.tools)
        if expected is None or case.messages[0]["role"] == "assistant":
            continue
        if segmentwise_ids(tokenizer, template, case) != expected:
            failures.append(case.id)
    assert failures, f"split encoding matched every case of {real}: the table could not catch it"
    if REAL_TEMPLATES[real][1] in SENTENCEPIECE_FAMILIES and real != "phi3-mini":
        assert len(failures) >= 5

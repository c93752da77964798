"""Hypothesis strategies for conversations, and the reference mask built only from `apply_chat_template`."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Letters, digits, punctuation, whitespace and non-ASCII; no special-token text (that is A16's own test).
_ALPHABET = "abcdefgXYZ 0129.,!?:;'\"{}()[]<>|/\\-_\n\té中—ü"
_START = "abcXYZ019.!({é中"

text = st.text(alphabet=_ALPHABET, max_size=24)
# Replies start with a non-space: a reply opening with a newline right after a header that ends with one is the
# documented case where per-segment tokenization differs from whole-text tokenization (see test_templates).
reply = st.builds(lambda head, tail: head + tail, st.sampled_from(_START), text)


@st.composite
def conversation(draw: Any, min_turns: int = 1, max_turns: int = 6, tools: bool = False) -> list[dict]:
    """An optional system message, then user/assistant exchanges; with `tools`, some replies call tools."""
    messages: list[dict] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(text)})
    for _ in range(draw(st.integers(min_turns, max_turns))):
        messages.append({"role": "user", "content": draw(text)})
        if tools and draw(st.booleans()):
            calls = [
                {
                    "type": "function",
                    "function": {"name": draw(st.sampled_from(["f", "get_x"])), "arguments": {"q": n}},
                }
                for n in range(draw(st.integers(1, 2)))
            ]
            messages.append(
                {"role": "assistant", "content": draw(st.sampled_from(["", "Let me look."])), "tool_calls": calls}
            )
            messages += [{"role": "tool", "content": draw(text)} for _ in calls]
        messages.append({"role": "assistant", "content": draw(reply)})
    return messages


def chat_ids(tokenizer: Any, messages: list[dict], jinja: str | None = None, **kwargs: Any) -> list[int]:
    """The tokenizer's own ids (transformers 5 returns a BatchEncoding unless return_dict=False)."""
    return tokenizer.apply_chat_template(messages, chat_template=jinja, tokenize=True, return_dict=False, **kwargs)


def reference_mask(tokenizer: Any, messages: list[dict], jinja: str | None = None) -> list[int] | None:
    """1 for trained positions: each reply spans render(m[:k], generation prompt) .. render(m[:k+1]).

    None when the template is not prefix-stable (a prefix rendering is not a prefix of the full ids).
    """
    full = chat_ids(tokenizer, messages, jinja)
    mask = [0] * len(full)
    for k, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        head = chat_ids(tokenizer, messages[:k], jinja, add_generation_prompt=True)
        upto = chat_ids(tokenizer, messages[: k + 1], jinja)
        if full[: len(upto)] != upto or upto[: len(head)] != head:
            return None
        start = len(head)
        mask[start : len(upto)] = [1] * (len(upto) - start)
    return mask

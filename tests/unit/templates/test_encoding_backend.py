"""The fast backend path encodes exactly like transformers' `split_special_tokens=True` and leaves no state;
the threaded batch path gives each conversation the same ids as encoding it alone."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lmforge.templates.encoding import encode_texts

from lmforge.templates import encoding, get_template
from tests.fixtures.tokenizers import FAMILIES, FAMILY_TEMPLATE, load_fixture_tokenizer
from tests.unit.templates.conversations import conversation


def test_backend_encoding_equals_split_special_tokens_and_restores_the_flag() -> None:
    tokenizer = load_fixture_tokenizer("qwen")
    texts = ["hello <|im_end|> world", "plain text", "<|im_start|>user"]
    expected = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert encode_texts(tokenizer, texts) == expected
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert end_id not in encode_texts(tokenizer, texts)[0]
    # a later ordinary encode still maps the special text to its id
    assert tokenizer("<|im_end|>", add_special_tokens=False)["input_ids"] == [end_id]


# special-token text appended to contents: the batch must keep it as text exactly like the per-conversation path
_CONTROL = st.sampled_from(["", "", "<|im_end|>", "<|im_start|>assistant\n", "<|eot_id|>", "</s>", "<end_of_turn>"])


@st.composite
def conversation_with_control_text(draw: Any) -> list[dict]:
    return [{**m, "content": m["content"] + draw(_CONTROL)} for m in draw(conversation(max_turns=3))]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("auto", [False, True], ids=["format", "jinja"])
@settings(max_examples=8, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(conversation_with_control_text(), min_size=20, max_size=40))
def test_batch_encoding_equals_per_conversation_encoding(family: str, auto: bool, batch: list[list[dict]]) -> None:
    tokenizer = load_fixture_tokenizer(family)
    template = get_template("auto" if auto else FAMILY_TEMPLATE[family], tokenizer)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encoding, "_MIN_PARALLEL_TEXTS", 2)  # take the threaded path even for small batches
        patch.setattr(encoding.os, "cpu_count", lambda: 2)
        many = template.encode_turns_many(tokenizer, [(messages, None) for messages in batch])
    expected = [template.encode_turns(tokenizer, messages) for messages in batch]
    assert many == expected
    # negative control: the comparison sees which conversation each result belongs to
    if len({str(m) for m in batch}) > 1:
        assert many[::-1] != expected

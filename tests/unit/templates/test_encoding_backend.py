"""The fast backend path encodes exactly like transformers' `split_special_tokens=True` and leaves no state."""

from __future__ import annotations

from lmforge.templates.encoding import encode_texts
from tests.fixtures.tokenizers import load_fixture_tokenizer


def test_backend_encoding_equals_split_special_tokens_and_restores_the_flag() -> None:
    tokenizer = load_fixture_tokenizer("qwen")
    texts = ["hello <|im_end|> world", "plain text", "<|im_start|>user"]
    expected = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert encode_texts(tokenizer, texts) == expected
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert end_id not in encode_texts(tokenizer, texts)[0]
    # a later ordinary encode still maps the special text to its id
    assert tokenizer("<|im_end|>", add_special_tokens=False)["input_ids"] == [end_id]

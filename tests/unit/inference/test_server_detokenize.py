"""Streaming detokenization: pieces add up to the full decode, stop strings cut across token boundaries."""

from __future__ import annotations

import random

import pytest

from lmforge.inference.detokenize import TextAssembler
from tests.fixtures.tokenizers import load_fixture_tokenizer


def _feed(assembler: TextAssembler, ids: list[int]) -> list[str]:
    pieces = []
    for token in ids:
        pieces.append(assembler.add(token))
        if assembler.stopped:
            break
    return [*pieces, assembler.finish()]


@pytest.mark.parametrize("text", ["The cat sat on the mat.", "café, naïve — 你好 🙂 done", "  spaces\n\nnewlines\t"])
def test_pieces_join_to_the_full_decode(text: str) -> None:
    tokenizer = load_fixture_tokenizer("qwen")
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = _feed(TextAssembler(tokenizer, []), ids)
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
    assert sum(bool(p) for p in pieces) > 1  # it really streams


def test_stop_string_across_tokens_cuts_and_never_leaks() -> None:
    tokenizer = load_fixture_tokenizer("qwen")
    ids = tokenizer.encode("The cat sat on the mat today.", add_special_tokens=False)
    assembler = TextAssembler(tokenizer, ["never", "on the m"])
    pieces = _feed(assembler, ids)
    assert assembler.stopped and "".join(pieces) == "The cat sat "
    assert all("on" not in p for p in pieces)  # held back while it could still become the stop string


def test_finish_flushes_an_incomplete_character() -> None:
    tokenizer = load_fixture_tokenizer("qwen")
    ids = tokenizer.encode("ok 🙂", add_special_tokens=False)
    partial = ids[:-1]  # the emoji's last byte token is missing
    assert tokenizer.decode(partial).endswith("\ufffd")
    assembler = TextAssembler(tokenizer, [])
    assert "".join(_feed(assembler, partial)) == tokenizer.decode(partial, skip_special_tokens=True)


def test_pieces_join_to_the_full_decode_for_any_ids_even_invalid_utf8() -> None:
    """What a model may emit: byte tokens that split characters, or bytes that never form one (a random model's
    U+FFFD). Streamed pieces must hold a split character back and show exactly what the full decode shows."""
    tokenizer = load_fixture_tokenizer("qwen")
    byte_tokens = [i for i in range(len(tokenizer)) if "\ufffd" in tokenizer.decode([i])]
    rng = random.Random(0)
    naive_differs = 0
    for _ in range(300):
        ids = [rng.choice(byte_tokens) if rng.random() < 0.5 else rng.randrange(len(tokenizer)) for _ in range(10)]
        full = tokenizer.decode(ids, skip_special_tokens=True)
        assert "".join(_feed(TextAssembler(tokenizer, []), ids)) == full, ids
        naive_differs += "".join(tokenizer.decode([i], skip_special_tokens=True) for i in ids) != full
    assert naive_differs > 0  # negative control: token-by-token decoding would show broken characters here

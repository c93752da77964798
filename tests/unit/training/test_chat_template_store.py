"""The named training template is stored in a tokenizer that has none (so chat/serving prompt identically)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from lmforge.templates import get_template
from lmforge.training.run import store_chat_template
from tests.fixtures.tokenizers import load_fixture_tokenizer


class FakeTemplate:
    def jinja(self) -> str:
        return "{{ messages }}"


def test_template_stored_when_tokenizer_has_none():
    tokenizer = SimpleNamespace(chat_template=None)
    store_chat_template(tokenizer, FakeTemplate(), "chatml")
    assert tokenizer.chat_template == "{{ messages }}"


def test_auto_template_leaves_tokenizer_alone():
    empty = SimpleNamespace(chat_template=None)
    store_chat_template(empty, FakeTemplate(), "auto")
    assert empty.chat_template is None


def test_tokenizer_template_kept_and_mismatch_warned(caplog):
    tokenizer = load_fixture_tokenizer("llama3")
    own = tokenizer.chat_template
    with caplog.at_level(logging.WARNING, logger="lmforge"):
        store_chat_template(tokenizer, get_template("llama3", tokenizer), "llama3")
        assert not caplog.records  # same rendering: no warning
        store_chat_template(tokenizer, get_template("chatml", tokenizer), "chatml")
    assert tokenizer.chat_template == own
    assert len(caplog.records) == 1 and "First difference at token" in caplog.records[0].getMessage()

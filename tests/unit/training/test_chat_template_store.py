"""The named training template is stored in a tokenizer that has none (so chat/serving prompt identically)."""

from __future__ import annotations

from types import SimpleNamespace

from lmforge.stages.common import store_chat_template


class FakeTemplate:
    def jinja(self) -> str:
        return "{{ messages }}"


def test_template_stored_when_tokenizer_has_none():
    tokenizer = SimpleNamespace(chat_template=None)
    store_chat_template(tokenizer, FakeTemplate(), "chatml")
    assert tokenizer.chat_template == "{{ messages }}"


def test_existing_or_auto_template_is_kept():
    tokenizer = SimpleNamespace(chat_template="own")
    store_chat_template(tokenizer, FakeTemplate(), "chatml")
    assert tokenizer.chat_template == "own"
    empty = SimpleNamespace(chat_template=None)
    store_chat_template(empty, FakeTemplate(), "auto")
    assert empty.chat_template is None

"""Reading model replies: numbered lists, words, leading characters. Shared by the three methods."""

from __future__ import annotations

import re
import unicodedata

from lmforge.generate.dedup import tokenize_for_rouge

_ITEM = re.compile(r"^\s*(\d+)\s*[.)、:]\s*(.*)$")


def numbered_items(text: str) -> list[str]:
    """The items of a numbered list ("1. ...", "2) ...", "3、..."), continuation lines joined, whitespace collapsed.
    Text before the first number is ignored; a reply with no number at all gives no items."""
    items: list[list[str]] = []
    for line in text.splitlines():
        match = _ITEM.match(line)
        if match:
            items.append([match.group(2)])
        elif items and line.strip():
            items[-1].append(line.strip())
    return [" ".join(" ".join(parts).split()) for parts in items if " ".join(parts).strip()]


def word_count(text: str) -> int:
    """Words as the ROUGE-L filter sees them (CJK text segmented), so length limits work across languages."""
    return len(tokenize_for_rouge(text))


def starts_with_text(text: str) -> bool:
    """False when the first character is punctuation, a symbol or a control/format character (a broken item)."""
    return bool(text) and unicodedata.category(text[0])[0] in "LN"


def contains_phrase(text: str, phrases: list[str]) -> str | None:
    """The first phrase occurring in `text` as whole words (case-insensitive; CJK phrases as substrings)."""
    lowered = text.lower()
    for phrase in phrases:
        p = phrase.lower()
        if p.isascii():
            if re.search(rf"(?<!\w){re.escape(p)}(?!\w)", lowered):
                return phrase
        elif p in lowered:
            return phrase
    return None

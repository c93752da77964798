"""Built-in rule rewards for `rl.reward_funcs`, e.g. ``lmforge.rl.builtin:exact_match``."""

from __future__ import annotations

import re
import unicodedata

from lmforge.utils.errors import ConfigError


def _normalise(text: str) -> str:
    """Case-, whitespace- and trailing-punctuation-insensitive form of a short answer."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    return re.sub(r"\s+", " ", text).rstrip(".!。")


def exact_match(completions: list[str], references: list[str | None], normalize: bool = True) -> list[float]:
    """1.0 when the completion equals the row's reference answer (normalised by default), else 0.0."""
    missing = sum(ref is None for ref in references)
    if missing:
        raise ConfigError(
            f"lmforge.rl.builtin:exact_match needs a reference answer for every prompt; {missing} rows have none "
            f"(alpaca: the 'output' column; sharegpt/openai: a final assistant turn; prompt format: 'reference')"
        )
    prep = _normalise if normalize else (lambda s: s)
    return [float(prep(c) == prep(r or "")) for c, r in zip(completions, references, strict=True)]


def regex_match(completions: list[str], pattern: str, full: bool = False) -> list[float]:
    """1.0 when the completion matches `pattern` (anywhere, or the whole text with full: true), else 0.0."""
    try:
        compiled = re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise ConfigError(f"lmforge.rl.builtin:regex_match: invalid pattern {pattern!r}: {exc}") from None
    match = compiled.fullmatch if full else compiled.search
    return [float(match(c.strip() if full else c) is not None) for c in completions]


def length(completion_ids: list[list[int]], target: int) -> list[float]:
    """1 - |tokens - target| / target, floored at 0: 1.0 for completions of exactly `target` tokens."""
    if target <= 0:
        raise ConfigError(f"lmforge.rl.builtin:length: target must be a positive token count, got {target}")
    return [max(0.0, 1.0 - abs(len(ids) - target) / target) for ids in completion_ids]


def ended_turn(ended: list[bool]) -> list[float]:
    """1.0 when the completion closed its turn (emitted the template's end-of-turn token) before the limit."""
    return [float(e) for e in ended]

"""Rule-based rewards the RL integration tests train against (named in run configs as module:function)."""

from __future__ import annotations

import string

LOWER = set(string.ascii_lowercase)


def lowercase_fraction(completions: list[str]) -> list[float]:
    """Share of the completion's characters that are ASCII lowercase letters (0 for an empty completion)."""
    return [sum(ch in LOWER for ch in text) / len(text) if text else 0.0 for text in completions]


def needs_two_args(completions: list[str], threshold: float) -> list[float]:
    """A callable with a required parameter the config does not give (for the signature error test)."""
    return [float(len(c) > threshold) for c in completions]


def digit_fraction(completions: list[str]) -> list[float]:
    """Share of the completion's characters that are ASCII digits (0 for an empty completion)."""
    return [sum(ch.isdigit() and ch.isascii() for ch in text) / len(text) if text else 0.0 for text in completions]


def zero(completions: list[str]) -> list[float]:
    """What scoring every judge failure as 0 would add (the negative control of the exclusion test)."""
    return [0.0] * len(completions)

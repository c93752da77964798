"""The SQL inside a model's answer: a fenced code block, or the query with prose around it cut away."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|$)", re.DOTALL)
_START = re.compile(r"\b(SELECT|WITH)\b", re.IGNORECASE)


def one_line(sql: str) -> str:
    """Whitespace runs to single spaces, no trailing semicolon: Spider's one-query-per-line form."""
    return re.sub(r"\s+", " ", sql).strip().rstrip(";").strip()


def extract_sql(answer: str) -> str:
    """The first ```sql block (else the first fenced block); else from the first SELECT/WITH to the first `;` or
    blank line; else the whole answer. Always one line."""
    blocks = _FENCE.findall(answer)
    if blocks:
        tagged = [body for tag, body in blocks if tag.lower() in ("sql", "sqlite")]
        answer = (tagged or [blocks[0][1]])[0]
    start = _START.search(answer)
    if start:
        rest = answer[start.start() :]
        end = min((i for i in (rest.find(";"), rest.find("\n\n")) if i >= 0), default=len(rest))
        answer = rest[:end]
    return one_line(answer)

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


def sql_execution_match(
    completions: list[str],
    references: list[str | None],
    messages: list[list[dict]],
    db_dir: str,
    timeout_s: float = 5.0,
) -> list[float | None]:
    """1.0 when the SQL in the completion returns the gold query's result on every SQLite file of the prompt's
    database (`text2sql eval`'s EX rules), else 0.0. Prompts come from `lmforge text2sql prepare` (they name
    their database); the reference is the gold SQL. A gold query that does not run scores None (excluded)."""
    from lmforge.text2sql.evaluate import ExecSettings, execution_outcome
    from lmforge.text2sql.extract import extract_sql
    from lmforge.text2sql.spider_tables import database_files
    from lmforge.text2sql.sql_prompts import prompt_db_id

    settings = ExecSettings(timeout_s=timeout_s)
    scores: list[float | None] = []
    for completion, gold, conversation in zip(completions, references, messages, strict=True):
        db_id = prompt_db_id(conversation)
        if gold is None or db_id is None:
            raise ConfigError(
                "lmforge.rl.builtin:sql_execution_match needs prompts written by `lmforge text2sql prepare` (they "
                "start with 'Database DB_ID schema:') and the gold SQL as the reference answer"
            )
        files = [str(f) for f in database_files(db_dir, db_id)]
        if not files:
            raise ConfigError(f"lmforge.rl.builtin:sql_execution_match: no SQLite file under {db_dir}/{db_id}/")
        outcome, _ = execution_outcome(gold, extract_sql(completion), files, settings)
        scores.append(None if outcome == "gold_error" else float(outcome == "correct"))
    return scores

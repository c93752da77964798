"""Fit a prompt into `cutoff_len` tokens by leaving out whole tables, and count what was left out.

Tables the gold query does not use go first (when a gold query is known), then tables from the end; a prompt
that does not fit with one table left is reported as dropped. Nothing is cut silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from lmforge.text2sql.serialize import TableBlock


@dataclass(frozen=True)
class Fitted:
    blocks: list[TableBlock] | None  # None: does not fit even with a single table
    dropped_tables: int = 0
    dropped_columns: int = 0


def tables_used(sql: str) -> set[str]:
    """Lower-case table names a query reads (empty when it does not parse)."""
    try:
        return {t.name.lower() for tree in sqlglot.parse(sql, read="sqlite") if tree for t in tree.find_all(exp.Table)}
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return set()


def fit_blocks(
    blocks: list[TableBlock], length: Callable[[list[TableBlock]], int], cutoff_len: int | None, gold_sql: str = ""
) -> Fitted:
    """The largest prefix-preserving subset of `blocks` whose prompt `length` is <= cutoff_len."""
    if cutoff_len is None or length(blocks) <= cutoff_len:
        return Fitted(blocks)
    used = tables_used(gold_sql)
    order = sorted(range(len(blocks)), key=lambda i: (blocks[i].table.lower() in used, -i))  # first = drop first
    kept = list(range(len(blocks)))
    for i in order[:-1]:  # a prompt keeps at least one table
        kept.remove(i)
        candidate = [blocks[k] for k in kept]
        if length(candidate) <= cutoff_len:
            dropped = [b for k, b in enumerate(blocks) if k not in kept]
            return Fitted(candidate, len(dropped), sum(b.columns for b in dropped))
    return Fitted(None, len(blocks), sum(b.columns for b in blocks))

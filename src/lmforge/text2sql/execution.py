"""Run one SQL query on a SQLite file so that nothing it does can hang, change or exhaust the caller.

The file is opened read-only through a `file:...?mode=ro` URI with `query_only` on, and an authorizer refuses
ATTACH and PRAGMA, so a query can neither write nor reach another file. A progress handler aborts the query at
its deadline (SQLite checks it every few thousand VM steps, so even `WITH RECURSIVE` loops stop); rows are
fetched up to a cap, and SQLite's heap is capped in worker processes (`limit_worker_memory`), so a huge result
or sort fails cleanly instead of swapping the machine. Evaluation runs these calls in a process pool, so a slow
query occupies one worker while the others go on.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

from lmforge.text2sql.spider_sql import fix_spaced_operators

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_ROWS = 100_000
WORKER_HEAP_BYTES = 1 << 30  # 1 GiB of SQLite memory per worker process
_PROGRESS_STEPS = 1000
_DENIED = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA}


@dataclass(frozen=True)
class QueryResult:
    status: str  # "ok", "error", "timeout" or "row_cap"
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def limit_worker_memory(heap_bytes: int = WORKER_HEAP_BYTES) -> None:
    """Process pool initializer: cap SQLite's heap in this (worker) process."""
    connection = sqlite3.connect(":memory:")
    connection.execute(f"PRAGMA hard_heap_limit = {int(heap_bytes)}")
    connection.close()


def _authorize(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_DENY if action in _DENIED else sqlite3.SQLITE_OK


def run_query(
    db_path: str | Path, sql: str, timeout_s: float = DEFAULT_TIMEOUT_S, max_rows: int = DEFAULT_MAX_ROWS
) -> QueryResult:
    """Rows of `sql` on the database, or why there are none; never raises for anything the query does."""
    try:
        connection = sqlite3.connect(f"{Path(db_path).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        return QueryResult("error", message=f"cannot open {db_path}: {exc}")
    deadline = time.monotonic() + timeout_s
    try:
        connection.text_factory = lambda b: b.decode(errors="replace")
        connection.execute("PRAGMA query_only = 1")
        connection.set_authorizer(_authorize)
        connection.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
        cursor = connection.execute(fix_spaced_operators(sql))
        rows = cursor.fetchmany(max_rows + 1)
        if len(rows) > max_rows:
            return QueryResult("row_cap", message=f"more than {max_rows} rows")
        return QueryResult("ok", rows)
    except sqlite3.OperationalError as exc:
        if time.monotonic() > deadline:
            return QueryResult("timeout", message=f"no result within {timeout_s:g} s")
        return QueryResult("error", message=str(exc))
    except (sqlite3.Error, ValueError, OverflowError, MemoryError) as exc:  # ValueError: e.g. embedded NUL
        return QueryResult("error", message=f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


def strip_distinct(sql: str) -> str:
    """The query with every DISTINCT keyword removed, as the test-suite evaluation does before executing."""
    try:
        tokens = SQLite().tokenize(sql)
    except TokenError:
        return sql
    out, last = [], 0
    for token in tokens:
        if token.token_type == TokenType.DISTINCT:
            out.append(sql[last : token.start])
            last = token.end + 1
    return "".join(out) + sql[last:]


_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


def orders_rows(gold_sql: str) -> bool:
    """Row order counts when the gold query contains ORDER BY (the test-suite rule)."""
    return bool(_ORDER_BY.search(gold_sql))

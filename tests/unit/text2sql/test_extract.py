"""SQL out of model answers: fenced blocks, prose around the query, one line per query."""

from __future__ import annotations

import pytest

from lmforge.text2sql.extract import extract_sql


@pytest.mark.parametrize(
    ("answer", "sql"),
    [
        ("SELECT name FROM singer;", "SELECT name FROM singer"),
        ("Here it is:\n```sql\nSELECT name\nFROM singer\n```\nIt lists names.", "SELECT name FROM singer"),
        ("```\nSELECT 1\n```", "SELECT 1"),
        ("```python\nprint(1)\n```\n```sql\nSELECT 2\n```", "SELECT 2"),
        ("Sure! select count(*) from singer; Hope that helps.", "select count(*) from singer"),
        ("The query:\nSELECT name FROM singer\n\nThis selects every name.", "SELECT name FROM singer"),
        ("WITH t AS (SELECT 1) SELECT * FROM t", "WITH t AS (SELECT 1) SELECT * FROM t"),
        ("```sql\nSELECT a FROM t", "SELECT a FROM t"),  # unterminated fence (answer cut by max_new_tokens)
        ("I cannot answer that.", "I cannot answer that."),
    ],
)
def test_extract_sql(answer: str, sql: str) -> None:
    assert extract_sql(answer) == sql

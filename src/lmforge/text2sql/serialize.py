"""Schema text for prompts: `nl` (DB-GPT-Hub's sentences) or `ddl` (CREATE TABLE), optionally with sample rows.

A schema is a list of per-table blocks, so a prompt that is too long can drop whole tables (and say how many
tables and columns it dropped) instead of being cut mid-word by the tokenizer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.text2sql.execution import run_query
from lmforge.text2sql.spider_tables import DbSchema

SCHEMA_FORMATS = ("nl", "ddl")
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class TableBlock:
    table: str
    text: str
    columns: int


def _quote(name: str) -> str:
    return name if _PLAIN.match(name) else '"' + name.replace('"', '""') + '"'


def _value(v: Any) -> str:
    text = str(v) if v is not None else "NULL"
    return text if len(text) <= 40 else text[:37] + "..."


def sample_rows(db_file: Path | None, table: str, n: int) -> list[tuple[Any, ...]]:
    """Up to n rows of `table`, read through the sandboxed, read-only runner."""
    if not db_file or n <= 0:
        return []
    result = run_query(db_file, f"SELECT * FROM {_quote(table)} LIMIT {int(n)}", timeout_s=5.0, max_rows=n)
    return result.rows if result.ok else []


def _nl_block(schema: DbSchema, k: int, rows: list[tuple[Any, ...]]) -> str:
    cols = schema.table_columns(k)
    name = schema.tables[k]
    text = f"Table {name} has columns such as {', '.join(schema.columns[i].name for i in cols)}."
    for key in schema.primary_keys:
        if all(schema.columns[i].table == k for i in key):
            names = [schema.columns[i].name for i in key]
            text += (
                f" {names[0]} is the primary key."
                if len(names) == 1
                else (f" The combination of ({', '.join(names)}) are the primary key.")
            )
    for a, b in schema.foreign_keys:
        if schema.columns[a].table == k:
            ref, target = schema.columns[b], schema.tables[schema.columns[b].table]
            text += f" The {schema.columns[a].name} of {name} is the foreign key of {ref.name} of {target}."
    if rows:
        shown = "; ".join("(" + ", ".join(map(_value, r)) + ")" for r in rows)
        text += f" Sample rows of {name}: {shown}."
    return text


def _ddl_block(schema: DbSchema, k: int, rows: list[tuple[Any, ...]]) -> str:
    cols = schema.table_columns(k)
    lines = [f"  {_quote(schema.columns[i].name)} {schema.columns[i].type.upper()}" for i in cols]
    for key in schema.primary_keys:
        if all(schema.columns[i].table == k for i in key):
            lines.append(f"  PRIMARY KEY ({', '.join(_quote(schema.columns[i].name) for i in key)})")
    for a, b in schema.foreign_keys:
        if schema.columns[a].table == k:
            ref = schema.columns[b]
            lines.append(
                f"  FOREIGN KEY ({_quote(schema.columns[a].name)}) REFERENCES "
                f"{_quote(schema.tables[ref.table])}({_quote(ref.name)})"
            )
    text = f"CREATE TABLE {_quote(schema.tables[k])} (\n" + ",\n".join(lines) + "\n);"
    if rows:
        text += "\n/* sample rows:\n" + "\n".join(" | ".join(map(_value, r)) for r in rows) + "\n*/"
    return text


def table_blocks(schema: DbSchema, fmt: str, db_file: Path | None = None, rows: int = 0) -> list[TableBlock]:
    block = _nl_block if fmt == "nl" else _ddl_block
    return [
        TableBlock(name, block(schema, k, sample_rows(db_file, name, rows)), len(schema.table_columns(k)))
        for k, name in enumerate(schema.tables)
    ]


def schema_text(schema: DbSchema, fmt: str, blocks: list[TableBlock]) -> str:
    if fmt == "nl":
        head = f"{schema.db_id} contains tables such as {', '.join(b.table for b in blocks)}."
        return "\n".join([head, *(b.text for b in blocks)])
    return "\n\n".join(b.text for b in blocks)

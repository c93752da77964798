"""`lmforge text2sql synth-db`: SQLite test databases built from tables.json alone, so EX can be measured on
schemas whose original database is not available.

Each database gets random rows that respect column types, unique single-column primary keys and foreign keys
(a child value is always one of the parent column's values, so joins match), and that contain the literals the
gold queries compare each column with (so WHERE clauses select something). Several databases per db_id with
different seeds and sizes are written side by side, and `text2sql eval` requires a prediction to match on all
of them (test-suite style). Values repeat on purpose (GROUP BY and COUNT see groups), and a few NULLs appear.
"""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from lmforge.text2sql.examples import Example
from lmforge.text2sql.execution import run_query
from lmforge.text2sql.spider_tables import DbSchema

_SQL_TYPES = {"number": "NUMERIC", "text": "TEXT", "time": "TEXT", "boolean": "INTEGER"}
_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "north", "south", "red", "blue", "green", "oak", "elm")


@dataclass
class SynthReport:
    databases: int = 0
    gold_checked: int = 0
    gold_failures: list[str] = field(default_factory=list)
    empty_results: int = 0  # gold queries whose result is empty on every database (weak tests)


def gold_literals(queries: list[str], schema: DbSchema) -> dict[tuple[str, str], set[Any]]:
    """(table, column) lower-case -> literals the queries compare that column with (LIKE patterns unwrapped)."""
    tables = schema.lower_map()
    found: dict[tuple[str, str], set[Any]] = defaultdict(set)
    for sql in queries:
        try:
            trees = [t for t in sqlglot.parse(sql, read="sqlite") if t is not None]
        except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
            continue
        for tree in trees:
            aliases = {t.alias_or_name.lower(): t.name.lower() for t in tree.find_all(exp.Table)}
            for node in tree.find_all(exp.Binary, exp.Between, exp.In):
                columns = [c for c in (node.this, node.args.get("expression")) if isinstance(c, exp.Column)]
                values: list[Any] = [
                    v for v in node.find_all(exp.Literal) if v.parent is node or isinstance(v.parent, exp.Paren)
                ]
                values += [*list(node.args.get("expressions") or []), node.args.get("low"), node.args.get("high")]
                literals = [_literal(v, isinstance(node, exp.Like)) for v in values if isinstance(v, exp.Literal)]
                literals += [c.name for c in columns if c.this.args.get("quoted") and not c.table]
                for column in columns:
                    name = column.name.lower()
                    owners = [aliases.get(column.table.lower())] if column.table else list(tables)
                    for table in owners:
                        if table in tables and name in tables[table]:
                            found[(table, name)].update(v for v in literals if v is not None and v != column.name)
    return found


def _literal(node: exp.Literal, like: bool) -> Any:
    if not node.is_string:
        value = float(node.this)
        return int(value) if value.is_integer() else value
    text = node.this
    return text.replace("%", "x").replace("_", "y") if like else text


def _column_values(kind: str, name: str, n: int, literals: list[Any], unique: bool, rng: random.Random) -> list[Any]:
    if kind == "number":
        pool = literals + [rng.randint(0, 100) for _ in range(max(3, n // 3))]
        pool += [v + d for v in literals if isinstance(v, (int, float)) for d in (-1, 1)]
    elif kind == "time":
        pool = literals + [
            f"20{rng.randint(0, 23):02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" for _ in range(4)
        ]
    elif kind == "boolean":
        pool = [*literals, "T", "F"]
    else:
        pool = literals + [f"{rng.choice(_WORDS)} {name.lower()} {k}" for k in range(max(3, n // 3))]
    if unique:
        base = literals + [i + 1 if kind == "number" else f"{name.lower()} {i + 1}" for i in range(n)]
        return list(dict.fromkeys(base))[:n]
    values = [rng.choice(pool) for _ in range(n)]
    values[: len(literals)] = literals[:n]  # every literal appears at least once
    rng.shuffle(values)
    return [None if rng.random() < 0.04 else v for v in values]


def build_database(
    path: Path, schema: DbSchema, literals: dict[tuple[str, str], set[Any]], rows: int, seed: int
) -> None:
    rng = random.Random(seed)
    single_keys = {k[0] for k in schema.primary_keys if len(k) == 1}
    counts = {t: max(2, rows + rng.randint(-rows // 3, rows // 3)) for t in range(len(schema.tables))}
    values: dict[int, list[Any]] = {}
    for i, col in enumerate(schema.columns):
        if col.table < 0:
            continue
        lits = sorted(literals.get((schema.tables[col.table].lower(), col.name.lower()), ()), key=str)
        values[i] = _column_values(col.type, col.name, counts[col.table], lits, i in single_keys, rng)
    for child, parent in schema.foreign_keys:  # children take parent values so joins find partners
        parents = [v for v in values.get(parent, []) if v is not None] or [1]
        n = counts[schema.columns[child].table]
        if child in single_keys and len(parents) >= n:
            values[child] = rng.sample(parents, n)
        else:
            values[child] = [rng.choice(parents) for _ in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    try:
        for t, table in enumerate(schema.tables):
            cols = schema.table_columns(t)
            ddl = ", ".join(f'"{schema.columns[i].name}" {_SQL_TYPES.get(schema.columns[i].type, "")}' for i in cols)
            connection.execute(f'CREATE TABLE "{table}" ({ddl})')
            table_rows = list(zip(*(values[i] for i in cols), strict=True)) if cols else []
            if table_rows:
                connection.executemany(f'INSERT INTO "{table}" VALUES ({",".join("?" * len(cols))})', table_rows)
        connection.commit()
    finally:
        connection.close()


def synthesize(
    schemas: dict[str, DbSchema],
    gold: list[Example],
    output: str | Path,
    count: int = 3,
    rows: int = 15,
    seed: int = 0,
) -> SynthReport:
    """`count` databases per db_id of `gold` under OUTPUT/db_id/, then check every gold query runs on them."""
    report = SynthReport()
    by_db: dict[str, list[Example]] = defaultdict(list)
    for ex in gold:
        by_db[ex.db_id].append(ex)
    for db_id, examples in sorted(by_db.items()):
        schema = schemas[db_id]
        literals = gold_literals([e.query for e in examples], schema)
        files = [Path(output) / db_id / f"{db_id}_synth{k}.sqlite" for k in range(count)]
        for k, path in enumerate(files):
            build_database(path, schema, literals, rows * (k + 1), seed * 1000 + k)
            report.databases += 1
        for ex in examples:
            results = [run_query(f, ex.query, timeout_s=10.0) for f in files]
            report.gold_checked += 1
            failed = [r for r in results if not r.ok]
            if failed:
                report.gold_failures.append(f"{ex.where}: {failed[0].status}: {failed[0].message}")
            elif not any(r.rows for r in results):
                report.empty_results += 1
    return report

"""Spider `tables.json`: one entry per database with tables, columns (original names), types and keys."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.utils.errors import DataError

_REQUIRED = ("db_id", "table_names_original", "column_names_original", "column_types", "primary_keys", "foreign_keys")


@dataclass(frozen=True)
class Column:
    table: int  # index into DbSchema.tables; -1 for Spider's `*`
    name: str
    type: str


@dataclass(frozen=True)
class DbSchema:
    """One database's schema; column indices are tables.json's, so keys refer to them directly."""

    db_id: str
    tables: tuple[str, ...]
    columns: tuple[Column, ...]
    primary_keys: tuple[tuple[int, ...], ...]  # single or composite, as column indices
    foreign_keys: tuple[tuple[int, int], ...]

    def table_columns(self, table: int) -> list[int]:
        return [i for i, c in enumerate(self.columns) if c.table == table]

    def qualified(self, column: int) -> str:
        c = self.columns[column]
        return f"{self.tables[c.table]}.{c.name}"

    def lower_map(self) -> dict[str, list[str]]:
        """table (lower case) -> its columns (lower case): the namespace SQL is resolved in."""
        return {
            t.lower(): [self.columns[i].name.lower() for i in self.table_columns(k)] for k, t in enumerate(self.tables)
        }


def _keys(raw: list[Any]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(k) if isinstance(k, list) else (k,) for k in raw)


def schema_from_entry(entry: dict[str, Any], where: str) -> DbSchema:
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise DataError(f"{where}: missing fields {missing}; a Spider tables.json entry has {list(_REQUIRED)}")
    names, types = entry["column_names_original"], entry["column_types"]
    if len(names) != len(types):
        raise DataError(f"{where}: {len(names)} column_names_original but {len(types)} column_types")
    columns = tuple(Column(int(t), str(n), str(ty)) for (t, n), ty in zip(names, types, strict=True))
    n_tables = len(entry["table_names_original"])
    if any(c.table >= n_tables for c in columns):
        raise DataError(f"{where}: a column refers to a table index >= {n_tables}")
    return DbSchema(
        db_id=str(entry["db_id"]),
        tables=tuple(entry["table_names_original"]),
        columns=columns,
        primary_keys=_keys(entry["primary_keys"]),
        foreign_keys=tuple((int(a), int(b)) for a, b in entry["foreign_keys"]),
    )


def load_tables(path: str | Path) -> dict[str, DbSchema]:
    """db_id -> schema from a Spider/BIRD tables.json."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"--tables {path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of database entries (Spider tables.json)")
    schemas = {}
    for i, entry in enumerate(data):
        schema = schema_from_entry(entry, f"{path}: entry {i}")
        schemas[schema.db_id] = schema
    return schemas


def schema_for(schemas: dict[str, DbSchema], db_id: str, where: str) -> DbSchema:
    if db_id not in schemas:
        from lmforge.utils.errors import did_you_mean

        raise DataError(f"{where}: db_id {db_id!r} has no schema in tables.json{did_you_mean(db_id, schemas)}")
    return schemas[db_id]


def database_files(db_dir: str | Path, db_id: str) -> list[Path]:
    """Every SQLite file of `db_id` under db_dir/db_id/ (the original plus test-suite neighbours), sorted."""
    folder = Path(db_dir) / db_id
    return sorted(p for p in folder.glob("*.sqlite") if p.is_file()) if folder.is_dir() else []


def check_database_matches(schema: DbSchema, db_file: Path) -> None:
    """Refuse a database file that lacks tables of its tables.json schema: EX on the wrong database folder gives
    meaningless (often inflated) scores, the commonest text-to-SQL evaluation mistake."""
    from lmforge.text2sql.execution import run_query

    result = run_query(db_file, "SELECT name FROM sqlite_master WHERE type = 'table'", timeout_s=10.0)
    if not result.ok:
        raise DataError(f"{db_file}: cannot read it as SQLite ({result.message})")
    present = {str(name).lower() for (name,) in result.rows}
    missing = [t for t in schema.tables if t.lower() not in present]
    if missing:
        raise DataError(
            f"{db_file}: has no table {', '.join(missing)} of db_id {schema.db_id!r} in tables.json; "
            "is --db-dir the database folder of this split?"
        )

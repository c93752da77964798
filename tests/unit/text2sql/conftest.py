"""Text-to-SQL test data: the Spider fixtures in tests/fixtures/text2sql and a tiny SQLite database built here."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lmforge.text2sql.spider_tables import DbSchema, load_tables, schema_from_entry

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "text2sql"
TABLES = FIXTURES / "tables_subset.json"
DEV = FIXTURES / "dev_subset.json"

# A two-table shop: enough for joins, grouping, ordering, nesting and set operations.
SHOP_TABLES = {
    "db_id": "shop",
    "table_names_original": ["customer", "orders"],
    "column_names_original": [[-1, "*"], [0, "id"], [0, "name"], [0, "city"], [1, "oid"], [1, "cid"], [1, "amount"]],
    "column_types": ["text", "number", "text", "text", "number", "number", "number"],
    "primary_keys": [1, 4],
    "foreign_keys": [[5, 1]],
}
SHOP_ROWS = {
    "customer": [(1, "Ann", "Oslo"), (2, "Bob", "Rome"), (3, "Cid", "Oslo"), (4, "Dee", "Lima")],
    "orders": [(10, 1, 5.0), (11, 1, 7.0), (12, 2, 7.0), (13, 3, 1.0), (14, 3, 9.0), (15, 3, 2.0)],
}


@pytest.fixture(scope="session")
def spider_schemas() -> dict[str, DbSchema]:
    return load_tables(TABLES)


@pytest.fixture(scope="session")
def dev_examples() -> list[dict]:
    return json.loads(DEV.read_text(encoding="utf-8"))


@pytest.fixture
def shop_schema() -> DbSchema:
    return schema_from_entry(SHOP_TABLES, "shop")


def build_shop(folder: Path, name: str = "shop.sqlite", rows: dict | None = None) -> Path:
    """folder/shop/NAME with the shop tables and rows; returns the db_dir (folder)."""
    (folder / "shop").mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(folder / "shop" / name)
    connection.execute("CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, city TEXT)")
    connection.execute(
        "CREATE TABLE orders (oid INTEGER PRIMARY KEY, cid INTEGER REFERENCES customer(id), amount REAL)"
    )
    for table, values in (rows or SHOP_ROWS).items():
        connection.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(values[0]))})", values)
    connection.commit()
    connection.close()
    return folder


@pytest.fixture
def shop_db(tmp_path: Path) -> Path:
    return build_shop(tmp_path / "db")


def write_tables(path: Path, *entries: dict) -> Path:
    path.write_text(json.dumps(list(entries)), encoding="utf-8")
    return path

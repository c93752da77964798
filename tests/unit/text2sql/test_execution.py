"""EX: sandboxed SQLite runs (read-only, timeout, row cap, no ATTACH) and test-suite result comparison, with
hand-derived verdicts on a tiny database built here."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lmforge.text2sql.denotation import same_denotation
from lmforge.text2sql.evaluate import ExecSettings, execution_outcome
from lmforge.text2sql.execution import orders_rows, run_query, strip_distinct
from tests.unit.text2sql.conftest import build_shop

RUNAWAY = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"


def test_run_query_returns_rows(shop_db: Path) -> None:
    result = run_query(shop_db / "shop" / "shop.sqlite", "SELECT name FROM customer WHERE city = 'Oslo' ORDER BY id")
    assert result.ok and result.rows == [("Ann",), ("Cid",)]


def test_database_is_opened_read_only(shop_db: Path) -> None:
    db = shop_db / "shop" / "shop.sqlite"
    before = db.read_bytes()
    for sql in ("DELETE FROM customer", "DROP TABLE orders", "CREATE TABLE x (a)", "PRAGMA journal_mode = WAL"):
        assert run_query(db, sql).status == "error"
    attach = run_query(db, f"ATTACH DATABASE '{shop_db / 'other.sqlite'}' AS other")
    assert attach.status == "error" and not (shop_db / "other.sqlite").exists()
    assert db.read_bytes() == before


def test_runaway_query_times_out_quickly(shop_db: Path) -> None:
    start = time.monotonic()
    result = run_query(shop_db / "shop" / "shop.sqlite", RUNAWAY, timeout_s=0.3)
    assert result.status == "timeout"
    assert time.monotonic() - start < 5


def test_row_cap(shop_db: Path) -> None:
    result = run_query(shop_db / "shop" / "shop.sqlite", "SELECT * FROM orders, orders AS o2", max_rows=10)
    assert result.status == "row_cap" and result.rows == []


def test_missing_file_and_bad_sql_are_errors_not_exceptions(tmp_path: Path, shop_db: Path) -> None:
    assert run_query(tmp_path / "none.sqlite", "SELECT 1").status == "error"
    assert run_query(shop_db / "shop" / "shop.sqlite", "SELEC name FROM customer").status == "error"
    assert run_query(shop_db / "shop" / "shop.sqlite", "SELECT 1 > = 0").rows == [(1,)]  # `> =` fixed as Spider does


def test_strip_distinct_removes_every_distinct_keyword() -> None:
    assert strip_distinct("SELECT DISTINCT a, count(DISTINCT b) FROM t") == "SELECT  a, count( b) FROM t"
    assert strip_distinct("SELECT distinct_col FROM t WHERE x = 'DISTINCT'") == (
        "SELECT distinct_col FROM t WHERE x = 'DISTINCT'"
    )
    assert orders_rows("SELECT a FROM t ORDER  BY a") and not orders_rows("SELECT orderby FROM t")


@pytest.mark.parametrize(
    ("gold", "pred", "ordered", "same"),
    [
        ([(1, "a"), (2, "b")], [(2, "b"), (1, "a")], False, True),  # bags: row order free
        ([(1, "a"), (2, "b")], [(2, "b"), (1, "a")], True, False),  # ORDER BY: row order counts
        ([(1, "a"), (2, "b")], [("a", 1), ("b", 2)], True, True),  # column order free
        ([(1,), (1,), (2,)], [(1,), (2,), (2,)], False, False),  # multiplicities count
        ([(1, 2), (2, 1)], [(1, 1), (2, 2)], False, False),  # same value sets, different rows
        ([], [], False, True),
        ([(1,)], [], False, False),
        ([(1, 2)], [(1,)], False, False),
        ([(1,)], [(1.0,)], False, True),  # SQLite 1 and 1.0 are the same value
    ],
)
def test_same_denotation(gold: list, pred: list, ordered: bool, same: bool) -> None:
    assert same_denotation(gold, pred, ordered) is same


# Hand-derived EX verdicts on the shop database: (case, prediction, gold, outcome).
EX_CASES = [
    (
        "aliases",
        "SELECT T1.name FROM customer AS T1 WHERE T1.city = 'Oslo'",
        "SELECT name FROM customer WHERE city = 'Oslo'",
        "correct",
    ),
    ("count(*) vs COUNT(*)", "SELECT COUNT(*) FROM orders", "SELECT count(*) FROM orders", "correct"),
    (
        "join order",
        "SELECT T2.name FROM orders AS T1 JOIN customer AS T2 ON T1.cid = T2.id WHERE T1.amount > 6",
        "SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.id = T2.cid WHERE T2.amount > 6",
        "correct",
    ),
    (
        "wrong value",
        "SELECT name FROM customer WHERE city = 'Rome'",
        "SELECT name FROM customer WHERE city = 'Oslo'",
        "wrong_result",
    ),
    (
        "unordered gold, any order",
        "SELECT name FROM customer ORDER BY name DESC",
        "SELECT name FROM customer",
        "correct",
    ),
    (
        "ordered gold, wrong order",
        "SELECT name FROM customer ORDER BY name DESC",
        "SELECT name FROM customer ORDER BY name",
        "wrong_result",
    ),
    ("column order swapped", "SELECT city, name FROM customer", "SELECT name, city FROM customer", "correct"),
    ("DISTINCT removed on both", "SELECT DISTINCT city FROM customer", "SELECT city FROM customer", "correct"),
    (
        "nested query",
        "SELECT name FROM customer WHERE id IN (SELECT cid FROM orders WHERE amount > 6)",
        "SELECT DISTINCT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.id = T2.cid WHERE T2.amount > 6",
        "correct",
    ),
    (
        "set operation",
        "SELECT city FROM customer EXCEPT SELECT city FROM customer WHERE id = 2",
        "SELECT city FROM customer WHERE city != 'Rome' GROUP BY city",
        "correct",
    ),
    ("runaway query", RUNAWAY, "SELECT count(*) FROM orders", "timeout"),
    ("execution error", "SELECT nickname FROM customer", "SELECT name FROM customer", "execution_error"),
]


@pytest.mark.parametrize(("case", "pred", "gold", "outcome"), EX_CASES, ids=[c[0] for c in EX_CASES])
def test_execution_outcome_hand_derived(case: str, pred: str, gold: str, outcome: str, shop_db: Path) -> None:
    files = [str(shop_db / "shop" / "shop.sqlite")]
    assert execution_outcome(gold, pred, files, ExecSettings(timeout_s=0.5))[0] == outcome


def test_keep_distinct_negative_control(shop_db: Path) -> None:
    """With DISTINCT kept, the DISTINCT case above is wrong: the removal is what made it correct."""
    files = [str(shop_db / "shop" / "shop.sqlite")]
    settings = ExecSettings(keep_distinct=True)
    assert execution_outcome("SELECT city FROM customer", "SELECT DISTINCT city FROM customer", files, settings)[
        0
    ] == ("wrong_result")


def test_every_database_file_must_agree(tmp_path: Path) -> None:
    """Test-suite style: a prediction right on one database but wrong on a neighbour is wrong."""
    db_dir = build_shop(tmp_path / "db")
    rows = {"customer": [(1, "Ann", "Oslo"), (2, "Bob", "Oslo")], "orders": [(10, 1, 5.0)]}
    build_shop(tmp_path / "db", "neighbour.sqlite", rows)
    one = [str(db_dir / "shop" / "shop.sqlite")]
    both = [*one, str(db_dir / "shop" / "neighbour.sqlite")]
    pred, gold = "SELECT name FROM customer WHERE id IN (1, 3)", "SELECT name FROM customer WHERE city = 'Oslo'"
    assert execution_outcome(gold, pred, one, ExecSettings())[0] == "correct"
    assert execution_outcome(gold, pred, both, ExecSettings())[0] == "wrong_result"


def test_gold_that_fails_is_a_data_error(shop_db: Path) -> None:
    outcome, message = execution_outcome(
        "SELECT nope FROM customer", "SELECT 1", [str(shop_db / "shop" / "shop.sqlite")], ExecSettings()
    )
    assert outcome == "gold_error" and "nope" in message


def test_singer_gold_queries_all_run_and_match_themselves(tmp_path: Path, dev_examples: list[dict]) -> None:
    from tests.unit.text2sql.conftest import FIXTURES

    db = tmp_path / "singer.sqlite"
    db.write_bytes((FIXTURES / "singer.sqlite").read_bytes())
    singer = [e["query"] for e in dev_examples if e["db_id"] == "singer"]
    assert len(singer) == 30
    assert all(execution_outcome(q, q, [str(db)], ExecSettings())[0] == "correct" for q in singer)
    # negative control: each gold against the gold two questions on (Spider asks each twice) is mostly wrong
    shifted = [
        execution_outcome(q, p, [str(db)], ExecSettings())[0]
        for q, p in zip(singer, singer[2:] + singer[:2], strict=True)
    ]
    assert shifted.count("correct") < len(singer) // 2

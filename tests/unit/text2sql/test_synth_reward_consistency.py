"""synth-db databases (types, keys, gold literals; gold runs on them), the GRPO execution reward, and
self-consistency voting by execution result."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lmforge.rl.builtin import sql_execution_match
from lmforge.text2sql.evaluate import ExecSettings, execution_outcome
from lmforge.text2sql.examples import Example
from lmforge.text2sql.predict import majority_by_result
from lmforge.text2sql.serialize import table_blocks
from lmforge.text2sql.spider_tables import DbSchema, database_files
from lmforge.text2sql.sql_prompts import PromptSettings, messages_for, prompt_db_id
from lmforge.text2sql.synth_db import gold_literals, synthesize
from lmforge.utils.errors import ConfigError

GOLD = [
    "SELECT name FROM customer WHERE city = 'Oslo'",
    "SELECT T1.name, sum(T2.amount) FROM customer AS T1 JOIN orders AS T2 ON T1.id = T2.cid GROUP BY T1.id",
    "SELECT count(*) FROM orders WHERE amount > 7.5",
    "SELECT name FROM customer WHERE name LIKE '%Zed%'",
]


def _gold(db_id: str = "shop") -> list[Example]:
    return [Example(db_id, "", q, f"gold.sql:{i + 1}") for i, q in enumerate(GOLD)]


def test_gold_literals_are_found_per_column(shop_schema: DbSchema) -> None:
    found = gold_literals(GOLD, shop_schema)
    assert found[("customer", "city")] == {"Oslo"}
    assert found[("orders", "amount")] == {7.5}
    assert found[("customer", "name")] == {"xZedx"}


def test_synth_databases_respect_keys_and_run_the_gold(tmp_path: Path, shop_schema: DbSchema) -> None:
    report = synthesize({"shop": shop_schema}, _gold(), tmp_path, count=3, rows=10, seed=1)
    files = database_files(tmp_path, "shop")
    assert report.databases == len(files) == 3 and report.gold_failures == []
    for f in files:
        db = sqlite3.connect(f)
        ids = [r[0] for r in db.execute("SELECT id FROM customer")]
        assert len(ids) == len(set(ids)) and None not in ids
        assert db.execute("SELECT count(*) FROM orders WHERE cid NOT IN (SELECT id FROM customer)").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM customer WHERE city = 'Oslo'").fetchone()[0] >= 1
        db.close()
    # the databases separate a wrong value from the gold (negative control: the gold matches itself)
    names = [str(f) for f in files]
    assert execution_outcome(GOLD[0], GOLD[0], names, ExecSettings())[0] == "correct"
    assert execution_outcome(GOLD[0], "SELECT name FROM customer WHERE city = 'Rome'", names, ExecSettings())[0] == (
        "wrong_result"
    )


def test_synth_is_deterministic_for_a_seed(tmp_path: Path, shop_schema: DbSchema) -> None:
    synthesize({"shop": shop_schema}, _gold(), tmp_path / "a", count=1, seed=3)
    synthesize({"shop": shop_schema}, _gold(), tmp_path / "b", count=1, seed=3)
    dump = [
        list(sqlite3.connect(p / "shop" / "shop_synth0.sqlite").iterdump()) for p in (tmp_path / "a", tmp_path / "b")
    ]
    assert dump[0] == dump[1]


def _messages(shop_schema: DbSchema) -> list[dict]:
    example = Example("shop", "Who lives in Oslo?", GOLD[0], "x")
    return messages_for(example, shop_schema, table_blocks(shop_schema, "nl"), PromptSettings(), with_answer=False)


def test_sql_execution_match_reward(shop_db: Path, shop_schema: DbSchema) -> None:
    messages = _messages(shop_schema)
    assert prompt_db_id(messages) == "shop"
    completions = [
        "```sql\nSELECT T1.name FROM customer AS T1 WHERE T1.city = 'Oslo'\n```",
        "SELECT name FROM customer WHERE city = 'Rome'",
        "I do not know.",
        "SELECT name FROM customer",
    ]
    references = [GOLD[0], GOLD[0], GOLD[0], "SELECT nope FROM customer"]
    scores = sql_execution_match(completions, references, [messages] * 4, db_dir=str(shop_db))
    assert scores == [1.0, 0.0, 0.0, None]


def test_sql_execution_match_needs_prepared_prompts(shop_db: Path) -> None:
    with pytest.raises(ConfigError, match="text2sql prepare"):
        sql_execution_match(["SELECT 1"], ["SELECT 1"], [[{"role": "user", "content": "hi"}]], db_dir=str(shop_db))


def test_self_consistency_votes_by_result(shop_db: Path) -> None:
    db = shop_db / "shop" / "shop.sqlite"
    candidates = [
        "SELECT name FROM customer WHERE city = 'Rome'",  # alone
        "SELECT name FROM customer WHERE city = 'Oslo'",  # same result as the next two
        "SELECT T1.name FROM customer AS T1 WHERE T1.city = 'Oslo'",
        "SELECT name FROM customer WHERE id IN (1, 3)",
        "SELECT nope FROM customer",  # fails: no vote
    ]
    assert majority_by_result(candidates, db, 5.0) == candidates[1]
    assert majority_by_result(candidates[:1] + candidates[4:], db, 5.0) == candidates[0]  # a tie: the earliest
    assert majority_by_result(candidates[4:], db, 5.0) == candidates[4]  # nothing runs: the first

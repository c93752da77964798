"""Exact-set match and hardness agree with the official Spider evaluation script's verdicts (computed by it, stored
in tests/fixtures/text2sql); our parse of every dev gold query has the structure Spider's definition needs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lmforge.text2sql.exact_match import canonical, exact_set_match, foreign_key_map
from lmforge.text2sql.hardness import hardness
from lmforge.text2sql.spider_sql import SqlParseError, empty_sql, spider_structure
from lmforge.text2sql.spider_tables import DbSchema
from tests.unit.text2sql.conftest import FIXTURES

PAIRS = json.loads((FIXTURES / "em_pairs.json").read_text(encoding="utf-8"))["pairs"]
OFFICIAL_HARDNESS = json.loads((FIXTURES / "dev_subset_hardness.json").read_text(encoding="utf-8"))["hardness"]


def em(pred: str, gold: str, schema: DbSchema, mask: bool = True) -> bool:
    fk = foreign_key_map(schema)
    try:
        p = spider_structure(pred, schema)
    except SqlParseError:
        p = empty_sql()
    g = spider_structure(gold, schema)
    if not mask:  # negative control: compare raw structures, values and all
        return p == g
    return exact_set_match(canonical(p, schema, fk), canonical(g, schema, fk))


def test_em_pair_table_is_large_and_mixed() -> None:
    assert len(PAIRS) >= 40
    assert 10 <= sum(p["exact_match"] for p in PAIRS) <= len(PAIRS) - 10
    assert {p["hardness"] for p in PAIRS} == {"easy", "medium", "hard", "extra"}


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p['change']}-{p['db_id']}")
def test_exact_match_equals_official_verdict(pair: dict[str, Any], spider_schemas: dict[str, DbSchema]) -> None:
    assert em(pair["pred"], pair["gold"], spider_schemas[pair["db_id"]]) == pair["exact_match"]


def test_negative_control_unmasked_comparison_disagrees_with_official(spider_schemas: dict[str, DbSchema]) -> None:
    """Comparing structures without Spider's canonical form (values kept, no FK map) gets verdicts wrong."""
    value_pairs = [p for p in PAIRS if p["change"] == "value" and p["exact_match"]]
    assert value_pairs
    assert not any(em(p["pred"], p["gold"], spider_schemas[p["db_id"]], mask=False) for p in value_pairs)


def test_hardness_of_every_dev_gold_equals_official(
    dev_examples: list[dict], spider_schemas: dict[str, DbSchema]
) -> None:
    ours = [hardness(spider_structure(e["query"], spider_schemas[e["db_id"]])) for e in dev_examples]
    assert ours == OFFICIAL_HARDNESS
    assert set(OFFICIAL_HARDNESS) == {"easy", "medium", "hard", "extra"}  # every rule is exercised


def test_gold_matches_itself_on_every_dev_query(dev_examples: list[dict], spider_schemas: dict[str, DbSchema]) -> None:
    assert all(em(e["query"], e["query"], spider_schemas[e["db_id"]]) for e in dev_examples)


# Hand-derived verdicts on the shop schema (customer.id <- orders.cid is a foreign key).
SHOP_CASES = [
    (
        "aliases and case",
        "SELECT T1.name FROM customer AS T1 WHERE T1.city = 'Oslo'",
        "select name from customer where city = 'Oslo'",
        True,
    ),
    ("count(*) vs COUNT(*)", "SELECT COUNT(*) FROM orders", "SELECT count(*) FROM orders", True),
    (
        "join order",
        "SELECT T2.name FROM orders AS T1 JOIN customer AS T2 ON T1.cid = T2.id",
        "SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.id = T2.cid",
        True,
    ),
    (
        "wrong value still matches",
        "SELECT name FROM customer WHERE city = 'Rome'",
        "SELECT name FROM customer WHERE city = 'Oslo'",
        True,
    ),
    ("column order swapped", "SELECT city, name FROM customer", "SELECT name, city FROM customer", True),
    ("DISTINCT ignored", "SELECT DISTINCT city FROM customer", "SELECT city FROM customer", True),
    (
        "FK-linked columns equal",
        "SELECT orders.cid FROM customer JOIN orders ON customer.id = orders.cid",
        "SELECT customer.id FROM customer JOIN orders ON customer.id = orders.cid",
        True,
    ),
    ("missing ORDER BY", "SELECT name FROM customer", "SELECT name FROM customer ORDER BY name", False),
    ("ASC vs DESC", "SELECT name FROM customer ORDER BY id ASC", "SELECT name FROM customer ORDER BY id DESC", False),
    (
        "LIMIT present vs absent",
        "SELECT name FROM customer ORDER BY id",
        "SELECT name FROM customer ORDER BY id LIMIT 1",
        False,
    ),
    ("other aggregate", "SELECT max(amount) FROM orders", "SELECT min(amount) FROM orders", False),
    (
        "nested query equal",
        "SELECT name FROM customer WHERE id IN (SELECT cid FROM orders WHERE amount > 1)",
        "SELECT name FROM customer WHERE id IN (SELECT cid FROM orders WHERE amount > 5)",
        True,
    ),
    (
        "nested query different column",
        "SELECT name FROM customer WHERE id IN (SELECT oid FROM orders)",
        "SELECT name FROM customer WHERE id IN (SELECT cid FROM orders)",
        False,
    ),
    (
        "union vs except",
        "SELECT name FROM customer UNION SELECT city FROM customer",
        "SELECT name FROM customer EXCEPT SELECT city FROM customer",
        False,
    ),
    (
        "intersect equal",
        "SELECT name FROM customer INTERSECT SELECT name FROM customer WHERE city = 'x'",
        "SELECT name FROM customer INTERSECT SELECT name FROM customer WHERE city = 'y'",
        True,
    ),
    (
        "AND vs OR",
        "SELECT name FROM customer WHERE id > 1 OR city = 'Oslo'",
        "SELECT name FROM customer WHERE id > 1 AND city = 'Oslo'",
        False,
    ),
    ("unparsable prediction", "SELECT FROM WHERE", "SELECT name FROM customer", False),
    ("unknown column", "SELECT nickname FROM customer", "SELECT name FROM customer", False),
]


@pytest.mark.parametrize(("case", "pred", "gold", "expected"), SHOP_CASES, ids=[c[0] for c in SHOP_CASES])
def test_exact_match_hand_derived(case: str, pred: str, gold: str, expected: bool, shop_schema: DbSchema) -> None:
    assert em(pred, gold, shop_schema) is expected


def test_queries_outside_spiders_grammar_raise(shop_schema: DbSchema) -> None:
    for sql in (
        "SELECT name FROM customer LEFT JOIN orders ON id = cid",
        "SELECT name FROM customer UNION ALL SELECT city FROM customer",
        "SELECT upper(name) FROM customer",
        "DELETE FROM customer",
    ):
        with pytest.raises(SqlParseError):
            spider_structure(sql, shop_schema)

#!/usr/bin/env python
"""How well `text2sql synth-db` databases separate queries (numbers in docs/text2sql.md).

  python bench/text2sql_separation.py [--data ../shared/data/text2sql/spider]

(1) pairs of distinct gold queries of the same database that get different results; (2) mechanically changed
gold queries (ORDER direction, a literal, MAX<->MIN, WHERE dropped, LIMIT dropped, > <-> <, AND -> OR, SELECT
columns swapped, DISTINCT toggled) judged wrong; (3) on `singer`, agreement with the real database.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import sqlglot
from sqlglot import exp

from lmforge.text2sql.evaluate import ExecSettings, execution_outcome
from lmforge.text2sql.examples import read_gold
from lmforge.text2sql.spider_tables import database_files, load_tables
from lmforge.text2sql.synth_db import synthesize


def _first(kinds: tuple[type, ...], change: Callable[[exp.Expression], None]) -> Callable[[exp.Expression], bool]:
    def apply(tree: exp.Expression) -> bool:
        found = [n for n in tree.find_all(*kinds) if not isinstance(n.parent, exp.Limit)]
        if not found:
            return False
        change(found[0])
        return True

    return apply


def _drop(key: str) -> Callable[[exp.Expression], bool]:
    def apply(tree: exp.Expression) -> bool:
        if not tree.args.get(key):
            return False
        tree.set(key, None)
        return True

    return apply


def _swap_select(tree: exp.Expression) -> bool:
    if not isinstance(tree, exp.Select) or len(tree.expressions) < 2:
        return False
    items = list(tree.expressions)
    tree.set("expressions", [items[1], items[0], *items[2:]])
    return True


def _toggle_distinct(tree: exp.Expression) -> bool:
    if not isinstance(tree, exp.Select):
        return False
    tree.set("distinct", None if tree.args.get("distinct") else exp.Distinct())
    return True


CHANGES: dict[str, Callable[[exp.Expression], bool]] = {
    "order_direction": _first((exp.Ordered,), lambda n: n.set("desc", not n.args.get("desc"))),
    "value": _first(
        (exp.Literal,),
        lambda n: n.replace(exp.Literal.string("zzz") if n.is_string else exp.Literal.number(99)),
    ),
    "max_min": _first(
        (exp.Max, exp.Min), lambda n: n.replace((exp.Min if isinstance(n, exp.Max) else exp.Max)(this=n.this))
    ),
    "drop_where": _drop("where"),
    "drop_limit": _drop("limit"),
    "flip_compare": _first(
        (exp.GT, exp.LT),
        lambda n: n.replace((exp.LT if isinstance(n, exp.GT) else exp.GT)(this=n.this, expression=n.expression)),
    ),
    "and_to_or": _first((exp.And,), lambda n: n.replace(exp.Or(this=n.this, expression=n.expression))),
    "swap_select": _swap_select,
    "toggle_distinct": _toggle_distinct,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/text2sql/spider"))
    data = Path(parser.parse_args().data)
    schemas, gold = load_tables(data / "tables_subset.json"), read_gold(data / "dev_subset_gold.sql")
    settings = ExecSettings(timeout_s=5)
    with tempfile.TemporaryDirectory() as synth:
        synthesize(schemas, gold, synth)

        def wrong(g: str, p: str, db_id: str, root: str) -> bool:
            return execution_outcome(g, p, [str(f) for f in database_files(root, db_id)], settings)[0] != "correct"

        by_db: dict[str, list[str]] = defaultdict(list)
        for ex in gold:
            if ex.query not in by_db[ex.db_id]:
                by_db[ex.db_id].append(ex.query)
        pairs = [(a, b, db) for db, qs in by_db.items() for a, b in itertools.combinations(qs, 2)]
        separated = sum(wrong(a, b, db, synth) for a, b, db in pairs)
        print(f"distinct gold pairs separated: {separated}/{len(pairs)} = {separated / len(pairs):.3f}")
        real = data / "database"
        agree: Counter = Counter()
        for a, b, db in pairs:
            if db == "singer":
                agree[("gold pairs", wrong(a, b, db, str(real)), wrong(a, b, db, synth))] += 1
        caught: Counter = Counter()
        total: Counter = Counter()
        for ex in gold:
            for name, change in CHANGES.items():
                tree = sqlglot.parse_one(ex.query, read="sqlite")
                if not change(tree):
                    continue
                pred = tree.sql(dialect="sqlite")
                total[name] += 1
                caught[name] += wrong(ex.query, pred, ex.db_id, synth)
                if ex.db_id == "singer":
                    key = (
                        "changed",
                        wrong(ex.query, pred, "singer", str(real)),
                        wrong(ex.query, pred, "singer", synth),
                    )
                    agree[key] += 1
        print("changed predictions judged wrong:", {k: f"{caught[k]}/{total[k]}" for k in total})
        print("singer (kind, real says different, synthesized say different):", dict(agree))


if __name__ == "__main__":
    main()

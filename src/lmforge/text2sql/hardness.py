"""Spider's hardness levels (easy / medium / hard / extra) from the gold query's raw structure.

Counts as the published `evaluation.py` defines them, quirks included: a NOT condition in WHERE counts as an
aggregate, and so does each and/or connector in HAVING.
"""

from __future__ import annotations

from typing import Any

from lmforge.text2sql.spider_sql import WHERE_OPS

LEVELS = ("easy", "medium", "hard", "extra")


def _conditions(sql: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    all_conds = sql["from"]["conds"] + sql["where"] + sql["having"]
    return [u for u in all_conds if not isinstance(u, str)], [u for u in all_conds if isinstance(u, str)]


def _clauses(sql: dict[str, Any]) -> int:
    units, connectors = _conditions(sql)
    count = sum(bool(sql[k]) for k in ("where", "groupBy", "orderBy")) + (sql["limit"] is not None)
    count += max(len(sql["from"]["table_units"]) - 1, 0)
    count += connectors.count("or") + sum(u[1] == WHERE_OPS.index("like") for u in units)
    return count


def _nested(sql: dict[str, Any]) -> int:
    units, _ = _conditions(sql)
    return sum(isinstance(v, dict) for u in units for v in (u[3], u[4])) + sum(
        sql[op] is not None for op in ("intersect", "except", "union")
    )


def _others(sql: dict[str, Any]) -> int:
    aggregates = sum(agg != 0 for agg, _ in sql["select"][1])
    aggregates += sum(bool(u[0]) for u in sql["where"][::2])  # the NOT flag, as the reference counts it
    aggregates += sum(u[0] != 0 for u in sql["groupBy"])
    if sql["orderBy"]:
        aggregates += sum(c[0] != 0 for v in sql["orderBy"][1] for c in (v[1], v[2]) if c)
    aggregates += sum(u[0] != 0 for u in sql["having"])  # connectors count too ("and"[0] != 0)
    return (aggregates > 1) + (len(sql["select"][1]) > 1) + (len(sql["where"]) > 1) + (len(sql["groupBy"]) > 1)


def hardness(sql: dict[str, Any]) -> str:
    c1, c2, others = _clauses(sql), _nested(sql), _others(sql)
    if c1 <= 1 and others == 0 and c2 == 0:
        return "easy"
    if (others <= 2 and c1 <= 1 and c2 == 0) or (c1 <= 2 and others < 2 and c2 == 0):
        return "medium"
    if (
        (others > 2 and c1 <= 2 and c2 == 0)
        or (2 < c1 <= 3 and others <= 2 and c2 == 0)
        or (c1 <= 1 and others == 0 and c2 <= 1)
    ):
        return "hard"
    return "extra"

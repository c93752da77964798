"""Spider's exact-set match (taoyds/spider `evaluation.py`, `--etype match`) on the structures of `spider_sql`.

Before comparing, both queries are put in Spider's canonical form: literal values dropped (a nested query stays
and loses its own values; a query in FROM keeps everything), DISTINCT dropped, and columns linked by foreign
keys replaced by one representative when their table is in the query's FROM. Then ten components must each
match as multisets (select, select without aggregates, where, where without operators, group by, group by +
having, order by + limit presence, and/or, intersect/union/except recursively, keywords) and the FROM table
units must be equal. Quirks of the published definition are kept on purpose, so scores are comparable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lmforge.text2sql.spider_sql import WHERE_OPS
from lmforge.text2sql.spider_tables import DbSchema

COMPONENTS = (
    "select",
    "select(no AGG)",
    "where",
    "where(no OP)",
    "group(no Having)",
    "group",
    "order",
    "and/or",
    "IUEN",
    "keywords",
)


def foreign_key_map(schema: DbSchema) -> dict[str, str]:
    """Column id -> representative of its foreign-key group, grouped the way Spider's `build_foreign_key_map` is."""
    ids = [
        "__all__" if c.table < 0 else f"__{schema.tables[c.table].lower()}.{c.name.lower()}__" for c in schema.columns
    ]
    groups: list[set[int]] = []
    for a, b in schema.foreign_keys:
        group = next((g for g in groups if a in g or b in g), None)  # first group touching either end, no merging
        if group is None:
            group = set()
            groups.append(group)
        group |= {a, b}
    mapping = {}
    for group in groups:
        first = min(group)
        mapping.update({ids[i]: ids[first] for i in group})
    return mapping


def canonical(sql: dict[str, Any], schema: DbSchema, fk_map: dict[str, str]) -> dict[str, Any]:
    """Values masked, DISTINCT dropped, FK-linked columns of the FROM tables mapped to one representative."""
    tables = {u[1][2:-2] for u in sql["from"]["table_units"] if u[0] == "table_unit"}
    valid = {f"__{t}.{c}__" for t, cols in schema.lower_map().items() if t in tables for c in cols}
    canonical_sql = _columns(_mask_values(sql), valid, fk_map)
    assert canonical_sql is not None  # a query in, a query out (None only stands for an absent nested query)
    return canonical_sql


def _mask_values(sql: dict[str, Any] | None) -> dict[str, Any] | None:
    if sql is None:
        return None

    def cond(units: list[Any]) -> list[Any]:
        return [u if isinstance(u, str) else (*u[:3], _nested_or_none(u[3]), _nested_or_none(u[4])) for u in units]

    out = dict(sql)
    out["from"] = {"table_units": sql["from"]["table_units"], "conds": cond(sql["from"]["conds"])}
    out["where"], out["having"] = cond(sql["where"]), cond(sql["having"])
    for op in ("intersect", "union", "except"):
        out[op] = _mask_values(sql[op])
    return out


def _nested_or_none(value: Any) -> Any:
    return _mask_values(value) if isinstance(value, dict) else None


def _columns(sql: dict[str, Any] | None, valid: set[str], fk_map: dict[str, str]) -> dict[str, Any] | None:
    if sql is None:
        return None

    def col(unit: Any) -> Any:
        if unit is None:
            return None
        agg, column, _distinct = unit
        return agg, fk_map.get(column, column) if column in valid else column, None

    def val(unit: Any) -> Any:
        return None if unit is None else (unit[0], col(unit[1]), col(unit[2]))

    def cond(units: list[Any]) -> list[Any]:
        return [u if isinstance(u, str) else (u[0], u[1], val(u[2]), u[3], u[4]) for u in units]

    out = dict(sql)
    out["select"] = (None, [(agg, val(v)) for agg, v in sql["select"][1]])
    out["from"] = {"table_units": sql["from"]["table_units"], "conds": cond(sql["from"]["conds"])}
    out["where"], out["having"] = cond(sql["where"]), cond(sql["having"])
    out["groupBy"] = [col(u) for u in sql["groupBy"]]
    if sql["orderBy"]:
        out["orderBy"] = (sql["orderBy"][0], [val(v) for v in sql["orderBy"][1]])
    for op in ("intersect", "union", "except"):
        out[op] = _columns(sql[op], valid, fk_map)
    return out


def _multiset_hits(pred: Iterable[Any], gold: Iterable[Any]) -> int:
    """How many predicted items find a not-yet-used equal gold item (items may be unhashable)."""
    left = list(gold)
    hits = 0
    for item in pred:
        if item in left:
            left.remove(item)
            hits += 1
    return hits


def _matches(hits: int, pred_total: int, gold_total: int) -> bool:
    """Spider's component F1 is 1 exactly when the totals agree and every predicted item was matched."""
    return pred_total == gold_total and hits == pred_total


def keywords(sql: dict[str, Any]) -> set[str]:
    found = {k for k, key in (("where", "where"), ("group", "groupBy"), ("having", "having")) if sql[key]}
    if sql["orderBy"]:
        found |= {"order", sql["orderBy"][0]}
    found |= {k for k in ("limit", "except", "union", "intersect") if sql[k] is not None}
    connectors = sql["from"]["conds"][1::2] + sql["where"][1::2] + sql["having"][1::2]
    units = sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]
    if "or" in connectors:
        found.add("or")
    if any(u[0] for u in units):
        found.add("not")
    found |= {w for w in ("in", "like") if any(u[1] == WHERE_OPS.index(w) for u in units)}
    return found


def component_matches(pred: dict[str, Any], gold: dict[str, Any]) -> dict[str, bool]:
    """Per component: does the canonical prediction match the canonical gold (Spider's partial F1 == 1)?"""
    p_sel, g_sel = pred["select"][1], gold["select"][1]
    p_plain, g_plain = [u[1] for u in p_sel], [u[1] for u in g_sel]
    p_where, g_where = pred["where"][::2], gold["where"][::2]
    p_group, g_group = [u[1] for u in pred["groupBy"]], [u[1] for u in gold["groupBy"]]
    result = {
        "select": _matches(_multiset_hits(p_sel, g_sel), len(p_sel), len(g_sel)),
        "select(no AGG)": _matches(_multiset_hits(p_plain, g_plain), len(p_sel), len(g_sel)),
        "where": _matches(_multiset_hits(p_where, g_where), len(p_where), len(g_where)),
        "where(no OP)": _matches(
            _multiset_hits([u[2] for u in p_where], [u[2] for u in g_where]), len(p_where), len(g_where)
        ),
        "group(no Having)": _matches(
            _multiset_hits([_bare(c) for c in p_group], [_bare(c) for c in g_group]), len(p_group), len(g_group)
        ),
        "group": bool(p_group) == bool(g_group)
        and (not g_group or (p_group == g_group and pred["having"] == gold["having"])),
        "order": bool(pred["orderBy"]) == bool(gold["orderBy"])
        and (
            not gold["orderBy"]
            or (pred["orderBy"] == gold["orderBy"] and (pred["limit"] is None) == (gold["limit"] is None))
        ),
        "and/or": set(pred["where"][1::2]) == set(gold["where"][1::2]),
        "keywords": keywords(pred) == keywords(gold),
    }
    hits = totals_p = totals_g = 0
    for op in ("intersect", "except", "union"):
        totals_p += pred[op] is not None
        totals_g += gold[op] is not None
        if pred[op] is not None and gold[op] is not None:
            hits += exact_set_match(pred[op], gold[op])
    result["IUEN"] = _matches(hits, totals_p, totals_g)
    return {name: result[name] for name in COMPONENTS}


def _bare(column: str) -> str:
    """GROUP BY columns compare without their table (`__t.c__` -> `c__`), as Spider does."""
    return column.split(".")[1] if "." in column else column


def exact_set_match(pred: dict[str, Any], gold: dict[str, Any]) -> bool:
    """Both canonical: every component matches and, when gold has a FROM, the table units are equal."""
    if not all(component_matches(pred, gold).values()):
        return False
    units_g, units_p = gold["from"]["table_units"], pred["from"]["table_units"]
    return not units_g or (len(units_g) == len(units_p) and _multiset_hits(units_p, units_g) == len(units_g))

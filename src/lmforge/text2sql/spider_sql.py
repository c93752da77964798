"""SQL text -> Spider's SQL structure (the `get_sql` dict of taoyds/spider `process_sql.py`), parsed by sqlglot.

Spider's exact-set match and hardness are defined on this structure, so we build exactly it: `select`
(distinct, [(agg, val_unit)]), `from` {table_units, conds}, `where`/`having` [cond_unit, "and"|"or", ...],
`groupBy` [col_unit], `orderBy` (asc|desc, [val_unit]), `limit`, and `intersect`/`union`/`except` chained to the
right. Units: col_unit (agg, "__table.column__", distinct), val_unit (op, col_unit, col_unit|None), cond_unit
(not, op, val_unit, val1, val2). Queries outside Spider's grammar (other functions, LEFT/INNER/comma joins, UNION
ALL, IN lists, WITH) raise `SqlParseError`, as the official parser fails on them: such a prediction is scored
against an empty query.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp

from lmforge.text2sql.spider_tables import DbSchema

AGG_OPS = ("none", "max", "min", "count", "sum", "avg")
WHERE_OPS = ("not", "between", "=", ">", "<", ">=", "<=", "!=", "in", "like", "is", "exists")
UNIT_OPS = ("none", "-", "+", "*", "/")
_AGGS: dict[type[exp.Expression], int] = {exp.Max: 1, exp.Min: 2, exp.Count: 3, exp.Sum: 4, exp.Avg: 5}
_COMPARE: dict[type[exp.Expression], int] = {exp.EQ: 2, exp.GT: 3, exp.LT: 4, exp.GTE: 5, exp.LTE: 6, exp.NEQ: 7}
_ARITH: dict[type[exp.Expression], int] = {exp.Sub: 1, exp.Add: 2, exp.Mul: 3, exp.Div: 4}
_SET_OPS: dict[type[exp.Expression], str] = {exp.Intersect: "intersect", exp.Union: "union", exp.Except: "except"}


class SqlParseError(ValueError):
    """The query does not parse, or falls outside the SQL subset Spider's structure describes."""


def fix_spaced_operators(sql: str) -> str:
    """`> =`, `< =`, `! =` -> `>=`, `<=`, `!=` (Spider's tokenizer and the test-suite evaluation both do this)."""
    return sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")


def parse_sql_tree(sql: str) -> exp.Expression:
    """One SQLite statement as a sqlglot tree; SqlParseError when it is not exactly one parsable statement."""
    try:
        trees = [t for t in sqlglot.parse(fix_spaced_operators(sql), read="sqlite") if t is not None]
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        raise SqlParseError(f"unparsable SQL: {str(exc).splitlines()[0]}") from None
    if len(trees) != 1 or not isinstance(trees[0], exp.Expression):
        raise SqlParseError(f"expected one SQL statement, found {len(trees)}")
    return trees[0]


def empty_sql() -> dict[str, Any]:
    """What an unparsable prediction is compared as (Spider's evaluation does the same)."""
    return {
        "select": (False, []),
        "from": {"table_units": [], "conds": []},
        "where": [],
        "groupBy": [],
        "having": [],
        "orderBy": [],
        "limit": None,
        "intersect": None,
        "union": None,
        "except": None,
    }


def spider_structure(sql: str, schema: DbSchema) -> dict[str, Any]:
    """Spider's structure of `sql` against `schema` (names lower-cased as Spider does)."""
    tree = parse_sql_tree(sql)
    return _Builder(schema, tree).query(tree)


class _Builder:
    def __init__(self, schema: DbSchema, tree: exp.Expression) -> None:
        self.columns = schema.lower_map()
        self.aliases = {t: t for t in self.columns}  # like Spider: one alias map for the whole query
        for table in tree.find_all(exp.Table):
            name = table.name.lower()
            if table.alias:
                self.aliases[table.alias.lower()] = name

    def query(self, node: exp.Expression) -> dict[str, Any]:
        while isinstance(node, exp.Subquery):
            node = node.this
        if isinstance(node, exp.Select):
            return self.select_query(node)
        if type(node) in _SET_OPS:
            return self.set_query(node)
        raise SqlParseError(f"not a SELECT query: {node.key.upper()}")

    def set_query(self, node: exp.Expression) -> dict[str, Any]:
        """Left-deep sqlglot set operations -> Spider's right-chained intersect/union/except."""
        parts: list[exp.Expression] = []
        ops: list[str] = []
        trailing = {k: node.args.get(k) for k in ("order", "limit")}  # Spider reads these as the last SELECT's

        def flatten(n: exp.Expression) -> None:
            if type(n) in _SET_OPS and not isinstance(n, exp.Subquery):
                if isinstance(n, exp.Union) and n.args.get("distinct") is False:
                    raise SqlParseError("UNION ALL is outside Spider's SQL grammar")
                flatten(n.this)
                ops.append(_SET_OPS[type(n)])
                flatten(n.expression)
            else:
                parts.append(n)

        flatten(node)
        last = parts[-1]
        if any(trailing.values()):
            last = last.copy()
            for key, value in trailing.items():
                if value is not None:
                    last.set(key, value)
            parts[-1] = last
        built = [self.query(p) for p in parts]
        for i in range(len(ops) - 1, -1, -1):
            built[i][ops[i]] = built[i + 1]
        return built[0]

    def select_query(self, node: exp.Select) -> dict[str, Any]:
        for key in ("with", "windows", "qualify", "distribute", "cluster", "sort"):
            if node.args.get(key):
                raise SqlParseError(f"{key.upper()} is outside Spider's SQL grammar")
        table_units, conds, defaults = self.from_clause(node)
        sql = empty_sql()
        sql["from"] = {"table_units": table_units, "conds": conds}
        sql["select"] = (bool(node.args.get("distinct")), [self.select_item(e, defaults) for e in node.expressions])
        where = node.args.get("where")
        sql["where"] = self.conditions(where.this, defaults) if where else []
        group = node.args.get("group")
        sql["groupBy"] = [self.col_unit(e, defaults) for e in group.expressions] if group else []
        having = node.args.get("having")
        sql["having"] = self.conditions(having.this, defaults) if having else []
        order = node.args.get("order")
        if order:
            explicit = [o.args.get("desc") for o in order.expressions if o.args.get("desc") is not None]
            direction = "desc" if explicit and explicit[-1] else "asc"
            sql["orderBy"] = (direction, [self.val_unit(o.this, defaults) for o in order.expressions])
        limit = node.args.get("limit")
        if limit:
            value = limit.expression
            if not (isinstance(value, exp.Literal) and value.is_int):
                raise SqlParseError(f"LIMIT {value.sql()} is not an integer")
            sql["limit"] = int(value.this)
        return sql

    def from_clause(self, node: exp.Select) -> tuple[list[Any], list[Any], list[str]]:
        source = node.args.get("from_") or node.args.get("from")
        if source is None:
            raise SqlParseError("no FROM clause")
        table_units: list[Any] = []
        conds: list[Any] = []
        defaults: list[str] = []
        items = [(source.this, None)]
        for join in node.args.get("joins") or []:
            if join.args.get("kind") or join.args.get("side") or join.args.get("method") or join.args.get("using"):
                raise SqlParseError("only plain JOIN ... ON is in Spider's SQL grammar (no INNER/LEFT/comma joins)")
            items.append((join.this, join.args.get("on")))
        for item, on in items:
            if isinstance(item, exp.Subquery):
                table_units.append(("sql", self.query(item.this)))
            elif isinstance(item, exp.Table):
                name = item.name.lower()
                if name not in self.columns:
                    raise SqlParseError(f"unknown table {item.name!r}")
                table_units.append(("table_unit", f"__{name}__"))
                defaults.append(name)
            else:
                raise SqlParseError(f"unsupported FROM item {item.sql()!r}")
            if on is not None:
                if conds:
                    conds.append("and")
                conds += self.conditions(on, defaults)
        return table_units, conds, defaults

    def column_id(self, node: exp.Expression, defaults: list[str]) -> str:
        if isinstance(node, exp.Star):
            return "__all__"
        if not isinstance(node, exp.Column):
            raise SqlParseError(f"{node.sql()!r} is not a column (Spider's grammar has columns and aggregates only)")
        if isinstance(node.this, exp.Star):
            raise SqlParseError(f"{node.sql()!r}: table.* is outside Spider's SQL grammar")
        name = node.name.lower()
        if node.table:
            table = self.aliases.get(node.table.lower())
            if table is None or name not in self.columns.get(table, ()):
                raise SqlParseError(f"unknown column {node.sql()!r}")
            return f"__{table}.{name}__"
        for table in defaults:
            if name in self.columns[table]:
                return f"__{table}.{name}__"
        raise SqlParseError(f"unknown column {node.sql()!r}")

    def col_unit(self, node: exp.Expression, defaults: list[str]) -> tuple[int, str, bool]:
        node = _unparen(node)
        agg = _AGGS.get(type(node), 0)
        if agg:
            node = _unparen(node.this)
        distinct = isinstance(node, exp.Distinct)
        if distinct:
            if len(node.expressions) != 1:
                raise SqlParseError("DISTINCT over several columns is outside Spider's SQL grammar")
            node = node.expressions[0]
        return agg, self.column_id(node, defaults), distinct

    def val_unit(self, node: exp.Expression, defaults: list[str]) -> tuple[int, Any, Any]:
        node = _unparen(node)
        op = _ARITH.get(type(node))
        if op:
            return op, self.col_unit(node.this, defaults), self.col_unit(node.expression, defaults)
        return 0, self.col_unit(node, defaults), None

    def select_item(self, node: exp.Expression, defaults: list[str]) -> tuple[int, Any]:
        if isinstance(node, exp.Alias):
            node = node.this
        agg = _AGGS.get(type(node), 0)
        if agg:  # Spider keeps a SELECT aggregate outside the val_unit
            return agg, self.val_unit(node.this, defaults)
        return 0, self.val_unit(node, defaults)

    def conditions(self, node: exp.Expression, defaults: list[str]) -> list[Any]:
        """A condition tree in written order: [cond_unit, "and"|"or", cond_unit, ...]."""
        node = _unparen(node)
        if isinstance(node, (exp.And, exp.Or)):
            word = "and" if isinstance(node, exp.And) else "or"
            return [*self.conditions(node.this, defaults), word, *self.conditions(node.expression, defaults)]
        return [self.cond_unit(node, defaults)]

    def cond_unit(self, node: exp.Expression, defaults: list[str]) -> tuple[Any, ...]:
        negated = isinstance(node, exp.Not)
        if negated:
            node = _unparen(node.this)
        if type(node) in _COMPARE:
            op, val1, val2 = _COMPARE[type(node)], self.value(node.expression, defaults), None
        elif isinstance(node, exp.Between):
            op, val1, val2 = 1, self.value(node.args["low"], defaults), self.value(node.args["high"], defaults)
        elif isinstance(node, exp.Like):
            op, val1, val2 = 9, self.value(node.expression, defaults), None
        elif isinstance(node, exp.Is):
            op, val1, val2 = 10, None, None
        elif isinstance(node, exp.In):
            query = node.args.get("query")
            if query is not None:
                val1 = self.query(query)
            elif len(node.expressions) == 1:
                val1 = self.value(node.expressions[0], defaults)
            else:
                raise SqlParseError("IN with a list of values is outside Spider's SQL grammar")
            op, val2 = 8, None
        else:
            raise SqlParseError(f"condition {node.sql()!r} is outside Spider's SQL grammar")
        return negated, op, self.val_unit(node.this, defaults), val1, val2

    def value(self, node: exp.Expression, defaults: list[str]) -> Any:
        node = _unparen(node)
        if isinstance(node, (exp.Select, exp.Subquery, *_SET_OPS)):
            return self.query(node)
        if isinstance(node, exp.Literal):
            return f'"{node.this}"' if node.is_string else float(node.this)
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
            return -float(node.this.this)
        if isinstance(node, exp.Column) and not node.table and node.this.args.get("quoted"):
            try:
                return self.col_unit(node, defaults)
            except SqlParseError:  # SQLite reads an unknown "double-quoted" name as a string, and so does Spider
                return f'"{node.name}"'
        if isinstance(node, exp.Null):
            return None
        return self.col_unit(node, defaults)


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node

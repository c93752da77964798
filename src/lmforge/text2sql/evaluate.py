"""`lmforge text2sql eval`: execution accuracy (EX) and exact-set match (EM) with breakdowns, as JSON + a table.

Gold and predictions are paired by line. EX runs both queries on every SQLite file of the example's database
(test-suite style: the prediction must match on all of them) in a pool of worker processes; EM compares
Spider's canonical structures. A gold query that does not parse or run is a data error: it is reported with its
file and line and left out of the scores, never counted as a model mistake.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.text2sql.denotation import same_denotation
from lmforge.text2sql.exact_match import canonical, exact_set_match, foreign_key_map
from lmforge.text2sql.examples import Example, Prediction
from lmforge.text2sql.execution import (
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT_S,
    limit_worker_memory,
    orders_rows,
    run_query,
    strip_distinct,
)
from lmforge.text2sql.hardness import LEVELS, hardness
from lmforge.text2sql.spider_sql import SqlParseError, empty_sql, parse_sql_tree, spider_structure
from lmforge.text2sql.spider_tables import DbSchema, check_database_matches, database_files, schema_for
from lmforge.utils.errors import DataError

# Outcome of one prediction, from best to worst; "correct"/"wrong_result" need a run on the databases.
OUTCOMES = ("correct", "wrong_result", "execution_error", "timeout", "row_cap", "unparsable")


@dataclass(frozen=True)
class ExecSettings:
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_rows: int = DEFAULT_MAX_ROWS
    keep_distinct: bool = False


def execution_outcome(gold_sql: str, pred_sql: str, db_files: list[str], settings: ExecSettings) -> tuple[str, str]:
    """(outcome, message) of the prediction against gold on every database file; outcome "gold_error" when
    the gold itself fails (a data error)."""
    if not settings.keep_distinct:
        gold_sql, pred_sql = strip_distinct(gold_sql), strip_distinct(pred_sql)
    ordered = orders_rows(gold_sql)
    for db in db_files:
        gold = run_query(db, gold_sql, settings.timeout_s, settings.max_rows)
        if not gold.ok:
            return "gold_error", f"gold query {gold.status} on {db}: {gold.message}"
        pred = run_query(db, pred_sql, settings.timeout_s, settings.max_rows)
        if not pred.ok:
            return ("execution_error" if pred.status == "error" else pred.status), f"{Path(db).name}: {pred.message}"
        if not same_denotation(gold.rows, pred.rows, ordered):
            return "wrong_result", f"different result on {Path(db).name}"
    return "correct", ""


def _outcome_task(args: tuple[str, str, list[str], ExecSettings]) -> tuple[str, str]:
    return execution_outcome(*args)


def check_pairing(preds: list[Prediction], gold: list[Example], pred_path: str, gold_path: str) -> None:
    """Same count, and a prediction that names its database must name gold's (wrong-database guard)."""
    if len(preds) != len(gold):
        raise DataError(
            f"{pred_path} has {len(preds)} predictions but {gold_path} has {len(gold)} gold queries; they pair by line"
        )
    for p, g in zip(preds, gold, strict=True):
        if p.db_id is not None and p.db_id != g.db_id:
            raise DataError(
                f"{p.where}: prediction is for database {p.db_id!r} but the gold query at {g.where} is for "
                f"{g.db_id!r}; predictions and gold are out of step (or from another split)"
            )


def evaluate(
    preds: list[Prediction],
    gold: list[Example],
    schemas: dict[str, DbSchema],
    db_dir: str | None,
    settings: ExecSettings = ExecSettings(),
    workers: int | None = None,
) -> dict[str, Any]:
    """Per-example verdicts and the aggregated report (see `summarize`)."""
    rows: list[dict[str, Any]] = []
    checked: dict[str, int] = {}  # db_id -> database files used
    tasks: list[tuple[int, tuple[str, str, list[str], ExecSettings]]] = []
    for i, (p, g) in enumerate(zip(preds, gold, strict=True)):
        schema = schema_for(schemas, g.db_id, g.where)
        row: dict[str, Any] = {"index": i, "db_id": g.db_id, "gold": g.query, "pred": p.sql, "where": g.where}
        row["data_errors"] = []
        try:
            gold_structure = spider_structure(g.query, schema)
        except SqlParseError as exc:
            row["data_errors"].append(f"{g.where}: gold query outside Spider's grammar ({exc}); EM, hardness skipped")
            gold_structure = None
        row["hardness"] = hardness(gold_structure) if gold_structure else None
        if gold_structure is not None:
            row["exact_match"] = _exact_match(p.sql, gold_structure, schema)
        try:
            parse_sql_tree(p.sql)
            row["parsed"] = True
        except SqlParseError as exc:
            row["parsed"], row["message"] = False, str(exc)
        if db_dir is not None:
            files = database_files(db_dir, g.db_id)
            if not files:
                raise DataError(
                    f"{g.where}: no SQLite file for db_id {g.db_id!r}: expected {Path(db_dir) / g.db_id}/*.sqlite "
                    "(build test databases with `lmforge text2sql synth-db`, or leave out --db-dir for EM only)"
                )
            if g.db_id not in checked:
                for f in files:
                    check_database_matches(schema, f)
                checked[g.db_id] = len(files)
            if row["parsed"]:
                tasks.append((i, (g.query, p.sql, [str(f) for f in files], settings)))
            else:
                row["outcome"] = "unparsable"
        rows.append(row)
    for i, (outcome, message) in zip([t[0] for t in tasks], _run_all([t[1] for t in tasks], workers), strict=True):
        if outcome == "gold_error":
            rows[i]["data_errors"].append(f"{rows[i]['where']}: {message}; EX skipped")
        else:
            rows[i]["outcome"] = outcome
            if message:
                rows[i]["message"] = message
    report = summarize(rows, executed=db_dir is not None)
    report["databases"] = {"db_dir": db_dir, "files_per_db": checked}
    return report


def _exact_match(pred_sql: str, gold_structure: dict[str, Any], schema: DbSchema) -> bool:
    fk_map = foreign_key_map(schema)
    try:
        pred_structure = spider_structure(pred_sql, schema)
    except SqlParseError:
        pred_structure = empty_sql()  # as Spider's evaluation: scored against an empty query
    return bool(exact_set_match(canonical(pred_structure, schema, fk_map), canonical(gold_structure, schema, fk_map)))


def _run_all(tasks: list[tuple[str, str, list[str], ExecSettings]], workers: int | None) -> list[tuple[str, str]]:
    if not tasks:
        return []
    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1:
        limit_worker_memory()
        return [execution_outcome(*t) for t in tasks]
    with ProcessPoolExecutor(max_workers=workers, initializer=limit_worker_memory) as pool:
        return list(pool.map(_outcome_task, tasks, chunksize=max(1, len(tasks) // (workers * 8))))


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _scores(rows: list[dict[str, Any]], executed: bool) -> dict[str, Any]:
    em_rows = [r for r in rows if "exact_match" in r]
    out: dict[str, Any] = {"count": len(rows), "em": _rate(sum(r["exact_match"] for r in em_rows), len(em_rows))}
    if executed:
        ex_rows = [r for r in rows if "outcome" in r]
        out["ex"] = _rate(sum(r["outcome"] == "correct" for r in ex_rows), len(ex_rows))
    return out


def summarize(rows: list[dict[str, Any]], executed: bool) -> dict[str, Any]:
    """Overall EX/EM, the valid-SQL rate, outcome classes, and EX/EM by hardness and by database."""
    judged = [r for r in rows if "outcome" in r] if executed else rows
    valid = [r for r in judged if r["parsed"] and r.get("outcome", "correct") in ("correct", "wrong_result")]
    by_hardness: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_db: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("hardness"):
            by_hardness[r["hardness"]].append(r)
        by_db[r["db_id"]].append(r)
    outcomes = Counter(r["outcome"] for r in rows if "outcome" in r)
    return {
        "metrics": {
            **_scores(rows, executed),
            "valid_sql_rate": _rate(len(valid), len(judged)),
            "executed": executed,
        },
        "outcomes": {k: outcomes.get(k, 0) for k in OUTCOMES} if executed else {},
        "by_hardness": {level: _scores(by_hardness[level], executed) for level in LEVELS if by_hardness[level]},
        "by_db": {db: _scores(r, executed) for db, r in sorted(by_db.items())},
        "data_errors": [e for r in rows for e in r["data_errors"]],
        "examples": rows,
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table: overall, by hardness, by database, outcome classes."""
    executed = report["metrics"]["executed"]
    header = f"{'':<28}{'count':>7}{'EX':>8}{'EM':>8}"
    lines = [header, "-" * len(header)]

    def line(name: str, s: dict[str, Any]) -> str:
        return f"{name:<28}{s['count']:>7}{_pct(s.get('ex')) if executed else '-':>8}{_pct(s['em']):>8}"

    lines.append(line("all", report["metrics"]))
    lines += [line(level, s) for level, s in report["by_hardness"].items()]
    lines.append("")
    lines += [line(db, s) for db, s in report["by_db"].items()]
    lines.append("")
    lines.append(f"valid SQL: {_pct(report['metrics']['valid_sql_rate'])}%")
    if executed:
        files = report.get("databases", {}).get("files_per_db", {})
        lines.append(f"EX on {sum(files.values())} database files under {report['databases']['db_dir']}")
    if report["outcomes"]:
        lines.append("outcomes: " + ", ".join(f"{k} {v}" for k, v in report["outcomes"].items()))
    if report["data_errors"]:
        lines.append(f"data errors (not scored): {len(report['data_errors'])}")
        lines += [f"  {e}" for e in report["data_errors"][:10]]
    return "\n".join(lines)

"""Question files (Spider/BIRD JSON or JSONL), gold files (`SQL<TAB>db_id` lines) and prediction files.

Every record keeps where it came from (file and line or entry number) so errors and reports can name it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.utils.errors import DataError

QUERY_FIELDS = ("query", "SQL", "sql")  # Spider, BIRD, others


@dataclass(frozen=True)
class Example:
    db_id: str
    question: str
    query: str  # gold SQL ("" when a prediction-only input has none)
    where: str  # "file:line" or "file: entry N"
    evidence: str = ""  # BIRD's external-knowledge hint, part of the prompt when present


def _records(path: Path) -> list[tuple[str, Any]]:
    text = _read(path)
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    out.append((f"{path}:{n}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{n}: not valid JSON: {exc.msg}") from None
        return out
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {{db_id, question, query}} records")
    return [(f"{path}: entry {i}", row) for i, row in enumerate(data)]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None


def read_examples(path: str | Path, need_query: bool = True) -> list[Example]:
    """Spider `dev.json`-style records: db_id, question and the gold SQL (query / SQL)."""
    examples = []
    for where, row in _records(Path(path)):
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with db_id, question, query")
        query = next((row[f] for f in QUERY_FIELDS if isinstance(row.get(f), str)), None)
        missing = [f for f, v in (("db_id", row.get("db_id")), ("question", row.get("question"))) if not v]
        if need_query and query is None:
            missing.append("query")
        if missing:
            raise DataError(f"{where}: missing {missing}; expected db_id, question and query (or BIRD's SQL)")
        evidence = str(row.get("evidence") or "")
        examples.append(Example(str(row["db_id"]), str(row["question"]), (query or "").strip(), where, evidence))
    return examples


def find_question_files(inputs: list[str]) -> list[Path]:
    """--spider DIR|FILES: a Spider folder means its train_spider.json + train_others.json (or train.json)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [path / n for n in ("train_spider.json", "train_others.json") if (path / n).is_file()]
            found = found or [p for p in (path / "train.json",) if p.is_file()]
            if not found:
                raise DataError(f"--spider {path}: folder has no train_spider.json, train_others.json or train.json")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"--spider {path}: no such file or folder")
    return files


def read_gold(path: str | Path) -> list[Example]:
    """Gold as Spider's `SQL<TAB>db_id` lines, or a question file (.json/.jsonl) with db_id and query."""
    path = Path(path)
    if path.suffix in (".json", ".jsonl"):
        return read_examples(path)
    gold = []
    for n, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        sql, tab, db_id = line.rpartition("\t")
        if not tab or not sql.strip() or not db_id.strip():
            raise DataError(f"{path}:{n}: expected 'SQL<TAB>db_id' (Spider's gold format), got {line[:80]!r}")
        gold.append(Example(db_id.strip(), "", sql.strip(), f"{path}:{n}"))
    return gold


@dataclass(frozen=True)
class Prediction:
    sql: str
    where: str
    db_id: str | None = None


def read_predictions(path: str | Path) -> list[Prediction]:
    """Our predictions JSONL ({sql, db_id?, ...}) or Spider's one-SQL-per-line text (blank line = empty)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        preds = []
        for where, row in _records(path):
            if not isinstance(row, dict) or not isinstance(row.get("sql"), str):
                raise DataError(f"{where}: expected an object with a string field 'sql'")
            preds.append(Prediction(row["sql"], where, row.get("db_id")))
        return preds
    lines = _read(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [Prediction(line.split("\t")[0].strip(), f"{path}:{n}") for n, line in enumerate(lines, 1)]

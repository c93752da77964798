"""`lmforge text2sql predict`: SQL for each question, generated in batches through the chat engine.

Greedy decoding by default, so a prediction file is reproducible. With `num_samples` > 1 (self-consistency)
each question gets that many sampled answers; they are executed on the question's database and the answer
whose result most candidates share wins (ties: the earliest), candidates that fail to run are out.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.text2sql.examples import Example
from lmforge.text2sql.execution import run_query
from lmforge.text2sql.extract import extract_sql, one_line
from lmforge.text2sql.prepare import PromptBuilder, SplitReport
from lmforge.text2sql.spider_tables import database_files


@dataclass(frozen=True)
class SelfConsistency:
    num_samples: int = 1
    db_dir: str | None = None
    timeout_s: float = 10.0


def result_key(db_file: Path, sql: str, timeout_s: float) -> Any:
    """A hashable stand-in for the query's result as a bag of rows; None when it does not run."""
    result = run_query(db_file, sql, timeout_s, max_rows=10_000)
    if not result.ok:
        return None
    return tuple(sorted(Counter(map(repr, result.rows)).items()))


def majority_by_result(candidates: list[str], db_file: Path | None, timeout_s: float) -> str:
    """The candidate whose execution result the most candidates share (earliest on ties)."""
    if db_file is None or len(candidates) == 1:
        return candidates[0]
    keys = [result_key(db_file, sql, timeout_s) for sql in candidates]
    votes = Counter(k for k in keys if k is not None)
    if not votes:
        return candidates[0]
    best = max(votes.values())
    return next(sql for sql, k in zip(candidates, keys, strict=True) if k is not None and votes[k] == best)


def predict(
    engine: Any,
    examples: list[Example],
    builder: PromptBuilder,
    options: Any,
    batch_size: int,
    consistency: SelfConsistency = SelfConsistency(),
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], SplitReport]:
    """One record per example: db_id, question, the chosen SQL, the raw answer(s)."""
    report = SplitReport()
    n = consistency.num_samples
    records: list[dict[str, Any]] = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        conversations = [builder.build(ex, with_answer=False, report=report) for ex in batch]
        todo = [(ex, conv) for ex, conv in zip(batch, conversations, strict=True) if conv is not None]
        answers = engine.generate_batch([conv for _, conv in todo for _ in range(n)], options) if todo else []
        replies = iter(answers)
        for ex, conv in zip(batch, conversations, strict=True):
            record: dict[str, Any] = {"db_id": ex.db_id, "question": ex.question, "where": ex.where}
            if conv is None:
                record.update(sql="", answer="", error="prompt longer than cutoff_len even with one table")
            else:
                raw = [next(replies) for _ in range(n)]
                candidates = [extract_sql(a) for a in raw]
                files = database_files(consistency.db_dir, ex.db_id) if consistency.db_dir else []
                record["sql"] = majority_by_result(candidates, files[0] if files else None, consistency.timeout_s)
                record["answer"] = raw[0] if n == 1 else raw
                if n > 1:
                    record["candidates"] = candidates
            records.append(record)
        if progress:
            progress(len(batch))
    return records, report


def write_predictions(
    output: str | Path, records: list[dict[str, Any]], settings: dict[str, Any]
) -> tuple[Path, Path]:
    """OUTPUT/predictions.jsonl (everything), OUTPUT/predictions.sql (Spider's one query per line) and
    OUTPUT/predict_settings.json (model, adapter, template, prompt and generation settings: what reproduces it)."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "predict_settings.json").write_text(json.dumps(settings, indent=2, default=str), encoding="utf-8")
    jsonl, sql = out / "predictions.jsonl", out / "predictions.sql"
    with jsonl.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    sql.write_text("".join(one_line(r["sql"]) + "\n" for r in records), encoding="utf-8")
    return jsonl, sql

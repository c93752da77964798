"""Seed tasks for Self-Instruct: the reference seed_tasks.jsonl shape, or any alpaca JSON / JSONL file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.utils.errors import DataError


@dataclass(frozen=True)
class SeedTask:
    id: str
    instruction: str
    instances: tuple[tuple[str, str], ...]  # (input, output)
    is_classification: bool | None  # None: the file does not say


def load_seed_tasks(path: str | Path) -> list[SeedTask]:
    """Seed tasks in file order; errors name the file, line (JSONL) or row (JSON list) and the field."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"self_instruct.seed_tasks: file not found: {path}")
    text = path.read_text(encoding="utf-8")
    rows = _json_rows(path, text)
    tasks = [_task(row, f"{path}:{where}") for where, row in rows]
    if not tasks:
        raise DataError(f"{path}: no seed tasks (the file is empty)")
    return tasks


def _json_rows(path: Path, text: str) -> list[tuple[str, Any]]:
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        return [(f"row {i}", row) for i, row in enumerate(data)]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((str(number), json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: invalid JSON line: {exc.msg}") from None
    return rows


def _task(row: Any, where: str) -> SeedTask:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object with 'instruction', got {type(row).__name__}")
    instruction = row.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise DataError(f"{where}: field 'instruction' must be non-empty text")
    if "instances" in row:  # the reference seed_tasks.jsonl shape
        instances = row["instances"]
        if not isinstance(instances, list) or not all(isinstance(i, dict) and "output" in i for i in instances):
            raise DataError(f"{where}: field 'instances' must be a list of {{input, output}} objects")
        pairs = tuple((str(i.get("input") or ""), str(i["output"])) for i in instances)
    else:
        if not isinstance(row.get("output"), str):
            raise DataError(f"{where}: field 'output' must be text (alpaca rows have instruction, input, output)")
        pairs = ((str(row.get("input") or ""), row["output"]),)
    label = row.get("is_classification")
    return SeedTask(
        str(row.get("id", where)), " ".join(instruction.split()), pairs, label if isinstance(label, bool) else None
    )

"""Evaluation results: eval_results.json (written atomically) and the table printed on stdout."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_METRIC_ORDER = (
    *("loss", "perplexity", "tokens"),
    *("bleu-4", "rouge-1", "rouge-2", "rouge-l"),
    *("accuracy", "correct", "total"),
)


def progress_bar(total: int, desc: str) -> Any:
    """A tqdm bar on terminals; silent when stderr is not a tty (logs, tests)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", disable=None)


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write next to the target, then rename: a crash never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _columns(groups: dict[str, dict[str, Any]]) -> list[str]:
    keys = {k for m in groups.values() for k, v in m.items() if isinstance(v, (int, float))}
    return [k for k in _METRIC_ORDER if k in keys]


def _align(row: list[str], widths: list[int]) -> list[str]:
    """Names left-aligned, numbers right-aligned."""
    return [cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))]


def format_table(results: dict[str, Any]) -> str:
    """Aligned text: one line per dataset / subject / category, then the overall line; skips noted below."""
    groups: dict[str, dict[str, Any]] = {}
    for section, label in (("datasets", "dataset"), ("subjects", "subject"), ("categories", "category")):
        for name, metrics in results.get(section, {}).items():
            groups[f"{label} {name}"] = metrics
    groups["overall"] = results["metrics"]
    columns = _columns(groups)
    table = [["", *columns]] + [[name, *(_cell(m.get(k, "")) for k in columns)] for name, m in groups.items()]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns) + 1)]
    lines = ["  ".join(_align(row, widths)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"{name}: skipped {m['skipped']}" for name, m in results.get("datasets", {}).items() if m.get("skipped")]
    if results.get("skipped_rows"):
        notes.append(f"malformed benchmark rows skipped: {results['skipped_rows']}")
    if results.get("fewer_shots") or results.get("skipped_too_long"):
        notes.append(
            f"prompts shortened to fit (fewer examples): {results['fewer_shots']}; "
            f"questions skipped as too long: {results['skipped_too_long']}"
        )
    return "\n".join([f"task {results['task']} — {results['model']}", *lines, *notes])

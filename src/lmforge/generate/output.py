"""What a generation run leaves in output.dir, appended as it goes.

- NAME.jsonl: the records (alpaca, sharegpt or openai rows) and datasets.yaml naming them, so
  `data.catalog: DIR/datasets.yaml` + `data.datasets: [NAME]` trains on them;
- NAME.provenance.jsonl: one line per record, same order: method, generator, prompt ids, sampling, round, sources;
- rejects.jsonl: every rejected candidate with its reason (the report's counts are these lines, by reason);
- replies.jsonl: every model reply by request key, the journal `--resume` replays;
- report.json: counts of all the above, written at the end and when a run stops early.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import yaml

from lmforge.utils.errors import LmforgeError

JOURNAL = "replies.jsonl"
REJECTS = "rejects.jsonl"
REPORT = "report.json"
CATALOG = "datasets.yaml"


def as_row(fmt: str, instruction: str, input_text: str, output: str) -> dict[str, Any]:
    """One instruction/input/output example in the dataset format (input joins the user turn for chat formats)."""
    if fmt == "alpaca":
        return {"instruction": instruction, "input": input_text, "output": output}
    user = f"{instruction}\n\n{input_text}" if input_text else instruction
    if fmt == "sharegpt":
        return {"conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": output}]}
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": output}]}


def read_journal(path: Path) -> dict[str, dict[str, Any]]:
    """Replies by key; a last line cut by a kill is dropped (its request is sent again)."""
    replies: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return replies
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "key" in row:
            replies[row["key"]] = row
    return replies


class OutputStore:
    """The run's files. Records, provenance and rejects are rebuilt from the start on every (re)run: the pipeline
    replays journaled replies deterministically, so a resumed run writes exactly what an uninterrupted one did."""

    def __init__(self, folder: str | Path, name: str, fmt: str, resume: bool) -> None:
        self.folder = Path(folder)
        self.name, self.format = name, fmt
        self.dataset = self.folder / f"{name}.jsonl"
        self.provenance = self.folder / f"{name}.provenance.jsonl"
        journal = self.folder / JOURNAL
        if journal.exists() and not resume:
            raise LmforgeError(
                f"output.dir {self.folder} holds an earlier run ({JOURNAL}); continue it with --resume, "
                "or choose a new output.dir"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.replies = read_journal(journal)
        if self.replies:  # rewrite the journal without a torn last line before appending to it
            journal.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.replies.values()))
        self._journal = journal.open("a", encoding="utf-8")
        self._records = self.dataset.open("w", encoding="utf-8")
        self._prov = self.provenance.open("w", encoding="utf-8")
        self._rejects = (self.folder / REJECTS).open("w", encoding="utf-8")
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}  # reason -> first few rejected texts, for the printed summary
        self.write_catalog()

    def journal(self, key: str, reply: dict[str, Any]) -> None:
        self.replies[key] = {"key": key, **reply}
        _append(self._journal, self.replies[key])

    def record(self, instruction: str, input_text: str, output: str, provenance: dict[str, Any]) -> None:
        self.accepted += 1
        _append(self._records, as_row(self.format, instruction, input_text, output))
        _append(self._prov, {"id": f"{self.name}-{self.accepted:06d}", **provenance})

    def reject(self, reason: str, text: str, **detail: Any) -> None:
        self.rejected[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(text[:160])
        _append(self._rejects, {"reason": reason, "text": text, **detail})

    def write_catalog(self) -> None:
        entry = {"file_name": self.dataset.name, "format": self.format}
        path = self.folder / CATALOG
        catalog = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
        catalog = catalog if isinstance(catalog, dict) else {}
        catalog[self.name] = entry
        path.write_text(yaml.safe_dump(catalog, sort_keys=False), encoding="utf-8")

    def write_report(self, extra: dict[str, Any]) -> dict[str, Any]:
        report = {
            "name": self.name,
            "dataset": str(self.dataset),
            "catalog": str(self.folder / CATALOG),
            "records": self.accepted,
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": sum(self.rejected.values()),
            "reject_examples": self.examples,
            **extra,
        }
        (self.folder / REPORT).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return report

    def close(self) -> None:
        for handle in (self._journal, self._records, self._prov, self._rejects):
            handle.close()


def _append(handle: TextIO, row: dict[str, Any]) -> None:
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    handle.flush()

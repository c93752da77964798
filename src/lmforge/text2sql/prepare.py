"""`lmforge text2sql prepare`: Spider/BIRD question files + tables.json -> an SFT dataset and its catalogue.

Writes OUTPUT/<name>_train.jsonl (and <name>_dev.jsonl with --dev) in the openai messages format, OUTPUT/
datasets.yaml naming them, OUTPUT/text2sql_prompt.json (the prompt settings `predict` reuses) and OUTPUT/
prepare_report.json (counts, truncation, leakage).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lmforge.data.encode import require_template
from lmforge.text2sql.examples import Example, read_examples
from lmforge.text2sql.prompt_fit import fit_blocks
from lmforge.text2sql.spider_tables import DbSchema, schema_for
from lmforge.text2sql.sql_prompts import PromptSettings, blocks_for, messages_for

if TYPE_CHECKING:
    from lmforge.templates import ChatTemplate

PROMPT_FILE = "text2sql_prompt.json"


@dataclass
class SplitReport:
    examples: int = 0
    written: int = 0
    truncated: int = 0
    dropped_tables: int = 0
    dropped_columns: int = 0
    dropped_too_long: list[str] = field(default_factory=list)


class PromptBuilder:
    """Messages per example, fitted to cutoff_len when a tokenizer and template are given."""

    def __init__(
        self,
        schemas: dict[str, DbSchema],
        settings: PromptSettings,
        db_dir: str | None,
        tokenizer: Any = None,
        template: ChatTemplate | None = None,
        cutoff_len: int | None = None,
    ) -> None:
        self.schemas, self.settings, self.db_dir = schemas, settings, db_dir
        self.tokenizer, self.template = tokenizer, template
        self.cutoff_len = cutoff_len if tokenizer is not None else None
        self._blocks: dict[str, Any] = {}

    def build(self, example: Example, with_answer: bool, report: SplitReport) -> list[dict[str, Any]] | None:
        schema = schema_for(self.schemas, example.db_id, example.where)
        if example.db_id not in self._blocks:
            self._blocks[example.db_id] = blocks_for(schema, self.settings, self.db_dir)

        def length(blocks: list[Any]) -> int:  # called only with a cutoff, which comes with tokenizer and template
            template = require_template(self.template)
            messages = messages_for(example, schema, blocks, self.settings, with_answer)
            if with_answer:
                return len(template.encode(self.tokenizer, messages).input_ids)
            return len(template.encode_prompt(self.tokenizer, messages))

        fitted = fit_blocks(self._blocks[example.db_id], length, self.cutoff_len, example.query if with_answer else "")
        report.examples += 1
        if fitted.blocks is None:
            report.dropped_too_long.append(example.where)
            return None
        if fitted.dropped_tables:
            report.truncated += 1
            report.dropped_tables += fitted.dropped_tables
            report.dropped_columns += fitted.dropped_columns
        report.written += 1
        return messages_for(example, schema, fitted.blocks, self.settings, with_answer)


def _write_split(path: Path, examples: list[Example], builder: PromptBuilder) -> SplitReport:
    report = SplitReport()
    with path.open("w", encoding="utf-8") as out:
        for ex in examples:
            messages = builder.build(ex, with_answer=True, report=report)
            if messages is not None:
                out.write(json.dumps({"messages": messages, "db_id": ex.db_id}, ensure_ascii=False) + "\n")
    return report


def leakage(train: list[Example], dev: list[Example]) -> dict[str, Any]:
    """Dev databases and questions that also occur in train (Spider's splits share no database)."""
    train_dbs = Counter(e.db_id for e in train)
    shared = sorted({e.db_id for e in dev} & set(train_dbs))
    questions = {(e.db_id, e.question.strip().lower()) for e in train}
    repeated = [e.where for e in dev if (e.db_id, e.question.strip().lower()) in questions]
    return {"shared_databases": shared, "repeated_questions": len(repeated), "repeated_examples": repeated[:20]}


def prepare(
    question_files: list[Path],
    schemas: dict[str, DbSchema],
    output: str | Path,
    settings: PromptSettings,
    builder_args: dict[str, Any],
    dev_file: Path | None = None,
    name: str = "text2sql",
) -> dict[str, Any]:
    """Write the dataset files, catalogue, prompt settings and report; return the report."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    builder = PromptBuilder(schemas, settings, **builder_args)
    train = [e for f in question_files for e in read_examples(f)]
    splits = {f"{name}_train": train}
    if dev_file is not None:
        splits[f"{name}_dev"] = read_examples(dev_file)
    report: dict[str, Any] = {"inputs": [str(f) for f in question_files], "splits": {}}
    catalog = {}
    for split, examples in splits.items():
        split_report = _write_split(out / f"{split}.jsonl", examples, builder)
        report["splits"][split] = vars(split_report)
        catalog[split] = {"file_name": f"{split}.jsonl", "format": "openai"}
    if dev_file is not None:
        report["leakage"] = leakage(train, splits[f"{name}_dev"])
    (out / "datasets.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False), encoding="utf-8")
    prompt = {**settings.to_dict(), "cutoff_len": builder.cutoff_len}
    (out / PROMPT_FILE).write_text(json.dumps(prompt, indent=2), encoding="utf-8")
    (out / "prepare_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def format_prepare_report(report: dict[str, Any], output: str) -> str:
    lines = []
    for split, r in report["splits"].items():
        line = f"{split}: {r['written']} of {r['examples']} examples -> {output}/{split}.jsonl"
        if r["truncated"]:
            line += (
                f"; {r['truncated']} schemas truncated to fit cutoff_len "
                f"({r['dropped_tables']} tables / {r['dropped_columns']} columns left out)"
            )
        if r["dropped_too_long"]:
            line += f"; {len(r['dropped_too_long'])} dropped (too long even with one table), first: "
            line += r["dropped_too_long"][0]
        lines.append(line)
    leak = report.get("leakage")
    if leak and (leak["shared_databases"] or leak["repeated_questions"]):
        lines.append(
            f"warning: leakage: dev databases also in train: {', '.join(leak['shared_databases']) or 'none'}; "
            f"{leak['repeated_questions']} dev questions repeat a train question on the same database"
        )
    lines.append(f"catalogue: {output}/datasets.yaml (data.catalog), datasets: {', '.join(report['splits'])}")
    return "\n".join(lines)

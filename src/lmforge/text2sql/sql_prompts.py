"""Chat messages for one question: a system instruction, the schema + question as the user turn, the SQL as
the assistant turn. The chat template turns these into ids, so training and prediction see the same prompt.
The user turn starts with `Database DB_ID schema:`, which is how the GRPO reward finds the database."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lmforge.templates import Message
from lmforge.text2sql.examples import Example
from lmforge.text2sql.serialize import SCHEMA_FORMATS, TableBlock, schema_text, table_blocks
from lmforge.text2sql.spider_tables import DbSchema, database_files
from lmforge.utils.errors import ConfigError

SYSTEM_PROMPT = (
    "You are a SQLite expert. Given a database schema and a question, answer with one SQLite query that "
    "answers the question, and nothing else."
)


@dataclass(frozen=True)
class PromptSettings:
    """How prompts are built; prepare saves these next to the data so predict rebuilds identical prompts."""

    schema_format: str = "nl"
    sample_rows: int = 0
    system: str = SYSTEM_PROMPT

    def __post_init__(self) -> None:
        if self.schema_format not in SCHEMA_FORMATS:
            raise ConfigError(f"schema format {self.schema_format!r}: expected one of {', '.join(SCHEMA_FORMATS)}")
        if self.sample_rows < 0:
            raise ConfigError(f"sample rows must be >= 0, got {self.sample_rows}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def blocks_for(schema: DbSchema, settings: PromptSettings, db_dir: str | Path | None) -> list[TableBlock]:
    """Table blocks, with sample rows from the database's first SQLite file when rows are asked for."""
    files = database_files(db_dir, schema.db_id) if db_dir and settings.sample_rows else []
    return table_blocks(schema, settings.schema_format, files[0] if files else None, settings.sample_rows)


def messages_for(
    example: Example, schema: DbSchema, blocks: list[TableBlock], settings: PromptSettings, with_answer: bool
) -> list[Message]:
    user = f"Database {schema.db_id} schema:\n{schema_text(schema, settings.schema_format, blocks)}\n\n"
    if example.evidence:
        user += f"Hint: {example.evidence}\n"
    user += f"Question: {example.question}"
    messages: list[Message] = [{"role": "system", "content": settings.system}, {"role": "user", "content": user}]
    if with_answer:
        messages.append({"role": "assistant", "content": example.query})
    return messages


def load_prompt_settings(
    path: str | None, schema_format: str | None, sample_rows: int | None
) -> tuple[PromptSettings, int | None]:
    """Settings saved by prepare (flags may not contradict them), or built from the flags; plus its cutoff_len."""
    if path is None:
        return PromptSettings(schema_format or "nl", sample_rows or 0), None
    import json

    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--prompt-settings {path}: cannot read it ({exc})") from None
    cutoff = saved.pop("cutoff_len", None)
    unknown = set(saved) - set(PromptSettings.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"--prompt-settings {path}: unknown keys {sorted(unknown)}")
    settings = PromptSettings(**saved)
    for flag, value, kept in (
        ("--schema-format", schema_format, settings.schema_format),
        ("--sample-rows", sample_rows, settings.sample_rows),
    ):
        if value is not None and value != kept:
            raise ConfigError(f"{flag} {value} differs from {path} ({kept}); prompts would differ from training's")
    return settings, cutoff


_DB_LINE = re.compile(r"^Database (\S+) schema:", re.MULTILINE)


def prompt_db_id(messages: list[Message]) -> str | None:
    """The db_id named by a prompt built here (the last user turn), or None."""
    users = [m for m in messages if m.get("role") == "user"]
    found = _DB_LINE.search(str(users[-1].get("content", ""))) if users else None
    return found.group(1) if found else None

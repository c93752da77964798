"""`text2sql prepare`: schema text, chat-message rows the catalogue names, same prompt ids at train and
inference, cutoff_len fitting that counts what it leaves out, leakage report, clean errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lmforge.data.catalog import load_catalog
from lmforge.models.adapters import load_plain_tokenizer
from lmforge.templates import get_template
from lmforge.text2sql.examples import read_examples
from lmforge.text2sql.prepare import PromptBuilder, SplitReport, prepare
from lmforge.text2sql.spider_tables import DbSchema
from lmforge.text2sql.sql_prompts import PromptSettings
from lmforge.utils.errors import DataError
from tests.unit.text2sql.conftest import FIXTURES


@pytest.fixture
def singer_files(tmp_path: Path, dev_examples: list[dict]) -> tuple[Path, Path]:
    """(question file with the 30 singer examples, db_dir holding singer/singer.sqlite)."""
    questions = tmp_path / "singer.json"
    questions.write_text(json.dumps([e for e in dev_examples if e["db_id"] == "singer"]), encoding="utf-8")
    (tmp_path / "db" / "singer").mkdir(parents=True)
    (tmp_path / "db" / "singer" / "singer.sqlite").write_bytes((FIXTURES / "singer.sqlite").read_bytes())
    return questions, tmp_path / "db"


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_nl_schema_with_sample_rows_and_catalogue(
    tmp_path: Path, singer_files: tuple[Path, Path], spider_schemas: dict[str, DbSchema]
) -> None:
    questions, db_dir = singer_files
    report = prepare([questions], spider_schemas, tmp_path / "out", PromptSettings("nl", 2), {"db_dir": str(db_dir)})
    rows = _rows(tmp_path / "out" / "text2sql_train.jsonl")
    assert report["splits"]["text2sql_train"]["written"] == len(rows) == 30
    system, user, assistant = rows[0]["messages"]
    assert (system["role"], user["role"], assistant["role"]) == ("system", "user", "assistant")
    assert assistant["content"] == read_examples(questions)[0].query
    assert "singer contains tables such as singer, song." in user["content"]
    assert "Singer_ID is the primary key." in user["content"]
    assert "The Singer_ID of song is the foreign key of Singer_ID of singer." in user["content"]
    assert "Sample rows of singer: (1, Liliane Bettencourt" in user["content"]
    spec = load_catalog(tmp_path / "out" / "datasets.yaml").spec("text2sql_train")
    assert spec.format == "openai" and Path(spec.path) == (tmp_path / "out" / "text2sql_train.jsonl").resolve()


def test_ddl_schema(tmp_path: Path, singer_files: tuple[Path, Path], spider_schemas: dict[str, DbSchema]) -> None:
    prepare([singer_files[0]], spider_schemas, tmp_path / "out", PromptSettings("ddl"), {"db_dir": None})
    user = _rows(tmp_path / "out" / "text2sql_train.jsonl")[0]["messages"][1]["content"]
    assert "CREATE TABLE singer (\n  Singer_ID NUMBER,\n  Name TEXT," in user
    assert "FOREIGN KEY (Singer_ID) REFERENCES singer(Singer_ID)" in user


def test_prompt_ids_at_inference_equal_the_training_prefix(
    tiny_tokenizer_dir: Path, singer_files: tuple[Path, Path], spider_schemas: dict[str, DbSchema]
) -> None:
    tokenizer = load_plain_tokenizer(str(tiny_tokenizer_dir))
    template = get_template("chatml", tokenizer)
    builder = PromptBuilder(spider_schemas, PromptSettings(), None, tokenizer, template, 4096)
    example = read_examples(singer_files[0])[3]
    train = builder.build(example, with_answer=True, report=SplitReport())
    infer = builder.build(example, with_answer=False, report=SplitReport())
    assert train[:-1] == infer
    encoded = template.encode(tokenizer, train)
    prompt = template.encode_prompt(tokenizer, infer)
    assert encoded.input_ids[: len(prompt)] == prompt
    assert all(label == -100 for label in encoded.labels[: len(prompt)])


def test_long_schemas_are_fitted_and_counted(
    tiny_tokenizer_dir: Path, singer_files: tuple[Path, Path], spider_schemas: dict[str, DbSchema]
) -> None:
    tokenizer = load_plain_tokenizer(str(tiny_tokenizer_dir))
    template = get_template("chatml", tokenizer)
    examples = read_examples(singer_files[0])
    full = PromptBuilder(spider_schemas, PromptSettings(), None, tokenizer, template, None)
    lengths = [len(template.encode(tokenizer, full.build(e, True, SplitReport())).input_ids) for e in examples]
    cutoff = min(lengths) - 1  # every example needs at least one table left out
    builder = PromptBuilder(spider_schemas, PromptSettings(), None, tokenizer, template, cutoff)
    report = SplitReport()
    built = [builder.build(e, True, report) for e in examples]
    kept = [m for m in built if m is not None]
    assert report.examples == 30 and report.written == len(kept) and report.truncated == len(kept) > 0
    assert len(report.dropped_too_long) == 30 - len(kept)
    assert report.dropped_tables >= len(kept) and report.dropped_columns >= report.dropped_tables
    assert all(len(template.encode(tokenizer, m).input_ids) <= cutoff for m in kept)
    # the table the gold query reads is kept; the unused one went first
    only_singer = [m for m, e in zip(built, examples, strict=True) if m and "song" not in e.query.lower()]
    assert only_singer and all("Table singer has" in m[1]["content"] for m in only_singer)


def test_leakage_between_train_and_dev_is_reported(
    tmp_path: Path, singer_files: tuple[Path, Path], spider_schemas: dict[str, DbSchema]
) -> None:
    questions, _ = singer_files
    report = prepare([questions], spider_schemas, tmp_path / "out", PromptSettings(), {"db_dir": None}, questions)
    assert report["leakage"]["shared_databases"] == ["singer"]
    assert report["leakage"]["repeated_questions"] == 30
    assert set(yaml_names(tmp_path / "out" / "datasets.yaml")) == {"text2sql_train", "text2sql_dev"}


def yaml_names(path: Path) -> list[str]:
    import yaml

    return list(yaml.safe_load(path.read_text(encoding="utf-8")))


def test_db_id_without_schema_names_the_entry(tmp_path: Path, spider_schemas: dict[str, DbSchema]) -> None:
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps([{"db_id": "singr", "question": "q", "query": "SELECT 1"}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"q.json: entry 0: db_id 'singr' has no schema.*did you mean \"singer\""):
        prepare([questions], spider_schemas, tmp_path / "out", PromptSettings(), {"db_dir": None})


def test_question_without_query_names_the_line(tmp_path: Path, spider_schemas: dict[str, DbSchema]) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"db_id": "singer", "question": "q", "query": "SELECT 1"}\n{"db_id": "singer"}\n')
    with pytest.raises(DataError, match=r"q.jsonl:2: missing \['question', 'query'\]"):
        read_examples(questions)


def test_spider_folder_means_its_train_files(tmp_path: Path) -> None:
    from lmforge.text2sql.examples import find_question_files

    for name in ("train_spider.json", "train_others.json", "dev.json"):
        (tmp_path / name).write_text("[]")
    assert find_question_files([str(tmp_path)]) == [tmp_path / "train_spider.json", tmp_path / "train_others.json"]
    with pytest.raises(DataError, match=r"no train_spider\.json"):
        find_question_files([str(tmp_path / "dev.json"), str(tmp_path.parent)])

"""Benchmark files: the MMLU, C-Eval and CMMLU layouts parse as published; bad files name file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.evaluation.benchmarks import LAYOUTS, BadRows, Question, read_categories, read_questions
from lmforge.utils.errors import DataError
from tests.unit.evaluation.conftest import SAMPLES


@pytest.mark.parametrize(
    "layout, root, split, subjects, first",
    [
        ("mmlu", "mmlu", "test", ["elementary_arithmetic", "world_geography"], ("What is 11 + 11?", "B", "21")),
        ("ceval", "ceval", "val", ["basic_arithmetic", "chinese_geography"], ("9 加 6 等于多少？", "A", "15")),
        ("cmmlu", "cmmlu", "test", ["arithmetic", "chinese_geography"], ("9 加 6 等于多少？", "A", "15")),
    ],
)
def test_sample_benchmarks_parse_in_each_layout(
    layout: str, root: str, split: str, subjects: list[str], first: tuple[str, str, str]
) -> None:
    spec = LAYOUTS[layout]
    assert spec.subjects(SAMPLES / root, split) == subjects
    questions = read_questions(spec, spec.file(SAMPLES / root, subjects[0], split), "error", BadRows())
    assert (questions[0].question, questions[0].answer, questions[0].options["A"]) == (first[0], first[1], first[2])
    assert all(list(q.options) == ["A", "B", "C", "D"] for q in questions)
    dev = read_questions(spec, spec.file(SAMPLES / root, subjects[0], "dev"), "error", BadRows())
    assert len(dev) == 5


def test_quoted_fields_with_commas_and_newlines(tmp_path: Path) -> None:
    path = tmp_path / "data" / "test" / "x_test.csv"
    path.parent.mkdir(parents=True)
    path.write_text('"Which, of these?\nPick one.",a,"b, c",d,e,C\nQ2,1,2,3,4,A\n', encoding="utf-8")
    questions = read_questions(LAYOUTS["mmlu"], path, "error", BadRows())
    assert questions[0] == Question("Which, of these?\nPick one.", {"A": "a", "B": "b, c", "C": "d", "D": "e"}, "C")
    assert questions[1].answer == "A"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "layout, text, message",
    [
        ("mmlu", "Q1,a,b,c,d,A\nQ2,a,b,c,A\n", "x.csv: line 2: 5 columns, expected 6"),
        ("mmlu", "Q1,a,b,c,d,A\nQ2,a,b,c,d,E\n", "line 2, column 6 (answer): 'E' is not one of A, B, C, D"),
        ("mmlu", "question,A,B,C,D,answer\nQ1,a,b,c,d,A\n", "line 1 is a header, but MMLU files have none"),
        ("mmlu", "Q1,a,b,c,d,A\n,a,b,c,d,A\n", "line 2, column 1 (question): empty"),
        ("ceval", "id,question,A,B,C,D,anwser\n0,Q,a,b,c,d,A\n", "has no column 'answer' (did you mean \"anwser\"?)"),
        ("ceval", "id,question,A,B,C,D,answer\n0,Q,a,b,c,d,\n", "line 2, column 7 (answer): empty"),
        ("cmmlu", ",Question,A,C,B,D,Answer\n0,Q,a,b,c,d,A\n", "option columns ['A', 'C', 'B', 'D']"),
        ("cmmlu", "", "file is empty"),
    ],
)
def test_bad_rows_name_file_line_column_and_expectation(tmp_path: Path, layout: str, text: str, message: str) -> None:
    path = _write(tmp_path, "x.csv", text)
    with pytest.raises(DataError, match=r"x\.csv") as exc:
        read_questions(LAYOUTS[layout], path, "error", BadRows())
    assert message in str(exc.value)


def test_ceval_test_split_without_answers_points_to_val() -> None:
    spec = LAYOUTS["ceval"]
    with pytest.raises(DataError, match=r"line 2, column 7 \(answer\): empty .*evaluate split val"):
        read_questions(spec, spec.file(SAMPLES / "ceval", "basic_arithmetic", "test"), "error", BadRows())


def test_skip_counts_bad_rows_and_keeps_the_rest(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", "Q1,a,b,c,d,A\nQ2,a,b,c,d,Z\nQ3,a,b,c\nQ4,a,b,c,d,D\n")
    bad = BadRows()
    questions = read_questions(LAYOUTS["mmlu"], path, "skip", bad)
    assert [q.question for q in questions] == ["Q1", "Q4"]
    assert [(r["line"], str(r["file"]).endswith("x.csv")) for r in bad.rows] == [(2, True), (3, True)]


def test_undecodable_file_names_byte_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"Q1,a,b,c,d,A\nQ2,\xff,b,c,d,A\n")
    with pytest.raises(DataError, match=r"x.csv: cannot decode as utf-8 at byte offset 16 \(line 2\)"):
        read_questions(LAYOUTS["mmlu"], path, "error", BadRows())


def test_missing_split_folder_lists_what_exists() -> None:
    with pytest.raises(DataError, match=r"no val/ folder for the cmmlu layout.*found folders: dev, test"):
        LAYOUTS["cmmlu"].subjects(SAMPLES / "cmmlu", "val")


def test_categories_read_plain_and_ceval_mappings(tmp_path: Path) -> None:
    mmlu = read_categories(str(SAMPLES / "mmlu" / "categories.json"), ["world_geography", "elementary_arithmetic"])
    assert mmlu == {"world_geography": "social sciences", "elementary_arithmetic": "STEM"}
    ceval = read_categories(str(SAMPLES / "ceval" / "subject_mapping.json"), ["basic_arithmetic", "unlisted"])
    assert ceval == {"basic_arithmetic": "STEM", "unlisted": "(unmapped)"}
    bad = _write(tmp_path, "c.json", '{"a": 3}')
    with pytest.raises(DataError, match="key 'a': expected a category name"):
        read_categories(str(bad), ["a"])

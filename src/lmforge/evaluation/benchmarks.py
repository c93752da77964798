"""Multiple-choice benchmark files in the MMLU, C-Eval and CMMLU layouts (local folders, read as published).

  mmlu   data/{dev,val,test}/{subject}_{split}.csv   no header: question, A, B, C, D, answer
  ceval  {dev,val,test}/{subject}_{split}.csv        header id,question,A,B,C,D,answer[,explanation]
  cmmlu  {dev,test}/{subject}.csv                    header ,Question,A,B,C,D,Answer (first column: row index)

Rows are parsed with the csv module (quoted fields may span lines); a bad row is an error naming the file, its line
and column and what was expected, or, with on_bad_row: skip, is counted and listed instead.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from lmforge.data.readers import decode_bytes
from lmforge.utils.errors import DataError, did_you_mean

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Question:
    question: str
    options: dict[str, str]  # letter -> option text, in letter order
    answer: str


@dataclass(frozen=True)
class Layout:
    name: str
    file_pattern: str  # formatted with subject and split
    question_col: str | None  # header name; None = no header (positional)
    answer_col: str | None
    header_hint: str

    def split_dir(self, root: Path, split: str) -> Path:
        if self.name == "mmlu" and (root / "data" / split).is_dir():
            return root / "data" / split
        return root / split

    def file(self, root: Path, subject: str, split: str) -> Path:
        return self.split_dir(root, split) / self.file_pattern.format(subject=subject, split=split)

    def subjects(self, root: Path, split: str) -> list[str]:
        folder = self.split_dir(root, split)
        if not root.is_dir():
            raise DataError(f"choice.benchmark_dir: folder {root} does not exist")
        if not folder.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise DataError(
                f"{root}: no {split}/ folder for the {self.name} layout ({self.header_hint}); "
                f"found folders: {', '.join(found) or '(none)'}"
            )
        suffix = self.file_pattern.format(subject="", split=split)
        names = sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}") if p.is_file())
        if not names:
            raise DataError(f"{folder}: no *{suffix} files ({self.name} layout: {self.header_hint})")
        return names


LAYOUTS = {
    "mmlu": Layout("mmlu", "{subject}_{split}.csv", None, None, "data/SPLIT/SUBJECT_SPLIT.csv, no header"),
    "ceval": Layout(
        "ceval",
        "{subject}_{split}.csv",
        "question",
        "answer",
        "SPLIT/SUBJECT_SPLIT.csv, header id,question,A..D,answer[,explanation]",
    ),
    "cmmlu": Layout("cmmlu", "{subject}.csv", "Question", "Answer", "SPLIT/SUBJECT.csv, header ,Question,A..D,Answer"),
}


@dataclass
class BadRows:
    """Rows skipped under on_bad_row: skip, counted per file with the reason."""

    rows: list[dict[str, object]] = field(default_factory=list)

    def add(self, error: DataError, path: Path, line: int) -> None:
        self.rows.append({"file": str(path), "line": line, "error": str(error)})


def _test_split_hint(path: Path) -> str:
    if not path.name.endswith("_test.csv"):
        return ""
    return " (C-Eval's test split ships without answers: evaluate split val)"


def _columns(layout: Layout, path: Path, first: list[str]) -> tuple[int, list[int], int, bool]:
    """(question column, option columns, answer column, first row is a header) for this file."""
    if layout.question_col is None:
        if [c.strip().lower() for c in (first[0], first[-1])] == ["question", "answer"]:
            raise DataError(f"{path}: line 1 is a header, but MMLU files have none (is this the ceval/cmmlu layout?)")
        if len(first) < 4:
            raise DataError(f"{path}: line 1: {len(first)} columns; expected question, 2+ options, answer")
        return 0, list(range(1, len(first) - 1)), len(first) - 1, False
    names = [c.strip() for c in first]
    for needed in (layout.question_col, layout.answer_col):
        if needed not in names:
            raise DataError(
                f"{path}: line 1: header {','.join(names)!r} has no column {needed!r}"
                f"{did_you_mean(str(needed), names)}; expected {layout.header_hint}{_test_split_hint(path)}"
            )
    options = [i for i, n in enumerate(names) if len(n) == 1 and n in LETTERS]
    if [names[i] for i in options] != list(LETTERS[: len(options)]) or len(options) < 2:
        raise DataError(f"{path}: line 1: option columns {[names[i] for i in options]}; expected A, B, C, D in order")
    return names.index(str(layout.question_col)), options, names.index(str(layout.answer_col)), True


def _question(row: list[str], width: int, cols: tuple[int, list[int], int], path: Path, line: int) -> Question:
    q_col, option_cols, a_col = cols
    if len(row) != width:
        raise DataError(f"{path}: line {line}: {len(row)} columns, expected {width} (as in the file's first line)")
    letters = [LETTERS[k] for k in range(len(option_cols))]
    answer = row[a_col].strip()
    if not answer:
        raise DataError(f"{path}: line {line}, column {a_col + 1} (answer): empty{_test_split_hint(path)}")
    if answer not in letters:
        raise DataError(
            f"{path}: line {line}, column {a_col + 1} (answer): {answer!r} is not one of {', '.join(letters)}"
        )
    if not row[q_col].strip():
        raise DataError(f"{path}: line {line}, column {q_col + 1} (question): empty")
    return Question(row[q_col].strip(), {L: row[c].strip() for L, c in zip(letters, option_cols, strict=True)}, answer)


def read_questions(layout: Layout, path: Path, on_bad_row: str, bad: BadRows) -> list[Question]:
    """Every question of one subject file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found ({layout.name} layout: {layout.header_hint})")
    text = decode_bytes(path.read_bytes(), path, "utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    records = []
    start = 1
    for record in reader:
        records.append((start, record))
        start = reader.line_num + 1
    records = [(line, r) for line, r in records if any(c.strip() for c in r)]
    if not records:
        raise DataError(f"{path}: file is empty")
    q_col, option_cols, a_col, has_header = _columns(layout, path, records[0][1])
    questions = []
    for line, record in records[1:] if has_header else records:
        try:
            questions.append(_question(record, len(records[0][1]), (q_col, option_cols, a_col), path, line))
        except DataError as exc:
            if on_bad_row != "skip":
                raise
            bad.add(exc, path, line)
    return questions


def read_categories(path: str, subjects: list[str]) -> dict[str, str]:
    """subject -> category from JSON: {"subject": "category"} or C-Eval's {"subject": [en, zh, category]}."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"choice.categories: file not found: {file}")
    try:
        raw = json.loads(decode_bytes(file.read_bytes(), file, "utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{file}: expected an object mapping subject -> category")
    mapping = {}
    for subject in subjects:
        value = raw.get(subject)
        if isinstance(value, list) and value:
            value = value[-1]
        if value is not None and not isinstance(value, str):
            raise DataError(f"{file}: key {subject!r}: expected a category name or [en, zh, category], got {value!r}")
        mapping[subject] = value or "(unmapped)"
    return mapping

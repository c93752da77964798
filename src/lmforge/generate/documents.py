"""Documents for Self-QA: read text files, turn CSV tables into text, and cut documents into overlapping chunks.

A chunk is what the generator model sees as background for its questions and answers, so chunks are measured in the
generator's tokens (its context is the limit) and cut, when possible, where a paragraph or sentence ends, so a
question is not asked about half a sentence. Each chunk keeps its character span in the document for provenance.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.utils.errors import ConfigError, DataError

DOCUMENT_SUFFIXES = (".txt", ".md", ".jsonl", ".csv")
_MISSING_CELL = {"", "-"}  # table cells that hold no value (the "-" separator rows of hand-written tables)


@dataclass(frozen=True)
class Document:
    """`id`: stable name (file path relative to the folder given, plus `:line` for a JSON Lines row)."""

    id: str
    text: str
    source: str


@dataclass(frozen=True)
class Chunk:
    """`text == document.text[start_char:end_char]`; `id` is `doc_id#0003` (the chunk's number in its document)."""

    id: str
    doc_id: str
    text: str
    start_char: int
    end_char: int


def read_text_file(path: Path) -> str:
    """A UTF-8 text file (BOM dropped); errors name the file: unreadable, not UTF-8 (with the line), empty."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: not UTF-8 text (byte offset {exc.start}, line {line}: {exc.reason}); convert the file to UTF-8"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


def _jsonl_documents(path: Path, name: str) -> list[Document]:
    expected = 'expected one JSON object per line with a non-empty string field "text"'
    docs = []
    for line_no, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_no}: invalid JSON ({exc.msg}, column {exc.colno}); {expected}") from None
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            got = f"fields {sorted(row)}" if isinstance(row, dict) else type(row).__name__
            if isinstance(row, dict) and "text" in row:
                got = f'"text" = {json.dumps(text, ensure_ascii=False)[:60]}'
            raise DataError(f"{path}:{line_no}: {expected}; got {got}")
        docs.append(Document(id=f"{name}:{line_no}", text=text, source=f"{path}:{line_no}"))
    return docs


def load_documents(path: str | Path) -> list[Document]:
    """Documents from a .txt/.md file (one document), a .jsonl file (one per line, field `text`), a .csv table
    (`table_to_text`), or a folder of those (recursive, sorted by path; other files are ignored)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES)
        if not files:
            raise DataError(f"{path}: folder holds no documents ({', '.join(DOCUMENT_SUFFIXES)} files)")
        names = [p.relative_to(path).as_posix() for p in files]
    elif path.suffix.lower() in DOCUMENT_SUFFIXES:
        files, names = [path], [path.name]
    else:
        raise DataError(f"{path}: not a document file; expected one of {', '.join(DOCUMENT_SUFFIXES)} or a folder")
    docs: list[Document] = []
    for file, name in zip(files, names, strict=True):
        suffix = file.suffix.lower()
        if suffix == ".jsonl":
            docs.extend(_jsonl_documents(file, name))
        else:
            text = table_to_text(file) if suffix == ".csv" else read_text_file(file)
            docs.append(Document(id=name, text=text, source=str(file)))
    return docs


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, cells)]) of a CSV file whose first row names distinct columns; blank rows are skipped,
    a row with another number of cells than the header is an error naming its line."""
    reader = csv.reader(io.StringIO(read_text_file(path)), skipinitialspace=True, strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
        if not header or any(h in _MISSING_CELL for h in header) or len(set(header)) != len(header):
            raise DataError(
                f"{path}:{reader.line_num}: expected a header row of distinct, non-empty column names; got {header}"
            )
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise DataError(
                    f"{path}:{reader.line_num}: expected {len(header)} cells (one per column of the header), "
                    f"got {len(cells)}"
                )
            rows.append((reader.line_num, [cell.strip() for cell in cells]))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
    if not rows:
        raise DataError(f"{path}: no rows below the header")
    return header, rows


def table_to_text(csv_path: str | Path) -> str:
    """A CSV table (first row = column headers) as text: one paragraph per row, one `header: value` line per
    non-empty cell, so each row reads as a self-contained record and chunks cut between rows."""
    path = Path(csv_path)
    header, rows = read_csv(path)
    records = [
        [f"{h}: {cell}" for h, cell in zip(header, cells, strict=True) if cell not in _MISSING_CELL]
        for _, cells in rows
    ]
    if not any(records):
        raise DataError(f"{path}: every cell below the header is empty or '-'")
    return "\n\n".join("\n".join(lines) for lines in records if lines) + "\n"


# Preferred cut points, strongest first: a blank line, a line end, a sentence end (Latin or CJK punctuation). A chunk
# may end where a match ends, i.e. before the newline or right after the punctuation (and closing quotes).
_BOUNDARIES = (
    re.compile(r"\S(?=[ \t]*\n[ \t]*\n)"),
    re.compile(r"\S(?=[ \t]*\n)"),
    re.compile(r"[.!?;]['\")\]]*(?=\s)|[。！？；][”’」』）]*"),
)


def _token_spans(text: str, tokenizer: Any) -> list[tuple[int, int]]:
    """(start, end) character span of every token: whitespace words without a tokenizer, else the tokenizer's."""
    if tokenizer is None:
        return [m.span() for m in re.finditer(r"\S+", text)]
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"chunking by tokens needs a fast (Rust) tokenizer for character offsets; {type(tokenizer).__name__} "
            "is not one"
        )
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [(s, e) for s, e in encoded["offset_mapping"] if e > s]


def _cut_strengths(text: str, starts: list[int]) -> dict[int, int]:
    """Token index k -> strength of ending a chunk just before token k (higher is better; absent: mid-sentence)."""
    strengths: dict[int, int] = {}
    for rank, pattern in enumerate(_BOUNDARIES):
        for m in pattern.finditer(text):
            k = bisect.bisect_left(starts, m.end())
            strengths[k] = max(strengths.get(k, 0), len(_BOUNDARIES) - rank)
    return strengths


def _chunk_one(doc: Document, tokenizer: Any, chunk_tokens: int, overlap: int) -> list[Chunk]:
    spans = _token_spans(doc.text, tokenizer)
    starts = [s for s, _ in spans]
    strengths = _cut_strengths(doc.text, starts)
    # a cut before token k must not split a character (byte-level BPE spreads one CJK character over 2-4 tokens)
    whole = [k == 0 or starts[k] >= spans[k - 1][1] for k in range(len(spans))] + [True]
    chunks: list[Chunk] = []
    first = 0
    while first < len(spans):
        end = min(first + chunk_tokens, len(spans))
        while not whole[end] and end > first + 1:
            end -= 1
        if end < len(spans):
            # a natural boundary in the last quarter of the window wins over the hard limit; latest of the strongest
            lowest = max(first + 1, end - max(1, chunk_tokens // 4))
            best = max(range(lowest, end + 1), key=lambda k: (strengths.get(k, 0), k))
            if strengths.get(best, 0):
                end = best
        start_char, end_char = spans[first][0], spans[end - 1][1]
        text = doc.text[start_char:end_char]
        start_char += len(text) - len(text.lstrip())
        end_char -= len(text) - len(text.rstrip())
        number = len(chunks)
        chunks.append(Chunk(f"{doc.id}#{number:04d}", doc.id, doc.text[start_char:end_char], start_char, end_char))
        if end == len(spans):
            break
        overlapping = [k for k in range(max(end - overlap, first + 1), end) if whole[k]]
        first = _next_start(doc.text, starts, strengths, overlapping) if overlapping else end
    return chunks


def _next_start(text: str, starts: list[int], strengths: dict[int, int], overlapping: list[int]) -> int:
    """Where the next chunk starts among the tokens it may share with the last one: the first sentence start, else
    the first word start, else the earliest (text without spaces, such as Chinese)."""
    sentence = next((k for k in overlapping if strengths.get(k)), None)
    if sentence is not None:
        return sentence
    word = (k for k in overlapping if starts[k] == 0 or text[starts[k] - 1].isspace() or text[starts[k]].isspace())
    return next(word, overlapping[0])


def chunk_documents(
    docs: Iterable[Document], tokenizer: Any | None = None, chunk_tokens: int = 512, overlap: int = 64
) -> list[Chunk]:
    """Cut each document into chunks of at most `chunk_tokens` tokens (a Hugging Face fast tokenizer's, or
    whitespace words when `tokenizer` is None), consecutive chunks sharing about `overlap` tokens. A chunk ends at
    a paragraph, line or sentence end when one lies in the last quarter of its window."""
    if chunk_tokens < 1:
        raise ConfigError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
    if not 0 <= overlap < chunk_tokens:
        raise ConfigError(
            f"chunk overlap must be at least 0 and less than chunk_tokens ({chunk_tokens}), got {overlap}"
        )
    return [chunk for doc in docs for chunk in _chunk_one(doc, tokenizer, chunk_tokens, overlap)]

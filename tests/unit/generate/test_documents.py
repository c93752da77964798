"""Self-QA documents: loading with errors that name the file and line, token chunks with overlap and char spans."""

from __future__ import annotations

import itertools
import os
import re
import shutil
from pathlib import Path

import pytest

from lmforge.generate.documents import Document, chunk_documents, load_documents, table_to_text
from lmforge.utils.errors import ConfigError, DataError
from tests.fixtures.tokenizers import load_fixture_tokenizer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "generate"


@pytest.fixture
def doc_folder(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    shutil.copy(FIXTURES / "alpaca_en_outputs.md", tmp_path / "b.md")
    shutil.copy(FIXTURES / "alpaca_zh_outputs.txt", tmp_path / "sub" / "a.txt")
    shutil.copy(FIXTURES / "c4_demo_first4.jsonl", tmp_path / "c4.jsonl")
    shutil.copy(FIXTURES / "singer.csv", tmp_path / "sub" / "singer.csv")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")  # not a document type: ignored
    return tmp_path


def test_folder_is_read_recursively_in_path_order(doc_folder: Path) -> None:
    docs = load_documents(doc_folder)
    rows = [f"c4.jsonl:{line}" for line in range(1, 5)]
    assert [d.id for d in docs] == ["b.md", *rows, "sub/a.txt", "sub/singer.csv"]
    assert docs[0].text == (FIXTURES / "alpaca_en_outputs.md").read_text(encoding="utf-8")
    assert docs[1].source == f"{doc_folder / 'c4.jsonl'}:1" and docs[1].text.startswith(
        "Don’t think you need all the bells"
    )
    assert "Name: Liliane Bettencourt" in docs[-1].text


def test_table_rows_become_header_value_paragraphs() -> None:
    text = table_to_text(FIXTURES / "singer.csv")
    paragraphs = text.strip().split("\n\n")
    assert len(paragraphs) == 8
    assert paragraphs[0] == (
        "Singer_ID: 1\nName: Liliane Bettencourt\nBirth_Year: 1944.0\nNet_Worth_Millions: 30.0\nCitizenship: France"
    )


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.txt", b"  \n\n", r"empty\.txt: file is empty"),
        ("latin1.md", "line one\ncafé\n".encode("latin-1"), r"latin1\.md: not UTF-8 text \(byte offset 12, line 2"),
        ("bad.jsonl", b'{"text": "ok"}\n\n{"text": "broken\n', r"bad\.jsonl:3: invalid JSON .*non-empty string field"),
        (
            "field.jsonl",
            b'{"text": "ok"}\n{"body": "x"}\n',
            r"field\.jsonl:2: expected .*\"text\"; got fields \['body'\]",
        ),
        ("blank.jsonl", b'{"text": "  "}\n', r"blank\.jsonl:1: expected .*; got \"text\" = \"  \""),
        ("list.jsonl", b'["text"]\n', r"list\.jsonl:1: expected one JSON object.*got list"),
        ("ragged.csv", b"a,b\n1,2\n3\n", r"ragged\.csv:3: expected 2 cells .* got 1"),
        ("header.csv", b"a,a\n1,2\n", r"header\.csv:1: expected a header row of distinct, non-empty column names"),
        ("dashes.csv", b"a,b\n-,-\n", r"dashes\.csv: every cell below the header is empty or '-'"),
        ("quote.csv", b'a,b\n1,"2\n', r"quote\.csv:2: not valid CSV: unexpected end of data"),
        ("notes.pdf", b"%PDF", r"notes\.pdf: not a document file; expected one of \.txt, \.md, \.jsonl, \.csv"),
    ],
)
def test_bad_documents_are_refused_naming_file_and_line(tmp_path: Path, name: str, content: bytes, message: str):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_documents(tmp_path / name)


def test_missing_path_and_folder_without_documents_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load_documents(tmp_path / "absent")
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(DataError, match=r"folder holds no documents \(\.txt, \.md, \.jsonl, \.csv files\)"):
        load_documents(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("text")
    path.chmod(0)
    with pytest.raises(DataError, match=r"secret\.txt: cannot read: Permission denied"):
        load_documents(path)


def _check_chunks(doc: Document, chunks: list, spans: list[tuple[int, int]], limit: int) -> None:
    """Spans are exact, non-blank tokens all covered, at most `limit` tokens per chunk, neighbours overlap."""
    assert [c.id for c in chunks] == [f"{doc.id}#{k:04d}" for k in range(len(chunks))]
    for c in chunks:
        assert c.doc_id == doc.id and c.text == doc.text[c.start_char : c.end_char] and c.text == c.text.strip()
        assert sum(c.start_char <= s and e <= c.end_char for s, e in spans) <= limit
    for s, e in spans:
        if doc.text[s:e].strip():  # whitespace between chunks is trimmed
            assert any(c.start_char <= s and e <= c.end_char for c in chunks), doc.text[s:e]
    for before, after in itertools.pairwise(chunks):
        assert before.start_char < after.start_char < before.end_char


def test_word_chunks_overlap_and_end_at_paragraphs() -> None:
    doc = load_documents(FIXTURES / "alpaca_en_outputs.md")[0]
    chunks = chunk_documents([doc], None, chunk_tokens=120, overlap=20)
    _check_chunks(doc, chunks, [m.span() for m in re.finditer(r"\S+", doc.text)], 120)
    assert len(chunks) > 4
    # every cut but the last lies at a sentence or line end, and most at a paragraph end
    assert all(re.search(r"[.!?]$", c.text) or doc.text[c.end_char] == "\n" for c in chunks[:-1])
    assert sum(doc.text[c.end_char : c.end_char + 2] == "\n\n" for c in chunks) >= 4
    assert chunk_documents([doc], None, chunk_tokens=120, overlap=20) == chunks  # stable


def test_text_without_boundaries_is_cut_at_the_limit() -> None:
    """Negative control for the boundary preference: nothing to prefer, so each chunk is exactly the limit."""
    doc = Document("plain", " ".join(f"w{k}" for k in range(250)), "test")
    chunks = chunk_documents([doc], None, chunk_tokens=100, overlap=10)
    assert [len(c.text.split()) for c in chunks] == [100, 100, 70]
    assert chunks[1].text.split()[0] == "w90"


def test_token_chunks_follow_the_tokenizer_offsets_in_chinese() -> None:
    tokenizer = load_fixture_tokenizer("qwen")
    doc = load_documents(FIXTURES / "alpaca_zh_outputs.txt")[0]
    chunks = chunk_documents([doc], tokenizer, chunk_tokens=300, overlap=30)
    offsets = tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    _check_chunks(doc, chunks, [(s, e) for s, e in offsets if e > s], 300)
    assert len(chunks) > 5
    # a sentence or line end (about 1 character in 30 here) ends most chunks: the window's last quarter held one
    ends = [c.text.endswith(("。", "！", "？")) or doc.text[c.end_char] == "\n" for c in chunks[:-1]]
    assert sum(ends) >= 2 * len(ends) / 3


def test_chunk_sizes_are_validated() -> None:
    doc = Document("d", "a b c", "test")
    with pytest.raises(ConfigError, match="overlap must be at least 0 and less than chunk_tokens"):
        chunk_documents([doc], None, chunk_tokens=8, overlap=8)
    with pytest.raises(ConfigError, match="chunk_tokens must be at least 1"):
        chunk_documents([doc], None, chunk_tokens=0, overlap=0)

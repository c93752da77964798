"""Bad input files are reported precisely (QUALITY A1, A2, A10, A12); good quirks are accepted."""

from __future__ import annotations

import json
import re

import pytest

from lmforge.data.pipeline import build_datasets
from lmforge.data.readers import iter_source
from lmforge.utils.errors import DataError

from .helpers import make_cfg


def _read(path, encoding: str = "utf-8", on_bad_row: str = "error", bad: list | None = None) -> list[dict]:
    return list(iter_source(str(path), None, encoding=encoding, on_bad_row=on_bad_row, bad_rows=bad or []))


def _truncated_jsonl(tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    lines = [good] * 40
    lines[36] = '{"messages": [{"role": "user", "content": "hi"'
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a1_truncated_jsonl_line_names_file_line_column_and_excerpt(tmp_path):
    path = _truncated_jsonl(tmp_path)
    with pytest.raises(DataError) as exc:
        _read(path)
    message = str(exc.value)
    assert str(path) in message and "line 37, column 47" in message
    assert '{"messages": [{"role": "user", "content": "hi"' in message


def test_a1_skip_mode_counts_and_writes_bad_rows_without_strict_cache(tmp_path, tokenizer, template):
    path = _truncated_jsonl(tmp_path)
    strict = make_cfg(tmp_path, [{"path": str(path), "format": "openai"}])
    with pytest.raises(DataError, match="line 37"):
        build_datasets(strict, tokenizer, template)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    cfg = make_cfg(tmp_path, [{"path": str(path), "format": "openai"}], on_bad_row="skip")
    bundle = build_datasets(cfg, tokenizer, template)
    assert bundle.report.datasets[0].bad_rows == 1 and len(bundle.train) == 39
    bad = [json.loads(line) for line in (tmp_path / "out" / "bad_rows.jsonl").read_text().splitlines()]
    assert [b["line"] for b in bad] == [37]


def test_a2_bom_crlf_and_blank_last_line_are_accepted(tmp_path):
    rows = [{"text": "a"}, {"text": "b"}]
    (tmp_path / "x.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(rows, indent=1).replace("\n", "\r\n").encode())
    (tmp_path / "y.jsonl").write_bytes(b"\xef\xbb\xbf" + b'{"text": "a"}\r\n{"text": "b"}\r\n\r\n')
    assert _read(tmp_path / "x.json") == rows
    assert _read(tmp_path / "y.jsonl") == rows


def test_a2_trailing_comma_position_is_reported(tmp_path):
    (tmp_path / "x.json").write_text('[\n  {"text": "a"},\n  {"text": "b"},\n]\n')
    with pytest.raises(DataError, match=re.escape("trailing comma at line 3, column 16")):
        _read(tmp_path / "x.json")


def test_a2_json_file_holding_json_lines_gets_a_hint(tmp_path):
    (tmp_path / "x.json").write_text('{"text": "a"}\n{"text": "b"}\n')
    with pytest.raises(DataError, match="file looks like JSON Lines, set file_type: jsonl"):
        _read(tmp_path / "x.json")


def test_a10_latin1_decode_error_names_offset_line_and_encoding_option(tmp_path):
    (tmp_path / "x.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"byte offset 28 \(line 2\).*data\.encoding"):
        _read(tmp_path / "x.jsonl")
    assert _read(tmp_path / "x.jsonl", encoding="latin-1")[1] == {"text": "café"}


def test_a10_utf16_and_nul_bytes_are_rejected(tmp_path):
    (tmp_path / "x.json").write_bytes('[{"text": "a"}]'.encode("utf-16-le"))
    with pytest.raises(DataError, match="NUL character at line 1"):
        _read(tmp_path / "x.json")
    (tmp_path / "y.txt").write_bytes(b"one\ntw\x00o\n")
    with pytest.raises(DataError, match="NUL character at line 2"):
        _read(tmp_path / "y.txt")


def test_a10_raw_control_character_in_a_string_is_a_parse_error(tmp_path):
    (tmp_path / "x.jsonl").write_bytes(b'{"text": "a\x01b"}\n')
    with pytest.raises(DataError, match="line 1, column 12"):
        _read(tmp_path / "x.jsonl")


@pytest.mark.parametrize("name", ["e.json", "e.jsonl", "e.txt"])
def test_a12_empty_file_is_an_error(tmp_path, name):
    (tmp_path / name).write_text("\n")
    with pytest.raises(DataError, match="file is empty"):
        _read(tmp_path / name)


def test_folder_reads_every_file_in_name_order_and_csv_parquet(tmp_path):
    import datasets

    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "b.jsonl").write_text('{"text": "b"}\n')
    (folder / "a.csv").write_text("text\na\n")
    datasets.Dataset.from_list([{"text": "c"}]).to_parquet(str(folder / "c.parquet"))
    assert [r["text"] for r in _read(folder)] == ["a", "b", "c"]


def test_txt_is_one_document_per_line(tmp_path):
    (tmp_path / "x.txt").write_text("first doc\n\nsecond doc\n")
    assert _read(tmp_path / "x.txt") == [{"text": "first doc"}, {"text": "second doc"}]


def test_missing_local_file_is_named(tmp_path):
    with pytest.raises(DataError, match="not found"):
        _read(tmp_path / "nope.json")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_utf16_and_utf32_json_lines_load_when_the_encoding_is_set(tmp_path, encoding):
    """The hint for a UTF-16 file says `set data.encoding: utf-16`; that must then work."""
    rows = [{"text": "première"}, {"text": "中文 second"}]
    (tmp_path / "x.jsonl").write_bytes(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode(encoding)
    )
    with pytest.raises(DataError, match=r"NUL character|cannot decode"):
        _read(tmp_path / "x.jsonl")  # negative control: read as utf-8
    assert _read(tmp_path / "x.jsonl", encoding=encoding) == rows


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_line_longer_than_max_line_bytes_is_refused_without_reading_it_whole(tmp_path, encoding):
    from lmforge.data.readers import iter_jsonl

    path = tmp_path / "x.jsonl"
    path.write_bytes(('{"text": "ok"}\n' + json.dumps({"text": "x" * 5000}) + "\n").encode(encoding))
    rows = iter_jsonl(path, encoding, "error", [], max_line_bytes=1000)
    assert next(rows) == {"text": "ok"}
    with pytest.raises(DataError, match=r"line 2 is longer than data\.max_line_bytes \(1000 bytes\)"):
        next(rows)
    assert len(list(iter_jsonl(path, encoding, "error", [], max_line_bytes=20000))) == 2


def test_max_line_bytes_defaults_to_64_mib():
    from lmforge.config.schema import DataConfig

    assert DataConfig().max_line_bytes == 64 * 2**20


@pytest.mark.parametrize(
    ("escaped", "what"),
    [
        (r"\ud800", r"lone surrogate \\ud800"),
        (r"\u0000", r"control character \\u0000"),
        (r"\u001b", r"control character \\u001b"),
    ],
)
def test_escaped_surrogates_and_control_characters_are_refused_or_skipped_and_counted(tmp_path, escaped, what):
    path = tmp_path / "x.jsonl"
    path.write_text('{"instruction": "q", "output": "fine"}\n{"instruction": "q", "output": "a' + escaped + 'b"}\n')
    with pytest.raises(DataError, match=rf"x\.jsonl: line 2: field output: {what} at character 1.*on_bad_row: skip"):
        _read(path)
    bad: list = []
    rows = list(iter_source(str(path), None, encoding="utf-8", on_bad_row="skip", bad_rows=bad))
    assert rows == [{"instruction": "q", "output": "fine"}]
    assert [b["line"] for b in bad] == [2]


def test_tabs_newlines_and_ordinary_unicode_are_kept(tmp_path):
    path = tmp_path / "x.jsonl"
    row = {"text": "a\tb\nc\r\nd — 中文 😀"}
    path.write_text(json.dumps(row) + "\n")
    assert _read(path) == [row]


def test_form_feed_and_vertical_tab_are_text(tmp_path):
    """LLaMA-Factory's dpo_en_demo.json holds form feeds: whitespace, not garbage."""
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"text": "page\fbreak\vtab"}) + "\n")
    assert _read(path) == [{"text": "page\fbreak\vtab"}]


@pytest.mark.parametrize("name", ["data/missing.jsonl", "runs/missing", "a/b/c.json"])
def test_a_missing_local_path_is_not_treated_as_a_hub_id(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(DataError, match=f"dataset file not found: {name}"):
        _read(name)

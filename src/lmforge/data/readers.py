"""Read raw rows from local files, folders or the hub.

JSON and JSON Lines are parsed here rather than by `datasets`/pyarrow so a broken file is reported with its
file, line, column and an excerpt, and so `on_bad_row: skip` can step over a malformed line. CSV and parquet
go through `datasets`; hub ids through `datasets.load_dataset`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lmforge.utils.errors import DataError
from lmforge.utils.paths import meant_as_local_path

FILE_TYPES = {".json": "json", ".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet", ".txt": "txt"}
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
_EXCERPT = 60


def guess_file_type(path: Path, file_type: str | None) -> str:
    if file_type:
        if file_type not in FILE_TYPES.values():
            raise DataError(f"{path}: unknown file_type {file_type!r}; valid: {', '.join(FILE_TYPES.values())}")
        return file_type
    try:
        return FILE_TYPES[path.suffix.lower()]
    except KeyError:
        raise DataError(
            f"{path}: cannot tell the file type from the extension {path.suffix!r}; "
            f"set file_type to one of {', '.join(FILE_TYPES.values())}"
        ) from None


def list_data_files(path: Path) -> list[Path]:
    """A file is itself; a folder is every data file in it (sorted, so the row order is stable)."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FILE_TYPES)
    if not files:
        raise DataError(f"{path}: folder holds no data files ({', '.join(FILE_TYPES)})")
    return files


def _excerpt(text: str, pos: int) -> str:
    start = max(0, min(pos - _EXCERPT // 2, len(text) - _EXCERPT))
    return text[start : start + _EXCERPT].replace("\r", "\\r").replace("\n", "\\n")


def decode_bytes(raw: bytes, path: Path, encoding: str, line_offset: int = 0, byte_offset: int = 0) -> str:
    """Decode with precise positions on failure; NUL bytes are refused (often a UTF-16 file read as UTF-8)."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = line_offset + raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: cannot decode as {encoding} at byte offset {byte_offset + exc.start} (line {line}): "
            f"{exc.reason}; set data.encoding to the file's encoding (e.g. latin-1, utf-16)"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line = line_offset + text.count("\n", 0, nul) + 1
        raise DataError(
            f"{path}: NUL character at line {line}; NUL bytes are not allowed in text data "
            f"(a UTF-16 file read as {encoding}? set data.encoding)"
        )
    return text.removeprefix("\ufeff")


def _json_error(path: Path, text: str, exc: json.JSONDecodeError, line: int | None = None) -> DataError:
    """A parse error naming line, column and an excerpt, with a hint for a trailing comma."""
    before = text[: exc.pos].rstrip()
    line_no = line if line is not None else exc.lineno
    if before.endswith(",") and text[exc.pos : exc.pos + 1] in ("]", "}"):
        comma = len(before) - 1
        comma_line = line if line is not None else text.count("\n", 0, comma) + 1
        comma_col = comma - (text.rfind("\n", 0, comma) + 1) + 1
        return DataError(
            f"{path}: trailing comma at line {comma_line}, column {comma_col} before {text[exc.pos]!r}: "
            f"{_excerpt(text, comma)!r}"
        )
    return DataError(
        f"{path}: invalid JSON at line {line_no}, column {exc.colno}: {exc.msg}: {_excerpt(text, exc.pos)!r}"
    )


def _looks_like_jsonl(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return False
    try:
        return all(isinstance(json.loads(ln), dict) for ln in lines[:2])
    except json.JSONDecodeError:
        return False


def read_json(path: Path, encoding: str) -> list[dict[str, Any]]:
    """A JSON file holding a list of objects."""
    text = decode_bytes(path.read_bytes(), path, encoding)
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Extra data") and _looks_like_jsonl(text):
            raise DataError(f"{path}: file looks like JSON Lines, set file_type: jsonl") from None
        raise _json_error(path, text, exc) from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects at the top level, got {type(data).__name__}")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"{path}: element [{i}] must be an object, got {type(row).__name__}")
        problem = unusable_text(row)
        if problem:
            raise DataError(f"{path}: element [{i}]: field {problem}; fix the data (JSON Lines files can skip rows)")
    return data


DEFAULT_MAX_LINE_BYTES = 64 * 2**20


def _ascii_compatible(encoding: str) -> bool:
    """UTF-16/32 encode '\n' as several bytes, so their lines cannot be found by splitting bytes on b'\n'."""
    return "\n".encode(encoding) == b"\n"


def iter_lines(path: Path, encoding: str, max_line_bytes: int) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) with at most `max_line_bytes` read per line: one huge line must not take the
    machine's memory (a 100 MB JSON line peaked at 10.7 GB once parsed)."""
    too_long = (
        f"{path}: line {{}} is longer than data.max_line_bytes ({max_line_bytes} bytes); split that record or "
        "raise data.max_line_bytes"
    )
    if not _ascii_compatible(encoding):
        line_no = 0
        try:
            with path.open(encoding=encoding, newline="") as fh:
                while line := fh.readline(max_line_bytes + 1):
                    line_no += 1
                    if len(line.encode(encoding)) > max_line_bytes and not line.endswith("\n"):
                        raise DataError(too_long.format(line_no))
                    yield line_no, line.removeprefix("\ufeff").rstrip("\r\n")
        except UnicodeError as exc:
            raise DataError(f"{path}: cannot decode as {encoding} after line {line_no}: {exc}") from None
        return
    offset = 0
    with path.open("rb") as fh:
        line_no = 0
        while raw := fh.readline(max_line_bytes + 1):
            line_no += 1
            if len(raw) > max_line_bytes:
                raise DataError(too_long.format(line_no))
            text = decode_bytes(raw, path, encoding, line_offset=line_no - 1, byte_offset=offset)
            yield line_no, text.rstrip("\r\n")
            offset += len(raw)


# lone surrogates, and C0 controls other than the whitespace ones that occur in real text (\t \n \v \f \r)
_UNUSABLE = re.compile("[\ud800-\udfff\x00-\x08\x0e-\x1f]")


def unusable_text(value: Any, where: str = "") -> str | None:
    """Where a row's strings hold text no tokenizer should see: a lone surrogate (an escaped "\\ud800", which is
    not Unicode text) or an escaped C0 control character (NUL, ESC, ...) that is not whitespace."""
    if isinstance(value, str):
        bad = _UNUSABLE.search(value)  # one C-speed scan; the row is looked at per character only when it fails
        if bad is None:
            return None
        code, i = ord(bad.group()), bad.start()
        what = "lone surrogate" if 0xD800 <= code <= 0xDFFF else "control character"
        return f"{where or 'text'}: {what} \\u{code:04x} at character {i}"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = unusable_text(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def iter_jsonl(
    path: Path,
    encoding: str,
    on_bad_row: str,
    bad_rows: list[dict[str, Any]],
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[dict[str, Any]]:
    """Yield objects line by line (bounded memory); bad lines raise, or are recorded and skipped."""
    seen_any = False
    for line_no, text in iter_lines(path, encoding, max_line_bytes):
        if not text.strip():
            continue
        seen_any = True
        try:
            row = json.loads(text)
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {line_no}: expected a JSON object, got {type(row).__name__}")
            problem = unusable_text(row)
            if problem:
                raise DataError(
                    f"{path}: line {line_no}: field {problem}; fix the data, or set data.on_bad_row: skip to skip "
                    "such rows (they are counted)"
                )
        except (json.JSONDecodeError, DataError) as exc:
            err = _json_error(path, text, exc, line=line_no) if isinstance(exc, json.JSONDecodeError) else exc
            if on_bad_row != "skip":
                raise err from None
            bad_rows.append({"file": str(path), "line": line_no, "error": str(err)})
            continue
        yield row
    if not seen_any:
        raise DataError(f"{path}: file is empty")


def read_txt(path: Path, encoding: str) -> list[dict[str, Any]]:
    """One document per non-blank line."""
    text = decode_bytes(path.read_bytes(), path, encoding)
    rows = [{"text": line} for line in text.splitlines() if line.strip()]
    if not rows:
        raise DataError(f"{path}: file is empty")
    return rows


def read_with_datasets(path: Path, kind: str) -> list[dict[str, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    except Exception as exc:  # pyarrow/pandas errors: re-raise naming the file
        raise DataError(f"{path}: cannot read as {kind}: {exc}") from None
    if len(ds) == 0:
        raise DataError(f"{path}: file is empty")
    return ds.to_list()


def iter_file(
    path: Path,
    file_type: str | None,
    encoding: str,
    on_bad_row: str,
    bad: list,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[dict[str, Any]]:
    kind = guess_file_type(path, file_type)
    if kind == "jsonl":
        yield from iter_jsonl(path, encoding, on_bad_row, bad, max_line_bytes)
    elif kind == "json":
        yield from read_json(path, encoding)
    elif kind == "txt":
        yield from read_txt(path, encoding)
    else:
        yield from read_with_datasets(path, kind)


def is_hub_id(path: str) -> bool:
    if meant_as_local_path(path, tuple(FILE_TYPES)):  # data/x.jsonl or runs/x that is missing: not the hub
        return False
    return not os.path.isabs(path) and ".." not in path and bool(_HUB_ID.match(path)) and not os.path.exists(path)


def iter_hub(path: str, subset: str | None, split: str, streaming: bool) -> Iterator[dict[str, Any]]:
    """Rows of a hub dataset (network or HF cache; HF_HUB_OFFLINE is respected by `datasets`)."""
    import datasets

    try:
        ds = datasets.load_dataset(path, subset, split=split, streaming=streaming)
    except Exception as exc:
        raise DataError(f"cannot load hub dataset {path!r} (subset={subset}, split={split}): {exc}") from None
    yield from ds


def iter_source(
    path: str,
    file_type: str | None,
    *,
    encoding: str,
    on_bad_row: str,
    bad_rows: list,
    subset: str | None = None,
    split: str = "train",
    streaming: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[dict[str, Any]]:
    """Rows of a local file, every file of a folder, or a hub dataset."""
    if os.path.exists(path):
        for file in list_data_files(Path(path)):
            yield from iter_file(file, file_type, encoding, on_bad_row, bad_rows, max_line_bytes)
    elif is_hub_id(path):
        yield from iter_hub(path, subset, split, streaming)
    else:
        raise DataError(f"dataset file not found: {path}")

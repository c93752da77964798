"""Read what a growing file gained since the last read, by byte offset: the UI never re-reads a whole log.

A reader keeps only an offset. Only complete lines are returned (a line being written stays for the next read),
and a file that shrank (a resumed run rewrites `trainer_log.jsonl` up to its checkpoint's step) is read again
from the start, with `reset` set so the reader can drop what it showed before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: most bytes returned by one read of a text log (the page shows the tail; the rest comes with the next reads)
MAX_CHUNK = 256 * 1024
#: most bytes of a JSON Lines log per read: a page opened on a long run gets its whole loss curve in a few reads
MAX_RECORDS_CHUNK = 8 * 1024 * 1024


@dataclass
class Chunk:
    """New complete lines of a file and the offset to read from next time."""

    lines: list[str] = field(default_factory=list)
    offset: int = 0
    reset: bool = False


def read_new_lines(path: Path, offset: int, max_bytes: int = MAX_CHUNK) -> Chunk:
    """Complete lines after byte `offset` (at most about `max_bytes`); a missing file has none yet."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            reset = size < offset
            start = 0 if reset else offset
            handle.seek(start)
            data = handle.read(max_bytes)
    except FileNotFoundError:
        return Chunk(offset=offset)
    end = data.rfind(b"\n") + 1  # 0 when no complete line arrived yet
    if end == 0 and len(data) >= max_bytes:  # one line longer than the chunk: pass it on in pieces
        end = len(data)
    text = data[:end].decode("utf-8", errors="replace")
    return Chunk(text.splitlines(), start + end, reset)


def read_new_records(path: Path, offset: int) -> tuple[list[dict[str, Any]], Chunk]:
    """New JSON objects of a JSON Lines log; a line that is not an object (a crash mid-write) is skipped."""
    chunk = read_new_lines(path, offset, MAX_RECORDS_CHUNK)
    records = []
    for line in chunk.lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, chunk

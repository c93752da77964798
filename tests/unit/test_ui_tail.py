"""Incremental reads of growing logs: only complete lines, from the last offset, restarting when a file shrinks."""

from __future__ import annotations

import json

from lmforge.ui.tail import read_new_lines, read_new_records


def test_only_complete_lines_are_returned_and_the_partial_one_comes_with_the_next_read(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(b"one\ntw")
    first = read_new_lines(path, 0)
    assert first.lines == ["one"] and first.offset == 4
    with path.open("ab") as handle:
        handle.write(b"o\nthree\n")
    second = read_new_lines(path, first.offset)
    assert second.lines == ["two", "three"] and not second.reset
    assert read_new_lines(path, second.offset).lines == []


def test_a_file_that_shrank_is_read_again_from_the_start_with_reset_set(tmp_path):
    path = tmp_path / "trainer_log.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 6)))
    _, chunk = read_new_records(path, 0)
    path.write_text(json.dumps({"step": 1}) + "\n")  # a resume keeps the records up to its checkpoint
    records, again = read_new_records(path, chunk.offset)
    assert again.reset and records == [{"step": 1}]


def test_missing_file_and_corrupt_lines_give_no_records(tmp_path):
    path = tmp_path / "trainer_log.jsonl"
    records, chunk = read_new_records(path, 0)
    assert records == [] and chunk.offset == 0
    path.write_text('{"step": 1}\n{"ste\n[1]\n{"step": 2}\n')
    records, _ = read_new_records(path, 0)
    assert records == [{"step": 1}, {"step": 2}]

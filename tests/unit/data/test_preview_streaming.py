"""Preview output, dump, streaming and multi-process encoding give the same rows as the default path."""

from __future__ import annotations

import dataclasses
import json

import lmforge.templates
from lmforge.data import preview
from lmforge.data.pipeline import build_datasets

from .helpers import make_cfg


def _chat_file(tmp_path, n: int = 6):
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(n)
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [{"path": str(path), "format": "openai"}]


def test_preview_marks_trained_spans_reports_counts_and_dumps(tmp_path, tokenizer, template, monkeypatch, capsys):
    monkeypatch.setattr(preview, "_load_tokenizer", lambda cfg: tokenizer)
    monkeypatch.setattr(lmforge.templates, "get_template", lambda name, tok, options=None: template, raising=False)
    cfg = make_cfg(tmp_path, _chat_file(tmp_path))
    dump = tmp_path / "dump.jsonl"
    preview.preview_command(cfg, n=2, dump=str(dump))
    out = capsys.readouterr().out
    assert out.count("--- example") == 2 and "«a0<|im_end|>»" in out and "read 6, kept 6" in out
    assert "data (sft, template fake_chatml," in out  # which template rendered the data
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    train = build_datasets(cfg, tokenizer, template).train
    assert rows == [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in train]


def test_streaming_yields_the_same_sft_rows(tmp_path, tokenizer, template):
    cfg = make_cfg(tmp_path, _chat_file(tmp_path), train={"max_steps": 1})
    eager = build_datasets(cfg, tokenizer, template).train.to_list()
    streamed = build_datasets(
        dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, streaming=True)), tokenizer, template
    )
    assert list(streamed.train) == eager and streamed.report.streaming


def test_streaming_pt_blocks_match(tmp_path, tokenizer):
    (tmp_path / "d.txt").write_text("abcdef\nghi\njklmnopq\n")
    cfg = make_cfg(tmp_path, [{"path": str(tmp_path / "d.txt"), "format": "text"}], stage="pt", cutoff_len=5)
    eager = build_datasets(cfg, tokenizer, None).train.to_list()
    streamed = build_datasets(
        dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, streaming=True)), tokenizer, None
    )
    assert list(streamed.train) == eager


def test_multi_process_encoding_is_identical(tmp_path, tokenizer, template):
    cfg = make_cfg(tmp_path, _chat_file(tmp_path, 8))
    single = build_datasets(cfg, tokenizer, template).train.to_list()
    cfg2 = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, num_proc=2, overwrite_cache=True))
    assert build_datasets(cfg2, tokenizer, template).train.to_list() == single


def test_preview_prints_the_report_once_and_writes_nothing_into_output_dir(
    tmp_path, tokenizer, template, monkeypatch, capsys, caplog
):
    monkeypatch.setattr(preview, "_load_tokenizer", lambda cfg: tokenizer)
    monkeypatch.setattr(lmforge.templates, "get_template", lambda name, tok, options=None: template, raising=False)
    datasets = _chat_file(tmp_path)
    with open(datasets[0]["path"], "a") as fh:
        fh.write("{not json\n")
    cfg = make_cfg(tmp_path, datasets, on_bad_row="skip")
    preview.preview_command(cfg, n=1, dump=None)
    out = capsys.readouterr().out
    assert out.count("read 6, kept 6") == 1 and "read 6, kept 6" not in caplog.text
    assert "skipped malformed row: " in out and "chat.jsonl: invalid JSON at line 7" in out
    assert not (tmp_path / "out").exists()  # a later `train` would refuse it as not empty

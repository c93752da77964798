"""Preprocessing cache: every input that changes the result changes the key (B9); writes are atomic (B7)."""

from __future__ import annotations

import dataclasses
import errno
import json

import pytest

import lmforge
from lmforge.data.pipeline import build_datasets

from .helpers import FakeChatML, build_char_tokenizer, make_cfg


def OtherTemplate() -> FakeChatML:
    return FakeChatML("other")


def _setup(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"instruction": "q", "output": "a"}] * 4))
    return make_cfg(tmp_path, [{"path": str(path), "format": "alpaca"}]), path


def _with_data(cfg, **kw):
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **kw))


def test_unchanged_inputs_hit_the_cache(tmp_path, tokenizer, template):
    cfg, _ = _setup(tmp_path)
    first = build_datasets(cfg, tokenizer, template)
    second = build_datasets(cfg, tokenizer, template)
    assert (first.report.cache, second.report.cache) == ("miss", "hit")
    assert second.train["input_ids"] == first.train["input_ids"] and second.report.datasets == first.report.datasets
    # options that do not change the result share the entry
    assert build_datasets(_with_data(cfg, num_proc=2), tokenizer, template).report.cache == "hit"


def _other_tokenizer():
    tok = build_char_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|new|>"]})
    return tok


CHANGES = {
    "template": lambda cfg, tok, tpl, path: (cfg, tok, OtherTemplate()),
    "tokenizer": lambda cfg, tok, tpl, path: (cfg, _other_tokenizer(), tpl),
    "cutoff_len": lambda cfg, tok, tpl, path: (_with_data(cfg, cutoff_len=512), tok, tpl),
    "mask_history": lambda cfg, tok, tpl, path: (_with_data(cfg, mask_history=True), tok, tpl),
    "train_on_prompt": lambda cfg, tok, tpl, path: (_with_data(cfg, train_on_prompt=True), tok, tpl),
    "truncation": lambda cfg, tok, tpl, path: (_with_data(cfg, truncation="truncate"), tok, tpl),
    "packing": lambda cfg, tok, tpl, path: (_with_data(cfg, packing=True), tok, tpl),
    "file_content": lambda cfg, tok, tpl, path: (_rewrite(path), tok, tpl) and (cfg, tok, tpl),
}


def _rewrite(path) -> None:
    """Same file name and size, different content."""
    path.write_text(path.read_text().replace('"a"', '"b"'))


@pytest.mark.parametrize("change", list(CHANGES))
def test_each_input_change_misses_the_cache(tmp_path, tokenizer, template, change):
    cfg, path = _setup(tmp_path)
    assert build_datasets(cfg, tokenizer, template).report.cache == "miss"
    assert build_datasets(*CHANGES[change](cfg, tokenizer, template, path)).report.cache == "miss"


def test_toolkit_version_change_misses_the_cache(tmp_path, tokenizer, template, monkeypatch):
    cfg, _ = _setup(tmp_path)
    build_datasets(cfg, tokenizer, template)
    monkeypatch.setattr(lmforge, "__version__", "999.0")
    assert build_datasets(cfg, tokenizer, template).report.cache == "miss"


def test_encoding_code_change_misses_the_cache(tmp_path, tokenizer, template, monkeypatch):
    from lmforge.data import cache

    cfg, _ = _setup(tmp_path)
    build_datasets(cfg, tokenizer, template)
    assert build_datasets(cfg, tokenizer, template).report.cache == "hit"
    monkeypatch.setattr(cache, "encoding_code_fingerprint", lambda: "edited encoder")
    assert build_datasets(cfg, tokenizer, template).report.cache == "miss"


def test_tokenizer_file_change_misses_the_cache(tmp_path, template):
    cfg, _ = _setup(tmp_path)
    folder = tmp_path / "tok"
    build_char_tokenizer().save_pretrained(folder)
    from transformers import AutoTokenizer

    assert build_datasets(cfg, AutoTokenizer.from_pretrained(folder), template).report.cache == "miss"
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["model_max_length"] = 77
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert build_datasets(cfg, AutoTokenizer.from_pretrained(folder), template).report.cache == "miss"


def test_failed_cache_write_leaves_no_entry_and_next_run_recomputes(tmp_path, tokenizer, template, monkeypatch):
    import datasets

    cfg, _ = _setup(tmp_path)
    real_save = datasets.Dataset.save_to_disk

    def disk_full(self, path, **kw):
        real_save(self, path, **kw)  # part of the entry lands on disk, then the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", disk_full)
    bundle = build_datasets(cfg, tokenizer, template)
    assert len(bundle.train) == 4 and list((tmp_path / "cache").iterdir()) == []
    monkeypatch.setattr(datasets.Dataset, "save_to_disk", real_save)
    assert build_datasets(cfg, tokenizer, template).report.cache == "miss"
    assert build_datasets(cfg, tokenizer, template).report.cache == "hit"


def test_overwrite_cache_recomputes(tmp_path, tokenizer, template):
    cfg, _ = _setup(tmp_path)
    build_datasets(cfg, tokenizer, template)
    assert build_datasets(_with_data(cfg, overwrite_cache=True), tokenizer, template).report.cache == "miss"


def test_a_strict_run_never_reuses_the_entry_of_a_run_that_skipped_bad_rows(tmp_path, tokenizer, template):
    from lmforge.utils.errors import DataError

    cfg, path = _setup(tmp_path)
    path.write_text("".join(json.dumps({"instruction": "q", "output": "a"}) + "\n" for _ in range(4)) + "{bad\n")
    cfg = _with_data(cfg, datasets=[{"path": str(path), "format": "alpaca", "file_type": "jsonl"}])
    assert build_datasets(_with_data(cfg, on_bad_row="skip"), tokenizer, template).report.train_rows == 4
    with pytest.raises(DataError, match="invalid JSON at line 5"):
        build_datasets(cfg, tokenizer, template)  # on_bad_row: error (the default) must still refuse the file


def test_a_damaged_cache_entry_is_named_with_the_fix(tmp_path, tokenizer, template):
    from lmforge.utils.errors import DataError

    cfg, _ = _setup(tmp_path)
    build_datasets(cfg, tokenizer, template)
    for arrow in (tmp_path / "cache").rglob("*.arrow"):
        arrow.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cache entry .* is damaged .*data\.overwrite_cache=true"):
        build_datasets(cfg, tokenizer, template)
    assert build_datasets(_with_data(cfg, overwrite_cache=True), tokenizer, template).report.cache == "miss"

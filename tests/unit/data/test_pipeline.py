"""build_datasets end to end on small files: catalogue, mixing, validation split, cache, report."""

from __future__ import annotations

import dataclasses
import json
import logging
import re

import pytest

from lmforge.data.pipeline import build_datasets
from lmforge.utils.errors import DataError

from .helpers import FakeChatML, make_cfg

EXAMPLES = "examples/data/datasets.yaml"


def _alpaca_file(tmp_path, n: int, name: str = "a.json", tag: str = "q") -> str:
    rows = [{"instruction": f"{tag}{i}", "input": "", "output": f"answer {i}"} for i in range(n)]
    path = tmp_path / name
    path.write_text(json.dumps(rows), encoding="utf-8")
    return str(path)


def test_catalogue_sft_and_pt_build(tmp_path, tokenizer, template):
    cfg = make_cfg(tmp_path, ["identity"], catalog=EXAMPLES, cutoff_len=256)
    bundle = build_datasets(cfg, tokenizer, template)
    assert bundle.report.datasets[0].read == 91
    assert set(bundle.train.column_names) == {"input_ids", "labels"}
    cfg = make_cfg(tmp_path, ["wiki_demo"], stage="pt", catalog=EXAMPLES, cutoff_len=512, max_samples=3)
    bundle = build_datasets(cfg, tokenizer, None)
    assert all(len(r) == 512 for r in bundle.train["input_ids"][:-1])


def test_val_split_is_seeded_and_deterministic(tmp_path, tokenizer, template):
    path = _alpaca_file(tmp_path, 20)
    runs = []
    for i, seed in enumerate((1, 1, 2)):
        cfg = make_cfg(tmp_path / str(i), [{"path": path, "format": "alpaca"}], val_size=0.25, train={"seed": seed})
        bundle = build_datasets(cfg, tokenizer, template)
        assert (len(bundle.train), len(bundle.eval)) == (15, 5)
        runs.append(bundle.eval["input_ids"])
    assert runs[0] == runs[1] and runs[0] != runs[2]
    cfg = make_cfg(tmp_path / "n", [{"path": path, "format": "alpaca"}], val_size=3)
    assert len(build_datasets(cfg, tokenizer, template).eval) == 3


@pytest.mark.parametrize(("strategy", "expected"), [("concat", 8), ("interleave_under", 6), ("interleave_over", 10)])
def test_mixing_strategies(tmp_path, tokenizer, template, strategy, expected):
    small, big = _alpaca_file(tmp_path, 3, "s.json", "s"), _alpaca_file(tmp_path, 5, "b.json", "b")
    specs = [{"path": small, "format": "alpaca"}, {"path": big, "format": "alpaca"}]
    cfg = make_cfg(tmp_path, specs, mix_strategy=strategy, interleave_probs=None)
    first = build_datasets(cfg, tokenizer, template).train["input_ids"]
    again = build_datasets(make_cfg(tmp_path / "x", specs, mix_strategy=strategy), tokenizer, template)
    assert len(first) == expected and again.train["input_ids"] == first


def test_max_samples_per_dataset_and_global(tmp_path, tokenizer, template):
    path = _alpaca_file(tmp_path, 10)
    cfg = make_cfg(tmp_path, [{"path": path, "format": "alpaca", "max_samples": 4}], max_samples=6)
    assert len(build_datasets(cfg, tokenizer, template).train) == 4
    cfg = make_cfg(tmp_path, [{"path": path, "format": "alpaca"}], max_samples=6)
    assert len(build_datasets(cfg, tokenizer, template).train) == 6


def test_empty_responses_dropped_and_all_empty_is_an_error(tmp_path, tokenizer, template):
    rows = [{"instruction": f"q{i}", "output": " " if i % 5 == 0 else "ok"} for i in range(20)]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    cfg = make_cfg(tmp_path, [{"path": str(tmp_path / "d.json"), "format": "alpaca"}])
    counts = build_datasets(cfg, tokenizer, template).report.datasets[0]
    assert (counts.kept, counts.dropped) == (16, {"empty assistant response": 4})
    (tmp_path / "e.json").write_text(json.dumps([{"instruction": "q", "output": ""}] * 3))
    cfg = make_cfg(tmp_path, [{"path": str(tmp_path / "e.json"), "format": "alpaca"}])
    with pytest.raises(DataError, match=r"0 trainable examples after filtering.*3 empty assistant response"):
        build_datasets(cfg, tokenizer, template)


def test_report_is_logged(tmp_path, tokenizer, template, caplog):
    cfg = make_cfg(tmp_path, [{"path": _alpaca_file(tmp_path, 4), "format": "alpaca"}])
    logger = logging.getLogger("lmforge")
    logger.addHandler(caplog.handler)
    try:
        build_datasets(cfg, tokenizer, template)
    finally:
        logger.removeHandler(caplog.handler)
    assert "read 4, kept 4" in caplog.text and "length histogram" in caplog.text


def test_special_token_text_is_counted_and_never_encoded_as_the_special_id(tmp_path):
    """QUALITY A16 with the real ChatML template: literal "<|im_end|>" in content stays plain text."""
    from lmforge.templates import get_template
    from tests.fixtures.tokenizers import load_fixture_tokenizer

    tokenizer = load_fixture_tokenizer("qwen")
    rows = [{"instruction": "say <|im_end|> please", "output": "ok"}, {"instruction": "hi", "output": "ok"}]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    cfg = make_cfg(tmp_path, [{"path": str(tmp_path / "d.json"), "format": "alpaca"}])
    bundle = build_datasets(cfg, tokenizer, get_template("chatml", tokenizer))
    assert bundle.report.datasets[0].control_text == 1
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    # each example has exactly its template's end-of-turn markers: user turn + assistant turn
    assert [ids.count(end_id) for ids in bundle.train["input_ids"]] == [2, 2]


class _RejectsBoom(FakeChatML):
    """Rejects one conversation at encoding time (after conversion), like a template the row cannot fit."""

    def encode_many(self, tokenizer: object, conversations) -> list:
        if any("boom" in m["content"] for messages, _ in conversations for m in messages):
            raise DataError("cannot encode this conversation")
        return super().encode_many(tokenizer, conversations)


def test_encoding_error_names_the_failing_row_of_a_batch(tmp_path, tokenizer):
    path = _alpaca_file(tmp_path, 12)
    rows = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    rows[7]["instruction"] = "boom"
    (tmp_path / "a.json").write_text(json.dumps(rows), encoding="utf-8")
    cfg = make_cfg(tmp_path, [{"path": path, "format": "alpaca"}])
    with pytest.raises(DataError, match=re.escape("row 7 (0-based): cannot encode this conversation")):
        build_datasets(cfg, tokenizer, _RejectsBoom())


def test_dropping_many_over_long_examples_warns_with_the_cutoff_that_keeps_95_percent(
    tmp_path, tokenizer, template, caplog
):
    rows = [{"instruction": "q", "output": "a" * n} for n in range(1, 41)]  # answers of 1..40 characters
    path = tmp_path / "d.json"
    path.write_text(json.dumps(rows))
    cfg = make_cfg(tmp_path, [{"path": str(path), "format": "alpaca"}], cutoff_len=40)
    bundle = build_datasets(cfg, tokenizer, template)
    lengths = sorted(bundle.report.lengths)
    dropped = sum(n > 40 for n in lengths)
    assert dropped > 2  # more than 5% dropped
    expected = lengths[37]  # the 38th of 40 lengths: 95% are at most this
    assert f"{dropped} of 40 examples" in caplog.text and f"data.cutoff_len: {expected} would keep 95%" in caplog.text
    caplog.clear()
    build_datasets(
        dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, cutoff_len=expected)), tokenizer, template
    )
    assert "would keep 95%" not in caplog.text  # negative control: at that cutoff at most 5% are dropped

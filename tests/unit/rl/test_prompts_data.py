"""Prompts-only data for ppo/grpo: shapes accepted, references kept, wrong-stage data rejected (QUALITY A9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.config import load_config
from lmforge.data.rl_prompts import build_prompt_datasets
from lmforge.templates import get_template
from lmforge.utils.errors import DataError
from tests.fixtures.tokenizers import load_fixture_tokenizer


def _cfg(tmp_path: Path, rows: list, fmt: str, stage: str = "grpo", **data):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    overrides = [
        f"stage={stage}",
        "model.name_or_path=unused",
        f"data.datasets=[{{path: {path}, format: {fmt}}}]",
        "data.template=chatml",
        f"train.output_dir={tmp_path / 'out'}",
        "rl.reward_funcs=[lmforge.rl.builtin:exact_match]",
        *[f"data.{k}={v}" for k, v in data.items()],
    ]
    return load_config(None, overrides)


def _build(tmp_path, rows, fmt, **kw):
    tokenizer = load_fixture_tokenizer("qwen")
    template = get_template("chatml", tokenizer)
    return build_prompt_datasets(_cfg(tmp_path, rows, fmt, **kw), tokenizer, template), tokenizer, template


def test_alpaca_prompt_ids_are_the_template_prompt_and_output_is_the_reference(tmp_path):
    rows = [{"instruction": "Add", "input": "2 and 2", "output": "4"}, {"instruction": "Hi", "input": ""}]
    bundle, tokenizer, template = _build(tmp_path, rows, "alpaca")
    first = bundle.train[0]
    expected = template.encode_prompt(tokenizer, [{"role": "user", "content": "Add\n2 and 2"}])
    assert first["prompt_ids"] == expected
    assert first["reference"] == "4" and bundle.train[1]["reference"] is None


def test_sharegpt_final_assistant_turn_becomes_the_reference(tmp_path):
    conv = [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"}]
    rows = [{"conversations": conv}, {"conversations": [*conv, {"from": "gpt", "value": "d"}]}]
    bundle, _, _ = _build(tmp_path, rows, "sharegpt")
    messages = json.loads(bundle.train[1]["messages"])
    assert [m["content"] for m in messages] == ["a", "b", "c"] and bundle.train[1]["reference"] == "d"
    assert bundle.train[0]["prompt_ids"] == bundle.train[1]["prompt_ids"]


def test_prompt_format_reads_prompt_and_reference_columns(tmp_path):
    bundle, _, _ = _build(tmp_path, [{"prompt": "Say hi", "reference": "hi"}], "prompt")
    assert json.loads(bundle.train[0]["messages"]) == [{"role": "user", "content": "Say hi"}]
    assert bundle.train[0]["reference"] == "hi"


def test_preference_data_for_grpo_names_the_expected_fields(tmp_path):
    rows = [
        {
            "conversations": [{"from": "human", "value": "q"}],
            "chosen": {"from": "gpt", "value": "a"},
            "rejected": {"from": "gpt", "value": "b"},
        }
    ]
    with pytest.raises(DataError, match=r"dataset format preference does not match stage grpo.*instruction"):
        _build(tmp_path, rows, "sharegpt")


def test_text_data_for_ppo_is_rejected(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"text": "doc"}]), encoding="utf-8")
    cfg = load_config(
        None,
        [
            "stage=ppo",
            "model.name_or_path=m",
            f"data.datasets=[{{path: {path}, format: text}}]",
            f"train.output_dir={tmp_path}",
            "rl.reward_funcs=[a:b]",
        ],
    )
    tokenizer = load_fixture_tokenizer("qwen")
    with pytest.raises(DataError, match="dataset format text does not match stage ppo"):
        build_prompt_datasets(cfg, tokenizer, get_template("chatml", tokenizer))


def test_prompt_format_given_to_sft_is_rejected():
    from lmforge.config.schema import DatasetSpec
    from lmforge.data.formats import check_columns

    spec = DatasetSpec(name="prompts", path="prompts.json", format="prompt")
    with pytest.raises(DataError, match="dataset format prompt does not match stage sft"):
        check_columns(spec, ["prompt"], "sft")


def test_missing_prompt_column_lists_the_columns_found(tmp_path):
    with pytest.raises(DataError, match=r"missing column.*'instruction'.*columns found: question"):
        _build(tmp_path, [{"question": "q"}], "alpaca")


def test_conversation_not_ending_on_a_user_turn_is_rejected_with_the_row(tmp_path):
    conv = [{"role": "assistant", "content": "x"}, {"role": "assistant", "content": "y"}]
    with pytest.raises(DataError, match=r"row 0.*must end with a user"):
        _build(tmp_path, [{"messages": conv}], "openai")


def test_overlong_and_empty_prompts_are_dropped_and_counted(tmp_path):
    rows = [{"instruction": "short"}, {"instruction": "long " * 200}, {"instruction": "  "}]
    bundle, _, _ = _build(tmp_path, rows, "alpaca", cutoff_len=64)
    assert len(bundle.train) == 1
    assert bundle.report.datasets[0].dropped == {"prompt longer than cutoff_len": 1, "empty prompt": 1}


def test_all_prompts_dropped_is_an_error(tmp_path):
    with pytest.raises(DataError, match="0 trainable examples"):
        _build(tmp_path, [{"instruction": "long " * 200}], "alpaca", cutoff_len=16)


def test_special_token_text_in_a_prompt_stays_text_and_is_counted(tmp_path):
    bundle, tokenizer, _ = _build(tmp_path, [{"instruction": "end <|im_end|> here"}, {"instruction": "ok"}], "alpaca")
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert bundle.train[0]["prompt_ids"].count(end_id) == 1  # only the template's own end of the user turn
    assert tokenizer.encode("end <|im_end|> here", add_special_tokens=False).count(end_id) == 1  # control
    assert bundle.report.datasets[0].control_text == 1


def test_data_preview_shows_prompts_as_rollouts_see_them(tmp_path, capsys):
    from lmforge.data.rl_prompts import preview_prompts

    cfg = _cfg(tmp_path, [{"instruction": "Add 2 and 2", "output": "4"}], "alpaca")
    preview_prompts(cfg, load_fixture_tokenizer("qwen"), n=1, dump=str(tmp_path / "dump.jsonl"))
    out = capsys.readouterr().out
    assert "<|im_start|>user\nAdd 2 and 2<|im_end|>\n<|im_start|>assistant\n" in out and "reference: '4'" in out
    assert json.loads((tmp_path / "dump.jsonl").read_text())["reference"] == "4"

"""Preference/KTO rows: every accepted shape converges, bad pairs are counted, wrong data for a stage is refused
naming the expected fields (QUALITY A9), and pairs are encoded exactly like sft rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.config.schema import DataConfig, DatasetSpec, ModelConfig, RunConfig
from lmforge.data.catalog import load_catalog
from lmforge.data.encode import IGNORE_INDEX, encode_conversation
from lmforge.data.formats import iter_conversations
from lmforge.data.pairwise import encode_kto, encode_pairs
from lmforge.data.pipeline import build_datasets
from lmforge.data.report import DatasetCounts
from lmforge.templates import get_template
from lmforge.utils.errors import DataError
from tests.fixtures.tokenizers import load_fixture_tokenizer

ROOT = Path(__file__).resolve().parents[3]
HH = ROOT.parent / "shared" / "data" / "preference" / "hh_rlhf_harmless_base_test_first300.jsonl"
USER = {"role": "user", "content": "Name a colour."}


def convert(tmp_path: Path, rows: list[dict], fmt: str = "preference", stage: str = "dpo", **spec) -> tuple:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    counts = DatasetCounts("rows")
    spec_ = DatasetSpec(name="rows", path=str(path), format=fmt, **spec)
    return list(iter_conversations(spec_, DataConfig(), stage, counts, [])), counts


def test_sharegpt_openai_and_text_pairs_converge_on_one_shape(tmp_path):
    expected = {"prompt": [USER], "chosen": [{"role": "assistant", "content": "Blue."}]}
    sharegpt = {
        "conversations": [{"from": "human", "value": "Name a colour."}],
        "chosen": {"from": "gpt", "value": "Blue."},
        "rejected": {"from": "gpt", "value": "Seven."},
    }
    openai = {"prompt": [USER], "chosen": [expected["chosen"][0]], "rejected": [{"role": "assistant", "content": "7"}]}
    text = {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."}
    for row in (sharegpt, openai, text):
        (pair,), _ = convert(tmp_path, [row])
        assert {k: pair[k] for k in expected} == expected


def test_hh_dialogues_split_on_the_longest_shared_prefix_ending_with_a_user_turn(tmp_path):
    row = {
        "chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: a joke?\n\nAssistant: Sure, here is one.",
        "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: a joke?\n\nAssistant: No.",
    }
    (pair,), _ = convert(tmp_path, [row])
    assert [m["content"] for m in pair["prompt"]] == ["hi", "hello", "a joke?"]
    assert pair["chosen"] == [{"role": "assistant", "content": "Sure, here is one."}]
    assert pair["rejected"] == [{"role": "assistant", "content": "No."}]


def test_identical_or_prefixless_pairs_are_dropped_and_counted(tmp_path):
    same = {"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: a"}
    no_prompt = {"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: yo\n\nAssistant: b"}
    good = {"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: b"}
    rows, counts = convert(tmp_path, [same, no_prompt, good])
    assert len(rows) == 1 and counts.read == 3
    assert counts.dropped == {
        "chosen and rejected are identical": 1,
        "chosen and rejected share no prompt ending with a user turn": 1,
    }


@pytest.mark.skipif(not HH.is_file(), reason="shared HH sample not present")
def test_the_shared_hh_sample_converts_with_every_drop_counted():
    counts = DatasetCounts("hh")
    spec = DatasetSpec(name="hh", path=str(HH), format="preference")
    rows = list(iter_conversations(spec, DataConfig(), "dpo", counts, []))
    assert counts.read == 300 and len(rows) + sum(counts.dropped.values()) == 300
    assert all(r["prompt"][-1]["role"] == "user" and r["chosen"] != r["rejected"] for r in rows)


@pytest.mark.parametrize(
    ("dataset", "stage", "message"),
    [
        ("dpo_en_demo", "sft", "dataset format preference does not match stage sft; stage sft expects fields of: "),
        (
            "alpaca_en_demo",
            "dpo",
            "dataset format alpaca does not match stage dpo; stage dpo expects fields of: "
            "preference (chosen, rejected)",
        ),
        ("alpaca_en_demo", "rm", "does not match stage rm"),
        ("dpo_en_demo", "kto", "dataset format preference does not match stage kto; stage kto expects fields of: kto"),
        ("kto_en_demo", "dpo", "dataset format kto does not match stage dpo"),
    ],
)
def test_wrong_data_for_the_stage_names_the_expected_fields(dataset, stage, message):
    spec = load_catalog(ROOT / "examples" / "data" / "dataset_info.json").spec(dataset)
    with pytest.raises(DataError) as info:
        list(iter_conversations(spec, DataConfig(), stage, None, []))
    assert message in str(info.value)


@pytest.mark.parametrize("label", ["true", 1, None])
def test_kto_labels_must_be_booleans(tmp_path, label):
    row = {"messages": [USER, {"role": "assistant", "content": "Blue."}], "label": label}
    with pytest.raises(DataError, match=r"row 0.*expected a boolean label.*does not match stage kto"):
        convert(tmp_path, [row], fmt="kto", stage="kto")


@pytest.fixture(scope="module")
def chatml():
    tokenizer = load_fixture_tokenizer("qwen")
    return tokenizer, get_template("chatml", tokenizer)


def test_each_side_of_a_pair_equals_the_sft_encoding_of_prompt_plus_response(chatml):
    tokenizer, template = chatml
    history = [USER, {"role": "assistant", "content": "Red."}, {"role": "user", "content": "Another?"}]
    pair = {
        "prompt": history,
        "chosen": [{"role": "assistant", "content": "Blue."}],
        "rejected": [{"role": "assistant", "content": "Seven."}],
    }
    data = DataConfig(cutoff_len=256, mask_history=True)  # sft trains only the last turn: the response
    (row,) = encode_pairs([pair], template, tokenizer, data)
    for side in ("chosen", "rejected"):
        sft = encode_conversation({"messages": history + pair[side]}, template, tokenizer, data)
        assert row[f"{side}_input_ids"] == sft["input_ids"] and row[f"{side}_labels"] == sft["labels"]
    plain = encode_conversation({"messages": history + pair["chosen"]}, template, tokenizer, DataConfig())
    assert row["chosen_labels"] != plain["labels"]  # negative control: sft without mask_history trains "Red." too


def test_kto_example_trains_only_the_judged_turn_and_knows_its_prompt_length(chatml):
    tokenizer, template = chatml
    messages = [USER, {"role": "assistant", "content": "Blue."}]
    (row,) = encode_kto([{"messages": messages, "label": False}], template, tokenizer, DataConfig(cutoff_len=256))
    trained = [i for i, label in enumerate(row["labels"]) if label != IGNORE_INDEX]
    assert trained[0] == row["prompt_len"] and row["kto_label"] is False
    assert tokenizer.decode(row["input_ids"][row["prompt_len"] :]).startswith("Blue.")


def test_pairs_over_the_cutoff_are_dropped_or_truncated_and_counted(tmp_path, chatml):
    tokenizer, template = chatml
    rows = [{"prompt": "Say it.", "chosen": "word " * n, "rejected": "no"} for n in (2, 200)]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    for policy, kept in (("drop", 1), ("truncate", 2)):
        data = DataConfig(
            datasets=[{"path": str(path), "format": "preference"}],
            cutoff_len=64,
            truncation=policy,
            cache_dir=str(tmp_path / "cache"),
        )
        bundle = build_datasets(RunConfig(stage="dpo", data=data), tokenizer, template)
        counts = bundle.report.datasets[0]
        assert counts.kept == kept == len(bundle.train)
        assert (counts.dropped, counts.truncated) == (
            ({"longer than cutoff_len (truncation: drop)": 1}, 0) if policy == "drop" else ({}, 1)
        )
        assert max(len(ids) for ids in bundle.train["chosen_input_ids"]) <= 64


def test_data_preview_shows_both_sides_of_each_pair_with_trained_spans(tmp_path, tiny_model_dir, capsys):
    from lmforge.data.preview import preview_command

    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."}]))
    data = DataConfig(datasets=[{"path": str(path), "format": "preference"}], template="chatml",
                      cache_dir=str(tmp_path / "cache"))  # fmt: skip
    cfg = RunConfig(stage="dpo", model=ModelConfig(name_or_path=str(tiny_model_dir)), data=data)
    preview_command(cfg, n=1, dump=str(tmp_path / "dump.jsonl"))
    out = capsys.readouterr().out
    assert "example 0 chosen" in out and "«Blue.<|im_end|>" in out and "«Seven.<|im_end|>" in out
    sides = [json.loads(line)["side"] for line in (tmp_path / "dump.jsonl").read_text().splitlines()]
    assert sides == ["chosen", "rejected"]

"""Self-Instruct's model-free steps: reading replies, the instruction filters, instance cleanup, prompt choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.generate import self_instruct_prompts as prompts
from lmforge.generate.generate_config import SelfInstructConfig
from lmforge.generate.parsing import numbered_items
from lmforge.generate.seeds import load_seed_tasks
from lmforge.generate.self_instruct import clean_instances, instruction_problem
from lmforge.utils.errors import DataError

REPO = Path(__file__).resolve().parents[3]


def test_a_continuation_reply_gives_its_items_in_order() -> None:
    reply = "Name a red fruit.\n10. Sort the words:\n  alphabetically.\n11) Translate it into French"
    assert prompts.proposed_instructions(reply, 9) == [
        "Name a red fruit.",
        "Sort the words: alphabetically.",
        "Translate it into French",
    ]
    assert numbered_items("no list here") == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Say hi.", "too_short"),
        ("Describe the picture you took last summer please.", "blacklisted_word"),
        ("Write a program that sorts a list of numbers.", "banned_prefix"),
        ("- Explain how tides work on the coast.", "starts_with_punctuation"),
        ("Explain how tides work on the coast.", None),
        ("请描述这张图片里的人物和风景。", "blacklisted_word"),
    ],
)
def test_instruction_filters(text: str, reason: str | None) -> None:
    cfg = SelfInstructConfig(seed_tasks="x", extra_blacklist=["图片"])
    assert instruction_problem(text, cfg) == reason


def test_chinese_instructions_are_measured_in_words_not_dropped_as_empty() -> None:
    cfg = SelfInstructConfig(seed_tasks="x")
    assert instruction_problem("请给出三个保持健康的建议。", cfg) is None
    assert instruction_problem("你好", cfg) == "too_short"


def test_instance_cleanup_drops_bad_instances_and_flags_conflicts() -> None:
    pairs = [("a", "a"), ("b", ""), ("c:", "x"), ("d", "1"), ("d", "1"), ("e", "2"), ("f", "3")]
    kept, dropped, conflicting = clean_instances(pairs, max_instances=2)
    assert kept == [("d", "1"), ("e", "2")]
    assert [reason for reason, _ in dropped] == [
        "instance_input_equals_output",
        "instance_empty_output",
        "instance_truncated",
        "instance_duplicate",
        "instance_over_max",
    ]
    assert not conflicting
    assert clean_instances([("x", "yes"), ("x", "no")], 5)[2]


def test_instance_replies_parse_in_both_orders() -> None:
    reply = "Example 1\nInput: Good morning.\nOutput: Bonjour.\nExample 2\nInput: Thanks.\nOutput: Merci."
    assert prompts.instances_input_first(reply, truncated=False) == [
        ("Good morning.", "Bonjour."),
        ("Thanks.", "Merci."),
    ]
    assert prompts.instances_input_first(reply, truncated=True) == [("Good morning.", "Bonjour.")]
    assert prompts.instances_input_first("Output: Apples.", truncated=False) == [("", "Apples.")]
    labels = "Class label: Mammal\nInput: dog\nClass label: Bird\nInput: eagle"
    assert prompts.instances_output_first(labels, truncated=False) == [("dog", "Mammal"), ("eagle", "Bird")]


def test_classification_tasks_get_output_first_prompts() -> None:
    clf_id, clf_text = prompts.instance_prompt("Is the review positive or negative?", classification=True)
    gen_id, gen_text = prompts.instance_prompt("Write a haiku about rain.", classification=False)
    task_line = clf_text.rindex("Task:")
    assert clf_id == prompts.OUTPUT_FIRST_ID and gen_id == prompts.INPUT_FIRST_ID
    assert clf_text.index("Class label:") < clf_text.index("Input:") < task_line  # every demo: label, then input
    assert "Class label" not in gen_text
    assert prompts.is_classification(" Yes.") is True and prompts.is_classification("no") is False
    assert prompts.is_classification("maybe") is None


def test_seed_files_load_in_both_shapes_and_errors_name_the_line(tmp_path: Path) -> None:
    seeds = load_seed_tasks(REPO / "examples/data/generate/seed_tasks.jsonl")
    assert len(seeds) == 30 and any(s.is_classification for s in seeds)
    alpaca = tmp_path / "a.json"
    alpaca.write_text(json.dumps([{"instruction": "Add  two numbers", "input": "1 2", "output": "3"}]))
    assert load_seed_tasks(alpaca)[0].instances == (("1 2", "3"),)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok", "output": "x"}\n{"instruction": ""}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'instruction'"):
        load_seed_tasks(bad)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no seed tasks"):
        load_seed_tasks(tmp_path / "empty.jsonl")

"""Choice scoring: letter ids from the template, k-shot prompts through encode_prompt, known accuracies."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from lmforge.evaluation import choice
from lmforge.evaluation.benchmarks import Question
from lmforge.evaluation.eval_config import load_eval_config
from lmforge.evaluation.runner import run_evaluation
from lmforge.inference.decoding import pad_left
from lmforge.inference.engine import ChatEngine
from lmforge.templates import get_template
from lmforge.utils.errors import ConfigError, DataError
from tests.fixtures.tokenizers import load_fixture_tokenizer
from tests.unit.evaluation.conftest import SAMPLES

LETTERS = ["A", "B", "C", "D"]
Q = Question("What is 2 + 3?", {"A": "4", "B": "5", "C": "6", "D": "7"}, "B")
SHOT = Question("What is 1 + 1?", {"A": "2", "B": "3", "C": "4", "D": "5"}, "A")


@pytest.mark.parametrize("family", ["qwen", "llama3", "mistral", "gemma"])
def test_letter_ids_are_the_single_tokens_a_reply_starts_with(family: str) -> None:
    tokenizer = load_fixture_tokenizer(family)
    template = get_template("auto", tokenizer)
    letters = choice.letter_token_ids(template, tokenizer, LETTERS)
    assert [tokenizer.decode([i]).strip() for i in letters.ids] == LETTERS
    assert len(set(letters.ids)) == 4
    for letter, token in zip(LETTERS, letters.ids, strict=True):  # the id training puts first in reply "X"
        encoded = template.encode(
            tokenizer, [{"role": "user", "content": "q"}, {"role": "assistant", "content": letter}]
        )
        assert encoded.input_ids[encoded.replies[-1][0] + len(letters.reply_prefix)] == token


def test_multi_token_option_label_is_refused() -> None:
    tokenizer = load_fixture_tokenizer("qwen")
    with pytest.raises(ConfigError, match="'Zebroid' is not a single token"):
        choice.letter_token_ids(get_template("auto", tokenizer), tokenizer, ["A", "Zebroid"])


def test_prompt_is_the_training_prefix_of_the_solved_conversation() -> None:
    """C3: the scored prompt equals the ids training puts before the answer letter of the same conversation."""
    tokenizer = load_fixture_tokenizer("llama3")
    template = get_template("llama3", tokenizer)
    messages = choice.build_messages(Q, [SHOT], "elementary_arithmetic", "mmlu")
    assert messages[0]["content"].startswith("The following are multiple choice questions (with answers) about elem")
    assert messages[-1]["content"] == "What is 2 + 3?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer:"
    encoded = template.encode(tokenizer, [*messages, {"role": "assistant", "content": "B"}])
    prefix = encoded.input_ids[: encoded.replies[-1][0]]
    prompt = template.encode_prompt(tokenizer, messages)
    assert prompt == prefix and prompt.count(tokenizer.bos_token_id) == 1


def test_letter_scores_equal_a_manual_forward_pass(engine: ChatEngine) -> None:
    """Batched, padded scoring gives each prompt's own next-token logits at the letters' ids."""
    tok = engine.tokenizer
    questions = [Q, SHOT, Question("Longer question " * 8, Q.options, "C")]
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": choice.format_question(q, "Answer:")}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
        for q in questions
    ]
    letters = choice.letter_token_ids(engine.template, tok, LETTERS)
    assert letters.ids == tok.convert_tokens_to_ids(LETTERS) and letters.reply_prefix == []
    batched = choice.letter_logits(engine.model, prompts, letters.ids, engine.pad_id)
    for k, ids in enumerate(prompts):
        with torch.no_grad():
            manual = engine.model(input_ids=torch.tensor([ids])).logits[0, -1, letters.ids]
        assert torch.allclose(batched[k], manual, atol=1e-5)
    expected = [LETTERS[int(row.argmax())] for row in batched]
    assert choice.predict_letters(engine.model, prompts, letters, engine.pad_id, 2) == expected
    # negative control: the same left-padded batch without its attention mask reads the padding
    ids, _ = pad_left(prompts, engine.pad_id)
    with torch.no_grad():
        unmasked = engine.model(input_ids=ids).logits[:, -1, letters.ids]
    assert (unmasked[0] - batched[0]).abs().max() > 1e-3


class OracleLM(torch.nn.Module):
    """Puts all probability on one letter: the right answer (looked up by question text) or always `fixed`."""

    def __init__(self, tokenizer: Any, answers: dict[str, str], fixed: str | None = None) -> None:
        super().__init__()
        self.tokenizer, self.answers, self.fixed = tokenizer, answers, fixed
        self.vocab = len(tokenizer)
        self.longest = 0  # longest unpadded input seen

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> Any:
        logits = torch.zeros(*input_ids.shape, self.vocab)
        for row, (ids, mask) in enumerate(zip(input_ids, attention_mask, strict=True)):
            text = self.tokenizer.decode(ids[mask.bool()])
            self.longest = max(self.longest, int(mask.sum()))
            last_question = max(self.answers, key=lambda q: text.rfind(q + "\n"))
            letter = self.fixed or self.answers[last_question]
            last = int(mask.nonzero().max())  # the last real token, whatever the padding side
            logits[row, last, self.tokenizer.convert_tokens_to_ids(letter)] = 10.0
        return SimpleNamespace(logits=logits)


def _answers(folder: Path) -> dict[str, str]:
    return {
        row[0]: row[-1] for path in sorted(folder.glob("*.csv")) for row in csv.reader(path.open(encoding="utf-8"))
    }


def _run_choice(tmp_path: Path, engine: ChatEngine, model: Any, **keys: str) -> dict:
    overrides = [f"{k}={v}" for k, v in {"task": "choice", "model.name_or_path": "unused", **keys}.items()]
    cfg = load_eval_config(None, [*overrides, f"output_dir={tmp_path}", "batch_size=3"])
    return run_evaluation(cfg, ChatEngine(model, engine.tokenizer, engine.template))


def test_oracle_model_scores_100_percent_and_always_b_scores_the_share_of_b(
    tmp_path: Path, engine: ChatEngine
) -> None:
    root = SAMPLES / "mmlu"
    answers = {**_answers(root / "data" / "test"), **_answers(root / "data" / "dev")}
    keys = {
        "choice.benchmark_dir": str(root),
        "choice.categories": str(root / "categories.json"),
        "choice.n_shot": "2",
    }
    perfect = _run_choice(tmp_path, engine, OracleLM(engine.tokenizer, answers), **keys)
    assert perfect["metrics"] == {"correct": 12, "total": 12, "accuracy": 1.0}
    assert perfect["categories"]["STEM"]["total"] == 6

    test_answers = list(_answers(root / "data" / "test").values())
    always_b = _run_choice(tmp_path, engine, OracleLM(engine.tokenizer, answers, fixed="B"), **keys)
    assert always_b["metrics"]["correct"] == test_answers.count("B") == 4
    arithmetic = [r[-1] for r in csv.reader((root / "data/test/elementary_arithmetic_test.csv").open())]
    assert always_b["subjects"]["elementary_arithmetic"]["correct"] == arithmetic.count("B")


def test_cmmlu_and_ceval_layouts_score_end_to_end(tmp_path: Path, engine: ChatEngine) -> None:
    for layout, split, cats in (("cmmlu", "test", "categories.json"), ("ceval", "val", "subject_mapping.json")):
        root = SAMPLES / layout
        answers = {row[1]: row[6] for path in root.glob("*/*.csv") for row in csv.reader(path.open(encoding="utf-8"))}
        keys = {
            "choice.benchmark_dir": str(root),
            "choice.layout": layout,
            "choice.split": split,
            "choice.categories": str(root / cats),
        }
        result = _run_choice(tmp_path, engine, OracleLM(engine.tokenizer, answers), **keys)
        assert result["metrics"]["accuracy"] == 1.0 and result["metrics"]["total"] == (16 if layout == "cmmlu" else 8)
        assert set(result["categories"]) == {"STEM", "Humanities"}


def test_prompts_over_the_length_limit_drop_examples_or_are_skipped_and_counted(
    tmp_path: Path, engine: ChatEngine
) -> None:
    root = SAMPLES / "mmlu"
    answers = {**_answers(root / "data" / "test"), **_answers(root / "data" / "dev")}
    keys = {"choice.benchmark_dir": str(root), "choice.n_shot": "5"}
    full = OracleLM(engine.tokenizer, answers)
    unlimited = _run_choice(tmp_path, engine, full, **keys)
    assert (unlimited["fewer_shots"], unlimited["skipped_too_long"]) == (0, 0)

    limit = full.longest - 40  # the longest 5-shot prompts no longer fit
    fitted = OracleLM(engine.tokenizer, answers)
    result = _run_choice(tmp_path, engine, fitted, **keys, **{"choice.max_length": str(limit)})
    assert result["fewer_shots"] > 0 and result["skipped_too_long"] == 0
    assert fitted.longest <= limit and result["metrics"]["accuracy"] == 1.0

    with pytest.raises(DataError, match=r"no questions to score .*12 too long for the length limit"):
        _run_choice(tmp_path, engine, fitted, **keys, **{"choice.max_length": "8"})


def test_too_few_dev_rows_for_n_shot_is_an_error(tmp_path: Path, engine: ChatEngine) -> None:
    with pytest.raises(DataError, match=r"elementary_arithmetic_dev\.csv: 5 usable rows for choice\.n_shot=6; lower"):
        _run_choice(
            tmp_path, engine, engine.model, **{"choice.benchmark_dir": str(SAMPLES / "mmlu"), "choice.n_shot": "6"}
        )


def test_a_template_other_than_the_tokenizers_is_warned_about(
    tmp_path: Path, engine: ChatEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """C3: scores under a template training did not use mean little, so the run says so."""
    other = ChatEngine(engine.model, engine.tokenizer, get_template("llama3", engine.tokenizer))
    cfg = load_eval_config(
        None,
        [
            "task=choice",
            "model.name_or_path=m",
            f"output_dir={tmp_path}",
            "choice.n_shot=0",
            f"choice.benchmark_dir={SAMPLES / 'mmlu'}",
            "choice.subjects=[world_geography]",
        ],
    )
    with caplog.at_level("WARNING"):
        run_evaluation(cfg, other)
    assert "encodes conversations differently from the tokenizer's own chat template" in caplog.text

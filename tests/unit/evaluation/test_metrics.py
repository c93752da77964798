"""BLEU-4 and ROUGE-1/2/L against values derived by hand (the derivations are in the comments)."""

from __future__ import annotations

import math

import pytest

from lmforge.evaluation.metrics import average_scores, sentence_scores, tokenize

# hyp: the cat sat on the mat  /  ref: the cat is on the mat  (6 tokens each, brevity penalty 1)
#   1-grams: the x2, cat, on, mat match -> 5/6     2-grams: "the cat", "on the", "the mat" -> 3/5
#   3-grams: "on the mat" -> 1/4                   4-grams: none of 3 -> 0, method3 -> 1 / (2^1 * 3) = 1/6
#   BLEU-4 = (5/6 * 3/5 * 1/4 * 1/6) ** (1/4) = (1/48) ** (1/4)
#   ROUGE-1 F = 5/6 (P = R = 5/6); ROUGE-2 F = 3/5; ROUGE-L: LCS "the cat on the mat" = 5 -> 5/6
EN_HYP, EN_REF = "The cat sat on the mat", "the cat is on the mat"
EN_EXPECTED = {"bleu-4": (1 / 48) ** 0.25, "rouge-1": 5 / 6, "rouge-2": 3 / 5, "rouge-l": 5 / 6}

# zh, segmented by jieba: 我/喜欢/吃/香蕉 vs 我/喜欢/吃/苹果
#   p1 = 3/4, p2 = 2/3, p3 = 1/2 ("我喜欢吃"), p4 = 0/1 -> method3 -> 1/2;  BLEU-4 = (3/4 * 2/3 * 1/2 * 1/2) ** (1/4)
#   ROUGE-1 F = 3/4, ROUGE-2 F = 2/3, ROUGE-L (LCS 我 喜欢 吃 = 3) = 3/4
ZH_HYP, ZH_REF = "我喜欢吃香蕉", "我喜欢吃苹果"
ZH_EXPECTED = {"bleu-4": (1 / 8) ** 0.25, "rouge-1": 3 / 4, "rouge-2": 2 / 3, "rouge-l": 3 / 4}

# short hypothesis: "a b" vs "a b c d e": p1 = p2 = 1; no 3-/4-grams -> 0/1 each -> method3 -> 1/2, 1/4
#   brevity penalty exp(1 - 5/2);  BLEU-4 = exp(-1.5) * (1/8) ** (1/4)
#   ROUGE-1: P = 1, R = 2/5 -> F = 2 * 0.4 / 1.4 = 4/7;  ROUGE-2: P = 1, R = 1/4 -> F = 2/5;  ROUGE-L = 4/7
SHORT_EXPECTED = {"bleu-4": math.exp(-1.5) * (1 / 8) ** 0.25, "rouge-1": 4 / 7, "rouge-2": 2 / 5, "rouge-l": 4 / 7}


def test_tokenize_segments_chinese_with_jieba_and_splits_english_words() -> None:
    assert tokenize(ZH_REF) == ["我", "喜欢", "吃", "苹果"]
    assert tokenize("The cat, sat!") == ["the", "cat", ",", "sat", "!"]
    assert tokenize("AI 是 人工智能") == ["ai", "是", "人工智能"]


@pytest.mark.parametrize(
    "hyp, ref, expected",
    [(EN_HYP, EN_REF, EN_EXPECTED), (ZH_HYP, ZH_REF, ZH_EXPECTED), ("a b", "a b c d e", SHORT_EXPECTED)],
    ids=["en", "zh", "brevity"],
)
def test_sentence_scores_equal_hand_computed_values(hyp: str, ref: str, expected: dict[str, float]) -> None:
    scores = sentence_scores(hyp, ref)
    assert scores == pytest.approx(expected, abs=1e-12)


def test_unsegmented_chinese_would_score_zero() -> None:
    """Negative control: the zh sentence as one whitespace token shares nothing with the reference."""
    from rouge_score import rouge_scorer

    class Whitespace:
        def tokenize(self, text: str) -> list[str]:
            return text.split()

    scorer = rouge_scorer.RougeScorer(["rouge1"], tokenizer=Whitespace())
    assert scorer.score(ZH_REF, ZH_HYP)["rouge1"].fmeasure == 0.0
    assert sentence_scores(ZH_HYP, ZH_REF)["rouge-1"] == pytest.approx(0.75)


def test_average_is_the_sentence_mean_times_100() -> None:
    scores = average_scores([EN_HYP, ZH_HYP, ""], [EN_REF, ZH_REF, "anything"])
    expected = {k: 100 * (EN_EXPECTED[k] + ZH_EXPECTED[k] + 0.0) / 3 for k in EN_EXPECTED}
    assert scores == pytest.approx(expected, abs=1e-9)


def test_identical_texts_score_100_and_empty_prediction_scores_0() -> None:
    assert average_scores([EN_REF], [EN_REF]) == pytest.approx(dict.fromkeys(EN_EXPECTED, 100.0))
    assert average_scores([" "], [EN_REF]) == dict.fromkeys(EN_EXPECTED, 0.0)

"""Text-overlap metrics for generated answers: BLEU-4 and ROUGE-1/2/L (F), sentence-level, averaged.

Definitions (documented in docs/evaluation.md):
  * tokens: runs of CJK characters are segmented into words with jieba; other text is lower-cased and split into
    word tokens (`\\w+`) and single punctuation marks. Whitespace never is a token. Without segmentation a Chinese
    sentence is a single "word" and every score is 0 unless the whole sentence matches.
  * BLEU-4: nltk `sentence_bleu` per (prediction, label) with uniform 1-4-gram weights and smoothing method3
    (NIST geometric: the k-th zero n-gram precision becomes 1 / (2^k * hypothesis n-grams)); brevity penalty as in
    Papineni et al.
  * ROUGE-N / ROUGE-L: `rouge_score` F-measure per pair (n-gram overlap / longest common subsequence) on the same
    tokens.
  * the reported number is the mean over examples (sentence average, not corpus BLEU), times 100. A pair where the
    prediction or the label has no tokens scores 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

CJK_RUN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+)")
_WORD = re.compile(r"\w+|[^\w\s]")
METRIC_NAMES = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")


def _words_and_punctuation(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def tokenize(text: str, non_cjk: Callable[[str], list[str]] = _words_and_punctuation) -> list[str]:
    """Word tokens: jieba words for CJK runs; `non_cjk` splits the text between them (by default into lower-cased
    word and punctuation tokens; the generate near-duplicate filter passes rouge_score's alphanumeric words)."""
    tokens: list[str] = []
    for k, part in enumerate(CJK_RUN.split(text)):
        if k % 2 == 1:
            tokens.extend(w for w in _jieba().lcut(part) if w.strip())
        else:
            tokens.extend(non_cjk(part))
    return tokens


def _jieba() -> Any:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter would interleave with our table
    return jieba


class _Tokenizer:
    """The rouge_score tokenizer interface (an object with `tokenize`)."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)


def sentence_scores(prediction: str, label: str) -> dict[str, float]:
    """BLEU-4 and ROUGE-1/2/L F of one prediction against one label, each in [0, 1]."""
    hyp, ref = tokenize(prediction), tokenize(label)
    if not hyp or not ref:
        return dict.fromkeys(METRIC_NAMES, 0.0)
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_score import rouge_scorer

    bleu = sentence_bleu([ref], hyp, weights=(0.25, 0.25, 0.25, 0.25), smoothing_function=SmoothingFunction().method3)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_Tokenizer())
    # scorer.score(target, prediction); tokenizing again is cheap next to generation
    rouge = scorer.score(label, prediction)
    return {
        "bleu-4": float(bleu),
        "rouge-1": rouge["rouge1"].fmeasure,
        "rouge-2": rouge["rouge2"].fmeasure,
        "rouge-l": rouge["rougeL"].fmeasure,
    }


def average_scores(predictions: list[str], labels: list[str]) -> dict[str, float]:
    """Mean of the sentence scores over all pairs, times 100 (0 for no pairs)."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    totals = dict.fromkeys(METRIC_NAMES, 0.0)
    for prediction, label in zip(predictions, labels, strict=True):
        for name, value in sentence_scores(prediction, label).items():
            totals[name] += value
    return {name: 100.0 * total / max(1, len(labels)) for name, total in totals.items()}

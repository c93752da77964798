"""ROUGE-L near-duplicate filter: equal to rouge_score (ground truth we did not write) and to all-pairs search."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from rouge_score import rouge_scorer, tokenize
from rouge_score.rouge_scorer import _score_lcs

from lmforge.generate.dedup import NearDuplicateIndex, rouge_l_f, tokenize_for_rouge

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "generate" / "alpaca_instructions.jsonl"


def _instructions(lang: str) -> list[str]:
    rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    return [r["instruction"] for r in rows if r["lang"] == lang]


def test_english_tokens_equal_rouge_score_default_tokenizer() -> None:
    for text in [*_instructions("en"), "Héllo, wörld! It's 3.5 NAÏVE_x"]:
        assert tokenize_for_rouge(text) == tokenize.tokenize(text, None)


def test_chinese_is_segmented_where_rouge_score_drops_it() -> None:
    text = "列出一个应该在野营应急包中的7件物品。"
    assert tokenize.tokenize(text, None) == ["7"]  # negative control: the stock tokenizer keeps only the digit
    assert tokenize_for_rouge(text) == ["列出", "一个", "应该", "在", "野营", "应急", "包中", "的", "7", "件物品"]
    assert rouge_l_f(text, text) == 1.0


def test_rouge_l_f_equals_rouge_score_on_english_pairs() -> None:
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    texts = [*_instructions("en"), "Describe the process of making crepes!", ""]
    for a in texts:
        for b in texts:
            assert rouge_l_f(a, b) == scorer.score(a, b)["rougeL"].fmeasure  # bit-equal, not approx


def test_rouge_l_f_accepts_tokens() -> None:
    assert (
        rouge_l_f(["a", "b", "c", "d"], ["a", "c", "d", "e", "f"]) == _score_lcs(list("abcd"), list("acdef")).fmeasure
    )


@pytest.mark.parametrize(
    "pool, paraphrase, distinct",
    [
        (_instructions("en"), "Describe the process of making crepes!", "Describe how a bicycle gear works."),
        (_instructions("zh"), "列出应该放在野营应急包里的7件物品", "解释一下光合作用的基本过程。"),
    ],
    ids=["en", "zh"],
)
def test_paraphrase_is_rejected_and_distinct_instruction_kept(pool: list[str], paraphrase: str, distinct: str) -> None:
    index = NearDuplicateIndex(0.7)
    for text in pool:
        index.add(text)
    score, item = index.most_similar(paraphrase)
    assert index.is_duplicate(paraphrase) and score > 0.7
    assert score == max(rouge_l_f(paraphrase, text) for text in pool)
    assert item is not None and rouge_l_f(paraphrase, pool[item]) == score
    assert not index.is_duplicate(distinct)
    assert index.most_similar(distinct) == (0.0, None)
    assert len(index) == len(pool)


def test_score_equal_to_threshold_is_kept_as_the_reference_does() -> None:
    """The reference rejects only when max ROUGE-L > 0.7: 7 of 10 tokens shared scores exactly 0.7."""
    a, b = "a b c d e f g h i j", "a b c d e f g x y z"
    assert rouge_l_f(a, b) == 0.7
    index = NearDuplicateIndex(0.7)
    index.add(a)
    assert not index.is_duplicate(b)
    assert index.is_duplicate("a b c d e f g h y z")  # 8/10


def _random_stream(n: int, seed: int) -> list[list[str]]:
    """Token lists from a small vocabulary, most of them mutations of earlier ones: many pairs near any threshold."""
    rng = random.Random(seed)
    vocab = [f"w{k}" for k in range(12)]
    stream: list[list[str]] = []
    for _ in range(n):
        if stream and rng.random() < 0.7:
            tokens = list(rng.choice(stream))
            for _ in range(rng.randint(0, 4)):
                k = rng.randrange(len(tokens) + 1)
                if rng.random() < 0.5 and tokens:
                    tokens[min(k, len(tokens) - 1)] = rng.choice(vocab)
                elif rng.random() < 0.5 and len(tokens) > 1:
                    del tokens[min(k, len(tokens) - 1)]
                else:
                    tokens.insert(k, rng.choice(vocab))
        else:
            tokens = [rng.choice(vocab) for _ in range(rng.randint(1, 20))]
        stream.append(tokens)
    return stream


def _filter(stream: list[list[str]], index: NearDuplicateIndex) -> list[tuple[float, int | None]]:
    """Incremental filtering: each text is checked against the accepted pool and joins it when new."""
    verdicts = []
    for tokens in stream:
        verdict = index.most_similar(tokens)
        verdicts.append(verdict)
        if verdict[1] is None:
            index.add(tokens)
    return verdicts


def _filter_all_pairs(stream: list[list[str]], threshold: float) -> list[tuple[float, int | None]]:
    """The reference: rouge_score's LCS F against every accepted text; duplicate when the max is > threshold."""
    pool: list[list[str]] = []
    verdicts: list[tuple[float, int | None]] = []
    for tokens in stream:
        scores = [_score_lcs(tokens, other).fmeasure for other in pool]
        best = max(scores, default=0.0)
        if best > threshold:
            verdicts.append((best, scores.index(best)))
        else:
            verdicts.append((0.0, None))
            pool.append(tokens)
    return verdicts


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9])
def test_index_decisions_equal_exact_all_pairs_search(threshold: float) -> None:
    stream = _random_stream(300, seed=int(threshold * 10))
    expected = _filter_all_pairs(stream, threshold)
    assert sum(item is not None for _, item in expected) > 50  # the stream really exercises rejections
    assert _filter(stream, NearDuplicateIndex(threshold)) == expected


class _ShortPrefixIndex(NearDuplicateIndex):
    """Negative control: probes one prefix element fewer than the completeness proof requires."""

    def _prefix(self, ids: list[int]) -> list[tuple[int, int]]:
        return super()._prefix(ids)[:-1]


def test_a_prefix_one_element_short_misses_duplicates() -> None:
    """Negative control: the agreement test above would notice a candidate filter that is not complete."""
    stream = _random_stream(300, seed=7)
    assert _filter(stream, _ShortPrefixIndex(0.7)) != _filter_all_pairs(stream, 0.7)


def test_empty_text_is_never_a_duplicate() -> None:
    index = NearDuplicateIndex()
    assert index.add("") == 0
    assert index.add("!!!") == 1  # no tokens either
    assert not index.is_duplicate("")
    assert len(index) == 2


def test_threshold_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        NearDuplicateIndex(1.0)

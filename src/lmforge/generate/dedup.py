"""Near-duplicate filtering by ROUGE-L, as Self-Instruct does, without comparing each text with the whole pool.

Self-Instruct keeps a new instruction only if its ROUGE-L F-measure with every instruction already in the pool is at
most 0.7. Done literally that is quadratic (hours at 50K instructions). `NearDuplicateIndex` returns exactly the same
decisions: a candidate index that provably finds every pooled text that could score above the threshold, followed by
the exact LCS on those few candidates.

Tokens: rouge_score's default tokenizer keeps only `[a-z0-9]+` runs of the lower-cased text, so a Chinese instruction
has no tokens and two identical Chinese instructions score 0 (the reference filter never rejects anything there).
We keep rouge_score's tokens for non-CJK text (so English decisions equal the reference pipeline's) and segment CJK
runs as our ROUGE evaluation does (`lmforge.evaluation.metrics.tokenize`: jieba words).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

from rapidfuzz.distance import LCSseq

from lmforge.evaluation.metrics import tokenize

_ALPHANUMERIC = re.compile(r"[a-z0-9]+")
# Slack for float rounding in the candidate bounds: it only ever lets more candidates through (see the proof below).
_EPS = 1e-9

Text = str | Sequence[str]


def _rouge_score_words(text: str) -> list[str]:
    """rouge_score's default tokens (no stemming): runs of [a-z0-9] in the lower-cased text."""
    return _ALPHANUMERIC.findall(text.lower())


def tokenize_for_rouge(text: str) -> list[str]:
    """rouge_score's default tokens for non-CJK text, jieba words (as our ROUGE eval segments) for CJK runs."""
    return tokenize(text, _rouge_score_words)


def _tokens(text: Text) -> list[str]:
    return tokenize_for_rouge(text) if isinstance(text, str) else list(text)


def _f_measure(lcs: int, target_len: int, prediction_len: int) -> float:
    """rouge_score's ROUGE-L F (`_score_lcs` + `scoring.fmeasure`), the same float operations in the same order."""
    if lcs == 0:  # also covers an empty side, which rouge_score scores 0
        return 0.0
    precision = lcs / prediction_len
    recall = lcs / target_len
    return 2 * precision * recall / (precision + recall)


def rouge_l_f(a: Text, b: Text) -> float:
    """ROUGE-L F-measure of `a` (target) and `b` (prediction), texts or token lists; symmetric, equal to
    `rouge_score.RougeScorer(["rougeL"]).score(a, b)` on the same tokens."""
    ta, tb = _tokens(a), _tokens(b)
    ids: dict[str, int] = {}  # LCS over exact integer ids: rapidfuzz would hash strings (collisions, however unlikely)
    ia = [ids.setdefault(t, len(ids)) for t in ta]
    ib = [ids.setdefault(t, len(ids)) for t in tb]
    return _f_measure(LCSseq.similarity(ia, ib), len(ia), len(ib))


class NearDuplicateIndex:
    """Pool of texts answering "does any pooled text have ROUGE-L F > threshold with this one?" exactly.

    A text is a duplicate when its best score is strictly above the threshold (the reference rejects `> 0.7`).

    Why the candidates are complete. Let a query have n tokens, a pooled text m, and L be their LCS length.
    1. rouge_score computes P = L/m, R = L/n, F = 2PR/(P+R) = 2L/(m+n).
    2. F > t needs L >= need(m, n) = ceil(t(m+n)/2 - eps); the float F can exceed the exact 2L/(m+n) only by a few
       ulps, far less than the eps slack, so no pair whose float F exceeds t is ruled out.
    3. L <= min(m, n), so m >= L >= t(m+n)/2 - eps gives m >= (tn - 2eps)/(2-t), and then
       L >= t(m+n)/2 - eps >= tn/(2-t) - 2eps: L >= alpha(n) = ceil(tn/(2-t) - 2eps), and likewise L >= alpha(m).
    4. A common subsequence is a common sub-multiset: with each token occurrence made an element (token, k-th
       occurrence), the two element sets share at least L >= alpha elements.
    5. Prefix filtering (set-similarity joins): sort every element set by one fixed total order. If two sets share
       >= alpha elements, their smallest shared element w has >= alpha - 1 shared elements after it in each set, so w
       lies within the first |X| - alpha + 1 elements of each. Each pooled text is indexed under its first
       m - alpha(m) + 1 elements and a query probes its first n - alpha(n) + 1; since alpha(n), alpha(m) <= L <= alpha,
       those prefixes contain w, so every pooled text with F > t is found as a candidate. Candidates are then scored
       exactly (rapidfuzz's LCS on token ids, rouge_score's F formula).
    The order is "rarest element first" (short posting lists), frozen from the element counts when the pool size
    reaches a power of two; at each such point every pooled text is re-indexed, so index and queries always share
    one order (amortised: each text is re-indexed about twice).
    """

    def __init__(self, threshold: float = 0.7) -> None:
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        self.threshold = threshold
        self._vocab: dict[str, int] = {}
        self._items: list[list[int]] = []  # token ids of each pooled text, by id
        self._counts: Counter[tuple[int, int]] = Counter()  # pooled texts holding each (token, occurrence) element
        self._order: dict[tuple[int, int], int] = {}  # the counts frozen at the last re-index
        self._postings: defaultdict[tuple[int, int], list[int]] = defaultdict(list)
        self._reindex_at = 1

    def __len__(self) -> int:
        return len(self._items)

    def add(self, text: Text) -> int:
        """Pool `text` (whether or not it is a duplicate: the caller decides) and return its id (0, 1, ...)."""
        ids = [self._vocab.setdefault(t, len(self._vocab)) for t in _tokens(text)]
        item = len(self._items)
        self._items.append(ids)
        self._counts.update(self._elements(ids))
        if len(self._items) >= self._reindex_at:
            self._reindex()
            self._reindex_at *= 2
        else:
            for element in self._prefix(ids):
                self._postings[element].append(item)
        return item

    def most_similar(self, text: Text) -> tuple[float, int | None]:
        """(score, id) of the pooled text with the highest ROUGE-L F above the threshold (lowest id on ties), or
        (0.0, None) when none is above it: scores at or below the threshold are never searched for."""
        # tokens the pool has never seen get distinct negative ids: they can match nothing
        ids = [self._vocab.get(t, -1 - k) for k, t in enumerate(_tokens(text))]
        n = len(ids)
        candidates: set[int] = set()
        for element in self._prefix(ids):
            candidates.update(self._postings.get(element, ()))
        best, best_item = 0.0, None
        for item in sorted(candidates):
            other = self._items[item]
            m = len(other)
            need = max(1, math.ceil(self.threshold * (m + n) / 2 - _EPS))
            if need > min(m, n):
                continue
            score = _f_measure(LCSseq.similarity(ids, other, score_cutoff=need), n, m)
            if score > self.threshold and score > best:
                best, best_item = score, item
        return best, best_item

    def is_duplicate(self, text: Text) -> bool:
        """True when some pooled text has ROUGE-L F > threshold with `text`."""
        return self.most_similar(text)[1] is not None

    def _elements(self, ids: list[int]) -> list[tuple[int, int]]:
        """Each token occurrence as (token id, k-th occurrence), sorted rarest first by the frozen counts."""
        seen: Counter[int] = Counter()
        elements = []
        for i in ids:
            elements.append((i, seen[i]))
            seen[i] += 1
        order = self._order
        elements.sort(key=lambda e: (order.get(e, 0), e))
        return elements

    def _prefix(self, ids: list[int]) -> list[tuple[int, int]]:
        """The first n - alpha(n) + 1 elements (step 5 of the class docstring); empty for an empty text."""
        t, n = self.threshold, len(ids)
        alpha = max(1, math.ceil(t * n / (2 - t) - 2 * _EPS))
        return self._elements(ids)[: max(0, n - alpha + 1)]

    def _reindex(self) -> None:
        self._order = dict(self._counts)
        self._postings = defaultdict(list)
        for item, ids in enumerate(self._items):
            for element in self._prefix(ids):
                self._postings[element].append(item)

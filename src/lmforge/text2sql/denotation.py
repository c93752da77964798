"""Are two query results the same answer? Test-suite semantics, decided exactly.

Both empty: equal. Otherwise the row and column counts must agree and some permutation of the predicted
columns must make the rows equal: as bags (multisets) of rows, or as sequences when order matters. The
test-suite evaluation prunes the permutations by sampling 20 rows; we prune by requiring each mapped column
pair to hold the same multiset of values (a necessary condition), then check candidates exactly, so the
verdict never depends on a random draw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

Row = tuple[Any, ...]


def _unordered(row: Row) -> Row:
    return tuple(sorted(row, key=lambda v: (type(v).__name__, str(v))))


def _permutations(gold: Sequence[Row], pred: Sequence[Row]) -> Iterator[tuple[int, ...]]:
    """Column maps gold column i -> predicted column perm[i] whose value multisets agree."""
    n = len(gold[0])
    gold_cols = [Counter(row[i] for row in gold) for i in range(n)]
    pred_cols = [Counter(row[j] for row in pred) for j in range(n)]
    options = [[j for j in range(n) if pred_cols[j] == gold_cols[i]] for i in range(n)]

    def extend(prefix: list[int]) -> Iterator[tuple[int, ...]]:
        if len(prefix) == n:
            yield tuple(prefix)
            return
        for j in options[len(prefix)]:
            if j not in prefix:
                yield from extend([*prefix, j])

    return extend([])


def same_denotation(gold: Sequence[Row], pred: Sequence[Row], order_matters: bool) -> bool:
    if not gold and not pred:
        return True
    if len(gold) != len(pred) or len(gold[0]) != len(pred[0]):
        return False
    quick_g, quick_p = [_unordered(r) for r in gold], [_unordered(r) for r in pred]
    if (quick_g != quick_p) if order_matters else (Counter(quick_g) != Counter(quick_p)):
        return False
    gold_rows = [tuple(r) for r in gold]
    for perm in _permutations(gold, pred):
        permuted = [tuple(row[j] for j in perm) for row in pred]
        if permuted == gold_rows if order_matters else Counter(permuted) == Counter(gold_rows):
            return True
    return False

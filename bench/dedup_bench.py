#!/usr/bin/env python
"""Scale and exactness of the Self-Instruct near-duplicate filter (`lmforge.generate.dedup.NearDuplicateIndex`).

  python bench/dedup_bench.py [--data /work/shared/data] [--total 50000] [--sample 2000] [--threshold 0.7]

Stream: the instructions of alpaca_en_demo (999), alpaca_zh_demo (1000) and the Self-Instruct seeds (175), plus
perturbed copies up to --total, shuffled (seed 0). A copy edits its base lightly (1-2 word/character drops, swaps,
insertions: mostly near-duplicates), moderately (30 % of units replaced) or heavily (60 % replaced, or two bases
spliced: mostly new instructions), so the accepted pool grows into the tens of thousands as in a long run. Units
are words for English and characters for Chinese; replacements come from the alpaca outputs.

1. Filters the whole stream incrementally (each instruction checked against every accepted one, accepted ones join
   the pool) and prints wall and CPU seconds, accepted/rejected counts and `foreign_cpu_frac` (share of the machine
   used by other processes meanwhile).
2. Agreement: a --sample-instruction stream made the same way from 150 bases (dense in near-duplicates) is filtered
   by the index and by exact all-pairs ROUGE-L computed with rouge_score's own LCS scorer (`_score_lcs`) on the same
   tokens; prints how many accept/reject decisions (and best scores of rejects) agree.
Prints one `DEDUP_RESULT {json}` line per part.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

from cpu_load import machine_busy_s, own_cpu_s

from lmforge.generate.dedup import NearDuplicateIndex, tokenize_for_rouge

_HAN = re.compile(r"[\u4e00-\u9fff]")


def read_texts(data: Path) -> tuple[list[str], list[str], list[str]]:
    """(base instructions, English vocabulary, Chinese vocabulary)."""
    en = json.loads((data / "llamafactory" / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    zh = json.loads((data / "llamafactory" / "alpaca_zh_demo.json").read_text(encoding="utf-8"))
    seeds = [json.loads(line) for line in (data / "self_instruct" / "seed_tasks.jsonl").open(encoding="utf-8")]
    bases = [r["instruction"] for r in en + zh] + [s["instruction"] for s in seeds]
    en_vocab = sorted({w for r in en for w in r["output"].split()})
    zh_vocab = sorted({c for r in zh for c in r["output"] if _HAN.match(c)})
    return [b for b in bases if b.strip()], en_vocab, zh_vocab


def perturb(text: str, rng: random.Random, others: list[str], en_vocab: list[str], zh_vocab: list[str]) -> str:
    chinese = bool(_HAN.search(text))
    units = list(text) if chinese else text.split()
    vocab = zh_vocab if chinese else en_vocab
    mode = rng.random()
    if mode < 0.45:  # light: near-duplicate
        for _ in range(rng.randint(1, 2)):
            op, k = rng.randrange(4), rng.randrange(len(units))
            if op == 0 and len(units) > 1:
                del units[k]
            elif op == 1:
                units.insert(k, rng.choice(vocab))
            elif op == 2:
                j = rng.randrange(len(units))
                units[k], units[j] = units[j], units[k]
            else:
                units[k] = rng.choice(vocab)
    elif mode < 0.85:  # moderate or heavy replacement
        share = 0.3 if mode < 0.65 else 0.6
        units = [rng.choice(vocab) if rng.random() < share else u for u in units]
    else:  # splice with another base of the same script
        other = rng.choice(others)
        other_units = list(other) if chinese else other.split()
        units = units[: len(units) // 2] + other_units[len(other_units) // 2 :]
    return ("" if chinese else " ").join(units)


def make_stream(
    bases: list[str], total: int, rng: random.Random, en_vocab: list[str], zh_vocab: list[str]
) -> list[str]:
    zh_bases = [b for b in bases if _HAN.search(b)]
    en_bases = [b for b in bases if not _HAN.search(b)]
    stream = list(bases)
    while len(stream) < total:
        base = rng.choice(bases)
        stream.append(perturb(base, rng, zh_bases if _HAN.search(base) else en_bases, en_vocab, zh_vocab))
    rng.shuffle(stream)
    return stream[:total]


def filter_with_index(tokens: list[list[str]], threshold: float) -> tuple[list[bool], list[float]]:
    index = NearDuplicateIndex(threshold)
    keep, scores = [], []
    for t in tokens:
        score, _ = index.most_similar(t)
        keep.append(score == 0.0)  # most_similar reports only scores above the threshold
        scores.append(score)
        if score == 0.0:
            index.add(t)
    return keep, scores


def filter_all_pairs(tokens: list[list[str]], threshold: float) -> tuple[list[bool], list[float]]:
    """The reference: rouge_score's LCS F against every accepted instruction; reject when the max is > threshold."""
    from rouge_score.rouge_scorer import _score_lcs

    pool: list[list[str]] = []
    keep, scores = [], []
    for t in tokens:
        best = max((_score_lcs(t, p).fmeasure for p in pool), default=0.0)
        keep.append(best <= threshold)
        scores.append(best if best > threshold else 0.0)
        if best <= threshold:
            pool.append(t)
    return keep, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--total", type=int, default=50_000)
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument("--threshold", type=float, default=0.7)
    args = parser.parse_args()
    bases, en_vocab, zh_vocab = read_texts(args.data)
    rng = random.Random(0)
    stream = make_stream(bases, args.total, rng, en_vocab, zh_vocab)
    tokenize_for_rouge("预热")  # jieba loads its dictionary on first use (~1-2 s): not part of filtering

    busy0, own0, wall0 = machine_busy_s(), own_cpu_s(), time.perf_counter()
    keep, _ = filter_with_index([tokenize_for_rouge(text) for text in stream], args.threshold)
    wall, own, busy = time.perf_counter() - wall0, own_cpu_s() - own0, machine_busy_s() - busy0
    scale = {
        "part": "scale",
        "instructions": len(stream),
        "accepted": sum(keep),
        "rejected": len(keep) - sum(keep),
        "wall_s": round(wall, 2),
        "cpu_s": round(own, 2),
        "foreign_cpu_frac": round(max(0.0, busy - own) / (2 * wall), 3),
    }
    print("DEDUP_RESULT", json.dumps(scale), flush=True)

    sample = make_stream(rng.sample(bases, 150), args.sample, rng, en_vocab, zh_vocab)
    tokens = [tokenize_for_rouge(text) for text in sample]
    t0 = time.perf_counter()
    fast_keep, fast_scores = filter_with_index(tokens, args.threshold)
    t1 = time.perf_counter()
    exact_keep, exact_scores = filter_all_pairs(tokens, args.threshold)
    t2 = time.perf_counter()
    agreement = {
        "part": "agreement",
        "instructions": len(sample),
        "rejected_exact": len(exact_keep) - sum(exact_keep),
        "decisions_equal": sum(a == b for a, b in zip(fast_keep, exact_keep, strict=True)),
        "best_scores_equal": sum(a == b for a, b in zip(fast_scores, exact_scores, strict=True)),
        "index_s": round(t1 - t0, 2),
        "all_pairs_s": round(t2 - t1, 2),
    }
    print("DEDUP_RESULT", json.dumps(agreement), flush=True)


if __name__ == "__main__":
    main()

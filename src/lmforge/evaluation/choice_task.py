"""The `choice` task: read a benchmark's subjects, build k-shot prompts that fit, score letters, aggregate.

A k-shot prompt longer than the limit (choice.max_length, else the model's max_position_embeddings) drops its
earliest solved examples until it fits; a question too long even 0-shot is skipped. Both are counted in the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.evaluation import choice
from lmforge.evaluation.benchmarks import LAYOUTS, BadRows, Question, read_categories, read_questions
from lmforge.evaluation.eval_config import EvalConfig
from lmforge.evaluation.results import progress_bar
from lmforge.inference.engine import ChatEngine
from lmforge.utils.errors import ConfigError, DataError, did_you_mean
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)


@dataclass
class ChoiceStats:
    bad: BadRows = field(default_factory=BadRows)
    fewer_shots: int = 0  # questions whose prompt dropped solved examples to fit the length limit
    too_long: int = 0  # questions skipped: too long even without examples
    letters: dict[tuple[str, ...], choice.LetterIds] = field(default_factory=dict)


def select_subjects(found: list[str], wanted: list[str]) -> list[str]:
    for name in wanted:
        if name not in found:
            hint = did_you_mean(name, found)
            raise ConfigError(f"choice.subjects: no subject {name!r}{hint}; found: {', '.join(found)}")
    return list(wanted) or found


def length_limit(cfg: EvalConfig, engine: ChatEngine) -> int | None:
    if cfg.choice.max_length:
        return cfg.choice.max_length
    return getattr(getattr(engine.model, "config", None), "max_position_embeddings", None)


def fit_prompt(
    engine: ChatEngine,
    question: Question,
    shots: list[Question],
    subject: str,
    cfg: EvalConfig,
    reserve: int,
    stats: ChoiceStats,
) -> list[int] | None:
    """The prompt with as many of the shots (latest kept) as fit the limit, or None when none fits."""
    limit = length_limit(cfg, engine)
    for k in range(len(shots), -1, -1):
        messages = choice.build_messages(question, shots[len(shots) - k :], subject, cfg.choice.layout)
        ids = engine.template.encode_prompt(engine.tokenizer, messages)
        if limit is None or len(ids) + reserve <= limit:
            stats.fewer_shots += k < len(shots)
            return ids
    stats.too_long += 1
    return None


def read_subject(cfg: EvalConfig, subject: str, stats: ChoiceStats) -> tuple[list[Question], list[Question]]:
    """A subject's questions of the scored split, and its first n_shot dev questions."""
    c = cfg.choice
    layout, root = LAYOUTS[c.layout], Path(c.benchmark_dir)
    questions = read_questions(layout, layout.file(root, subject, c.split), c.on_bad_row, stats.bad)
    shots = read_questions(layout, layout.file(root, subject, "dev"), c.on_bad_row, stats.bad) if c.n_shot else []
    if len(shots) < c.n_shot:
        dev = layout.file(root, subject, "dev")
        raise DataError(f"{dev}: {len(shots)} usable rows for choice.n_shot={c.n_shot}; lower choice.n_shot")
    return questions, shots[: c.n_shot]


def score_subject(cfg: EvalConfig, engine: ChatEngine, subject: str, stats: ChoiceStats) -> list[bool]:
    """One hit/miss per scored question; questions are grouped by their option letters (one id set each)."""
    questions, shots = read_subject(cfg, subject, stats)
    hits: list[bool] = []
    for letters in sorted({tuple(q.options) for q in questions}):
        if letters not in stats.letters:
            stats.letters[letters] = choice.letter_token_ids(engine.template, engine.tokenizer, list(letters))
        ids = stats.letters[letters]
        group = [q for q in questions if tuple(q.options) == letters]
        prompts = [fit_prompt(engine, q, shots, subject, cfg, len(ids.reply_prefix), stats) for q in group]
        kept = [(q, p) for q, p in zip(group, prompts, strict=True) if p is not None]
        if kept:
            preds = choice.predict_letters(engine.model, [p for _, p in kept], ids, engine.pad_id, cfg.batch_size)
            hits += [pred == q.answer for (q, _), pred in zip(kept, preds, strict=True)]
    return hits


def run_choice(cfg: EvalConfig, engine: ChatEngine) -> dict[str, Any]:
    c = cfg.choice
    subjects = select_subjects(LAYOUTS[c.layout].subjects(Path(c.benchmark_dir), c.split), c.subjects)
    stats = ChoiceStats()
    hits: dict[str, list[bool]] = {}
    with progress_bar(len(subjects), f"choice {c.layout} ({c.split}, {c.n_shot}-shot)") as bar:
        for subject in subjects:
            hits[subject] = score_subject(cfg, engine, subject, stats)
            bar.update(1)
    return choice_results(cfg, hits, stats)


def choice_results(cfg: EvalConfig, hits: dict[str, list[bool]], stats: ChoiceStats) -> dict[str, Any]:
    all_hits = [h for subject_hits in hits.values() for h in subject_hits]
    if not all_hits:
        raise DataError(
            f"{cfg.choice.benchmark_dir}: no questions to score ({len(stats.bad.rows)} malformed rows skipped, "
            f"{stats.too_long} too long for the length limit)"
        )
    result: dict[str, Any] = {"metrics": choice.accuracy({"overall": all_hits})["overall"]}
    result["subjects"] = choice.accuracy({s: h for s, h in hits.items() if h})
    if cfg.choice.categories:
        mapping = read_categories(cfg.choice.categories, list(hits))
        groups: dict[str, list[bool]] = {}
        for subject, subject_hits in hits.items():
            groups.setdefault(mapping[subject], []).extend(subject_hits)
        result["categories"] = choice.accuracy({g: h for g, h in groups.items() if h})
    result["skipped_rows"] = len(stats.bad.rows)
    result["skipped_too_long"] = stats.too_long
    result["fewer_shots"] = stats.fewer_shots
    if stats.bad.rows:
        result["bad_rows"] = stats.bad.rows
        logger.warning("skipped %d malformed benchmark rows (listed in eval_results.json)", len(stats.bad.rows))
    if stats.too_long or stats.fewer_shots:
        logger.warning(
            "%d prompts dropped solved examples to fit the length limit; %d questions skipped as too long",
            stats.fewer_shots,
            stats.too_long,
        )
    return result

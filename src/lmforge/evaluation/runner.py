"""run_evaluation(cfg): load the model once, run the configured task, write eval_results.json.

Tasks use the middle layers only (data readers and encoders, templates, models via the inference engine), never
the training stages.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lmforge.evaluation import choice, generation, perplexity
from lmforge.evaluation.benchmarks import LAYOUTS, BadRows, read_categories, read_questions
from lmforge.evaluation.config import EvalConfig, training_data_config
from lmforge.evaluation.data import read_sources
from lmforge.evaluation.results import write_results
from lmforge.inference.engine import ChatEngine, GenerationOptions, load_engine
from lmforge.utils.errors import ConfigError, DataError, did_you_mean
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)


def progress_bar(total: int, desc: str) -> Any:
    """A tqdm bar on terminals; silent when stderr is not a tty (logs, tests)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", disable=None)


def run_perplexity(cfg: EvalConfig, engine: ChatEngine) -> dict[str, Any]:
    data = training_data_config(cfg)
    per_dataset: dict[str, Any] = {}
    all_losses: list[tuple[float, int]] = []
    for source in read_sources(data, cfg.data.stage):
        rows = perplexity.encode_rows(source, cfg.data.stage, engine.tokenizer, engine.template, data)
        with progress_bar(len(rows), f"perplexity {source.spec.name}") as bar:
            losses = perplexity.row_losses(engine.model, rows, cfg.batch_size, engine.pad_id, bar)
        per_dataset[source.spec.name] = {**perplexity.summarize(losses), **source.summary()}
        all_losses += losses
    return {"metrics": perplexity.summarize(all_losses), "datasets": per_dataset}


def run_generate(cfg: EvalConfig, engine: ChatEngine) -> dict[str, Any]:
    g = cfg.generate
    options = GenerationOptions(g.max_new_tokens, g.temperature, g.top_p, g.top_k, g.repetition_penalty, g.seed)
    examples: list[generation.Example] = []
    per_dataset: dict[str, Any] = {}
    replies: list[str] = []
    for source in read_sources(training_data_config(cfg), "sft"):
        found = generation.build_examples(source, engine, cfg.data.cutoff_len)
        with progress_bar(len(found), f"generate {source.spec.name}") as bar:
            answers = generation.predict(engine, found, options, cfg.batch_size, bar)
        per_dataset[source.spec.name] = {**generation.score(found, answers), **source.summary()}
        examples += found
        replies += answers
    path = Path(cfg.output_dir) / "predictions.jsonl"
    generation.write_predictions(path, engine, examples, replies)
    return {"metrics": generation.score(examples, replies), "datasets": per_dataset, "predictions": str(path)}


def select_subjects(found: list[str], wanted: list[str]) -> list[str]:
    for name in wanted:
        if name not in found:
            hint = did_you_mean(name, found)
            raise ConfigError(f"choice.subjects: no subject {name!r}{hint}; found: {', '.join(found)}")
    return list(wanted) or found


def subject_prompts(cfg: EvalConfig, engine: ChatEngine, subject: str, bad: BadRows) -> tuple[list, list[list[int]]]:
    """A subject's questions and their k-shot prompt ids."""
    c = cfg.choice
    layout, root = LAYOUTS[c.layout], Path(c.benchmark_dir)
    questions = read_questions(layout, layout.file(root, subject, c.split), c.on_bad_row, bad)
    shots = read_questions(layout, layout.file(root, subject, "dev"), c.on_bad_row, bad) if c.n_shot else []
    if len(shots) < c.n_shot:
        raise DataError(
            f"{layout.file(root, subject, 'dev')}: {len(shots)} usable rows for choice.n_shot={c.n_shot}; lower n_shot"
        )
    messages = [choice.build_messages(q, shots[: c.n_shot], subject, c.layout) for q in questions]
    return questions, [engine.template.encode_prompt(engine.tokenizer, m) for m in messages]


def run_choice(cfg: EvalConfig, engine: ChatEngine) -> dict[str, Any]:
    c = cfg.choice
    subjects = select_subjects(LAYOUTS[c.layout].subjects(Path(c.benchmark_dir), c.split), c.subjects)
    bad = BadRows()
    hits: dict[str, list[bool]] = {}
    letter_cache: dict[tuple[str, ...], choice.LetterIds] = {}
    with progress_bar(len(subjects), f"choice {c.layout} ({c.split}, {c.n_shot}-shot)") as bar:
        for subject in subjects:
            questions, prompts = subject_prompts(cfg, engine, subject, bad)
            hits[subject] = []
            for letters in sorted({tuple(q.options) for q in questions}):
                if letters not in letter_cache:
                    letter_cache[letters] = choice.letter_token_ids(engine.template, engine.tokenizer, list(letters))
                group = [i for i, q in enumerate(questions) if tuple(q.options) == letters]
                preds = choice.predict_letters(
                    engine.model, [prompts[i] for i in group], letter_cache[letters], engine.pad_id, cfg.batch_size
                )
                hits[subject] += [p == questions[i].answer for i, p in zip(group, preds, strict=True)]
            bar.update(1)
    return choice_results(cfg, hits, bad)


def choice_results(cfg: EvalConfig, hits: dict[str, list[bool]], bad: BadRows) -> dict[str, Any]:
    all_hits = [h for subject_hits in hits.values() for h in subject_hits]
    if not all_hits:
        raise DataError(f"{cfg.choice.benchmark_dir}: no questions to score ({len(bad.rows)} malformed rows skipped)")
    result: dict[str, Any] = {"metrics": choice.accuracy({"overall": all_hits})["overall"]}
    result["subjects"] = choice.accuracy(hits)
    if cfg.choice.categories:
        mapping = read_categories(cfg.choice.categories, list(hits))
        groups: dict[str, list[bool]] = {}
        for subject, subject_hits in hits.items():
            groups.setdefault(mapping[subject], []).extend(subject_hits)
        result["categories"] = choice.accuracy(groups)
    result["skipped_rows"] = len(bad.rows)
    if bad.rows:
        result["bad_rows"] = bad.rows
        logger.warning("skipped %d malformed benchmark rows (listed in eval_results.json)", len(bad.rows))
    return result


TASKS = {"perplexity": run_perplexity, "generate": run_generate, "choice": run_choice}


def run_evaluation(cfg: EvalConfig, engine: ChatEngine | None = None) -> dict[str, Any]:
    """Run `cfg.task`, write output_dir/eval_results.json, and return the results."""
    if engine is None:
        m = cfg.model
        engine = load_engine(m.name_or_path, m.adapter, m.template, m.dtype, m.allow_unsafe_pickle)
    results = {
        "task": cfg.task,
        "model": cfg.model.name_or_path,
        "adapter": cfg.model.adapter,
        "template": engine.template.name,
        **TASKS[cfg.task](cfg, engine),
        "config": dataclasses.asdict(cfg),
    }
    write_results(cfg.results_path, results)
    return results

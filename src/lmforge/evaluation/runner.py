"""run_evaluation(cfg): load the model once, run the configured task, write eval_results.json.

Tasks use the middle layers only (data readers and encoders, templates, models via the inference engine), never
the training stages.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lmforge.evaluation import generation, perplexity
from lmforge.evaluation.choice_task import run_choice
from lmforge.evaluation.data import read_sources
from lmforge.evaluation.eval_config import EvalConfig, training_data_config
from lmforge.evaluation.results import progress_bar, write_results
from lmforge.inference.engine import ChatEngine, load_engine
from lmforge.templates import check_template_matches_tokenizer
from lmforge.utils.logging import get_logger
from lmforge.utils.paths import ensure_writable_dir

logger = get_logger(__name__)


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
    examples: list[generation.Example] = []
    per_dataset: dict[str, Any] = {}
    replies: list[str] = []
    for source in read_sources(training_data_config(cfg), "sft"):
        found = generation.build_examples(source, engine, cfg.data.cutoff_len)
        with progress_bar(len(found), f"generate {source.spec.name}") as bar:
            answers = generation.predict(engine, found, cfg.generate, cfg.batch_size, bar)
        per_dataset[source.spec.name] = {**generation.score(found, answers), **source.summary()}
        examples += found
        replies += answers
    path = Path(cfg.output_dir) / "predictions.jsonl"
    generation.write_predictions(path, engine, examples, replies)
    return {"metrics": generation.score(examples, replies), "datasets": per_dataset, "predictions": str(path)}


TASKS = {"perplexity": run_perplexity, "generate": run_generate, "choice": run_choice}


def run_evaluation(cfg: EvalConfig, engine: ChatEngine | None = None) -> dict[str, Any]:
    """Run `cfg.task`, write output_dir/eval_results.json, and return the results."""
    ensure_writable_dir(cfg.output_dir, "output_dir")  # before evaluating, not after
    if engine is None:
        m = cfg.model
        engine = load_engine(
            m.name_or_path, m.adapter, m.template, m.dtype, m.allow_unsafe_pickle, m.trust_remote_code
        )
    mismatch = check_template_matches_tokenizer(engine.template, engine.tokenizer)
    if mismatch:  # scores under another template than training's mean little (QUALITY C3)
        logger.warning(mismatch)
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

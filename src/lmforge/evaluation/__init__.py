"""Evaluation: perplexity, generation metrics (BLEU-4 / ROUGE) and multiple-choice benchmarks (`lmforge eval`)."""

from lmforge.evaluation.eval_config import EvalConfig, load_eval_config

__all__ = ["EvalConfig", "load_eval_config"]

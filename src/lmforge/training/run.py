"""Run scaffolding every stage family shares: the stored chat template, the trainer's hooks (logs, the tuning
method's callbacks and optimizer), resume lookup, and train -> evaluate -> final save.

It sits below the stages and the alignment/rl packages, which all build on it (nothing here imports them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainingArguments

from lmforge.config.schema import RunConfig
from lmforge.templates import ChatTemplate
from lmforge.training.callbacks import JsonlLogCallback
from lmforge.training.checkpoints import find_resume_checkpoint
from lmforge.training.plotting import plot_losses
from lmforge.training.sealed_trainer import LmforgeTrainer
from lmforge.training.token_metrics import add_perplexity, argmax_logits, token_accuracy
from lmforge.utils.errors import CheckpointError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)


def store_chat_template(tokenizer: Any, template: ChatTemplate, template_name: str) -> None:
    """Save the training template in the tokenizer when it has none, so chat/serving render prompts identically;
    warn (QUALITY A8) when the tokenizer's own template renders conversations differently from the named one."""
    from lmforge.templates import check_template_matches_tokenizer

    if template_name == "auto":
        return
    if getattr(tokenizer, "chat_template", None):
        mismatch = check_template_matches_tokenizer(template, tokenizer)
        if mismatch:
            logger.warning(mismatch)
        return
    jinja = template.jinja()
    if jinja:
        tokenizer.chat_template = jinja
        logger.info("stored the %r chat template in the tokenizer", template_name)


def trainer_hooks(cfg: RunConfig, model: Any, args: TrainingArguments, policy: Any = None) -> dict[str, Any]:
    """Trainer keyword arguments every stage passes: the JSONL log and the tuning method's hooks (its method-table
    row names them: AdaLoRA's callback, LoRA+'s optimizer groups, PiSSA/OLoRA's conversion after the final save).

    policy: the prepared model inside `model` when the trainer trains a wrapper of it (PPO's value head)."""
    from lmforge.config.methods import method_spec
    from lmforge.methods.method_hooks import MethodHooks

    factory = method_spec(cfg.method.name).load("hooks")
    hooks = factory(cfg.method, model, args, model if policy is None else policy) if factory else MethodHooks()
    callbacks: list[TrainerCallback] = [JsonlLogCallback(cfg.output_dir), *hooks.callbacks]
    return {
        "args": args,
        "callbacks": callbacks,
        "optimizers": hooks.optimizers,
        "after_final_save": hooks.after_final_save,
    }


def build_trainer(
    cfg: RunConfig, args: TrainingArguments, model: Any, tokenizer: Any, data: Any, token_metrics: bool
) -> LmforgeTrainer:
    """A trainer over text or chat datasets with lmforge's collator, logs and (optionally) token accuracy."""
    from lmforge.data.collators import make_collator

    with_metrics = token_metrics and data.eval is not None
    return LmforgeTrainer(
        model=model,
        train_dataset=data.train,
        eval_dataset=data.eval,
        data_collator=make_collator(cfg.data, tokenizer),
        processing_class=tokenizer,
        compute_metrics=token_accuracy if with_metrics else None,
        preprocess_logits_for_metrics=argmax_logits if with_metrics else None,
        **trainer_hooks(cfg, model, args),
    )


def resume_checkpoint(cfg: RunConfig, resume: bool) -> str | None:
    if not resume:
        return None
    checkpoint = find_resume_checkpoint(cfg.output_dir)
    if checkpoint is None:
        raise CheckpointError(f"cannot resume: no complete checkpoint in {cfg.output_dir}")
    logger.info("resuming from %s", checkpoint)
    return checkpoint


def train_to_the_end(trainer: LmforgeTrainer, cfg: RunConfig, resume: bool) -> dict[str, float]:
    """Train (resuming if asked) and return the train metrics, logged and saved; a run stopped by a signal ends
    here with its checkpoint as the result (a "final" model of a cut-short run would mislead)."""
    result = trainer.train(resume_from_checkpoint=resume_checkpoint(cfg, resume))
    interrupted = trainer.graceful_stop.interruption(trainer.state.global_step, cfg.output_dir)
    if interrupted is not None:
        raise interrupted
    metrics = dict(result.metrics)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    return metrics


def wants_final_eval(trainer: LmforgeTrainer, cfg: RunConfig) -> bool:
    """An evaluation split exists and the user did not switch evaluation off (`train.eval_strategy: no`).

    TrainingArguments' own default is also "no", which only means no evaluation during training: a run with a
    validation split and no eval_strategy still gets its final evaluation."""
    return trainer.eval_dataset is not None and str(cfg.train.get("eval_strategy", "")).lower() != "no"


def final_evaluation(trainer: LmforgeTrainer) -> dict[str, float]:
    """Metrics of the final weights. If the Trainer already evaluated at the last step (eval_steps dividing
    max_steps, or eval_strategy epoch), those are the ones: evaluating again would only repeat its cost."""
    for entry in reversed(trainer.state.log_history):
        if entry.get("step") != trainer.state.global_step:
            break
        if "eval_loss" in entry:
            return {key: value for key, value in entry.items() if key != "step"}
    return trainer.evaluate()


def train_and_save(trainer: LmforgeTrainer, cfg: RunConfig, resume: bool) -> dict[str, float]:
    """Train (resuming if asked), evaluate (with perplexity when the loss is a likelihood), then write the final
    model, metrics, trainer state and loss plots."""
    metrics = train_to_the_end(trainer, cfg, resume)
    if wants_final_eval(trainer, cfg):  # before save_final_model turns the KV cache back on
        eval_metrics = final_evaluation(trainer)
        if trainer.loss_is_likelihood:
            eval_metrics = add_perplexity(eval_metrics)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    trainer.save_state()  # output_dir/trainer_state.json: num_input_tokens_seen, log_history with train_runtime
    save_final_model(trainer, cfg.output_dir)
    if trainer.is_world_process_zero():
        plot_losses(trainer.state.log_history, Path(cfg.output_dir))
    return metrics


def save_final_model(trainer: LmforgeTrainer, output_dir: str) -> None:
    """Adapter folder (PEFT) or full model folder, plus the tokenizer; re-enable the KV cache for inference."""
    trainer.drop_training_only_parts()
    model = trainer.model
    config = getattr(model, "config", None)
    if config is not None:
        config.use_cache = True
    trainer.save_model(output_dir)
    if trainer.is_world_process_zero() and trainer.after_final_save is not None:
        trainer.after_final_save(output_dir)  # the method's own finishing step (PiSSA/OLoRA: for the original base)
    logger.info("saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "model", output_dir)

"""run_training: the one entry point behind `lmforge train` (and the Python API).

Order matters: distributed state is set up first (by TrainingArguments) so that every rank checks the output
directory before the main process writes to it, and seeding happens before the model is built so adapter
initialisation is reproducible.
"""

from __future__ import annotations

from lmforge.config.schema import RunConfig
from lmforge.utils.errors import LmforgeError, environment_error
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)


def run_training(cfg: RunConfig, resume: bool = False, force_resume: bool = False) -> dict[str, float]:
    """Check and prepare train.output_dir, seed, run the configured stage; return its final metrics.

    resume: continue from the newest complete checkpoint in output_dir. force_resume: resume even when
    batch/data/model/method settings differ from the original run (a warning lists the changes).
    """
    from transformers import set_seed

    from lmforge.config.stages import stage_spec
    from lmforge.training.arguments import build_training_arguments
    from lmforge.training.run_dir import check_output_dir, prepare_output_dir

    stage_run = stage_spec(cfg.stage).load_run()
    args = build_training_arguments(cfg)  # the run's one TrainingArguments, handed to the stage
    check_output_dir(cfg, resume, args.world_size, force_resume=force_resume)
    args.distributed_state.wait_for_everyone()  # every rank has checked before the main process writes
    if args.should_save:
        prepare_output_dir(cfg, resume, args.world_size)
    args.distributed_state.wait_for_everyone()

    set_seed(args.seed)
    logger.info("stage %s, method %s, output %s%s", cfg.stage, cfg.method.name, cfg.output_dir, " (resume)" * resume)
    try:
        metrics = stage_run(cfg, args, resume)
    except (OSError, RuntimeError) as exc:
        message = environment_error(exc, cfg.output_dir)
        if message is None:
            raise
        raise LmforgeError(message) from exc
    logger.info("done: %s", ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics

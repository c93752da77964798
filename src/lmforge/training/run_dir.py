"""The run directory: refuse to clobber it, snapshot the resolved config, refuse incompatible resumes.

A resume continues the optimizer, scheduler and data order of the first run, so anything that changes what a step
means (batch shape, data, base model, adapter shape, optimisation hyper-parameters, world size) must be the same.
Those fields are compared against the snapshot saved when the run started, and a change is refused with a diff
unless `force` is set.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from lmforge.config.config_loading import config_to_dict
from lmforge.config.schema import RunConfig
from lmforge.data.report import BAD_ROWS_FILE
from lmforge.training.checkpoints import clean_staging_dirs, find_resume_checkpoint
from lmforge.utils.errors import CheckpointError
from lmforge.utils.logging import get_logger
from lmforge.utils.paths import ensure_writable_dir, entry_names, listing, overlaps

logger = get_logger(__name__)

SNAPSHOT = "lmforge_config.yaml"
RUN_INFO = "lmforge_run.json"
# What a run writes before training starts: a run that failed at start-up leaves only these, and they are cleared
# rather than blocking the corrected rerun as "not empty".
STARTUP_FILES = frozenset({SNAPSHOT, RUN_INFO, BAD_ROWS_FILE})
# Sections compared in full on resume, except for keys that cannot change the training trajectory.
_COMPARED_SECTIONS = ("model", "data", "method", "pref")
_FREE_KEYS = {
    "data.num_proc",
    "data.cache_dir",
    "data.overwrite_cache",
    "data.on_bad_row",
    "data.encoding",
    "data.max_line_bytes",
}
_COMPARED_TRAIN_KEYS = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
    "data_seed",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "warmup_ratio",
    "weight_decay",
    "optim",
    "max_grad_norm",
    "group_by_length",
    "dataloader_drop_last",
)


def resume_fingerprint(cfg: RunConfig, world_size: int) -> dict[str, Any]:
    """The flat {dotted key: value} view of everything a resume must keep unchanged."""
    raw = config_to_dict(cfg)
    flat: dict[str, Any] = {"stage": raw["stage"], "world_size": world_size}
    for section in _COMPARED_SECTIONS:
        for key, value in raw[section].items():
            if f"{section}.{key}" not in _FREE_KEYS:
                flat[f"{section}.{key}"] = value
    for key in _COMPARED_TRAIN_KEYS:
        flat[f"train.{key}"] = raw["train"].get(key)
    return flat


def diff_fingerprints(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [
        f"  {key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def check_resume_compatible(cfg: RunConfig, world_size: int, force: bool = False) -> None:
    """Compare with the fingerprint saved at the start of the run; refuse (or, forced, warn) on any change."""
    info_path = Path(cfg.output_dir) / RUN_INFO
    if not info_path.is_file():
        logger.warning("%s missing: cannot check that the resumed run matches the original one", info_path)
        return
    saved = json.loads(info_path.read_text(encoding="utf-8")).get("resume_fingerprint", {})
    changes = diff_fingerprints(saved, resume_fingerprint(cfg, world_size))
    if not changes:
        return
    message = (
        f"the config differs from the run being resumed in {cfg.output_dir} (saved in {info_path.name}):\n"
        + "\n".join(changes)
    )
    if force:
        logger.warning("%s\nresuming anyway (forced)", message)
        return
    raise CheckpointError(
        message + "\nThese change what a training step means, so the checkpoint's optimizer state and data position "
        "would not fit. Restore the original values, start a new run in another train.output_dir, or force the resume."
    )


def check_output_dir(cfg: RunConfig, resume: bool, world_size: int, force_resume: bool = False) -> None:
    """Checks every rank runs before anything is written (only an empty output_dir may be created)."""
    out = Path(cfg.output_dir)
    ensure_writable_dir(out, "train.output_dir")
    if resume:
        if find_resume_checkpoint(out, verify=False) is None:
            raise CheckpointError(
                f"cannot resume: no complete checkpoint in {out} (incomplete ones are skipped). "
                "Run without --resume to start from scratch."
            )
        check_resume_compatible(cfg, world_size, force=force_resume)
        return
    shown = listing(out) if out.is_dir() and not failed_at_startup(out) else ""
    if shown and not cfg.train.get("overwrite_output_dir"):
        raise CheckpointError(
            f"train.output_dir {out} is not empty ({shown}). To continue that run pass --resume; to start over in it "
            "set train.overwrite_output_dir=true (the previous run's outputs are deleted); or choose another "
            "train.output_dir."
        )
    if shown and not (out / RUN_INFO).is_file():
        raise CheckpointError(
            f"train.output_dir {out} is not empty ({shown}) and holds no previous lmforge run ({RUN_INFO}); "
            "overwrite_output_dir only clears lmforge run folders. Choose an empty or new train.output_dir."
        )
    if shown:
        check_inputs_survive_overwrite(cfg)


def failed_at_startup(out: Path) -> bool:
    """The folder holds nothing but what an earlier run wrote before it failed at start-up."""
    return entry_names(out) <= STARTUP_FILES


def input_paths(cfg: RunConfig) -> dict[str, str]:
    """Every config value naming something the run reads: {dotted key: path}."""
    named = {
        "model.name_or_path": cfg.model.name_or_path,
        "model.adapter_name_or_path": cfg.model.adapter_name_or_path,
        "model.tokenizer_name_or_path": cfg.model.tokenizer_name_or_path,
        "pref.reference_model": cfg.pref.reference_model,
        "rl.reward_model": cfg.rl.reward_model,
        "data.catalog": cfg.data.catalog,
        "data.dataset_dir": cfg.data.dataset_dir,
    }
    for key in ("datasets", "eval_datasets"):
        for i, entry in enumerate(getattr(cfg.data, key)):
            if isinstance(entry, dict) and entry.get("path"):
                named[f"data.{key}[{i}].path"] = str(entry["path"])
    return {key: value for key, value in named.items() if value}


def check_inputs_survive_overwrite(cfg: RunConfig) -> None:
    """overwrite_output_dir deletes the folder's contents first: refuse when the run would delete its own inputs
    (e.g. continuing training from runs/x into runs/x)."""
    hit = [f"{key}={path}" for key, path in input_paths(cfg).items() if overlaps(path, cfg.output_dir)]
    if hit:
        raise CheckpointError(
            f"train.overwrite_output_dir would delete {cfg.output_dir}, which holds this run's input "
            f"({', '.join(hit)}); nothing was deleted. Write the new run to another train.output_dir."
        )


def clear_previous_run(out: Path) -> None:
    """Delete everything a previous run left (checks ensured `out` is an lmforge run folder). Keeping any of it
    would be a trap: e.g. a stale adapter_config.json next to a new full model makes transformers load the old
    adapter instead of the new weights."""
    old = sorted(out.iterdir())
    if old:
        logger.warning("overwrite_output_dir: deleting the previous run in %s (%d entries)", out, len(old))
    for path in old:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def prepare_output_dir(cfg: RunConfig, resume: bool, world_size: int) -> None:
    """Main-process writes after the checks: clear leftovers, snapshot the config and the resume fingerprint."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean_staging_dirs(out)
    if not resume and failed_at_startup(out):
        for path in out.iterdir():
            logger.info("removing %s, left by a run that failed before training started", path)
            path.unlink()
    elif not resume and cfg.train.get("overwrite_output_dir"):
        clear_previous_run(out)
    (out / SNAPSHOT).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
    info = {"world_size": world_size, "resume_fingerprint": resume_fingerprint(cfg, world_size)}
    (out / RUN_INFO).write_text(json.dumps(info, indent=1, default=str), encoding="utf-8")

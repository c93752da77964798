"""The `lmforge eval` config: its own frozen dataclass tree, read like a training config (YAML + dotted overrides).

Evaluation is not a training stage, so it gets a separate schema rather than optional fields on RunConfig; the
data keys keep the training names (cutoff_len, truncation, mask_history, ...) because perplexity must encode
exactly as training did.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lmforge.config.config_loading import apply_overrides, build_dataclass, read_yaml
from lmforge.config.schema import DataConfig, _f
from lmforge.inference.sampling import GenerationOptions
from lmforge.utils.errors import ConfigError

TASKS = ("perplexity", "generate", "choice")
LAYOUTS = ("mmlu", "ceval", "cmmlu")


@dataclass(frozen=True)
class EvalModelConfig:
    name_or_path: str = _f("", "Model folder or hub id (a base model or an export); required.")
    adapter: str | None = _f(None, "PEFT adapter folder to apply (its tokenizer is used when it has one).")
    template: str = _f("auto", "Chat template name, or auto = the tokenizer's own; use the one training used.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = _f(
        "auto", "Weights dtype: auto = bf16 on GPUs that support it, else fp32."
    )
    allow_unsafe_pickle: bool = _f(False, "Load .bin/.pt weights you trust (weights_only=True); refused by default.")
    trust_remote_code: bool = _f(False, "Allow model/tokenizer code from the model folder to run. Off by default.")


@dataclass(frozen=True)
class EvalDataConfig:
    """Datasets for perplexity and generate, encoded exactly as the training stage named by `stage` encodes them."""

    datasets: list[Any] = _f([], "Catalogue names and/or inline {path:, format:, columns:} entries.")  # noqa: RUF009
    catalog: str | None = _f(None, "Dataset catalogue: our YAML, or a LLaMA-Factory dataset_info.json.")
    dataset_dir: str | None = _f(None, "Root for catalogue file names; defaults to the catalogue's folder.")
    stage: Literal["sft", "pt"] = _f("sft", "perplexity: sft = masked conversations (response tokens), pt = text.")
    cutoff_len: int = _f(1024, "Maximum tokens per example (pt: block size); generate: maximum prompt length.")
    truncation: Literal["drop", "truncate"] = _f("drop", "Over-long sft examples: drop (counted) or truncate.")
    mask_history: bool = _f(False, "sft: score only the last assistant turn.")
    train_on_prompt: bool = _f(False, "sft: also score system/user tokens.")
    max_samples: int | None = _f(None, "Use at most this many rows of each dataset.")
    on_bad_row: Literal["error", "skip"] = _f("error", "Malformed rows: stop with an error, or skip and count them.")
    encoding: str = _f("utf-8", "Text encoding of local data files.")


@dataclass(frozen=True)
class ChoiceConfig:
    benchmark_dir: str = _f("", "Benchmark folder holding the split folders (MMLU: the folder with data/ or dev/).")
    layout: Literal["mmlu", "ceval", "cmmlu"] = _f("mmlu", "File layout: mmlu | ceval | cmmlu.")
    split: str = _f("test", "Split to score (C-Eval's test split has no answers: use val).")
    n_shot: int = _f(5, "Solved examples from the dev split put before each question.")
    subjects: list[str] = _f([], "Subjects to evaluate (file-name stems); empty = all found.")  # noqa: RUF009
    categories: str | None = _f(None, "JSON file mapping subject -> category (or C-Eval's [en, zh, category]).")
    on_bad_row: Literal["error", "skip"] = _f("error", "Malformed rows: stop with an error, or skip and count them.")
    max_length: int | None = _f(
        None,
        "Longest prompt in tokens (default: the model's max_position_embeddings); longer k-shot prompts drop "
        "their earliest examples (counted), questions too long even 0-shot are skipped (counted).",
    )


@dataclass(frozen=True)
class EvalConfig:
    task: Literal["perplexity", "generate", "choice"] = _f("perplexity", "perplexity | generate | choice.")
    model: EvalModelConfig = field(default_factory=EvalModelConfig)
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    generate: GenerationOptions = field(default_factory=GenerationOptions)  # the one sampling type, its defaults
    choice: ChoiceConfig = field(default_factory=ChoiceConfig)
    batch_size: int = _f(8, "Examples per forward pass (results do not depend on it).")
    output_dir: str = _f("", "Folder for eval_results.json (and predictions.jsonl); required.")

    @property
    def results_path(self) -> Path:
        return Path(self.output_dir) / "eval_results.json"


def load_eval_config(path: str | Path | None, overrides: list[str] | None = None) -> EvalConfig:
    """A validated, frozen EvalConfig from a YAML file (optional) and `key=value` overrides."""
    raw = read_yaml(path) if path else {}
    cfg = build_dataclass(EvalConfig, apply_overrides(raw, overrides or []), where="")
    check_eval_config(cfg)
    return cfg


def check_eval_config(cfg: EvalConfig) -> None:
    """Cross-field rules, each naming the key to set."""
    if not cfg.model.name_or_path:
        raise ConfigError("model.name_or_path is required (or pass --model DIR)")
    if not cfg.output_dir:
        raise ConfigError("output_dir is required (where eval_results.json goes)")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.task in ("perplexity", "generate") and not cfg.data.datasets:
        raise ConfigError(f"task {cfg.task} needs data.datasets (catalogue names or inline {{path:, format:}})")
    if cfg.task == "generate" and cfg.data.stage != "sft":
        raise ConfigError("task generate needs conversations: data.stage must be sft")
    if cfg.data.cutoff_len < 2:
        raise ConfigError(f"data.cutoff_len must be >= 2, got {cfg.data.cutoff_len}")
    if cfg.task == "choice":
        if not cfg.choice.benchmark_dir:
            raise ConfigError("task choice needs choice.benchmark_dir (the folder with the split folders)")
        if cfg.choice.n_shot < 0:
            raise ConfigError(f"choice.n_shot must be >= 0, got {cfg.choice.n_shot}")
        if cfg.choice.n_shot and cfg.choice.split == "dev":
            raise ConfigError("choice.split dev is where the n_shot examples come from; score val/test, or n_shot=0")


def training_data_config(cfg: EvalConfig) -> DataConfig:
    """The training DataConfig equivalent of the eval data section, for the shared readers and encoders."""
    d = cfg.data
    return dataclasses.replace(
        DataConfig(),
        datasets=list(d.datasets),
        catalog=d.catalog,
        dataset_dir=d.dataset_dir,
        template=cfg.model.template,
        cutoff_len=d.cutoff_len,
        truncation=d.truncation,
        mask_history=d.mask_history,
        train_on_prompt=d.train_on_prompt,
        max_samples=d.max_samples,
        on_bad_row=d.on_bad_row,
        encoding=d.encoding,
    )

"""The configuration schema: one frozen dataclass per YAML section.

Every field's docstring-like `help` metadata is what `lmforge train --help` prints, so the schema is the
single source of documentation for config keys. Keys of the `train:` section are Hugging Face
`TrainingArguments` names, passed through unchanged (validated against that class at load time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lmforge.config.methods import METHOD_SPECS, methods_of_kind
from lmforge.config.stages import STAGE_SPECS, stages_help

STAGES = tuple(STAGE_SPECS)
METHODS = tuple(METHOD_SPECS)
#: methods that prepend virtual tokens (or per-layer prefixes) to each batch row: they need padded batches
PROMPT_METHODS = methods_of_kind("prompt")
DATA_FORMATS = ("alpaca", "sharegpt", "openai", "text", "prompt", "preference", "kto")
# `train:` keys lmforge reads itself; they are not TrainingArguments fields (transformers 5 dropped
# `overwrite_output_dir`; we keep its meaning: allow starting a fresh run in a non-empty output_dir).
LMFORGE_TRAIN_KEYS: dict[str, type] = {"overwrite_output_dir": bool}


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field carrying its help text (shown by `lmforge train --help`)."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass(frozen=True)
class ModelConfig:
    name_or_path: str = _f("", "Local HF causal-LM folder or hub id of the base model (required).")
    revision: str | None = _f(None, "Hub revision (branch, tag or commit) when loading from the hub.")
    trust_remote_code: bool = _f(False, "Allow model/tokenizer code from the model folder to run. Off by default.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = _f(
        "auto", "Weights dtype: auto = bf16 on GPUs that support it, else fp32."
    )
    attn_implementation: str = _f("sdpa", "Attention kernel: sdpa | eager | flash_attention_2.")
    gradient_checkpointing: bool = _f(
        False, "Recompute activations in backward to save memory (slower; turn on for long sequences/big models)."
    )
    adapter_name_or_path: str | None = _f(None, "Existing PEFT adapter folder to continue training from (lora).")
    new_special_tokens: list[str] = _f([], "Special tokens to add to the tokenizer; embeddings are resized.")
    resize_vocab_multiple: int = _f(64, "When resizing embeddings, round the vocabulary up to this multiple.")
    tokenizer_name_or_path: str | None = _f(
        None,
        "Tokenizer folder to use instead of the model's, e.g. one from `lmforge tokenizer extend`; the embeddings "
        "grow to cover it (new rows start at the mean row; train them with modules_to_save: [embed_tokens, lm_head]).",
    )


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: a catalogue name resolved to this, or given inline in `data.datasets`."""

    name: str = _f("", "Name used in logs and reports (catalogue key, or the file name when inline).")
    path: str = _f("", "File, folder or hub dataset id.")
    format: str = _f("alpaca", "alpaca | sharegpt | openai | text | preference (chosen/rejected pairs) | kto.")
    columns: dict[str, str] = _f({}, "Map our field names to the file's columns, e.g. {prompt: question}.")
    tags: dict[str, str] = _f({}, "sharegpt role tags, e.g. {role_tag: from, content_tag: value, user_tag: human}.")
    split: str = _f("train", "Split to read when the source has several.")
    subset: str | None = _f(None, "Hub dataset configuration name.")
    file_type: str | None = _f(None, "json | jsonl | csv | parquet | txt; guessed from the extension when unset.")
    max_samples: int | None = _f(None, "Use at most this many rows of this dataset.")


@dataclass(frozen=True)
class DataConfig:
    datasets: list[Any] = _f([], "Catalogue names and/or inline {path:, format:, columns:} entries (required).")
    eval_datasets: list[Any] = _f([], "Separate evaluation datasets (same forms as `datasets`).")
    catalog: str | None = _f(None, "Dataset catalogue: our YAML, or a LLaMA-Factory dataset_info.json.")
    dataset_dir: str | None = _f(None, "Root for catalogue file names; defaults to the catalogue's folder.")
    template: str = _f(
        "auto", "Chat template name (`lmforge templates` lists them), or auto = the tokenizer's own Jinja template."
    )
    template_options: dict[str, Any] = _f(
        {},
        "Chat template variables, e.g. {enable_thinking: false} (Qwen3) or {date_string: 26 Jul 2024} (Llama-3.1+).",
    )
    cutoff_len: int = _f(1024, "Maximum tokens per training example (pt: block size).")
    truncation: Literal["drop", "truncate"] = _f(
        "drop", "Over-long sft examples: drop them (counted), or truncate the response (prompt-only ones still drop)."
    )
    mask_history: bool = _f(False, "sft: train only the last assistant turn instead of every assistant turn.")
    train_on_prompt: bool = _f(False, "sft: also train on system/user tokens.")
    packing: bool = _f(False, "sft: pack several examples into cutoff_len rows, isolated (positions and attention).")
    padding_free: bool = _f(
        True, "Batch by concatenating examples with restarting position ids instead of padding (isolated; faster)."
    )
    val_size: float = _f(0.0, "Hold out this fraction (<1) or number (>=1) of examples for evaluation.")
    max_samples: int | None = _f(None, "Use at most this many rows of each dataset.")
    mix_strategy: Literal["concat", "interleave_under", "interleave_over"] = _f(
        "concat", "How several datasets are combined."
    )
    interleave_probs: list[float] | None = _f(None, "Sampling probabilities for interleave strategies.")
    streaming: bool = _f(False, "Stream large files instead of loading them into memory (needs train.max_steps).")
    num_proc: int | None = _f(None, "Processes for preprocessing (default: 1).")
    cache_dir: str | None = _f(None, "Preprocessing cache folder (default: ~/.cache/lmforge/data).")
    overwrite_cache: bool = _f(False, "Ignore and rebuild the preprocessing cache.")
    on_bad_row: Literal["error", "skip"] = _f("error", "Malformed rows: stop with an error, or skip and report them.")
    encoding: str = _f("utf-8", "Text encoding of local data files (utf-16 and utf-32 JSON Lines read too).")
    max_line_bytes: int = _f(
        64 * 2**20, "Longest JSON Lines line read (bytes); a longer one is an error instead of exhausting memory."
    )


@dataclass(frozen=True)
class MethodConfig:
    """Keys are prefixed by the method family they belong to; docs/methods.md lists which method reads which."""

    name: str = _f(
        "lora",
        f"Tuning method: {' | '.join(METHOD_SPECS)}.",
    )
    # freeze
    freeze_trainable_layers: int = _f(2, "freeze: train the last N layers (negative: the first N).")
    freeze_trainable_modules: list[str] = _f(["all"], "freeze: module names inside trainable layers, or all.")
    freeze_extra_modules: list[str] = _f([], "freeze: extra top-level modules to train, e.g. embed_tokens, lm_head.")
    freeze_trainable_patterns: list[str] = _f(
        [], "freeze: also train parameters whose full name matches one of these globs, e.g. '*.layers.0.mlp.*'."
    )
    # lora and qlora; lora_rank/alpha/dropout/target are also read by loha, lokr, adalora, vera (rank, target),
    # ia3 and oft (target)
    lora_rank: int = _f(8, "lora/qlora/loha/lokr/vera: rank r (adalora: the initial rank).")
    lora_alpha: float | None = _f(None, "lora/qlora/loha/lokr: scaling alpha (default 2 x rank).")
    lora_dropout: float = _f(0.0, "lora/qlora/loha/lokr/adalora/vera: dropout on the adapter input.")
    lora_target: Any = _f("all", "Adapter methods: all (every linear layer but the output head) or module names.")
    lora_bias: Literal["none", "all", "lora_only"] = _f("none", "lora/qlora: which biases train.")
    lora_use_dora: bool = _f(False, "lora/qlora: DoRA, weight-decomposed LoRA (magnitude vector + direction).")
    lora_use_rslora: bool = _f(False, "lora/qlora: rank-stabilised scaling alpha/sqrt(r) instead of alpha/r.")
    lora_init: Literal["default", "gaussian", "pissa", "olora", "loftq"] = _f(
        "default", "lora/qlora: adapter initialisation; pissa/olora/loftq start from the weights' principal parts."
    )
    loraplus_lr_ratio: float | None = _f(None, "lora/qlora: LoRA+, learning rate of B = ratio x that of A (e.g. 16).")
    modules_to_save: list[str] = _f([], "Adapter methods: extra modules trained fully and saved with the adapter.")
    # qlora: base weights quantised by bitsandbytes at load time
    quant_bits: Literal[4, 8] = _f(4, "qlora: quantise the frozen base weights to 4 or 8 bits.")
    quant_type: Literal["nf4", "fp4"] = _f("nf4", "qlora (4-bit): data type of the quantised weights.")
    quant_double: bool = _f(True, "qlora (4-bit): also quantise the quantisation constants (saves ~0.4 bit/weight).")
    quant_compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = _f(
        "auto", "qlora (4-bit): dtype of the matmuls (auto = model.dtype)."
    )
    # prompt_tuning, p_tuning, prefix_tuning
    prompt_virtual_tokens: int = _f(20, "prompt_tuning/p_tuning/prefix_tuning: number of virtual tokens.")
    prompt_init_text: str | None = _f(
        None, "prompt_tuning: initialise the virtual tokens from this text's embeddings (default: random)."
    )
    prompt_encoder: Literal["mlp", "lstm"] = _f("mlp", "p_tuning: reparametrisation of the virtual tokens.")
    prompt_encoder_hidden: int | None = _f(None, "p_tuning/prefix_tuning: hidden size of the encoder/projection.")
    prefix_projection: bool = _f(False, "prefix_tuning: reparametrise the prefixes with a two-layer MLP.")
    # adalora, oft
    adalora_target_rank: int = _f(4, "adalora: average rank left after the budget allocation.")
    oft_block_size: int = _f(16, "oft: size of the orthogonal blocks (must divide the targeted layers' widths).")
    # every method
    neftune_alpha: float | None = _f(
        None, "NEFTune: add uniform noise of size alpha/sqrt(L*d) to input embeddings in training (L = sample length)."
    )


@dataclass(frozen=True)
class PreferenceConfig:
    """Preference stages (rm, dpo, kto, orpo, simpo)."""

    beta: float = _f(
        0.1, "dpo/kto/simpo: inverse temperature of the implicit reward; orpo: lambda, weight of the odds-ratio term."
    )
    loss: Literal["sigmoid", "ipo", "hinge"] = _f(
        "sigmoid", "dpo: sigmoid (DPO, Rafailov et al.), ipo (squared, Azar et al.) or hinge (SLiC)."
    )
    label_smoothing: float = _f(
        0.0, "dpo (sigmoid)/simpo: probability that a pair's label is flipped (conservative DPO, cDPO); 0 = off."
    )
    sft_weight: float = _f(0.0, "dpo/simpo: add this x the chosen responses' token-mean NLL (SFT loss) to the loss.")
    simpo_gamma: float = _f(0.5, "simpo: target reward margin gamma subtracted from the length-normalised margin.")
    kto_desirable_weight: float = _f(1.0, "kto: weight of desirable (label true) examples' losses.")
    kto_undesirable_weight: float = _f(1.0, "kto: weight of undesirable (label false) examples' losses.")
    precompute_ref_log_probs: bool = _f(
        False,
        "dpo/kto: compute the reference log-probs once before training and store them with the dataset "
        "(no reference forward per step; full/freeze need no frozen model copy in memory).",
    )
    reference_model: str | None = _f(
        None,
        "dpo/kto with full/freeze: model folder of the reference (default: a frozen copy of the initial policy).",
    )


@dataclass(frozen=True)
class JudgeConfig:
    """An AI judge (RLAIF) reached through an OpenAI-compatible chat-completions endpoint."""

    base_url: str = _f("", "Endpoint root ending in /v1, e.g. http://127.0.0.1:8000/v1 (required).")
    model: str = _f("", "Model name sent in each request (required).")
    prompt: str = _f(
        "Rate the response to the prompt from 0 to 10. Reply with the number only.\n\n"
        "Prompt: {prompt}\n\nResponse: {response}\n\nScore:",
        "Judge instruction with {prompt} and {response} placeholders (and optionally {reference}).",
    )
    api_key_env: str | None = _f(None, "Environment variable holding the API key (sent as a Bearer token).")
    max_retries: int = _f(
        2,
        "Retries per sample after a failed request (429, 5xx, timeout, lost connection, malformed body) or an "
        "unparsable score; a wrong key (401/403), an unknown model (404) or a refused request (400) are not retried.",
    )
    backoff_s: float = _f(
        0.5, "First wait before retrying a failed request, doubled each retry (a Retry-After header wins; max 60 s)."
    )
    timeout_s: float = _f(30.0, "Timeout of one judge request in seconds.")
    score_regex: str = _f(r"-?\d+(?:\.\d+)?", "The first match (group 1 if any) in the reply is the score.")
    min_score: float = _f(0.0, "Lowest valid score; parsed scores outside [min_score, max_score] count as failures.")
    max_score: float = _f(10.0, "Highest valid score; rewards are rescaled to [0, 1].")
    max_tokens: int = _f(16, "max_tokens of each judge request.")
    temperature: float = _f(0.0, "Judge sampling temperature.")
    weight: float = _f(1.0, "Weight of the judge score among the reward sources.")
    concurrency: int = _f(4, "Judge requests in flight at once.")


@dataclass(frozen=True)
class RLConfig:
    """Online RL stages (ppo, grpo): rollouts, rewards and KL control."""

    reward_model: str | None = _f(None, "Folder of a reward model trained with stage rm (scores rollouts).")
    reward_model_weight: float = _f(1.0, "Weight of the reward model score among the reward sources.")
    reward_funcs: list[Any] = _f(
        [],
        "Python reward callables: 'module:function' or {func: 'module:function', weight: 1.0, <kwargs>}; "
        "builtins in lmforge.rl.builtin (exact_match, regex_match, length, ended_turn).",
    )
    judge: JudgeConfig | None = _f(None, "AI judge over an OpenAI-compatible endpoint (RLAIF); see rl.judge keys.")
    num_generations: int = _f(4, "Completions sampled per prompt (grpo: the group, at least 2).")
    max_new_tokens: int = _f(64, "Longest generated completion in tokens (generation also stops at end of turn).")
    temperature: float = _f(1.0, "Sampling temperature of rollouts (> 0).")
    top_p: float = _f(1.0, "Nucleus sampling of rollouts.")
    top_k: int = _f(0, "Top-k sampling of rollouts (0 = off).")
    beta: float = _f(0.04, "grpo: weight of the k3 KL estimate to the reference model in the loss (0 = no reference).")
    clip_range: float = _f(0.2, "Clipping epsilon of the policy ratio (both stages).")
    ppo_epochs: int = _f(1, "Optimisation passes over each rollout batch (1 = on-policy: one step per rollout).")
    scale_rewards: bool = _f(True, "grpo: divide group-centred rewards by the group std (Dr. GRPO sets false).")
    kl_coef: float = _f(0.05, "ppo: initial coefficient of the per-token KL penalty in the reward.")
    adaptive_kl: bool = _f(False, "ppo: adapt kl_coef towards target_kl (Ziegler et al. 2019 controller).")
    target_kl: float = _f(6.0, "ppo: target KL (nats per sequence) of the adaptive controller.")
    kl_horizon: int = _f(10000, "ppo: horizon of the adaptive KL controller, in rollout samples.")
    gamma: float = _f(1.0, "ppo: discount of GAE.")
    lam: float = _f(0.95, "ppo: lambda of GAE.")
    vf_coef: float = _f(0.1, "ppo: weight of the value loss.")
    cliprange_value: float = _f(0.2, "ppo: clipping of the value prediction around the rollout's values.")
    whiten_rewards: bool = _f(False, "ppo: whiten per-token rewards over the batch before GAE.")
    max_missing_rewards: float = _f(
        0.5,
        "Stop the run when more than this fraction of a rollout batch got no reward (e.g. every judge call fails); "
        "smaller shares are excluded with a warning naming the cause. 1 = never stop.",
    )
    missing_eos_penalty: float | None = _f(
        None, "Subtract this from the reward of completions that hit max_new_tokens without ending the turn."
    )


@dataclass(frozen=True)
class RunConfig:
    stage: str = _f(
        "sft",
        f"Training stage: {stages_help()}.",
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    pref: PreferenceConfig = field(default_factory=PreferenceConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    train: dict[str, Any] = _f({}, "transformers TrainingArguments, passed through (output_dir required).")

    @property
    def output_dir(self) -> str:
        return str(self.train.get("output_dir", ""))

"""The `lmforge generate` config: its own frozen dataclass tree, read like `lmforge eval`'s (YAML + dotted overrides).

One schema serves the three methods: `generator`, `sampling`, `output` and the budgets are shared, and each method
reads its own section (`self_instruct`, `self_qa`, `self_kg`); the subcommand names which one runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lmforge.config.config_loading import apply_overrides, build_dataclass, read_yaml
from lmforge.config.schema import _f
from lmforge.inference.sampling import GenerationOptions
from lmforge.utils.errors import ConfigError

METHODS = ("self-instruct", "self-qa", "self-kg")

#: the reference Self-Instruct blacklist (tasks a text model cannot do), whole words, case-insensitive
REFERENCE_BLACKLIST = ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps"]
REFERENCE_BLACKLIST += ["draw", "plot", "go to"]


@dataclass(frozen=True)
class GeneratorConfig:
    """The model that writes the data: an OpenAI-compatible endpoint (base_url set) or a local folder in-process."""

    base_url: str = _f("", "Endpoint root ending in /v1 (lmforge serve, vLLM, a hosted API); empty = in-process.")
    model: str = _f("", "Endpoint: the served model name. In-process: the model folder (required).")
    adapter: str | None = _f(None, "In-process: PEFT adapter folder to apply.")
    template: str = _f("auto", "In-process: chat template name, or auto = the tokenizer's own.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = _f("auto", "In-process: weights dtype.")
    api_key_env: str | None = _f(None, "Endpoint: environment variable holding the API key (Bearer token).")
    api_key_file: str | None = _f(None, "Endpoint: file whose first line is the API key.")
    concurrency: int = _f(8, "Requests in flight at once (endpoint); rows decoded together (in-process).")
    max_retries: int = _f(5, "Endpoint: retries of a request after 429, 5xx, a timeout or a lost connection.")
    backoff_s: float = _f(1.0, "Endpoint: first retry wait, doubled each retry (a Retry-After header wins).")
    timeout_s: float = _f(300.0, "Endpoint: seconds one request may take.")
    allow_unsafe_pickle: bool = _f(False, "In-process: load .bin/.pt weights you trust.")
    trust_remote_code: bool = _f(False, "In-process: allow model/tokenizer code from the model folder to run.")

    @property
    def in_process(self) -> bool:
        return not self.base_url


@dataclass(frozen=True)
class OutputConfig:
    dir: str = _f("", "Folder for the dataset, datasets.yaml, provenance, rejects, replies and report (required).")
    name: str = _f("", "Dataset name in datasets.yaml (default: the method, e.g. self_instruct).")
    format: Literal["alpaca", "sharegpt", "openai"] = _f("alpaca", "Record format of NAME.jsonl.")


@dataclass(frozen=True)
class SelfInstructConfig:
    seed_tasks: str = _f("", "Seed tasks: Self-Instruct seed_tasks.jsonl or an alpaca JSON/JSONL file (required).")
    num_instructions: int = _f(100, "Stop once this many new instructions were accepted.")
    max_rounds: int = _f(50, "Stop after this many rounds even if num_instructions is not reached.")
    prompts_per_round: int = _f(8, "Proposal prompts per round: also the window of proposals in flight at once.")
    num_prompt_instructions: int = _f(8, "In-context instructions per proposal prompt.")
    num_machine_instructions: int = _f(2, "Of those, how many come from generated ones (fewer while there are few).")
    min_words: int = _f(4, "Shortest instruction in words (CJK: segmented words).")
    max_words: int = _f(150, "Longest instruction in words.")
    blacklist: list[str] = _f(REFERENCE_BLACKLIST, "Whole words/phrases that reject an instruction (any case).")  # noqa: RUF009
    extra_blacklist: list[str] = _f([], "Added to blacklist (e.g. video, audio, music, diagram; 图片, 视频).")  # noqa: RUF009
    banned_prefixes: list[str] = _f(["write a program"], "Instructions starting with one of these are rejected.")  # noqa: RUF009
    rouge_threshold: float = _f(0.7, "Reject an instruction whose ROUGE-L F with any pool instruction exceeds this.")
    detect_classification: bool = _f(True, "Ask the model whether each task is classification (output-first).")
    max_instances: int = _f(5, "Most instances kept per task.")


@dataclass(frozen=True)
class SelfQAConfig:
    documents: str = _f("", "txt/md/jsonl file, CSV table or a folder of them (required).")
    tokenizer: str | None = _f(
        None, "Tokenizer folder for chunk lengths (default: the in-process model's; else words)."
    )
    chunk_tokens: int = _f(384, "Chunk length in tokens.")
    chunk_overlap: int = _f(32, "Tokens shared by consecutive chunks.")
    questions_per_chunk: int = _f(5, "Questions asked for per chunk.")
    chunks_per_wave: int = _f(16, "Chunks whose requests run concurrently.")
    max_chunks: int | None = _f(None, "Use at most this many chunks (in document order).")
    min_words: int = _f(3, "Shortest question in words.")
    max_words: int = _f(60, "Longest question in words.")
    max_answer_words: int = _f(400, "Longest answer in words.")
    rouge_threshold: float = _f(0.7, "Reject a question whose ROUGE-L F with an accepted one exceeds this.")
    leak_patterns: list[str] = _f(  # noqa: RUF009
        [
            r"\b(the|this|that|above|given|provided|following) (text|passage|article|document|excerpt|paragraph)s?\b",
            r"\baccording to the\b",
            r"\bthe author\b",
            r"(根据|按照)?(上文|上述|原文|文中|本文|文章|材料|段落)",
        ],
        "Regexes (case-insensitive) marking a question or answer that refers to its source instead of standing alone.",
    )


@dataclass(frozen=True)
class SelfKGConfig:
    triples: str = _f("", "head<TAB>relation<TAB>tail TSV, CSV or JSONL file, or a folder of them (required).")
    multi_hop: bool = _f(False, "Also ask two-hop questions (head -r1-> x -r2-> tail).")
    max_paths: int = _f(1000, "multi_hop: use at most this many two-hop paths (in triples order).")
    paraphrase: bool = _f(False, "Ask the model to reword each template question (answers stay the templates').")
    model_answers: bool = _f(
        False, "Let the model write the answer from the facts; kept only if the facts support it."
    )
    max_questions: int | None = _f(None, "Use at most this many template questions (in triples order).")
    questions_per_wave: int = _f(32, "Questions whose requests run concurrently.")


@dataclass(frozen=True)
class GenerateConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    sampling: GenerationOptions = _f(  # noqa: RUF009
        GenerationOptions(max_new_tokens=512, temperature=0.7, top_p=0.5),
        "Sampling of the creative requests (new instructions, questions, paraphrases).",
    )
    answer_sampling: GenerationOptions = _f(  # noqa: RUF009
        GenerationOptions(max_new_tokens=350),
        "Sampling of the other requests (classification, instances, answers); greedy by default.",
    )
    output: OutputConfig = field(default_factory=OutputConfig)
    self_instruct: SelfInstructConfig = field(default_factory=SelfInstructConfig)
    self_qa: SelfQAConfig = field(default_factory=SelfQAConfig)
    self_kg: SelfKGConfig = field(default_factory=SelfKGConfig)
    seed: int = _f(0, "Run seed: every request's sampling seed derives from it and the request's key.")
    max_requests: int | None = _f(None, "Budget: send at most this many requests (replayed ones count).")
    max_tokens: int | None = _f(
        None, "Budget: stop starting requests once this many tokens (prompt + reply) were used."
    )

    @property
    def dataset_file(self) -> Path:
        return Path(self.output.dir) / f"{self.output.name}.jsonl"


def load_generate_config(method: str, path: str | Path | None, overrides: list[str] | None = None) -> GenerateConfig:
    """A validated, frozen GenerateConfig for `method` from a YAML file and `key=value` overrides."""
    raw = apply_overrides(read_yaml(path) if path else {}, overrides or [])
    defaults = GenerateConfig()
    for key in ("sampling", "answer_sampling"):  # keys not given keep this schema's defaults, not the type's
        if isinstance(raw.get(key), dict):
            raw[key] = {**dataclasses.asdict(getattr(defaults, key)), **raw[key]}
    cfg = build_dataclass(GenerateConfig, raw, where="")
    if not cfg.output.name:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, name=method.replace("-", "_")))
    check_generate_config(method, cfg)
    return cfg


def check_generate_config(method: str, cfg: GenerateConfig) -> None:
    """Cross-field rules, each naming the key to set."""
    gen = cfg.generator
    if not cfg.output.dir:
        raise ConfigError("output.dir is required (the folder the dataset and its report go to)")
    if gen.base_url and not gen.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"generator.base_url: expected an http(s) URL ending in /v1, got {gen.base_url!r}")
    model_free = method == "self-kg" and not (cfg.self_kg.paraphrase or cfg.self_kg.model_answers)
    if not gen.model and not model_free:
        what = "the served model name" if gen.base_url else "a model folder (or set generator.base_url)"
        raise ConfigError(f"generator.model is required: {what}")
    if gen.api_key_env and gen.api_key_file:
        raise ConfigError("generator: set api_key_env or api_key_file, not both")
    if gen.concurrency < 1:
        raise ConfigError(f"generator.concurrency must be >= 1, got {gen.concurrency}")
    if gen.max_retries < 0:
        raise ConfigError(f"generator.max_retries must be >= 0, got {gen.max_retries}")
    inputs = {
        "self-instruct": ("self_instruct.seed_tasks", cfg.self_instruct.seed_tasks),
        "self-qa": ("self_qa.documents", cfg.self_qa.documents),
        "self-kg": ("self_kg.triples", cfg.self_kg.triples),
    }
    key, path = inputs[method]
    if not path:
        raise ConfigError(f"{key} is required for `lmforge generate {method}`")
    si, qa = cfg.self_instruct, cfg.self_qa
    if method == "self-instruct" and not 0 <= si.num_machine_instructions <= si.num_prompt_instructions:
        raise ConfigError("self_instruct.num_machine_instructions must be between 0 and num_prompt_instructions")
    if method == "self-qa" and not 0 <= qa.chunk_overlap < qa.chunk_tokens:
        raise ConfigError(f"self_qa.chunk_overlap must be >= 0 and < chunk_tokens ({qa.chunk_tokens})")


def generate_reference(method: str) -> str:
    """The config key reference printed by `lmforge generate METHOD --help` (shared sections + the method's)."""
    from lmforge.config.config_reference import section_reference

    section = method.replace("-", "_")
    method_cls = {"self_instruct": SelfInstructConfig, "self_qa": SelfQAConfig, "self_kg": SelfKGConfig}[section]
    parts = [
        "Config keys (YAML sections; override any as section.key=value):",
        "seed = 0\n      Run seed: every request's sampling seed derives from it and the request's key.",
        "max_requests, max_tokens = None\n      Budgets (also --max-requests / --max-tokens).",
        section_reference("generator", GeneratorConfig),
        section_reference("sampling / answer_sampling  (creative requests / the rest)", GenerationOptions),
        section_reference("output", OutputConfig),
        section_reference(section, method_cls),
    ]
    return "\n\n".join(parts)

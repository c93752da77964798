"""`lmforge init-model`: a randomly initialised causal LM plus a BPE tokenizer trained on a small corpus.

For offline demos, tests and benchmarks: nothing is downloaded. The output is a normal Hugging Face folder
(safetensors weights, tokenizer with the chat template stored as Jinja), so every other command loads it like
any real model. The same inputs and seed give byte-identical files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypedDict

import torch

from lmforge.templates import ChatTemplate, get_template
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

ARCHS = ("llama", "qwen2")


class ModelDims(TypedDict):
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int


SIZES: dict[str, ModelDims] = {
    "tiny": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 688},
    "small": {"hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8, "intermediate_size": 1376},
}
PAD_TOKEN = "<|pad|>"
# tokens transformers' tokenizer class for the architecture adds on load unless present (Qwen2Tokenizer's unk)
ARCH_SPECIALS = {"qwen2": ("<|endoftext|>",)}
PROBE_TEXT = "Hello  world\n\n 12345 héllo — 中文\tend."
VOCAB_MULTIPLE = 64
MAX_POSITIONS = 4096
DEFAULT_CORPUS = ("alpaca_en_demo.json", "c4_demo.jsonl", "wiki_demo.txt")
TEXT_SUFFIXES = (".json", ".jsonl", ".txt")
INIT_MARKER = "lmforge_init.json"


def init_model(
    output: str,
    arch: str = "llama",
    size: str = "tiny",
    corpus: list[str] | None = None,
    template: str = "chatml",
    seed: int = 0,
    vocab_size: int = 8192,
    overwrite: bool = False,
) -> None:
    """Train a tokenizer on `corpus`, build a seeded random `arch` model of `size`, save both to `output`.

    overwrite: replace a folder an earlier init-model wrote (marked by lmforge_init.json); any other non-empty
    folder is refused, so a trained model is never replaced by random weights."""
    out = Path(output)
    check_init_destination(out, overwrite)
    if size not in SIZES:
        raise ConfigError(f"unknown model size {size!r}; valid sizes: {', '.join(SIZES)}")
    chat_template = get_template(template, None)
    tokenizer = train_tokenizer(iter_corpus_texts(corpus or default_corpus()), chat_template, vocab_size, arch)
    model = build_model(arch, tokenizer, seed, **SIZES[size])
    model.generation_config.eos_token_id = chat_template.stop_token_ids(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    if out.exists():
        shutil.rmtree(out)  # checked above: an earlier init-model output
    out.mkdir(parents=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    marker = {"arch": arch, "size": size, "template": template, "seed": seed, "vocab_size": vocab_size}
    (out / INIT_MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
    check_reloads_identically(out, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("wrote %s: %s %s, %d params, vocab %d", out, arch, size, n_params, len(tokenizer))


def check_init_destination(out: Path, overwrite: bool) -> None:
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not out.is_dir() or not overwrite or not (out / INIT_MARKER).is_file():
        what = "pass --overwrite to replace it" if (out / INIT_MARKER).is_file() else "it was not made by init-model"
        raise ConfigError(f"--output {out} exists and is not empty ({what}); nothing was written. Choose a new folder")


def default_corpus() -> list[str]:
    """The demo data shipped in the source tree's examples/data."""
    data_dir = Path(__file__).resolve().parents[3] / "examples" / "data"
    files = [data_dir / name for name in DEFAULT_CORPUS if (data_dir / name).is_file()]
    if not files:
        raise ConfigError(f"no default corpus found in {data_dir}; pass text/json/jsonl files with --corpus")
    return [str(f) for f in files]


def iter_corpus_texts(paths: Iterable[str]) -> Iterator[str]:
    """Every string in the files, in a fixed order: lines of .txt, string fields of .json/.jsonl records."""
    for name in paths:
        path = Path(name)
        if path.suffix not in TEXT_SUFFIXES:
            raise ConfigError(f"corpus file {path}: expected one of {', '.join(TEXT_SUFFIXES)}")
        if not path.is_file():
            raise ConfigError(f"corpus file {path} does not exist")
        with path.open(encoding="utf-8") as f:
            if path.suffix == ".txt":
                yield from f
            elif path.suffix == ".json":
                yield from _strings(_parse_json(f.read(), path, 1))
            else:
                for lineno, line in enumerate(f, 1):
                    if line.strip():
                        yield from _strings(_parse_json(line.strip(), path, lineno))


def _parse_json(text: str, path: Path, lineno: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"corpus file {path}, line {lineno + exc.lineno - 1}: invalid JSON ({exc.msg})") from None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from _strings(value[key])
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def special_tokens_for(template: ChatTemplate, arch: str = "llama") -> list[str]:
    """BOS (if the family has one), the template's special tokens, its end-of-turn token and a pad token."""
    tokens = [template.bos_token, *template.special_tokens, template.eos_token, PAD_TOKEN]
    tokens += ARCH_SPECIALS.get(arch, ())
    return list(dict.fromkeys(t for t in tokens if t))


def _set_pre_tokenization(backend: Any, arch: str) -> None:
    """The pipeline transformers' tokenizer class for `arch` rebuilds on load (Qwen2Tokenizer has its own)."""
    from tokenizers import Regex, normalizers, pre_tokenizers

    if arch == "qwen2":
        from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

        backend.normalizer = normalizers.NFC()
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)


def train_tokenizer(texts: Iterable[str], template: ChatTemplate, vocab_size: int, arch: str = "llama") -> Any:
    """A byte-level BPE tokenizer (any text encodes, no unknown token) with the template's specials and Jinja."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = special_tokens_for(template, arch)
    backend = Tokenizer(models.BPE())
    _set_pre_tokenization(backend, arch)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    bos = template.bos_token
    if bos:  # families with a BOS add it when encoding, as their real tokenizers do
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, backend.token_to_id(bos))]
        )
    named = {bos, template.eos_token, PAD_TOKEN}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=template.eos_token,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[t for t in specials if t not in named],
        model_max_length=MAX_POSITIONS,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = template.jinja()
    return tokenizer


def check_reloads_identically(folder: Path, tokenizer: Any) -> None:
    """transformers may load a different tokenizer class for the architecture; make sure it encodes the same."""
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(folder)
    probe = PROBE_TEXT + "".join(tokenizer.all_special_tokens)
    if len(reloaded) != len(tokenizer) or reloaded(probe)["input_ids"] != tokenizer(probe)["input_ids"]:
        raise RuntimeError(f"tokenizer saved in {folder} loads as {type(reloaded).__name__} and encodes differently")


def build_model(arch: str, tokenizer: Any, seed: int, tie_word_embeddings: bool = False, **dims: int) -> Any:
    """A seeded random causal LM of `arch` whose vocabulary covers the tokenizer (rounded up to a multiple of 64).

    `dims` are config fields (hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, ...).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
    config = AutoConfig.for_model(
        arch,
        vocab_size=-(-len(tokenizer) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **{"num_key_value_heads": dims.get("num_attention_heads"), **dims},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)

"""Vocabulary extension for domain or language adaptation (`lmforge tokenizer extend`).

New BPE pieces are learned on the domain corpus with the base tokenizer's own normaliser and pre-tokeniser, and
appended to its vocabulary and merge list: existing ids never change, and because the new merges come after all
old ones, a text that contains none of the new pieces tokenises exactly as before. Training then grows the
embeddings (model.tokenizer_name_or_path; new rows start at the mean row) and trains them with
`method.modules_to_save: [embed_tokens, lm_head]` (or method full).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

TOKENIZER_JSON = "tokenizer.json"
EXTENSION_FILE = "lmforge_vocab_extension.json"  # {"base_size": ids below this are the base's, "added": {...}}
STALE_SLOW_FILES = ("vocab.json", "merges.txt")  # slow-tokenizer copies of the old vocabulary; would disagree
TRAIN_HEADROOM = 4  # learn this many times more candidate merges than needed (many are already in the base)


@dataclass(frozen=True)
class Extension:
    """What `extend_tokenizer` did: the pieces added with their new ids."""

    base_size: int
    added: dict[str, int]
    output: Path


def read_corpus(files: list[str]) -> Iterator[str]:
    for name in files:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"--corpus: file {name!r} does not exist")
        try:
            with path.open(encoding="utf-8") as handle:
                yield from (line.rstrip("\n") for line in handle if line.strip())
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"--corpus {name}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                f"convert it first, e.g. iconv -f latin1 -t utf-8 {name} > {path.stem}.utf8{path.suffix}"
            ) from None


def load_bpe_json(base: str) -> dict[str, Any]:
    """The base tokenizer.json, which must describe a BPE model (merges can only be appended to BPE)."""
    path = Path(base).expanduser() / TOKENIZER_JSON
    if not path.is_file():
        raise ConfigError(f"--base {base!r} has no {TOKENIZER_JSON}: only fast (tokenizers) BPE tokenizers extend")
    spec = json.loads(path.read_text(encoding="utf-8"))
    kind = spec.get("model", {}).get("type")
    if kind != "BPE":
        raise ConfigError(
            f"--base {base!r} is a {kind} tokenizer; extension appends BPE merges and supports BPE tokenizers only "
            "(for SentencePiece-Unigram/WordPiece models add whole tokens with model.new_special_tokens instead)"
        )
    return spec


def learn_merges(spec: dict[str, Any], lines: list[str], count: int) -> list[tuple[str, str]]:
    """Merges of a BPE trained on `lines` with the base's normaliser, pre-tokeniser and alphabet, best first."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    base = Tokenizer.from_str(json.dumps(spec))
    learner = Tokenizer(models.BPE())
    learner.normalizer = base.normalizer
    learner.pre_tokenizer = base.pre_tokenizer
    alphabet = pre_tokenizers.ByteLevel.alphabet() if "ByteLevel" in json.dumps(spec.get("pre_tokenizer")) else []
    size = len(alphabet) + TRAIN_HEADROOM * count + len(spec["model"]["merges"])
    trainer = trainers.BpeTrainer(vocab_size=size, initial_alphabet=alphabet, show_progress=False)
    learner.train_from_iterator(lines, trainer=trainer)
    merges = json.loads(learner.to_str())["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]  # type: ignore[misc]


def append_pieces(spec: dict[str, Any], merges: list[tuple[str, str]], count: int) -> dict[str, int]:
    """Append up to `count` new pieces (and their merges) after every existing id; returns piece -> id."""
    vocab: dict[str, int] = spec["model"]["vocab"]
    taken = set(vocab.values()) | {t["id"] for t in spec.get("added_tokens", [])}
    next_id = max(taken) + 1
    added: dict[str, int] = {}
    as_lists = bool(spec["model"]["merges"]) and isinstance(spec["model"]["merges"][0], list)
    for left, right in merges:
        piece = left + right
        if len(added) == count:
            break
        if piece in vocab or left not in vocab or right not in vocab:
            continue  # known already, or built from pieces the base cannot produce
        vocab[piece] = added[piece] = next_id
        spec["model"]["merges"].append([left, right] if as_lists else f"{left} {right}")
        next_id += 1
    return added


def extend_tokenizer(base: str, corpus: list[str], add: int, output: str) -> Extension:
    """Learn `add` new pieces on `corpus`, append them to the base tokenizer, save the result to `output`."""
    if add <= 0:
        raise ConfigError(f"--add must be positive, got {add}")
    spec = load_bpe_json(base)
    lines = list(read_corpus(corpus))
    if not lines:
        raise ConfigError(f"--corpus {', '.join(corpus)}: no non-empty lines to learn from")
    base_size = len(spec["model"]["vocab"])
    added = append_pieces(spec, learn_merges(spec, lines, add), add)
    if len(added) < add:
        logger.warning("the corpus yields only %d new pieces (asked for %d)", len(added), add)
    out = _write(Path(base).expanduser(), spec, Path(output).expanduser())
    info = {"base": base, "base_size": min(added.values(), default=base_size), "added": added}
    (out / EXTENSION_FILE).write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    check_extension(base, str(out), lines[:200])
    logger.info("added %d pieces (ids %s..) to %s", len(added), min(added.values(), default="-"), out)
    return Extension(base_size, added, out)


def _write(base: Path, spec: dict[str, Any], out: Path) -> Path:
    """The base tokenizer folder's files (config, chat template, special tokens) plus the new tokenizer.json."""
    if out.exists():
        raise ConfigError(f"--output {str(out)!r} already exists; choose a new folder")
    out.mkdir(parents=True)
    for path in base.iterdir():
        if path.is_file() and (path.name.startswith(("tokenizer", "special_tokens", "added_tokens", "chat_template"))):
            shutil.copy2(path, out / path.name)
    for name in STALE_SLOW_FILES:
        (out / name).unlink(missing_ok=True)
    (out / TOKENIZER_JSON).write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return out


def init_new_rows(model: Any, tokenizer_dir: str) -> int:
    """Set the embedding (and untied head) rows of the added pieces to the mean of the base rows.

    The model may already have rows for those ids (vocabularies are padded to a multiple of 64), but they were
    never trained; starting at the mean keeps the new tokens' inputs and logits in distribution."""
    import torch

    info_path = Path(tokenizer_dir).expanduser() / EXTENSION_FILE
    if not info_path.is_file():
        return 0
    info = json.loads(info_path.read_text(encoding="utf-8"))
    ids = sorted(info["added"].values())
    if not ids:
        return 0
    base = int(info["base_size"])
    modules = {id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None}
    with torch.no_grad():
        for module in modules.values():
            module.weight[ids] = module.weight[:base].mean(dim=0, keepdim=True).to(module.weight.dtype)
    logger.info("initialised %d new token rows (ids %d..%d) to the mean of the base rows", len(ids), ids[0], ids[-1])
    return len(ids)


def check_extension(base: str, extended: str, texts: list[str]) -> None:
    """Every old token keeps its id and every text decodes back to itself (a broken merge would not)."""
    from transformers import AutoTokenizer

    old = AutoTokenizer.from_pretrained(base)
    new = AutoTokenizer.from_pretrained(extended)
    new_vocab = new.get_vocab()
    moved = [t for t, i in old.get_vocab().items() if new_vocab.get(t) != i]
    if moved:
        raise ConfigError(f"extension changed the ids of {len(moved)} tokens, e.g. {moved[:3]}; nothing usable")
    for text in texts:
        if new.decode(new.encode(text, add_special_tokens=False)) != old.decode(
            old.encode(text, add_special_tokens=False)
        ):
            raise ConfigError(f"the extended tokenizer does not round-trip {text[:60]!r}")

"""The tokenizer as GGUF metadata: vocabulary, merges, token types, pre-tokenizer name and special ids.

llama.cpp does not read `tokenizer.json`: it rebuilds a tokenizer from the token list, the merges and a
pre-tokenizer *name* (`tokenizer.ggml.pre`) that selects a split regex compiled into llama.cpp. llama.cpp's own
converter guesses that name from a hash of a probe text's ids and fails on tokenizers it has not seen (such as
the ones `lmforge init-model` trains). Here the name is read off the tokenizer's actual split regex instead;
the export's round-trip check then proves GGUF tokenisation equals the HF tokenizer's on a probe corpus.

Supported: byte-level BPE tokenizers (GPT-2, Llama-3, Qwen2 and every `init-model` tokenizer). SentencePiece
vocabularies need the `tokenizer.model` protobuf and are refused with a clear message.
"""

from __future__ import annotations

import json
from typing import Any

from lmforge.utils.errors import ConfigError

# llama.cpp pre-tokenizer names, in the order we prefer them when several name the same split regex
PREFERRED_PRE = ("llama-bpe", "qwen2", "qwen35", "tekken", "gpt-4o")
GPT2_PRE = "gpt2"  # ByteLevel(use_regex=True) alone: the GPT-2 split regex


def backend_json(tokenizer: Any) -> dict[str, Any]:
    return json.loads(tokenizer.backend_tokenizer.to_str())


def _split_regex_names() -> dict[str, str]:
    """regex -> llama.cpp pre name, from the table transformers' GGUF loader uses to rebuild tokenizers."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    table: dict[str, str] = {}
    for name in (*PREFERRED_PRE, *GGUF_PRE_TOKENIZER_SPLITS):
        if name in GGUF_PRE_TOKENIZER_SPLITS:
            table.setdefault(GGUF_PRE_TOKENIZER_SPLITS[name], name)
    return table


def pre_tokenizer_name(spec: dict[str, Any]) -> str:
    """`tokenizer.ggml.pre` for a byte-level BPE tokenizer, from its pre-tokenizer's split regex."""
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return GPT2_PRE
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        regex = steps[0].get("pattern", {}).get("Regex")
        name = _split_regex_names().get(regex)
        if name is not None:
            return name
        raise ConfigError(
            f"GGUF export: the tokenizer splits text with a regex llama.cpp has no pre-tokenizer for ({regex!r}); "
            "llama.cpp would tokenise differently from training"
        )
    raise ConfigError(f"GGUF export: unsupported pre-tokenizer pipeline {kinds} (byte-level BPE expected)")


def _merges(spec: dict[str, Any]) -> list[str]:
    return [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]


def add_tokenizer(writer: Any, tokenizer: Any, vocab_size: int, stop_ids: list[int], chat_template: str | None):
    """Write every tokenizer key llama.cpp reads; rows past the tokenizer (embedding padding) are [PADi] unused."""
    import gguf

    spec = backend_json(tokenizer)
    model = spec.get("model", {})
    if model.get("type") != "BPE" or not any(d.get("type") == "ByteLevel" for d in _decoders(spec)):
        raise ConfigError(
            f"GGUF export supports byte-level BPE tokenizers; this one is {model.get('type')!r} "
            "(SentencePiece vocabularies are not supported yet)"
        )
    if len(tokenizer) > vocab_size:
        raise ConfigError(f"GGUF export: tokenizer has {len(tokenizer)} tokens but the model only {vocab_size} rows")
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            tokens.append(added[index].content)
            types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(spec))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(_merges(spec))
    _add_special_ids(writer, tokenizer, stop_ids)
    if chat_template:
        writer.add_chat_template(chat_template)


def _decoders(spec: dict[str, Any]) -> list[dict[str, Any]]:
    decoder = spec.get("decoder") or {}
    return decoder.get("decoders", []) if decoder.get("type") == "Sequence" else [decoder]


def adds_bos(tokenizer: Any) -> bool:
    """Whether encoding plain text prepends BOS (llama.cpp's `add_bos_token`)."""
    ids = tokenizer("a").input_ids
    return tokenizer.bos_token_id is not None and bool(ids) and ids[0] == tokenizer.bos_token_id


def _add_special_ids(writer: Any, tokenizer: Any, stop_ids: list[int]) -> None:
    """BOS/EOS/PAD/UNK as the tokenizer has them; EOT = the template's end-of-turn when it is not EOS."""
    if tokenizer.bos_token_id is not None:
        writer.add_bos_token_id(tokenizer.bos_token_id)
    if tokenizer.eos_token_id is not None:
        writer.add_eos_token_id(tokenizer.eos_token_id)
    if tokenizer.pad_token_id is not None:
        writer.add_pad_token_id(tokenizer.pad_token_id)
    if tokenizer.unk_token_id is not None:
        writer.add_unk_token_id(tokenizer.unk_token_id)
    end_of_turn = [i for i in stop_ids if i != tokenizer.eos_token_id]
    if end_of_turn:
        writer.add_eot_token_id(end_of_turn[0])
    writer.add_add_bos_token(adds_bos(tokenizer))
    writer.add_add_eos_token(False)

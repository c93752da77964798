"""One encoder per data kind of the stage table (text, chat, pairs, kto): a batch of converted rows -> encoded
rows, and the Arrow features of the result.

The pipeline picks the encoder from `StageSpec.data` and never looks at stage names. Prompts (the online RL
stages) are not encoded into training rows here: data/rl_prompts.py renders them for sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmforge.config.schema import DataConfig
from lmforge.config.stages import DataKind
from lmforge.data import encode
from lmforge.data.pairwise import encode_kto, encode_pairs
from lmforge.templates import ChatTemplate
from lmforge.utils.errors import DataError

#: encode(values, template, tokenizer, data) -> one encoded row per value
EncodeBatch = Callable[[list[Any], ChatTemplate | None, Any, DataConfig], list[dict[str, Any]]]
#: per-row facts the report counts; dropped before training
AUX_COLUMNS = ["_drop", "_truncated", "_eos_cut", "_length", "_control_text", "_straddling", "_stop_appended"]


@dataclass(frozen=True)
class RowEncoder:
    kind: DataKind
    encode: EncodeBatch
    columns: Callable[[], dict[str, Any]]  # datasets feature types of the encoded rows, aux columns excluded

    @property
    def has_aux(self) -> bool:
        """Converted conversations carry drop/truncation facts; plain documents carry none."""
        return self.kind != "text"

    def features(self) -> Any:
        """Declared output types, so datasets skips inferring them from millions of Python ints."""
        import datasets

        return datasets.Features({**self.columns(), **(_aux_features() if self.has_aux else {})})


def _ids() -> Any:
    import datasets

    return datasets.List(datasets.Value("int32"))


def _value(dtype: str) -> Any:
    import datasets

    return datasets.Value(dtype)


def _aux_features() -> dict[str, Any]:
    types = ("string", "bool", "bool", "int32", "bool", "int32", "bool")
    return {name: _value(dtype) for name, dtype in zip(AUX_COLUMNS, types, strict=True)}


def _encode_text(docs: list[Any], template: ChatTemplate | None, tokenizer: Any, data: DataConfig) -> list[dict]:
    return [{"input_ids": encode.encode_document(doc, tokenizer)} for doc in docs]


def _encode_chat(convs: list[Any], template: ChatTemplate | None, tokenizer: Any, data: DataConfig) -> list[dict]:
    return encode.encode_conversations(convs, encode.require_template(template), tokenizer, data)


def _encode_pairs(pairs: list[Any], template: ChatTemplate | None, tokenizer: Any, data: DataConfig) -> list[dict]:
    return encode_pairs(pairs, encode.require_template(template), tokenizer, data)


def _encode_kto(examples: list[Any], template: ChatTemplate | None, tokenizer: Any, data: DataConfig) -> list[dict]:
    return encode_kto(examples, encode.require_template(template), tokenizer, data)


ENCODERS: dict[str, RowEncoder] = {
    "text": RowEncoder("text", _encode_text, lambda: {"input_ids": _ids()}),
    "chat": RowEncoder("chat", _encode_chat, lambda: {"input_ids": _ids(), "labels": _ids()}),
    "pairs": RowEncoder(
        "pairs",
        _encode_pairs,
        lambda: {n: _ids() for n in ("chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels")},
    ),
    "kto": RowEncoder(
        "kto",
        _encode_kto,
        lambda: {"input_ids": _ids(), "labels": _ids(), "kto_label": _value("bool"), "prompt_len": _value("int32")},
    ),
}


def encoder_for(kind: DataKind) -> RowEncoder:
    if kind not in ENCODERS:
        raise DataError(f"{kind} rows are not encoded into training rows by the data pipeline")
    return ENCODERS[kind]

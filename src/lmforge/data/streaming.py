"""Streaming datasets for files too large to preprocess up front: rows are read, converted and encoded lazily.

Nothing is cached and counts are not known ahead of training; unusable rows are skipped as they stream by.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from lmforge.config.schema import DatasetSpec, RunConfig
from lmforge.config.stages import stage_spec
from lmforge.data import encode
from lmforge.data.formats import iter_conversations
from lmforge.data.report import DataReport
from lmforge.utils.errors import DataError

if TYPE_CHECKING:
    from lmforge.templates import ChatTemplate


def _conversations(spec: DatasetSpec, cfg: RunConfig) -> Iterator[dict[str, Any]]:
    return iter_conversations(spec, cfg.data, cfg.stage, None, [], streaming=True)


def generate_rows(
    spec: DatasetSpec, cfg: RunConfig, tokenizer: Any, template: ChatTemplate | None
) -> Iterator[dict[str, Any]]:
    """Encoded rows of one dataset: sft examples that survive truncation, or pt blocks."""
    if stage_spec(cfg.stage).data == "text":
        docs = (encode.encode_document(c["text"], tokenizer) for c in _conversations(spec, cfg))
        for block in encode.group_blocks(docs, cfg.data.cutoff_len):
            yield {"input_ids": block, "labels": list(block)}
        return
    chat_template = encode.require_template(template)
    for conv in _conversations(spec, cfg):
        row = encode.encode_conversation(conv, chat_template, tokenizer, cfg.data)
        if not row["_drop"]:
            yield {"input_ids": row["input_ids"], "labels": row["labels"]}


def _stream(specs: list[DatasetSpec], cfg: RunConfig, tokenizer: Any, template: ChatTemplate | None, seed: int) -> Any:
    import datasets

    from lmforge.data.pipeline import mix

    parts = [
        datasets.IterableDataset.from_generator(
            generate_rows, gen_kwargs={"spec": s, "cfg": cfg, "tokenizer": tokenizer, "template": template}
        )
        for s in specs
    ]
    return mix(parts, cfg.data, seed)


def build_streaming(
    cfg: RunConfig,
    specs: list[DatasetSpec],
    eval_specs: list[DatasetSpec],
    tokenizer: Any,
    template: ChatTemplate | None,
    seed: int,
) -> Any:
    from lmforge.data.pipeline import DatasetBundle

    if cfg.data.packing:
        raise DataError("data.packing cannot be combined with data.streaming (packing needs every length up front)")
    if 0 < cfg.data.val_size < 1:
        raise DataError("with data.streaming, data.val_size must be a count of examples (>= 1), not a fraction")
    train = _stream(specs, cfg, tokenizer, template, seed)
    evaluation = None
    if cfg.data.val_size:
        evaluation, train = train.take(int(cfg.data.val_size)), train.skip(int(cfg.data.val_size))
    if eval_specs:
        evaluation = _stream(eval_specs, cfg, tokenizer, template, seed)
    return DatasetBundle(train, evaluation, DataReport(stage=cfg.stage, cache="off", streaming=True))

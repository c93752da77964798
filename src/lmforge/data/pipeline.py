"""build_datasets: catalogue -> rows -> conversations -> ids -> mixed, split, packed, cached datasets.

Each dataset is read, converted and encoded on its own so the report can say what happened to each; the
encoded datasets are then mixed, split and (sft) packed or (pt) grouped into blocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.config.schema import DataConfig, DatasetSpec, RunConfig
from lmforge.config.stages import stage_spec
from lmforge.data import encode
from lmforge.data.cache import cache_key, default_cache_dir, load_entry, save_entry
from lmforge.data.catalog import resolve_specs
from lmforge.data.encoders import AUX_COLUMNS, RowEncoder, encoder_for
from lmforge.data.formats import iter_conversations
from lmforge.data.report import BAD_ROWS_FILE, DataReport, DatasetCounts
from lmforge.utils.errors import DataError
from lmforge.utils.logging import get_logger

if TYPE_CHECKING:
    from lmforge.templates import ChatTemplate

logger = get_logger(__name__)


@dataclass
class DatasetBundle:
    train: Any  # datasets.Dataset (IterableDataset when streaming)
    eval: Any | None
    report: DataReport


def data_seed(cfg: RunConfig) -> int:
    return int(cfg.train.get("data_seed") or cfg.train.get("seed", 42))


def convert_source(spec: DatasetSpec, data: DataConfig, stage: str, counts: DatasetCounts, bad_rows: list) -> list:
    """One dataset as converted rows: document texts (text kind) or conversation/pair/example dicts."""
    before = len(bad_rows)
    text = stage_spec(stage).data == "text"
    out = [conv["text"] if text else conv for conv in iter_conversations(spec, data, stage, counts, bad_rows)]
    counts.bad_rows = len(bad_rows) - before
    if counts.read == 0:
        raise DataError(f"dataset {spec.name!r} ({spec.path}): no rows to read")
    return out


def _encode_fn(
    encoder: RowEncoder, spec: DatasetSpec, tokenizer: Any, template: ChatTemplate | None, data: DataConfig, rows: list
):
    """A batched map over the `value` column: document texts (text), or row numbers into `rows` (conversations have
    no single Arrow schema, and a JSON round trip per row cost ~5% of the sft preprocessing time)."""

    def converted(values: list) -> list:
        return [rows[v] for v in values] if encoder.has_aux else values

    def encode_rows(values: list, indices: list[int]) -> list[dict[str, Any]]:
        try:
            return encoder.encode(converted(values), template, tokenizer, data)
        except DataError:
            pass  # encode row by row below, so the error names the failing row
        out = []
        for value, index in zip(values, indices, strict=True):
            try:
                out += encoder.encode(converted([value]), template, tokenizer, data)
            except DataError as exc:
                raise DataError(f"dataset {spec.name!r} ({spec.path}), row {index} (0-based): {exc}") from None
        return out

    def encode_batch(values: list, indices: list[int]) -> dict[str, list]:
        # batched map: one call per batch instead of per row, the cheapest path through datasets.map
        rows = encode_rows(values, indices)
        return {key: [row[key] for row in rows] for key in rows[0]}

    return encode_batch


def encode_source(
    spec: DatasetSpec,
    cfg: RunConfig,
    tokenizer: Any,
    template: ChatTemplate | None,
    counts: DatasetCounts,
    report: DataReport,
    key: str,
) -> Any:
    """One dataset encoded, its drops counted and removed; lengths before truncation go to the report."""
    import datasets

    encoder = encoder_for(stage_spec(cfg.stage).data)
    values = convert_source(spec, cfg.data, cfg.stage, counts, report.bad_rows)
    by_index = encoder.has_aux  # conversations are mapped by row number
    ds = datasets.Dataset.from_dict({"value": list(range(len(values))) if by_index else values})
    if values:
        ds = ds.map(
            _encode_fn(encoder, spec, tokenizer, template, cfg.data, values),
            input_columns="value",
            with_indices=True,
            batched=True,
            batch_size=1000,
            features=encoder.features(),
            remove_columns=["value"],
            num_proc=_num_proc(cfg.data, len(values)),
            desc=f"Encoding {spec.name}",
            load_from_cache_file=False,
            new_fingerprint=f"{key}-{spec.name}",
        )
    if by_index and len(ds):
        aux = ds.select_columns(AUX_COLUMNS).to_dict()  # plain lists in one go; ds[column] decodes row by row
        drops = aux["_drop"]
        for reason in drops:
            if reason:
                counts.drop(reason)
        counts.truncated = sum(aux["_truncated"])
        counts.eos_cut = sum(aux["_eos_cut"])
        counts.control_text = sum(aux["_control_text"])
        counts.straddling = sum(aux["_straddling"])
        counts.stop_appended = sum(aux["_stop_appended"])
        if counts.control_text:
            logger.warning(
                "%s: %d rows contain special-token text (e.g. an end-of-turn marker); it is encoded as plain "
                "text, not as the special token",
                spec.name,
                counts.control_text,
            )
        report.lengths += aux["_length"]
        ds = ds.select([i for i, reason in enumerate(drops) if not reason])
    counts.kept = len(ds)
    counts.require_examples()
    return ds


def _num_proc(data: DataConfig, rows: int) -> int | None:
    return data.num_proc if data.num_proc and data.num_proc > 1 and rows >= 2 * data.num_proc else None


def mix(parts: list[Any], data: DataConfig, seed: int) -> Any:
    import datasets

    if len(parts) == 1:
        return parts[0]
    if data.mix_strategy == "concat":
        return datasets.concatenate_datasets(parts)
    strategy = "first_exhausted" if data.mix_strategy == "interleave_under" else "all_exhausted"
    return datasets.interleave_datasets(
        parts, probabilities=data.interleave_probs, seed=seed, stopping_strategy=strategy
    )


def split_validation(ds: Any, val_size: float, seed: int) -> tuple[Any, Any | None]:
    if not val_size:
        return ds, None
    size: float | int = int(val_size) if val_size >= 1 else val_size
    if (isinstance(size, int) and size >= len(ds)) or (isinstance(size, float) and round(size * len(ds)) < 1):
        raise DataError(f"data.val_size={val_size} does not fit {len(ds)} examples (leave at least one on each side)")
    parts = ds.train_test_split(test_size=size, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def finish_rows(ds: Any, cfg: RunConfig, report: DataReport, is_train: bool) -> Any:
    """text: group into cutoff_len blocks (labels = input_ids). Others: drop helper columns, pack if asked."""
    import datasets

    if stage_spec(cfg.stage).data == "text":
        blocks = list(encode.group_blocks(ds["input_ids"], cfg.data.cutoff_len))
        tail = len(blocks[-1]) if blocks and len(blocks[-1]) < cfg.data.cutoff_len else 0
        if tail == 1:  # a 1-token block has no target once its first label is masked
            blocks.pop()
        if is_train:
            report.pt_tail_tokens = tail
        return datasets.Dataset.from_dict({"input_ids": blocks, "labels": [list(b) for b in blocks]})
    ds = ds.remove_columns([c for c in AUX_COLUMNS if c in ds.column_names])
    if not cfg.data.packing:
        return ds
    rows = ds.to_list()
    bins = encode.plan_packing([len(r["input_ids"]) for r in rows], cfg.data.cutoff_len)
    if is_train:
        report.packed_from = len(rows)
    return datasets.Dataset.from_list([encode.pack_rows([rows[i] for i in b]) for b in bins])


def encode_all(
    specs: list[DatasetSpec],
    cfg: RunConfig,
    tokenizer: Any,
    template: ChatTemplate | None,
    key: str,
    report: DataReport,
    is_train: bool,
) -> list[Any]:
    parts = []
    for spec in specs:
        counts = DatasetCounts(spec.name)
        (report.datasets if is_train else report.eval_datasets).append(counts)
        parts.append(encode_source(spec, cfg, tokenizer, template, counts, report, key))
    return parts


def compute(
    cfg: RunConfig,
    specs: list[DatasetSpec],
    eval_specs: list[DatasetSpec],
    tokenizer: Any,
    template: ChatTemplate | None,
    key: str,
    seed: int,
) -> DatasetBundle:
    """The uncached path: every dataset encoded, mixed, split, finished; the report filled in."""
    import datasets

    report = DataReport(stage=cfg.stage, template=template.name if template is not None else "")
    train = mix(encode_all(specs, cfg, tokenizer, template, key, report, is_train=True), cfg.data, seed)
    train, evaluation = split_validation(train, cfg.data.val_size, seed)
    if eval_specs:
        extra = datasets.concatenate_datasets(
            encode_all(eval_specs, cfg, tokenizer, template, key, report, is_train=False)
        )
        evaluation = extra if evaluation is None else datasets.concatenate_datasets([evaluation, extra])
    train = finish_rows(train, cfg, report, is_train=True)
    evaluation = finish_rows(evaluation, cfg, report, is_train=False) if evaluation is not None else None
    report.train_rows, report.eval_rows = len(train), len(evaluation) if evaluation is not None else 0
    return DatasetBundle(train, evaluation, report)


def write_bad_rows(cfg: RunConfig, bad_rows: list[dict[str, Any]]) -> None:
    if not bad_rows or not cfg.output_dir:
        return
    path = Path(cfg.output_dir) / BAD_ROWS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in bad_rows), encoding="utf-8")
    logger.warning("skipped %d malformed rows; their line numbers are in %s", len(bad_rows), path)


def build_datasets(
    cfg: RunConfig, tokenizer: Any, template: ChatTemplate | None, record: bool = True
) -> DatasetBundle:
    """Training (and evaluation) datasets of encoded rows plus a report of what preprocessing did.

    record: log the report and write skipped rows to train.output_dir (a run); `data preview` prints instead and
    writes nothing."""
    if stage_spec(cfg.stage).needs_template and template is None:
        raise DataError(f"{cfg.stage} needs a chat template to encode conversations")
    specs = resolve_specs(cfg.data.datasets, cfg.data, "data.datasets")
    eval_specs = resolve_specs(cfg.data.eval_datasets, cfg.data, "data.eval_datasets")
    seed = data_seed(cfg)
    if cfg.data.streaming:
        from lmforge.data.streaming import build_streaming

        return build_streaming(cfg, specs, eval_specs, tokenizer, template, seed)
    key = cache_key(cfg, specs, eval_specs, tokenizer, template, seed)
    cache_dir = Path(cfg.data.cache_dir).expanduser() if cfg.data.cache_dir else default_cache_dir()
    hit = None if cfg.data.overwrite_cache else load_entry(cache_dir, key)
    if hit is not None:
        logger.info("data cache hit: %s", cache_dir / key)
        bundle = DatasetBundle(hit[0], hit[1], DataReport.from_dict(hit[2]))
        bundle.report.cache = "hit"
    else:
        logger.info("data cache miss: preprocessing (key %s)", key)
        bundle = compute(cfg, specs, eval_specs, tokenizer, template, key, seed)
        bundle.report.cache = "miss"
        save_entry(cache_dir, key, bundle.train, bundle.eval, bundle.report.to_dict())
    if record:
        write_bad_rows(cfg, bundle.report.bad_rows)
        for line in bundle.report.lines():
            logger.info(line)
    warning = bundle.report.length_warning(cfg.data.cutoff_len, encode.TOO_LONG_REASONS)
    if warning:
        logger.warning(warning)
    return bundle

"""Prompts-only data for the online RL stages (ppo, grpo): rows -> conversations ending on a user turn -> ids.

Accepted shapes: alpaca (instruction + optional input; `output`, when present, is the reference answer), sharegpt
and openai conversations (ending with a user turn; a final assistant turn is taken as the reference answer), and
the `prompt` format (a `prompt` column, optional `reference` and `system`). Prompt ids come from
`ChatTemplate.encode_prompt`, the one prompt builder that SFT, chat and serving use. Preference, KTO and text
data are rejected with "dataset format X does not match stage Y" naming the expected fields (QUALITY A9).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lmforge.config.schema import DatasetSpec, RunConfig
from lmforge.data.catalog import resolve_specs
from lmforge.data.formats import (
    FORMATS,
    DropRow,
    _text,
    column_mapping,
    convert_openai,
    convert_sharegpt,
)
from lmforge.data.readers import iter_source
from lmforge.data.report import DataReport, DatasetCounts
from lmforge.templates import ChatTemplate, has_control_text
from lmforge.utils.errors import DataError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

PROMPT_FORMATS = {
    "alpaca": "alpaca (instruction, optional input, optional output as the reference answer)",
    "sharegpt": "sharegpt (conversations ending with a user turn; a final assistant turn is the reference)",
    "openai": "openai (messages ending with a user turn; a final assistant turn is the reference)",
    "prompt": "prompt (prompt, optional reference and system)",
}
# the fields a prompt needs per format (alpaca's `output` is optional here: it is only the reference answer)
PROMPT_REQUIRED = {"alpaca": ("prompt",), "sharegpt": ("messages",), "openai": ("messages",), "prompt": ("prompt",)}


@dataclass
class PromptBundle:
    train: Any  # datasets.Dataset with prompt_ids, messages (JSON text), reference
    report: DataReport


def check_prompt_columns(spec: DatasetSpec, columns: list[str], stage: str) -> dict[str, str]:
    """The column mapping, or A9 / missing-column errors before anything is encoded."""
    fmt = FORMATS.get(spec.format)
    if spec.format not in PROMPT_FORMATS or (spec.format != "prompt" and {"chosen", "rejected"} <= set(columns)):
        name = "preference" if {"chosen", "rejected"} <= set(columns) else fmt.name
        raise DataError(
            f"dataset {spec.name!r}: dataset format {name} does not match stage {stage}; stage {stage} expects "
            f"prompts-only rows: {'; '.join(PROMPT_FORMATS.values())}"
        )
    mapping = column_mapping(fmt, spec)
    missing = [f for f in PROMPT_REQUIRED[fmt.name] if mapping[f] not in columns]
    if missing:
        raise DataError(
            f"dataset {spec.name!r}: missing column(s) {', '.join(repr(mapping[f]) for f in missing)} for format "
            f"{fmt.name} (stage {stage}); columns found: {', '.join(columns) or '(none)'}; column mapping: {mapping}"
        )
    return mapping


def convert_prompt_row(fmt: str, row: dict[str, Any], spec: DatasetSpec, mapping: dict[str, str]) -> dict[str, Any]:
    """{"messages": conversation ending on a user turn, "tools": str | None, "reference": str | None}."""
    if fmt in ("alpaca", "prompt"):
        return _single_turn(fmt, row, mapping)
    conv = (convert_sharegpt if fmt == "sharegpt" else convert_openai)(row, spec, mapping)
    messages, reference = conv["messages"], None
    if messages and messages[-1]["role"] == "assistant" and not messages[-1].get("tool_calls"):
        reference = messages[-1]["content"]
        messages = messages[:-1]
    if not messages or messages[-1]["role"] not in ("user", "tool"):
        last = messages[-1]["role"] if messages else "nothing"
        raise DataError(f"a prompt must end with a user (or tool) turn, this conversation ends with {last}")
    return {"messages": messages, "tools": conv["tools"], "reference": reference}


def _single_turn(fmt: str, row: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    messages = []
    system = _text(row.get(mapping["system"]), mapping["system"], optional=True)
    if system:
        messages.append({"role": "system", "content": system})
    if fmt == "alpaca" and row.get(mapping["history"]):
        raise DataError(f"{mapping['history']}: multi-turn alpaca history is not supported for prompts; use sharegpt")
    prompt = _text(row.get(mapping["prompt"]), mapping["prompt"])
    query = _text(row.get(mapping["query"]), mapping["query"], optional=True) if fmt == "alpaca" else ""
    content = f"{prompt}\n{query}" if query else prompt
    if not content.strip():
        raise DropRow("empty prompt")
    messages.append({"role": "user", "content": content})
    ref_key = mapping["response"] if fmt == "alpaca" else mapping["reference"]
    reference = _text(row.get(ref_key), ref_key, optional=True) or None
    return {"messages": messages, "tools": None, "reference": reference}


def read_prompts(spec: DatasetSpec, cfg: RunConfig, counts: DatasetCounts, report: DataReport) -> list[dict]:
    """Converted rows of one dataset; row errors name the dataset and row, drops are counted."""
    data = cfg.data
    rows = iter_source(
        spec.path,
        spec.file_type,
        encoding=data.encoding,
        on_bad_row=data.on_bad_row,
        bad_rows=report.bad_rows,
        subset=spec.subset,
        split=spec.split,
    )
    limits = [n for n in (spec.max_samples, data.max_samples) if n is not None]
    mapping: dict[str, str] | None = None
    out = []
    for index, row in enumerate(rows):
        if limits and index >= min(limits):
            break
        mapping = mapping or check_prompt_columns(spec, list(row), cfg.stage)
        counts.read += 1
        try:
            out.append(convert_prompt_row(spec.format, row, spec, mapping))
        except DropRow as drop:
            counts.drop(drop.reason)
        except DataError as exc:
            raise DataError(f"dataset {spec.name!r} ({spec.path}), row {index} (0-based): {exc}") from None
    if counts.read == 0:
        raise DataError(f"dataset {spec.name!r} ({spec.path}): no rows to read")
    return out


def encode_prompts(
    rows: list[dict], template: ChatTemplate, tokenizer: Any, cutoff_len: int, counts: DatasetCounts
) -> dict[str, list]:
    """Prompt ids per row; prompts longer than cutoff_len are dropped and counted. Special-token text typed in a
    prompt stays plain text (encode_prompt); such rows are counted and warned about (QUALITY A16)."""
    kept: dict[str, list] = {"prompt_ids": [], "messages": [], "reference": []}
    for row in rows:
        counts.control_text += has_control_text(tokenizer, row["messages"])
        ids = template.encode_prompt(tokenizer, row["messages"], row["tools"])
        if len(ids) > cutoff_len:
            counts.drop("prompt longer than cutoff_len")
            continue
        kept["prompt_ids"].append(ids)
        kept["messages"].append(json.dumps(row["messages"], ensure_ascii=False))
        kept["reference"].append(row["reference"])
    counts.kept = len(kept["prompt_ids"])
    if counts.control_text:
        logger.warning(
            "%s: %d prompts contain special-token text; it is encoded as plain text", counts.name, counts.control_text
        )
    counts.require_examples()
    return kept


def build_prompt_datasets(cfg: RunConfig, tokenizer: Any, template: ChatTemplate) -> PromptBundle:
    """The prompt dataset of a ppo/grpo run plus a report of what was read, kept and dropped."""
    import datasets

    report = DataReport(stage=cfg.stage, template=template.name)
    columns: dict[str, list] = {"prompt_ids": [], "messages": [], "reference": []}
    for spec in resolve_specs(cfg.data.datasets, cfg.data, "data.datasets"):
        counts = DatasetCounts(spec.name)
        report.datasets.append(counts)
        encoded = encode_prompts(
            read_prompts(spec, cfg, counts, report), template, tokenizer, cfg.data.cutoff_len, counts
        )
        for key, values in encoded.items():
            columns[key] += values
        report.lengths += [len(ids) for ids in encoded["prompt_ids"]]
    features = datasets.Features(
        {
            "prompt_ids": datasets.List(datasets.Value("int32")),
            "messages": datasets.Value("string"),
            "reference": datasets.Value("string"),
        }
    )
    train = datasets.Dataset.from_dict(columns, features=features)
    report.train_rows = len(train)
    for line in report.lines():
        logger.info(line)
    return PromptBundle(train, report)


def preview_prompts(cfg: RunConfig, tokenizer: Any, n: int, dump: str | None) -> None:
    """`lmforge data preview` for ppo/grpo: the first n prompts exactly as rollouts are prompted, with references."""
    from lmforge.templates import get_template

    bundle = build_prompt_datasets(
        cfg, tokenizer, get_template(cfg.data.template, tokenizer, cfg.data.template_options)
    )
    for i, row in enumerate(bundle.train.select(range(min(n, len(bundle.train))))):
        print(f"--- prompt {i}: {len(row['prompt_ids'])} tokens; reference: {row['reference']!r}")
        print(tokenizer.decode(row["prompt_ids"], skip_special_tokens=False))
    print("\n".join(bundle.report.lines()))
    if dump:
        with open(dump, "w", encoding="utf-8") as fh:
            for row in bundle.train:
                fh.write(json.dumps({"prompt_ids": row["prompt_ids"], "reference": row["reference"]}) + "\n")
        print(f"wrote {len(bundle.train)} prompts to {dump}")

"""Loss and perplexity on a dataset, encoded exactly as training encodes it (QUALITY C19).

The loss is token-weighted: the sum of the negative log-likelihoods of every label token divided by the number of
label tokens, over the whole dataset. Padding carries no label, and per-row sums are accumulated in float64, so the
result does not depend on the batch size (batch 1 and 8 agree within 1e-6). A mean of per-batch means would not:
it weights a short example in a batch of short examples more than one batched with long examples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from lmforge.config.schema import DataConfig
from lmforge.data import encode
from lmforge.data.encode import IGNORE_INDEX
from lmforge.evaluation.data import EvalSource, require_rows
from lmforge.utils.errors import DataError

if TYPE_CHECKING:
    from lmforge.templates import ChatTemplate

Row = dict[str, list[int]]


def encode_rows(
    source: EvalSource, stage: str, tokenizer: Any, template: ChatTemplate | None, data: DataConfig
) -> list[Row]:
    """sft: masked conversations (drops counted with training's reasons); pt: EOS-joined cutoff_len blocks."""
    if stage == "pt":
        docs = (encode.encode_document(row["text"], tokenizer) for row in source.rows)
        rows = [{"input_ids": b, "labels": list(b)} for b in encode.group_blocks(docs, data.cutoff_len) if len(b) > 1]
    else:
        rows = []
        for row in _encode_conversations(source, encode.require_template(template), tokenizer, data):
            if row["_drop"]:
                source.counts.drop(row["_drop"])
            else:
                rows.append({"input_ids": row["input_ids"], "labels": row["labels"]})
    source.counts.kept = len(rows)
    require_rows(source)
    return rows


def _encode_conversations(source: EvalSource, template: ChatTemplate, tokenizer: Any, data: DataConfig) -> list[dict]:
    """All rows in one batch; on an error, row by row so the message names the row."""
    try:
        return encode.encode_conversations(source.rows, template, tokenizer, data)
    except DataError:
        pass
    out = []
    for index, conv in enumerate(source.rows):
        try:
            out.append(encode.encode_conversation(conv, template, tokenizer, data))
        except DataError as exc:
            spec = source.spec
            raise DataError(f"dataset {spec.name!r} ({spec.path}), conversation {index} (0-based): {exc}") from None
    return out


def _batches(rows: list[Row], batch_size: int) -> Iterator[list[int]]:
    """Row indices in length order (less padding), batch_size at a time."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _pad_right(rows: list[Row], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r["input_ids"]) for r in rows)
    ids = [list(r["input_ids"]) + [pad_id] * (width - len(r["input_ids"])) for r in rows]
    mask = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
    return torch.tensor(ids), torch.tensor(mask)


@torch.no_grad()
def row_losses(
    model: Any, rows: list[Row], batch_size: int, pad_id: int, progress: Any = None
) -> list[tuple[float, int]]:
    """(summed NLL in float64, label-token count) per row, in the rows' order.

    Right padding with an attention mask keeps every real token at its training position; each row's logits are
    cut to its own length before the loss, so padding never enters it.
    """
    results: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
    device = model.device
    for indices in _batches(rows, batch_size):
        batch = [rows[i] for i in indices]
        input_ids, mask = _pad_right(batch, pad_id)
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
        for k, (i, row) in enumerate(zip(indices, batch, strict=True)):
            n = len(row["input_ids"])
            labels = torch.tensor(row["labels"][1:], device=device)  # token t predicts token t + 1
            nll = torch.nn.functional.cross_entropy(
                logits[k, : n - 1].float(), labels, ignore_index=IGNORE_INDEX, reduction="none"
            )
            results[i] = (float(nll.double().sum()), int((labels != IGNORE_INDEX).sum()))
        if progress is not None:
            progress.update(len(indices))
    return results


def summarize(losses: list[tuple[float, int]]) -> dict[str, float]:
    """Token-weighted loss and its perplexity."""
    total = sum(nll for nll, _ in losses)
    tokens = sum(n for _, n in losses)
    loss = total / tokens if tokens else float("nan")
    return {"loss": loss, "perplexity": math.exp(loss) if tokens else float("nan"), "tokens": tokens}

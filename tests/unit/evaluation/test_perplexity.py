"""Perplexity: the loss equals a by-hand computation, and is token-weighted so batch 1 and 8 agree (C19)."""

from __future__ import annotations

import math

import pytest
import torch

from lmforge.config.schema import DataConfig, DatasetSpec
from lmforge.data.encode import IGNORE_INDEX
from lmforge.data.report import DatasetCounts
from lmforge.evaluation import perplexity
from lmforge.evaluation.data import EvalSource
from lmforge.inference.engine import ChatEngine

ANSWERS = ["Yes.", "Paris is the capital of France.", "4", "No, it is not.", "A long answer " * 12, "OK"]
QUESTIONS = ["Is it?", "Capital of France?", "2 + 2?", "Is the sky green?", "Talk a while.", "Fine?", "Why " * 9]


def _conversations() -> list[dict]:
    """11 conversations of very different lengths (some multi-turn)."""
    convs = []
    for i in range(11):
        q, a = QUESTIONS[i % len(QUESTIONS)], ANSWERS[i % len(ANSWERS)]
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if i % 3 == 0:
            messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, *messages]
        convs.append({"messages": messages, "tools": None})
    return convs


def _rows(engine: ChatEngine) -> list[dict]:
    source = EvalSource(DatasetSpec(name="t", path="t"), _conversations(), DatasetCounts("t"))
    return perplexity.encode_rows(source, "sft", engine.tokenizer, engine.template, DataConfig(cutoff_len=512))


def test_loss_equals_hand_computed_negative_log_likelihood(engine: ChatEngine) -> None:
    """Each row alone through the model; -log softmax at every label token, summed and divided by hand."""
    rows = _rows(engine)[:3]
    total, count = 0.0, 0
    for row in rows:
        with torch.no_grad():
            logits = engine.model(input_ids=torch.tensor([row["input_ids"]])).logits[0].double()
        for t in range(1, len(row["input_ids"])):
            if row["labels"][t] != IGNORE_INDEX:
                total -= torch.log_softmax(logits[t - 1], dim=-1)[row["labels"][t]].item()
                count += 1
    result = perplexity.summarize(perplexity.row_losses(engine.model, rows, 3, engine.pad_id))
    assert result["tokens"] == count
    assert result["loss"] == pytest.approx(total / count, abs=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-6)


def test_only_response_tokens_are_scored_in_sft(engine: ChatEngine) -> None:
    rows = _rows(engine)
    trained = [t for row in rows for t in row["labels"][1:] if t != IGNORE_INDEX]
    assert 0 < len(trained) < sum(len(row["input_ids"]) for row in rows) // 2
    eot = engine.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert trained.count(eot) == sum(len(c["messages"]) // 2 for c in _conversations())  # every reply's end


def test_batch_size_1_and_8_agree_on_variable_lengths(engine: ChatEngine) -> None:
    """C19: padding excluded, token-weighted; the negative control shows a batch-mean average would differ."""
    rows = _rows(engine)
    lengths = [len(r["input_ids"]) for r in rows]
    assert max(lengths) > 3 * min(lengths)  # batches of 8 really are padded
    one = perplexity.row_losses(engine.model, rows, 1, engine.pad_id)
    eight = perplexity.row_losses(engine.model, rows, 8, engine.pad_id)
    assert abs(perplexity.summarize(one)["loss"] - perplexity.summarize(eight)["loss"]) < 1e-6

    def mean_of_batch_means(losses: list[tuple[float, int]], size: int) -> float:
        order = sorted(range(len(rows)), key=lambda i: lengths[i])
        batches = [order[k : k + size] for k in range(0, len(order), size)]
        means = [sum(losses[i][0] for i in b) / sum(losses[i][1] for i in b) for b in batches]
        return sum(means) / len(means)

    assert abs(mean_of_batch_means(one, 1) - mean_of_batch_means(eight, 8)) > 1e-4


def test_padding_would_change_the_loss_if_it_were_scored(engine: ChatEngine) -> None:
    """Negative control for padding exclusion: labelling pad positions moves the loss by far more than 1e-6."""
    rows = _rows(engine)[:2]
    width = max(len(r["input_ids"]) for r in rows)
    padded = [
        {
            "input_ids": r["input_ids"] + [engine.pad_id] * (width - len(r["input_ids"])),
            "labels": r["labels"] + [engine.pad_id] * (width - len(r["labels"])),
        }
        for r in rows
    ]
    clean = perplexity.summarize(perplexity.row_losses(engine.model, rows, 2, engine.pad_id))["loss"]
    dirty = perplexity.summarize(perplexity.row_losses(engine.model, padded, 2, engine.pad_id))["loss"]
    assert abs(clean - dirty) > 1e-3


def test_pt_text_is_scored_in_cutoff_blocks(engine: ChatEngine) -> None:
    source = EvalSource(
        DatasetSpec(name="t", path="t"), [{"text": "word " * 50}, {"text": "more text"}], DatasetCounts("t")
    )
    rows = perplexity.encode_rows(source, "pt", engine.tokenizer, None, DataConfig(cutoff_len=16))
    assert all(len(r["input_ids"]) <= 16 and r["labels"] == r["input_ids"] for r in rows)
    result = perplexity.summarize(perplexity.row_losses(engine.model, rows, 4, engine.pad_id))
    assert result["tokens"] == sum(len(r["input_ids"]) - 1 for r in rows)

"""Prefill planning: rows sharing a prompt prefix compute it once, other rows are batched by length; the planned
prefill gives transformers' own logits and prompt scores for every row (negative control: a wrongly shared prefix)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from lmforge.inference import decoding, prefill_plan
from lmforge.inference.prefill_plan import MAX_PADDING, MIN_SHARED, Part, plan
from lmforge.models.adapters import load_base_model


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Any:
    return load_base_model(str(tiny_model_dir), torch.float32).eval()


def _tokens(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(3, 200) for _ in range(n)]


def _template_prompts(rng: random.Random) -> list[list[int]]:
    """Two templates' requests (40 and 20 shared tokens) and unrelated prompts of mixed lengths, shuffled."""
    few_shot, header = _tokens(rng, 40), _tokens(rng, 20)
    prompts = [few_shot + _tokens(rng, n) for n in (3, 9, 1, 5)] + [header + _tokens(rng, n) for n in (2, 7)]
    prompts += [_tokens(rng, n) for n in (12, 90, 85, 4)]
    rng.shuffle(prompts)
    return prompts


def test_rows_sharing_a_template_prefix_are_grouped_once_and_the_rest_batched_by_length() -> None:
    prompts = _template_prompts(random.Random(0))
    parts = plan(prompts)
    assert sorted(r for part in parts for r in part.rows) == list(range(len(prompts)))  # every row exactly once
    shared = sorted((len(p.rows), p.shared) for p in parts if p.shared)
    assert shared == [(2, 20), (4, 40)]
    for part in parts:
        lengths = [len(prompts[r]) for r in part.rows]
        assert all(prompts[r][: part.shared] == prompts[part.rows[0]][: part.shared] for r in part.rows)
        if not part.shared and len(lengths) > 1:  # a length batch pads at most MAX_PADDING per real token
            assert len(lengths) * max(lengths) <= MAX_PADDING * sum(lengths)
    lengths_batches = [sorted(len(prompts[r]) for r in p.rows) for p in parts if not p.shared]
    assert [85, 90] in lengths_batches  # the two long prompts together, apart from the short ones


def test_identical_prompts_keep_their_last_token_and_short_common_prefixes_are_not_shared() -> None:
    prompt = list(range(3, 3 + MIN_SHARED + 5))
    assert plan([prompt, prompt, prompt]) == [Part([0, 1, 2], len(prompt) - 1)]
    short = list(range(3, 3 + MIN_SHARED - 1))  # a common prefix under MIN_SHARED is not worth a part
    assert all(not p.shared for p in plan([[*short, 1], [*short, 2]]))


def _reference(model: Any, prompt: list[int]) -> torch.Tensor:
    """Log-softmax of transformers' own forward over the whole prompt, alone."""
    return torch.log_softmax(model(input_ids=torch.tensor([prompt])).logits[0].float(), dim=-1)


@torch.inference_mode()
def test_planned_prefill_gives_each_row_its_own_forward_logits(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = _template_prompts(random.Random(1))
    n = len(prompts)
    assert any(p.shared for p in plan(prompts))
    state, _ = decoding.prefill(model, prompts, 0, [None] * n, [None] * n)
    for row, prompt in enumerate(prompts):
        want = _reference(model, prompt)[-1]
        torch.testing.assert_close(torch.log_softmax(state.logits[row], -1), want, atol=1e-4, rtol=1e-4)
    # the batch decodes on as one: 10 greedy steps equal a plain single-batch prefill's
    monkeypatch.setattr(prefill_plan, "plan", lambda p: [Part(list(range(len(p))))])  # one plain batch
    plain, _ = decoding.prefill(model, prompts, 0, [None] * n, [None] * n)
    for _ in range(10):
        tokens = state.logits.argmax(-1)
        assert torch.equal(tokens, plain.logits.argmax(-1))
        decoding.step(model, state, tokens)
        decoding.step(model, plain, tokens)
    torch.testing.assert_close(state.logits, plain.logits, atol=1e-4, rtol=1e-4)


@torch.inference_mode()
def test_a_wrongly_shared_prefix_is_caught_by_the_reference(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(2)
    prompts = [_tokens(rng, 30) for _ in range(2)]  # nothing in common
    monkeypatch.setattr(prefill_plan, "plan", lambda p: [Part([0, 1], 20)])  # row 1 made to continue row 0's
    state, _ = decoding.prefill(model, prompts, 0, [None, None], [None, None])
    want = _reference(model, prompts[1])[-1]
    assert not torch.allclose(torch.log_softmax(state.logits[1], -1), want, atol=1e-2)


@torch.inference_mode()
def test_scored_prompts_sharing_a_context_or_not_equal_transformers_log_softmax(model: Any) -> None:
    rng = random.Random(3)
    context = _tokens(rng, 40)  # multiple choice as lm-eval sends it: one context, one request per choice
    prompts = [context + _tokens(rng, n) for n in (2, 5, 1, 3)] + [_tokens(rng, n) for n in (70, 4, 66, 9)]
    parts = plan(prompts)
    assert [p.shared for p in parts if p.shared] == [40] and len(parts) > 2  # shared, and batched by length
    _, scores = decoding.prefill(model, prompts, 0, [None] * 8, [1] * 8)
    for prompt, score in zip(prompts, scores, strict=True):
        assert score is not None and score[0].logprob is None and len(score) == len(prompt)
        want = _reference(model, prompt)[:-1].gather(-1, torch.tensor(prompt[1:])[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor([s.logprob for s in score[1:]]), want, atol=1e-4, rtol=1e-4)

"""`decoding.token_logprobs` against torch's own log-softmax, across the chunks it splits long inputs into."""

from __future__ import annotations

import pytest
import torch

from lmforge.inference import decoding


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoding, "_CPU_CHUNK_ELEMENTS", 3 * 50)  # 3 positions per chunk for a 50-token vocabulary


def _reference(logits: torch.Tensor, tokens: torch.Tensor, tops: list[int]) -> list[tuple[float, list[int]]]:
    logp = torch.log_softmax(logits, dim=-1)
    return [
        (float(logp[i, t]), logp[i].topk(k).indices.tolist() if k else [])
        for i, (t, k) in enumerate(zip(tokens.tolist(), tops, strict=True))
    ]


@pytest.mark.parametrize("tops", [[1] * 10, [3] * 10, [0, 1, 2, 3, 0, 1, 2, 3, 0, 5]])
@pytest.mark.usefixtures("chunked")
def test_token_logprobs_equal_log_softmax_across_chunks(tops: list[int]) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(10, 50, generator=generator) * 4
    tokens = torch.randint(0, 50, (10,), generator=generator)
    got = decoding.token_logprobs(logits, tokens, tops)
    want = _reference(logits, tokens, tops)
    assert [e.token for e in got] == tokens.tolist()
    assert [e.logprob for e in got] == pytest.approx([lp for lp, _ in want], abs=1e-6)
    assert [[i for i, _ in e.top] for e in got] == [ids for _, ids in want]
    logp = torch.log_softmax(logits, dim=-1)
    assert all(v == pytest.approx(float(logp[row, i]), abs=1e-6) for row, e in enumerate(got) for i, v in e.top)
    # negative control: the same scores read one position off (the alignment a chunking bug would produce) differ
    shifted = _reference(logits.roll(1, dims=0), tokens, tops)
    assert [e.logprob for e in got] != pytest.approx([lp for lp, _ in shifted], abs=1e-6)


def test_token_logprobs_of_nothing_is_empty() -> None:
    assert decoding.token_logprobs(torch.zeros(0, 50), torch.zeros(0, dtype=torch.long), []) == []

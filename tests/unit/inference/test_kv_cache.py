"""The decode loop's roomy key/value cache against transformers' own DynamicCache: same logits step by step, through
rows leaving, rows joining and padding trimmed; steps write in place, and the room grows O(log n) times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import DynamicCache

from lmforge.inference import decoding
from lmforge.inference.kv_cache import MIN_SPARE, RoomyCache, RoomyLayer
from lmforge.models.adapters import load_base_model


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Any:
    return load_base_model(str(tiny_model_dir), torch.float32).eval()


def _prompts(model: Any, lengths: tuple[int, ...]) -> list[list[int]]:
    generator = torch.Generator().manual_seed(3)
    return [torch.randint(3, model.config.vocab_size, (n,), generator=generator).tolist() for n in lengths]


def _reference_logits(model: Any, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    """Next-token logits after each of `tokens`, decoded alone on transformers' DynamicCache (torch.cat growth)."""
    ids = torch.tensor([prompt])
    cache, rows = DynamicCache(), []
    out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    for token in tokens:
        out = model(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
        rows.append(out.logits[0, -1])
    return torch.stack(rows)


@torch.inference_mode()
def test_batched_decoding_on_the_roomy_cache_equals_dynamic_cache_alone(model: Any) -> None:
    prompts = _prompts(model, (17, 5, 9)) + _prompts(model, (30, 2))  # row 0 the longest: trimmed
    state, _ = decoding.prefill(model, prompts[:3], 0, [None] * 3, [None] * 3)
    assert isinstance(state.cache, RoomyCache)
    live = [0, 1, 2]
    fed: list[list[int]] = [[] for _ in prompts]
    logits: list[list[torch.Tensor]] = [[] for _ in prompts]
    for step in range(80):  # past MIN_SPARE, so the room grows on the way
        if step == 10:  # row 0 leaves; the padding no row needs any more is trimmed
            decoding.keep_rows(state, [1, 2])
            live = [1, 2]
        if step == 20:  # two rows join: the caches merge
            joined, _ = decoding.prefill(model, prompts[3:], 0, [None] * 2, [None] * 2)
            state, live = decoding.merge(state, joined), [*live, 3, 4]
        tokens = state.logits.argmax(-1)
        decoding.step(model, state, tokens)
        for row, token, row_logits in zip(live, tokens.tolist(), state.logits, strict=True):
            fed[row].append(token)
            logits[row].append(row_logits)
    for row, prompt in enumerate(prompts):
        want = _reference_logits(model, prompt, fed[row])
        torch.testing.assert_close(torch.stack(logits[row]), want, atol=2e-5, rtol=1e-4)
    # negative control: a cache that lost the prompt's first column gives other logits
    lost = _reference_logits(model, prompts[1][1:], fed[1])
    assert not torch.allclose(torch.stack(logits[1]), lost, atol=1e-3)


@torch.inference_mode()
def test_decode_steps_write_in_place_and_the_room_grows_logarithmically(model: Any) -> None:
    state, _ = decoding.prefill(model, _prompts(model, (4, 6)), 0, [None] * 2, [None] * 2)
    layer = state.cache.layers[0]
    assert isinstance(layer, RoomyLayer)

    def buffer() -> torch.UntypedStorage:  # `keys` is a view of the layer's buffer
        return layer.keys.untyped_storage()

    moves, pointer = 0, buffer().data_ptr()
    for _ in range(600):
        decoding.step(model, state, state.logits.argmax(-1))
        if buffer().data_ptr() != pointer:
            moves, pointer = moves + 1, buffer().data_ptr()
    assert layer.get_seq_length() == 606 == layer.keys.shape[-2]
    assert 1 <= moves <= 6  # growth by half: 6 -> 70 -> 105 -> ... -> 606 in a handful of copies, not 600
    columns = buffer().nbytes() // (layer.keys[:, :, :1].numel() * layer.keys.element_size())
    assert 606 < columns <= 606 + max(MIN_SPARE, 606 // 2)  # spare room at most half the filled length


def test_merged_rows_are_right_aligned_with_zero_padding() -> None:
    def layer_of(rows: int, length: int, fill: float) -> RoomyLayer:
        layer = RoomyLayer()
        layer.update(torch.full((rows, 2, length, 4), fill), torch.full((rows, 2, length, 4), -fill))
        return layer

    merged = RoomyCache.merged(RoomyCache([layer_of(2, 3, 1.0)]), RoomyCache([layer_of(1, 5, 2.0)]), width=5)
    keys = merged.layers[0].keys
    assert keys.shape == (3, 2, 5, 4)
    assert keys[:2, :, :2].eq(0).all() and keys[:2, :, 2:].eq(1).all() and keys[2].eq(2).all()
    assert merged.layers[0].values[2].eq(-2).all()
    layer = merged.layers[0]
    layer.drop_leading(2)  # padding every row left behind: dropped without a copy
    assert layer.keys.shape[-2] == 3 and layer.keys[:2].eq(1).all()

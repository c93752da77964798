"""Per-sample SDPA on packed rows equals separate forwards, and is stock SDPA for everything else."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, Qwen2Config, Qwen2ForCausalLM

from lmforge.models.attention import (
    PACKED_SDPA,
    packed_segment_bounds,
    register_packed_sdpa,
    supports_packed_sdpa,
)

SIZES = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def tiny(arch: str, attn: str) -> torch.nn.Module:
    register_packed_sdpa()
    torch.manual_seed(0)
    if arch == "llama":  # grouped-query attention: 2 key/value heads for 4 query heads
        model = LlamaForCausalLM(LlamaConfig(num_key_value_heads=2, use_cache=False, **SIZES))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(num_key_value_heads=4, use_cache=False, **SIZES))
    model.set_attn_implementation(attn)
    return model


def packed_batch(lengths: tuple[int, ...], restart: bool = True) -> tuple[list[torch.Tensor], dict]:
    torch.manual_seed(1)
    docs = [torch.randint(0, 128, (n,)) for n in lengths]
    # the negative control (restart=False) lets positions run on across samples
    positions = torch.cat([torch.arange(n) for n in lengths]) if restart else torch.arange(sum(lengths))
    return docs, {"input_ids": torch.cat(docs)[None], "position_ids": positions[None]}


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_packed_row_logits_and_grads_equal_separate_forwards(arch: str) -> None:
    model = tiny(arch, PACKED_SDPA)
    docs, batch = packed_batch((5, 9, 3))
    packed = model(**batch).logits[0]
    packed.sum().backward()
    packed_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    separate = torch.cat([model(input_ids=d[None]).logits[0] for d in docs])
    separate.sum().backward()
    torch.testing.assert_close(packed, separate, atol=1e-5, rtol=0)
    for name, param in model.named_parameters():
        torch.testing.assert_close(packed_grads[name], param.grad, atol=1e-5, rtol=1e-5, msg=name)


def test_negative_control_without_position_restart_leaks_across_samples() -> None:
    model = tiny("llama", PACKED_SDPA)
    docs, batch = packed_batch((5, 9, 3), restart=False)
    packed = model(**batch).logits[0]
    separate = torch.cat([model(input_ids=d[None]).logits[0] for d in docs])
    assert (packed - separate).abs().max() > 1e-3


def test_padded_batch_matches_stock_sdpa_exactly() -> None:
    ids = torch.randint(0, 128, (3, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    ours = tiny("llama", PACKED_SDPA)(input_ids=ids, attention_mask=mask).logits
    stock = tiny("llama", "sdpa")(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(ours, stock)


def test_generation_with_kv_cache_matches_stock_sdpa() -> None:
    prompt = torch.randint(0, 128, (2, 6))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1] * 6])  # left padding
    args = dict(attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0, use_cache=True)
    ours = tiny("llama", PACKED_SDPA).generate(prompt, **args)
    stock = tiny("llama", "sdpa").generate(prompt, **args)
    assert torch.equal(ours, stock)


@pytest.mark.parametrize(
    ("positions", "q_len", "kv_len", "expected"),
    [
        ([[0, 1, 2, 0, 1, 0]], 6, 6, [0, 3, 5, 6]),
        ([[0, 1, 2, 3]], 4, 4, None),  # one sample: stock SDPA
        ([[0, 1, 0, 1], [0, 1, 2, 3]], 4, 4, None),  # several rows: padded batch
        ([[1, 1, 0, 1]], 4, 4, None),  # left-padded positions
        ([[0, 2, 0, 1]], 4, 4, None),  # not consecutive
        ([[0, 1, 0, 1]], 1, 4, None),  # decoding with a cache
    ],
)
def test_packed_segment_bounds(positions, q_len: int, kv_len: int, expected) -> None:
    assert packed_segment_bounds(torch.tensor(positions), q_len, kv_len) == expected


def test_sliding_window_models_keep_stock_attention() -> None:
    assert supports_packed_sdpa(LlamaConfig(**SIZES))
    assert not supports_packed_sdpa(MistralConfig(sliding_window=16, **SIZES))

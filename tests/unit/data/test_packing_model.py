"""C7: packed documents with per-document position ids behave exactly like separate forwards."""

from __future__ import annotations

import pytest

from lmforge.data.collators import collate_padding_free

torch = pytest.importorskip("torch")
LENGTHS = (5, 9, 3)


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=128,
        max_position_embeddings=64,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config).float().eval()


def _docs() -> list[dict[str, list[int]]]:
    gen = torch.Generator().manual_seed(1)
    docs = [torch.randint(1, 128, (n,), generator=gen).tolist() for n in LENGTHS]
    return [{"input_ids": d, "labels": list(d)} for d in docs]


def _token_losses(logits, labels):
    """Summed next-token loss (labels shifted inside, like transformers)."""
    return torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="sum")


def _separate(model, docs):
    logits, loss = [], 0.0
    for doc in docs:
        ids = torch.tensor([doc["input_ids"]])
        out = model(input_ids=ids).logits
        logits.append(out[0])
        loss = loss + _token_losses(out, ids)
    return torch.cat(logits), loss


def test_packed_forward_equals_separate_forwards():
    model, docs = _tiny_llama(), _docs()
    batch = collate_padding_free(docs)
    assert batch["input_ids"].shape == (1, 17) and "attention_mask" not in batch
    assert batch["labels"][0, [0, 5, 14]].tolist() == [-100, -100, -100]  # no cross-document target
    packed_logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    ref_logits, ref_loss = _separate(model, docs)
    torch.testing.assert_close(packed_logits[0], ref_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(_token_losses(packed_logits, batch["labels"]), ref_loss, atol=1e-5, rtol=1e-6)


def test_packed_gradients_equal_summed_per_document_gradients():
    model, docs = _tiny_llama(), _docs()
    batch = collate_padding_free(docs)
    _token_losses(
        model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits,
        batch["labels"],
    ).backward()
    packed = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    _separate(model, docs)[1].backward()
    for got, want in zip(packed, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_negative_control_without_position_reset_is_not_isolated():
    model, docs = _tiny_llama(), _docs()
    batch = collate_padding_free(docs)
    running = torch.arange(17).unsqueeze(0)
    leaked = model(input_ids=batch["input_ids"], position_ids=running, use_cache=False).logits
    ref_logits, _ = _separate(model, docs)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(leaked[0], ref_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(leaked[0, :5], ref_logits[:5], atol=1e-5, rtol=0)  # first doc sees nothing earlier

"""The inference engine: training-identical prompt ids, full stop set, batched == one-by-one greedy decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.inference.decoding import pad_left
from lmforge.inference.engine import ChatEngine, GenerationOptions, load_engine
from lmforge.models.adapters import load_base_model
from lmforge.templates import get_template
from lmforge.utils.errors import ConfigError
from tests.fixtures.tokenizers import load_fixture_tokenizer

CONVERSATION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 3 + 3?"},
    {"role": "assistant", "content": "6."},
]
GREEDY = GenerationOptions(temperature=0, max_new_tokens=12)
PROMPT_LENGTHS = (3, 40, 7, 12, 25, 5, 33, 18)  # 8 prompts, 3-40 tokens


@pytest.mark.parametrize("family, template_name", [("llama3", "llama3"), ("llama3", "auto"), ("qwen", "auto")])
def test_chat_prompt_ids_equal_training_prefix_ids(family: str, template_name: str) -> None:
    """C3/C17: what chat sends for messages[:-1] is exactly the training prefix of the last reply."""
    tokenizer = load_fixture_tokenizer(family)
    template = get_template(template_name, tokenizer)
    encoded = template.encode(tokenizer, CONVERSATION)
    prefix = encoded.input_ids[: encoded.replies[-1][0]]
    engine = ChatEngine(None, tokenizer, template)  # prompt building needs no model
    ids = engine.prompt_ids(CONVERSATION[:-1])
    assert ids == prefix
    if tokenizer.bos_token_id is not None and family == "llama3":
        assert ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id


def test_stop_set_includes_end_of_turn_and_eos() -> None:
    tokenizer = load_fixture_tokenizer("llama3")
    engine = ChatEngine(None, tokenizer, get_template("llama3", tokenizer))
    assert tokenizer.convert_tokens_to_ids("<|eot_id|>") in engine.stop_ids
    assert tokenizer.eos_token_id in engine.stop_ids


def _tiny_engine(model_dir: Path, tokenizer: object) -> ChatEngine:
    return ChatEngine(load_base_model(str(model_dir), torch.float32), tokenizer, get_template("auto", tokenizer))


def _prompts(vocab: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in PROMPT_LENGTHS]


@pytest.mark.parametrize("pad_is_eos", [False, True])
def test_batched_left_padded_greedy_equals_one_by_one(tiny_model_dir: Path, pad_is_eos: bool) -> None:
    """C16, whatever the tokenizer's padding side; with pad == eos as well."""
    tokenizer = load_fixture_tokenizer("qwen")
    tokenizer.padding_side = "right"
    if pad_is_eos:
        tokenizer.pad_token = tokenizer.eos_token
    engine = ChatEngine(
        load_base_model(str(tiny_model_dir), torch.float32), tokenizer, get_template("auto", tokenizer)
    )
    assert (engine.pad_id == tokenizer.eos_token_id) is pad_is_eos
    prompts = _prompts(len(tokenizer))
    batched = engine.generate_ids(prompts, GREEDY)
    single = [engine.generate_ids([p], GREEDY)[0] for p in prompts]
    assert batched == single
    assert sum(len(r) for r in single) > 8 * 3  # real continuations, not immediate stops


def test_right_padding_breaks_batched_generation(tiny_model_dir: Path) -> None:
    """Negative control for the test above: the comparison does notice wrong padding."""
    tokenizer = load_fixture_tokenizer("qwen")
    engine = ChatEngine(
        load_base_model(str(tiny_model_dir), torch.float32), tokenizer, get_template("auto", tokenizer)
    )
    prompts = _prompts(len(tokenizer))
    left_ids, left_mask = pad_left(prompts, engine.pad_id)
    right_ids = torch.stack([torch.cat([r[m.bool()], r[~m.bool()]]) for r, m in zip(left_ids, left_mask, strict=True)])
    right_mask = torch.stack([torch.cat([m[m.bool()], m[~m.bool()]]) for m in left_mask])
    greedy = {"do_sample": False, "max_new_tokens": GREEDY.max_new_tokens, "temperature": None, "top_p": None}
    out = engine.model.generate(
        input_ids=right_ids,
        attention_mask=right_mask,
        eos_token_id=engine.stop_ids,
        pad_token_id=engine.pad_id,
        **greedy,
    )[:, right_ids.shape[1] :]
    stops = set(engine.stop_ids)
    cut = [next((r[:i] for i, t in enumerate(r) if t in stops), r) for r in out.tolist()]
    assert cut != [engine.generate_ids([p], GREEDY)[0] for p in prompts]


def test_streamed_reply_equals_generated_reply(tiny_model_dir: Path) -> None:
    engine = load_engine(str(tiny_model_dir), dtype="float32")
    messages = [{"role": "user", "content": "Tell me something."}]
    assert "".join(engine.stream(messages, GREEDY)) == engine.generate(messages, GREEDY)
    sampled = GenerationOptions(temperature=1.0, seed=3, max_new_tokens=8)
    assert engine.generate(messages, sampled) == engine.generate(messages, sampled)  # seeded sampling repeats


def test_auto_template_without_chat_template_lists_names(tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer = load_fixture_tokenizer("qwen")
    tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match=r"choose a named template.*chatml"):
        load_engine(str(tmp_path))

"""Every generation path (engine ids/text/stream, eval predictions, RL rollouts, the API) decodes greedily exactly as
transformers' own `generate` does on each prompt alone, cut before the first stop id (QUALITY C16, E2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch

from lmforge.evaluation import generation
from lmforge.inference.engine import ChatEngine, GenerationOptions, load_engine
from lmforge.inference.server import create_app
from lmforge.rl.rollout import generate_rollout, sampling_options
from tests.fixtures.server import running_server

MAX_NEW = 10
PROMPT_LENGTHS = (3, 40, 7, 12, 25, 5)
QUESTIONS = ["Hello there.", "What is a cat?", "Name three colours, please.", "Why?"]
GREEDY = GenerationOptions(temperature=0, max_new_tokens=MAX_NEW)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> ChatEngine:
    return load_engine(str(tiny_model_dir), dtype="float32")


def _id_prompts(vocab: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in PROMPT_LENGTHS]


def _chat_prompts(engine: ChatEngine) -> list[list[int]]:
    return [engine.prompt_ids([{"role": "user", "content": q}]) for q in QUESTIONS]


@torch.no_grad()
def transformers_greedy(engine: ChatEngine, prompt: list[int], max_new: int = MAX_NEW) -> list[int]:
    """Ground truth: `model.generate` on the prompt alone (no padding), cut before its first stop id."""
    ids = torch.tensor([prompt])
    out = engine.model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=max_new,
        eos_token_id=engine.stop_ids,
        pad_token_id=engine.pad_id,
        temperature=None,
        top_p=None,
        top_k=None,
    )[0, ids.shape[1] :].tolist()
    return next((out[:i] for i, t in enumerate(out) if t in engine.stop_ids), out)


@pytest.fixture(scope="module")
def reference(engine: ChatEngine) -> dict[str, list[list[int]]]:
    prompts = {"ids": _id_prompts(len(engine.tokenizer)), "chat": _chat_prompts(engine)}
    out = {name: [transformers_greedy(engine, p) for p in ps] for name, ps in prompts.items()}
    assert sum(map(len, out["ids"])) > 3 * len(PROMPT_LENGTHS)  # real continuations, not immediate stops
    return {**out, **{f"{name}_prompts": ps for name, ps in prompts.items()}}


def _text(engine: ChatEngine, ids: list[list[int]]) -> list[str]:
    return [engine.tokenizer.decode(r, skip_special_tokens=True) for r in ids]


def test_engine_ids_text_and_stream_equal_transformers_greedy(engine: ChatEngine, reference: dict) -> None:
    assert engine.generate_ids(reference["ids_prompts"], GREEDY) == reference["ids"]
    conversations = [[{"role": "user", "content": q}] for q in QUESTIONS]
    expected = _text(engine, reference["chat"])
    assert engine.generate_batch(conversations, GREEDY) == expected
    assert [engine.generate(c, GREEDY) for c in conversations] == expected
    assert ["".join(engine.stream(c, GREEDY)) for c in conversations] == expected


def test_eval_predictions_equal_transformers_greedy(engine: ChatEngine, reference: dict) -> None:
    examples = [generation.Example(p, "") for p in reference["ids_prompts"]]
    assert generation.predict(engine, examples, GREEDY, batch_size=4) == _text(engine, reference["ids"])


def test_greedy_rollout_equals_transformers_greedy_with_its_stop_token(engine: ChatEngine, reference: dict) -> None:
    prompts = reference["chat_prompts"] + reference["ids_prompts"]
    greedy = sampling_options(MAX_NEW, 0.0, 1.0, 0)
    rollout = generate_rollout(engine.model, prompts, engine.stop_ids, engine.pad_id, greedy)
    stopped = [len(r) < MAX_NEW for r in reference["chat"] + reference["ids"]]
    assert rollout.ended.tolist() == stopped
    assert [ids[:-1] if end else ids for ids, end in zip(rollout.completion_ids, stopped, strict=True)] == (
        reference["chat"] + reference["ids"]
    )
    assert all(ids[-1] in engine.stop_ids for ids, end in zip(rollout.completion_ids, stopped, strict=True) if end)


@pytest.fixture(scope="module")
def client(engine: ChatEngine) -> Iterator[openai.OpenAI]:
    with running_server(create_app(engine, model_name="tiny", max_wait_ms=50)) as url:
        yield openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)


def test_api_replies_equal_transformers_greedy(client: openai.OpenAI, engine: ChatEngine, reference: dict) -> None:
    chat = [
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": q}], max_tokens=MAX_NEW, temperature=0
        ).choices[0]
        for q in QUESTIONS
    ]
    assert [c.message.content for c in chat] == _text(engine, reference["chat"])
    text = client.completions.create(model="tiny", prompt=reference["ids_prompts"], max_tokens=MAX_NEW, temperature=0)
    assert [c.text for c in sorted(text.choices, key=lambda c: c.index)] == _text(engine, reference["ids"])


def test_sampling_differs_from_the_greedy_reference(engine: ChatEngine, reference: dict) -> None:
    """Negative control: the comparisons above notice a path that does not decode greedily."""
    sampled = GenerationOptions(temperature=1.0, seed=0, max_new_tokens=MAX_NEW)
    assert engine.generate_ids(reference["ids_prompts"], sampled) != reference["ids"]
    shorter = [transformers_greedy(engine, p, MAX_NEW - 1) for p in reference["ids_prompts"]]
    assert shorter != reference["ids"]


@torch.no_grad()
def test_repetition_penalty_equals_transformers(engine: ChatEngine, reference: dict) -> None:
    """The loop's repetition penalty picks what transformers' RepetitionPenaltyLogitsProcessor does."""
    prompt = reference["ids_prompts"][1]
    ids = torch.tensor([prompt])
    out = engine.model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=MAX_NEW,
        repetition_penalty=1.5,
        eos_token_id=engine.stop_ids,
        pad_token_id=engine.pad_id,
        temperature=None,
        top_p=None,
        top_k=None,
    )[0, ids.shape[1] :].tolist()
    expected = next((out[:i] for i, t in enumerate(out) if t in engine.stop_ids), out)
    penalized = GenerationOptions(max_new_tokens=MAX_NEW, repetition_penalty=1.5)
    assert engine.generate_ids([prompt], penalized)[0] == expected
    assert expected != reference["ids"][1]  # the penalty changes this reply, so the comparison means something


def test_defaults_are_greedy_everywhere(client: openai.OpenAI, engine: ChatEngine, reference: dict) -> None:
    """One set of defaults: options with nothing set, and an API request without temperature, decode greedily."""
    assert engine.generate_ids(reference["ids_prompts"], GenerationOptions(max_new_tokens=MAX_NEW)) == reference["ids"]
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": QUESTIONS[0]}], max_tokens=MAX_NEW
    )
    assert reply.choices[0].message.content == _text(engine, reference["chat"][:1])[0]

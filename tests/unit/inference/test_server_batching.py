"""The batching worker: batched greedy rows equal one-by-one rows (C16, E2) with a negative control, rows joining a
running batch, stop ids, a failure mid-stream (B13), overload (E3) and client disconnects (E4)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch

from lmforge.inference import decoding
from lmforge.inference.batching import BatchWorker, Row, WorkerStopped
from lmforge.inference.engine import ChatEngine, GenerationOptions
from lmforge.inference.server import create_app
from lmforge.models.adapters import load_base_model
from lmforge.templates import get_template
from tests.fixtures.server import running_server
from tests.fixtures.tokenizers import load_fixture_tokenizer

PROMPT_LENGTHS = (3, 40, 7, 12, 25, 5, 33, 18)
GREEDY = GenerationOptions(max_new_tokens=12, temperature=0)
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> ChatEngine:
    tokenizer = load_fixture_tokenizer("qwen")
    tokenizer.padding_side = "right"  # the worker pads on the left itself, whatever the tokenizer says
    return ChatEngine(load_base_model(str(tiny_model_dir), torch.float32), tokenizer, get_template("auto", tokenizer))


def _prompts(vocab: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in PROMPT_LENGTHS]


def _run(worker: BatchWorker, prompts: list[list[int]], params: GenerationOptions, gap_s: float = 0.0) -> list[Any]:
    """Token ids and finish reason per prompt, submitted `gap_s` apart to a started worker."""
    results: list[Any] = [([], None) for _ in prompts]
    done = threading.Semaphore(0)

    def deliverer(i: int) -> Any:
        def deliver(event: tuple[str, Any]) -> None:
            if event[0] == "token":
                results[i][0].append(event[1][0])  # (id, log-probability or None)
            else:
                results[i] = (results[i][0], event[1])
                done.release()

        return deliver

    for i, prompt in enumerate(prompts):
        worker.submit([Row(prompt, params, deliverer(i))])
        time.sleep(gap_s)
    for _ in prompts:
        assert done.acquire(timeout=60)
    return results


def _worker(engine: ChatEngine, **kwargs: Any) -> BatchWorker:
    worker = BatchWorker(engine.model, engine.pad_id, engine.stop_ids, **kwargs)
    worker.start()
    return worker


@pytest.mark.parametrize("pad_is_eos", [False, True])
def test_batched_greedy_rows_equal_one_by_one_and_generate(engine: ChatEngine, pad_is_eos: bool) -> None:
    """C16/E2: 8 prompts of 3-40 tokens in one left-padded batch == each alone == transformers generate."""
    if pad_is_eos:
        tokenizer = load_fixture_tokenizer("qwen")
        tokenizer.pad_token = tokenizer.eos_token
        engine = ChatEngine(engine.model, tokenizer, engine.template)
        assert engine.pad_id in engine.stop_ids
    prompts = _prompts(len(engine.tokenizer))
    worker = _worker(engine, max_wait_s=0.5)
    try:
        batched = _run(worker, prompts, GREEDY)
        assert worker.max_rows_seen == 8 and worker.batches == 1
        single = [_run(worker, [p], GREEDY)[0] for p in prompts]
    finally:
        worker.stop()
    options = GenerationOptions(temperature=0, max_new_tokens=12)
    assert batched == single and {f for _, f in batched} == {"length"}
    assert [ids for ids, _ in single] == [engine.generate_ids([p], options)[0] for p in prompts]  # == transformers


def test_rows_joining_a_running_batch_equal_one_by_one(engine: ChatEngine) -> None:
    """Rows admitted between steps (their prefill merged into the cache) decode as they would alone."""
    prompts = _prompts(len(engine.tokenizer))
    worker = _worker(engine, max_wait_s=0.0)
    try:
        joined = _run(worker, prompts, GenerationOptions(max_new_tokens=20, temperature=0), gap_s=0.01)
        batches, widest = worker.batches, worker.max_rows_seen
        single = [_run(worker, [p], GenerationOptions(max_new_tokens=20, temperature=0))[0] for p in prompts]
    finally:
        worker.stop()
    assert batches > 1 and widest > 1  # rows did arrive separately and shared steps
    assert joined == single


def test_attending_to_padding_breaks_batched_equality(engine: ChatEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control for the two tests above: a batch whose mask lets rows attend to their padding differs.

    (Position ids counted from column 0 would not do as a control: RoPE scores depend only on position differences,
    so a constant shift per row changes no greedy token on this model.)"""
    prompts = _prompts(len(engine.tokenizer))
    real_pad_left = decoding.pad_left
    monkeypatch.setattr(
        decoding,
        "pad_left",
        lambda p, pad: (real_pad_left(p, pad)[0], torch.ones(len(p), max(map(len, p)), dtype=torch.long)),
    )
    worker = _worker(engine, max_wait_s=0.5)
    try:
        batched = _run(worker, prompts, GREEDY)
        single = [_run(worker, [p], GREEDY)[0] for p in prompts]
    finally:
        worker.stop()
    assert single[1] == batched[1]  # the longest prompt has no padding either way
    assert batched != single


def test_stop_id_ends_the_row_without_emitting_it(engine: ChatEngine) -> None:
    prompt = _prompts(len(engine.tokenizer))[1]
    free = _worker(engine)
    try:
        ids, _ = _run(free, [prompt], GREEDY)[0]
    finally:
        free.stop()
    cut = next(i for i in range(2, len(ids)) if ids[i] not in ids[:i])
    worker = BatchWorker(engine.model, engine.pad_id, [*engine.stop_ids, ids[cut]])
    worker.start()
    try:
        assert _run(worker, [prompt], GREEDY)[0] == (ids[:cut], "stop")
    finally:
        worker.stop()


class _ModelProxy:
    """Wraps the model: counts forward calls, optionally sleeps in each or raises in the `fail_at`-th one."""

    def __init__(
        self, model: Any, fail_at: int | None = None, sleep_s: float = 0.0, gate: threading.Event | None = None
    ) -> None:
        self.model, self.fail_at, self.sleep_s, self.calls, self.gate = model, fail_at, sleep_s, 0, gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def __call__(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("injected failure")
        if self.gate is not None:
            self.gate.wait(60)
        time.sleep(self.sleep_s)
        return self.model(**kwargs)


def _served(engine: ChatEngine, model: Any, **limits: Any) -> tuple[Any, ChatEngine]:
    wrapped = ChatEngine(model, engine.tokenizer, engine.template)
    return create_app(wrapped, model_name="tiny", **limits), wrapped


def test_failure_mid_stream_ends_with_error_event_and_server_recovers(engine: ChatEngine) -> None:
    """B13: the worker raises at token 5 (prefill + 4 steps); the stream ends with an error, not a hang."""
    proxy = _ModelProxy(engine.model, fail_at=5)
    app, _ = _served(engine, proxy)
    with running_server(app) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=30)
        stream = client.chat.completions.create(**CHAT, max_tokens=20, stream=True)
        received = []
        with pytest.raises(openai.APIError, match="injected failure"):
            for chunk in stream:
                received.append(chunk.choices[0].delta.content)
        assert 1 <= len(received) <= 6  # role chunk + the tokens before the failure
        assert httpx.get(url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
        reply = client.chat.completions.create(**CHAT, max_tokens=8)
        assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 8
        proxy.calls, proxy.fail_at = 0, 3
        response = httpx.post(f"{url}/chat/completions", json={**CHAT, "max_tokens": 8}, timeout=30)
        assert response.status_code == 500 and response.json()["error"]["code"] == "generation_failed"


def test_overload_gets_429_with_retry_after_and_queued_requests_complete(engine: ChatEngine) -> None:
    """E3: with a queue limit of 8, a burst of 48 requests: the excess is refused at once, the rest finish.

    "At once" without a clock: the model is held in its first forward until the refusals have come back, so a
    refusal queued behind generation would never arrive (the test would time out instead of passing)."""
    gate = threading.Event()
    max_queue, max_batch = 8, 4
    app, _ = _served(engine, _ModelProxy(engine.model, gate=gate), max_queue=max_queue, max_batch_size=max_batch)

    async def burst(url: str) -> tuple[list[tuple[int, str | None]], list[tuple[int, str | None]]]:
        async with httpx.AsyncClient(timeout=90, limits=httpx.Limits(max_connections=64)) as client:

            async def one() -> tuple[int, str | None]:
                r = await client.post(f"{url}/chat/completions", json={**CHAT, "max_tokens": 8})
                return r.status_code, r.headers.get("retry-after")

            tasks = [asyncio.create_task(one()) for _ in range(48)]
            at_most_accepted = max_queue + max_batch  # waiting rows plus the batch held in the model
            deadline = time.monotonic() + 60
            while sum(t.done() for t in tasks) < len(tasks) - at_most_accepted and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            while_held = [t.result() for t in tasks if t.done()]
            gate.set()
            return while_held, list(await asyncio.gather(*tasks))

    with running_server(app) as url:
        while_held, results = asyncio.run(burst(url))
        assert len(while_held) >= 48 - max_queue - max_batch  # came back while nothing could be generated
        assert all(code == 429 and retry == "1" for code, retry in while_held)
        assert {status for status, _ in results} == {200, 429}
        assert httpx.post(f"{url}/chat/completions", json={**CHAT, "max_tokens": 4}, timeout=30).status_code == 200


def test_disconnected_streams_stop_generating(engine: ChatEngine) -> None:
    """E4: a storm of 100 streaming clients leaving after 5 chunks: their rows stop within 1 s, the batch empties."""
    app, _ = _served(engine, _ModelProxy(engine.model, sleep_s=0.005))
    worker, rows = app.state.worker, []
    original = worker.submit
    worker.submit = lambda new: (rows.extend(new), original(new))[1]

    async def leave_early(url: str) -> None:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=128)) as client:

            async def one() -> None:
                async with client.stream(
                    "POST", f"{url}/chat/completions", json={**CHAT, "max_tokens": 2000, "stream": True}
                ) as response:
                    seen = 0
                    async for line in response.aiter_lines():
                        seen += line.startswith("data: ")
                        if seen == 5:
                            return

            await asyncio.gather(*(one() for _ in range(100)))

    with running_server(app) as url:
        asyncio.run(leave_early(url))
        left = time.monotonic()
        while worker.active_rows and time.monotonic() - left < 1.0:
            time.sleep(0.01)
        assert worker.active_rows == 0 and worker.pending == 0
        assert len(rows) == 100 and all(r.cancelled and r.generated < 200 for r in rows)


def test_rows_leaving_trim_the_padding_and_keep_decoding_right(engine: ChatEngine) -> None:
    """When the long row leaves, the columns that were only its prompt go, and the short row decodes as alone."""
    long_prompt, short_prompt = _prompts(len(engine.tokenizer))[1], _prompts(len(engine.tokenizer))[0]
    params = [GREEDY, GREEDY]
    with torch.inference_mode():
        state, _ = decoding.prefill(engine.model, [long_prompt, short_prompt], engine.pad_id, [None] * 2, [None] * 2)
        tokens = [decoding.sample(state.logits, params, state.generators)]
        decoding.step(engine.model, state, tokens[-1])
        decoding.keep_rows(state, [1])
        assert state.attention_mask.shape == (1, len(short_prompt) + 1) and bool(state.attention_mask.all())
        for _ in range(10):
            tokens.append(decoding.sample(state.logits, params[:1], state.generators))
            decoding.step(engine.model, state, tokens[-1])
    alone = engine.generate_ids([short_prompt], GenerationOptions(temperature=0, max_new_tokens=11))[0]
    assert [int(t[-1]) for t in tokens] == alone


def test_stopping_the_worker_ends_running_and_waiting_rows(engine: ChatEngine) -> None:
    """Shutdown never leaves a request hanging: every row gets its final event; later submits are refused."""
    worker = BatchWorker(_ModelProxy(engine.model, sleep_s=0.01), engine.pad_id, engine.stop_ids, max_batch_size=2)
    worker.start()
    finals: list[tuple[str, Any]] = []
    deliver = lambda event: finals.append(event) if event[0] != "token" else None  # noqa: E731
    worker.submit([Row(p, GenerationOptions(max_new_tokens=500, temperature=0), deliver) for p in _prompts(64)[:5]])
    time.sleep(0.1)
    worker.stop()
    assert len(finals) == 5 and all(kind == "error" and "shutting down" in text for kind, text in finals)
    with pytest.raises(WorkerStopped):
        worker.submit([Row([1, 2], GREEDY, deliver)])


def test_disconnected_non_streaming_request_stops_generating(engine: ChatEngine) -> None:
    """E4 for plain requests: a client that gives up waiting has its row cancelled within about a second."""
    app, _ = _served(engine, _ModelProxy(engine.model, sleep_s=0.005))
    worker, rows = app.state.worker, []
    original = worker.submit
    worker.submit = lambda new: (rows.extend(new), original(new))[1]
    with running_server(app) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/chat/completions", json={**CHAT, "max_tokens": 4000}, timeout=0.3)
        left = time.monotonic()
        while worker.active_rows and time.monotonic() - left < 2.0:
            time.sleep(0.01)
        assert worker.active_rows == 0 and rows[0].cancelled and rows[0].generated < 1000

"""Load (QUALITY E1, E2): 32 concurrent clients send 200 requests (half streaming, API key on) to the tiny model.

Zero errors, every response schema-valid (streams end with a finish_reason chunk and [DONE], usage adds up), every
reply token-identical to the same prompt sent alone beforehand (no cross-request mixing, no padding leakage), and
the latency/throughput table is written to a JSON file.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lmforge.inference.engine import ChatEngine, load_engine
from lmforge.inference.server import create_app
from tests.fixtures.server import running_server

KEY = "load-test-key"
CLIENTS, REQUESTS, MAX_TOKENS = 32, 200, 8
PROMPTS = [f"Request {i}: say something about topic number {i * 7 % 101}." for i in range(32)]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> ChatEngine:
    return load_engine(str(tiny_model_dir), dtype="float32")


def _body(i: int, stream: bool) -> dict[str, Any]:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": PROMPTS[i % 32]}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
    }
    return {**body, "stream": True, "stream_options": {"include_usage": True}} if stream else body


def _check_usage(usage: dict[str, Any], finish: str) -> None:
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == MAX_TOKENS if finish == "length" else usage["completion_tokens"] < MAX_TOKENS


async def _stream(client: httpx.AsyncClient, url: str, i: int) -> tuple[str, float, float]:
    """(text, latency, time to first token) of one streamed request, checking every event's shape."""
    start, first, text, events = time.monotonic(), None, "", []
    async with client.stream("POST", f"{url}/chat/completions", json=_body(i, True)) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
                chunk = json.loads(line[6:]) if line[6:] != "[DONE]" else None
                if chunk and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    first = first or time.monotonic()
                    text += chunk["choices"][0]["delta"]["content"]
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "tiny" for c in chunks)
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishes) == 1 and chunks[-1]["choices"] == []
    _check_usage(chunks[-1]["usage"], finishes[0])
    end = time.monotonic()
    return text, end - start, (first or end) - start


async def _plain(client: openai.AsyncOpenAI, i: int) -> tuple[str, float, float]:
    start = time.monotonic()
    reply = await client.chat.completions.create(**_body(i, False))
    assert reply.object == "chat.completion" and len(reply.choices) == 1
    _check_usage(reply.usage.model_dump(), reply.choices[0].finish_reason)
    latency = time.monotonic() - start
    return reply.choices[0].message.content, latency, latency


async def _load(url: str) -> tuple[list[tuple[int, bool, str, float, float]], float]:
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(timeout=120, headers=headers, limits=limits) as raw:
        api = openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=120)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(REQUESTS):
            queue.put_nowait(i)
        results: list[tuple[int, bool, str, float, float]] = []

        async def client_loop() -> None:  # one of 32 clients, each sending its next request when the last is done
            while not queue.empty():
                i = queue.get_nowait()
                stream = i % 2 == 0
                text, latency, ttft = await (_stream(raw, url, i) if stream else _plain(api, i))
                results.append((i, stream, text, latency, ttft))

        start = time.monotonic()
        await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))
        elapsed = time.monotonic() - start
        await api.close()
    return results, elapsed


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def test_32_concurrent_clients_200_requests(engine: ChatEngine, tmp_path: Path) -> None:
    app = create_app(engine, api_key=KEY, model_name="tiny")
    with running_server(app) as url:
        client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=60)
        sequential = [client.chat.completions.create(**_body(i, False)).choices[0].message.content for i in range(32)]
        results, elapsed = asyncio.run(_load(url))
        widest = app.state.worker.max_rows_seen
    assert len(results) == REQUESTS  # every request answered (an error would have raised above)
    mismatched = [i for i, _, text, _, _ in results if text != sequential[i % 32]]
    assert not mismatched, f"concurrent replies differ from sequential ones for requests {mismatched[:10]}"
    assert widest > 1  # requests really were batched together
    latencies = [r[3] for r in results]
    ttfts = [r[4] for r in results if r[1]]
    table = {
        "clients": CLIENTS,
        "requests": REQUESTS,
        "streaming": len(ttfts),
        "max_tokens": MAX_TOKENS,
        "errors": 0,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(REQUESTS / elapsed, 2),
        "latency_p50_s": round(_percentile(latencies, 50), 4),
        "latency_p95_s": round(_percentile(latencies, 95), 4),
        "ttft_p50_s": round(_percentile(ttfts, 50), 4),
        "ttft_p95_s": round(_percentile(ttfts, 95), 4),
        "widest_batch": widest,
    }
    (tmp_path / "load_table.json").write_text(json.dumps(table, indent=2))
    print(json.dumps(table))

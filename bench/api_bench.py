#!/usr/bin/env python
"""Throughput and latency of `lmforge serve` at 1, 8 and 32 concurrent clients (the API workload of `make bench`).

  python bench/api_bench.py [--sizes tiny small] [--concurrency 1 8 32] [--max-tokens 32] [--out api.jsonl]
  python bench/api_bench.py --workload score|choices [--sizes small] [--concurrency 1 32]

`--workload score` sends scoring requests instead: /v1/completions with `echo`, `logprobs: 1` and `max_tokens: 0`
on distinct ~40-token prompts; "out tok/s" is then prompt tokens scored per second. `--workload choices` sends the
same kind of request shaped as lm-evaluation-harness sends a multiple-choice task: each item a few-shot context
and a question, one request per answer, taken in order by the clients.

Models come from `lmforge init-model --size SIZE` (built once under --models-dir). Each size gets a real
`lmforge serve` process (API key on); each concurrency level runs max(32, 4 x clients) requests, half of them
streaming, temperature 0, every client sending its next request as soon as the last one is answered. The server
runs with --threads torch threads (default 1). Prints one
`API_RESULT {json}` line per level and a markdown table; `foreign_cpu_frac` is the share of the machine's CPU used by
other processes during the level (the machine may be shared), as in the other bench scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from cpu_load import machine_busy_s, own_cpu_s

REPO = Path(__file__).resolve().parent.parent
LMFORGE = [sys.executable, "-m", "lmforge.cli"]
KEY = "api-bench-key"
TOPICS = ["rivers", "tea", "chess", "bridges", "owls", "clocks", "glass", "maps", "salt", "kites", "moss", "ink"]


def ensure_model(models_dir: Path, size: str) -> Path:
    folder = models_dir / size
    if not (folder / "config.json").exists():
        subprocess.run([*LMFORGE, "init-model", "--size", size, "--output", str(folder)], check=True)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    model: Path, port: int, threads: int, extra_args: list[str] | None = None, src: str | None = None
) -> subprocess.Popen:
    """A healthy `lmforge serve` on `port`; `src` puts another checkout's src/ first on PYTHONPATH (A/B runs)."""
    argv = [
        *LMFORGE,
        "serve",
        "--model",
        str(model),
        "--model-name",
        "bench",
        "--port",
        str(port),
        "--api-key",
        KEY,
        "--dtype",
        "float32",
        "--log-level",
        "warning",
        *(extra_args or []),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if src:
        env["PYTHONPATH"] = src
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"lmforge serve exited: {proc.stderr.read() if proc.stderr else ''}")
    proc.terminate()
    raise RuntimeError("lmforge serve did not become healthy in 60 s")


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def score_body(i: int) -> dict[str, Any]:
    topic = TOPICS[i % len(TOPICS)]
    text = f"Request {i}. People who like {topic} often say that {topic} make them calm, and they spend long hours "
    return {
        "model": "bench",
        "prompt": text + f"reading about {topic} and talking about them.",
        "echo": True,
        "logprobs": 1,
        "max_tokens": 0,
    }


#: the few-shot head every multiple-choice item starts with (lm-eval's `num_fewshot` examples, one subject)
FEW_SHOT = "".join(
    f"Question: Which of these is most often found near {topic}? Answer: people who like {topic}.\n\n"
    for topic in TOPICS[:4]
)
CHOICES = ["fresh water", "dry sand", "old paper", "warm light"]


def choice_body(i: int) -> dict[str, Any]:
    """Request i of a multiple-choice task scored as lm-eval's `local-completions` does: item i // 4, choice i % 4,
    each the item's whole context (few-shot head + question) followed by one answer."""
    item, choice = divmod(i, len(CHOICES))
    topic = TOPICS[item % len(TOPICS)]
    question = f"Question {item}: Which of these do people who like {topic} talk about most? Answer:"
    return {**score_body(i), "prompt": FEW_SHOT + question + " " + CHOICES[choice] + "."}


async def one_score(client: httpx.AsyncClient, url: str, i: int, choices: bool = False) -> tuple[float, None, int]:
    """(latency, None, prompt tokens scored); raises on any error or a reply without log-probabilities."""
    start = time.perf_counter()
    response = await client.post(url, json=choice_body(i) if choices else score_body(i))
    response.raise_for_status()
    reply = response.json()
    if len(reply["choices"][0]["logprobs"]["token_logprobs"]) != reply["usage"]["prompt_tokens"]:
        raise RuntimeError("a scored prompt came back without a log-probability per token")
    return time.perf_counter() - start, None, reply["usage"]["prompt_tokens"]


def body(i: int, max_tokens: int, stream: bool) -> dict[str, Any]:
    text = f"Request {i}. Write a few sentences about {TOPICS[i % len(TOPICS)]} and why people like them."
    return {
        "model": "bench",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
    }


async def one_request(client: httpx.AsyncClient, url: str, i: int, max_tokens: int) -> tuple[float, float | None, int]:
    """(latency, time to first token (streams only), completion tokens); raises on any error."""
    start, stream = time.perf_counter(), i % 2 == 0
    if not stream:
        response = await client.post(url, json=body(i, max_tokens, False))
        response.raise_for_status()
        return time.perf_counter() - start, None, response.json()["usage"]["completion_tokens"]
    first, tokens, done = None, 0, False
    async with client.stream("POST", url, json=body(i, max_tokens, True)) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                chunk = json.loads(line[6:])
                content = chunk["choices"] and chunk["choices"][0]["delta"].get("content")
                first = first or (time.perf_counter() if content else None)  # not the role-only first chunk
                tokens = chunk["usage"]["completion_tokens"] if chunk.get("usage") else tokens
    if not done:
        raise RuntimeError("stream ended without [DONE]")
    end = time.perf_counter()
    return end - start, (first or end) - start, tokens


async def run_level(
    port: int, clients: int, requests: int, max_tokens: int, score: bool = False, choices: bool = False
) -> dict[str, Any]:
    """One level: `clients` workers take the requests in order (as lm-eval's `num_concurrent` does)."""
    url = f"http://127.0.0.1:{port}/v1/" + ("completions" if score else "chat/completions")
    todo = list(reversed(range(requests)))
    results: list[tuple[float, float | None, int]] = []
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=300, headers={"Authorization": f"Bearer {KEY}"}, limits=limits) as client:

        async def worker() -> None:
            while todo:
                i = todo.pop()
                results.append(
                    await (one_score(client, url, i, choices) if score else one_request(client, url, i, max_tokens))
                )

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    latencies, ttfts = [r[0] for r in results], [r[1] for r in results if r[1] is not None]
    q = lambda values, p: statistics.quantiles(values, n=100, method="inclusive")[p - 1]  # noqa: E731
    return {
        "clients": clients,
        "requests": requests,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(requests / elapsed, 2),
        "output_tokens_per_s": round(sum(r[2] for r in results) / elapsed, 1),
        "latency_p50_s": round(q(latencies, 50), 4),
        "latency_p95_s": round(q(latencies, 95), 4),
        "ttft_p50_s": round(q(ttfts, 50), 4) if ttfts else None,
        "ttft_p95_s": round(q(ttfts, 95), 4) if ttfts else None,
    }


def bench_size(
    size: str, model: Path, levels: list[int], max_tokens: int, threads: int, workload: str = "chat"
) -> list[dict[str, Any]]:
    score, choices = workload != "chat", workload == "choices"
    port = free_port()
    server = start_server(model, port, threads)
    rows = []
    try:
        asyncio.run(run_level(port, 4, 8, max_tokens, score, choices))  # warm-up: first-call allocations, thread pools
        for clients in levels:
            busy0, own0, srv0 = machine_busy_s(), own_cpu_s(), process_cpu_s(server.pid)
            wall0 = time.perf_counter()
            row = asyncio.run(run_level(port, clients, max(32, 4 * clients), max_tokens, score, choices))
            wall = time.perf_counter() - wall0
            ours = own_cpu_s() - own0 + process_cpu_s(server.pid) - srv0
            foreign = (machine_busy_s() - busy0 - ours) / (wall * (os.cpu_count() or 1))
            rows.append(
                {
                    "name": f"api_{'' if workload == 'chat' else workload + '_'}{size}_c{clients}",
                    "model": size,
                    "max_tokens": max_tokens,
                    **row,
                    "foreign_cpu_frac": round(max(0.0, foreign), 3),
                }
            )
            print("API_RESULT " + json.dumps(rows[-1]), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    header = (
        "| model | clients | requests | req/s | x vs 1 client | out tok/s | p50 s | p95 s | TTFT p50 s | foreign CPU |"
    )
    lines = [header, "|---" * 10 + "|"]
    base = {r["model"]: r["requests_per_s"] for r in rows if r["clients"] == 1}
    for r in rows:
        ratio = f"{r['requests_per_s'] / base[r['model']]:.1f}" if r["model"] in base else "-"
        lines.append(
            f"| {r['model']} | {r['clients']} | {r['requests']} | {r['requests_per_s']} | {ratio} | "
            f"{r['output_tokens_per_s']} | {r['latency_p50_s']} | {r['latency_p95_s']} | {r['ttft_p50_s']} | "
            f"{r['foreign_cpu_frac']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=["tiny", "small"])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens per request (default 32)")
    parser.add_argument(
        "--workload",
        choices=["chat", "score", "choices"],
        default="chat",
        help="chat replies, prompt scoring (distinct prompts), or multiple-choice scoring as lm-eval sends it "
        "(a few-shot context + question, one request per choice)",
    )
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/lmforge_api_bench/models"))
    parser.add_argument("--out", type=Path, help="append one JSON line per level to this file")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="server torch/OpenMP threads (default 1: the clients need the other core; 2 threads on 2 shared cores "
        "stall on OpenMP barriers whenever another process runs)",
    )
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        model = ensure_model(args.models_dir, size)
        rows += bench_size(size, model, args.concurrency, args.max_tokens, args.threads, args.workload)
    if args.out:
        with args.out.open("a") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rows)
    print(markdown(rows))


if __name__ == "__main__":
    main()

"""One generation run: requests go out as waves or chains, replies are consumed in a fixed order and journaled then.

Up to `generator.concurrency` requests are in flight at once on one thread pool, whatever the pipeline is waiting
for: a chain (a request built from the reply to the one before it, e.g. classify a task, then ask for its instances)
runs on as soon as its own previous reply is in, with no barrier across the other chains.

Determinism is what makes `--resume` exact: every request has a stable key (method, round, position), its sampling
seed derives from the run seed and that key, a chain depends only on its own replies, budgets are granted in the
order the pipeline starts its waves and chains, and the pipeline consumes (journals, counts, writes) replies in that
same order whatever order they finish in. A resumed run replays the journaled replies through the same pipeline (no
model call), so it rebuilds the same records, rejects and pool, then carries on where the journal ends.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from lmforge.generate.backends import Generator, GeneratorError, Reply, Request
from lmforge.generate.generate_config import GenerateConfig
from lmforge.generate.output import OutputStore

#: one step of a chain: builds its request from the replies of the steps before it
Step = Callable[[list[Reply]], Request]
#: what a chain's thread hands back: (request, reply, replayed from the journal) per step done, and the failure that
#: ended it early, if one did
ChainResult = tuple[list[tuple[Request, Reply, bool]], GeneratorError | None]


def seed_for(run_seed: int, key: str) -> int:
    """A request's sampling seed: fixed by the run seed and the request key, not by when it is sent."""
    return int.from_bytes(hashlib.sha256(f"{run_seed}:{key}".encode()).digest()[:7], "big")


class Run:
    """Sends waves and chains of requests within the budgets; `stopped` says why no more will be sent (None: still
    going)."""

    def __init__(self, cfg: GenerateConfig, method: str, dry_run: bool = False) -> None:
        from tqdm.auto import tqdm

        self.cfg, self.method, self.dry_run = cfg, method, dry_run
        self.generator: Generator | None = None  # set once the pipeline has read its inputs (None: model-free)
        self.store: OutputStore = _NO_OUTPUT  # set once the generator answered
        self.stopped: str | None = None
        self.failure: GeneratorError | None = None
        self.requests = {"sent": 0, "replayed": 0, "refused": 0}
        self.tokens = {"prompt": 0, "completion": 0}
        self.notes: Counter[str] = Counter()  # replies read with a fallback (not rejects), by what happened
        self.bar = tqdm(desc=method, unit="req", disable=None, dynamic_ncols=True)
        self.granted = 0  # requests let through the max_requests budget so far (sent or replayed)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[ChainResult]] = []

    @property
    def generator_name(self) -> str:
        return self.generator.name if self.generator else "none (templates)"

    def request(self, key: str, prompt_id: str, text: str, creative: bool, max_tokens: int | None = None) -> Request:
        """A one-turn chat request; creative ones (proposals) use `sampling`, the rest `answer_sampling`."""
        options = self.cfg.sampling if creative else self.cfg.answer_sampling
        if max_tokens is not None:
            options = dataclasses.replace(options, max_new_tokens=max_tokens)
        options = dataclasses.replace(options, seed=seed_for(self.cfg.seed, key))
        return Request(key, prompt_id, [{"role": "user", "content": text}], options)

    def ask(self, requests: list[Request]) -> list[Reply]:
        """Replies for a prefix of `requests` (all of them unless a budget ran out or the generator failed)."""
        replies: list[Reply] = []
        for chain in self.send(requests):
            done = self.collect(chain)
            if not done:
                break
            replies.append(done[0][1])
        return replies

    def send(self, requests: list[Request]) -> list[Future[ChainResult]]:
        """Start a wave: each request on its way at once; `collect` them in order. A dry run prints them instead."""
        if self.dry_run and requests and not self.stopped:
            for r in requests:
                print(f"--- request {r.key} (prompt {r.prompt_id}, {_sampling(r)}) ---\n{r.messages[-1]['content']}\n")
            self.stopped = "dry run: printed the first wave of prompts"
        wave = requests[: self._grant(len(requests))]
        return [self._start([_constant(r)]) for r in wave]

    def chain(self, steps: list[Step]) -> Future[ChainResult] | None:
        """Start a chain of dependent requests (None when the budget has no room for any); it runs as many steps as
        the max_requests budget grants, each as soon as the reply before it is in."""
        granted = 0 if self.dry_run else self._grant(len(steps))
        return self._start(steps[:granted]) if granted else None

    def collect(self, chain: Future[ChainResult] | None) -> list[tuple[Request, Reply]]:
        """A chain's (request, reply)s, journaled and counted now: call in the pipeline's fixed order. Fewer than its
        steps when the budget cut it or the generator failed. Once the generator has failed the run stops: only
        chains already finished are still collected (their replies are kept), nothing is waited for."""
        if chain is None or (self.failure is not None and (not chain.done() or chain.cancelled())):
            return []
        steps, error = chain.result()
        for request, reply, replayed in steps:
            if replayed:
                self.requests["replayed"] += 1
            else:
                self.store.journal(request.key, reply.to_json())
                self.requests["sent"] += 1
            self._count(reply)
        if error is not None and self.failure is None:  # keep what arrived; the pipeline finishes, then stops
            self.failure = error
            self.stopped = f"generator failed: {error}"
            for future in self._pending:
                future.cancel()
        return [(request, reply) for request, reply, _ in steps]

    def close(self) -> None:
        """Stop the request threads (requests not started are dropped; the journal has every reply collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _start(self, steps: list[Step]) -> Future[ChainResult]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.cfg.generator.concurrency, thread_name_prefix="lmforge-generate")
        future = self._pool.submit(self._run_chain, steps)
        self._pending = [f for f in self._pending if not f.done()] + [future]
        return future

    def _run_chain(self, steps: list[Step]) -> ChainResult:
        """On a pool thread: each step's request, replayed from the journal or asked of the generator."""
        done: list[tuple[Request, Reply, bool]] = []
        for step in steps:
            request = step([reply for _, reply, _ in done])
            if request.key in self.store.replies:
                done.append((request, Reply.from_json(self.store.replies[request.key]), True))
                continue
            if self.generator is None:
                raise RuntimeError(f"request {request.key} needs a generator")
            try:
                done.append((request, self.generator.call(request), False))
            except GeneratorError as exc:
                return done, exc
        return done, None

    def _grant(self, n: int) -> int:
        """How many of `n` more requests the budgets let through (all unless one ran out; then `stopped` says so)."""
        if self.stopped or not n:
            return 0
        if self.cfg.max_tokens is not None and sum(self.tokens.values()) >= self.cfg.max_tokens:
            self.stopped = f"max_tokens budget ({self.cfg.max_tokens}) used"
            return 0
        granted = n
        if self.cfg.max_requests is not None and self.granted + n > self.cfg.max_requests:
            self.stopped = f"max_requests budget ({self.cfg.max_requests}) used"
            granted = max(0, self.cfg.max_requests - self.granted)
        self.granted += granted
        return granted

    def _count(self, reply: Reply) -> None:
        self.tokens["prompt"] += reply.prompt_tokens
        self.tokens["completion"] += reply.completion_tokens
        self.requests["refused"] += reply.finish == "refused"
        self.bar.update(1)
        self.bar.set_postfix(
            accepted=self.store.accepted, rejected=sum(self.store.rejected.values()), tokens=sum(self.tokens.values())
        )

    def refused(self, reply: Reply, request: Request) -> bool:
        """True (and counted as a reject) when the generator would not answer this request."""
        if reply.finish != "refused":
            return False
        self.store.reject("request_refused", reply.refused, key=request.key, prompt_id=request.prompt_id)
        return True

    def provenance(self, requests: list[Request], round_index: int | None, source: dict[str, Any]) -> dict[str, Any]:
        """The sidecar line of a record made from these requests' replies."""
        return {
            "method": self.method,
            "generator": self.generator_name,
            "prompt_ids": [r.prompt_id for r in requests],
            "request_keys": [r.key for r in requests],
            "sampling": {r.prompt_id: _options(r) for r in requests},
            "round": round_index,
            "source": source,
        }

    def summary(self) -> dict[str, Any]:
        self.bar.close()
        return {
            "method": self.method,
            "generator": self.generator_name,
            "stopped": self.stopped or "done",
            "requests": dict(self.requests),
            "retries": getattr(self.generator, "retries", 0),
            "tokens": dict(self.tokens),
            "notes": dict(self.notes),
        }


class _NoOutput:
    """The store of a dry run (and of a run whose output is not opened yet): nothing replayed, nothing written."""

    def __init__(self) -> None:
        self.replies: dict[str, Any] = {}
        self.accepted = 0
        self.rejected: Counter[str] = Counter()


_NO_OUTPUT: Any = _NoOutput()


def _constant(request: Request) -> Step:
    return lambda _: request


def _options(request: Request) -> dict[str, Any]:
    return dataclasses.asdict(request.options)


def _sampling(request: Request) -> str:
    o = request.options
    return f"temperature {o.temperature}, top_p {o.top_p}, max_tokens {o.max_new_tokens}, seed {o.seed}"

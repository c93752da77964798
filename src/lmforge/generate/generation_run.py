"""One generation run: requests go out in waves, replies come back in request order and are journaled at once.

Determinism is what makes `--resume` exact: every request has a stable key (method, round, position), its sampling
seed derives from the run seed and that key, and a pipeline consumes replies in request order. A resumed run replays
the journaled replies through the same pipeline (no model call), so it rebuilds the same records, rejects and pool,
then carries on where the journal ends.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from typing import Any

from lmforge.generate.backends import Generator, GeneratorError, Reply, Request
from lmforge.generate.generate_config import GenerateConfig
from lmforge.generate.output import OutputStore


def seed_for(run_seed: int, key: str) -> int:
    """A request's sampling seed: fixed by the run seed and the request key, not by when it is sent."""
    return int.from_bytes(hashlib.sha256(f"{run_seed}:{key}".encode()).digest()[:7], "big")


class Run:
    """Sends waves of requests within the budgets; `stopped` says why no more will be sent (None: still going)."""

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
        if self.stopped or not requests:
            return []
        if self.dry_run:
            for r in requests:
                print(f"--- request {r.key} (prompt {r.prompt_id}, {_sampling(r)}) ---\n{r.messages[-1]['content']}\n")
            self.stopped = "dry run: printed the first wave of prompts"
            return []
        wave = self._within_budget(requests)
        replies: list[Reply] = []
        fresh = [r for r in wave if r.key not in self.store.replies]
        answers = iter(self.generator.generate(fresh)) if fresh and self.generator else iter(())
        try:
            for request in wave:
                if request.key in self.store.replies:
                    reply = Reply.from_json(self.store.replies[request.key])
                    self.requests["replayed"] += 1
                else:
                    reply = next(answers)
                    self.store.journal(request.key, reply.to_json())
                    self.requests["sent"] += 1
                self._count(reply)
                replies.append(reply)
        except GeneratorError as exc:  # keep what arrived; the pipeline finishes its records, then the run stops
            self.failure = exc
            self.stopped = f"generator failed: {exc}"
        finally:
            if hasattr(answers, "close"):
                answers.close()
        return replies

    def _within_budget(self, requests: list[Request]) -> list[Request]:
        used = self.requests["sent"] + self.requests["replayed"]
        if self.cfg.max_tokens is not None and sum(self.tokens.values()) >= self.cfg.max_tokens:
            self.stopped = f"max_tokens budget ({self.cfg.max_tokens}) used"
            return []
        if self.cfg.max_requests is not None and used + len(requests) > self.cfg.max_requests:
            self.stopped = f"max_requests budget ({self.cfg.max_requests}) used"
            return requests[: max(0, self.cfg.max_requests - used)]
        return requests

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


def _options(request: Request) -> dict[str, Any]:
    return dataclasses.asdict(request.options)


def _sampling(request: Request) -> str:
    o = request.options
    return f"temperature {o.temperature}, top_p {o.top_p}, max_tokens {o.max_new_tokens}, seed {o.seed}"

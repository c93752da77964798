"""Dynamic batching: one thread owns the model and decodes every pending request together.

Requests arrive as rows (one per choice) from the server's event loop. The worker takes up to `max_batch_size` of
them (waiting `max_wait_s` for company when idle), prefills them as one left-padded batch and steps the batch one
token at a time. Between steps finished or cancelled rows leave the batch and waiting rows join it (their prefill is
merged into the running cache), so a long reply does not hold up new requests. Each token is handed to its row's
`deliver` callback at once, which the server turns into a streamed chunk.

Scoring (OpenAI `echo` + `logprobs`) rides on the same loop: a row with `prompt_logprobs` gets its prompt scored from
its own prefill (no extra forward pass) and a row with `max_tokens` 0 leaves right after it, so scoring requests
are batched exactly like generation. The rows taken into one prefill are capped so that the logits kept for scoring
stay under `score_logits_budget` elements; the others join at the next step.

A failure while decoding ends the rows of that batch with an error event; the thread keeps serving (QUALITY B13).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lmforge.inference import decoding
from lmforge.inference.decoding import BatchState, TokenLogprob
from lmforge.inference.sampling import GenerationOptions

logger = logging.getLogger(__name__)

# Delivered from the worker thread, in this order per row:
#   ("prompt", list[TokenLogprob])            the scored prompt (rows with prompt_logprobs only), first
#   ("token", (id, TokenLogprob | None))      each generated token (its log-probability when the row asked)
#   ("end_token", TokenLogprob)               the stop id that ended the row (rows with logprobs only; not text)
#   ("done", "stop" | "length") | ("error", message)
Event = tuple[str, Any]

#: most logits elements one prefill may keep for prompt scoring (rows x longest scored prompt x vocabulary):
#: 2**26 float32 values are 256 MiB; a single row is always taken, however long its prompt
SCORE_LOGITS_BUDGET = 2**26


class QueueFull(Exception):
    """The worker already has `max_queue` rows waiting; the server answers 429."""


class WorkerStopped(Exception):
    """The worker thread is not running (shut down, or died); the server answers 503."""


def ignore(_: Event) -> None:
    """`deliver` of rows whose caller reads the result off the row once decoding is over."""


@dataclass(eq=False)
class Row:
    """One sequence to generate. `cancelled` may be set from any thread; the row leaves at the next step.

    `logprobs` (k) asks for each generated token's log-probability with the top k alternatives, `prompt_logprobs`
    (k) for the prompt's; None asks for none. The worker fills `ids`, `finish` and `stop_id` as it goes."""

    prompt_ids: list[int]
    options: GenerationOptions
    deliver: Callable[[Event], None] = ignore
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    cancelled: bool = False
    ids: list[int] = field(default_factory=list)  # generated tokens, the stop id excluded
    finish: str | None = None  # "stop" (a stop id) | "length" (max_new_tokens reached)
    stop_id: int | None = None

    @property
    def generated(self) -> int:
        return len(self.ids)


class BatchWorker:
    """The model's only user: a daemon thread running the batched decode loop over submitted rows."""

    def __init__(
        self,
        model: Any,
        pad_id: int,
        stop_ids: list[int],
        *,
        max_batch_size: int = 32,
        max_wait_s: float = 0.005,
        max_queue: int = 256,
        score_logits_budget: int = SCORE_LOGITS_BUDGET,
    ) -> None:
        self.model = model
        self.vocab_size = int(getattr(getattr(model, "config", None), "vocab_size", 0) or 1)
        self.score_logits_budget = score_logits_budget
        self.pad_id = pad_id
        self.stop_ids = frozenset(stop_ids)
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.active_rows = 0  # rows in the running batch (a gauge for /health and the tests)
        self.batches = 0  # prefills run, counting rows that joined a running batch
        self.max_rows_seen = 0
        self._pending: deque[Row] = deque()
        self._current: list[Row] = []  # rows of the running batch, ended with an error if decoding fails
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="lmforge-batch-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current step; rows still running or waiting end with an error event, not a hang."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._cond:
            waiting, self._pending = list(self._pending), deque()
        for row in waiting:
            row.deliver(("error", "the server is shutting down"))

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, rows: list[Row]) -> None:
        """Queue rows for generation, all or none; raises `QueueFull` when the queue limit would be passed."""
        with self._cond:
            if not self.alive:
                raise WorkerStopped("the generation worker is not running")
            if len(self._pending) + len(rows) > self.max_queue:
                raise QueueFull(f"{len(self._pending)} sequences already waiting (limit {self.max_queue})")
            self._pending.extend(rows)
            self._cond.notify()

    def run_here(self, rows: list[Row]) -> None:
        """Decode `rows` to the end in the calling thread, with continuous batching among them: the in-process path
        (chat, eval, RL rollouts, data generation). Errors propagate; not for a worker whose thread was started."""
        with self._cond:
            self._pending.extend(rows)
        try:
            with torch.no_grad():  # not inference_mode: a training model (RL) must not get inference-only buffers
                while taken := self._take(wait=False):
                    self._run(taken)
        finally:
            self.active_rows = 0
            self._current = []
            with self._cond:
                self._pending.clear()

    def _loop(self) -> None:
        with torch.inference_mode():  # grad mode is per thread: set it in the thread that runs the model
            while (rows := self._take(wait=True)) is not None:
                try:
                    self._run(rows)
                except Exception as exc:  # a failed batch ends its own rows; the worker keeps serving (B13)
                    logger.exception("generation failed for a batch of %d rows", len(self._current))
                    for row in self._current:
                        row.deliver(("error", f"generation failed: {type(exc).__name__}: {exc}"))
                finally:
                    self.active_rows = 0
                    self._current = []

    def _take(self, wait: bool, room: int | None = None) -> list[Row] | None:
        """Up to `room` pending rows (skipping cancelled ones); when `wait`, block for the first and a short window."""
        room = self.max_batch_size if room is None else room
        with self._cond:
            if wait:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                deadline = time.monotonic() + self.max_wait_s
                while len(self._pending) < room and not self._stopping and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
            if self._stopping:
                return None
            taken: list[Row] = []
            width = 0  # longest scored prompt among the taken rows
            while self._pending and len(taken) < room:
                row = self._pending[0]
                scored = len(row.prompt_ids) if row.prompt_logprobs is not None else 0
                if taken and (len(taken) + 1) * max(width, scored) * self.vocab_size > self.score_logits_budget:
                    break
                self._pending.popleft()
                if not row.cancelled:
                    taken.append(row)
                    width = max(width, scored)
            return taken

    def _prefill(self, rows: list[Row]) -> BatchState:
        self.batches += 1
        state, scores = decoding.prefill(
            self.model,
            [r.prompt_ids for r in rows],
            self.pad_id,
            [r.options.seed for r in rows],
            [r.prompt_logprobs for r in rows],
        )
        for row, score in zip(rows, scores, strict=True):
            if score is not None:
                row.deliver(("prompt", score))
        return state

    def _run(self, rows: list[Row]) -> None:
        """Decode until every row (including rows that joined on the way) has finished or been cancelled."""
        live = self._current = rows
        state = self._prefill(live) if live else None
        while live and state is not None:
            if self._stopping:
                for row in live:
                    row.deliver(("error", "the server is shutting down"))
                return
            self._current = live
            self.active_rows = len(live)
            self.max_rows_seen = max(self.max_rows_seen, len(live))
            histories = [r.prompt_ids + r.ids if r.options.repetition_penalty != 1.0 else [] for r in live]
            tokens = decoding.sample(state.logits, [r.options for r in live], state.generators, histories)
            logprobs = self._logprobs(live, state, tokens)
            keep = [
                i
                for i, (row, token, logprob) in enumerate(zip(live, tokens.tolist(), logprobs, strict=True))
                if self._emit(row, token, logprob)
            ]
            if len(keep) < len(live):
                if keep:
                    decoding.keep_rows(state, keep)
                tokens, live = tokens[keep], [live[i] for i in keep]
            if live:
                decoding.step(self.model, state, tokens)
            live, state = self._admit(live, state)

    @staticmethod
    def _logprobs(live: list[Row], state: BatchState, tokens: torch.Tensor) -> list[TokenLogprob | None]:
        """The chosen tokens' log-probabilities for the rows that asked for them (one batched log-softmax)."""
        out: list[TokenLogprob | None] = [None] * len(live)
        wanted = [i for i, row in enumerate(live) if row.logprobs is not None and row.options.max_new_tokens]
        if wanted:
            tops = [live[i].logprobs or 0 for i in wanted]
            for i, logprob in zip(
                wanted, decoding.token_logprobs(state.logits[wanted], tokens[wanted], tops), strict=True
            ):
                out[i] = logprob
        return out

    def _emit(self, row: Row, token: int, logprob: TokenLogprob | None) -> bool:
        """Hand the token to its row; False when the row is finished (stop id, budget spent or cancelled)."""
        if row.cancelled:
            return False
        if row.options.max_new_tokens == 0:  # scoring only: the prompt was scored in the prefill
            return self._finish(row, "length")
        if token in self.stop_ids:  # the one place a stop id ends a reply, for every generation path
            row.stop_id = token
            if logprob is not None:
                row.deliver(("end_token", logprob))
            return self._finish(row, "stop")
        row.ids.append(token)
        row.deliver(("token", (token, logprob)))
        if len(row.ids) >= row.options.max_new_tokens:
            return self._finish(row, "length")
        return True

    @staticmethod
    def _finish(row: Row, reason: str) -> bool:
        row.finish = reason
        row.deliver(("done", reason))
        return False

    def _admit(self, live: list[Row], state: BatchState) -> tuple[list[Row], BatchState | None]:
        """Let waiting rows join the batch between steps (or start a new batch when it has emptied)."""
        if not live:
            newcomers = self._current = self._take(wait=False) or []
            return (newcomers, self._prefill(newcomers)) if newcomers else ([], None)
        room = self.max_batch_size - len(live)
        if room <= 0 or not self._pending or not decoding.can_merge(state):
            return live, state
        newcomers = self._take(wait=False, room=room) or []
        if not newcomers:
            return live, state
        self._current = live + newcomers
        return self._current, decoding.merge(state, self._prefill(newcomers))

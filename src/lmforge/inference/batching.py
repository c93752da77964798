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
from dataclasses import dataclass
from typing import Any

import torch

from lmforge.inference import decoding
from lmforge.inference.decoding import BatchState, SamplingParams, TokenLogprob

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


@dataclass(eq=False)
class Row:
    """One sequence to generate. `cancelled` may be set from any thread; the row leaves at the next step."""

    prompt_ids: list[int]
    params: SamplingParams
    deliver: Callable[[Event], None]
    cancelled: bool = False
    generated: int = 0


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
                scored = len(row.prompt_ids) if row.params.prompt_logprobs is not None else 0
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
            self.model, [r.prompt_ids for r in rows], self.pad_id, [r.params for r in rows]
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
            tokens = decoding.sample(state.logits, [r.params for r in live], state.generators)
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
        wanted = [i for i, row in enumerate(live) if row.params.logprobs is not None and row.params.max_tokens]
        if wanted:
            tops = [live[i].params.logprobs or 0 for i in wanted]
            for i, logprob in zip(
                wanted, decoding.token_logprobs(state.logits[wanted], tokens[wanted], tops), strict=True
            ):
                out[i] = logprob
        return out

    def _emit(self, row: Row, token: int, logprob: TokenLogprob | None) -> bool:
        """Hand the token to its row; False when the row is finished (stop id, budget spent or cancelled)."""
        if row.cancelled:
            return False
        if row.params.max_tokens == 0:  # scoring only: the prompt was scored in the prefill
            row.deliver(("done", "length"))
            return False
        if token in self.stop_ids:
            if logprob is not None:
                row.deliver(("end_token", logprob))
            row.deliver(("done", "stop"))
            return False
        row.generated += 1
        row.deliver(("token", (token, logprob)))
        if row.generated >= row.params.max_tokens:
            row.deliver(("done", "length"))
            return False
        return True

    def _admit(self, live: list[Row], state: BatchState) -> tuple[list[Row], BatchState | None]:
        """Let waiting rows join the batch between steps (or start a new batch when it has emptied)."""
        if not live:
            newcomers = self._current = self._take(wait=False) or []
            return (newcomers, self._prefill(newcomers)) if newcomers else ([], None)
        room = self.max_batch_size - len(live)
        if room <= 0 or not self._pending or not decoding.can_merge(state):
            return live, state
        newcomers = self._take(wait=False, room=room)
        if not newcomers:
            return live, state
        self._current = live + newcomers
        return self._current, decoding.merge(state, self._prefill(newcomers))

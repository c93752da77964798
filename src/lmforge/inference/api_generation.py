"""One API request's generation: its rows in the batching worker, their text, and the OpenAI-shaped replies.

The worker thread delivers token ids through `loop.call_soon_threadsafe` onto the request's asyncio queue; the
`Job` turns them into text pieces per choice (stop strings applied), then `complete` builds a whole response or
`stream` yields server-sent events. A job whose client goes away, or whose stop string appeared, cancels its rows so
the worker stops spending compute on them (QUALITY E4). A worker failure ends the stream with an error event (B13).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from lmforge.inference.api_schema import ApiError
from lmforge.inference.batching import BatchWorker, Event, QueueFull, Row, WorkerStopped
from lmforge.inference.decoding import SamplingParams
from lmforge.inference.detokenize import TextAssembler

DONE = "data: [DONE]\n\n"


class GenerationFailed(Exception):
    """The worker reported an error for one of this job's rows."""


@dataclass(frozen=True)
class ReplyShape:
    """What distinguishes chat from text completions on the wire."""

    id_prefix: str  # "chatcmpl" | "cmpl"
    object: str  # "chat.completion" | "text_completion"
    chunk_object: str  # "chat.completion.chunk" | "text_completion"
    chat: bool


CHAT = ReplyShape("chatcmpl", "chat.completion", "chat.completion.chunk", chat=True)
TEXT = ReplyShape("cmpl", "text_completion", "text_completion", chat=False)


class Job:
    """The rows of one request (a prompt per row) and the text each has produced."""

    def __init__(
        self,
        tokenizer: Any,
        prompts: list[list[int]],
        params: list[SamplingParams],
        stop: list[str],
        prompt_tokens: int,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self.rows = [Row(p, sp, self._deliverer(i)) for i, (p, sp) in enumerate(zip(prompts, params, strict=True))]
        self.assemblers = [TextAssembler(tokenizer, stop) for _ in prompts]
        self.finish: list[str | None] = [None] * len(prompts)
        self.completion_tokens = [0] * len(prompts)
        self.prompt_tokens = prompt_tokens  # each prompt counted once, however many choices it has

    def _deliverer(self, index: int) -> Any:
        def deliver(event: Event) -> None:  # runs in the worker thread
            try:
                self.loop.call_soon_threadsafe(self.queue.put_nowait, (index, event))
            except RuntimeError:  # the event loop has closed (shutdown): nobody listens; must not kill the worker
                self.rows[index].cancelled = True

        return deliver

    def submit(self, worker: BatchWorker) -> None:
        try:
            worker.submit(self.rows)
        except QueueFull as exc:
            raise ApiError(
                429,
                f"server is busy: {exc}; retry shortly",
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": "1"},
            ) from exc
        except WorkerStopped as exc:
            raise ApiError(503, str(exc), type="server_error", code="unavailable") from exc

    def cancel(self) -> None:
        for row in self.rows:
            row.cancelled = True

    async def pieces(self) -> AsyncIterator[tuple[int, str, str | None]]:
        """(choice index, new text, finish_reason or None) until every row has finished."""
        remaining = len(self.rows)
        while remaining:
            index, (kind, value) = await self.queue.get()
            if self.finish[index] is not None:
                continue
            assembler = self.assemblers[index]
            if kind == "error":
                self.cancel()
                raise GenerationFailed(value)
            if kind == "token":
                self.completion_tokens[index] += 1
                text = assembler.add(value)
                if assembler.stopped:  # a stop string: this row is done, tell the worker to drop it
                    self.rows[index].cancelled = True
                    self.finish[index] = "stop"
            else:
                text = assembler.finish()
                self.finish[index] = value
            if text or self.finish[index]:
                yield index, text, self.finish[index]
            remaining -= self.finish[index] is not None

    def usage(self) -> dict[str, int]:
        completion = sum(self.completion_tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


def _choice(shape: ReplyShape, index: int, text: str, finish: str | None) -> dict[str, Any]:
    body = {"message": {"role": "assistant", "content": text}} if shape.chat else {"text": text}
    return {"index": index, **body, "finish_reason": finish, "logprobs": None}


async def complete(job: Job, shape: ReplyShape, model: str) -> dict[str, Any]:
    """The whole reply once every choice has finished."""
    texts = [""] * len(job.rows)
    try:
        async for index, text, _ in job.pieces():
            texts[index] += text
    except GenerationFailed as exc:
        raise ApiError(500, str(exc), type="server_error", code="generation_failed") from exc
    choices = [_choice(shape, i, t, job.finish[i]) for i, t in enumerate(texts)]
    return {
        "id": f"{shape.id_prefix}-{uuid.uuid4().hex}",
        "object": shape.object,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": job.usage(),
    }


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def stream(job: Job, shape: ReplyShape, model: str, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events: a chunk per text piece, a finish chunk per choice, optional usage, then [DONE]."""
    head = {
        "id": f"{shape.id_prefix}-{uuid.uuid4().hex}",
        "object": shape.chunk_object,
        "created": int(time.time()),
        "model": model,
    }
    extra = {"usage": None} if include_usage else {}

    def chunk(index: int, text: str | None, finish: str | None, first: bool = False) -> str:
        if shape.chat:
            delta = {"role": "assistant", "content": ""} if first else ({"content": text} if text else {})
            choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": index, "text": text or "", "finish_reason": finish, "logprobs": None}
        return _sse({**head, "choices": [choice], **extra})

    try:
        if shape.chat:
            for index in range(len(job.rows)):
                yield chunk(index, None, None, first=True)
        async for index, text, finish in job.pieces():
            if text:
                yield chunk(index, text, None)
            if finish:
                yield chunk(index, None, finish)
        if include_usage:
            yield _sse({**head, "choices": [], "usage": job.usage()})
        yield DONE
    except GenerationFailed as exc:  # B13: an error event, then the stream closes (no [DONE])
        yield _sse(ApiError(500, str(exc), type="server_error", code="generation_failed").body())
    finally:
        job.cancel()  # client gone (the response task is cancelled here) or finished: rows stop in the worker

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

from lmforge.inference import tool_calls
from lmforge.inference.api_logprobs import CompletionLogprobs, chat_logprobs
from lmforge.inference.api_schema import ApiError
from lmforge.inference.batching import BatchWorker, Event, QueueFull, Row, WorkerStopped
from lmforge.inference.decoding import TokenLogprob
from lmforge.inference.detokenize import TextAssembler
from lmforge.inference.sampling import GenerationOptions
from lmforge.inference.tool_calls import ToolUse

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


@dataclass(frozen=True)
class ReplyOptions:
    """What a request wants back besides the text."""

    echo: list[str] | None = None  # per row: the prompt text to return before the completion
    logprobs: bool = False  # log-probabilities of the returned tokens (and of the echoed prompt)
    top_logprobs: int | None = None  # alternatives per generated token (None: no log-probabilities)
    prompt_top_logprobs: int | None = None  # alternatives per prompt token (None: the prompt is not scored)
    tools: ToolUse | None = None  # parse tool calls out of chat replies


@dataclass
class Piece:
    """New output of one choice: text, the log-probabilities of the tokens behind it, and its finish reason."""

    index: int
    text: str
    finish: str | None
    logprobs: list[TokenLogprob]


class Job:
    """The rows of one request (a prompt per row) and the text each has produced."""

    def __init__(
        self,
        tokenizer: Any,
        prompts: list[list[int]],
        options_per_row: list[GenerationOptions],
        stop: list[str],
        prompt_tokens: int,
        options: ReplyOptions | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self.tokenizer = tokenizer
        self.options = options or ReplyOptions()
        o = self.options
        self.rows = [
            Row(p, opts, self._deliverer(i), o.top_logprobs, o.prompt_top_logprobs)
            for i, (p, opts) in enumerate(zip(prompts, options_per_row, strict=True))
        ]
        self.assemblers = [TextAssembler(tokenizer, stop) for _ in prompts]
        self.finish: list[str | None] = [None] * len(prompts)
        self.completion_tokens = [0] * len(prompts)
        self.prompt_tokens = prompt_tokens  # each prompt counted once, however many choices it has
        self._unsent: list[list[TokenLogprob]] = [[] for _ in prompts]  # log-probabilities not yet in a piece

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

    async def pieces(self) -> AsyncIterator[Piece]:
        """Each choice's output as it is produced, until every row has finished.

        An echoed prompt comes first (with its scores, once the prefill has made them); log-probabilities of tokens
        whose text is still held back ride along with the next piece of that choice.
        """
        for index, echo in enumerate(self.options.echo or []):
            if self.rows[index].prompt_logprobs is None:
                yield Piece(index, echo, None, [])
        remaining = len(self.rows)
        while remaining:
            index, (kind, value) = await self.queue.get()
            if self.finish[index] is not None:
                continue
            assembler = self.assemblers[index]
            if kind == "error":
                self.cancel()
                raise GenerationFailed(value)
            if kind == "prompt":
                yield Piece(index, self.options.echo[index] if self.options.echo else "", None, value)
                continue
            if kind == "end_token":
                self._unsent[index].append(value)
                continue
            if kind == "token":
                token, logprob = value
                self.completion_tokens[index] += 1
                if logprob is not None:
                    self._unsent[index].append(logprob)
                text = assembler.add(token)
                if assembler.stopped:  # a stop string: this row is done, tell the worker to drop it
                    self.rows[index].cancelled = True
                    self.finish[index] = "stop"
            else:
                text = assembler.finish()
                self.finish[index] = value
            if text or self.finish[index]:
                logprobs, self._unsent[index] = self._unsent[index], []
                yield Piece(index, text, self.finish[index], logprobs)
            remaining -= self.finish[index] is not None

    def reply_text(self, index: int, visible: str) -> str:
        """The text tool calls are parsed from: with special tokens (Mistral's [TOOL_CALLS] is one), unless a stop
        string cut the reply, whose cut text is then all the model said."""
        assembler = self.assemblers[index]
        if assembler.stopped:
            return visible
        return self.tokenizer.decode(assembler.ids, skip_special_tokens=False)

    def usage(self) -> dict[str, int]:
        completion = sum(self.completion_tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


def _strip_specials(tokenizer: Any, text: str) -> str:
    for token in tokenizer.all_special_tokens:
        text = text.replace(token, "")
    return text


def _chat_reply(job: Job, index: int, text: str, finish: str | None) -> tuple[dict[str, Any], str | None]:
    """The assistant message of a finished choice (tool calls parsed out when tools were offered)."""
    use = job.options.tools
    if use is None:
        return {"role": "assistant", "content": text}, finish
    content, calls = tool_calls.parse(job.reply_text(index, text), use)
    if not calls:
        return {"role": "assistant", "content": text}, finish
    return {"role": "assistant", "content": _strip_specials(job.tokenizer, content) or None, "tool_calls": calls}, (
        "tool_calls"
    )


async def complete(job: Job, shape: ReplyShape, model: str) -> dict[str, Any]:
    """The whole reply once every choice has finished."""
    texts = [""] * len(job.rows)
    logprobs: list[list[TokenLogprob]] = [[] for _ in job.rows]
    try:
        async for piece in job.pieces():
            texts[piece.index] += piece.text
            logprobs[piece.index] += piece.logprobs
    except GenerationFailed as exc:
        raise ApiError(500, str(exc), type="server_error", code="generation_failed") from exc
    choices = []
    for i, text in enumerate(texts):
        lp = None
        if shape.chat:
            message, finish = _chat_reply(job, i, text, job.finish[i])
            if job.options.logprobs:
                lp = chat_logprobs(job.tokenizer, logprobs[i])
            choices.append({"index": i, "message": message, "finish_reason": finish, "logprobs": lp})
        else:
            if job.options.logprobs:
                lp = CompletionLogprobs(job.tokenizer).format(logprobs[i])
            choices.append({"index": i, "text": text, "finish_reason": job.finish[i], "logprobs": lp})
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
    """Server-sent events: a chunk per text piece, a finish chunk per choice, optional usage, then [DONE].

    With tools offered, a chat choice's reply is held until it ends (whether it is a tool call is known only then)
    and sent as one content and/or tool_calls delta before its finish chunk.
    """
    head = {
        "id": f"{shape.id_prefix}-{uuid.uuid4().hex}",
        "object": shape.chunk_object,
        "created": int(time.time()),
        "model": model,
    }
    extra = {"usage": None} if include_usage else {}
    offsets = [CompletionLogprobs(job.tokenizer) for _ in job.rows]
    held: list[tuple[str, list[Any]]] | None = [("", [])] * len(job.rows) if job.options.tools else None

    def logprobs_of(index: int, entries: list[TokenLogprob]) -> dict[str, Any] | None:
        if not job.options.logprobs:
            return None
        return chat_logprobs(job.tokenizer, entries) if shape.chat else offsets[index].format(entries)

    def chunk(index: int, delta: dict[str, Any] | str, finish: str | None, lp: dict[str, Any] | None = None) -> str:
        if shape.chat:
            choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": lp}
        else:
            choice = {"index": index, "text": delta, "finish_reason": finish, "logprobs": lp}
        return _sse({**head, "choices": [choice], **extra})

    try:
        if shape.chat:
            for index in range(len(job.rows)):
                yield chunk(index, {"role": "assistant", "content": ""}, None)
        async for piece in job.pieces():
            index, text, finish = piece.index, piece.text, piece.finish
            if held is not None:
                held[index] = (held[index][0] + text, held[index][1] + piece.logprobs)
                if finish:
                    message, finish = _chat_reply(job, index, held[index][0], finish)
                    delta = {k: v for k, v in message.items() if k != "role" and v is not None}
                    if "tool_calls" in delta:
                        delta["tool_calls"] = [{"index": k, **call} for k, call in enumerate(delta["tool_calls"])]
                    yield chunk(index, delta, None, logprobs_of(index, held[index][1]))
                    yield chunk(index, {}, finish)
                continue
            if text or piece.logprobs:
                yield chunk(index, {"content": text} if shape.chat else text, None, logprobs_of(index, piece.logprobs))
            if finish:
                yield chunk(index, {} if shape.chat else "", finish)
        if include_usage:
            yield _sse({**head, "choices": [], "usage": job.usage()})
        yield DONE
    except GenerationFailed as exc:  # B13: an error event, then the stream closes (no [DONE])
        yield _sse(ApiError(500, str(exc), type="server_error", code="generation_failed").body())
    finally:
        job.cancel()  # client gone (the response task is cancelled here) or finished: rows stop in the worker

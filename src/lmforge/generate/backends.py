"""The generator model behind `lmforge generate`: an OpenAI-compatible endpoint, or a local model in-process.

Both answer one chat request per `call`, blocking, from any number of threads at once (the run keeps
`generator.concurrency` of them in flight and consumes the replies in a fixed order, so what a run writes never
depends on timing). The in-process path is the decode loop `lmforge serve` runs (a started `BatchWorker` that
batches the rows of concurrent calls continuously) with the prompt built by the same template call the server makes
and the text assembled by the server's `TextAssembler`, so a greedy (or seeded) request gets the same reply from
either path.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from lmforge.generate.generate_config import GeneratorConfig
from lmforge.inference.remote_chat import ChatFailure, ChatReply, RemoteChat
from lmforge.inference.sampling import GenerationOptions
from lmforge.utils.errors import ConfigError, LmforgeError
from lmforge.utils.paths import read_key_file

_DEFAULTS = GenerationOptions()


class GeneratorError(LmforgeError):
    """The generator cannot go on (unreachable, wrong key, retries used up); the run stops and keeps its output."""


@dataclass(frozen=True)
class Request:
    """One chat request. `key` names it for good: the replies journal, the resume and its sampling seed use it."""

    key: str
    prompt_id: str
    messages: list[dict[str, str]]
    options: GenerationOptions


@dataclass(frozen=True)
class Reply:
    """A request's answer; `refused` holds why the generator would not answer it (e.g. the prompt is too long)."""

    text: str
    finish: str  # "stop" | "length" | "refused"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    refused: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "finish": self.finish, "usage": [self.prompt_tokens, self.completion_tokens]} | (
            {"refused": self.refused} if self.refused else {}
        )

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Reply:
        prompt, completion = row["usage"]
        return cls(row["text"], row["finish"], prompt, completion, row.get("refused", ""))


def read_api_key(cfg: GeneratorConfig) -> str | None:
    """generator.api_key_env's variable, or the first line of generator.api_key_file, or None."""
    if cfg.api_key_env:
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise ConfigError(f"generator.api_key_env: environment variable {cfg.api_key_env} is not set")
        return key
    if cfg.api_key_file:
        return read_key_file(cfg.api_key_file, "generator.api_key_file", ConfigError)
    return None


class EndpointGenerator:
    """POST /chat/completions through the shared `RemoteChat` client, `concurrency` at a time, retrying 429/5xx/
    timeouts/lost connections with backoff; a wrong key, an unknown model or used-up retries stop the run, a refused
    request (400) is a refused Reply and the run goes on."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        self.cfg = cfg
        self.name = cfg.model
        where = cfg.api_key_env or cfg.api_key_file
        hint = f"from {where}" if where else "none was set: generator.api_key_env or api_key_file"
        self.chat = RemoteChat(
            cfg.base_url,
            cfg.model,
            section="generator",
            api_key=read_api_key(cfg),
            key_hint=hint,
            timeout_s=cfg.timeout_s,
            concurrency=cfg.concurrency,
            max_retries=cfg.max_retries,
            backoff_s=cfg.backoff_s,
        )
        self.url = self.chat.url
        self.retries = 0  # retried attempts, for the report

    def check(self) -> None:
        """Before any work: the endpoint answers, the key is accepted and the model is served (GET /models)."""
        try:
            self.chat.check()
        except ChatFailure as failure:
            raise GeneratorError(failure.detail) from None

    def payload(self, request: Request) -> dict[str, Any]:
        o = request.options
        body: dict[str, Any] = {"model": self.name, "messages": request.messages, "max_tokens": o.max_new_tokens}
        body |= {"temperature": o.temperature, "top_p": o.top_p, "seed": o.seed}
        if o.top_k != _DEFAULTS.top_k:  # extensions (vLLM's and lmforge serve's names): sent only when used
            body["top_k"] = o.top_k
        if o.repetition_penalty != _DEFAULTS.repetition_penalty:
            body["repetition_penalty"] = o.repetition_penalty
        return body

    def call(self, request: Request) -> Reply:
        """The reply to one request (retried as configured); raises GeneratorError when it cannot be had."""
        try:
            return self.chat.complete(self.payload(request), _reply, self._count_retry)
        except ChatFailure as failure:
            if failure.reason == "refused":  # this request cannot be answered (too long, ...); counted, run goes on
                return Reply("", "refused", refused=failure.detail)
            if failure.retryable:
                raise GeneratorError(
                    f"{self.url} failed request {request.key} {self.cfg.max_retries + 1} times; last: {failure.detail}"
                ) from None
            raise GeneratorError(failure.detail) from None

    def _count_retry(self, failure: ChatFailure, retrying: bool) -> None:
        if retrying:
            self.retries += 1

    def close(self) -> None:
        self.chat.close()


def _reply(reply: ChatReply) -> Reply:
    finish = "length" if reply.finish_reason == "length" else "stop"
    return Reply(reply.text, finish, reply.prompt_tokens, reply.completion_tokens)


class LocalGenerator:
    """A local model folder (+ adapter) on the server's decode engine, in this process."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        from lmforge.inference.batching import BatchWorker
        from lmforge.inference.engine import load_engine

        self.cfg = cfg
        self.name = (cfg.adapter or cfg.model).rstrip("/").rsplit("/", 1)[-1]
        self.engine = load_engine(
            cfg.model, cfg.adapter, cfg.template, cfg.dtype, cfg.allow_unsafe_pickle, cfg.trust_remote_code
        )
        config = getattr(self.engine.model, "config", None)
        self.context = int(getattr(config, "max_position_embeddings", None) or 2048)  # as the server's limit
        self.retries = 0
        self._lock = threading.Lock()
        e = self.engine
        self.worker = BatchWorker(
            e.model, e.pad_id, e.stop_ids, max_batch_size=cfg.concurrency, max_queue=cfg.concurrency
        )
        self.worker.start()

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    def check(self) -> None:
        """Nothing to reach: the model loaded."""

    def call(self, request: Request) -> Reply:
        """The reply to one request, decoded in one batch with the other calls in flight."""
        from lmforge.inference.batching import Event, Row

        with self._lock:  # the tokenizer is not shared across threads
            prompt = self.engine.prompt_ids(request.messages)  # the server's chat prompt (same call)
        if not self._fits(prompt, request.options):
            return Reply("", "refused", refused=self._too_long(prompt, request.options))
        ended: list[Event] = []
        finished = threading.Event()

        def deliver(event: Event) -> None:
            if event[0] in ("done", "error"):
                ended.append(event)
                finished.set()

        row = Row(prompt, request.options, deliver)
        self.worker.submit([row])
        finished.wait()
        if ended[0][0] == "error":
            raise GeneratorError(f"in-process generation of request {request.key} failed: {ended[0][1]}")
        with self._lock:
            text = self._text(row.ids)
        return Reply(text, row.finish or "length", len(prompt), len(row.ids))

    def _fits(self, prompt: list[int], options: GenerationOptions) -> bool:
        return len(prompt) + options.max_new_tokens <= self.context

    def _too_long(self, prompt: list[int], options: GenerationOptions) -> str:
        budget = f"max_tokens {options.max_new_tokens}"
        return f"prompt is {len(prompt)} tokens, {budget}; the context length is {self.context}"

    def _text(self, ids: list[int]) -> str:
        """The reply text exactly as the server assembles it."""
        from lmforge.inference.detokenize import TextAssembler

        assembler = TextAssembler(self.engine.tokenizer, [])
        return "".join(assembler.add(token) for token in ids) + assembler.finish()

    def close(self) -> None:
        self.worker.stop()


Generator = EndpointGenerator | LocalGenerator


def open_generator(cfg: GeneratorConfig) -> Generator:
    """The configured generator, checked before any work (reachable, key accepted, model served)."""
    generator: Generator = LocalGenerator(cfg) if cfg.in_process else EndpointGenerator(cfg)
    generator.check()
    return generator

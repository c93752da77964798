"""`lmforge serve`: an OpenAI-compatible HTTP API over a ChatEngine, with dynamic batching.

Routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions (both streaming or not), GET /health.
Chat prompts are built only by the engine's training template (`engine.prompt_ids`), so the served model sees
exactly the ids it was trained on (QUALITY C17); all generation runs in one `BatchWorker` thread that batches
concurrent requests. With an API key every route but /health needs `Authorization: Bearer KEY` (D7).
Completions also score prompts (`echo` + `logprobs`, token-id prompts, `max_tokens` 0) in the same worker; chat
renders `tools` through the template and parses calls back (`tool_calls.py`). docs/serving.md lists every field.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from jinja2 import TemplateError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lmforge.inference import api_generation as gen
from lmforge.inference import tool_calls
from lmforge.inference.api_schema import (
    ApiError,
    ChatCompletionRequest,
    CompletionRequest,
    SamplingRequest,
    parse_body,
)
from lmforge.inference.batching import BatchWorker
from lmforge.inference.engine import ChatEngine
from lmforge.inference.limits import ServerLimits
from lmforge.inference.sampling import GenerationOptions
from lmforge.utils.errors import LmforgeError

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=SamplingRequest)

#: routes reachable without the API key; a test asserts this stays minimal (QUALITY D7)
PUBLIC_PATHS = frozenset({"/health"})


class BearerAuth:
    """ASGI middleware: every request outside PUBLIC_PATHS needs the exact `Bearer KEY` header (constant time)."""

    def __init__(self, app: Any, api_key: str) -> None:
        self.app = app
        self._expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" or scope.get("path") in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        given = [v for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
        if len(given) == 1 and hmac.compare_digest(given[0], self._expected):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":  # there are no websocket routes; refuse without a handshake either way
            await send({"type": "websocket.close", "code": 1008})
            return None
        error = ApiError(401, "missing or invalid API key (send 'Authorization: Bearer KEY')", code="invalid_api_key")
        response = JSONResponse(error.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


def create_app(
    engine: ChatEngine, *, api_key: str | None = None, model_name: str = "lmforge", **limits: Any
) -> FastAPI:
    """The API app; its worker thread starts and stops with the app's lifespan (uvicorn runs it)."""
    settings = ServerLimits(**limits)
    worker = BatchWorker(
        engine.model,
        engine.pad_id,
        engine.stop_ids,
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_wait_ms / 1000,
        max_queue=settings.max_queue,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker.start()
        yield
        worker.stop()

    app = FastAPI(title="lmforge", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.worker, app.state.limits, app.state.model_name = engine, worker, settings, model_name
    _add_error_handlers(app)
    _add_routes(app, _Api(engine, worker, settings, model_name))
    if api_key:
        app.add_middleware(BearerAuth, api_key=api_key)
    return app


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error_response(ApiError(exc.status_code, str(exc.detail), type=kind))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error while serving a request")
        return _error_response(ApiError(500, f"internal error: {type(exc).__name__}", type="server_error"))


def _add_routes(app: FastAPI, api: _Api) -> None:
    @app.get("/health")
    async def health() -> JSONResponse:
        ok = api.worker.alive
        return JSONResponse({"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [api.model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        api.check_model_id(model_id)
        return api.model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        req = api.check_model(parse_body(await _read_body(request, api.limits.max_body_bytes), ChatCompletionRequest))
        messages = [m.as_message() for m in req.messages]
        use = tool_calls.tool_use(req, api.engine.template)
        build = api.engine.prompt_ids if use is None else partial(_prompt_with_tools, api.engine, use=use)
        prompt = await _build_prompt(build, messages, api.limits.prompt_timeout_s)
        top = (req.top_logprobs or 0) if req.logprobs else None
        options = gen.ReplyOptions(logprobs=bool(req.logprobs), top_logprobs=top, tools=use)
        return await api.generate(request, req, [prompt], req.requested_tokens(), gen.CHAT, options)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        req = api.check_model(parse_body(await _read_body(request, api.limits.max_body_bytes), CompletionRequest))
        prompts = await api.completion_prompts(req)
        echo = [_echo_text(api.engine.tokenizer, p, ids) for p, ids in zip(req.prompts(), prompts, strict=True)]
        options = gen.ReplyOptions(
            echo=echo if req.echo else None,
            logprobs=req.logprobs is not None,
            top_logprobs=req.logprobs,
            prompt_top_logprobs=req.logprobs if req.echo else None,  # echo + logprobs scores the prompt
        )
        return await api.generate(request, req, prompts, req.max_tokens, gen.TEXT, options)


def _prompt_with_tools(engine: ChatEngine, messages: list[dict[str, Any]], use: tool_calls.ToolUse) -> list[int]:
    """The prompt with the tool definitions in the template's format; refused if the template ignores them."""
    prompt = engine.prompt_ids(messages, use.tools_json)
    tool_calls.check_rendered(engine.template, prompt, engine.prompt_ids(messages))
    return prompt


def _echo_text(tokenizer: Any, prompt: str | list[int], ids: list[int]) -> str:
    """The prompt as `echo` returns it: the request's own text, or the token ids decoded (special tokens kept)."""
    return prompt if isinstance(prompt, str) else tokenizer.decode(ids, skip_special_tokens=False)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) anything over `limit` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, f"request body over {limit} bytes (limit max_body_bytes)", code="body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body over {limit} bytes (limit max_body_bytes)", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _build_prompt(build: Any, source: Any, timeout_s: float) -> list[int]:
    """Template rendering + tokenizing off the event loop, bounded in time (D5); template errors become 400s."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(build, source), timeout_s)
    except TimeoutError as exc:
        raise ApiError(
            400, f"building the prompt took over {timeout_s} s (limit prompt_timeout_s)", code="prompt_timeout"
        ) from exc
    except LmforgeError as exc:  # e.g. a conversation the template cannot express
        raise ApiError(400, str(exc), param="messages", code="invalid_conversation") from exc
    except (TemplateError, OverflowError) as exc:  # the sandbox refused something this conversation made it do
        raise ApiError(400, f"the chat template failed on this conversation: {exc}", param="messages") from exc


class _Api:
    """What the generation routes share: the engine, its worker, the limits and the served model's name."""

    def __init__(self, engine: ChatEngine, worker: BatchWorker, limits: ServerLimits, model_name: str) -> None:
        self.engine, self.worker, self.limits, self.model_name = engine, worker, limits, model_name
        config = getattr(engine.model, "config", None)
        self.context = int(getattr(config, "max_position_embeddings", None) or 2048)
        self.vocab_size = int(getattr(config, "vocab_size", None) or len(engine.tokenizer))

    def model_card(self) -> dict[str, Any]:
        return {"id": self.model_name, "object": "model", "created": int(time.time()), "owned_by": "lmforge"}

    def check_model_id(self, model_id: str) -> None:
        if model_id != self.model_name:
            raise ApiError(
                404,
                f"model {model_id!r} is not served here; this server serves {self.model_name!r}",
                param="model",
                code="model_not_found",
                type="not_found_error",
            )

    def check_model(self, req: RequestT) -> RequestT:
        self.check_model_id(req.model)
        return req

    async def completion_prompts(self, req: CompletionRequest) -> list[list[int]]:
        """Each prompt's ids: text tokenized with the tokenizer's own special-token rules, or the ids as sent
        (checked against the vocabulary). Nothing reaches the model with zero tokens."""
        ids: list[list[int]] = []
        vocab = self.vocab_size
        for i, prompt in enumerate(req.prompts()):
            if isinstance(prompt, str):
                ids.append(await _build_prompt(self.engine.tokenizer.encode, prompt, self.limits.prompt_timeout_s))
            else:
                bad = next((t for t in prompt if t >= vocab), None)
                if bad is not None:
                    where = "prompt" if _is_flat(req.prompt) else f"prompt[{i}]"
                    message = f"{where}: token id {bad} is outside the vocabulary (ids 0..{vocab - 1})"
                    raise ApiError(400, message, param="prompt")
                ids.append(list(prompt))
            if not ids[-1]:
                raise ApiError(400, f"prompt[{i}] encodes to zero tokens; a prompt needs at least one", param="prompt")
        return ids

    async def generate(
        self,
        request: Request,
        req: SamplingRequest,
        prompts: list[list[int]],
        requested: int | None,
        shape: gen.ReplyShape,
        options: gen.ReplyOptions,
    ) -> Response:
        """Queue one row per (prompt, choice) and answer with the whole reply or a stream."""
        rows, per_row = [], []
        for prompt in prompts:
            choices = self.sampling(req, len(prompt), requested)
            rows += [prompt] * len(choices)
            per_row += choices
        if len(rows) > self.limits.max_queue:  # could never be queued: a 429 would invite useless retries
            message = f"{len(prompts)} prompts x n={req.n} sequences is over the queue limit ({self.limits.max_queue})"
            raise ApiError(400, message, param="prompt")
        if options.echo is not None:  # one echo text per row (a prompt's n choices each echo it)
            options = replace(options, echo=[text for text in options.echo for _ in range(req.n)])
        prompt_tokens = sum(len(p) for p in prompts)
        job = gen.Job(self.engine.tokenizer, rows, per_row, req.stop_list(), prompt_tokens, options)
        job.submit(self.worker)
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(
                gen.stream(job, shape, self.model_name, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return JSONResponse(await _until_done_or_gone(request, job, shape, self.model_name))

    def sampling(self, req: SamplingRequest, prompt_len: int, requested: int | None) -> list[GenerationOptions]:
        """Per-choice settings after the limit checks (n, stop, max_tokens, context length); choice i samples with
        seed + i, so the n choices differ and each repeats."""
        limits = self.limits
        if req.n > limits.max_n:
            raise ApiError(400, f"n must be <= {limits.max_n} (limit max_n), got {req.n}", param="n")
        if len(req.stop_list()) > limits.max_stop:
            raise ApiError(400, f"at most {limits.max_stop} stop strings (limit max_stop)", param="stop")
        if requested is not None and requested > limits.max_tokens:
            message = f"max_tokens must be <= {limits.max_tokens} (limit max_tokens), got {requested}"
            raise ApiError(400, message, param="max_tokens")
        room = self.context - prompt_len
        if room < (0 if requested == 0 else 1) or (requested is not None and requested > room):
            message = f"prompt is {prompt_len} tokens, max_tokens {requested}; the context length is {self.context}"
            raise ApiError(400, message, param="messages", code="context_length_exceeded")
        max_tokens = min(limits.default_max_tokens, room) if requested is None else requested
        return [req.options(max_tokens, choice) for choice in range(req.n)]


def _is_flat(prompt: Any) -> bool:
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], int)


async def _until_done_or_gone(request: Request, job: gen.Job, shape: gen.ReplyShape, model: str) -> dict[str, Any]:
    """The finished reply; if the client disconnects first, its rows are cancelled (E4)."""
    task = asyncio.ensure_future(gen.complete(job, shape, model))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.5)
            if done:
                return task.result()
            if await request.is_disconnected():
                raise ApiError(499, "client closed the request", code="client_closed")
    finally:
        if not task.done():
            job.cancel()
            task.cancel()

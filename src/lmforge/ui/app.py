"""The `lmforge ui` web app: a FastAPI JSON API plus one static page; live updates as server-sent events.

Security follows `lmforge serve`: loopback by default, a non-loopback host needs credentials (HTTP Basic, checked
in constant time). Requests whose Host is not the address the UI was started for (DNS rebinding) or whose Origin
is another site (cross-site form posts) are refused, so a web page the user visits cannot drive the UI. Errors
reach the page as `{"error": message}`; tracebacks stay in the terminal.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from lmforge.ui import specs
from lmforge.ui.jobs import Job, JobRunner
from lmforge.ui.tail import read_new_lines, read_new_records
from lmforge.utils.errors import LmforgeError, environment_error
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)
STATIC = Path(__file__).parent / "static"
#: seconds between checks of a job's files while a page follows it
POLL_S = 0.5
#: bytes of an existing process log a newly opened page starts with (the rest of the file is never read)
LOG_BACKLOG = 64 * 1024
DATA_PREVIEW_TIMEOUT_S = 600


class ChatHolder:
    """The Chat tab's loaded model: one ChatEngine (the one `lmforge chat` and `serve` use), replaced on load."""

    def __init__(self) -> None:
        self.engine: Any = None
        self.loaded: dict[str, Any] = {}
        self.lock = threading.Lock()

    def load(self, model: str, adapter: str | None, template: str, dtype: str) -> dict[str, Any]:
        from lmforge.inference.engine import load_engine
        from lmforge.ui.forms import resolve_paths

        named = {"model": model, **({"adapter": adapter} if adapter else {})}
        paths = resolve_paths(named, dict(named))
        with self.lock:
            self.engine = None  # free the previous model before loading the next
            self.engine = load_engine(named["model"], named.get("adapter"), template, dtype)
            self.loaded = {"model": named["model"], "adapter": named.get("adapter"), "template": template}
        return {"loaded": self.loaded, "paths": paths}

    def stream(self, messages: list[dict[str, str]], options: Any) -> Iterator[str]:
        engine = self.engine
        if engine is None:
            raise LmforgeError("no model loaded: fill in the model folder and press Load")
        yield from engine.stream(messages, options)


def _allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    return "*" in allowed_hosts or host in allowed_hosts


def _sse(event: str, data: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    runner: JobRunner,
    *,
    credentials: str | None = None,
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
) -> FastAPI:
    """The app over a job runner; `credentials` "user:password" turns on HTTP Basic auth for every route."""
    app = FastAPI(title="lmforge ui", docs_url=None, redoc_url=None, openapi_url=None)
    chat = ChatHolder()
    expected = f"Basic {base64.b64encode(credentials.encode()).decode()}".encode() if credentials else None

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
        if not _allowed(host, allowed_hosts):
            return _error(f"host {host!r} not allowed (open the address lmforge ui printed)", 403)
        origin = request.headers.get("origin")
        if origin and not _allowed(origin.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]"), allowed_hosts):
            return _error("cross-site request refused", 403)
        if expected is not None:
            given = (request.headers.get("authorization") or "").encode()
            if not hmac.compare_digest(given, expected):
                return Response("authentication required", 401, {"WWW-Authenticate": 'Basic realm="lmforge ui"'})
        return await call_next(request)

    @app.exception_handler(LmforgeError)
    async def lmforge_error(request: Request, exc: LmforgeError) -> JSONResponse:
        return _error(str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        message = environment_error(exc)
        if message is not None:
            return _error(message)
        logger.exception("lmforge ui: unexpected error in %s", request.url.path)
        return _error(
            f"unexpected error ({type(exc).__name__}: {exc}); details are in the terminal running lmforge ui", 500
        )

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        path = STATIC / name
        if "/" in name or not path.is_file():
            return _error(f"no file {name}", 404)
        return FileResponse(path)

    @app.get("/api/forms")
    def forms() -> dict[str, Any]:
        return {**specs.all_forms(), "jobs_dir": str(runner.jobs_dir), "cwd": str(Path.cwd())}

    @app.post("/api/{kind}/preview")
    async def preview(kind: str, request: Request) -> dict[str, Any]:
        values = await request.json()
        return (await asyncio.to_thread(_plan, kind, values)).preview()

    @app.post("/api/{kind}/start")
    async def start(kind: str, request: Request) -> dict[str, Any]:
        values = await request.json()
        planned = await asyncio.to_thread(_plan, kind, values)
        return {**planned.preview(), "job": specs.start(planned, runner).summary()}

    def _plan(kind: str, values: dict[str, Any]) -> specs.Planned:
        if kind == "train":
            return specs.plan_train(values, runner)
        if kind == "eval":
            return specs.plan_eval(values, runner)
        if kind == "export":
            return specs.plan_export(values)
        raise LmforgeError(f"unknown form {kind!r}")

    @app.post("/api/data/examples")
    async def data_preview(request: Request) -> dict[str, Any]:
        body = await request.json()
        planned = await asyncio.to_thread(specs.plan_train, body.get("values") or {}, runner)
        count = int(body.get("n") or 3)
        folder = runner.jobs_dir / ".data-preview"
        folder.mkdir(exist_ok=True)
        config = folder / "config.yaml"
        config.write_text(planned.config_yaml or "", encoding="utf-8")
        args = ["data", "preview", str(config), "--n", str(count)]
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "lmforge", *args],
            capture_output=True,
            text=True,
            timeout=DATA_PREVIEW_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        errors = [line for line in done.stderr.splitlines() if line.startswith("lmforge") and " error: " in line]
        return {
            "command": specs.display_command(args),
            "yaml": planned.config_yaml,
            "paths": planned.paths,
            "output": done.stdout,
            "error": "\n".join(errors) or (f"exit status {done.returncode}" if done.returncode else None),
        }

    @app.post("/api/data/catalog")
    async def data_catalog(request: Request) -> dict[str, Any]:
        """The datasets of a catalogue (ours or a LLaMA-Factory dataset_info.json), as `lmforge data list`."""
        from lmforge.data.catalog import load_catalog
        from lmforge.ui.forms import resolve_paths

        body = await request.json()
        typed = (body.get("catalog") or "").strip()
        if not typed:
            raise LmforgeError("data.catalog: fill in a catalogue file (our YAML or a dataset_info.json) first")
        named = {
            "data.catalog": typed,
            **({"data.dataset_dir": body["dataset_dir"]} if body.get("dataset_dir") else {}),
        }
        paths = resolve_paths(named, dict(named))
        if not Path(named["data.catalog"]).is_file():
            raise LmforgeError(f"data.catalog {named['data.catalog']}: no such file")
        catalog = load_catalog(named["data.catalog"], named.get("data.dataset_dir"))
        return {"names": sorted(catalog.entries), "listing": catalog.listing(), "paths": paths}

    @app.get("/api/jobs")
    def jobs() -> list[dict[str, Any]]:
        return [job.summary() for job in runner.jobs()]

    @app.post("/api/jobs/{identifier}/abort")
    def abort(identifier: str) -> dict[str, Any]:
        return runner.abort(identifier).summary()

    @app.post("/api/jobs/{identifier}/resume")
    def resume(identifier: str) -> dict[str, Any]:
        return runner.resume(identifier).summary()

    @app.get("/api/jobs/{identifier}/results")
    def results(identifier: str) -> dict[str, Any]:
        return job_results(runner.get(identifier))

    @app.get("/api/jobs/{identifier}/records")
    def records(identifier: str) -> dict[str, Any]:
        from lmforge.training.callbacks import read_log

        job = runner.get(identifier)
        return {"job": job.summary(), "records": read_log(job.trainer_log)}

    @app.get("/api/jobs/{identifier}/events")
    async def events(identifier: str, request: Request) -> StreamingResponse:
        job = runner.get(identifier)
        cursor = request.headers.get("last-event-id") or request.query_params.get("cursor") or ""
        return StreamingResponse(follow(runner, job, cursor, request), media_type="text/event-stream")

    @app.post("/api/chat/load")
    async def chat_load(request: Request) -> dict[str, Any]:
        body = await request.json()
        model = (body.get("model") or "").strip()
        if not model:
            raise LmforgeError("model: required (a model folder or hub id)")
        adapter = (body.get("adapter") or "").strip() or None
        return await asyncio.to_thread(
            chat.load, model, adapter, body.get("template") or "auto", body.get("dtype") or "auto"
        )

    @app.post("/api/chat/send")
    async def chat_send(request: Request) -> StreamingResponse:
        body = await request.json()
        options = specs.chat_options(body.get("options") or {})
        messages = [{"role": "system", "content": body["system"]}] if body.get("system") else []
        messages += [{"role": m["role"], "content": m["content"]} for m in body.get("messages") or []]
        if not messages or messages[-1]["role"] != "user":
            raise LmforgeError("the conversation must end with a user message")
        if chat.engine is None:
            raise LmforgeError("no model loaded: fill in the model folder and press Load")

        def pieces() -> Iterator[str]:
            try:
                for piece in chat.stream(messages, options):
                    yield _sse("piece", {"text": piece})
                yield _sse("done", {})
            except Exception as exc:  # mid-stream: the page shows the message, the terminal the traceback
                if not isinstance(exc, LmforgeError):
                    logger.exception("lmforge ui: chat generation failed")
                yield _sse("failed", {"error": str(exc)})

        return StreamingResponse(pieces(), media_type="text/event-stream")

    return app


def job_results(job: Job) -> dict[str, Any]:
    """The metrics a finished job left: eval_results.json, an export's verification, a run's last metrics."""
    out = job.output_dir
    for name in ("eval_results.json", "lmforge_export.json"):
        if (out / name).is_file():
            return {"file": str(out / name), "data": json.loads((out / name).read_text(encoding="utf-8"))}
    return {"file": None, "data": None}


async def follow(runner: JobRunner, job: Job, cursor: str, request: Request) -> Any:
    """Server-sent events for one job: its status, new trainer_log.jsonl records and new process-log lines,
    read from byte offsets (the event id carries them, so a reconnecting page continues where it was)."""
    try:
        attempt, records_at, log_at = (int(part) for part in cursor.split(":"))
    except ValueError:
        attempt, records_at, log_at = -1, 0, -1
    if log_at < 0:
        size = job.log_path.stat().st_size if job.log_path.is_file() else 0
        log_at = max(0, size - LOG_BACKLOG)
    trainer_log = job.trainer_log
    while True:
        summary = runner.get(job.id).summary()
        reset = summary["attempt"] != attempt
        if reset:  # a new attempt (resume) rewrites the training log: start over
            attempt, records_at = summary["attempt"], 0
        records, chunk = read_new_records(trainer_log, records_at)
        lines = read_new_lines(job.log_path, log_at)
        records_at, log_at = chunk.offset, lines.offset
        payload = {"job": summary, "records": records, "log": lines.lines, "reset": reset or chunk.reset}
        payload["now"] = time.time()
        yield _sse("update", payload, f"{attempt}:{records_at}:{log_at}")
        if summary["state"] != "running" and not records and not lines.lines:
            yield _sse("end", {"job": summary})
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S)

"""Serving security: auth on every route (D7), no request templates and bounded prompt building (D5), safe
binding (D6), abuse inputs answered with OpenAI-style 4xx errors, never 500 (D8)."""

from __future__ import annotations

import json
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from lmforge import cli
from lmforge.inference.engine import ChatEngine, load_engine
from lmforge.inference.server import PUBLIC_PATHS, create_app
from lmforge.utils.errors import LmforgeError
from tests.fixtures.server import running_server

KEY = "k-7d1e0c5a9b"
MODEL = "tiny"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0}


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> ChatEngine:
    return load_engine(str(tiny_model_dir), dtype="float32")


@pytest.fixture(scope="module")
def base_url(engine: ChatEngine) -> Iterator[str]:
    with running_server(create_app(engine, model_name=MODEL, max_body_bytes=64 * 1024)) as url:
        yield url


def _is_openai_error(response: httpx.Response) -> bool:
    error = response.json().get("error", {})
    return set(error) == {"message", "type", "param", "code"} and bool(error["message"])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {KEY}\n"}, {"Authorization": f"bearer {KEY}"}],
    ids=["no-key", "wrong-key", "trailing-newline", "lowercase-scheme"],
)
def test_every_route_but_the_allowlist_needs_the_key(engine: ChatEngine, headers: dict[str, str]) -> None:
    """D7: routes are enumerated from the app at test time, so a new route without auth fails here."""
    app = create_app(engine, api_key=KEY, model_name=MODEL)
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: auth answers before any handler runs
    routes = [(r.path, m) for r in app.routes for m in sorted(getattr(r, "methods", None) or {"GET"}) if m != "HEAD"]
    routes = [(re.sub(r"\{[^}]*\}", MODEL, path), method) for path, method in routes]  # fill path parameters
    assert {path for path, _ in routes} >= {"/v1/models", "/v1/chat/completions", "/v1/completions", "/health"}
    open_paths = set()
    for path, method in routes:
        response = client.request(method, path, headers=headers, json=CHAT)
        if response.status_code != 401:
            open_paths.add(path)
        else:
            assert _is_openai_error(response) and response.headers["www-authenticate"] == "Bearer"
    assert open_paths == set(PUBLIC_PATHS) == {"/health"}
    assert ("/v1/models/tiny", "GET") in routes
    good = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert good.status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_server_binds_loopback_and_never_logs_the_key(tiny_model_dir: Path) -> None:
    """D6 default bind + D7 key never in logs: a real `lmforge serve` process at debug log level."""
    port = _free_port()
    argv = [
        sys.executable,
        "-m",
        "lmforge.cli",
        "serve",
        "--model",
        str(tiny_model_dir),
        "--model-name",
        MODEL,
        "--port",
        str(port),
        "--api-key",
        KEY,
        "--log-level",
        "debug",
        "--dtype",
        "float32",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        for key in (KEY, "wrong", KEY.upper()):
            httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert (
            httpx.post(
                f"{url}/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
            ).status_code
            == 200
        )
    finally:
        proc.terminate()
        logs = proc.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/v1" in logs and "POST /v1/chat/completions" in logs  # logs were captured
    assert KEY not in logs and KEY.upper() not in logs


def test_non_loopback_host_without_key_refuses_unless_insecure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tiny_model_dir: Path
) -> None:
    """D6: refused before the model loads; --insecure-no-auth starts with a banner."""
    assert cli.main(["serve", "--model", "/does/not/exist", "--host", "0.0.0.0"]) == 2
    assert "refusing to serve on 0.0.0.0 without authentication" in capsys.readouterr().err
    started: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: started.append(kwargs))
    assert cli.main(["serve", "--model", str(tiny_model_dir), "--host", "0.0.0.0", "--insecure-no-auth"]) == 0
    assert started[0]["host"] == "0.0.0.0" and "WITHOUT authentication" in capsys.readouterr().err
    assert cli.main(["serve", "--model", str(tiny_model_dir), "--max-queue", "3"]) == 0
    assert started[1]["host"] == "127.0.0.1"
    assert cli.build_parser().parse_args(["serve", "--model", "m"]).host == "127.0.0.1"


@pytest.mark.parametrize("where", ["top-level", "chat_template_kwargs"])
def test_request_supplied_chat_template_is_rejected(base_url: str, where: str) -> None:
    """D5 (CVE-2025-61620 pattern and its chat_template_kwargs bypass)."""
    template = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
    body = (
        {**CHAT, "chat_template": template}
        if where == "top-level"
        else {**CHAT, "chat_template_kwargs": {"chat_template": template}}
    )
    response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["code"] == "chat_template_not_allowed"


class _SlowTemplate:
    """A server-side template whose rendering runs far past the limit (pure Python, like a Jinja loop)."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode_prompt(self, tokenizer: Any, messages: list[dict[str, Any]], tools: Any = None) -> list[int]:
        end, n = time.monotonic() + self.seconds, 0
        while time.monotonic() < end:
            n += sum(range(1000))
        return self.inner.encode_prompt(tokenizer, messages, tools)


def test_slow_prompt_rendering_is_cut_off_and_health_stays_responsive(engine: ChatEngine) -> None:
    """D5: rendering is bounded (1 s) and the event loop keeps answering /health in under 100 ms meanwhile."""
    slow = ChatEngine(engine.model, engine.tokenizer, _SlowTemplate(engine.template, seconds=1.8))
    with running_server(create_app(slow, model_name=MODEL, prompt_timeout_s=1.0)) as url:
        result: dict[str, Any] = {}

        def post() -> None:
            start = time.monotonic()
            result["response"] = httpx.post(f"{url}/chat/completions", json=CHAT, timeout=30)
            result["seconds"] = time.monotonic() - start

        thread = threading.Thread(target=post)
        thread.start()
        time.sleep(0.3)
        health_times = []
        with httpx.Client() as client:
            for _ in range(5):
                start = time.monotonic()
                assert client.get(url.removesuffix("/v1") + "/health").status_code == 200
                health_times.append(time.monotonic() - start)
                time.sleep(0.05)
        thread.join(30)
    assert statistics.median(health_times) < 0.1 and max(health_times) < 0.5, health_times
    assert result["response"].status_code == 400 and result["response"].json()["error"]["code"] == "prompt_timeout"
    assert result["seconds"] < 1.6  # answered at the 1 s limit, not when the render ended


def _post(url: str, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/chat/completions", content=content, headers={"Content-Type": "application/json"}, timeout=30
    )


def _with(**fields: Any) -> bytes:
    return json.dumps({**CHAT, **fields}).encode()


ABUSE = {
    "max_tokens_1e9": (_with(max_tokens=10**9), 400, "max_tokens"),
    "n_1000": (_with(n=1000), 400, "n"),
    "negative_temperature": (_with(temperature=-0.5), 400, "temperature"),
    "nan_temperature": (
        b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
        400,
        "temperature",
    ),
    "prompt_over_context": (_with(messages=[{"role": "user", "content": "a b " * 6000}]), 400, "messages"),
    "invalid_utf8": (b'{"model": "tiny", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, None),
    "deeply_nested": (b'{"model": "tiny", "messages": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400, None),
    "not_an_object": (b"[1, 2]", 400, None),
    "unknown_field": (_with(functions=[{"name": "f"}]), 400, "functions"),
    "wrong_role": (_with(messages=[{"role": "wizard", "content": "x"}]), 400, "messages.0.role"),
    "seed_out_of_range": (_with(seed=10**30), 400, "seed"),
    "too_many_stops": (_with(stop=[chr(97 + i) for i in range(17)]), 400, "stop"),
    "body_too_large": (b'{"model": "tiny", "pad": "' + b"x" * 10 * 1024 * 1024 + b'"}', 413, None),
}


@pytest.mark.parametrize("case", list(ABUSE))
def test_abuse_inputs_get_openai_style_4xx(base_url: str, case: str) -> None:
    """D8: bad input never reaches the model and never gives a 500; the server keeps serving afterwards."""
    body, status, param = ABUSE[case]
    response = _post(base_url, body)
    assert response.status_code == status, response.text[:300]
    assert _is_openai_error(response)
    if param is not None:
        assert response.json()["error"]["param"] == param
    assert _post(base_url, _with()).status_code == 200


def test_body_limit_is_configurable(engine: ChatEngine) -> None:
    with running_server(create_app(engine, model_name=MODEL, max_body_bytes=200)) as url:
        assert _post(url, _with(messages=[{"role": "user", "content": "x" * 300}])).status_code == 413
        assert _post(url, _with()).status_code == 200


def test_api_key_file_keeps_the_key_off_the_command_line(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"{KEY}\n")
    args = cli.build_parser().parse_args(["serve", "--model", "m", "--api-key-file", str(key_file)])
    assert cli._read_api_key(args) == KEY
    key_file.write_text("\n")
    with pytest.raises(LmforgeError, match="first line is empty"):
        cli._read_api_key(args)


def test_building_the_cli_with_serve_loads_no_heavy_modules() -> None:
    """`lmforge --help` stays instant: serve's limit flags come from a module importing neither torch nor fastapi."""
    code = (
        "import sys, lmforge.cli; lmforge.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

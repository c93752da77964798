"""One client for an OpenAI-compatible chat endpoint (`lmforge serve`, vLLM, a hosted API), shared by the RL judge
and `lmforge generate`'s endpoint generator.

It owns what both need from the wire: the Bearer key, a connection pool sized to the requests in flight,
POST /chat/completions with retries (exponential backoff; a Retry-After header, in seconds or as an HTTP date,
wins; every wait capped at MAX_WAIT_S), the classification of each answer, the reply (text, finish_reason, usage)
and the GET /models check. What a failure means for the run is the caller's policy: the judge counts a sample
without a score, the generator stops or counts a refused request.

Every failure is a `ChatFailure` whose `reason` says which kind it is:
  http             429, 5xx, a timeout or a lost connection: retried
  malformed        a 200 whose body is not a chat completion: retried
  auth             401/403, the key is wrong or missing: never retried (it will not pass by itself)
  model_not_found  404 (with the model names the endpoint serves, when it lists them): never retried
  refused          any other 4xx (400: e.g. a prompt longer than the context): this request cannot be answered
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

#: longest wait between retries, whatever Retry-After or the backoff says
MAX_WAIT_S = 60.0
T = TypeVar("T")


class ChatFailure(Exception):
    """One failed attempt. `reason` is its kind (see the module doc), `detail` the message for the user, `wait_s`
    how long to wait before retrying (Retry-After; None = back off; 0 = at once, for failures waiting cannot help)."""

    def __init__(self, reason: str, detail: str, *, retryable: bool = False, wait_s: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.retryable, self.wait_s = reason, detail, retryable, wait_s


@dataclass(frozen=True)
class ChatReply:
    """What a chat completion answered: choices[0]'s text and finish_reason, and the token usage (0 if not sent)."""

    text: str
    finish_reason: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0


def parse_reply(body: Any) -> ChatReply:
    """The reply in a chat-completions response body, or ChatFailure('malformed')."""
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ChatFailure(
            "malformed", f"no choices[0].message.content in {str(body)[:200]!r}", retryable=True
        ) from None
    if not isinstance(content, str):
        raise ChatFailure("malformed", f"message content is {type(content).__name__}, not text", retryable=True)
    usage = body.get("usage") or {}
    try:
        tokens = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    except (AttributeError, TypeError, ValueError):
        raise ChatFailure("malformed", f"usage is not token counts: {str(usage)[:200]!r}", retryable=True) from None
    return ChatReply(content, choice.get("finish_reason"), *tokens)


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RemoteChat:
    """An OpenAI-compatible endpoint at `base_url` (ending in /v1), asked for `model`, `concurrency` requests at once.

    `section` names the config section in messages ("rl.judge", "generator"); `key_hint` says where the key came
    from, for the message a 401/403 gets (e.g. "from rl.judge.api_key_env JUDGE_KEY").
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        section: str,
        api_key: str | None,
        key_hint: str,
        timeout_s: float,
        concurrency: int,
        max_retries: int,
        backoff_s: float,
    ) -> None:
        import httpx

        self.url = base_url.rstrip("/")
        self.model, self.section, self.key_hint = model, section, key_hint
        self.max_retries, self.backoff_s = max_retries, backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # one kept-alive connection per request in flight (httpx keeps only 20 by default: more would reconnect)
        size = max(1, concurrency)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s, limits=limits)

    def complete(
        self,
        payload: dict[str, Any],
        accept: Callable[[ChatReply], T],
        on_failure: Callable[[ChatFailure, bool], None] | None = None,
    ) -> T:
        """accept(reply) of one POST /chat/completions, retried as configured; `accept` may raise a ChatFailure of
        its own (e.g. an unparsable judge score) to retry too. `on_failure(failure, retrying)` sees every failed
        attempt. Raises the last ChatFailure when it is not retryable or the retries are used up."""
        attempt = 0
        while True:
            try:
                return accept(self.post(payload))
            except ChatFailure as failure:
                retrying = failure.retryable and attempt < self.max_retries
                if on_failure is not None:
                    on_failure(failure, retrying)
                if not retrying:
                    raise
                time.sleep(self.wait_s(attempt, failure))
                attempt += 1

    def wait_s(self, attempt: int, failure: ChatFailure) -> float:
        """The wait before retry number `attempt` + 1: what the endpoint asked for, else backoff_s * 2**attempt."""
        wait = self.backoff_s * 2**attempt if failure.wait_s is None else failure.wait_s
        return min(wait, MAX_WAIT_S)

    def post(self, payload: dict[str, Any]) -> ChatReply:
        """One attempt: the reply, or a ChatFailure saying what kind of failure it was."""
        import httpx

        try:
            response = self.client.post("/chat/completions", json=payload)
        except httpx.HTTPError as exc:  # timeouts and lost connections
            raise ChatFailure("http", f"{type(exc).__name__}: {exc}", retryable=True) from None
        status = response.status_code
        if status == 200:
            try:
                body = response.json()
            except ValueError:
                raise ChatFailure(
                    "malformed", f"response is not JSON: {response.text[:200]!r}", retryable=True
                ) from None
            return parse_reply(body)
        self._raise_for_auth(response)
        if status == 429 or status >= 500:
            wait = retry_after_s(response.headers.get("Retry-After"))
            raise ChatFailure("http", f"status {status}: {response.text[:200]!r}", retryable=True, wait_s=wait)
        if status == 404:
            raise ChatFailure("model_not_found", self._not_found(response))
        raise ChatFailure("refused", f"status {status}: {response.text[:300]}")

    def served_models(self) -> list[str] | None:
        """The model names GET /models lists, or None when the endpoint does not list them; ChatFailure('http') when
        it cannot be reached and ChatFailure('auth') when the key is refused."""
        import httpx

        try:
            response = self.client.get("/models")
        except httpx.HTTPError as exc:
            raise ChatFailure("http", f"{type(exc).__name__}: {exc}", retryable=True) from None
        self._raise_for_auth(response)
        if response.status_code != 200:
            return None
        try:
            return sorted(str(card["id"]) for card in response.json()["data"])
        except (ValueError, KeyError, TypeError):
            return None

    def check(self) -> None:
        """Before any work: the endpoint answers, the key is accepted and the model is served (GET /models).
        Endpoints that do not list their models pass; their requests will tell."""
        try:
            names = self.served_models()
        except ChatFailure as failure:
            if failure.reason != "http":
                raise
            raise ChatFailure("http", f"{self.section}.base_url {self.url} is unreachable: {failure.detail}") from None
        if names is not None and self.model not in names:
            served = ", ".join(names) or "none"
            where = f"{self.section}.model {self.model!r} is not served by {self.url}"
            raise ChatFailure("model_not_found", f"{where}; it serves: {served}")

    def _raise_for_auth(self, response: Any) -> None:
        if response.status_code in (401, 403):
            raise ChatFailure(
                "auth",
                f"{self.url} answered {response.status_code}: the API key is wrong or missing ({self.key_hint}): "
                f"{response.text[:200]}",
            )

    def _not_found(self, response: Any) -> str:
        """Why a 404 happened, with the model names the endpoint serves when it lists them."""
        where = f"{self.url}/chat/completions answered 404 for {self.section}.model {self.model!r}"
        try:
            names = self.served_models()
        except ChatFailure:
            names = None
        if names is None:
            return f"{where}: {response.text[:200]!r}"
        return f"model not found: {where}; the endpoint serves {', '.join(names) or 'no models'}"

    def close(self) -> None:
        self.client.close()

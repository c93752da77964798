"""An AI judge (RLAIF) scoring completions through an OpenAI-compatible chat-completions endpoint.

Each completion is one request: the configured prompt with {prompt}, {response} (and {reference}) filled in,
sent as a user message to POST {base_url}/chat/completions. The first `score_regex` match of the reply is the
score; it must lie in [min_score, max_score] and is rescaled to [0, 1]. A failed request (connection error,
timeout, non-2xx status, malformed body) or an unparsable/out-of-range score is retried up to `max_retries`
times; after that the sample gets no score (None), is counted by reason in `failures` and logged -- it is never
scored as 0, which would teach the policy that whatever it wrote was bad.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lmforge.config.schema import JudgeConfig
from lmforge.rl.rewards import RewardBatch
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)


class JudgeFailure(Exception):
    """One failed attempt; `reason` is the counter key (http, malformed, unparsable, out_of_range)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def check_judge_config(judge: JudgeConfig) -> str | None:
    """Validate the judge keys up front; return the API key (from api_key_env) or None."""
    if not judge.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"rl.judge.base_url: expected an http(s) URL ending in /v1, got {judge.base_url!r}")
    if not judge.model:
        raise ConfigError("rl.judge.model: the model name to send to the judge endpoint is required")
    if "{response}" not in judge.prompt:
        raise ConfigError("rl.judge.prompt: the judge prompt must contain {response} (and usually {prompt})")
    if judge.max_score <= judge.min_score:
        raise ConfigError(f"rl.judge: max_score ({judge.max_score}) must exceed min_score ({judge.min_score})")
    try:
        re.compile(judge.score_regex)
    except re.error as exc:
        raise ConfigError(f"rl.judge.score_regex: invalid regex {judge.score_regex!r}: {exc}") from None
    if judge.api_key_env is None:
        return None
    key = os.environ.get(judge.api_key_env)
    if not key:
        raise ConfigError(f"rl.judge.api_key_env: environment variable {judge.api_key_env} is not set")
    return key


def parse_score(reply: str, judge: JudgeConfig) -> float:
    """The score in [0, 1] from a judge reply, or JudgeFailure (unparsable / out_of_range)."""
    match = re.search(judge.score_regex, reply)
    if match is None:
        raise JudgeFailure("unparsable", f"no score matching {judge.score_regex!r} in {reply[:80]!r}")
    text = match.group(1) if match.groups() else match.group(0)
    try:
        value = float(text)
    except ValueError:
        raise JudgeFailure("unparsable", f"{text!r} is not a number") from None
    if not judge.min_score <= value <= judge.max_score:
        raise JudgeFailure("out_of_range", f"{value} outside [{judge.min_score}, {judge.max_score}]")
    return (value - judge.min_score) / (judge.max_score - judge.min_score)


def reply_text(body: Any) -> str:
    """choices[0].message.content of a chat-completions response body, or JudgeFailure('malformed')."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise JudgeFailure("malformed", f"no choices[0].message.content in {str(body)[:80]!r}") from None
    if not isinstance(content, str):
        raise JudgeFailure("malformed", f"message content is {type(content).__name__}, not text")
    return content


class JudgeSource:
    """Reward source: one judge request per completion, `concurrency` at a time, retried, failures counted."""

    name = "judge"

    def __init__(self, judge: JudgeConfig) -> None:
        import httpx

        self.judge = judge
        self.weight = judge.weight
        api_key = check_judge_config(judge)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=judge.base_url.rstrip("/"), headers=headers, timeout=judge.timeout_s)
        self.failures: Counter = Counter()  # reason -> samples given up on (cumulative)
        self.attempt_failures: Counter = Counter()  # reason -> failed attempts, retried or not (cumulative)
        self.causes: dict[str, str] = {}  # reason -> the latest failure's detail

    def score(self, batch: RewardBatch) -> list[float | None]:
        jobs = zip(batch.prompts, batch.completions, batch.references, strict=True)
        with ThreadPoolExecutor(max(1, self.judge.concurrency)) as pool:
            scores = list(pool.map(lambda job: self.score_one(*job), jobs))
        return scores

    def score_one(self, prompt: str, response: str, reference: str | None) -> float | None:
        text = self.judge.prompt.replace("{prompt}", prompt).replace("{response}", response)
        text = text.replace("{reference}", reference or "")
        reason = ""
        for _ in range(self.judge.max_retries + 1):
            try:
                return parse_score(self.request(text), self.judge)
            except JudgeFailure as failure:
                reason = failure.reason
                self.causes[reason] = failure.detail
                self.attempt_failures[reason] += 1
                logger.debug("judge attempt failed: %s", failure)
        self.failures[reason] += 1
        return None

    def request(self, text: str) -> str:
        import httpx

        payload = {
            "model": self.judge.model,
            "messages": [{"role": "user", "content": text}],
            "max_tokens": self.judge.max_tokens,
            "temperature": self.judge.temperature,
        }
        try:
            response = self.client.post("/chat/completions", json=payload)
        except httpx.HTTPError as exc:
            raise JudgeFailure("http", f"{type(exc).__name__}: {exc}") from None
        if response.status_code == 404:
            raise JudgeFailure("model_not_found", self.model_not_found(response))
        if response.status_code != 200:
            raise JudgeFailure("http", f"status {response.status_code}: {response.text[:80]!r}")
        try:
            body = response.json()
        except ValueError:
            raise JudgeFailure("malformed", f"response is not JSON: {response.text[:80]!r}") from None
        return reply_text(body)

    def model_not_found(self, response: Any) -> str:
        """Why a 404 happened, with the model names the endpoint serves (GET /models) when it lists them."""
        import httpx

        where = f"{self.judge.base_url}/chat/completions answered 404 for rl.judge.model {self.judge.model!r}"
        try:
            listed = self.client.get("/models").json()["data"]
            names = sorted(str(card["id"]) for card in listed)
        except (httpx.HTTPError, ValueError, KeyError, TypeError):  # the endpoint does not list its models
            return f"{where}: {response.text[:120]!r}"
        return f"model not found: {where}; the endpoint serves {', '.join(names) or 'no models'}"

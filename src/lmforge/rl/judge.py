"""An AI judge (RLAIF) scoring completions through an OpenAI-compatible chat-completions endpoint.

Each completion is one request (through the shared `RemoteChat` client): the configured prompt with {prompt},
{response} (and {reference}) filled in, sent as a user message. The first `score_regex` match of the reply is the
score; it must lie in [min_score, max_score] and is rescaled to [0, 1]. A failed request (connection error,
timeout, 429, 5xx, malformed body) is retried up to `max_retries` times after a backoff (a Retry-After header
wins), an unparsable/out-of-range score at once; a wrong key (said once in the log), an unknown model or a
refused request are not retried. After that the sample gets no score (None), is counted by reason in `failures`
and logged -- it is never scored as 0, which would teach the policy that whatever it wrote was bad.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from lmforge.config.schema import JudgeConfig
from lmforge.inference.remote_chat import ChatFailure, RemoteChat
from lmforge.rl.rewards import RewardBatch
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)


class JudgeFailure(ChatFailure):
    """A reply whose score cannot be used (unparsable, out_of_range): retried at once, the endpoint is fine."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail, retryable=True, wait_s=0.0)


def check_judge_config(judge: JudgeConfig) -> str | None:
    """Validate the judge keys up front; return the API key (from api_key_env) or None."""
    if not judge.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"rl.judge.base_url: expected an http(s) URL ending in /v1, got {judge.base_url!r}")
    if not judge.model:
        raise ConfigError("rl.judge.model: the model name to send to the judge endpoint is required")
    if "{response}" not in judge.prompt:
        raise ConfigError("rl.judge.prompt: the judge prompt must contain {response} (and usually {prompt})")
    if judge.max_retries < 0 or judge.backoff_s < 0:
        raise ConfigError(
            f"rl.judge: max_retries ({judge.max_retries}) and backoff_s ({judge.backoff_s}) must be >= 0"
        )
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


class JudgeSource:
    """Reward source: one judge request per completion, `concurrency` at a time, retried, failures counted."""

    name = "judge"

    def __init__(self, judge: JudgeConfig) -> None:
        self.judge = judge
        self.weight = judge.weight
        api_key = check_judge_config(judge)
        hint = f"from {judge.api_key_env}" if judge.api_key_env else "none was set: rl.judge.api_key_env"
        self.chat = RemoteChat(
            judge.base_url,
            judge.model,
            section="rl.judge",
            api_key=api_key,
            key_hint=hint,
            timeout_s=judge.timeout_s,
            concurrency=judge.concurrency,
            max_retries=judge.max_retries,
            backoff_s=judge.backoff_s,
        )
        self.failures: Counter = Counter()  # reason -> samples given up on (cumulative)
        self.attempt_failures: Counter = Counter()  # reason -> failed attempts, retried or not (cumulative)
        self.causes: dict[str, str] = {}  # reason -> the latest failure's detail
        self._lock = threading.Lock()  # the counters are updated from the request threads

    def score(self, batch: RewardBatch) -> list[float | None]:
        jobs = zip(batch.prompts, batch.completions, batch.references, strict=True)
        with ThreadPoolExecutor(max(1, self.judge.concurrency)) as pool:
            scores = list(pool.map(lambda job: self.score_one(*job), jobs))
        return scores

    def score_one(self, prompt: str, response: str, reference: str | None) -> float | None:
        text = self.judge.prompt.replace("{prompt}", prompt).replace("{response}", response)
        text = text.replace("{reference}", reference or "")
        payload = {
            "model": self.judge.model,
            "messages": [{"role": "user", "content": text}],
            "max_tokens": self.judge.max_tokens,
            "temperature": self.judge.temperature,
        }
        try:
            return self.chat.complete(payload, lambda reply: parse_score(reply.text, self.judge), self._attempt_failed)
        except ChatFailure as failure:
            with self._lock:
                self.failures[failure.reason] += 1
            return None

    def _attempt_failed(self, failure: ChatFailure, retrying: bool) -> None:
        with self._lock:
            said = failure.reason in self.causes
            self.causes[failure.reason] = failure.detail
            self.attempt_failures[failure.reason] += 1
        if failure.reason == "auth" and not said:  # every sample will fail the same way: say it once, plainly
            logger.error("rl.judge: %s", failure.detail)
        logger.debug("judge attempt failed%s: %s", " (retrying)" if retrying else "", failure)

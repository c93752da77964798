"""The shared OpenAI-compatible chat client against a real local HTTP server (no mocked client): retries wait as
the endpoint asks (Retry-After) or back off, and each kind of failure is told apart (key, unknown model with the
served names, refused request, malformed body) and retried only when retrying can help."""

from __future__ import annotations

import email.utils
import time

import pytest

from lmforge.inference.remote_chat import MAX_WAIT_S, ChatFailure, ChatReply, RemoteChat, parse_reply, retry_after_s
from tests.fixtures.scripted_endpoint import Endpoint, completion, error, scripted_endpoint

PAYLOAD = {"model": "judge", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def _client(url: str, api_key: str | None = "sk-test", **kw) -> RemoteChat:
    options = {"max_retries": 2, "backoff_s": 0.01, "timeout_s": 10.0, "concurrency": 2} | kw
    return RemoteChat(url, "judge", section="rl.judge", api_key=api_key, key_hint="from JUDGE_KEY", **options)


def _complete(client: RemoteChat) -> tuple[ChatReply, list[tuple[str, bool]]]:
    seen: list[tuple[str, bool]] = []
    reply = client.complete(PAYLOAD, lambda r: r, lambda failure, retrying: seen.append((failure.reason, retrying)))
    return reply, seen


def _failure(answers: list, served: list[str] | None = None, **kw) -> tuple[ChatFailure, Endpoint]:
    """The ChatFailure a request to an endpoint answering `answers` ends in, and what the endpoint saw."""
    with scripted_endpoint(answers, served) as endpoint, pytest.raises(ChatFailure) as info:
        _complete(_client(endpoint.url, **kw))
    return info.value, endpoint


def test_429_with_retry_after_waits_as_asked_then_succeeds() -> None:
    """The backoff would wait 0.01 s: the second request coming a second later is the Retry-After's doing."""
    with scripted_endpoint([error(429, "slow down", {"Retry-After": "1"}), completion("7")]) as endpoint:
        reply, seen = _complete(_client(endpoint.url))
    assert reply == ChatReply("7", "stop", 3, 1)
    assert seen == [("http", True)]
    assert len(endpoint.chats) == 2 and endpoint.chats[1] - endpoint.chats[0] >= 1.0
    assert endpoint.auth == ["Bearer sk-test"] * 2 and endpoint.bodies[0] == PAYLOAD


def test_5xx_without_retry_after_backs_off_exponentially_then_gives_up() -> None:
    failure, endpoint = _failure([error(503, "overloaded")], backoff_s=0.2)
    assert failure.reason == "http" and failure.retryable and "status 503" in failure.detail
    first, second, third = endpoint.chats
    assert second - first >= 0.2 and third - second >= 0.4  # backoff_s, then doubled


def test_waits_are_capped_whatever_the_endpoint_asks() -> None:
    client = _client("http://127.0.0.1:9/v1", backoff_s=1.0)
    assert client.wait_s(0, ChatFailure("http", "", wait_s=3600.0)) == MAX_WAIT_S
    assert client.wait_s(10, ChatFailure("http", "")) == MAX_WAIT_S
    assert client.wait_s(2, ChatFailure("http", "")) == 4.0
    assert client.wait_s(2, ChatFailure("http", "", wait_s=0.0)) == 0.0  # Retry-After: 0 means at once
    client.close()


def test_401_is_said_as_a_key_problem_and_never_retried() -> None:
    failure, endpoint = _failure([error(401, "invalid api key")], api_key="wrong")
    assert failure.reason == "auth" and not failure.retryable
    assert f"{endpoint.url} answered 401: the API key is wrong or missing (from JUDGE_KEY)" in failure.detail
    assert len(endpoint.chats) == 1


def test_404_names_the_models_the_endpoint_serves() -> None:
    failure, endpoint = _failure([error(404, "model 'judge' not found")], served=["base", "sft"])
    assert failure.reason == "model_not_found" and len(endpoint.chats) == 1
    assert failure.detail == (
        f"model not found: {endpoint.url}/chat/completions answered 404 for rl.judge.model 'judge'; "
        "the endpoint serves base, sft"
    )


def test_404_from_an_endpoint_that_lists_no_models_keeps_its_message() -> None:
    failure, endpoint = _failure([error(404, "no such route")], served=None)
    assert failure.reason == "model_not_found" and endpoint.listings == 1
    assert failure.detail.startswith(f"{endpoint.url}/chat/completions answered 404 for rl.judge.model 'judge': ")
    assert "no such route" in failure.detail


def test_400_is_a_refused_request_not_retried() -> None:
    failure, endpoint = _failure([error(400, "prompt is 5000 tokens, the context is 2048")])
    assert failure.reason == "refused" and not failure.retryable and len(endpoint.chats) == 1
    assert failure.detail.startswith("status 400: ") and "context is 2048" in failure.detail


def test_malformed_json_is_retried_and_told_when_it_persists() -> None:
    garbled = (200, {}, b"<html>gateway</html>")
    with scripted_endpoint([garbled, completion("ok", finish="length")]) as endpoint:
        reply, seen = _complete(_client(endpoint.url))
    assert reply.text == "ok" and reply.finish_reason == "length" and seen == [("malformed", True)]
    failure, endpoint = _failure([garbled])
    assert str(failure) == "malformed: response is not JSON: '<html>gateway</html>'"
    assert len(endpoint.chats) == 3  # max_retries 2


def test_parse_reply_reads_text_finish_and_usage_and_rejects_malformed_bodies() -> None:
    body = {"choices": [{"message": {"content": "5"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 9}}
    assert parse_reply(body) == ChatReply("5", "stop", 9, 0)
    for bad in ({}, {"choices": []}, {"choices": [{"message": {"content": None}}]}, "text"):
        with pytest.raises(ChatFailure, match="malformed"):
            parse_reply(bad)


def test_check_says_unreachable_and_unserved_model_before_any_work() -> None:
    with pytest.raises(ChatFailure, match=r"rl\.judge\.base_url http://127.0.0.1:9/v1 is unreachable: ConnectError"):
        _client("http://127.0.0.1:9/v1").check()
    with (
        scripted_endpoint([completion("x")], served=["base"]) as endpoint,
        pytest.raises(ChatFailure, match=r"rl\.judge\.model 'judge' is not served by .*; it serves: base"),
    ):
        _client(endpoint.url).check()
    with scripted_endpoint([completion("x")], served=["judge"]) as endpoint:
        _client(endpoint.url).check()
        assert endpoint.listings == 1 and not endpoint.chats


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s("2.5") == 2.5
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after_s(later) <= 30

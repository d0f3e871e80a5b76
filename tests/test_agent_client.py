"""The endpoint client against a scripted OpenAI-compatible server: replies, retries, timeouts, the key."""

from __future__ import annotations

import pytest

from harness.agent.client import ChatClient, EndpointError, EndpointSettings
from tests.agent_support import Hold, Reply, ScriptedServer, Status

MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": "case `relu` please"}]


def _client(server: ScriptedServer, sleeps: list[float], **kw: object) -> ChatClient:
    settings = EndpointSettings(base_url=server.base_url, model="m", **kw)  # type: ignore[arg-type]
    return ChatClient(settings, sleep=sleeps.append)


def test_a_reply_carries_text_finish_reason_usage_and_the_request_its_options_and_key() -> None:
    with ScriptedServer({"relu": [Reply("hello", finish_reason="length")]}) as server:
        completion = _client(server, [], api_key="sk-secret", temperature=0.2, max_tokens=99).complete(MESSAGES)
    assert completion.text == "hello" and completion.finish_reason == "length" and completion.retries == 0
    assert completion.usage == {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
    (request,) = server.requests
    assert request.headers["authorization"] == "Bearer sk-secret"
    assert request.body["model"] == "m" and request.body["temperature"] == 0.2 and request.body["max_tokens"] == 99
    assert request.messages == MESSAGES


def test_429_with_retry_after_is_retried_after_the_time_it_asks_for() -> None:
    script = {"relu": [Status(429, {"Retry-After": "7"}), Reply("ok")]}
    sleeps: list[float] = []
    with ScriptedServer(script) as server:
        completion = _client(server, sleeps).complete(MESSAGES)
    assert completion.text == "ok" and completion.retries == 1
    assert sleeps == [7.0] and len(server.requests) == 2


def test_repeated_500s_end_in_an_endpoint_error_after_the_allowed_retries() -> None:
    sleeps: list[float] = []
    with ScriptedServer({"relu": [Status(500)] * 5}) as server:
        with pytest.raises(EndpointError, match=r"HTTP 500.*gave up after 3 tries") as info:
            _client(server, sleeps, max_retries=2).complete(MESSAGES)
    assert info.value.tries == 3 and len(server.requests) == 3 and len(sleeps) == 2


def test_a_slow_reply_hits_the_request_timeout() -> None:
    with ScriptedServer({"relu": [Hold(then=Reply("too late"))]}) as server:
        with pytest.raises(EndpointError, match="no reply within the 0.3 s request timeout"):
            _client(server, [], timeout_s=0.3, max_retries=0).complete(MESSAGES)


def test_a_client_error_is_not_retried() -> None:
    with ScriptedServer({"relu": [Status(401, body='{"error": "bad key"}'), Reply("never")]}) as server:
        with pytest.raises(EndpointError, match="HTTP 401: .*bad key"):
            _client(server, []).complete(MESSAGES)
    assert len(server.requests) == 1


def test_a_reply_that_is_not_a_chat_completion_is_an_endpoint_error() -> None:
    with ScriptedServer({"relu": [Status(200, body='{"choices": []}')]}) as server:
        with pytest.raises(EndpointError, match="not a chat completion"):
            _client(server, []).complete(MESSAGES)

"""A client for any OpenAI-compatible chat endpoint (hosted APIs, `vllm serve`, llama.cpp's `llama-server`).

Only ``POST {base_url}/chat/completions`` without streaming is used: every such server implements it
alike. Transient faults (408, 409, 429, 5xx, timeouts, refused connections) are retried by
`RetryPolicy`; when the tries are used up, or the fault is not transient (401, 404, a malformed
reply), `EndpointError` says why, and the loop records the attempt as an endpoint error. The API key
lives only in this object's request headers: it is never part of a result.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.agent.retry import RetryPolicy, parse_retry_after, retryable_status
from harness.agent.seams import BadInput

Message = dict[str, str]


class EndpointError(Exception):
    """The endpoint gave no usable reply (after the retries the policy allows)."""

    def __init__(self, message: str, tries: int, latency_s: float) -> None:
        super().__init__(message)
        self.tries = tries
        self.latency_s = latency_s


@dataclass(frozen=True)
class EndpointSettings:
    """Where to send requests and how; ``api_key`` is never serialised (see `to_json`)."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_s: float = 600.0
    max_retries: int = 3

    def to_json(self) -> dict[str, Any]:
        return {
            "base_url": public_url(self.base_url),
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
        }


@dataclass
class Completion:
    """One reply: its text, why generation stopped, token counts, and what it cost to get."""

    text: str
    finish_reason: str | None
    usage: dict[str, int]
    latency_s: float
    retries: int


def check_base_url(base_url: str) -> str:
    """The URL if it is http(s) with a host; BadInput naming --base-url otherwise."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"--base-url {public_url(base_url)!r} is not an http(s) URL; e.g. http://127.0.0.1:8000/v1")
    return base_url


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment: what may be written into artifacts."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def endpoint_host(url: str) -> str:
    """``host[:port]`` of an endpoint URL (for the team's meta.json)."""
    return urllib.parse.urlsplit(public_url(url)).netloc


class ChatClient:
    """Sends chat requests with retries; thread-safe (one `httpx.Client` shared by all conversations)."""

    def __init__(
        self,
        settings: EndpointSettings,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise BadInput(
                "`harness agent` needs httpx: pip install 'kernel-harness[agent]' (or pip install httpx)"
            ) from exc
        self.settings = settings
        self.policy = policy or RetryPolicy(max_retries=settings.max_retries)
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._http = httpx.Client(
            base_url=settings.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_s, connect=min(settings.timeout_s, 30.0)),
        )
        self._httpx = httpx

    def close(self) -> None:
        self._http.close()

    def body(self, messages: Sequence[Message]) -> dict[str, Any]:
        """The request body for ``messages`` (options left out are the server's defaults)."""
        body: dict[str, Any] = {"model": self.settings.model, "messages": list(messages), "stream": False}
        if self.settings.temperature is not None:
            body["temperature"] = self.settings.temperature
        if self.settings.max_tokens is not None:
            body["max_tokens"] = self.settings.max_tokens
        return body

    def complete(self, messages: Sequence[Message]) -> Completion:
        """The model's reply to ``messages``; EndpointError when none came within the policy's tries."""
        body = self.body(messages)
        started = time.monotonic()
        retries = self.policy.max_retries
        for attempt in range(retries + 1):
            retry_after: float | None = None
            try:
                response = self._http.post("chat/completions", json=body)
            except self._httpx.TimeoutException:
                fault = f"no reply within the {self.settings.timeout_s:g} s request timeout"
            except self._httpx.HTTPError as exc:
                fault = f"request failed: {type(exc).__name__}: {str(exc)[:200]}"
            else:
                if response.status_code == 200:
                    return _completion(response, time.monotonic() - started, attempt)
                fault = f"HTTP {response.status_code}: {response.text.strip()[:300]}"
                if not retryable_status(response.status_code):
                    raise EndpointError(fault, attempt + 1, time.monotonic() - started)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt == retries:
                raise EndpointError(
                    f"{fault} (gave up after {attempt + 1} tries)", attempt + 1, time.monotonic() - started
                )
            self._sleep(self.policy.delay(attempt, retry_after))
        raise AssertionError("unreachable")  # pragma: no cover


def _completion(response: Any, latency_s: float, retries: int) -> Completion:
    """Parse a 200 reply; a body that is not a chat completion is an EndpointError (not retried)."""
    try:
        data = response.json()
        choice = data["choices"][0]
        content = choice["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise EndpointError(
            f"the reply is not a chat completion ({type(exc).__name__}: {str(exc)[:100]}): {response.text[:200]}",
            retries + 1,
            latency_s,
        ) from exc
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Completion(
        text=str(content or ""),
        finish_reason=choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None,
        usage={
            k: int(usage[k]) for k in ("prompt_tokens", "completion_tokens", "total_tokens") if _is_int(usage.get(k))
        },
        latency_s=latency_s,
        retries=retries,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0

"""A scripted OpenAI-compatible chat server for the agent tests, and the cases and replies they use.

The server listens on 127.0.0.1 (port 0), answers ``POST /v1/chat/completions`` from a queue of
scripted items per case (the case is read from the prompt, so concurrent conversations get their
own replies whatever the order), and records every request: body, headers and the case it was for.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CASE_IN_PROMPT = re.compile(r"case `([^`]+)`")


@dataclass
class Reply:
    """A 200 chat completion whose message content is ``text``."""

    text: str
    finish_reason: str = "stop"
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
    )


@dataclass
class Status:
    """An HTTP error reply."""

    code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"error": {"message": "scripted fault"}}'


@dataclass
class Hold:
    """No reply until the server is released (a slow model; a request to kill a run in)."""

    then: Reply | None = None


Item = Reply | Status | Hold


def code_reply(code: str, before: str = "Here is the kernel.") -> Reply:
    return Reply(f"{before}\n\n```python\n{code.strip()}\n```\n")


@dataclass
class Request:
    case: str | None
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def messages(self) -> list[dict[str, str]]:
        return list(self.body.get("messages", []))

    @property
    def last_user(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


class ScriptedServer:
    """Replays ``script[case]`` in order for requests about that case (``"*"``: any case)."""

    def __init__(self, script: dict[str, Iterable[Item]]) -> None:
        self.queues = {case: deque(items) for case, items in script.items()}
        self.requests: list[Request] = []
        self.held = threading.Event()  # set when a request reaches a Hold
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self._http.shutdown()
        self._http.server_close()

    def for_case(self, case: str) -> list[Request]:
        return [r for r in self.requests if r.case == case]

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Item | None:
        messages = body.get("messages") or [{}, {}]
        prompt = messages[1].get("content", "") if len(messages) > 1 else ""
        match = CASE_IN_PROMPT.search(prompt)
        case = match.group(1) if match else None
        with self._lock:
            self.requests.append(Request(case, body, headers))
            for key in (case, "*"):
                if key in self.queues and self.queues[key]:
                    return self.queues[key].popleft()
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def _send(self, code: int, body: str, headers: dict[str, str] | None = None) -> None:
                data = body.encode("utf-8")
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - the base class's naming
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                item = server._next(body, {k.lower(): v for k, v in self.headers.items()})
                if isinstance(item, Hold):
                    server.held.set()
                    server.release.wait(120)
                    item = item.then
                    if item is None:
                        return
                try:
                    if item is None:
                        self._send(500, '{"error": {"message": "the script has no reply for this request"}}')
                    elif isinstance(item, Status):
                        self._send(item.code, item.body, item.headers)
                    else:
                        completion = {
                            "id": "scripted",
                            "object": "chat.completion",
                            "model": body.get("model"),
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": item.text},
                                    "finish_reason": item.finish_reason,
                                }
                            ],
                            "usage": item.usage,
                        }
                        self._send(200, json.dumps(completion))
                except OSError:
                    pass  # the client went away (a killed run)

        return Handler


# --- cases and candidates ---------------------------------------------------------------------------


def case_source(
    summary: str, forward: str, init_args: str = "", init_body: str = "pass", init_inputs: str = "[]"
) -> str:
    return f'''
"""{summary}"""
import torch
import torch.nn as nn

n = 4096


class Model(nn.Module):
    def __init__(self{init_args}):
        super().__init__()
        {init_body}

    def forward(self, x):
        return {forward}


def get_inputs():
    return [torch.randn(n)]


def get_init_inputs():
    return {init_inputs}
'''


SCALE_CASE = case_source("Scales a vector by a factor.", "x * self.factor", ", factor", "self.factor = factor", "[2.0]")
NEGATE_CASE = case_source("Negates a vector.", "-x")
SQUARE_CASE = case_source("Squares a vector.", "x * x")


def model_new(forward: str, init: str = "pass", args: str = "", prelude: str = "") -> str:
    return f"""
import time
import torch
import torch.nn as nn
{prelude}

class ModelNew(nn.Module):
    def __init__(self{args}):
        super().__init__()
        {init}

    def forward(self, x):
        {forward}
"""


SCALE_OK = model_new("return x + x", args=", factor")
SCALE_INIT_ERROR = model_new("return x + x", init="raise ValueError('BLOCK must be a power of two')", args=", factor")
NEGATE_WRONG = model_new("return x")
NEGATE_OK = model_new("return torch.neg(x)")
SQUARE_CACHES = model_new(
    "key = x.data_ptr()\n        if key not in self.cache:\n            self.cache[key] = x * x\n"
    "        return self.cache[key]",
    init="self.cache = {}",
)
SQUARE_PATCHES_TIMER = model_new("return x * x", prelude="time.perf_counter = lambda: 0.0")

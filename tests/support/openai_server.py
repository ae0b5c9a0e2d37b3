"""An OpenAI-compatible chat completions server on 127.0.0.1, for tests.

It lets tests drive the real LiteLLM/lm15 HTTP path (retries, timeouts, usage
accounting) with replies they control, and records every request body so a test can
assert on the prompt the LM received::

    with OpenAIServer(lambda messages: chat_reply(answer="Paris")) as srv:
        lm = dspy.LM("openai/test-model", api_base=srv.base_url, api_key="test")
        ...
        assert "Paris" in srv.requests[0]["messages"][-1]["content"]
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Messages = list[dict[str, Any]]
Responder = Callable[[Messages], str]


def worker_lm_env(base_url: str, **profiles: dict[str, Any]) -> dict[str, str]:
    """A worker's environment whose LM profiles answer from the server at `base_url`:
    `default`, plus any named here with options of their own (prices, say). The key is
    a fake one, read from the environment as a real deployment's would be."""
    http = {
        "model": "openai/test-model",
        "api_base": base_url,
        "api_key_env": "DSPYOPS_TEST_LM_KEY",
        "timeout_s": 10,
        "num_retries": 0,
    }
    named = {"default": {}, **profiles}
    every = {name: {**http, **extra} for name, extra in named.items()}
    return {
        "DSPYOPS_LM_PROFILES": json.dumps(every),
        "DSPYOPS_TEST_LM_KEY": "not-a-real-key",
    }


def chat_reply(**fields: Any) -> str:
    """A reply in DSPy ChatAdapter format: one ``[[ ## name ## ]]`` section per field."""
    sections = [f"[[ ## {name} ## ]]\n{_render(value)}" for name, value in fields.items()]
    return "\n\n".join([*sections, "[[ ## completed ## ]]"])


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: whitespace-separated words, so tests can predict it."""
    return len(text.split())


class OpenAIServer:
    """Serves POST /v1/chat/completions from a daemon thread; a context manager.

    Options:
        delay_s: sleep this long before every answer.
        rate_limit_first: the first N calls answer 429 with ``Retry-After: 0``.
        hang_s: a call sleeps this long before answering (longer than the client's
            timeout, to test timeouts); applies to calls after the rate-limited ones.
        usage: fixed (prompt_tokens, completion_tokens) to report; by default words
            are counted.
        fail_every: every Nth call (counted by ``calls``, from 1) answers
            ``fail_status`` instead: 1 fails every call, 3 fails the 3rd, 6th, ...
            ``restart_count`` starts the count again, so a test can predict which fail.
        fail_status: the HTTP status of those answers (401, 403, 429, 500, ...): an
            OpenAI-style error whose message echoes what a careless provider or gateway
            might: the API key it received (the ``Authorization`` header), its own
            address (URL and host:port) and ``echo``. A 429 carries ``Retry-After: 0``.
        echo: more text for those error messages (for instance an env var's name).
        host: the loopback address to listen on; any 127.x.y.z works on Linux, so a
            test can give each server an address of its own.
    """

    def __init__(
        self,
        responder: Responder,
        *,
        delay_s: float = 0.0,
        rate_limit_first: int = 0,
        hang_s: float = 0.0,
        usage: tuple[int, int] | None = None,
        fail_every: int = 0,
        fail_status: int = 500,
        echo: str = "",
        host: str = "127.0.0.1",
    ) -> None:
        self.responder = responder
        self.delay_s = delay_s
        self.rate_limit_first = rate_limit_first
        self.hang_s = hang_s
        self.fixed_usage = usage
        self.fail_every = fail_every
        self.fail_status = fail_status
        self.echo = echo
        self.host = host
        # Calls answered since the last restart_count, and how many of them failed.
        self.calls = 0
        self.failed = 0
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        # What each successful answer reported, in order, for usage assertions.
        self.usages: list[dict[str, int]] = []
        self.rate_limited = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """host:port the server listens on."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.address}/v1"

    def __enter__(self) -> OpenAIServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = _QuietServer((self.host, 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def restart_count(self) -> None:
        with self._lock:
            self.calls = self.failed = 0

    def _answer(
        self, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            self.calls += 1
            call = self.calls
            failing = self.fail_every > 0 and call % self.fail_every == 0
            self.failed += failing
            limited = not failing and self.rate_limited < self.rate_limit_first
            if limited:
                self.rate_limited += 1
        if failing:
            return self._failure(self.fail_status, headers)
        if limited:
            error = {"error": {"message": "rate limited by test server", "type": "rate_limit"}}
            return 429, {"Retry-After": "0"}, error
        # Waiting on the event lets stop() end a hanging call at once.
        if self.hang_s or self.delay_s:
            self._stopping.wait(self.hang_s or self.delay_s)
        messages = body.get("messages", [])
        content = self.responder(messages)
        usage = self._usage(messages, content)
        with self._lock:
            self.usages.append(usage)
        return 200, {}, self._completion(body, content, usage)

    def _failure(
        self, status: int, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        key = headers.get("authorization", "").removeprefix("Bearer ")
        message = (
            f"Incorrect API key provided: {key}. You can find your API key at "
            f"{self.base_url}/keys (server {self.address}, host {self.host}); "
            f"check {self.echo or 'your settings'}. Authorization: Bearer {key}"
        )
        error = {"error": {"message": message, "type": f"status_{status}", "code": key}}
        return status, {"Retry-After": "0"} if status == 429 else {}, error

    def _usage(self, messages: Messages, content: str) -> dict[str, int]:
        if self.fixed_usage is not None:
            prompt, completion = self.fixed_usage
        else:
            prompt = sum(count_tokens(_text(m.get("content"))) for m in messages)
            completion = count_tokens(content)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(
        self, body: dict[str, Any], content: str, usage: dict[str, int]
    ) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-test-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class _QuietServer(ThreadingHTTPServer):
    # The default backlog of 5 drops SYNs under a burst of concurrent clients, which
    # then retry a second later and make concurrency tests look serial.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out closes its socket while we still answer: expected here.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {}, {"error": {"message": f"no route {self.path}"}})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(400, {}, {"error": {"message": "body is not JSON"}})
            return
        received = {name.lower(): value for name, value in self.headers.items()}
        status, headers, payload = self.owner._answer(body, received)
        self._send(status, headers, payload)

    def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to tell it

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

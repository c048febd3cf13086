"""A local fake of the Slack Web API on loopback, for tests of the Slack sink.

It serves ``POST /api/<method>`` the way slack.com does for the parts the sink uses: bearer-token
checks (``not_authed``, ``invalid_auth``, ``token_revoked``), ``chat.postMessage`` with Block Kit
validation against the documented limits, HTTP 429 with ``Retry-After``, and HTTP 500. Every
request is recorded with its method, headers, JSON or form body and arrival time.

Usage::

    with FakeSlackApi(tokens={"xoxb-test"}) as slack:
        client = WebClient(token="xoxb-test", base_url=slack.base_url)
        slack.rate_limit(calls=1, retry_after=1)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

MAX_BLOCKS = 50
MAX_HEADER_CHARS = 150
MAX_SECTION_TEXT_CHARS = 3000
MAX_FIELDS = 10
MAX_FIELD_CHARS = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_TEXT_CHARS = 40_000


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, and the HTTP status of its response."""

    method: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float
    status: int


@dataclass(frozen=True)
class _Scripted:
    status: int
    payload: dict[str, Any] | None
    headers: dict[str, str]
    raw: bytes | None = None


class FakeSlackApi:
    """A threaded HTTP server on 127.0.0.1 with a free port that imitates the Slack Web API."""

    def __init__(self, *, tokens: set[str] | None = None) -> None:
        self.tokens = set(tokens or {"xoxb-fake-token"})
        self.revoked: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self.accepted: list[dict[str, Any]] = []
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self._next_ts = 1_700_000_000
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/"

    def __enter__(self) -> FakeSlackApi:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def rate_limit(self, *, calls: int, retry_after: int | None = 1) -> None:
        """Respond to the next ``calls`` requests with HTTP 429 and a ``Retry-After`` header."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        payload = {"ok": False, "error": "ratelimited"}
        self._queue(calls, _Scripted(429, payload, headers))

    def fail_with(self, error: str, *, calls: int = 1) -> None:
        """Respond to the next ``calls`` requests with HTTP 200 and ``ok: false`` with ``error``."""
        self._queue(calls, _Scripted(200, {"ok": False, "error": error}, {}))

    def server_error(self, *, calls: int = 1, status: int = 500) -> None:
        """Respond to the next ``calls`` requests with an HTML error page and the given status."""
        page = b"<html><body>Internal Server Error</body></html>"
        self._queue(calls, _Scripted(status, None, {"Content-Type": "text/html"}, raw=page))

    def revoke(self, token: str) -> None:
        """Make every later request with this token fail with ``token_revoked``."""
        with self._lock:
            self.revoked.add(token)

    def calls(self, method: str) -> list[RecordedRequest]:
        """Return the recorded requests of one API method, in arrival order."""
        with self._lock:
            return [request for request in self.requests if request.method == method]

    def posted(self) -> list[dict[str, Any]]:
        """Return the bodies of chat.postMessage requests that the fake accepted."""
        with self._lock:
            return list(self.accepted)

    def _queue(self, calls: int, response: _Scripted) -> None:
        with self._lock:
            self._script.extend([response] * calls)

    def _respond(self, method: str, headers: dict[str, str], body: dict[str, Any]) -> _Scripted:
        with self._lock:
            if self._script:
                return self._script.popleft()
            auth_error = self._auth_error(headers.get("Authorization", ""), body)
            if auth_error:
                return _Scripted(200, {"ok": False, "error": auth_error}, {})
            if method == "auth.test":
                return _Scripted(200, {"ok": True, "team": "fake", "user": "mlp-bot"}, {})
            if method != "chat.postMessage":
                return _Scripted(200, {"ok": False, "error": "unknown_method"}, {})
            return self._post_message(body)

    def _auth_error(self, authorization: str, body: dict[str, Any]) -> str | None:
        token = authorization.removeprefix("Bearer ").strip() or str(body.get("token", ""))
        if not token:
            return "not_authed"
        if token in self.revoked:
            return "token_revoked"
        if token not in self.tokens:
            return "invalid_auth"
        return None

    def _post_message(self, body: dict[str, Any]) -> _Scripted:
        if not body.get("channel"):
            return _Scripted(200, {"ok": False, "error": "channel_not_found"}, {})
        blocks = body.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if not body.get("text") and not blocks:
            return _Scripted(200, {"ok": False, "error": "no_text"}, {})
        errors = block_errors(blocks or [])
        if errors:
            return _Scripted(200, {"ok": False, "error": "invalid_blocks", "errors": errors}, {})
        payload: dict[str, Any] = {
            "ok": True,
            "channel": "C0FAKE",
            "ts": f"{self._next_ts}.000100",
            "message": {"text": str(body.get("text", ""))[:MAX_TEXT_CHARS], "blocks": blocks},
        }
        self._next_ts += 1
        if len(str(body.get("text", ""))) > MAX_TEXT_CHARS:
            payload["response_metadata"] = {"warnings": ["message_truncated"]}
        self.accepted.append(body)
        return _Scripted(200, payload, {})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's method name)
                received_at = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                body = _parse_body(self.headers.get("Content-Type", ""), raw)
                headers = dict(self.headers.items())
                method = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
                response = fake._respond(method, headers, body)
                with fake._lock:
                    fake.requests.append(
                        RecordedRequest(method, headers, body, received_at, response.status)
                    )
                content = response.raw
                if content is None:
                    content = json.dumps(response.payload).encode("utf-8")
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                # Keep test output quiet; every request is in fake.requests.
                pass

        return Handler


def _parse_body(content_type: str, raw: str) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        return json.loads(raw) if raw else {}
    return {key: values[-1] for key, values in parse_qs(raw).items()}


def block_errors(blocks: list[dict[str, Any]]) -> list[str]:
    """List the ways blocks break Slack's documented message limits; empty when they fit."""
    errors = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for index, block in enumerate(blocks):
        pointer = f"/blocks/{index}"
        kind = block.get("type")
        if kind == "header":
            if block["text"].get("type") != "plain_text":
                errors.append(f"header text must be plain_text [json-pointer:{pointer}/text]")
            if len(block["text"]["text"]) > MAX_HEADER_CHARS:
                errors.append(f"must be less than 151 characters [json-pointer:{pointer}/text]")
        elif kind == "section":
            text = block.get("text", {}).get("text", "")
            if len(text) > MAX_SECTION_TEXT_CHARS:
                errors.append(f"must be less than 3001 characters [json-pointer:{pointer}/text]")
            fields = block.get("fields", [])
            if len(fields) > MAX_FIELDS:
                errors.append(f"no more than 10 items allowed [json-pointer:{pointer}/fields]")
            for field_index, item in enumerate(fields):
                if len(item["text"]) > MAX_FIELD_CHARS:
                    errors.append(
                        "must be less than 2001 characters "
                        f"[json-pointer:{pointer}/fields/{field_index}/text]"
                    )
            if not text and not fields:
                errors.append(f"section needs text or fields [json-pointer:{pointer}]")
        elif kind == "context":
            if len(block.get("elements", [])) > MAX_CONTEXT_ELEMENTS:
                errors.append(f"no more than 10 items allowed [json-pointer:{pointer}/elements]")
        else:
            errors.append(f"unsupported block type {kind!r} [json-pointer:{pointer}]")
    return errors

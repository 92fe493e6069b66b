"""Fault injection for the emulators: an ASGI middleware that misbehaves on request.

Faults are queued (in-process or through ``POST /_emulator/faults``) and consumed by matching
requests, so a test can say "the next two status polls get 503, then a connection reset" and know
exactly what the provider saw.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

#: ``status``: answer with an error status (429 with or without Retry-After, 5xx) in the vendor's
#: error shape; ``delay``: wait, then let the app answer (past the client's timeout it is a read
#: timeout the vendor still acted on); ``drop``: reset the connection; ``malformed``: garbled JSON;
#: ``truncate``: cut the app's own answer halfway (truncated JSON, a download cut mid-stream);
#: ``expire_token``: the vendor expires every token it minted, then answers the request (a 401).
FaultKind = Literal["status", "delay", "drop", "malformed", "truncate", "expire_token"]


class FaultSpec(BaseModel):
    """One fault. ``path`` is a regex searched in the request path; ``times`` how often it fires."""

    kind: FaultKind
    path: str = ".*"
    method: str | None = None
    times: int = Field(default=1, ge=1)
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    message: str = "injected fault"


@dataclass
class _Armed:
    spec: FaultSpec
    pattern: re.Pattern[str]
    left: int


@dataclass
class FaultPlan:
    """The queue of armed faults plus a tally of what was injected."""

    _armed: list[_Armed] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, spec: FaultSpec) -> None:
        with self._lock:
            self._armed.append(_Armed(spec, re.compile(spec.path), spec.times))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def reset(self) -> None:
        with self._lock:
            self._armed.clear()
            self.injected.clear()

    def take(self, method: str, path: str) -> FaultSpec | None:
        with self._lock:
            for armed in self._armed:
                if armed.spec.method and armed.spec.method.upper() != method.upper():
                    continue
                if not armed.pattern.search(path):
                    continue
                armed.left -= 1
                if armed.left <= 0:
                    self._armed.remove(armed)
                self.injected[armed.spec.kind] = self.injected.get(armed.spec.kind, 0) + 1
                return armed.spec
        return None


class _InjectedDrop(Exception):
    """Raised mid-response so the server closes the connection: the client sees a transport error."""


ErrorBody = Callable[[int, str], dict[str, Any]]
#: path -> expire the tokens of the vendor that owns the path.
TokenExpiry = Callable[[str], None]


class FaultMiddleware:
    """Pure ASGI, so it can cut a response body halfway, which Starlette middleware cannot."""

    def __init__(
        self,
        app: Any,
        plan: FaultPlan,
        error_body_for: Callable[[str], ErrorBody],
        expire_tokens: TokenExpiry | None = None,
    ) -> None:
        self.app = app
        self.plan = plan
        self.error_body_for = error_body_for
        self.expire_tokens = expire_tokens

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_emulator"):
            await self.app(scope, receive, send)
            return
        fault = self.plan.take(scope["method"], scope["path"])
        if fault is None:
            await self.app(scope, receive, send)
        elif fault.kind == "expire_token":
            if self.expire_tokens is not None:
                self.expire_tokens(scope["path"])
            await self.app(scope, receive, send)
        elif fault.kind == "delay":
            # The vendor has the whole request before it stalls: past the client's timeout it still
            # acts on it (a create whose answer is lost), as a real server would.
            replay = await _buffered(receive)
            await asyncio.sleep(fault.delay)
            await self.app(scope, replay, send)
        elif fault.kind == "status":
            body = json.dumps(self.error_body_for(scope["path"])(fault.status, fault.message)).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            if fault.retry_after is not None:
                headers.append((b"retry-after", str(int(fault.retry_after)).encode()))
            await send({"type": "http.response.start", "status": fault.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif fault.kind == "malformed":
            body = b'{"status": "RUNN'
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif fault.kind == "drop":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
            )
            raise _InjectedDrop("connection dropped by fault injection")
        else:  # truncate: let the app answer, forward the headers and half of the body, then cut
            await self.app(scope, receive, _Truncating(send))


async def _buffered(receive: Any) -> Callable[[], Any]:
    """Read the request body now; return a ``receive`` that hands it to the app later."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replay() -> dict[str, Any]:
        if pending:
            return pending.pop()
        return await receive()

    return replay


class _Truncating:
    def __init__(self, send: Any) -> None:
        self._send = send
        self._budget: int | None = None
        self._sent = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            length = dict(message.get("headers", [])).get(b"content-length")
            self._budget = max(1, int(length) // 2) if length else 1024
            await self._send(message)
            return
        body = message.get("body", b"")
        assert self._budget is not None
        room = self._budget - self._sent
        if len(body) >= room:
            await self._send({"type": "http.response.body", "body": body[:room], "more_body": True})
            raise _InjectedDrop("response truncated by fault injection")
        self._sent += len(body)
        await self._send(message)

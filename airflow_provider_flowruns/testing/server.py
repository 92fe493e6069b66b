"""The emulator server: vendor routers on one FastAPI app, plus ``/_emulator`` control routes."""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from airflow_provider_flowruns.testing.clock import EmulatorClock
from airflow_provider_flowruns.testing.faults import ErrorBody, FaultMiddleware, FaultPlan, FaultSpec

#: vendor name -> "module:Class" of its emulator; vendor issues add theirs here. An emulator of your
#: own (a ``VendorEmulator`` subclass) is served by its "module:Class" in place of a name.
VENDORS: dict[str, str] = {
    "demo": "airflow_provider_flowruns.testing.demo_app:DemoEmulator",
    "amperity": "airflow_provider_flowruns.testing.amperity_app:AmperityEmulator",
    "tableflow": "airflow_provider_flowruns.testing.tableflow_app:TableflowEmulator",
    "habu": "airflow_provider_flowruns.testing.habu_app:HabuEmulator",
    "activepieces": "airflow_provider_flowruns.testing.activepieces_app:ActivepiecesEmulator",
}


class VendorError(Exception):
    """Raised by emulator handlers; rendered in the vendor's own error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        #: The whole error body, where the vendor's shape carries more than a code and a message.
        self.body = body


def int_query(
    params: Mapping[str, str],
    name: str,
    default: int,
    low: int,
    high: int | None = None,
    *,
    label: str = "{name}",
) -> int:
    """An integer query parameter within bounds, else the 400 the vendor answers. ``label`` is how
    the vendor words a parameter's name in its messages (``The parameter '{name}'`` for Tableflow)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    what = label.format(name=name)
    try:
        value = int(raw)
    except ValueError:
        raise VendorError(400, f"{what} must be an integer")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise VendorError(400, f"{what} must be {bound} (got {value})")
    return value


def attachment(file_name: str) -> str:
    """``Content-Disposition`` for a download: an ASCII fallback plus the RFC 5987 form, so a client
    sees the vendor's name (unicode, slashes and all) the way the real APIs send it."""
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", file_name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


class VerbatimAnswer(BaseModel):
    """A vendor's documented example, served as it stands instead of the emulator's own answer.

    ``path`` is the full request path (``/habu/cleanrooms/cr1/cleanroom-flow-runs/fr1/report``);
    ``query`` (optional) must be contained in the request's query, and ``request_headers`` in its
    headers (names in lower case: a test can insist on the token a client sends); ``body`` is the
    example's JSON value (or ``text``, for an example that is not JSON), sent with ``headers``.
    ``times`` None serves it for every match. A 204 or 304 goes out without a body, as HTTP
    requires (``Activepieces'`` "204 ``{}``" is an empty answer on the wire).
    This is how contract tests put the vendors' own words on the wire (``verbatim`` mode).
    """

    method: str
    path: str
    query: dict[str, str] = {}
    status: int = 200
    body: Any = None
    text: str | None = None
    content_type: str = "application/json"
    times: int | None = None
    headers: dict[str, str] = {}
    request_headers: dict[str, str] = {}

    def matches(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str] | None = None
    ) -> bool:
        return (
            self.method.upper() == method
            and self.path.rstrip("/") == path.rstrip("/")
            and all(query.get(k) == v for k, v in self.query.items())
            and all((headers or {}).get(k) == v for k, v in self.request_headers.items())
        )

    def response(self) -> Response:
        import json

        if self.status in (204, 304):
            return Response(status_code=self.status, headers=self.headers)
        content = self.text if self.text is not None else json.dumps(self.body)
        return Response(content, status_code=self.status, media_type=self.content_type, headers=self.headers)


class VendorEmulator:
    """Shared state and helpers for one vendor's emulator."""

    name: ClassVar[str]

    def __init__(self, clock: EmulatorClock) -> None:
        self.clock = clock
        self.counters: Counter[str] = Counter()
        self.lock = threading.Lock()

    def router(self) -> APIRouter:
        raise NotImplementedError

    def error_body(self, status: int, message: str, code: str | None = None) -> dict[str, Any]:
        return {"code": code or str(status), "message": message}

    def stats(self) -> dict[str, Any]:
        return dict(self.counters)

    def expire_tokens(self) -> None:
        """Expire every token minted so far, as a vendor may at any moment (fault ``expire_token``).

        Vendors without minted tokens (static API keys) have nothing to expire."""

    def reset(self) -> None:
        self.counters.clear()


def load_emulators(names: list[str], clock: EmulatorClock) -> list[VendorEmulator]:
    emulators = []
    for name in names:
        spec = VENDORS.get(name, name if ":" in name else None)
        if spec is None:
            raise ValueError(f"unknown vendor {name!r}; choose from {sorted(VENDORS)} or give module:Class")
        module, _, cls = spec.partition(":")
        emulators.append(getattr(importlib.import_module(module), cls)(clock))
    return emulators


class EmulatorServer:
    """Builds the ASGI app; keeps clock, faults and emulators reachable for in-process tests."""

    def __init__(self, vendors: list[str] | None = None, *, speed: float = 1.0) -> None:
        self.clock = EmulatorClock(speed)
        self.plan = FaultPlan()
        self.emulators = {e.name: e for e in load_emulators(vendors or sorted(VENDORS), self.clock)}
        self.requests: Counter[str] = Counter()
        #: documented examples served as they stand, first match wins (``/_emulator/verbatim``)
        self.verbatim: list[VerbatimAnswer] = []
        #: the requests verbatim answers were given to (method, path, query, JSON body), so a contract
        #: test can compare what a client sent with a documented request body
        self.verbatim_seen: list[dict[str, Any]] = []
        #: vendor -> distinct client (host, port) pairs seen: the TCP connections each vendor's
        #: clients opened (a port names one connection for its lifetime).
        self.peers: dict[str, set[tuple[str, int]]] = {}
        self.app = self._build()

    def _error_body_for(self, path: str) -> ErrorBody:
        vendor = self.emulators.get(path.strip("/").split("/", 1)[0])
        if vendor is None:
            return lambda status, message: {"message": message}
        return lambda status, message: vendor.error_body(status, message)

    def _expire_tokens_for(self, path: str) -> None:
        vendor = self.emulators.get(path.strip("/").split("/", 1)[0])
        if vendor is not None:
            vendor.expire_tokens()

    def _build(self) -> Any:
        app = FastAPI(
            title="flowruns emulators", docs_url="/_emulator/docs", openapi_url="/_emulator/openapi.json"
        )
        for emulator in self.emulators.values():
            app.include_router(emulator.router(), prefix=f"/{emulator.name}")

        @app.exception_handler(VendorError)
        async def _vendor_error(request: Request, exc: VendorError) -> JSONResponse:
            vendor = self.emulators.get(request.url.path.strip("/").split("/", 1)[0])
            if exc.body is not None:
                body = exc.body
            elif vendor is not None:
                body = vendor.error_body(exc.status, exc.message, exc.code)
            else:
                body = {"message": exc.message}
            return JSONResponse(body, status_code=exc.status, headers=exc.headers)

        @app.middleware("http")
        async def _verbatim(request: Request, call_next: Any) -> Any:
            for answer in self.verbatim:
                if answer.matches(request.method, request.url.path, request.query_params, request.headers):
                    raw = await request.body()
                    try:
                        sent: Any = json.loads(raw) if raw else None
                    except ValueError:
                        sent = raw.decode("utf-8", "replace")
                    self.verbatim_seen.append(
                        {
                            "method": request.method,
                            "path": request.url.path,
                            "query": dict(request.query_params),
                            "body": sent,
                        }
                    )
                    if answer.times is not None:
                        answer.times -= 1
                        if answer.times <= 0:
                            self.verbatim.remove(answer)
                    return answer.response()
            return await call_next(request)

        @app.middleware("http")
        async def _count(request: Request, call_next: Any) -> Any:
            response = await call_next(request)
            route = request.scope.get("route")
            template = getattr(route, "path", request.url.path)
            self.requests[f"{request.method} {template}"] += 1
            if request.client is not None:
                vendor = request.url.path.strip("/").split("/", 1)[0]
                self.peers.setdefault(vendor, set()).add((request.client.host, request.client.port))
            return response

        control = APIRouter(prefix="/_emulator")

        @control.get("/health")
        async def health() -> dict[str, Any]:
            return {"status": "ok", "vendors": sorted(self.emulators)}

        @control.post("/faults")
        async def add_faults(specs: list[FaultSpec]) -> dict[str, Any]:
            for spec in specs:
                self.plan.add(spec)
            return {"armed": len(specs)}

        @control.delete("/faults")
        async def clear_faults() -> dict[str, Any]:
            self.plan.clear()
            return {"cleared": True}

        @control.post("/verbatim")
        async def add_verbatim(answers: list[VerbatimAnswer]) -> dict[str, Any]:
            self.verbatim.extend(answers)
            return {"armed": len(answers)}

        @control.get("/verbatim")
        async def verbatim_seen() -> list[dict[str, Any]]:
            return self.verbatim_seen

        @control.delete("/verbatim")
        async def clear_verbatim() -> dict[str, Any]:
            self.verbatim.clear()
            self.verbatim_seen.clear()
            return {"cleared": True}

        @control.get("/stats")
        async def stats() -> dict[str, Any]:
            return self.stats()

        @control.post("/clock")
        async def clock(body: dict[str, float]) -> dict[str, float]:
            if "speed" in body:
                self.clock.set_speed(body["speed"])
            if "advance" in body:
                self.clock.advance(body["advance"])
            return {"now": self.clock.now(), "speed": self.clock.speed}

        @control.post("/reset")
        async def reset() -> dict[str, bool]:
            self.plan.reset()
            self.verbatim.clear()
            self.verbatim_seen.clear()
            self.requests.clear()
            self.peers.clear()
            for emulator in self.emulators.values():
                emulator.reset()
            return {"reset": True}

        app.include_router(control)
        return FaultMiddleware(app, self.plan, self._error_body_for, self._expire_tokens_for)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "faults_injected": dict(self.plan.injected),
            "connections": {vendor: len(peers) for vendor, peers in self.peers.items()},
            "vendors": {name: e.stats() for name, e in self.emulators.items()},
        }

"""A tiny vendor-neutral "demo" API: runs that progress, fail, get cancelled and produce a CSV.

It exercises every engine feature (bearer and client-credentials auth, token expiry, create limits,
cancel, result download) without any vendor's quirks, for the engine's own tests and ``make demo``.

Credentials: bearer token ``demo-token``; client credentials ``demo-client`` / ``demo-secret`` at
``POST /demo/v1/oauth/token`` (Basic auth), tokens valid ``token_ttl`` emulated seconds.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from airflow_provider_flowruns.testing.clock import EmulatorClock
from airflow_provider_flowruns.testing.limits import WindowLimit
from airflow_provider_flowruns.testing.progression import Progression
from airflow_provider_flowruns.testing.server import VendorEmulator, VendorError

STATIC_TOKEN = "demo-token"
CLIENT_ID = "demo-client"
#: Overridable so secret-leak tests can use a sentinel value of their own.
CLIENT_SECRET = os.environ.get("FLOWRUNS_DEMO_CLIENT_SECRET", "demo-secret")


@dataclass
class DemoRun:
    id: str
    name: str
    created_at: float
    progression: Progression
    result_rows: int
    #: A result of exactly this many bytes, generated as it streams (benchmarks: 1 GiB files).
    result_bytes: int | None = None
    cancelled_at: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def status(self, now: float) -> str:
        if self.cancelled_at is not None:
            return "CANCELLED"
        return self.progression.status_at(now - self.created_at)


class DemoEmulator(VendorEmulator):
    name = "demo"

    def __init__(
        self, clock: EmulatorClock, *, token_ttl: float = 3600.0, creates_per_hour: int | None = None
    ):
        super().__init__(clock)
        self.token_ttl = token_ttl
        self.runs: dict[str, DemoRun] = {}
        self.tokens: dict[str, float] = {}
        self.creates = WindowLimit(clock, creates_per_hour, 3600.0)

    def reset(self) -> None:
        super().reset()
        self.runs.clear()
        self.tokens.clear()
        self.creates = WindowLimit(self.clock, self.creates.limit, 3600.0)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, self.clock.now())

    def stats(self) -> dict[str, Any]:
        # Minted token values are listed so tests can prove they never leak into Airflow's logs/XCom.
        return {
            **dict(self.counters),
            "runs": len(self.runs),
            "creates_refused": self.creates.refused,
            "minted_tokens": sorted(self.tokens),
        }

    def _authorize(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise VendorError(401, "missing bearer token", code="UNAUTHORIZED")
        if token == STATIC_TOKEN:
            return
        expires = self.tokens.get(token)
        if expires is None or expires <= self.clock.now():
            raise VendorError(401, "token expired or unknown", code="UNAUTHORIZED")
        # Calls made with a minted token: fewer tokens than these proves tokens are reused.
        self.counters["calls_with_minted_tokens"] += 1

    def _run(self, run_id: str) -> DemoRun:
        run = self.runs.get(run_id)
        if run is None:
            raise VendorError(404, f"run {run_id} not found", code="NOT_FOUND")
        return run

    def _view(self, run: DemoRun) -> dict[str, Any]:
        status = run.status(self.clock.now())
        message = {"FAILED": "step 2 failed: division by zero", "CANCELLED": "cancelled by request"}.get(
            status
        )
        return {
            "id": run.id,
            "name": run.name,
            "status": status,
            "message": message,
            "createdAt": run.created_at,
        }

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/v1")

        @router.post("/oauth/token")
        async def token(request: Request, authorization: str | None = Header(None)) -> dict[str, Any]:
            form = await request.form()
            scheme, _, blob = (authorization or "").partition(" ")
            try:
                pair = base64.b64decode(blob).decode() if scheme.lower() == "basic" else ""
            except ValueError:
                pair = ""
            if form.get("grant_type") != "client_credentials" or pair != f"{CLIENT_ID}:{CLIENT_SECRET}":
                raise VendorError(401, "invalid client credentials", code="INVALID_CLIENT")
            value = secrets.token_urlsafe(24)
            with self.lock:
                self.tokens[value] = self.clock.now() + self.token_ttl
                self.counters["tokens_minted"] += 1
            return {"access_token": value, "token_type": "Bearer", "expires_in": self.token_ttl}

        @router.post("/runs", status_code=201)
        async def create(body: dict[str, Any], authorization: str | None = Header(None)) -> dict[str, Any]:
            self._authorize(authorization)
            name = body.get("name")
            if not isinstance(name, str) or not name:
                raise VendorError(400, "name is required", code="VALIDATION")
            wait = self.creates.hit()
            if wait is not None:
                raise VendorError(429, "run creation limit reached", code="RATE_LIMITED")
            duration = float(body.get("duration", 5.0))
            outcome = str(body.get("outcome", "SUCCEEDED")).upper()
            if outcome not in {"SUCCEEDED", "FAILED"}:
                raise VendorError(400, "outcome must be SUCCEEDED or FAILED", code="VALIDATION")
            progression = Progression([("QUEUED", min(1.0, duration / 5)), ("RUNNING", duration)], outcome)
            run = DemoRun(
                id=f"run_{secrets.token_hex(6)}",
                name=name,
                created_at=self.clock.now(),
                progression=progression,
                result_rows=int(body.get("result_rows", 3)),
                result_bytes=int(body["result_bytes"]) if body.get("result_bytes") else None,
                params=dict(body.get("params") or {}),
            )
            with self.lock:
                self.runs[run.id] = run
                self.counters["runs_created"] += 1
            return self._view(run)

        @router.get("/runs")
        async def list_runs(
            name: str | None = None, authorization: str | None = Header(None)
        ) -> dict[str, Any]:
            self._authorize(authorization)
            runs = [self._view(r) for r in self.runs.values() if name is None or r.name == name]
            return {"runs": sorted(runs, key=lambda r: r["createdAt"], reverse=True)}

        @router.get("/runs/{run_id}")
        async def get_run(run_id: str, authorization: str | None = Header(None)) -> dict[str, Any]:
            self._authorize(authorization)
            self.counters["status_polls"] += 1
            return self._view(self._run(run_id))

        @router.post("/runs/{run_id}/cancel")
        async def cancel(run_id: str, authorization: str | None = Header(None)) -> dict[str, Any]:
            self._authorize(authorization)
            run = self._run(run_id)
            status = run.status(self.clock.now())
            if status in {"SUCCEEDED", "FAILED", "CANCELLED"}:
                raise VendorError(409, f"run {run_id} is already {status}", code="CONFLICT")
            run.cancelled_at = self.clock.now()
            self.counters["cancels"] += 1
            return self._view(run)

        @router.get("/runs/{run_id}/result")
        async def result(run_id: str, authorization: str | None = Header(None)) -> StreamingResponse:
            self._authorize(authorization)
            run = self._run(run_id)
            if run.status(self.clock.now()) != "SUCCEEDED":
                raise VendorError(409, f"run {run_id} has no result yet", code="CONFLICT")
            if run.result_bytes is not None:
                size, chunks = run.result_bytes, _sized_csv(run.result_bytes)
            else:
                lines = ["row,value\n", *(f"{i},{i * i}\n" for i in range(run.result_rows))]
                data = "".join(lines).encode()
                size, chunks = len(data), iter([data])
            return StreamingResponse(
                chunks,
                media_type="text/csv",
                headers={
                    "content-length": str(size),
                    "content-disposition": 'attachment; filename="result.csv"',
                },
            )

        return router


def _sized_csv(size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """CSV rows adding up to exactly ``size`` bytes, one reused 1 MiB block at a time."""
    block = "".join(f"{i},{i * i}\n" for i in range(chunk // 8)).encode()[:chunk]
    sent = 0
    while sent < size:
        piece = block[: min(chunk, size - sent)]
        sent += len(piece)
        yield piece

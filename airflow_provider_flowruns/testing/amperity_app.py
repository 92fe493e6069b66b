"""An in-memory Amperity workflow-runs API (control plane ``2024-04-01``), mounted at ``/amperity/api``.

It reproduces the parts a provider can trip over: the ``amperity-tenant`` and ``api-version``
headers on every workflow call, 201 on start, lower-case states with multi-word ones
(``running with failures``), overview vs verbose views, cursor pagination, stop going through
``stopping`` to ``canceled``, the ``{status, message, request_id, trace_id}`` error body and the
10 requests/second limit.

Credentials: bearer token ``amperity-token`` (stands in for a UI-issued JWT), or OAuth client
credentials ``amperity-client`` / ``FLOWRUNS_AMPERITY_CLIENT_SECRET`` (default ``amperity-secret``)
in the form body of ``POST /amperity/api/v0/oauth2/token``.

Tests steer a run through its config id (case-insensitive): containing ``slow`` it runs 3600
emulated seconds instead of 20; containing ``fail`` it ends ``failed`` because its last task fails;
containing ``warn`` its first task fails, the run shows ``running with failures`` and then ends
``failed`` (``warn`` wins over ``fail``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import secrets
import string
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request

from airflow_provider_flowruns.testing.clock import EmulatorClock
from airflow_provider_flowruns.testing.limits import WindowLimit
from airflow_provider_flowruns.testing.progression import Progression
from airflow_provider_flowruns.testing.server import VendorEmulator, VendorError, int_query

STATIC_TOKEN = "amperity-token"
CLIENT_ID = "amperity-client"
#: Overridable so secret-leak tests can use a sentinel value of their own.
CLIENT_SECRET = os.environ.get("FLOWRUNS_AMPERITY_CLIENT_SECRET", "amperity-secret")
API_VERSIONS = ("2024-04-01", "unstable")
RUN_MODES = ("source", "refresh", "full")

DEFAULT_SECONDS = 20.0
SLOW_SECONDS = 3600.0
#: ``scheduled`` for 1 s, ``started`` for 2 s; tasks run from then on.
SCHEDULED_FOR, STARTED_FOR = 1.0, 2.0
TASKS_FROM = SCHEDULED_FOR + STARTED_FOR
STOP_SECONDS = 2.0
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
COUNTERS = ("tokens_minted", "runs_created", "status_polls", "stops", "rate_limited")

TABLE_ERROR: dict[str, Any] = {
    "attribution": "customer",
    "type": "amperity.workflow.task-instance/table",
    "message": "Table 'Unified_Coalesced' not found",
    "data": None,
}
CANCEL_ERROR: dict[str, Any] = {
    "attribution": "customer",
    "type": "amperity.workflow.workflow.repository.core/cancel",
    "message": "Workflow manually stopped",
}


#: Who the emulator says launched every run (the API key's synthetic identity).
PRINCIPAL = {"name": "Airflow", "id": "api-key|airflow", "email": "airflow@socktown.com"}
WARN_AFTER_MS = 86_400_000
TASK_TIMEOUT_MS = 172_800_000


@dataclass(frozen=True)
class ConfigKind:
    """What a config-id prefix starts: the workflow ``type``, a name prefix and its tasks."""

    type: str
    label: str
    tasks: tuple[tuple[str, str], ...]  # (label, task_definition_type)


KINDS = {
    "cg-": ConfigKind(
        "courier.group/run",
        "Courier group",
        (
            ("Loading courier files", "courier.load"),
            ("Updating domain tables", "ingest.domain-table"),
            ("Generating database", "database.generate"),
        ),
    ),
    "og-": ConfigKind(
        "amperity.orchestration.orchestration/run",
        "Orchestration group",
        (
            ("Getting query results", "orchestration.query"),
            ("Sending to destination - S3", "orchestration.send"),
        ),
    ),
    "cc-": ConfigKind(
        "campaign/run",
        "Campaign",
        (
            ("Getting segment results", "campaign.segment"),
            ("Sending treatment to destination", "campaign.send"),
        ),
    ),
}


@dataclass(frozen=True)
class TaskPlan:
    """One task instance; ``start``/``end`` are emulated seconds after the workflow was created."""

    id: str
    run_id: str
    label: str
    definition_type: str
    start: float
    end: float
    fails: bool


@dataclass
class MintedToken:
    tenant: str
    expires_at: float


@dataclass
class AmperityRun:
    """A workflow run; its state is computed from the clock, so nothing needs a background task."""

    seq: int
    id: str
    tenant: str
    type: str
    name: str
    created_at: float
    progression: Progression
    tasks: list[TaskPlan]
    run_mode: str | None
    range_from: str | None
    range_to: str | None
    stop_at: float | None = None
    #: ``launched_version``/``current_version``: the tenant's configuration when it started.
    version: str = ""

    def state_at(self, now: float) -> str:
        if self.stop_at is not None:
            return "stopping" if now < self.stop_at + STOP_SECONDS else "canceled"
        return self.progression.status_at(now - self.created_at)

    def ended_at(self, now: float) -> float | None:
        end = (
            self.stop_at + STOP_SECONDS
            if self.stop_at is not None
            else self.created_at + self.progression.duration
        )
        return end if now >= end else None

    def error(self, now: float) -> dict[str, Any] | None:
        return {"canceled": CANCEL_ERROR, "failed": TABLE_ERROR}.get(self.state_at(now))

    def tasks_at(self, now: float) -> list[tuple[TaskPlan, str, float | None]]:
        """(task, state, ended_at) of each task begun by ``now``; a stop interrupts running ones."""
        elapsed = now - self.created_at
        cut = None if self.stop_at is None else self.stop_at - self.created_at
        horizon = elapsed if cut is None else min(elapsed, cut)
        shown: list[tuple[TaskPlan, str, float | None]] = []
        for task in self.tasks:
            if task.start > horizon:
                continue
            if cut is not None and task.end > cut:
                done = elapsed >= cut + STOP_SECONDS
                ended = self.created_at + cut + STOP_SECONDS if done else None
                shown.append((task, "canceled" if done else "stopping", ended))
            elif elapsed < task.end:
                shown.append((task, "running", None))
            else:
                shown.append((task, "failed" if task.fails else "succeeded", self.created_at + task.end))
        return shown


def iso(ts: float) -> str:
    """Amperity's timestamp form: UTC, milliseconds, ``Z``."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(value: Any, name: str) -> float:
    """ISO-8601 (``Z`` or an offset; naive means UTC) or a partial date such as ``2026-11``.

    A partial date stands for the start of its period, so as a ``from`` bound it is inclusive and
    as a ``to`` bound exclusive, matching the documented closed-open ranges.
    """
    if not isinstance(value, str) or not value.strip():
        raise VendorError(400, f"{name} must be an ISO-8601 timestamp string")
    text = value.strip()
    try:
        partial = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", text)
        if partial:
            parsed = datetime(int(partial[1]), int(partial[2] or 1), 1)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise VendorError(400, f"{name} is not a valid ISO-8601 timestamp: {value!r}")
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def _make_id(prefix: str, ts: float) -> str:
    """``wf-20240619-14418-6UhqSe``: date, seconds since midnight UTC, random suffix."""
    moment = datetime.fromtimestamp(ts, timezone.utc)
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
    return f"{prefix}-{moment:%Y%m%d}-{seconds:05d}-{_random(6)}"


def _random(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def _normalize_state(value: str) -> str:
    return " ".join(value.strip().lower().replace("_", " ").replace("-", " ").split())


async def _start_params(request: Request) -> dict[str, Any]:
    """The start body: JSON whatever the Content-Type says (curl's ``--data`` labels JSON as a
    form), otherwise form fields, url-encoded or multipart."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form()
            return {k: v for k, v in form.items() if isinstance(v, str)}
        return dict(parse_qsl(raw.decode("utf-8", "replace")))
    if not isinstance(body, dict):
        raise VendorError(400, "Request body must be a JSON object")
    return body


def _optional_str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise VendorError(400, f"{name} must be a string")
    return value


class AmperityEmulator(VendorEmulator):
    name = "amperity"

    def __init__(
        self,
        clock: EmulatorClock,
        *,
        token_ttl: float = 3600.0,
        requests_per_second: int | None = 10,
        multiword_style: Literal["spaces", "hyphens"] = "spaces",
    ) -> None:
        super().__init__(clock)
        if multiword_style not in ("spaces", "hyphens"):
            raise ValueError("multiword_style must be 'spaces' or 'hyphens'")
        # The machine form of multi-word states is undocumented; hyphens lets a test check the
        # provider normalises ``running-with-failures`` as well.
        self.multiword_style = multiword_style
        self.token_ttl = token_ttl
        self.requests_per_second = requests_per_second
        # The rate limit is per real second: speeding up the emulated clock must not loosen it.
        self.wall_clock = EmulatorClock(1.0)
        self.runs: dict[str, AmperityRun] = {}
        self.tokens: dict[str, MintedToken] = {}
        self._seq = 0
        self._limits: dict[str, WindowLimit] = {}
        self._arrivals: dict[str, deque[float]] = {}
        self.max_rps_seen = 0

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.runs.clear()
            self.tokens.clear()
            self._seq = 0
            self._limits.clear()
            self._arrivals.clear()
            self.max_rps_seen = 0

    def expire_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.expires_at = min(token.expires_at, self.clock.now())

    def stats(self) -> dict[str, Any]:
        # Counters start at 0 so tests can assert "no 429s" without a KeyError; minted token
        # values are listed so tests can prove they never leak into Airflow's logs or XCom.
        return {
            **dict.fromkeys(COUNTERS, 0),
            **self.counters,
            "runs": len(self.runs),
            "max_rps_seen": self.max_rps_seen,
            "minted_tokens": sorted(self.tokens),
        }

    def error_body(self, status: int, message: str, code: str | None = None) -> dict[str, Any]:
        return {
            "status": status,
            "message": message,
            "request_id": str(uuid.uuid4()),
            "trace_id": uuid.uuid4().hex,
        }

    # -- request checks ------------------------------------------------------------------------------
    def _gate(self, request: Request) -> str:
        """What every ``/workflow`` call goes through; returns the tenant.

        The tenant comes first because the rate limit is kept per tenant; throttling happens
        before the version and token checks, as a gateway would, so every arrival counts.
        """
        tenant = request.headers.get("amperity-tenant", "").strip()
        if not tenant:
            raise VendorError(400, "Missing amperity-tenant header")
        self._throttle(tenant)
        version = request.headers.get("api-version") or request.query_params.get("api_version")
        if not version:
            raise VendorError(400, "Missing api-version header (or api_version query parameter)")
        if version not in API_VERSIONS:
            raise VendorError(
                400, f"Unsupported API version {version!r}; supported: {', '.join(API_VERSIONS)}"
            )
        self._authorize(request, tenant)
        return tenant

    def _throttle(self, tenant: str) -> None:
        now = self.wall_clock.now()
        with self.lock:
            arrivals = self._arrivals.setdefault(tenant, deque())
            arrivals.append(now)
            while arrivals[0] <= now - 1.0:
                arrivals.popleft()
            self.max_rps_seen = max(self.max_rps_seen, len(arrivals))
            limit = self._limits.setdefault(
                tenant, WindowLimit(self.wall_clock, self.requests_per_second, 1.0)
            )
        if limit.hit() is not None:
            self.counters["rate_limited"] += 1
            # No Retry-After: Amperity documents none, so clients must back off on their own.
            raise VendorError(429, f"Rate limit exceeded: {self.requests_per_second} requests per second")

    def _authorize(self, request: Request, tenant: str) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise VendorError(401, "Missing bearer token")
        if token == STATIC_TOKEN:
            return
        minted = self.tokens.get(token)
        if minted is None or minted.expires_at <= self.clock.now():
            raise VendorError(401, "Invalid or expired access token")
        if minted.tenant != tenant:
            raise VendorError(401, f"Access token was not issued for tenant {tenant!r}")

    def _owned(self, workflow_id: str, tenant: str) -> AmperityRun:
        """Another tenant's run answers 404, exactly like a missing one."""
        run = self.runs.get(workflow_id)
        if run is None or run.tenant != tenant:
            raise VendorError(404, f"Workflow {workflow_id} not found")
        return run

    # -- runs ------------------------------------------------------------------------------------------
    def _start(self, tenant: str, params: dict[str, Any]) -> AmperityRun:
        config_id = params.get("config_id")
        if not isinstance(config_id, str) or not config_id:
            raise VendorError(400, "config_id is required")
        prefix = config_id[:3]
        if prefix not in KINDS or len(config_id) <= 3:
            raise VendorError(
                400, f"Invalid config_id {config_id!r}: expected a cg-, og- or cc- configuration id"
            )
        run_mode = _optional_str(params, "run_mode")
        if run_mode is not None:
            if run_mode not in RUN_MODES:
                raise VendorError(400, f"Invalid run_mode {run_mode!r}: use one of {', '.join(RUN_MODES)}")
            if prefix != "cg-":
                raise VendorError(400, "run_mode is only supported for courier groups (cg-)")
        range_from = _optional_str(params, "range_from")
        range_to = _optional_str(params, "range_to")
        if range_to is not None and range_from is None:
            raise VendorError(400, "range_to requires range_from")
        if range_from is not None:
            start = parse_timestamp(range_from, "range_from")
            if range_to is not None and start >= parse_timestamp(range_to, "range_to"):
                raise VendorError(400, "range_from must be before range_to")

        kind = KINDS[prefix]
        # Whole milliseconds, so a created_from copied from a response matches the run exactly.
        now = math.floor(self.clock.now() * 1000) / 1000
        run_id = _make_id("wf", now)
        progression, tasks = self._plan(config_id.lower(), kind, now)
        with self.lock:
            self._seq += 1
            run = AmperityRun(
                seq=self._seq,
                id=run_id,
                tenant=tenant,
                type=kind.type,
                name=f"{kind.label} {config_id[3:]}",
                created_at=now,
                progression=progression,
                tasks=tasks,
                run_mode=run_mode,
                range_from=range_from,
                range_to=range_to,
                version=_make_id("etv", now),
            )
            self.runs[run_id] = run
            self.counters["runs_created"] += 1
        return run

    @staticmethod
    def _plan(config_id: str, kind: ConfigKind, created_at: float) -> tuple[Progression, list[TaskPlan]]:
        """Tasks share the time after ``started`` equally and one after another; the workflow
        state follows them, so a poll never shows a run and its tasks disagreeing."""
        duration = SLOW_SECONDS if "slow" in config_id else DEFAULT_SECONDS
        outcome = "warn" if "warn" in config_id else "fail" if "fail" in config_id else "succeed"
        share = (duration - TASKS_FROM) / len(kind.tasks)
        failing = {"warn": 0, "fail": len(kind.tasks) - 1}.get(outcome)
        tasks = []
        for i, (label, definition_type) in enumerate(kind.tasks):
            start = TASKS_FROM + i * share
            tasks.append(
                TaskPlan(
                    id=_make_id("wft", created_at + start),
                    run_id=f"orb-{datetime.fromtimestamp(created_at, timezone.utc):%Y%m%d}-{_random(11)}",
                    label=label,
                    definition_type=definition_type,
                    start=start,
                    end=start + share,
                    fails=i == failing,
                )
            )
        later = "running with failures" if outcome == "warn" else "running"
        steps = [
            ("scheduled", SCHEDULED_FOR),
            ("started", STARTED_FOR),
            ("in progress", share),
            (later, duration - TASKS_FROM - share),
        ]
        return Progression(steps, "succeeded" if outcome == "succeed" else "failed"), tasks

    def _spell(self, state: str) -> str:
        return state.replace(" ", "-") if self.multiword_style == "hyphens" else state

    def _overview(self, run: AmperityRun, now: float) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": run.id,
            "name": run.name,
            "state": self._spell(run.state_at(now)),
            "tenant": run.tenant,
            "type": run.type,
            "created_at": iso(run.created_at),
        }
        ended = run.ended_at(now)
        if ended is not None:
            view["ended_at"] = iso(ended)
        return view

    def _verbose(self, run: AmperityRun, now: float) -> dict[str, Any]:
        """The verbose Workflow with every field of the documented examples (seed 002's start
        answer, vendor-apis.md §2.3): who launched it and the configuration versions too."""
        view = {
            **self._overview(run, now),
            "task_instances": [self._task(run, *shown) for shown in run.tasks_at(now)],
            "principal_name": PRINCIPAL["name"],
            "principal_id": PRINCIPAL["id"],
            "principal_email": PRINCIPAL["email"],
            "launched_version": run.version,
            "current_version": run.version,
            "warn_after_ms": WARN_AFTER_MS,
            "run_mode": run.run_mode,
            "range_from": run.range_from,
            "range_to": run.range_to,
        }
        error = run.error(now)
        if error is not None:
            view["error"] = dict(error)
        return view

    def _task(self, run: AmperityRun, task: TaskPlan, state: str, ended: float | None) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": task.id,
            "state": self._spell(state),
            "tenant": run.tenant,
            "label": task.label,
            "created_at": iso(run.created_at + task.start),
            "execution_type": "spark-sql",
            "run_id": task.run_id,
            "state_changed_at": iso(ended if ended is not None else run.created_at + task.start),
            "task_definition_id": f"{task.definition_type}/{run.id}",
            "task_definition_type": task.definition_type,
            "timeout_ms": TASK_TIMEOUT_MS,
            "workflow_id": run.id,
        }
        if ended is not None:
            view["ended_at"] = iso(ended)
        if state == "failed":
            view["error"] = dict(TABLE_ERROR)
        return view

    def _list(self, tenant: str, params: Any) -> dict[str, Any]:
        now = self.clock.now()
        limit = int_query(params, "limit", 50, 1, 100)
        with_total = params.get("with_total", "false").lower()
        if with_total not in ("true", "false"):
            raise VendorError(400, "with_total must be true or false")
        bounds = {
            name: parse_timestamp(params[name], name)
            for name in ("created_from", "created_to", "ended_from", "ended_to")
            if name in params
        }
        state = _normalize_state(params["state"]) if "state" in params else None
        kind = params.get("type")

        def matches(run: AmperityRun) -> bool:
            ended = run.ended_at(now)
            checks = [
                run.tenant == tenant,
                run.created_at >= bounds.get("created_from", -math.inf),
                run.created_at < bounds.get("created_to", math.inf),
                state is None or run.state_at(now) == state,
                kind is None or run.type == kind,
            ]
            if "ended_from" in bounds or "ended_to" in bounds:
                checks.append(
                    ended is not None
                    and bounds.get("ended_from", -math.inf) <= ended < bounds.get("ended_to", math.inf)
                )
            return all(checks)

        matching = sorted(filter(matches, list(self.runs.values())), key=lambda r: r.seq, reverse=True)
        rest = matching
        if "next_token" in params:
            after = _decode_token(params["next_token"])
            rest = [r for r in matching if r.seq < after]
        page = rest[:limit]
        body: dict[str, Any] = {"data": [self._overview(r, now) for r in page]}
        if len(rest) > limit:
            body["next_token"] = _encode_token(page[-1].seq)
        if with_total == "true":
            body["total"] = len(matching)
        return body

    # -- routes ----------------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api")

        @router.post("/v0/oauth2/token")
        async def token(request: Request) -> dict[str, Any]:
            tenant = request.headers.get("x-amperity-tenant") or request.headers.get("amperity-tenant")
            if not tenant:
                raise VendorError(400, "Missing X-Amperity-Tenant header")
            form = await request.form()
            if form.get("grant_type") != "client_credentials":
                raise VendorError(400, "unsupported_grant_type: use client_credentials")
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                raise VendorError(401, "invalid_client")
            value = _random(26)
            with self.lock:
                self.tokens[value] = MintedToken(tenant, self.clock.now() + self.token_ttl)
                self.counters["tokens_minted"] += 1
            return {"access_token": value, "expires_in": int(self.token_ttl), "token_type": "Bearer"}

        @router.post("/workflow/runs", status_code=201)
        async def start(request: Request) -> dict[str, Any]:
            tenant = self._gate(request)
            run = self._start(tenant, await _start_params(request))
            return self._verbose(run, self.clock.now())

        @router.get("/workflow/runs")
        async def list_runs(request: Request) -> dict[str, Any]:
            return self._list(self._gate(request), request.query_params)

        @router.get("/workflow/runs/{workflow_id}")
        async def get_run(workflow_id: str, request: Request) -> dict[str, Any]:
            tenant = self._gate(request)
            self.counters["status_polls"] += 1
            view = request.query_params.get("view", "overview")
            if view not in ("overview", "verbose"):
                raise VendorError(400, f"Invalid view {view!r}: use overview or verbose")
            run = self._owned(workflow_id, tenant)
            now = self.clock.now()
            return self._verbose(run, now) if view == "verbose" else self._overview(run, now)

        @router.post("/workflow/runs/{workflow_id}/stop")
        async def stop(workflow_id: str, request: Request) -> dict[str, Any]:
            tenant = self._gate(request)
            run = self._owned(workflow_id, tenant)
            now = self.clock.now()
            with self.lock:
                self.counters["stops"] += 1
                if run.stop_at is None and run.state_at(now) not in TERMINAL:
                    run.stop_at = now
            return self._verbose(run, now)

        @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def unknown(path: str, request: Request) -> None:
            """Unknown routes and methods still answer in Amperity's error shape."""
            known = re.fullmatch(r"workflow/runs(/[^/]+(/stop)?)?|v0/oauth2/token", path)
            if known:
                raise VendorError(405, f"Method {request.method} not allowed on /{path}")
            raise VendorError(404, f"No such endpoint: /{path}")

        return router


def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    """Tokens are keyset cursors (runs older than the last one shown), so runs started while a
    client pages through do not shift later pages."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        label, _, seq = text.partition(":")
        if label != "seq":
            raise ValueError(text)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise VendorError(400, "Invalid next_token")

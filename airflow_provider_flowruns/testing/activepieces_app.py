"""An in-memory Activepieces flow-runs API, mounted at ``/activepieces/api``.

It reproduces what a provider can trip over: webhooks that answer ``{}`` and no run id (and are
public: the emulator counts calls that carried credentials anyway), ``/sync`` webhooks that wait
up to 30 emulated seconds for the flow's Return Response and answer 204 otherwise, runs that show
no step data while QUEUED or after the retention window, runs that pause for human input and are
resumed through a waitpoint or the legacy ``requests`` route, DELAY pauses that end by themselves,
the two retry strategies (``FROM_FAILED_STEP`` keeps the run id, ``ON_LATEST_VERSION`` makes a new
one), bulk cancel (PAUSED/QUEUED only), bulk retry and archive with the seed's filters and
exclusions, seek-cursor pages, 410 outside retention and the ``{code, params}`` error body
(Fastify's ``{statusCode, code, error, message}`` for schema errors and unknown routes).

Credentials: ``Authorization: Bearer activepieces-key`` (``FLOWRUNS_ACTIVEPIECES_API_KEY``
overrides) on the flow-run routes; project :data:`PROJECT_ID`.

Seeded flows (:data:`FLOWS`, ids of 21 characters like real ones) choose a run's fate:
``FLOW_OK`` succeeds after 4 emulated seconds; ``FLOW_FLAKY`` fails at its CRM step the first
time and succeeds on any retry; ``FLOW_BROKEN`` fails on version 1, so ``FROM_FAILED_STEP`` (same
version) fails again while ``ON_LATEST_VERSION`` (version 2) succeeds; ``FLOW_APPROVAL`` pauses
for human input with a waitpoint, ``FLOW_LEGACY_APPROVAL`` the same with only a request id (its
waitpoint route is unknown); ``FLOW_DELAY`` pauses 60 s and resumes by itself; ``FLOW_RESPONDS``
returns a response to ``/sync`` callers; ``FLOW_SLOW`` hits the 600 s flow timeout
(``TIMEOUT``); ``FLOW_BACKLOG`` stays QUEUED for an hour; ``FLOW_DISABLED`` answers 404 and
``FLOW_QUOTA`` 402; any other id 410.

``pauseMetadata.waitpointId`` is this emulator's guess at where a current server names the
waitpoint; the reference documents only ``requestId``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from airflow_provider_flowruns.testing.clock import EmulatorClock
from airflow_provider_flowruns.testing.progression import Progression
from airflow_provider_flowruns.testing.server import VendorEmulator, VendorError


def ap_id(label: str) -> str:
    """A readable seeded id of Activepieces' length (21 alphanumerics)."""
    return (label + "0" * 21)[:21]


#: Overridable so secret-leak tests can use a sentinel value of their own.
API_KEY = os.environ.get("FLOWRUNS_ACTIVEPIECES_API_KEY", "activepieces-key")
PROJECT_ID = ap_id("projAcme")
RETENTION_SECONDS = 30 * 86400.0
WEBHOOK_TIMEOUT = 30.0
FLOW_TIMEOUT = 600.0
DELAY_SECONDS = 60.0
MAX_PAYLOAD_BYTES = 1024 * 1024
RECORDED = "Your response has been recorded. You can close this page now."
EXPIRED = "This link has expired. The action may have already been processed."
FST_VALIDATION = "FST_ERR_VALIDATION"
ROUTE_NOT_FOUND = "ROUTE_NOT_FOUND"

STATUSES = (
    "QUEUED",
    "RUNNING",
    "PAUSED",
    "SUCCEEDED",
    "FAILED",
    "TIMEOUT",
    "CANCELED",
    "QUOTA_EXCEEDED",
    "MEMORY_LIMIT_EXCEEDED",
    "INTERNAL_ERROR",
    "LOG_SIZE_EXCEEDED",
)
LIVE = frozenset({"QUEUED", "RUNNING", "PAUSED"})
CANCELLABLE = frozenset({"PAUSED", "QUEUED"})
STRATEGIES = ("FROM_FAILED_STEP", "ON_LATEST_VERSION")
COUNTERS = (
    "webhooks",
    "runs_created",
    "status_polls",
    "list_calls",
    "retries",
    "resumes",
    "legacy_resumes",
    "cancelled",
    "archived",
    "public_calls_with_credentials",
)
DEFAULT_CODES = {
    401: "INVALID_BEARER_TOKEN",
    402: "QUOTA_EXCEEDED",
    403: "PERMISSION_DENIED",
    404: "ENTITY_NOT_FOUND",
    409: "VALIDATION",
    410: "FLOW_RUN_RETRY_OUTSIDE_RETENTION",
    422: "PAUSED_FLOW_TIMEOUT_EXCEEDED",
    429: "SANDBOX_CAPACITY_EXCEEDED",
}

Pause = Literal["WEBHOOK", "LEGACY", "DELAY"]


@dataclass(frozen=True)
class FlowDef:
    id: str
    name: str
    steps: tuple[tuple[str, str], ...]  # (step name, display name) of the actions after the trigger
    run_seconds: float = 4.0
    queued_seconds: float = 1.0
    pause: Pause | None = None
    pause_step: str | None = None
    fail_step: str | None = None
    fail_error: str = ""
    fails: Literal["first_attempt", "old_versions"] | None = None
    final: str = "SUCCEEDED"
    responds: bool = False
    enabled: bool = True
    over_quota: bool = False
    latest_version: int = 1
    tags: tuple[str, ...] = ()


CRM_STEPS = (("step_1", "Transform data"), ("step_2", "Send to CRM"))
APPROVAL_STEPS = (
    ("step_1", "Prepare request"),
    ("step_2", "Wait for approval"),
    ("step_3", "Notify requester"),
)

FLOW_OK = ap_id("flowOk")
FLOW_FLAKY = ap_id("flowFlaky")
FLOW_BROKEN = ap_id("flowBroken")
FLOW_APPROVAL = ap_id("flowApproval")
FLOW_LEGACY_APPROVAL = ap_id("flowLegacyApproval")
FLOW_DELAY = ap_id("flowDelay")
FLOW_RESPONDS = ap_id("flowResponds")
FLOW_SLOW = ap_id("flowSlow")
FLOW_BACKLOG = ap_id("flowBacklog")
FLOW_DISABLED = ap_id("flowDisabled")
FLOW_QUOTA = ap_id("flowQuota")

FLOWS = {
    f.id: f
    for f in (
        FlowDef(FLOW_OK, "Sync orders", CRM_STEPS, tags=("orders",)),
        FlowDef(
            FLOW_FLAKY,
            "Sync leads",
            CRM_STEPS,
            fail_step="step_2",
            fail_error="CRM answered 503 Service Unavailable",
            fails="first_attempt",
        ),
        FlowDef(
            FLOW_BROKEN,
            "Sync contacts",
            CRM_STEPS,
            fail_step="step_2",
            fail_error="TypeError: Cannot read properties of undefined (reading 'email')",
            fails="old_versions",
            latest_version=2,
        ),
        FlowDef(FLOW_APPROVAL, "Expense approval", APPROVAL_STEPS, pause="WEBHOOK", pause_step="step_2"),
        FlowDef(FLOW_LEGACY_APPROVAL, "Legacy approval", APPROVAL_STEPS, pause="LEGACY", pause_step="step_2"),
        FlowDef(
            FLOW_DELAY,
            "Reminder later",
            (("step_1", "Wait a minute"), ("step_2", "Send reminder")),
            pause="DELAY",
            pause_step="step_1",
        ),
        FlowDef(
            FLOW_RESPONDS,
            "Quote service",
            (("step_1", "Price it"), ("step_2", "Return Response")),
            responds=True,
        ),
        FlowDef(FLOW_SLOW, "Full export", CRM_STEPS, run_seconds=FLOW_TIMEOUT, final="TIMEOUT"),
        FlowDef(FLOW_BACKLOG, "Nightly batch", CRM_STEPS, queued_seconds=3600.0),
        FlowDef(FLOW_DISABLED, "Retired flow", CRM_STEPS, enabled=False),
        FlowDef(FLOW_QUOTA, "Over quota", CRM_STEPS, over_quota=True),
    )
}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _random_id() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(21))


@dataclass
class ApRun:
    """A flow run; its status is computed from the clock within its current segment (the first
    execution, a resume or a retry), so nothing needs a background task."""

    id: str
    flow: FlowDef
    created: float
    version: int
    payload: dict[str, Any]
    parent_run_id: str | None = None
    fail_parent_on_failure: bool = False
    retried: bool = False
    attempt: int = 1
    segment: Literal["initial", "resumed", "retry"] = "initial"
    segment_start: float = 0.0
    resume_payload: dict[str, Any] | None = None
    request_id: str = field(default_factory=_random_id)
    waitpoint_id: str = field(default_factory=_random_id)
    cancelled_at: float | None = None
    archived_at: float | None = None

    def __post_init__(self) -> None:
        self.segment_start = self.segment_start or self.created

    def progression(self) -> Progression:
        flow = self.flow
        if self.segment == "initial":
            steps = [("QUEUED", flow.queued_seconds), ("RUNNING", flow.run_seconds)]
            if flow.pause == "DELAY":
                steps += [("PAUSED", DELAY_SECONDS), ("RUNNING", 1.0)]
            elif flow.pause:
                return Progression(steps, "PAUSED")
        else:
            steps = [("QUEUED", 0.5), ("RUNNING", flow.run_seconds)]
        return Progression(steps, self.outcome())

    def outcome(self) -> str:
        flow = self.flow
        if flow.fails == "first_attempt" and not self.retried and self.attempt == 1:
            return "FAILED"
        if flow.fails == "old_versions" and self.version < flow.latest_version:
            return "FAILED"
        return flow.final

    def at(self, now: float) -> float:
        """The moment whose state the run shows: a cancelled run stays as it was when cancelled."""
        return now if self.cancelled_at is None else min(now, self.cancelled_at)

    def running_status(self, now: float) -> str:
        return self.progression().status_at(self.at(now) - self.segment_start)

    def status(self, now: float) -> str:
        return (
            "CANCELED"
            if self.cancelled_at is not None and now >= self.cancelled_at
            else self.running_status(now)
        )

    def started(self, now: float) -> bool:
        return not (self.segment == "initial" and self.running_status(now) == "QUEUED")

    def finished_at(self, now: float) -> float | None:
        if self.cancelled_at is not None:
            return self.cancelled_at
        progression = self.progression()
        if progression.final == "PAUSED":
            return None
        end = self.segment_start + progression.duration
        return end if now >= end else None

    def expired(self, now: float) -> bool:
        return now - self.created > RETENTION_SECONDS

    def pause_metadata(self, now: float) -> dict[str, Any] | None:
        if self.status(now) != "PAUSED":
            return None
        if self.flow.pause == "DELAY":
            resume_at = self.segment_start + self.flow.queued_seconds + self.flow.run_seconds + DELAY_SECONDS
            return {"type": "DELAY", "resumeDateTime": iso(resume_at)}
        meta: dict[str, Any] = {"type": "WEBHOOK", "requestId": self.request_id, "response": {}}
        if self.flow.pause == "WEBHOOK":
            meta["waitpointId"] = self.waitpoint_id
        return meta

    def steps(self, now: float) -> dict[str, Any] | None:
        """Step data: none before the run starts or past retention; then the trigger's output and
        each action reached so far."""
        if self.expired(now) or not self.started(now):
            return None
        status = self.running_status(now)
        steps: dict[str, Any] = {
            "trigger": {"type": "PIECE_TRIGGER", "status": "SUCCEEDED", "input": {}, "output": self.payload}
        }
        current = self._current_step(status)
        for name, display in self.flow.steps:
            if name != current:
                steps[name] = self._done(name, display)
                continue
            shown = {"FAILED": "FAILED", "PAUSED": "PAUSED", "TIMEOUT": "TIMEOUT"}.get(status, "RUNNING")
            steps[name] = {"type": "PIECE", "status": shown, "output": None}
            if shown == "FAILED":
                steps[name]["errorMessage"] = self.flow.fail_error
            break
        return steps

    def _current_step(self, status: str) -> str | None:
        """The step the run is at (None once it succeeded): the failed or pausing step, the step
        after a resumed pause, the step a retry replays from, else the first one (the last one for
        a run cut off by the flow timeout)."""
        names = [name for name, _ in self.flow.steps]
        if status == "SUCCEEDED":
            return None
        if status == "FAILED":
            return self.flow.fail_step
        if status == "PAUSED":
            return self.flow.pause_step
        if status == "TIMEOUT":
            return names[-1]
        if self.segment == "resumed" and self.flow.pause_step in names:
            return names[min(names.index(self.flow.pause_step) + 1, len(names) - 1)]
        if self.segment == "retry" and self.flow.fail_step:
            return self.flow.fail_step
        return names[0]

    def _done(self, name: str, display: str) -> dict[str, Any]:
        if name == self.flow.pause_step and self.resume_payload is not None:
            output: Any = self.resume_payload
        elif display == "Return Response":
            output = self.response()
        else:
            output = {"step": display, "input": self.payload.get("body")}
        return {"type": "PIECE", "status": "SUCCEEDED", "output": output, "duration": 120}

    def response(self) -> dict[str, Any]:
        return {"status": 200, "body": {"ok": True, "runId": self.id, "received": self.payload.get("body")}}

    def view(self, now: float, *, with_steps: bool) -> dict[str, Any]:
        status = self.status(now)
        started = self.started(now)
        finished = self.finished_at(now)
        name = self.flow.fail_step if status == "FAILED" else None
        display = dict(self.flow.steps).get(name or "")
        body: dict[str, Any] = {
            "id": self.id,
            "created": iso(self.created),
            "updated": iso(max(self.segment_start, finished or 0.0)),
            "projectId": PROJECT_ID,
            "flowId": self.flow.id,
            "parentRunId": self.parent_run_id,
            "failParentOnFailure": self.fail_parent_on_failure,
            "triggeredBy": None,
            "tags": list(self.flow.tags),
            "flowVersionId": ap_id(f"v{self.version}{self.flow.id}"),
            "flowVersion": {"displayName": self.flow.name},
            "logsFileId": ap_id(f"logs{self.id}"),
            "status": status,
            "startTime": iso(self.created + self.flow.queued_seconds) if started else None,
            "finishTime": iso(finished) if finished is not None else None,
            "environment": "PRODUCTION",
            "pauseMetadata": self.pause_metadata(now),
            "failedStep": {"name": name, "displayName": display} if name else None,
            "stepNameToTest": None,
            "archivedAt": iso(self.archived_at) if self.archived_at is not None else None,
            "stepsCount": len(self.flow.steps) + 1,
            "stepsDataTruncated": False,
        }
        if with_steps:
            body["steps"] = self.steps(now)
        return body


def _fastify(message: str) -> VendorError:
    return VendorError(400, message, code=FST_VALIDATION)


def _not_found(entity: str, entity_id: str) -> VendorError:
    """``ActivepiecesError`` ENTITY_NOT_FOUND as the server sends it (vendor-apis.md §3.4):
    ``{"code", "params": {"entityType", "entityId", "message"}}``."""
    message = f"{entity.replace('_', ' ').capitalize()} not found"
    return VendorError(
        404,
        message,
        code="ENTITY_NOT_FOUND",
        body={
            "code": "ENTITY_NOT_FOUND",
            "params": {"entityType": entity, "entityId": entity_id, "message": message},
        },
    )


def _timestamp(value: Any, name: str) -> float:
    if not isinstance(value, str) or not value:
        raise _fastify(f"{name} must be string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _fastify(f'{name} must match format "date-time"')
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def _string_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fastify(f"body/{name} must be array of strings")
    return value


def _statuses(
    values: list[str], name: str, allowed: tuple[str, ...] | frozenset[str] = STATUSES
) -> list[str]:
    for i, value in enumerate(values):
        if value not in allowed:
            raise _fastify(f"{name}/{i} must be equal to one of the allowed values")
    return values


async def _payload(request: Request) -> tuple[Any, int]:
    raw = await request.body()
    if not raw:
        return None, 0
    try:
        return json.loads(raw), len(raw)
    except ValueError:
        return raw.decode("utf-8", "replace"), len(raw)


class ActivepiecesEmulator(VendorEmulator):
    name = "activepieces"

    def __init__(self, clock: EmulatorClock) -> None:
        super().__init__(clock)
        self.runs: dict[str, ApRun] = {}

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.runs.clear()

    def stats(self) -> dict[str, Any]:
        return {**dict.fromkeys(COUNTERS, 0), **self.counters, "runs": len(self.runs)}

    def error_body(self, status: int, message: str, code: str | None = None) -> dict[str, Any]:
        if code in (FST_VALIDATION, ROUTE_NOT_FOUND):
            body: dict[str, Any] = {
                "statusCode": status,
                "error": HTTPStatus(status).phrase,
                "message": message,
            }
            if code == FST_VALIDATION:
                body["code"] = code
            return body
        return {
            "code": code or DEFAULT_CODES.get(status, "INTERNAL_SERVER_ERROR"),
            "params": {"message": message},
        }

    # -- checks --------------------------------------------------------------------------------------
    @staticmethod
    def _authorize(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise VendorError(401, "Missing bearer token", code="INVALID_BEARER_TOKEN")
        if token.strip() != API_KEY:
            raise VendorError(401, "Invalid API key", code="INVALID_API_KEY")

    @staticmethod
    def _project(value: Any, where: str) -> None:
        if not value:
            raise _fastify(f"{where} must have required property 'projectId'")
        if value != PROJECT_ID:
            raise VendorError(403, f"The API key has no access to project {value}", code="PERMISSION_DENIED")

    def _public(self, request: Request) -> None:
        if "authorization" in request.headers:
            self.counters["public_calls_with_credentials"] += 1

    def _run(self, run_id: str) -> ApRun:
        run = self.runs.get(run_id)
        if run is None:
            raise _not_found("flow_run", run_id)
        return run

    # -- webhooks ------------------------------------------------------------------------------------
    async def _webhook(self, request: Request, flow_id: str, *, sync: bool) -> Response:
        self._public(request)
        self.counters["webhooks"] += 1
        flow = FLOWS.get(flow_id)
        if flow is None:
            return JSONResponse({}, status_code=410)
        if not flow.enabled:
            return JSONResponse({}, status_code=404)
        if flow.over_quota:
            return JSONResponse({"code": "QUOTA_EXCEEDED", "params": {"metric": "tasks"}}, status_code=402)
        body, size = await _payload(request)
        if size > MAX_PAYLOAD_BYTES:
            return JSONResponse({"message": "Payload too large"}, status_code=413)
        query: dict[str, Any] = {}
        for key in request.query_params:
            values = request.query_params.getlist(key)
            query[key] = values if len(values) > 1 else values[0]
        payload = {
            "method": request.method,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
            "queryParams": query,
        }
        now = self.clock.now()
        run = ApRun(
            id=_random_id(),
            flow=flow,
            created=now,
            version=flow.latest_version if flow.fails != "old_versions" else 1,
            payload=payload,
            parent_run_id=request.headers.get("ap-parent-run-id"),
            fail_parent_on_failure=request.headers.get("ap-fail-parent-on-failure", "").lower() == "true",
        )
        with self.lock:
            self.runs[run.id] = run
            self.counters["runs_created"] += 1
        headers = {"x-webhook-id": _random_id()}
        if not sync:
            return JSONResponse({}, headers=headers)
        return await self._sync_answer(run, headers)

    async def _sync_answer(self, run: ApRun, headers: dict[str, str]) -> Response:
        """Wait (up to the webhook timeout, in emulated time) for the run's Return Response."""
        deadline = self.clock.now() + WEBHOOK_TIMEOUT
        while self.clock.now() < deadline:
            status = run.status(self.clock.now())
            if status not in ("QUEUED", "RUNNING"):
                if run.flow.responds and status == "SUCCEEDED":
                    answer = run.response()
                    return JSONResponse(answer["body"], status_code=answer["status"], headers=headers)
                break
            await asyncio.sleep(0.02)
        return Response(status_code=204, headers=headers)

    # -- resume ----------------------------------------------------------------------------------------
    async def _resume(
        self, request: Request, run_id: str, waitpoint_id: str | None, *, sync: bool
    ) -> Response:
        self._public(request)
        run = self._run(run_id)
        now = self.clock.now()
        if waitpoint_id is not None and (run.flow.pause != "WEBHOOK" or waitpoint_id != run.waitpoint_id):
            raise _not_found("waitpoint", waitpoint_id)
        if run.status(now) != "PAUSED" or run.flow.pause == "DELAY":
            return JSONResponse({"message": EXPIRED})
        body, _ = await _payload(request)
        with self.lock:
            run.resume_payload = {
                "body": body,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "queryParams": dict(request.query_params),
            }
            run.segment, run.segment_start = "resumed", now
            self.counters["resumes" if waitpoint_id is not None else "legacy_resumes"] += 1
        if not sync:
            return JSONResponse({"message": RECORDED})
        return await self._sync_answer(run, {})

    # -- retry, cancel, archive ---------------------------------------------------------------------------
    def _retry(self, run: ApRun, strategy: str, now: float) -> ApRun:
        self.counters["retries"] += 1
        if strategy == "FROM_FAILED_STEP":
            run.attempt += 1
            run.segment, run.segment_start = "retry", now
            run.cancelled_at = None
            return run
        fresh = ApRun(
            id=_random_id(),
            flow=run.flow,
            created=now,
            version=run.flow.latest_version,
            payload=run.payload,
            parent_run_id=run.parent_run_id,
            fail_parent_on_failure=run.fail_parent_on_failure,
            retried=True,
        )
        self.runs[fresh.id] = fresh
        self.counters["runs_created"] += 1
        return fresh

    def _select(self, body: dict[str, Any], now: float) -> list[ApRun]:
        """The runs a bulk body names: ``flowRunIds`` alone when given, else the filters; never
        ``excludeFlowRunIds``; archived runs only by id."""
        ids = _string_list(body.get("flowRunIds"), "flowRunIds")
        exclude = set(_string_list(body.get("excludeFlowRunIds"), "excludeFlowRunIds"))
        if ids:
            chosen = [self.runs[i] for i in ids if i in self.runs]
        else:
            flows = set(_string_list(body.get("flowId"), "flowId"))
            statuses = set(_statuses(_string_list(body.get("status"), "status"), "body/status"))
            after = (
                _timestamp(body["createdAfter"], "body/createdAfter") if body.get("createdAfter") else None
            )
            before = (
                _timestamp(body["createdBefore"], "body/createdBefore") if body.get("createdBefore") else None
            )
            step = body.get("failedStepName")
            message = body.get("failedStepMessage")
            chosen = []
            for run in self.runs.values():
                view = run.view(now, with_steps=False)
                checks = [
                    run.archived_at is None,
                    not flows or run.flow.id in flows,
                    not statuses or view["status"] in statuses,
                    after is None or run.created >= after,
                    before is None or run.created < before,
                    not step or (view["failedStep"] or {}).get("name") == step,
                    not message or (view["status"] == "FAILED" and str(message) in run.flow.fail_error),
                ]
                if all(checks):
                    chosen.append(run)
        return [r for r in chosen if r.id not in exclude]

    def _list(self, params: Any) -> dict[str, Any]:
        now = self.clock.now()
        self._project(params.get("projectId"), "querystring")
        try:
            limit = int(params.get("limit", 10))
        except ValueError:
            raise _fastify("querystring/limit must be integer")
        if not 1 <= limit <= 100:
            raise _fastify("querystring/limit must be <= 100 and >= 1")

        def many(name: str) -> set[str]:
            return set(params.getlist(name) + params.getlist(f"{name}[]"))

        flows, tags, ids = many("flowId"), many("tags"), many("flowRunIds")
        statuses = set(_statuses(sorted(many("status")), "querystring/status"))
        after = (
            _timestamp(params["createdAfter"], "querystring/createdAfter")
            if "createdAfter" in params
            else None
        )
        before = (
            _timestamp(params["createdBefore"], "querystring/createdBefore")
            if "createdBefore" in params
            else None
        )
        archived = params.get("includeArchived", "false").lower() == "true"
        step = params.get("failedStepName")
        rows = []
        for run in list(self.runs.values()):
            view = run.view(now, with_steps=False)
            checks = [
                archived or run.archived_at is None,
                not flows or run.flow.id in flows,
                not statuses or view["status"] in statuses,
                not tags or bool(tags & set(run.flow.tags)),
                not ids or run.id in ids,
                after is None or run.created >= after,
                before is None or run.created < before,
                not step or (view["failedStep"] or {}).get("name") == step,
            ]
            if all(checks):
                rows.append((run.created, run.id, view))
        rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
        if "cursor" in params:
            key = _decode_cursor(params["cursor"])
            rows = [r for r in rows if (r[0], r[1]) < key]
        page = rows[:limit]
        more = len(rows) > limit
        return {
            "data": [view for _, _, view in page],
            "next": _encode_cursor(page[-1][0], page[-1][1]) if more else None,
            "previous": _encode_cursor(page[0][0], page[0][1]) if "cursor" in params and page else None,
        }

    # -- routes ----------------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api")
        any_method = ["GET", "POST", "PUT", "PATCH", "DELETE"]

        @router.api_route("/v1/webhooks/{flow_id}", methods=any_method)
        async def webhook(flow_id: str, request: Request) -> Response:
            return await self._webhook(request, flow_id, sync=False)

        @router.api_route("/v1/webhooks/{flow_id}/sync", methods=any_method)
        async def webhook_sync(flow_id: str, request: Request) -> Response:
            return await self._webhook(request, flow_id, sync=True)

        @router.get("/v1/flow-runs")
        async def list_runs(request: Request) -> dict[str, Any]:
            self._authorize(request)
            self.counters["list_calls"] += 1
            return self._list(request.query_params)

        @router.post("/v1/flow-runs/cancel")
        async def cancel(request: Request) -> list[dict[str, Any]]:
            self._authorize(request)
            body = await _json_object(request)
            self._project(body.get("projectId"), "body")
            _statuses(_string_list(body.get("status"), "status"), "body/status", ("PAUSED", "QUEUED"))
            now = self.clock.now()
            done = []
            with self.lock:
                for run in self._select(body, now):
                    if run.status(now) in CANCELLABLE:
                        run.cancelled_at = now
                        self.counters["cancelled"] += 1
                        done.append(run.view(now, with_steps=False))
            return done

        @router.post("/v1/flow-runs/retry")
        async def bulk_retry(request: Request) -> list[dict[str, Any]]:
            self._authorize(request)
            body = await _json_object(request)
            self._project(body.get("projectId"), "body")
            strategy = _strategy(body)
            now = self.clock.now()
            with self.lock:
                chosen = [
                    r for r in self._select(body, now) if r.status(now) not in LIVE and not r.expired(now)
                ]
                return [self._retry(r, strategy, now).view(now, with_steps=False) for r in chosen]

        @router.post("/v1/flow-runs/archive")
        async def archive(request: Request) -> list[dict[str, Any]]:
            self._authorize(request)
            body = await _json_object(request)
            self._project(body.get("projectId"), "body")
            now = self.clock.now()
            with self.lock:
                chosen = self._select(body, now)
                for run in chosen:
                    run.archived_at = now
                    self.counters["archived"] += 1
                return [r.view(now, with_steps=False) for r in chosen]

        @router.get("/v1/flow-runs/{run_id}")
        async def get_run(run_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            self.counters["status_polls"] += 1
            return self._run(run_id).view(self.clock.now(), with_steps=True)

        @router.post("/v1/flow-runs/{run_id}/retry")
        async def retry(run_id: str, request: Request) -> dict[str, Any]:
            self._authorize(request)
            body = await _json_object(request)
            self._project(body.get("projectId"), "body")
            strategy = _strategy(body)
            run = self._run(run_id)
            now = self.clock.now()
            if run.expired(now):
                raise VendorError(
                    410,
                    "Flow run is outside the retention period and cannot be retried",
                    code="FLOW_RUN_RETRY_OUTSIDE_RETENTION",
                )
            status = run.status(now)
            if status in LIVE:
                raise VendorError(
                    409, f"Flow run is {status}; only finished runs can be retried", code="VALIDATION"
                )
            with self.lock:
                return self._retry(run, strategy, now).view(now, with_steps=False)

        @router.api_route("/v1/flow-runs/{run_id}/waitpoints/{waitpoint_id}", methods=any_method)
        async def waitpoint(run_id: str, waitpoint_id: str, request: Request) -> Response:
            return await self._resume(request, run_id, waitpoint_id, sync=False)

        @router.api_route("/v1/flow-runs/{run_id}/waitpoints/{waitpoint_id}/sync", methods=any_method)
        async def waitpoint_sync(run_id: str, waitpoint_id: str, request: Request) -> Response:
            return await self._resume(request, run_id, waitpoint_id, sync=True)

        @router.api_route("/v1/flow-runs/{run_id}/requests/{request_id}", methods=any_method)
        async def legacy(run_id: str, request_id: str, request: Request) -> Response:
            return await self._resume(request, run_id, None, sync=False)

        @router.api_route("/v1/flow-runs/{run_id}/requests/{request_id}/sync", methods=any_method)
        async def legacy_sync(run_id: str, request_id: str, request: Request) -> Response:
            return await self._resume(request, run_id, None, sync=True)

        @router.api_route("/{path:path}", methods=any_method)
        async def unknown(path: str, request: Request) -> None:
            raise VendorError(404, f"Route {request.method}:/api/{path} not found", code=ROUTE_NOT_FOUND)

        return router


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise _fastify("body must be object")
    if not isinstance(body, dict):
        raise _fastify("body must be object")
    return body


def _strategy(body: dict[str, Any]) -> str:
    strategy = body.get("strategy")
    if strategy not in STRATEGIES:
        raise _fastify("body/strategy must be equal to one of the allowed values")
    return str(strategy)


def _encode_cursor(created: float, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created!r}|{run_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    """Seek cursors (older than the last run shown), so runs created meanwhile do not shift pages."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, run_id = text.partition("|")
        return float(created), run_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _fastify("querystring/cursor is not a valid cursor")

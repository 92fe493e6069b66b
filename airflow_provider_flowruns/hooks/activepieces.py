"""Activepieces flow runs: connection, auth, run status, lists, webhooks, retry, resume, bulk calls.

Connection: ``host`` = API base URL (default ``https://cloud.activepieces.com/api``; self-hosted:
``https://<host>/api``), ``password`` = platform API key, extra ``project_id`` (required for lists
and bulk operations). Cancel is a bulk call that only applies to PAUSED or QUEUED runs.

Webhooks and resume links are public routes on Activepieces (``skipAuth``; the unguessable run id
guards a resume link), so they are sent without the API key: a platform key must not travel to an
endpoint that does not check it, where a proxy log or a flow step could record it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from airflow_provider_flowruns.core.errors import (
    FlowRunsApiError,
    FlowRunsConfigError,
    FlowRunsError,
    NotSupported,
)
from airflow_provider_flowruns.core.http import Call, ClientSettings, FlowRunsHook
from airflow_provider_flowruns.core.models import read
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus, StatusMap
from airflow_provider_flowruns.core.watch import ListedRun, RunPage, iso
from airflow_provider_flowruns.hooks.activepieces_models import (
    ActivepiecesFlowRun,
    ActivepiecesSeekPage,
    WatchedSeekPage,
)
from airflow_provider_flowruns.vendors import ACTIVEPIECES
from airflow_provider_flowruns.vendors.activepieces import (  # defined there for DAG parse; used here
    CANCELLABLE,
    FAILED_STATUSES,
    RETRY_STRATEGIES,
    RunFilter,
)

#: Query parameter the trigger adds to a webhook call. Activepieces hands a webhook's query string
#: to the flow as ``queryParams`` in the trigger step's output, which is where the run is found
#: again; a query parameter leaves the user's body (JSON, text or binary) exactly as given.
MARKER_PARAM = "airflow_run_key"
#: Runs created this long before the trigger call still count, to absorb clock skew with the server.
CLOCK_SKEW = timedelta(minutes=2)
RETENTION_HINT = (
    "Activepieces purges run data after AP_EXECUTION_DATA_RETENTION_DAYS (30 days by default, "
    "14 on older releases)"
)
EXPIRED_LINK = "This link has expired"


class CorrelationTimeout(FlowRunsError):
    """A webhook was called but no run carrying its marker showed up in time."""


class NotResumable(FlowRunsError):
    """The run is not waiting for input (not PAUSED, or paused on a delay that ends by itself)."""


@dataclass(frozen=True)
class HttpAnswer:
    """What a public route (webhook, resume link) answered: the flow decides status and body."""

    status_code: int
    body: Any
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status_code": self.status_code, "body": self.body, "request_id": self.request_id}


def _answer(response: httpx.Response) -> HttpAnswer:
    try:
        body: Any = response.json() if response.content else None
    except ValueError:
        body = response.text
    return HttpAnswer(
        status_code=response.status_code,
        body=body,
        request_id=response.headers.get("x-webhook-id"),
    )


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: vendor fields may be null or absent."""
    return value if isinstance(value, dict) else {}


def failed_step_name(run: Mapping[str, Any]) -> str | None:
    """The failed step's name: current servers send ``failedStep{name,displayName}``, older ones
    ``failedStepName``."""
    failed = _obj(run.get("failedStep"))
    return failed.get("name") or run.get("failedStepName") or None


def trigger_output(run: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The trigger step's output (``{method, headers, body, queryParams}`` for a webhook), or None
    when the run has no step data (not started, or purged after retention)."""
    steps = run.get("steps")
    if not isinstance(steps, dict) or not steps:
        return None
    step = steps.get("trigger")
    if not isinstance(step, dict):
        step = next(
            (s for s in steps.values() if isinstance(s, dict) and str(s.get("type", "")).endswith("TRIGGER")),
            None,
        )
    output = step.get("output") if isinstance(step, dict) else None
    return output if isinstance(output, dict) else None


def marker_of(run: Mapping[str, Any]) -> str | None:
    """The correlation marker the run's webhook call carried, if any."""
    output = trigger_output(run)
    if output is None:
        return None
    query = _obj(output.get("queryParams"))
    value = query.get(MARKER_PARAM)
    if isinstance(value, list):  # a repeated query key arrives as a list
        value = value[0] if value else None
    return str(value) if value else None


#: Runs per page the watchers list (the hook's listing maximum).
WATCH_PAGE = 100


class ActivepiecesHook(FlowRunsHook):
    vendor_info = ACTIVEPIECES  # connection type, names, form, base URL, poll floor: vendors/__init__.py
    status_map = StatusMap(
        {
            RunState.QUEUED: ["QUEUED"],
            RunState.RUNNING: ["RUNNING"],
            RunState.PAUSED: ["PAUSED"],
            RunState.SUCCEEDED: ["SUCCEEDED"],
            RunState.FAILED: list(FAILED_STATUSES),
            # STOPPED: the seed's older status table; current servers say CANCELED.
            RunState.CANCELLED: ["CANCELED", "STOPPED"],
        }
    )

    def client_settings(self, conn: Any) -> ClientSettings:
        return self.bearer_settings(conn, "platform API key")

    def check_connection(self) -> tuple[bool, str]:
        """Airflow's Test Connection: list one flow run of the project (a read; nothing runs)."""
        page = self.call(
            Call("GET", "v1/flow-runs", params=[*RunFilter().query(self.project_id), ("limit", "1")])
        )
        read(ActivepiecesSeekPage, page, what="Activepieces flow runs listing")  # as the listing
        base = self._settings.base_url if self._settings else ""
        return (
            True,
            f"Reached Activepieces at {base}; platform API key accepted for project {self.project_id}.",
        )

    @property
    def project_id(self) -> str:
        if not self._settings:
            self.get_client()  # the project id lives in the connection's extra
        project = self.extra.get("project_id")
        if not project:
            raise FlowRunsConfigError(f"Connection {self.conn_id!r}: extra field 'project_id' is required")
        return str(project)

    def parse_error(self, body: Any, response: Any) -> tuple[str | None, str, str | None]:
        if isinstance(body, dict) and isinstance(body.get("params"), dict):
            params = body["params"]
            message = params.get("message") or ", ".join(f"{k}={v}" for k, v in params.items())
            return str(body.get("code") or ""), str(message)[:1000], None
        return super().parse_error(body, response)

    # -- runs ----------------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run with its ``steps`` (None when it has not started or its data was purged)."""
        body = self.call(self.status_call(RunRef(run_id)))
        read(ActivepiecesFlowRun, body, what=f"Activepieces run {run_id}")
        return dict(body)

    def list_runs(
        self, run_filter: RunFilter | None = None, *, limit: int = 100, max_pages: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Runs matching ``run_filter`` (newest first, without steps), following ``next`` through
        every page, or through ``max_pages`` of them where a caller must stay bounded."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise FlowRunsConfigError(f"limit must be an integer from 1 to 100, got {limit!r}")
        base = [*(run_filter or RunFilter()).query(self.project_id), ("limit", str(limit))]
        cursor: str | None = None
        pages = 0
        while True:
            params = base + ([("cursor", cursor)] if cursor else [])
            page = self.call(Call("GET", "v1/flow-runs", params=params))
            read(ActivepiecesSeekPage, page, what="Activepieces flow runs listing")
            yield from page["data"]
            pages += 1
            previous, cursor = cursor, page.get("next")
            if not cursor or cursor == previous:
                return
            if max_pages is not None and pages >= max_pages:
                return

    def status_call(self, ref: RunRef) -> Call:
        return Call("GET", f"v1/flow-runs/{ref.run_id}")

    # -- watching (triggers/watch.py) ---------------------------------------------------------------
    def watch_call(self, kind: str, scope: Mapping[str, str], *, page: Any, since: float) -> Call:
        """Runs of one flow created since ``since`` (``createdAfter``), 100 a page, following the
        seek cursor ``next`` (production runs only: the server forces that environment)."""
        run_filter = RunFilter(flow_ids=(scope["flow_id"],), created_after=iso(since))
        params = [*run_filter.query(self.project_id), ("limit", str(WATCH_PAGE))]
        if page:
            params.append(("cursor", str(page)))
        return Call("GET", "v1/flow-runs", params=params)

    def read_watch_page(self, kind: str, scope: Mapping[str, str], body: Any, *, page: Any) -> RunPage:
        listing = read(WatchedSeekPage, body, what="Activepieces flow runs listing (watch)")
        runs = [
            ListedRun(
                run_id=run.id,
                state=self.status_map(run.status),
                vendor_status=run.status,
                created_at=run.created,
                finished_at=run.finish_time,
                url=self.run_url(RunRef(run.id)),
            )
            for run in listing.data
        ]
        cursor = listing.next
        return RunPage(runs, next_page=cursor if cursor and cursor != page else None)

    def parse_status(self, ref: RunRef, body: Any) -> RunStatus:
        run = read(ActivepiecesFlowRun, body, what=f"Activepieces run {ref.run_id} status")
        return RunStatus(
            run_id=ref.run_id,
            state=self.status_map(run.status),
            vendor_status=run.status,
            message=describe(body),
            url=self.run_url(ref),
            raw=body,
        )

    # -- cancel: the bulk route, PAUSED and QUEUED runs only -------------------------------------------
    def cancel_call(self, ref: RunRef) -> Call:
        return Call(
            "POST",
            "v1/flow-runs/cancel",
            json={"projectId": self.project_id, "flowRunIds": [ref.run_id]},
            idempotent=True,
        )

    def cancel(self, ref: RunRef) -> Any:
        answer = self.call(self.cancel_call(ref))
        self._check_cancelled(ref, self.get_status(ref))
        return answer

    async def acancel(self, ref: RunRef) -> Any:
        await self.aget_client()  # reads the connection (project id) without blocking the loop
        answer = await self.acall(self.cancel_call(ref))
        self._check_cancelled(ref, await self.aget_status(ref))
        return answer

    @staticmethod
    def _check_cancelled(ref: RunRef, status: RunStatus) -> None:
        """Activepieces answers the bulk cancel the same whether or not it cancelled this run, so
        the run is read back: a RUNNING run cannot be cancelled, and a live one must not be
        reported as cancelled."""
        if status.state is RunState.RUNNING:
            raise NotSupported(
                f"Activepieces cancels only PAUSED or QUEUED runs; run {ref.run_id} is RUNNING and "
                "keeps going until it ends or hits the flow timeout."
            )
        if not status.state.is_terminal:
            raise FlowRunsError(f"Activepieces did not cancel run {ref.run_id}; it is {status.vendor_status}")

    # -- webhooks --------------------------------------------------------------------------------------
    def trigger_webhook(
        self,
        flow_id: str,
        payload: Any = None,
        *,
        sync: bool = False,
        marker: str | None = None,
        parent_run_id: str | None = None,
        fail_parent_on_failure: bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        """Call the flow's webhook (``/sync``: wait up to the server's 30 s for its Return Response).

        The async route answers ``{}`` without a run id: see :meth:`find_run_by_marker`. A lost
        answer is never resent (the call is not idempotent); the caller looks for the run instead.
        """
        if not flow_id:
            raise FlowRunsConfigError("flow_id is required")
        sent = dict(headers or {})
        if parent_run_id:
            sent["ap-parent-run-id"] = str(parent_run_id)
        if fail_parent_on_failure is not None:
            sent["ap-fail-parent-on-failure"] = "true" if fail_parent_on_failure else "false"
        call = Call(
            "POST",
            f"v1/webhooks/{flow_id}" + ("/sync" if sync else ""),
            params={MARKER_PARAM: marker} if marker else None,
            json=payload,
            headers=sent or None,
            idempotent=False,
            authenticated=False,  # public route: see the module docstring
        )
        try:
            return self.call(call, parse=_answer)
        except FlowRunsApiError as exc:
            hint = {
                410: f"Activepieces flow {flow_id} does not exist (HTTP 410)",
                404: f"Activepieces flow {flow_id} is disabled (HTTP 404): publish and enable it "
                "(or the connection's host is not the API base URL)",
                413: "the payload is too large for Activepieces (HTTP 413)",
            }.get(exc.status or 0)
            if hint is None:
                raise
            raise FlowRunsApiError(
                hint, status=exc.status, vendor_code=exc.vendor_code, method="POST", path=call.path
            )

    def find_run_by_marker(
        self,
        flow_id: str,
        matches: Callable[[str], bool],
        *,
        since: datetime,
        timeout: float,
        poll_interval: float = 3.0,
        max_pages: int = 3,
    ) -> dict[str, Any]:
        """The newest run of ``flow_id`` created since ``since`` whose webhook marker ``matches``.

        Bounded and gentle: one list call per round (``flowId`` + ``createdAfter``, at most
        ``max_pages`` pages of 100), and each run's details are fetched once, only after it has left
        QUEUED (a queued run has no step data to match yet). Raises :class:`CorrelationTimeout`
        after ``timeout`` seconds, saying how many runs were still queued.
        """
        window = RunFilter.build(flow_ids=[flow_id], created_after=since - CLOCK_SKEW)
        deadline = time.monotonic() + timeout
        checked: set[str] = set()
        while True:
            queued = 0
            for run in self.list_runs(window, max_pages=max_pages):
                run_id = str(run.get("id"))
                if run_id in checked:
                    continue
                if run.get("status") == "QUEUED":
                    queued += 1
                    continue
                detail = self.get_run(run_id)
                if trigger_output(detail) is None and detail.get("status") == "QUEUED":
                    queued += 1
                    continue
                checked.add(run_id)
                marker = marker_of(detail)
                if marker is not None and matches(marker):
                    return detail
            if time.monotonic() >= deadline:
                waiting = (
                    f"; {queued} run(s) of the flow are still QUEUED and cannot be matched yet"
                    if queued
                    else ""
                )
                raise CorrelationTimeout(
                    f"no run of Activepieces flow {flow_id} carrying this task's marker appeared within "
                    f"{timeout:.0f}s ({len(checked)} run(s) checked{waiting}); raise correlation_timeout "
                    "if the flow's queue is slow"
                )
            time.sleep(max(0.0, min(poll_interval, deadline - time.monotonic())))

    # -- retry, resume ---------------------------------------------------------------------------------
    def retry_run(self, run_id: str, strategy: str) -> dict[str, Any]:
        """Retry one finished run. ``FROM_FAILED_STEP`` re-queues the same run id (older servers made
        a new one); ``ON_LATEST_VERSION`` starts a new run on the latest published version. The
        answer's id is the run to follow either way."""
        if strategy not in RETRY_STRATEGIES:
            raise FlowRunsConfigError(
                f"strategy must be one of {', '.join(RETRY_STRATEGIES)}, got {strategy!r}"
            )
        call = Call(
            "POST",
            f"v1/flow-runs/{run_id}/retry",
            json={"strategy": strategy, "projectId": self.project_id},
            idempotent=False,
        )
        try:
            answer = self.call(call)
        except FlowRunsApiError as exc:
            if exc.status == 410:
                raise FlowRunsApiError(
                    f"run {run_id} is outside the retention window and can no longer be retried ({RETENTION_HINT})",
                    status=410,
                    vendor_code=exc.vendor_code,
                    method="POST",
                    path=call.path,
                )
            raise
        read(ActivepiecesFlowRun, answer, what=f"Activepieces retry of run {run_id}")  # the run to follow
        return dict(answer)

    def resume_run(
        self, run_id: str, payload: Any = None, *, waitpoint_id: str | None = None, sync: bool = False
    ) -> HttpAnswer:
        """Answer a PAUSED run's human-input or webhook wait with ``payload``.

        Uses the waitpoint route (current servers) and falls back to the legacy ``requests`` route
        (deprecated 2026-04-13) when the waitpoint is unknown there. Both are public routes.
        """
        run = read(ActivepiecesFlowRun, self.get_run(run_id), what=f"Activepieces run {run_id}")
        if run.status != "PAUSED":
            raise NotResumable(
                f"Activepieces run {run_id} is {run.status}, not PAUSED: there is nothing to resume"
            )
        meta = run.pause_metadata
        if meta is not None and meta.type == "DELAY":
            raise NotResumable(
                f"Activepieces run {run_id} is paused on a delay until {meta.resume_date_time}; "
                "it resumes by itself"
            )
        request_id = meta.request_id if meta else None
        waitpoint = waitpoint_id or (meta.waitpoint_id if meta else None) or request_id
        if not waitpoint:
            raise NotResumable(f"Activepieces run {run_id} is paused but names no waitpoint or request id")
        suffix = "/sync" if sync else ""
        try:
            answer = self._public_post(f"v1/flow-runs/{run_id}/waitpoints/{waitpoint}{suffix}", payload)
        except FlowRunsApiError as exc:
            if exc.status != 404 or not (request_id or waitpoint_id):
                raise
            self.log.info("Waitpoint route unknown for run %s (HTTP 404); using the legacy route.", run_id)
            legacy = request_id or waitpoint_id
            answer = self._public_post(f"v1/flow-runs/{run_id}/requests/{legacy}{suffix}", payload)
        message = answer.body.get("message") if isinstance(answer.body, dict) else None
        if isinstance(message, str) and message.startswith(EXPIRED_LINK):
            raise NotResumable(f"Activepieces refused to resume run {run_id}: {message}")
        return answer

    def _public_post(self, path: str, payload: Any) -> HttpAnswer:
        return self.call(
            Call("POST", path, json=payload, idempotent=False, authenticated=False), parse=_answer
        )

    # -- bulk --------------------------------------------------------------------------------------------
    def bulk_cancel(self, run_filter: RunFilter) -> list[dict[str, Any]]:
        unsupported = [s for s in run_filter.statuses if s not in CANCELLABLE]
        if unsupported:
            raise FlowRunsConfigError(
                f"only PAUSED and QUEUED runs can be cancelled, not {unsupported}: Activepieces lets "
                "RUNNING runs finish or time out"
            )
        body = run_filter.body(self.project_id, bulk_retry_fields=False)
        return _runs_in(self.call(Call("POST", "v1/flow-runs/cancel", json=body, idempotent=True)))

    def bulk_retry(self, run_filter: RunFilter, strategy: str) -> list[dict[str, Any]]:
        if strategy not in RETRY_STRATEGIES:
            raise FlowRunsConfigError(
                f"strategy must be one of {', '.join(RETRY_STRATEGIES)}, got {strategy!r}"
            )
        body = {**run_filter.body(self.project_id), "strategy": strategy}
        return _runs_in(self.call(Call("POST", "v1/flow-runs/retry", json=body, idempotent=False)))

    def bulk_archive(self, run_filter: RunFilter) -> list[dict[str, Any]]:
        body = run_filter.body(self.project_id)
        return _runs_in(self.call(Call("POST", "v1/flow-runs/archive", json=body, idempotent=True)))

    def run_url(self, ref: RunRef) -> str | None:
        base = self._settings.base_url if self._settings else self.default_base_url
        root = base[: -len("/api")] if base.endswith("/api") else base
        project = self.extra.get("project_id")
        return f"{root}/projects/{project}/runs/{ref.run_id}" if project else f"{root}/runs/{ref.run_id}"


def describe(run: Mapping[str, Any]) -> str | None:
    """Why a run is where it is, in the vendor's words: what a paused run waits for, else the failed
    step and its error, or the older ``terminationReason``. A PAUSED run is described by its pause
    even where the body also names a failed step (the vendor's own FlowRun example does both)."""
    meta = run.get("pauseMetadata") if isinstance(run.get("pauseMetadata"), dict) else None
    if run.get("status") == "PAUSED" and meta:
        if meta.get("type") == "DELAY":
            return f"paused until {meta.get('resumeDateTime')}"
        return "paused, waiting for input (resume it with ActivepiecesResumeFlowRunOperator)"
    name = failed_step_name(run)
    if name:
        failed = _obj(run.get("failedStep"))
        label = failed.get("displayName") or name
        steps = _obj(run.get("steps"))
        step = _obj(steps.get(name))
        error = step.get("errorMessage")
        text = f"failed at step {label}" + (f" ({name})" if label != name else "")
        return f"{text}: {error}" if error else text
    if run.get("terminationReason"):
        return str(run["terminationReason"])
    return None


def _runs_in(body: Any) -> list[dict[str, Any]]:
    """Bulk routes answer an array of runs; tolerate a ``{data: [...]}`` page or an empty body."""
    if isinstance(body, dict):
        body = body.get("data")
    return [r for r in body or [] if isinstance(r, dict)]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)

"""Amperity workflow runs: connection, auth, headers and run status.

Connection: ``host`` = API base URL for the tenant's region (default ``https://app.amperity.com/api``),
extra ``tenant`` (required) and ``api_version`` (default ``2024-04-01``); ``password`` = a UI-issued
JWT, or ``login``/``password`` = OAuth client id/secret with extra ``auth: client_credentials``.
Client-side limit: 10 requests/second per connection.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from pydantic import ValidationError

from airflow_provider_flowruns.core.auth import BearerToken, CachedToken, OAuth2ClientCredentials
from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError, UnexpectedResponse
from airflow_provider_flowruns.core.http import (
    LOST_ANSWER_SETTLE_SECONDS,
    Call,
    ClientSettings,
    FlowRunsHook,
    secret_digest,
)
from airflow_provider_flowruns.core.models import read
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus, StatusMap
from airflow_provider_flowruns.core.timestamps import parse_iso8601
from airflow_provider_flowruns.core.watch import ListedRun, RunPage, iso
from airflow_provider_flowruns.hooks.amperity_models import (
    AmperityErrorBody,
    AmperityToken,
    AmperityWorkflow,
    AmperityWorkflowPage,
    WatchedWorkflowPage,
)
from airflow_provider_flowruns.vendors import AMPERITY
from airflow_provider_flowruns.vendors.amperity import (  # defined there for DAG parse; used here
    AUTH_MODES,
    CONFIG_PREFIXES,
    validate_start,
)

DEFAULT_API_VERSION = "2024-04-01"


def normalize_amperity_state(value: str) -> str:
    """``Running with failures``, ``running-with-failures`` and ``RUNNING_WITH_FAILURES`` are one state."""
    return " ".join(value.strip().lower().replace("_", " ").replace("-", " ").split())


class AmperityClientCredentials(OAuth2ClientCredentials):
    """OAuth client credentials whose token answer is read with :class:`AmperityToken`: a body
    without a usable ``access_token`` (or of another token type) fails naming the field."""

    def _parse_minted(self, response: httpx.Response, mints: tuple[float, ...]) -> CachedToken:
        if response.status_code < 400:
            try:
                body = response.json()
            except ValueError:
                body = None  # the base reports malformed JSON
            if body is not None:
                token = read(AmperityToken, body, what="Amperity token endpoint")
                if token.token_type is not None and token.token_type.lower() != "bearer":
                    raise UnexpectedResponse(
                        f"Amperity token endpoint: unrecognised response: token_type: {token.token_type!r} "
                        "is not a bearer token",
                        status=response.status_code,
                    )
        return super()._parse_minted(response, mints)


#: Runs per page the watchers list (the emulator's and, we read, the API's maximum).
WATCH_PAGE = 100


class AmperityHook(FlowRunsHook):
    vendor_info = AMPERITY  # connection type, names, form, base URL, poll floor: vendors/__init__.py
    default_max_rps = 10.0  # documented; the client sends at 9 (core.ratelimit.RATE_MARGIN)
    status_map = StatusMap(
        {
            RunState.QUEUED: ["scheduled"],
            RunState.RUNNING: [
                "started",
                "in progress",
                "running",
                "running with failures",
                "canceling",
                "stopping",
                "paused",
            ],
            RunState.SUCCEEDED: ["succeeded"],
            RunState.FAILED: ["failed"],
            RunState.CANCELLED: ["canceled", "cancelled", "stopped"],
        },
        normalize=normalize_amperity_state,
        stopping=["canceling", "stopping"],
    )

    def client_settings(self, conn: Any) -> ClientSettings:
        tenant = self.extra.get("tenant")
        if not tenant:
            raise FlowRunsConfigError(f"Connection {self.conn_id!r}: extra field 'tenant' is required")
        base = self.base_url_of(conn)
        headers = {
            "amperity-tenant": str(tenant),
            "api-version": str(self.extra.get("api_version") or DEFAULT_API_VERSION),
        }
        mode = self.extra.get("auth") or "token"
        if mode not in AUTH_MODES:
            raise FlowRunsConfigError(
                f"Connection {self.conn_id!r}: extra 'auth' must be one of {', '.join(AUTH_MODES)}, got {mode!r}"
            )
        if mode == "client_credentials":
            if not conn.login or not conn.password:
                raise FlowRunsConfigError(
                    f"Connection {self.conn_id!r}: client credentials need login (client id) and password"
                )
            auth: Any = AmperityClientCredentials(
                f"{base}/v0/oauth2/token",
                conn.login,
                conn.password,
                credentials_in="body",
                extra_headers={"X-Amperity-Tenant": str(tenant)},
                refresh_margin=300.0,
            )
        elif conn.password:
            auth = BearerToken(conn.password)
        else:
            raise FlowRunsConfigError(f"Connection {self.conn_id!r}: password (API token) is required")
        return ClientSettings(
            base_url=base, auth=auth, headers=headers, identity=secret_digest(conn.login, conn.password)
        )

    def parse_error(self, body: Any, response: Any) -> tuple[str | None, str, str | None]:
        """``{status, message, request_id?, trace_id?}``: ``status`` repeats the HTTP status (it is
        no vendor code); the request id (else the trace id) goes into the error for support."""
        if isinstance(body, dict):
            try:
                error = AmperityErrorBody.model_validate(body)
            except ValidationError:
                error = None
            if error is not None and error.message:
                return None, error.message[:1000], error.request_id or error.trace_id
        return super().parse_error(body, response)

    def check_connection(self) -> tuple[bool, str]:
        """Airflow's Test Connection: list one workflow run (a read; nothing is started)."""
        page = self.call(Call("GET", "workflow/runs", params={"limit": 1}))
        read(AmperityWorkflowPage, page, what="Amperity workflow runs listing")  # as list_workflows
        conn = self.get_connection(self.conn_id)
        who = (
            f"OAuth client {conn.login!r} accepted (client credentials)"
            if self.extra.get("auth") == "client_credentials"
            else "API token accepted"
        )
        base = self._settings.base_url if self._settings else ""
        return True, f"Reached Amperity tenant {self.extra.get('tenant')} at {base}; {who}."

    # -- workflow runs -------------------------------------------------------------------------------
    def start_workflow(
        self,
        config_id: str,
        *,
        run_mode: str | None = None,
        range_from: str | None = None,
        range_to: str | None = None,
    ) -> dict[str, Any]:
        """Start a workflow run and return the vendor's Workflow.

        The start call has no idempotency key, so it is never repeated blindly. When its answer is
        lost (timeout, cut connection, 5xx), recent runs of the same type are listed first: exactly
        one new run is adopted, none lets the error surface, several are reported as ambiguous.
        """
        body = validate_start(config_id, run_mode, range_from, range_to)
        asked_at = datetime.now(timezone.utc)
        try:
            answer = self.call(Call("POST", "workflow/runs", json=body, idempotent=False))
        except FlowRunsApiError as exc:
            if exc.status is not None and exc.status < 500:
                raise
            self.log.warning(
                "Start of %s got no clear answer (%s); checking whether it started.", config_id, exc
            )
            time.sleep(LOST_ANSWER_SETTLE_SECONDS)
            window = asked_at - timedelta(seconds=120)
            started = [
                run
                for run in self.list_workflows(
                    created_from=window.isoformat(), type=CONFIG_PREFIXES[config_id[:3]]
                )
                if _created_at(run) >= window
            ]
            if len(started) == 1:
                self.log.info("Found the run the lost start created: %s", started[0]["id"])
                return self.get_workflow(str(started[0]["id"]))
            if started:
                ids = ", ".join(str(r["id"]) for r in started)
                raise FlowRunsApiError(
                    f"start of {config_id} failed ambiguously; runs of this type started meanwhile: {ids}",
                    status=exc.status,
                    method="POST",
                    path="workflow/runs",
                )
            raise
        read(AmperityWorkflow, answer, what=f"Amperity start of {config_id}")  # an id and a state, or fail
        return dict(answer)

    def get_workflow(self, workflow_id: str, *, view: str = "verbose") -> dict[str, Any]:
        body = self.call(Call("GET", f"workflow/runs/{workflow_id}", params={"view": view}))
        read(AmperityWorkflow, body, what=f"Amperity workflow {workflow_id}")
        return dict(body)

    def list_workflows(self, *, limit: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every run matching ``filters`` (``created_from``, ``state``, ``type``, ...), all pages."""
        params = {k: v for k, v in filters.items() if v is not None}
        params["limit"] = limit
        while True:
            page = self.call(Call("GET", "workflow/runs", params=params))
            read(AmperityWorkflowPage, page, what="Amperity workflow runs listing")
            yield from page["data"]
            token = page.get("next_token")
            # A missing, empty or repeated token ends the listing: never loop on a vendor's echo.
            if not token or token == params.get("next_token"):
                return
            params["next_token"] = token

    def stop_workflow(self, workflow_id: str) -> dict[str, Any]:
        body = self.call(self.cancel_call(RunRef(workflow_id)))
        read(AmperityWorkflow, body, what=f"Amperity stop of workflow {workflow_id}")
        return dict(body)

    def status_call(self, ref: RunRef) -> Call:
        return Call("GET", f"workflow/runs/{ref.run_id}", params={"view": "verbose"})

    def parse_status(self, ref: RunRef, body: Any) -> RunStatus:
        run = read(AmperityWorkflow, body, what=f"Amperity workflow {ref.run_id} status")
        failed_tasks = [
            f"{t.label or t.id}: {t.error.message if t.error and t.error.message else ''}"
            f" ({t.error.attribution if t.error and t.error.attribution else 'unknown'})"
            for t in run.task_instances or ()
            if normalize_amperity_state(t.state) == "failed"
        ]
        parts = ([run.error.message] if run.error and run.error.message else []) + failed_tasks
        return RunStatus(
            run_id=ref.run_id,
            state=self.status_map(run.state),
            vendor_status=run.state,
            message="; ".join(p for p in parts if p) or None,
            url=self.run_url(ref),
            raw=body,
            stopping=self.status_map.is_stopping(run.state),
        )

    def cancel_call(self, ref: RunRef) -> Call:
        return Call("POST", f"workflow/runs/{ref.run_id}/stop", idempotent=True)

    # -- watching (triggers/watch.py) ---------------------------------------------------------------
    def watch_call(self, kind: str, scope: Mapping[str, str], *, page: Any, since: float) -> Call:
        """Runs created since ``since`` (the listing's ``created_from``, inclusive), of one workflow
        ``type`` when the watcher names one, 100 a page, following ``next_token``. A workflow does not
        carry its config id, so a watcher tells one config's runs by ``name`` (read_watch_page)."""
        params: dict[str, Any] = {"limit": WATCH_PAGE, "created_from": iso(since)}
        if scope.get("workflow_type"):
            params["type"] = scope["workflow_type"]
        if page:
            params["next_token"] = page
        return Call("GET", "workflow/runs", params=params)

    def read_watch_page(self, kind: str, scope: Mapping[str, str], body: Any, *, page: Any) -> RunPage:
        listing = read(WatchedWorkflowPage, body, what="Amperity workflow runs listing (watch)")
        name = scope.get("name")
        runs = [
            ListedRun(
                run_id=w.id,
                state=self.status_map(w.state),
                vendor_status=w.state,
                created_at=w.created_at,
                finished_at=w.ended_at,
                name=w.name,
                url=self.run_url(RunRef(w.id)),
            )
            for w in listing.data
            if name is None or w.name == name
        ]
        token = listing.next_token
        # A missing, empty or repeated token ends the listing (never loop on a vendor's echo).
        return RunPage(runs, next_page=token if token and token != page else None)

    def run_url(self, ref: RunRef) -> str | None:
        """From extra ``ui_run_url_template`` (e.g. ``https://app.amperity.com/#/{tenant}/workflows/{run_id}``);
        Amperity documents no stable UI address, so there is no guessed default."""
        template = self.extra.get("ui_run_url_template")
        if not template:
            return None
        return str(template).format(run_id=ref.run_id, tenant=self.extra.get("tenant", ""))


def _created_at(run: dict[str, Any]) -> datetime:
    try:
        return parse_iso8601(str(run.get("created_at")), "created_at")
    except FlowRunsConfigError:
        return datetime.min.replace(tzinfo=timezone.utc)

"""Amperity workflow runs: connection, auth, headers and run status.

Connection: ``host`` = API base URL for the tenant's region (default ``https://app.amperity.com/api``),
extra ``tenant`` (required) and ``api_version`` (default ``2024-04-01``); ``password`` = a UI-issued
JWT, or ``login``/``password`` = OAuth client id/secret with extra ``auth: client_credentials``.
Client-side limit: 10 requests/second per connection.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_flowruns import forms
from airflow_provider_flowruns.core.auth import BearerToken, OAuth2ClientCredentials
from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError
from airflow_provider_flowruns.core.http import (
    LOST_ANSWER_SETTLE_SECONDS,
    Call,
    ClientSettings,
    FlowRunsHook,
    secret_digest,
)
from airflow_provider_flowruns.core.pages import page_field, page_items
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus, StatusMap
from airflow_provider_flowruns.core.timestamps import parse_iso8601
from airflow_provider_flowruns.vendors.amperity import (  # defined there for DAG parse; used here
    AMPERITY,
    CONFIG_PREFIXES,
    RUN_MODES,  # noqa: F401 - re-exported
    validate_start,
)

DEFAULT_API_VERSION = "2024-04-01"


def normalize_amperity_state(value: str) -> str:
    """``Running with failures``, ``running-with-failures`` and ``RUNNING_WITH_FAILURES`` are one state."""
    return " ".join(value.strip().lower().replace("_", " ").replace("-", " ").split())


class AmperityHook(FlowRunsHook):
    conn_name_attr = "amperity_conn_id"
    default_conn_name = AMPERITY.default_conn_name
    conn_type = AMPERITY.conn_type
    hook_name = "Amperity"

    # The connection form for Airflow 3.1, which reads it only from these (3.2+ reads provider info);
    # both come from forms.AMPERITY.
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return forms.AMPERITY.field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return forms.AMPERITY.form_widgets()

    vendor = "Amperity"
    default_base_url = "https://app.amperity.com/api"
    poll_floor = 10.0
    default_poll_interval = AMPERITY.default_poll_interval
    default_max_rps = 9.0  # 10 documented; a margin for arrival jitter in the vendor's sliding window
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
        if self.extra.get("auth") == "client_credentials":
            if not conn.login or not conn.password:
                raise FlowRunsConfigError(
                    f"Connection {self.conn_id!r}: client credentials need login (client id) and password"
                )
            auth: Any = OAuth2ClientCredentials(
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
            return dict(self.call(Call("POST", "workflow/runs", json=body, idempotent=False)))
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
                self.log.info("Found the run the lost start created: %s", started[0].get("id"))
                return self.get_workflow(str(started[0]["id"]))
            if started:
                ids = ", ".join(str(r.get("id")) for r in started)
                raise FlowRunsApiError(
                    f"start of {config_id} failed ambiguously; runs of this type started meanwhile: {ids}",
                    status=exc.status,
                    method="POST",
                    path="workflow/runs",
                )
            raise

    def get_workflow(self, workflow_id: str, *, view: str = "verbose") -> dict[str, Any]:
        return dict(self.call(Call("GET", f"workflow/runs/{workflow_id}", params={"view": view})))

    def list_workflows(self, *, limit: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every run matching ``filters`` (``created_from``, ``state``, ``type``, ...), all pages."""
        params = {k: v for k, v in filters.items() if v is not None}
        params["limit"] = limit
        while True:
            page = self.call(Call("GET", "workflow/runs", params=params))
            yield from page_items(page, "data", what="Amperity workflow runs")
            token = page_field(page, "next_token")
            # A missing, odd or repeated token ends the listing: never loop on a vendor's echo.
            if not isinstance(token, (str, int)) or not token or token == params.get("next_token"):
                return
            params["next_token"] = token

    def stop_workflow(self, workflow_id: str) -> dict[str, Any]:
        return dict(self.call(self.cancel_call(RunRef(workflow_id))))

    def status_call(self, ref: RunRef) -> Call:
        return Call("GET", f"workflow/runs/{ref.run_id}", params={"view": "verbose"})

    def parse_status(self, ref: RunRef, body: Any) -> RunStatus:
        vendor_status = str(body.get("state") or "unknown")
        error = body.get("error") if isinstance(body.get("error"), dict) else None
        failed_tasks = [
            f"{t.get('label') or t.get('id')}: {(t.get('error') or {}).get('message', '')}"
            f" ({(t.get('error') or {}).get('attribution', 'unknown')})"
            for t in body.get("task_instances") or []
            if isinstance(t, dict) and normalize_amperity_state(str(t.get("state", ""))) == "failed"
        ]
        parts = ([error.get("message", "")] if error else []) + failed_tasks
        return RunStatus(
            run_id=ref.run_id,
            state=self.status_map(vendor_status),
            vendor_status=vendor_status,
            message="; ".join(p for p in parts if p) or None,
            url=self.run_url(ref),
            raw=body,
            stopping=self.status_map.is_stopping(vendor_status),
        )

    def cancel_call(self, ref: RunRef) -> Call:
        return Call("POST", f"workflow/runs/{ref.run_id}/stop", idempotent=True)

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

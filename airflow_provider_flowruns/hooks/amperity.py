"""Amperity workflow runs: connection, auth, headers and run status.

Connection: ``host`` = API base URL for the tenant's region (default ``https://app.amperity.com/api``),
extra ``tenant`` (required) and ``api_version`` (default ``2024-04-01``); ``password`` = a UI-issued
JWT, or ``login``/``password`` = OAuth client id/secret with extra ``auth: client_credentials``.
Client-side limit: 10 requests/second per connection.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_flowruns.core.auth import BearerToken, OAuth2ClientCredentials
from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.http import Call, ClientSettings, FlowRunsHook, secret_digest
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus, StatusMap

DEFAULT_API_VERSION = "2024-04-01"


def normalize_amperity_state(value: str) -> str:
    """``Running with failures``, ``running-with-failures`` and ``RUNNING_WITH_FAILURES`` are one state."""
    return " ".join(value.strip().lower().replace("_", " ").replace("-", " ").split())


class AmperityHook(FlowRunsHook):
    conn_name_attr = "amperity_conn_id"
    default_conn_name = "amperity_default"
    conn_type = "amperity"
    hook_name = "Amperity"
    vendor = "Amperity"
    default_base_url = "https://app.amperity.com/api"
    poll_floor = 10.0
    default_poll_interval = 60.0
    default_max_rps = 10.0
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
    )

    def client_settings(self, conn: Any) -> ClientSettings:
        tenant = self.extra.get("tenant")
        if not tenant:
            raise FlowRunsConfigError(f"Connection {self.conn_id!r}: extra field 'tenant' is required")
        base = (conn.host or self.default_base_url).rstrip("/")
        if "://" not in base:
            base = f"https://{base}"
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

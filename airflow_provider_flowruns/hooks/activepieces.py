"""Activepieces flow runs: connection, auth and run status.

Connection: ``host`` = API base URL (default ``https://cloud.activepieces.com/api``; self-hosted:
``https://<host>/api``), ``password`` = platform API key, extra ``project_id`` (required for lists
and bulk operations). Cancel is a bulk call that only applies to PAUSED or QUEUED runs.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.http import Call, ClientSettings, FlowRunsHook
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus, StatusMap


class ActivepiecesHook(FlowRunsHook):
    conn_name_attr = "activepieces_conn_id"
    default_conn_name = "activepieces_default"
    conn_type = "activepieces"
    hook_name = "Activepieces"
    vendor = "Activepieces"
    default_base_url = "https://cloud.activepieces.com/api"
    poll_floor = 5.0
    default_poll_interval = 15.0
    status_map = StatusMap(
        {
            RunState.QUEUED: ["QUEUED"],
            RunState.RUNNING: ["RUNNING"],
            RunState.PAUSED: ["PAUSED"],
            RunState.SUCCEEDED: ["SUCCEEDED"],
            RunState.FAILED: [
                "FAILED",
                "TIMEOUT",
                "QUOTA_EXCEEDED",
                "MEMORY_LIMIT_EXCEEDED",
                "INTERNAL_ERROR",
                "LOG_SIZE_EXCEEDED",
            ],
            RunState.CANCELLED: ["CANCELED"],
        }
    )

    def client_settings(self, conn: Any) -> ClientSettings:
        return self.bearer_settings(conn, "platform API key")

    @property
    def project_id(self) -> str:
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

    def status_call(self, ref: RunRef) -> Call:
        return Call("GET", f"v1/flow-runs/{ref.run_id}")

    def parse_status(self, ref: RunRef, body: Any) -> RunStatus:
        vendor_status = str(body.get("status") or "UNKNOWN")
        failed = body.get("failedStep") if isinstance(body.get("failedStep"), dict) else None
        failed_name = (
            (failed or {}).get("displayName") or (failed or {}).get("name") or body.get("failedStepName")
        )
        message = f"failed at step {failed_name}" if failed_name else body.get("terminationReason")
        return RunStatus(
            run_id=ref.run_id,
            state=self.status_map(vendor_status),
            vendor_status=vendor_status,
            message=message,
            url=self.run_url(ref),
            raw=body,
        )

    def cancel_call(self, ref: RunRef) -> Call:
        # The bulk route is the only cancel; it refuses RUNNING runs (they finish or time out).
        return Call(
            "POST",
            "v1/flow-runs/cancel",
            json={"projectId": self.project_id, "flowRunIds": [ref.run_id]},
            idempotent=True,
        )

    def run_url(self, ref: RunRef) -> str | None:
        base = self._settings.base_url if self._settings else self.default_base_url
        root = base[: -len("/api")] if base.endswith("/api") else base
        project = self.extra.get("project_id")
        return f"{root}/projects/{project}/runs/{ref.run_id}" if project else f"{root}/runs/{ref.run_id}"

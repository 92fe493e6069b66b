"""Tableflow (document-extraction flows): connection, auth and run status.

Connection: ``password`` = API key, ``host`` = API base URL (default ``https://api.tableflow.com/v2``).
``review`` means a human is reviewing in the Tableflow UI; it is not terminal. No cancel endpoint.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_flowruns.core.http import Call, ClientSettings, FlowRunsHook
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus, StatusMap


class TableflowHook(FlowRunsHook):
    conn_name_attr = "tableflow_conn_id"
    default_conn_name = "tableflow_default"
    conn_type = "tableflow"
    hook_name = "Tableflow"
    vendor = "Tableflow"
    default_base_url = "https://api.tableflow.com/v2"
    poll_floor = 10.0
    default_poll_interval = 30.0
    status_map = StatusMap(
        {
            RunState.RUNNING: ["processing"],
            RunState.PAUSED: ["review"],
            RunState.SUCCEEDED: ["completed"],
            RunState.FAILED: ["failed"],
        },
        normalize=lambda s: s.strip().lower(),
    )

    def client_settings(self, conn: Any) -> ClientSettings:
        return self.bearer_settings(conn, "API key")

    def status_call(self, ref: RunRef) -> Call:
        return Call("GET", f"flows/runs/{ref.run_id}")

    def parse_status(self, ref: RunRef, body: Any) -> RunStatus:
        vendor_status = str(body.get("status") or "unknown")
        history = body.get("status_history") or []
        last = history[-1].get("message") if history and isinstance(history[-1], dict) else None
        return RunStatus(
            run_id=ref.run_id,
            state=self.status_map(vendor_status),
            vendor_status=vendor_status,
            message=body.get("error") or last,
            url=self.run_url(ref),
            raw=body,
        )

    def run_url(self, ref: RunRef) -> str | None:
        return f"https://app.tableflow.com/flows/runs/{ref.run_id}"

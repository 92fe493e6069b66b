"""LiveRamp Clean Room (formerly Habu): connection, auth and run status (flow and question runs).

Connection: ``login`` = client id, ``password`` = client secret, ``host`` = API base URL (default
``https://api.habu.com/v1``). Status is polled no more often than every 5 minutes (vendor floor).
Habu has no cancel endpoint; the engine logs that a run keeps going.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_provider_flowruns.core.auth import OAuth2ClientCredentials
from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.http import Call, ClientSettings, FlowRunsHook, secret_digest
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus, StatusMap

FLOW_RUN = "flow_run"
QUESTION_RUN = "question_run"

FLOW_RUN_STATUS = StatusMap(
    {
        RunState.QUEUED: ["QUEUED"],
        RunState.RUNNING: ["RUNNING"],
        RunState.PAUSED: ["PAUSED"],
        RunState.SUCCEEDED: ["COMPLETED"],
        RunState.FAILED: ["FAILED", "ERROR"],
        RunState.CANCELLED: ["CANCELLED"],
    }
)
QUESTION_RUN_STATUS = StatusMap(
    {
        RunState.QUEUED: ["QUEUED", "PARTNER_QUEUED", "PENDING_RETRY"],
        RunState.RUNNING: ["RUNNING", "PARTNER_RUNNING", "PARTNER_COMPLETED"],
        RunState.SUCCEEDED: ["COMPLETED"],
        RunState.FAILED: ["FAILED", "ERROR", "PARTNER_FAILED"],
        RunState.CANCELLED: ["CANCELLED"],
    }
)


class HabuHook(FlowRunsHook):
    conn_name_attr = "habu_conn_id"
    default_conn_name = "habu_default"
    conn_type = "habu"
    hook_name = "LiveRamp Clean Room (Habu)"
    vendor = "LiveRamp Clean Room"
    default_base_url = "https://api.habu.com/v1"
    ui_base_url: ClassVar[str] = "https://app.habu.com"
    poll_floor = 300.0
    default_poll_interval = 900.0
    retry_create_on_429 = False  # 20 creations/hour: a 429 means "not this hour"
    status_map = FLOW_RUN_STATUS

    def client_settings(self, conn: Any) -> ClientSettings:
        if not conn.login or not conn.password:
            raise FlowRunsConfigError(
                f"Connection {self.conn_id!r}: login (client id) and password (client secret) are required"
            )
        base = self.base_url_of(conn)
        auth = OAuth2ClientCredentials(
            f"{base}/oauth/token",
            conn.login,
            conn.password,
            credentials_in="basic",
            refresh_margin=600.0,
            default_lifetime=12 * 3600.0,
        )
        return ClientSettings(base_url=base, auth=auth, identity=secret_digest(conn.login, conn.password))

    def parse_error(self, body: Any, response: Any) -> tuple[str | None, str, str | None]:
        code, message, request_id = super().parse_error(body, response)
        if isinstance(body, dict) and isinstance(body.get("status"), str):
            code = body["status"]  # e.g. {"status":"UNAUTHORIZED","code":401,...}
        return code, message, request_id

    def status_call(self, ref: RunRef) -> Call:
        if ref.kind == QUESTION_RUN:
            return Call("GET", f"cleanroom-question-runs/{ref.run_id}")
        cleanroom = ref.scope.get("cleanroom_id")
        if not cleanroom:
            raise FlowRunsConfigError("a Habu flow run reference needs scope['cleanroom_id']")
        return Call("GET", f"cleanrooms/{cleanroom}/cleanroom-flow-runs/{ref.run_id}")

    def parse_status(self, ref: RunRef, body: Any) -> RunStatus:
        if isinstance(body, dict) and isinstance(body.get("response"), dict):
            body = body["response"]  # the older documented envelope
        vendor_status = str(body.get("status") or "UNKNOWN")
        status_map = QUESTION_RUN_STATUS if ref.kind == QUESTION_RUN else FLOW_RUN_STATUS
        message = body.get("failureReason") or body.get("runMessage") or None
        return RunStatus(
            run_id=ref.run_id,
            state=status_map(vendor_status),
            vendor_status=vendor_status,
            message=message,
            url=self.run_url(ref),
            raw=body,
        )

    def run_url(self, ref: RunRef) -> str | None:
        cleanroom = ref.scope.get("cleanroom_id")
        if not cleanroom:
            return None
        section = "questions" if ref.kind == QUESTION_RUN else "flows"
        return f"{self.ui_base_url}/clean-rooms/{cleanroom}/{section}/runs/{ref.run_id}"

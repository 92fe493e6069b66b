"""Airflow side of the demo API: a hook, a run operator, a sensor and a result transfer.

They are real, minimal users of the engine - the same base classes every vendor module builds on -
and what ``make demo`` and the engine's end-to-end tests run. Connection: ``conn_type`` anything,
``host`` the emulator URL (``http://127.0.0.1:8765/demo/v1``), ``password`` the token, or
``login``/``password`` = client id/secret with extra ``{"auth": "client_credentials"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_provider_flowruns.core.auth import BearerToken, OAuth2ClientCredentials
from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.http import Call, ClientSettings, FlowRunsHook, secret_digest
from airflow_provider_flowruns.core.params import task_key
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus, StatusMap
from airflow_provider_flowruns.core.storage import WrittenObject, as_storage_path, child_path, download_to
from airflow_provider_flowruns.operators.base import FlowRunOperator
from airflow_provider_flowruns.operators.vendor import VendorOperator
from airflow_provider_flowruns.sensors.base import FlowRunSensor
from airflow_provider_flowruns.vendors import DEMO

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath


# --8<-- [start:hook]
class DemoHook(FlowRunsHook):
    vendor_info = DEMO  # connection type, names, form, poll floor: vendors/__init__.py
    status_map = StatusMap(
        {
            RunState.QUEUED: ["QUEUED"],
            RunState.RUNNING: ["RUNNING"],
            RunState.SUCCEEDED: ["SUCCEEDED"],
            RunState.FAILED: ["FAILED"],
            RunState.CANCELLED: ["CANCELLED"],
        }
    )

    def client_settings(self, conn: Any) -> ClientSettings:
        if not conn.host:
            raise FlowRunsConfigError(f"Connection {self.conn_id!r}: host (the demo API URL) is required")
        base = self.base_url_of(conn, scheme="http")
        if self.extra.get("auth") == "client_credentials":
            auth: Any = OAuth2ClientCredentials(
                base.rstrip("/") + "/oauth/token", conn.login or "", conn.password or ""
            )
        elif conn.password:
            auth = BearerToken(conn.password)
        else:
            raise FlowRunsConfigError(f"Connection {self.conn_id!r}: password (the API token) is required")
        return ClientSettings(base_url=base, auth=auth, identity=secret_digest(conn.login, conn.password))

    def start_run(self, name: str, **body: Any) -> RunRef:
        run = self.call(Call("POST", "runs", json={"name": name, **body}))
        return RunRef(run_id=run["id"])

    def find_run(self, name: str) -> RunRef | None:
        runs = self.call(Call("GET", "runs", params={"name": name}))["runs"]
        return RunRef(run_id=runs[0]["id"]) if runs else None

    def download_result(self, run_id: str, dest: ObjectStoragePath) -> WrittenObject:
        """Stream a finished run's CSV result into ``dest`` (atomically, checked for size)."""
        return download_to(partial(self.stream, Call("GET", f"runs/{run_id}/result")), dest)

    def status_call(self, ref: RunRef) -> Call:
        return Call("GET", f"runs/{ref.run_id}")

    def parse_status(self, ref: RunRef, body: Any) -> RunStatus:
        return RunStatus(
            run_id=ref.run_id,
            state=self.status_map(body.get("status")),
            vendor_status=str(body.get("status")),
            message=body.get("message"),
            url=self.run_url(ref),
            raw=body,
        )

    def cancel_call(self, ref: RunRef) -> Call:
        return Call("POST", f"runs/{ref.run_id}/cancel")

    def run_url(self, ref: RunRef) -> str | None:
        host = self._settings.base_url if self._settings else None
        return f"{host.rstrip('/')}/runs/{ref.run_id}" if host else None

    # --8<-- [end:hook]


# --8<-- [start:operator]
class DemoRunOperator(FlowRunOperator[DemoHook]):
    """Start a demo run named after the task (so a retry can find it) and wait for it."""

    vendor_info = DEMO
    template_fields: Sequence[str] = ("conn_id", "run_name", "params_body")

    def __init__(
        self,
        *,
        run_name: str | None = None,
        duration: float = 5.0,
        outcome: str = "SUCCEEDED",
        result_rows: int = 3,
        params_body: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if outcome not in {"SUCCEEDED", "FAILED"}:
            raise FlowRunsConfigError(f"outcome must be 'SUCCEEDED' or 'FAILED', got {outcome!r}")
        self.run_name = run_name
        self.duration = duration
        self.outcome = outcome
        self.result_rows = result_rows
        self.params_body = params_body or {}

    def _name(self, context: Any) -> str:
        return self.run_name or task_key(context, ".", unmapped=None)

    def submit(self, hook: DemoHook, context: Any) -> RunRef:
        return hook.start_run(
            self._name(context),
            duration=self.duration,
            outcome=self.outcome,
            result_rows=self.result_rows,
            params=self.params_body,
        )

    def find_existing(self, hook: DemoHook, context: Any) -> RunRef | None:
        return hook.find_run(self._name(context))

        # --8<-- [end:operator]


# --8<-- [start:sensor]
class DemoRunSensor(FlowRunSensor):
    vendor_info = DEMO
    # --8<-- [end:sensor]


# --8<-- [start:transfer]
class DemoResultToStorageOperator(VendorOperator[DemoHook]):
    """Stream a finished demo run's CSV result to ``destination`` (a prefix); returns the object."""

    vendor_info = DEMO
    template_fields: Sequence[str] = ("run_id", "destination", "conn_id")

    def __init__(self, *, run_id: str, destination: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.destination = destination

    def execute(self, context: Context) -> dict[str, Any]:
        dest = child_path(as_storage_path(self.destination), f"{self.run_id}.csv")
        written = self.hook.download_result(self.run_id, dest)
        self.log.info("Wrote %s bytes to %s (sha256 %s)", written.size, written.uri, written.sha256)
        return written.to_dict()
        # --8<-- [end:transfer]

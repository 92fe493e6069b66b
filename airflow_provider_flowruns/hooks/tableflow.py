"""Tableflow (document-extraction flows): runs over uploaded documents, status, extractions.

Connection: ``password`` = API key, ``host`` = API base URL (default ``https://api.tableflow.com/v2``).
``review`` means a human is reviewing in the Tableflow UI; it is not terminal. No cancel endpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

from airflow_provider_flowruns import forms
from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError
from airflow_provider_flowruns.core.http import LOST_ANSWER_SETTLE_SECONDS, Call, ClientSettings, FlowRunsHook
from airflow_provider_flowruns.core.pages import page_field, page_items
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus, StatusMap
from airflow_provider_flowruns.core.storage import as_storage_path, sanitize_filename
from airflow_provider_flowruns.vendors.tableflow import TABLEFLOW

#: Key added to a run's ``metadata`` (which Tableflow echoes back) so a run can be found again.
CORRELATION_KEY = "airflow_run_key"


class TableflowHook(FlowRunsHook):
    conn_name_attr = "tableflow_conn_id"
    default_conn_name = TABLEFLOW.default_conn_name
    conn_type = TABLEFLOW.conn_type
    hook_name = "Tableflow"

    # The connection form for Airflow 3.1, which reads it only from these (3.2+ reads provider info);
    # both come from forms.TABLEFLOW.
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return forms.TABLEFLOW.field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return forms.TABLEFLOW.form_widgets()

    vendor = "Tableflow"
    default_base_url = "https://api.tableflow.com/v2"
    poll_floor = 10.0
    default_poll_interval = TABLEFLOW.default_poll_interval
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

    # -- flows and runs ------------------------------------------------------------------------------
    def get_flow(self, flow_id: str) -> dict[str, Any]:
        """The active flow ``flow_id`` (Tableflow lists only active flows; there is no get-one route)."""
        for flow in self.call(Call("GET", "flows")) or []:
            if isinstance(flow, dict) and flow.get("id") == flow_id:
                return flow
        raise FlowRunsConfigError(f"Tableflow flow {flow_id!r} is not among the workspace's active flows")

    def run_flow(
        self,
        flow_id: str,
        files: Mapping[str, Any],
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        file_metadata: Mapping[str, Any] | None = None,
        file_guidance: Mapping[str, str] | None = None,
        correlation_key: str | None = None,
    ) -> dict[str, Any]:
        """Upload ``files`` (field key -> path or list of paths, any ObjectStoragePath) and start a run.

        Files are streamed from storage into the multipart body, never read whole. Keys are checked
        against the flow's ``file_input_config`` first. An upload cannot be resent, so it is never
        retried; if its answer is lost, the run is looked up by ``correlation_key`` in its metadata.
        """
        flow = self.get_flow(flow_id)
        parts = plan_file_parts(flow, files)
        data: dict[str, str] = {}
        run_metadata = dict(metadata or {})
        if correlation_key:
            run_metadata[CORRELATION_KEY] = correlation_key
        if run_metadata:
            data["metadata"] = json.dumps(run_metadata)
        if name:
            data["name"] = name
        for key, value in (file_metadata or {}).items():
            data[f"{key}_metadata"] = value if isinstance(value, str) else json.dumps(value)
        for key, text in (file_guidance or {}).items():
            data[f"{key}_guidance"] = str(text)
        attempt = 0
        while True:
            try:
                return self._upload(flow_id, parts, data)
            except FlowRunsApiError as exc:
                attempt += 1
                if _upload_refused(exc) and attempt <= self.retry_policy.max_retries:
                    # Refused before it was taken (429) or never sent: the files are opened again and
                    # sent anew - the consumed stream itself cannot be resent.
                    delay = self.retry_policy.delay(attempt, exc.retry_after)
                    self.log.warning(
                        "Upload to flow %s was refused (%s); sending it again in %.1fs (%d/%d).",
                        flow_id,
                        exc,
                        delay,
                        attempt,
                        self.retry_policy.max_retries,
                    )
                    time.sleep(delay)
                    continue
                if correlation_key is None or (exc.status is not None and exc.status < 500):
                    raise
                self.log.warning(
                    "Upload to flow %s got no clear answer (%s); checking for its run.", flow_id, exc
                )
                break
        time.sleep(LOST_ANSWER_SETTLE_SECONDS)
        found = self.find_run(flow_id, correlation_key)
        if found is None:
            raise FlowRunsApiError(
                f"upload to flow {flow_id} failed and no run carries key {correlation_key!r}",
                method="POST",
                path=f"flows/{flow_id}/run",
            )
        return found

    def _upload(self, flow_id: str, parts: list[tuple[str, Any]], data: Mapping[str, str]) -> dict[str, Any]:
        """One multipart upload, the files streamed from storage (opened here, closed after)."""
        with ExitStack() as stack:
            multipart = [
                (part, (sanitize_filename(path.name), stack.enter_context(path.open("rb")), None))
                for part, path in parts
            ]
            return dict(
                self.call(Call("POST", f"flows/{flow_id}/run", data=data, files=multipart, resendable=False))
            )

    def find_run(self, flow_id: str, correlation_key: str) -> dict[str, Any] | None:
        """The newest run of ``flow_id`` whose metadata carries ``correlation_key``."""
        runs = page_items(
            self.call(Call("GET", f"flows/{flow_id}/runs")), None, what=f"runs of flow {flow_id}"
        )
        for run in runs:
            if page_field(run.get("metadata"), CORRELATION_KEY) == correlation_key:
                return run
        return None

    def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.call(self.status_call(RunRef(run_id))))

    def list_runs(
        self, *, status: str | None = None, flow_id: str | None = None, limit: int = 1000
    ) -> Iterator[dict]:
        """Every run (newest first), following ``offset``/``next_offset`` through all pages."""
        params: dict[str, Any] = {"limit": limit, "offset": 0}
        if status:
            params["status"] = status
        if flow_id:
            params["flow_id"] = flow_id
        while True:
            page = self.call(Call("GET", "flows/runs", params=params))
            yield from page_items(page, "flow_runs", what="Tableflow flow runs")
            next_offset = page_field(page_field(page, "pagination"), "next_offset")
            if not isinstance(next_offset, int) or next_offset <= params["offset"]:
                return
            params["offset"] = next_offset

    def get_extraction(self, extraction_id: str) -> dict[str, Any]:
        return dict(self.call(Call("GET", f"extractions/{extraction_id}")))

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


def _upload_refused(exc: FlowRunsApiError) -> bool:
    """True when Tableflow provably did not take the upload: throttled, or never reached."""
    return exc.status == 429 or bool(getattr(exc, "request_not_sent", False))


def plan_file_parts(flow: Mapping[str, Any], files: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(multipart part name, storage path) for ``files``, checked against the flow's file fields.

    A list for one key becomes ``key_1``, ``key_2``, ... (Tableflow's multi-file convention).
    """
    if not isinstance(files, Mapping) or not files:
        raise FlowRunsConfigError("files must be a non-empty mapping of file field key -> path(s)")
    fields = {f.get("key"): f for f in (flow.get("file_input_config") or {}).get("file_fields") or []}
    unknown = sorted(set(files) - set(fields))
    if unknown:
        raise FlowRunsConfigError(
            f"files has keys {unknown} that flow {flow.get('id')!r} does not take; its file fields are {sorted(fields)}"
        )
    missing = sorted(k for k, f in fields.items() if f.get("required") and k not in files)
    if missing:
        raise FlowRunsConfigError(f"flow {flow.get('id')!r} requires files for {missing}")
    parts: list[tuple[str, Any]] = []
    for key, value in files.items():
        paths: Sequence[Any] = value if isinstance(value, (list, tuple)) else [value]
        if not paths:
            raise FlowRunsConfigError(f"files[{key!r}] is empty")
        resolved = [as_storage_path(p) for p in paths]
        if len(resolved) == 1:
            parts.append((key, resolved[0]))
        else:
            parts.extend((f"{key}_{i}", path) for i, path in enumerate(resolved, start=1))
    return parts

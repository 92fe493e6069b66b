"""Tableflow (document-extraction flows): runs over uploaded documents, status, extractions.

Connection: ``password`` = API key, ``host`` = API base URL (default ``https://api.tableflow.com/v2``).
``review`` means a human is reviewing in the Tableflow UI; it is not terminal. No cancel endpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError
from airflow_provider_flowruns.core.http import LOST_ANSWER_SETTLE_SECONDS, Call, ClientSettings, FlowRunsHook
from airflow_provider_flowruns.core.models import read
from airflow_provider_flowruns.core.runs import RunRef, RunState, RunStatus, StatusMap
from airflow_provider_flowruns.core.storage import (
    WrittenObject,
    as_storage_path,
    download_to,
    sanitize_filename,
)
from airflow_provider_flowruns.core.watch import ListedRun, RunPage
from airflow_provider_flowruns.hooks.tableflow_models import (
    ExtractionBody,
    FlowList,
    FlowRunBody,
    FlowRunsPage,
    RunCreated,
    RunList,
    RunStatusBody,
    WatchedRunsPage,
)
from airflow_provider_flowruns.vendors import TABLEFLOW

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

RowFilter = Literal["all", "valid", "invalid"]

#: Key added to a run's ``metadata`` (which Tableflow echoes back) so a run can be found again.
CORRELATION_KEY = "airflow_run_key"


#: Runs per page the watchers list (the documented default; the maximum is 1000).
WATCH_PAGE = 100


class TableflowHook(FlowRunsHook):
    vendor_info = TABLEFLOW  # connection type, names, form, base URL, poll floor: vendors/__init__.py
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

    def check_connection(self) -> tuple[bool, str]:
        """Airflow's Test Connection: list the workspace's active flows (a read; nothing runs)."""
        flows = self.list_flows()
        workspaces = sorted({str(f["workspace_id"]) for f in flows if f.get("workspace_id")})
        where = f" (workspace {', '.join(workspaces)})" if workspaces else ""
        base = self._settings.base_url if self._settings else ""
        return True, f"Reached Tableflow at {base}; API key accepted; {len(flows)} active flow(s){where}."

    # -- flows and runs ------------------------------------------------------------------------------
    def list_flows(self) -> list[dict[str, Any]]:
        """The workspace's active flows (``GET /flows``), read with ``FlowList``."""
        flows = self.call(Call("GET", "flows"))
        read(FlowList, flows, what="Tableflow flow list (GET /flows)")
        return list(flows)

    def get_flow(self, flow_id: str) -> dict[str, Any]:
        """The active flow ``flow_id`` (Tableflow lists only active flows; there is no get-one route)."""
        for flow in self.list_flows():
            if flow["id"] == flow_id:
                return dict(flow)
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
                run = self._upload(flow_id, parts, data)
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
            else:
                # Outside the try: an answer without a run id is not a lost answer to reconcile.
                read(RunCreated, run, what=f"Tableflow run of flow {flow_id} (POST flows/{flow_id}/run)")
                return dict(run)
        time.sleep(LOST_ANSWER_SETTLE_SECONDS)
        found = self.find_run(flow_id, correlation_key)
        if found is None:
            raise FlowRunsApiError(
                f"upload to flow {flow_id} failed and no run carries key {correlation_key!r}",
                method="POST",
                path=f"flows/{flow_id}/run",
            )
        return found

    def _upload(self, flow_id: str, parts: list[tuple[str, Any]], data: Mapping[str, str]) -> Any:
        """One multipart upload, the files streamed from storage (opened here, closed after)."""
        with ExitStack() as stack:
            multipart = [
                (part, (sanitize_filename(path.name), stack.enter_context(path.open("rb")), None))
                for part, path in parts
            ]
            return self.call(
                Call("POST", f"flows/{flow_id}/run", data=data, files=multipart, resendable=False)
            )

    def find_run(self, flow_id: str, correlation_key: str) -> dict[str, Any] | None:
        """The newest run of ``flow_id`` whose metadata carries ``correlation_key``."""
        body = self.call(Call("GET", f"flows/{flow_id}/runs"))
        runs = read(RunList, body, what=f"Tableflow run list of flow {flow_id} (GET flows/{flow_id}/runs)")
        for raw, run in zip(body, runs.root, strict=True):
            if (run.metadata or {}).get(CORRELATION_KEY) == correlation_key:
                return dict(raw)
        return None

    def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.call(self.status_call(RunRef(run_id))))

    def read_run(self, run_id: str) -> tuple[dict[str, Any], FlowRunBody]:
        """The run as Tableflow sent it, and as the model that checks the fields results rely on."""
        body = self.call(self.status_call(RunRef(run_id)))
        run = read(FlowRunBody, body, what=f"Tableflow run {run_id} (GET flows/runs/{run_id})")
        return dict(body), run

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
            parsed = read(FlowRunsPage, page, what=f"Tableflow flow runs page at offset {params['offset']}")
            yield from (dict(run) for run in page["flow_runs"])
            next_offset = parsed.pagination.next_offset if parsed.pagination else None
            if next_offset is None or next_offset <= params["offset"]:
                return
            params["offset"] = next_offset

    def get_extraction(self, extraction_id: str) -> dict[str, Any]:
        return dict(self.call(Call("GET", f"extractions/{extraction_id}")))

    def read_extraction(self, extraction_id: str) -> ExtractionBody:
        """The extraction, checked for what a transfer needs (its status and table keys)."""
        return read(
            ExtractionBody,
            self.call(Call("GET", f"extractions/{extraction_id}")),
            what=f"Tableflow extraction {extraction_id} (GET extractions/{extraction_id})",
        )

    def download_table(
        self,
        extraction_id: str,
        table: str,
        dest: ObjectStoragePath,
        *,
        row_filter: RowFilter = "all",
        overwrite: bool = True,
    ) -> WrittenObject:
        """Stream one extraction table's CSV (Tableflow caps it at 500,000 rows) into ``dest``:
        size-checked, retried from scratch when cut, moved into place only when whole."""
        call = Call(
            "GET",
            f"extractions/{extraction_id}/tables/{table}/download",
            params={"filter": row_filter},
            headers={"Accept": "text/csv"},
        )
        return download_to(partial(self.stream, call), dest, overwrite=overwrite)

    def download_original(
        self, extraction_id: str, dest: ObjectStoragePath, *, overwrite: bool = True
    ) -> WrittenObject:
        """Stream the original document an extraction was made from into ``dest`` (as above)."""
        call = Call("GET", f"extractions/{extraction_id}/download-original", headers={"Accept": "*/*"})
        return download_to(partial(self.stream, call), dest, overwrite=overwrite)

    def status_call(self, ref: RunRef) -> Call:
        return Call("GET", f"flows/runs/{ref.run_id}")

    # -- watching (triggers/watch.py) ---------------------------------------------------------------
    def watch_call(self, kind: str, scope: Mapping[str, str], *, page: Any, since: float) -> Call:
        """One page of a flow's runs from ``GET /v2/flows/runs`` (paginated, newest first, as
        documented; ``GET /v2/flows/{id}/runs`` is not paginated). The flow filter's name is our
        reading of the docs (``flow_id``); the listing has no time filter, so the watcher stops at
        the first page that reaches past ``since``."""
        return Call(
            "GET",
            "flows/runs",
            params={"flow_id": scope["flow_id"], "limit": WATCH_PAGE, "offset": int(page or 0)},
        )

    def read_watch_page(self, kind: str, scope: Mapping[str, str], body: Any, *, page: Any) -> RunPage:
        offset = int(page or 0)
        listing = read(WatchedRunsPage, body, what=f"Tableflow flow runs page at offset {offset} (watch)")
        runs = [
            ListedRun(
                run_id=run.id,
                state=self.status_map(run.status),
                vendor_status=run.status,
                created_at=run.created_at,
                finished_at=run.end_time,
                name=run.name,
                url=self.run_url(RunRef(run.id)),
            )
            for run in listing.flow_runs
            # The flow filter's name is inferred: a run of another flow is never taken for ours.
            if run.flow_id in (None, scope["flow_id"])
        ]
        next_offset = listing.pagination.next_offset if listing.pagination else None
        more = next_offset is not None and next_offset > offset
        return RunPage(runs, next_page=next_offset if more else None, newest_first=True)

    def parse_status(self, ref: RunRef, body: Any) -> RunStatus:
        # Three fields, validated every poll in the triggerer: ~21 us on seed 004's body (by hand it
        # was ~9 us; measured with timeit, see docs/tableflow.md), against a poll floor of 10 s.
        run = read(RunStatusBody, body, what=f"Tableflow run {ref.run_id} status")
        last = run.status_history[-1].message if run.status_history else None
        return RunStatus(
            run_id=ref.run_id,
            state=self.status_map(run.status),
            vendor_status=run.status,
            message=run.error or last,
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
        resolved = [_existing_document(key, p) for p in paths]
        if len(resolved) == 1:
            parts.append((key, resolved[0]))
        else:
            parts.extend((f"{key}_{i}", path) for i, path in enumerate(resolved, start=1))
    return parts


def _existing_document(key: str, value: Any) -> Any:
    """``value`` as a storage path that exists, or an error naming ``files[key]`` and the path.

    Checked here, on the worker, before anything is uploaded: at DAG parse the path may be
    templated, or exist only where the task runs.
    """
    try:
        path = as_storage_path(value)
    except FlowRunsConfigError:
        raise FlowRunsConfigError(
            f"files[{key!r}] must be a path or URI string (or a list of them), got {value!r}"
        ) from None
    try:
        found = path.exists()
    except OSError as exc:  # storage unreachable or refused: say which document it was
        raise FlowRunsConfigError(f"files[{key!r}]: cannot check {path}: {exc}") from exc
    if not found or path.is_dir():
        raise FlowRunsConfigError(f"files[{key!r}]: no document at {path}")
    return path

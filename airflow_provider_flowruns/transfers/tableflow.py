"""Tableflow: every extraction table of a run -> CSV objects under a destination prefix."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from airflow_provider_flowruns.core.errors import FlowRunsConfigError, RunFailed
from airflow_provider_flowruns.vendors.tableflow import TABLEFLOW

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_flowruns.core.params import RunIdArg

# The hook and the storage engine are imported where they are used (see ``vendors``).

RowFilter = Literal["all", "valid", "invalid"]


class TableflowExtractionsToStorageOperator(BaseOperator):
    """Stream each extraction table of a completed run to ``<destination>/<extraction id>/<table>.csv``.

    :param run_id: the Tableflow flow run (templated, e.g. ``{{ ti.xcom_pull('run_flow') }}``).
    :param destination: prefix URI (``s3://bucket/extractions/{{ ds }}``, ``/data/out``).
    :param row_filter: ``all`` (default), ``valid`` or ``invalid`` rows.
    :param include_originals: also copy each original document to ``<extraction id>/original/``.
    :param overwrite: replace existing objects (default True; False fails on an existing object).

    Objects appear whole or not at all (written to a temporary name, size-checked, then moved);
    names from Tableflow are sanitized. Returns the list of ``{uri, size, sha256}`` written.
    """

    template_fields: Sequence[str] = ("conn_id", "run_id", "destination", "row_filter")

    def __init__(
        self,
        *,
        run_id: RunIdArg,
        destination: str,
        row_filter: RowFilter = "all",
        include_originals: bool = False,
        overwrite: bool = True,
        conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if row_filter not in ("all", "valid", "invalid") and "{{" not in str(row_filter):
            raise FlowRunsConfigError(f"row_filter must be 'all', 'valid' or 'invalid', got {row_filter!r}")
        self.run_id = run_id
        self.destination = destination
        self.row_filter = row_filter
        self.include_originals = include_originals
        self.overwrite = overwrite
        self.conn_id = conn_id or TABLEFLOW.default_conn_name

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_provider_flowruns.core.http import Call
        from airflow_provider_flowruns.core.storage import as_storage_path, child_path, download_to
        from airflow_provider_flowruns.hooks.tableflow import TableflowHook

        hook = TableflowHook(self.conn_id)
        run = hook.get_run(str(self.run_id))
        if run.get("status") != "completed":
            raise RunFailed(
                f"Tableflow run {self.run_id} is {run.get('status')!r}, not completed: no extractions yet"
            )
        extraction_ids = [s["extraction_id"] for s in run.get("steps") or [] if s.get("extraction_id")]
        if not extraction_ids:
            raise FlowRunsConfigError(
                f"Tableflow run {self.run_id} lists no extraction steps (its 'steps' field is missing or empty)"
            )
        prefix = as_storage_path(self.destination)
        written = []
        for extraction_id in extraction_ids:
            extraction = hook.get_extraction(extraction_id)
            folder = child_path(prefix, extraction_id)
            tables = sorted((extraction.get("data") or {}).get("tables") or {})
            for table in tables:
                call = Call(
                    "GET",
                    f"extractions/{extraction_id}/tables/{table}/download",
                    params={"filter": self.row_filter},
                    headers={"Accept": "text/csv"},
                )
                dest = child_path(folder, f"{table}.csv")
                written.append(download_to(partial(hook.stream, call), dest, overwrite=self.overwrite))
            if self.include_originals:
                call = Call(
                    "GET", f"extractions/{extraction_id}/download-original", headers={"Accept": "*/*"}
                )
                dest = child_path(child_path(folder, "original"), extraction.get("file_name") or "original")
                written.append(download_to(partial(hook.stream, call), dest, overwrite=self.overwrite))
        for obj in written:
            self.log.info("Wrote %s (%s bytes, sha256 %s)", obj.uri, obj.size, obj.sha256)
        return [obj.to_dict() for obj in written]

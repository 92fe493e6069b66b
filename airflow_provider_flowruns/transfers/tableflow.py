"""Tableflow: what a completed flow run carries -> JSON and CSV objects under a destination prefix.

A documented run (seeds/004) names no extraction: what it carries is its ``steps`` (step
executions with their outputs), ``drive_files`` (Google Drive exports), ``input_files`` and
``flow_attempts``. The transfer writes those, and fetches the tables of every extraction a step
names (``steps[].extraction_id`` or ``steps[].outputs.extraction_id``; no public page documents
either spelling, see docs/tableflow.md).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_flowruns.core.errors import FlowRunsConfigError, RunFailed
from airflow_provider_flowruns.core.params import is_templated
from airflow_provider_flowruns.lineage import EmitsLineage
from airflow_provider_flowruns.operators.vendor import VendorOperator
from airflow_provider_flowruns.vendors import TABLEFLOW

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_flowruns.core.params import RunIdArg
    from airflow_provider_flowruns.core.storage import WrittenObject
    from airflow_provider_flowruns.hooks.tableflow import TableflowHook  # noqa: F401 - the base's type argument

# The hook, its models and the storage engine are imported where they are used (see ``vendors``).

RowFilter = Literal["all", "valid", "invalid"]
#: The run's fields written as ``<name>.json`` when the run carries them (non-empty).
RUN_PIECES = ("steps", "drive_files", "input_files", "flow_attempts")
#: What a completed run must carry at least one of, or the transfer fails naming them.
LOOKED_FOR = ("steps", "drive_files", "input_files", "steps[].extraction_id", "steps[].outputs.extraction_id")


class TableflowRunResultsToStorageOperator(EmitsLineage, VendorOperator["TableflowHook"]):
    """Write what completed run ``run_id`` carries to storage, and push it as the return XCom.

    - ``<destination>/<run id>/run.json``: the run as Tableflow sent it;
    - ``<destination>/<run id>/steps.json``, ``drive_files.json``, ``input_files.json``,
      ``flow_attempts.json``: each of those fields the run carries;
    - ``<destination>/<run id>/<extraction id>/<table>.csv`` for every extraction a step names
      (streamed from Tableflow's CSV download), and ``<extraction id>/original/<file name>`` with
      ``include_originals``.

    The run id folder keeps mapped runs saved to one destination apart.

    :param run_id: the Tableflow flow run (templated, e.g. ``{{ ti.xcom_pull('run_flow') }}``).
    :param destination: prefix URI (``s3://bucket/tableflow/{{ (dag_run.logical_date or dag_run.run_after) | ds }}``, ``/data/out``).
    :param row_filter: ``all`` (default), ``valid`` or ``invalid`` rows of extraction tables.
    :param include_originals: also copy each extraction's original document.
    :param overwrite: replace existing objects (default True; False fails on an existing object).
    :param hook_params: plain hook settings (``timeout``, ``max_retries``, ``max_rps``, ...).

    The objects land together or none does (``core.storage.all_or_nothing``). A completed run that
    carries none of steps, drive_files, input_files or an extraction id fails naming what was
    looked for; so does a field of a shape the provider cannot read. Returns ``{run_id, status,
    steps, drive_files, input_files, extraction_ids, written}``, ``written`` the list of
    ``{uri, size, sha256}``. Each asset in ``outlets`` gets an event whose extra lists them with the
    run (``{objects, bytes, vendor, run_id, run_url}``, see ``core/produced.py``).
    """

    vendor_info = TABLEFLOW
    template_fields: Sequence[str] = ("conn_id", "run_id", "destination", "row_filter")
    lineage_source = "flows/runs/{run_id}"
    #: Extraction folders go under the run's folder (False: directly under ``destination``, the
    #: deprecated operator's layout).
    tables_in_run_folder = True

    def __init__(
        self,
        *,
        run_id: RunIdArg,
        destination: str,
        row_filter: RowFilter = "all",
        include_originals: bool = False,
        overwrite: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if row_filter not in ("all", "valid", "invalid") and not is_templated(row_filter):
            raise FlowRunsConfigError(f"row_filter must be 'all', 'valid' or 'invalid', got {row_filter!r}")
        if not run_id:
            raise FlowRunsConfigError("run_id is required")
        self.run_id = run_id
        self.destination = destination
        self.row_filter = row_filter
        self.include_originals = include_originals
        self.overwrite = overwrite

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_flowruns.core.errors import UnexpectedResponse
        from airflow_provider_flowruns.core.storage import all_or_nothing, as_storage_path, child_path
        from airflow_provider_flowruns.hooks.tableflow_models import extraction_ids

        hook = self.hook
        run_id = str(self.run_id)
        raw, run = hook.read_run(run_id)
        if run.status != "completed":
            raise RunFailed(
                f"Tableflow run {run_id} is {run.status!r}, not completed: no results to collect",
                run_id=run_id,
                vendor_status=run.status,
            )
        pieces = {name: raw[name] for name in RUN_PIECES if raw.get(name) not in (None, [], {})}
        extractions = extraction_ids(run)
        if not (set(pieces) - {"flow_attempts"}) and not extractions:
            raise UnexpectedResponse(
                f"Tableflow run {run_id} is completed but carries nothing to collect: looked for "
                f"{', '.join(LOOKED_FOR)} and found none (its fields: {', '.join(sorted(raw))})",
                status=200,
            )
        prefix = as_storage_path(self.destination)
        run_folder = child_path(prefix, run_id)
        tables_root = run_folder if self.tables_in_run_folder else prefix
        written: list[WrittenObject] = []
        with all_or_nothing():  # a failed try leaves none of its objects behind
            written.append(self._json(child_path(run_folder, "run.json"), raw))
            for name, value in pieces.items():
                written.append(self._json(child_path(run_folder, f"{name}.json"), value))
            for extraction_id in extractions:
                extraction = hook.read_extraction(extraction_id)
                if extraction.status != "completed":
                    raise RunFailed(
                        f"Tableflow extraction {extraction_id} of run {run_id} is "
                        f"{extraction.status!r}, not completed",
                        run_id=run_id,
                        vendor_status=extraction.status,
                    )
                folder = child_path(tables_root, extraction_id)
                for table in sorted(extraction.data.tables):
                    dest = child_path(folder, f"{table}.csv")
                    written.append(
                        hook.download_table(
                            extraction_id, table, dest, row_filter=self.row_filter, overwrite=self.overwrite
                        )
                    )
                if self.include_originals:
                    dest = child_path(child_path(folder, "original"), extraction.file_name or "original")
                    written.append(hook.download_original(extraction_id, dest, overwrite=self.overwrite))
        for obj in written:
            self.log.info("Wrote %s (%s bytes, sha256 %s)", obj.uri, obj.size, obj.sha256)
        from airflow_provider_flowruns.core.produced import Produced, VendorRun, annotate_outlets
        from airflow_provider_flowruns.core.runs import RunRef

        vendor_run = VendorRun(hook.vendor, run_id, hook.run_url(RunRef(run_id)), vendor_status=run.status)
        produced = Produced.from_run([obj.to_dict() for obj in written], vendor_run)
        annotate_outlets(context, self.outlets, produced, task=self)
        return {
            "run_id": run_id,
            "status": run.status,
            "steps": raw.get("steps") or [],
            "drive_files": raw.get("drive_files") or {},
            "input_files": raw.get("input_files"),
            "extraction_ids": extractions,
            "written": [obj.to_dict() for obj in written],
        }

    def _json(self, dest: ObjectStoragePath, value: Any) -> WrittenObject:
        from airflow_provider_flowruns.core.storage import write_atomically

        data = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode()
        return write_atomically(dest, [data], expected_size=len(data), overwrite=self.overwrite)


class TableflowExtractionsToStorageOperator(TableflowRunResultsToStorageOperator):
    """Deprecated: use :class:`TableflowRunResultsToStorageOperator`, which this now is.

    It used to need ``steps[].extraction_id`` on the run, so it failed on every run shaped like
    Tableflow's documented one. It now collects what the run carries: extraction tables where they
    were (``<destination>/<extraction id>/<table>.csv``), plus ``<destination>/<run id>/run.json``
    and the run's pieces; as before it returns only the list of ``{uri, size, sha256}`` written.
    """

    tables_in_run_folder = False

    def __init__(self, **kwargs: Any) -> None:
        from airflow.exceptions import AirflowProviderDeprecationWarning

        warnings.warn(
            "TableflowExtractionsToStorageOperator is deprecated; use TableflowRunResultsToStorageOperator "
            "(it returns a dict with 'written', 'steps', 'drive_files', 'input_files', 'extraction_ids')",
            AirflowProviderDeprecationWarning,
            stacklevel=2,
        )
        super().__init__(**kwargs)

    def execute(self, context: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        return list(super().execute(context)["written"])

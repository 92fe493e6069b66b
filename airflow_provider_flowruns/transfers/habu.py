"""LiveRamp Clean Room (Habu): flow-run node reports and question-run files into any storage."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError, RunFailed
from airflow_provider_flowruns.core.params import is_templated
from airflow_provider_flowruns.core.rows import FORMATS
from airflow_provider_flowruns.lineage import EmitsLineage
from airflow_provider_flowruns.operators.vendor import VendorOperator
from airflow_provider_flowruns.vendors import HABU
from airflow_provider_flowruns.vendors.habu import REPORT_PAGE_SIZE

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_flowruns.core.params import RunIdArg
    from airflow_provider_flowruns.core.storage import WrittenObject
    from airflow_provider_flowruns.hooks.habu import HabuHook  # noqa: F401 - the base's type argument
    from airflow_provider_flowruns.hooks.habu_models import ReportPage

# The hook and the storage engine are imported where they are used (see ``vendors``).


def write_result_pages(
    pages: Iterator[ReportPage], dest: Any, fmt: str, *, overwrite: bool = True
) -> tuple[WrittenObject, int]:
    """Stream paginated result data (either documented shape, read by the hook as
    ``habu_models.ReportPage``) into ``dest`` as CSV or JSON Lines.

    The CSV header is the first page's declared columns plus every column a row brings, in order
    of first appearance (``core.rows.csv_chunks``). The row total the vendor announced (``count``)
    is checked before the object is moved into place: a report that lost rows on the way never
    lands. A first page without any rows is an empty report only because the vendor said so in a
    shape it documents (an empty ``stats``/``recordStats`` list, or ``count: 0``)."""
    from airflow_provider_flowruns.core.pages import read_ahead
    from airflow_provider_flowruns.core.rows import RowCounter, encode_rows
    from airflow_provider_flowruns.core.storage import IncompleteTransfer, write_atomically

    pages = read_ahead(pages)  # the next page is built by the vendor while this one is encoded
    first = next(pages, None)
    if first is None:
        raise IncompleteTransfer("the API returned no result page")
    announced = first.count

    def rows() -> Iterator[Mapping[str, Any]]:
        for page in itertools.chain([first], pages):  # one page in memory at a time
            yield from page.rows()

    counter = RowCounter(rows())

    def chunks() -> Iterator[bytes]:
        yield from encode_rows(fmt, first.columns, counter)
        if announced is not None and counter.count != announced:
            raise IncompleteTransfer(f"received {counter.count} rows, the API announced {announced}")

    return write_atomically(dest, chunks(), overwrite=overwrite), counter.count


class HabuFlowRunReportToStorageOperator(EmitsLineage, VendorOperator["HabuHook"]):
    """Write one node's report of a flow run to ``destination`` as CSV or JSON Lines.

    :param cleanroom_id: the clean room.
    :param run_id: the flow run (templated, e.g. ``{{ ti.xcom_pull('flow_run') }}``).
    :param node: the node: its UUID, or the question display id (``Q-004368``, ``Q-004368_1``).
    :param destination: the object to write (``s3://bucket/reports/{{ ds }}/reach.csv``, ``/data/x.csv``).
    :param format: ``csv`` (header: the report's declared columns, then any other column a row
        carries, in order of first appearance) or ``jsonl`` (every field as sent).
    :param page_size: rows per API page (Habu's default and maximum page is 500-1000).

    Streamed page by page; every value is kept as Habu sent it (strings). The object appears whole
    or not at all, after its row count matched the report's. Returns ``{uri, size, sha256, rows}``;
    each asset in ``outlets`` gets an event whose extra says the same and names the flow run
    (``{uri, bytes, sha256, rows, vendor, run_id, run_url}``, see ``core/produced.py``). ``conn_id`` and
    ``hook_params`` as on every vendor task (:class:`VendorOperator`).
    """

    vendor_info = HABU

    template_fields: Sequence[str] = ("conn_id", "cleanroom_id", "run_id", "node", "destination", "format")
    lineage_source = "cleanrooms/{cleanroom_id}/flow-runs/{run_id}/nodes/{node}"

    def __init__(
        self,
        *,
        cleanroom_id: str,
        run_id: RunIdArg,
        node: str,
        destination: str,
        format: str = "csv",
        page_size: int = REPORT_PAGE_SIZE,
        overwrite: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if format not in FORMATS and not is_templated(format):
            raise FlowRunsConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        if not node:
            raise FlowRunsConfigError("node is required (node UUID or question display id)")
        if not isinstance(page_size, int) or not 1 <= page_size <= 1000:
            raise FlowRunsConfigError(f"page_size must be between 1 and 1000, got {page_size!r}")
        self.cleanroom_id = cleanroom_id
        self.run_id = run_id
        self.node = node
        self.destination = destination
        self.format = format
        self.page_size = page_size
        self.overwrite = overwrite

    def execute(self, context: Context) -> dict[str, Any]:
        if self.format not in FORMATS:
            raise FlowRunsConfigError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        from airflow_provider_flowruns.core.storage import as_storage_path

        hook = self.hook
        dest = as_storage_path(self.destination)
        pages = hook.iter_report(
            str(self.cleanroom_id), str(self.run_id), str(self.node), page_size=self.page_size
        )
        written, rows = write_result_pages(pages, dest, self.format, overwrite=self.overwrite)
        self.log.info("Wrote %d rows of node %s to %s (%d bytes)", rows, self.node, written.uri, written.size)
        result = {**written.to_dict(), "rows": rows}
        from airflow_provider_flowruns.core.produced import Produced, VendorRun, annotate_outlets
        from airflow_provider_flowruns.core.runs import RunRef
        from airflow_provider_flowruns.vendors.habu import FLOW_RUN

        ref = RunRef(str(self.run_id), kind=FLOW_RUN, scope={"cleanroom_id": str(self.cleanroom_id)})
        run = VendorRun(hook.vendor, ref.run_id, hook.run_url(ref), kind=FLOW_RUN, scope=ref.scope)
        annotate_outlets(context, self.outlets, Produced.from_run([result], run), task=self)
        return result


class HabuQuestionRunFilesToStorageOperator(EmitsLineage, VendorOperator["HabuHook"]):
    """Copy every result file of a completed question run under ``destination`` (a prefix).

    :param run_id: the question run.
    :param destination: prefix (``s3://bucket/cleanroom/{{ ds }}/``, ``/data/out``).
    :param files: only these output names (default: all of the run's ``multipleOutputs``).
    :param include_data: also write the run's paginated result data as ``data.csv``/``data.jsonl``
        (``"csv"`` or ``"jsonl"``), checked against its row count.

    File names come from the vendor, so each is reduced to one safe path segment (``../../x.csv``
    becomes ``x.csv``) and made unique; downloads are streamed, size-checked against
    ``Content-Length``, retried from scratch when cut, and moved into place only when whole.
    Returns the list of ``{uri, size, sha256, source}`` written; each asset in ``outlets`` gets an
    event whose extra lists them (``{objects: [{uri, bytes, sha256, rows?}], bytes, vendor, run_id}``,
    see ``core/produced.py``). ``conn_id`` and
    ``hook_params`` as on every vendor task (:class:`VendorOperator`).
    """

    vendor_info = HABU

    template_fields: Sequence[str] = ("conn_id", "run_id", "destination", "files")
    lineage_source = "question-runs/{run_id}"

    def __init__(
        self,
        *,
        run_id: RunIdArg,
        destination: str,
        files: list[str] | None = None,
        include_data: str | None = None,
        overwrite: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if include_data is not None and include_data not in FORMATS:
            raise FlowRunsConfigError(
                f"include_data must be one of {', '.join(FORMATS)} or None, got {include_data!r}"
            )
        self.run_id = run_id
        self.destination = destination
        self.files = files
        self.include_data = include_data
        self.overwrite = overwrite

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_provider_flowruns.core.storage import all_or_nothing, as_storage_path, child_path

        hook = self.hook
        run_id = str(self.run_id)
        # The result listing doubles as the readiness check: reading the run's status here, right
        # after the wait that saw it complete, would spend a second poll within Habu's 5 minutes.
        try:
            listed = hook.question_result_files(run_id)
        except FlowRunsApiError as exc:
            if exc.status is None or exc.status >= 500 or exc.status in (401, 403, 404):
                raise
            run = hook.get_question_run(run_id)
            raise RunFailed(
                f"question run {run_id} is {run.get('status')!r}, not COMPLETED: no results to copy "
                f"({exc.message})",
                run_id=run_id,
                vendor_status=run.get("status"),
            ) from None
        prefix = as_storage_path(self.destination)
        names = list(self.files) if self.files else listed
        written: list[dict[str, Any]] = []
        taken: set[str] = set()
        with all_or_nothing():  # a failed try leaves none of its files behind
            for name in names:
                dest = child_path(prefix, unique_name(name, taken))
                obj = hook.download_question_file(run_id, name, dest)
                written.append({**obj.to_dict(), "source": name})
            if self.include_data:
                dest = child_path(prefix, unique_name(f"data.{self.include_data}", taken))
                obj, rows = write_result_pages(hook.iter_question_data(run_id), dest, self.include_data)
                written.append({**obj.to_dict(), "source": "data", "rows": rows})
        for item in written:
            self.log.info("Wrote %s (%s bytes) from %r", item["uri"], item["size"], item["source"])
        if not written:
            self.log.warning("Question run %s lists no result files.", run_id)
        from airflow_provider_flowruns.core.produced import Produced, VendorRun, annotate_outlets
        from airflow_provider_flowruns.core.runs import RunRef
        from airflow_provider_flowruns.vendors.habu import QUESTION_RUN

        ref = RunRef(run_id, kind=QUESTION_RUN)  # no clean room here: no run URL (none is guessed)
        vendor_run = VendorRun(hook.vendor, run_id, hook.run_url(ref), kind=QUESTION_RUN)
        annotate_outlets(context, self.outlets, Produced.from_run(written, vendor_run), task=self)
        return written


def unique_name(vendor_name: Any, taken: set[str]) -> str:
    """A sanitized name not used yet in this transfer (``out.csv``, ``out-2.csv``, ...)."""
    from airflow_provider_flowruns.core.storage import sanitize_filename

    name = sanitize_filename(vendor_name)
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext, dot = name, "", ""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    taken.add(candidate)
    return candidate

"""Activepieces bulk operations on flow runs: cancel, retry, archive, by ids or by filters.

Each operator needs at least one scoping filter (run ids, flow ids, a failed step or a creation
window): an empty filter would act on every run of the project, which is never what a scheduled
task means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.params import is_templated
from airflow_provider_flowruns.operators.base import DONE_FLAG
from airflow_provider_flowruns.operators.vendor import VendorOperator
from airflow_provider_flowruns.vendors import ACTIVEPIECES
from airflow_provider_flowruns.vendors.activepieces import (
    CANCELLABLE,
    FAILED_STATUSES,
    RETRY_STRATEGIES,
    RunFilter,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_flowruns.hooks.activepieces import ActivepiecesHook  # noqa: F401 - the base's type argument


#: Task-state-store key: a bulk retry that already went through is not sent again by a task retry.
BULK_RETRY_KEY = "flowruns_activepieces_bulk_retry"
FILTER_FIELDS = (
    "flow_run_ids",
    "exclude_flow_run_ids",
    "flow_ids",
    "statuses",
    "created_after",
    "created_before",
    "failed_step_name",
    "failed_step_message",
)


class ActivepiecesBulkOperator(VendorOperator["ActivepiecesHook"]):
    """Shared filter parameters (all templated) of the bulk operators.

    :param flow_run_ids: act on these runs only (Activepieces then ignores the other filters).
    :param exclude_flow_run_ids: never act on these.
    :param flow_ids: runs of these flows.
    :param statuses: runs in these statuses.
    :param created_after: ISO-8601 (e.g. ``{{ (logical_date - macros.timedelta(days=1)) | ts }}``).
    :param created_before: ISO-8601.
    :param failed_step_name: runs that failed at this step (retry and archive).
    :param failed_step_message: runs whose failed step's error matches (retry and archive).
    """

    vendor_info = ACTIVEPIECES
    template_fields: Sequence[str] = ("conn_id", *FILTER_FIELDS)
    default_statuses: tuple[str, ...] = ()
    allowed_statuses: tuple[str, ...] | None = None

    def __init__(
        self,
        *,
        flow_run_ids: list[str] | str | None = None,
        exclude_flow_run_ids: list[str] | str | None = None,
        flow_ids: list[str] | str | None = None,
        statuses: list[str] | str | None = None,
        created_after: Any = None,
        created_before: Any = None,
        failed_step_name: str | None = None,
        failed_step_message: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.flow_run_ids = flow_run_ids
        self.exclude_flow_run_ids = exclude_flow_run_ids
        self.flow_ids = flow_ids
        self.statuses = list(self.default_statuses) if statuses is None else statuses
        self.created_after = created_after
        self.created_before = created_before
        self.failed_step_name = failed_step_name
        self.failed_step_message = failed_step_message
        if not is_templated(*(getattr(self, f) for f in FILTER_FIELDS)):
            self.run_filter()  # static input: fail at parse, naming the parameter

    def run_filter(self) -> RunFilter:
        built = RunFilter.build(**{f: getattr(self, f) for f in FILTER_FIELDS})
        scoped = (
            built.flow_run_ids
            or built.flow_ids
            or built.created_after
            or built.created_before
            or built.failed_step_name
        )
        others = [
            name
            for name, value in (
                ("flow_ids", built.flow_ids),
                ("created_after", built.created_after),
                ("created_before", built.created_before),
                ("failed_step_name", built.failed_step_name),
                ("failed_step_message", built.failed_step_message),
                ("statuses", built.statuses != tuple(self.default_statuses) and built.statuses),
            )
            if value
        ]
        if built.flow_run_ids and others:
            raise FlowRunsConfigError(
                f"flow_run_ids names the runs, and Activepieces then ignores {others}: give one or the other"
            )
        if not scoped:
            raise FlowRunsConfigError(
                "give at least one of flow_run_ids, flow_ids, created_after, created_before or "
                "failed_step_name: an empty filter would act on every run of the project"
            )
        if self.allowed_statuses is not None:
            refused = [s for s in built.statuses if s not in self.allowed_statuses]
            if refused:
                raise FlowRunsConfigError(
                    f"statuses {refused} are not allowed here; use {', '.join(self.allowed_statuses)}"
                )
        return built


class ActivepiecesCancelFlowRunsOperator(ActivepiecesBulkOperator):
    """Cancel PAUSED and QUEUED runs (the only ones Activepieces cancels; RUNNING runs finish or time out).

    Returns ``{"cancelled": [run ids], "skipped": [{"id", "status", "reason"}]}`` and logs both,
    so a run that is left alone is never silent: a requested id that was RUNNING or already
    finished, or (with filters) the RUNNING runs that matched the other filters.
    """

    template_fields: Sequence[str] = ("conn_id", *FILTER_FIELDS[:6])
    default_statuses = CANCELLABLE
    allowed_statuses = CANCELLABLE

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        run_filter = self.run_filter()
        if run_filter.failed_step_name or run_filter.failed_step_message:
            raise FlowRunsConfigError("cancel does not filter by failed step")
        if run_filter.flow_run_ids:
            by_id = RunFilter(flow_run_ids=run_filter.flow_run_ids, include_archived=True)
            before = {str(r["id"]): str(r.get("status")) for r in hook.list_runs(by_id)}
        else:
            before = {
                str(r["id"]): "RUNNING" for r in hook.list_runs(replace(run_filter, statuses=("RUNNING",)))
            }
        answered = hook.bulk_cancel(run_filter)
        cancelled = sorted(str(r["id"]) for r in answered if r.get("id"))
        if run_filter.flow_run_ids and not answered:
            # The answer listed no runs: read back what the requested runs are now.
            after = {str(r["id"]): str(r.get("status")) for r in hook.list_runs(by_id)}
            cancelled = sorted(i for i, s in after.items() if s == "CANCELED" and before.get(i) != "CANCELED")
        skipped: list[dict[str, Any]] = [
            {"id": run_id, "status": status, "reason": _cancel_reason(run_id, status, run_filter)}
            for run_id, status in sorted(before.items())
            if run_id not in cancelled
        ]
        if run_filter.flow_run_ids:
            skipped += [
                {"id": i, "status": None, "reason": "not found in the project"}
                for i in run_filter.flow_run_ids
                if i not in before
            ]
        self.log.info("Cancelled %d Activepieces run(s): %s", len(cancelled), ", ".join(cancelled) or "-")
        for item in skipped:
            self.log.warning("Not cancelled: run %s (%s): %s", item["id"], item["status"], item["reason"])
        return {"cancelled": cancelled, "skipped": skipped}


def _cancel_reason(run_id: str, status: str, run_filter: RunFilter) -> str:
    if run_id in run_filter.exclude_flow_run_ids:
        return "excluded"
    if status == "RUNNING":
        return "Activepieces cancels only PAUSED or QUEUED runs; a RUNNING run finishes or times out"
    if status in CANCELLABLE:
        return "left as it was by Activepieces"
    return f"already finished ({status})"


class ActivepiecesBulkRetryFlowRunsOperator(ActivepiecesBulkOperator):
    """Retry the finished runs matching the filters (default: every failed status).

    :param strategy: ``FROM_FAILED_STEP`` (default; same run ids) or ``ON_LATEST_VERSION`` (new runs).

    Returns ``[{"id", "status", "flow_id"}]`` of the runs Activepieces re-queued or started. The
    call is not idempotent, so once it went through, a retried task returns the stored answer
    (task state store, Airflow 3.3+) instead of retrying the runs again. Once the task has
    succeeded, clearing it retries anew.
    """

    default_statuses = FAILED_STATUSES
    allowed_statuses = (*FAILED_STATUSES, "SUCCEEDED", "CANCELED")
    template_fields: Sequence[str] = ("conn_id", "strategy", *FILTER_FIELDS)

    def __init__(self, *, strategy: str = "FROM_FAILED_STEP", **kwargs: Any) -> None:
        if strategy not in RETRY_STRATEGIES and not is_templated(strategy):
            raise FlowRunsConfigError(
                f"strategy must be one of {', '.join(RETRY_STRATEGIES)}, got {strategy!r}"
            )
        self.strategy = strategy
        super().__init__(**kwargs)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        store: Any = context.get("task_state_store")  # holds this task's own JSON (see below)
        saved = store.get(BULK_RETRY_KEY) if store is not None else None
        if isinstance(saved, dict) and saved.get(DONE_FLAG):
            # Only a clear runs a task again after it succeeded: the user asks to retry anew.
            self.log.info("This task already retried runs and finished; it was cleared, so it retries again.")
        elif saved is not None:
            runs = list(saved["runs"] if isinstance(saved, dict) else saved)
            self.log.info("An earlier try already retried %d run(s); not retrying them again.", len(runs))
            return runs
        runs = self.hook.bulk_retry(self.run_filter(), self.strategy)
        result = [{"id": r.get("id"), "status": r.get("status"), "flow_id": r.get("flowId")} for r in runs]
        if store is not None:
            store.set(BULK_RETRY_KEY, {"runs": result})
        self.log.info(
            "Retried %d Activepieces run(s) (%s): %s",
            len(result),
            self.strategy,
            ", ".join(str(r["id"]) for r in result) or "-",
        )
        return result

    def post_execute(self, context: Any, result: Any = None) -> None:
        """The task has its answer: flag the stored one, so a later run of this task (only a clear
        runs a succeeded task again) retries anew instead of returning it."""
        super().post_execute(context, result)
        store = context.get("task_state_store")
        saved = store.get(BULK_RETRY_KEY) if store is not None else None
        if isinstance(saved, dict) and not saved.get(DONE_FLAG):
            store.set(BULK_RETRY_KEY, {**saved, DONE_FLAG: True})


class ActivepiecesArchiveFlowRunsOperator(ActivepiecesBulkOperator):
    """Archive (soft-delete) the runs matching the filters; they leave default lists but are kept.

    Returns the archived run ids.
    """

    def execute(self, context: Context) -> list[str]:
        runs = self.hook.bulk_archive(self.run_filter())
        ids = [str(r["id"]) for r in runs if r.get("id")]
        self.log.info("Archived %d Activepieces run(s): %s", len(ids), ", ".join(ids) or "-")
        return ids

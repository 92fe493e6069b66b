"""Tableflow: upload documents from any storage and run a flow over them, waiting through review."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_flowruns.core.errors import FlowRunsConfigError, RunFailed
from airflow_provider_flowruns.core.params import OnPause, on_pause_checked, task_key
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.operators.base import FlowRunOperator
from airflow_provider_flowruns.vendors import TABLEFLOW
from airflow_provider_flowruns.vendors.tableflow import check_files

if TYPE_CHECKING:
    from airflow_provider_flowruns.hooks.tableflow import TableflowHook

#: Tableflow calls its pause a review: the same choice as every other pause (``core.params``).
OnReview = OnPause


class TableflowRunFlowOperator(FlowRunOperator["TableflowHook"]):
    """Upload ``files`` into flow ``flow_id`` and wait for the run.

    :param flow_id: the Tableflow flow.
    :param files: file field key -> path (or list of paths for a multi-file field), any
        ``ObjectStoragePath`` URI (``s3://...``, ``/local/path``); streamed, never read whole.
    :param name: run name shown in Tableflow.
    :param metadata: JSON-able dict Tableflow echoes on the run (and webhooks).
    :param file_metadata: file key -> dict, sent as ``<key>_metadata``.
    :param file_guidance: file key -> text, sent as ``<key>_guidance``.
    :param on_review: a run in ``review`` waits for a human: ``wait`` (default) keeps waiting,
        ``fail`` fails the task, ``succeed`` returns while the review is pending.

    Returns the run id; pushes ``run_id``, ``run_url`` and ``run_details`` (status history, error,
    attempts, per-step results and metadata), which are also logged when the run settles.
    """

    vendor_info = TABLEFLOW
    template_fields: Sequence[str] = ("conn_id", "flow_id", "files", "name", "metadata", "file_metadata")
    lineage_source = "flows/{flow_id}"

    def __init__(
        self,
        *,
        flow_id: str,
        files: dict[str, Any],
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        file_metadata: dict[str, Any] | None = None,
        file_guidance: dict[str, str] | None = None,
        on_review: OnReview = "wait",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not flow_id:
            raise FlowRunsConfigError("flow_id is required")
        check_files(files)
        self.flow_id = flow_id
        self.files = files
        self.name = name
        self.metadata = metadata
        self.file_metadata = file_metadata
        self.file_guidance = file_guidance
        self.on_review = on_pause_checked(on_review, "on_review")

    def submit(self, hook: TableflowHook, context: Any) -> RunRef:
        check_files(self.files, rendered=True)
        run = hook.run_flow(
            self.flow_id,
            self.files,
            name=self.name,
            metadata=self.metadata,
            file_metadata=self.file_metadata,
            file_guidance=self.file_guidance,
            correlation_key=task_key(context),
        )
        return RunRef(run_id=str(run["id"]))

    def find_existing(self, hook: TableflowHook, context: Any) -> RunRef | None:
        run = hook.find_run(self.flow_id, task_key(context))
        return RunRef(run_id=str(run["id"])) if run else None

    def stop_states(self) -> frozenset[RunState]:
        return frozenset() if self.on_review == "wait" else frozenset({RunState.PAUSED})

    def report(self, hook: TableflowHook, ref: RunRef, event: dict[str, Any], context: Any) -> None:
        run, _ = hook.read_run(ref.run_id)  # fails naming a field of a shape we cannot read
        details: dict[str, Any] = {
            "run_id": ref.run_id,
            "status": run.get("status"),
            "error": run.get("error"),
            "status_history": run.get("status_history") or [],
            "flow_attempts": run.get("flow_attempts"),
            "current_attempt": run.get("current_attempt"),
            "steps": run.get("steps") or [],
            "input_files": run.get("input_files"),
            "drive_files": run.get("drive_files"),
            "metadata": run.get("metadata") or {},
            "duration_ms": run.get("duration"),
        }
        for entry in details["status_history"]:
            self.log.info("  %s  %s: %s", entry.get("time"), entry.get("status"), entry.get("message"))
        for step in details["steps"]:
            self.log.info(
                "  step %s (%s): %s",
                step.get("title") or step.get("id"),
                step.get("type"),
                step.get("status"),
            )
        attempts = details["flow_attempts"]
        # seeds/004 calls flow_attempts an array (one entry per attempt); older bodies sent a count.
        count = len(attempts) if isinstance(attempts, list) else attempts
        if count:
            self.log.info("attempt %s of %s", details["current_attempt"] or count, count)
        if details["error"]:
            self.log.error("Tableflow error: %s", details["error"])
        context["ti"].xcom_push(key="run_details", value=details)

    def result(self, hook: TableflowHook, ref: RunRef, event: dict[str, Any], context: Any) -> Any:
        if event.get("status") == "paused" and self.on_review == "fail":
            raise RunFailed(
                f"Tableflow run {ref.run_id} is waiting for review and on_review='fail'",
                run_id=ref.run_id,
                vendor_status=event.get("vendor_status"),
            )
        return ref.run_id

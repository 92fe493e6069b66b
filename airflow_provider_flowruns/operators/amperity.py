"""Amperity: start a workflow run (courier group, orchestration group or campaign) and wait for it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_flowruns.core.params import is_templated
from airflow_provider_flowruns.core.runs import RunRef
from airflow_provider_flowruns.operators.base import FlowRunOperator
from airflow_provider_flowruns.vendors import AMPERITY
from airflow_provider_flowruns.vendors.amperity import RunMode, validate_start

if TYPE_CHECKING:
    from airflow_provider_flowruns.hooks.amperity import AmperityHook


class AmperityRunWorkflowOperator(FlowRunOperator["AmperityHook"]):
    """Start an Amperity workflow run and (by default) wait for it in the triggerer.

    :param config_id: ``cg-...`` courier group, ``og-...`` orchestration group or ``cc-...`` campaign.
    :param run_mode: ``source``, ``refresh`` or ``full`` (courier groups only; default: as configured).
    :param range_from: ISO-8601 start of the data range (inclusive); required by file-based courier groups.
    :param range_to: ISO-8601 end of the range (exclusive); only together with ``range_from``.

    Returns the workflow id and pushes ``run_id``/``run_url``. A failed run fails the task with each
    failed task instance's label, error and attribution (customer: fix the config; platform: rerun).
    On ``timeout`` or kill the run is stopped. See :class:`FlowRunOperator` for the waiting options.
    """

    vendor_info = AMPERITY
    template_fields: Sequence[str] = ("conn_id", "config_id", "run_mode", "range_from", "range_to")
    lineage_source = "{config_id}"

    def __init__(
        self,
        *,
        config_id: str,
        run_mode: RunMode | None = None,
        range_from: str | None = None,
        range_to: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not is_templated(config_id, run_mode, range_from, range_to):
            validate_start(config_id, run_mode, range_from, range_to)  # fail at parse, naming the parameter
        self.config_id = config_id
        self.run_mode = run_mode
        self.range_from = range_from
        self.range_to = range_to

    def submit(self, hook: AmperityHook, context: Any) -> RunRef:
        workflow = hook.start_workflow(
            self.config_id, run_mode=self.run_mode, range_from=self.range_from, range_to=self.range_to
        )
        self.log.info(
            "Started Amperity %s %r (%s) for %s",
            workflow.get("type"),
            workflow.get("name"),
            workflow.get("id"),
            self.config_id,
        )
        return RunRef(run_id=str(workflow["id"]))

"""Amperity: wait for a workflow run started elsewhere (UI, schedule, another DAG)."""

from __future__ import annotations

from collections.abc import Sequence

from airflow_provider_flowruns.sensors.base import FlowRunSensor
from airflow_provider_flowruns.vendors import AMPERITY


class AmperityWorkflowRunSensor(FlowRunSensor):
    """Succeeds when workflow ``run_id`` (``wf-...``) succeeds; fails with its failed tasks' errors
    when it fails, and when it is stopped or canceled. Poke, reschedule or deferrable."""

    vendor_info = AMPERITY
    template_fields: Sequence[str] = ("conn_id", "run_id")

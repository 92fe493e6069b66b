"""Tableflow: wait for a flow run started elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

from airflow_provider_flowruns.sensors.base import FlowRunSensor
from airflow_provider_flowruns.vendors import TABLEFLOW


class TableflowFlowRunSensor(FlowRunSensor):
    """Succeeds when run ``run_id`` completes (or, with ``on_pause="succeed"``, reaches review);
    fails with Tableflow's error when it fails. Poke, reschedule or deferrable."""

    vendor_info = TABLEFLOW
    template_fields: Sequence[str] = ("conn_id", "run_id")

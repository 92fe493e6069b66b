"""Activepieces: wait for a flow run started elsewhere (a schedule, an app event, another DAG)."""

from __future__ import annotations

from collections.abc import Sequence

from airflow_provider_flowruns.sensors.base import FlowRunSensor
from airflow_provider_flowruns.vendors import ACTIVEPIECES


class ActivepiecesFlowRunSensor(FlowRunSensor):
    """Succeeds when run ``run_id`` succeeds (or, with ``on_pause="succeed"``, pauses for input);
    fails with the failed step and its error when it fails, times out, is cancelled or runs out of
    quota or memory. Poke, reschedule or deferrable."""

    vendor_info = ACTIVEPIECES
    template_fields: Sequence[str] = ("conn_id", "run_id")

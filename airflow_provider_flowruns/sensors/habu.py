"""LiveRamp Clean Room (Habu): wait for flow runs and question runs started elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.runs import RunRef
from airflow_provider_flowruns.sensors.base import FlowRunSensor
from airflow_provider_flowruns.vendors import HABU
from airflow_provider_flowruns.vendors.habu import FLOW_RUN, QUESTION_RUN


class HabuFlowRunSensor(FlowRunSensor):
    """Succeeds when flow run ``run_id`` is COMPLETED (or, with ``on_pause="succeed"``, PAUSED at
    its pause level); fails when it fails. Polled no more often than every 5 minutes."""

    vendor_info = HABU
    template_fields: Sequence[str] = ("conn_id", "run_id", "cleanroom_id")

    def __init__(self, *, cleanroom_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not cleanroom_id:
            raise FlowRunsConfigError("cleanroom_id is required")
        self.cleanroom_id = cleanroom_id

    def build_ref(self) -> RunRef:
        return RunRef(run_id=str(self.run_id), kind=FLOW_RUN, scope={"cleanroom_id": str(self.cleanroom_id)})


class HabuQuestionRunSensor(FlowRunSensor):
    """Succeeds when question run ``run_id`` is COMPLETED; fails on FAILED/ERROR/PARTNER_FAILED."""

    vendor_info = HABU
    template_fields: Sequence[str] = ("conn_id", "run_id")

    def __init__(self, *, cleanroom_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cleanroom_id = cleanroom_id

    def build_ref(self) -> RunRef:
        scope = {"cleanroom_id": str(self.cleanroom_id)} if self.cleanroom_id else {}
        return RunRef(run_id=str(self.run_id), kind=QUESTION_RUN, scope=scope)

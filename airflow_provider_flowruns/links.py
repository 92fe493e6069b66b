"""'Open in <vendor>' buttons: each reads the ``run_url`` XCom the operator pushes before waiting,
so the link works while the task is deferred and after it fails."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

RUN_URL_XCOM_KEY = "run_url"


class FlowRunLink(BaseOperatorLink):
    name = "Open run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(key=RUN_URL_XCOM_KEY, ti_key=ti_key) or ""


class HabuRunLink(FlowRunLink):
    name = "Open in LiveRamp Clean Room"


class AmperityRunLink(FlowRunLink):
    name = "Open in Amperity"


class ActivepiecesRunLink(FlowRunLink):
    name = "Open in Activepieces"


class TableflowRunLink(FlowRunLink):
    name = "Open in Tableflow"

"""'Open in <vendor>' buttons: each reads the ``run_url`` XCom the operator pushes before waiting,
so the link works while the task is deferred and after it fails.

One class serves every vendor: the button's name comes from the vendor record (``link_name``), and
``VendorOperator`` gives each vendor's operators and sensors their button.
"""

from __future__ import annotations

from typing import Any

import attrs
from airflow.sdk import BaseOperatorLink

RUN_URL_XCOM_KEY = "run_url"


@attrs.define
class FlowRunLink(BaseOperatorLink):
    """The run's page at the vendor, named ``name`` (the vendor record's ``link_name``)."""

    name: str = "Open run"  # type: ignore[assignment]  # the base declares it as a property

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(key=RUN_URL_XCOM_KEY, ti_key=ti_key) or ""

"""Every vendor, declared once: one :class:`~airflow_provider_flowruns.core.vendor.Vendor` record each.

Provider info (connection types, modules, links, config options), the hooks' class attributes and
the operators' defaults are all built from these records. This module imports only the record type
and the connection forms, so provider discovery and DAG parse can read it without loading a hook;
the vendor modules next to it (``vendors/<vendor>.py``) hold the parameter checks operators run at
DAG parse. Adding a vendor starts here: docs/contributing.md.
"""

from __future__ import annotations

from airflow_provider_flowruns import forms
from airflow_provider_flowruns.core.vendor import Vendor

_P = "airflow_provider_flowruns"

HABU = Vendor(
    conn_type="habu",
    name="LiveRamp Clean Room",
    display_name="LiveRamp Clean Room (Habu)",
    hook=f"{_P}.hooks.habu.HabuHook",
    form=forms.HABU,
    default_base_url="https://api.habu.com/v1",
    poll_floor=300.0,
    default_poll_interval=900.0,
    docs_url="https://developers.liveramp.com/clean-room-api/",
    link_name="Open in LiveRamp Clean Room",
    operators=(f"{_P}.operators.habu",),
    sensors=(f"{_P}.sensors.habu",),
    transfers=(f"{_P}.transfers.habu",),
)
AMPERITY = Vendor(
    conn_type="amperity",
    name="Amperity",
    display_name="Amperity",
    hook=f"{_P}.hooks.amperity.AmperityHook",
    form=forms.AMPERITY,
    default_base_url="https://app.amperity.com/api",
    poll_floor=10.0,
    default_poll_interval=60.0,
    docs_url="https://docs.amperity.com/api/",
    link_name="Open in Amperity",
    operators=(f"{_P}.operators.amperity",),
    sensors=(f"{_P}.sensors.amperity",),
)
ACTIVEPIECES = Vendor(
    conn_type="activepieces",
    name="Activepieces",
    display_name="Activepieces",
    hook=f"{_P}.hooks.activepieces.ActivepiecesHook",
    form=forms.ACTIVEPIECES,
    default_base_url="https://cloud.activepieces.com/api",
    poll_floor=5.0,
    default_poll_interval=15.0,
    docs_url="https://www.activepieces.com/docs/",
    link_name="Open in Activepieces",
    operators=(f"{_P}.operators.activepieces", f"{_P}.operators.activepieces_bulk"),
    sensors=(f"{_P}.sensors.activepieces",),
    transfers=(f"{_P}.transfers.activepieces",),
)
TABLEFLOW = Vendor(
    conn_type="tableflow",
    name="Tableflow",
    display_name="Tableflow",
    hook=f"{_P}.hooks.tableflow.TableflowHook",
    form=forms.TABLEFLOW,
    default_base_url="https://api.tableflow.com/v2",
    poll_floor=10.0,
    default_poll_interval=30.0,
    docs_url="https://docs.tableflow.com/",
    link_name="Open in Tableflow",
    operators=(f"{_P}.operators.tableflow",),
    sensors=(f"{_P}.sensors.tableflow",),
    transfers=(f"{_P}.transfers.tableflow",),
)
#: The demo emulator's vendor (``testing/demo.py``): the README's ten-line DAG runs against it, so its
#: connection type is in the UI's list too. It is wired exactly as the four above.
# --8<-- [start:record]
DEMO = Vendor(
    conn_type="flowruns_demo",
    name="Demo",
    display_name="Flow runs demo emulator",
    hook=f"{_P}.testing.demo.DemoHook",
    form=forms.DEMO,
    default_base_url="",  # no public service: the connection names the emulator
    poll_floor=1.0,
    default_poll_interval=2.0,
    docs_url="https://airflow-provider-flowruns.github.io/airflow-provider-flowruns/emulators/",
    link_name="Open in the demo emulator",
    operators=(f"{_P}.testing.demo",),
    sensors=(f"{_P}.testing.demo",),
    transfers=(f"{_P}.testing.demo",),
)
# --8<-- [end:record]

#: Every vendor, in the order provider info lists them.
ALL: tuple[Vendor, ...] = (HABU, AMPERITY, ACTIVEPIECES, TABLEFLOW, DEMO)

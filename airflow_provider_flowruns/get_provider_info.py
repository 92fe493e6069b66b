"""Provider metadata for Airflow's ``ProvidersManager`` (entry point ``apache_airflow_provider``).

Connection forms (``ui-field-behaviour`` + ``conn-fields``, read by Airflow 3.2+ without importing our
hooks) come from ``forms.py``, which the hooks' classmethods for Airflow 3.1 read too.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_flowruns import __version__
from airflow_provider_flowruns.forms import FORMS

_P = "airflow_provider_flowruns"


def _connection_type(conn_type: str, hook: str, name: str) -> dict[str, Any]:
    form = FORMS[conn_type]
    return {
        "connection-type": conn_type,
        "hook-class-name": hook,
        "hook-name": name,
        "ui-field-behaviour": form.ui_field_behaviour(),
        "conn-fields": form.conn_fields(),
    }


CONNECTION_TYPES: list[dict[str, Any]] = [
    _connection_type("habu", f"{_P}.hooks.habu.HabuHook", "LiveRamp Clean Room (Habu)"),
    _connection_type("amperity", f"{_P}.hooks.amperity.AmperityHook", "Amperity"),
    _connection_type("activepieces", f"{_P}.hooks.activepieces.ActivepiecesHook", "Activepieces"),
    _connection_type("tableflow", f"{_P}.hooks.tableflow.TableflowHook", "Tableflow"),
    # The README's ten-line DAG runs against the demo emulator: its type is in the UI's list too.
    _connection_type("flowruns_demo", f"{_P}.testing.demo.DemoHook", "Flow runs demo emulator"),
]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-flowruns",
        "name": "Flow Runs (Habu, Amperity, Activepieces, Tableflow)",
        "description": "Trigger, wait for, steer and collect vendor flow runs from Airflow DAGs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "LiveRamp Clean Room (Habu)",
                "external-doc-url": "https://developers.liveramp.com/clean-room-api/",
            },
            {"integration-name": "Amperity", "external-doc-url": "https://docs.amperity.com/api/"},
            {"integration-name": "Activepieces", "external-doc-url": "https://www.activepieces.com/docs/"},
            {"integration-name": "Tableflow", "external-doc-url": "https://docs.tableflow.com/"},
        ],
        "hooks": [
            {"integration-name": "LiveRamp Clean Room (Habu)", "python-modules": [f"{_P}.hooks.habu"]},
            {"integration-name": "Amperity", "python-modules": [f"{_P}.hooks.amperity"]},
            {"integration-name": "Activepieces", "python-modules": [f"{_P}.hooks.activepieces"]},
            {"integration-name": "Tableflow", "python-modules": [f"{_P}.hooks.tableflow"]},
        ],
        "operators": [
            {"integration-name": "Flow runs", "python-modules": [f"{_P}.operators.base"]},
            {"integration-name": "LiveRamp Clean Room (Habu)", "python-modules": [f"{_P}.operators.habu"]},
            {"integration-name": "Amperity", "python-modules": [f"{_P}.operators.amperity"]},
            {"integration-name": "Tableflow", "python-modules": [f"{_P}.operators.tableflow"]},
            {
                "integration-name": "Activepieces",
                "python-modules": [f"{_P}.operators.activepieces", f"{_P}.operators.activepieces_bulk"],
            },
        ],
        "sensors": [
            {"integration-name": "Flow runs", "python-modules": [f"{_P}.sensors.base"]},
            {"integration-name": "LiveRamp Clean Room (Habu)", "python-modules": [f"{_P}.sensors.habu"]},
            {"integration-name": "Amperity", "python-modules": [f"{_P}.sensors.amperity"]},
            {"integration-name": "Tableflow", "python-modules": [f"{_P}.sensors.tableflow"]},
            {"integration-name": "Activepieces", "python-modules": [f"{_P}.sensors.activepieces"]},
        ],
        "triggers": [{"integration-name": "Flow runs", "python-modules": [f"{_P}.triggers.run"]}],
        "transfers": [
            {
                "source-integration-name": "LiveRamp Clean Room (Habu)",
                "target-integration-name": "Object storage",
                "python-module": f"{_P}.transfers.habu",
            },
            {
                "source-integration-name": "Tableflow",
                "target-integration-name": "Object storage",
                "python-module": f"{_P}.transfers.tableflow",
            },
            {
                "source-integration-name": "Activepieces",
                "target-integration-name": "Object storage",
                "python-module": f"{_P}.transfers.activepieces",
            },
        ],
        "connection-types": CONNECTION_TYPES,
        "config": {
            "flowruns": {
                "description": "Deployment-wide defaults for flow-run operators and sensors.",
                "options": {
                    "token_lock_dir": {
                        "description": "Directory for the lock files that keep processes on one host from "
                        "minting rationed OAuth tokens (Habu: 2 a day) at the same time. Default: "
                        "<tempdir>/airflow-flowruns-locks.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/var/lib/airflow/flowruns-locks",
                        "default": None,
                    },
                    "async_transport": {
                        "description": "What carries the triggerer's (async) requests: auto (aiohttp when "
                        "it is installed, e.g. with the provider's aiohttp extra; about a third of httpx's "
                        "own CPU per status poll), aiohttp, or httpx (httpx's own transport, httpcore).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "httpx",
                        "default": "auto",
                    },
                    "download_transport": {
                        "description": "What carries file downloads in tasks: http.client (read straight "
                        "into one reused buffer: a 1 GiB file costs about the CPU curl spends on it; one "
                        "kept-alive connection per host) or httpx (httpx's own transport). httpx still does "
                        "auth, redirects and proxies either way.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "httpx",
                        "default": "http.client",
                    },
                    "first_poll_floor": {
                        "description": "Real seconds from a task deferring to its trigger's first poll, "
                        "whatever the poll interval: a trigger that fires before the scheduler recorded "
                        "the deferral gets the task failed or retried (apache/airflow#67287; up to 5.25 s "
                        "measured). dag.test() has no scheduler to race and may use 0.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "10",
                        "default": "10",
                    },
                    **{
                        f"{vendor}_poll_interval": {
                            "description": f"Default seconds between {vendor} status checks when a task sets none; "
                            "never below the vendor's floor.",
                            "version_added": "0.1.0",
                            "type": "float",
                            "example": str(example),
                            "default": None,
                        }
                        for vendor, example in (
                            ("habu", 900),
                            ("amperity", 60),
                            ("activepieces", 15),
                            ("tableflow", 30),
                        )
                    },
                },
            }
        },
        "extra-links": [
            f"{_P}.links.FlowRunLink",
            f"{_P}.links.HabuRunLink",
            f"{_P}.links.AmperityRunLink",
            f"{_P}.links.ActivepiecesRunLink",
            f"{_P}.links.TableflowRunLink",
        ],
    }

"""Provider metadata for Airflow's ``ProvidersManager`` (entry point ``apache_airflow_provider``).

Built from the vendor records (``vendors/__init__.py``): each vendor's connection type and form
(``ui-field-behaviour`` + ``conn-fields``, read by Airflow 3.2+ without importing our hooks), its
integration, hook, operator, sensor and transfer modules, and its ``<conn_type>_poll_interval``
option. Nothing here is written per vendor; this module imports no Airflow.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_flowruns import __version__
from airflow_provider_flowruns.core.vendor import Vendor
from airflow_provider_flowruns.vendors import ALL

_P = "airflow_provider_flowruns"
#: The integration the shared bases, the trigger and the link belong to.
_ENGINE = "Flow runs"


def _connection_type(vendor: Vendor) -> dict[str, Any]:
    return {
        "connection-type": vendor.conn_type,
        "hook-class-name": vendor.hook,
        "hook-name": vendor.display_name,
        "ui-field-behaviour": vendor.form.ui_field_behaviour(),
        "conn-fields": vendor.form.conn_fields(),
    }


def _modules(section: str) -> list[dict[str, Any]]:
    """``operators``/``sensors`` entries: the engine's base module, then each vendor's."""
    entries = [{"integration-name": _ENGINE, "python-modules": [f"{_P}.{section}.base"]}]
    for vendor in ALL:
        if getattr(vendor, section):
            entries.append(
                {"integration-name": vendor.display_name, "python-modules": list(getattr(vendor, section))}
            )
    return entries


CONNECTION_TYPES: list[dict[str, Any]] = [_connection_type(v) for v in ALL]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-flowruns",
        "name": "Flow Runs (Habu, Amperity, Activepieces, Tableflow)",
        "description": "Trigger, wait for, steer and collect vendor flow runs from Airflow DAGs.",
        "versions": [__version__],
        "integrations": [{"integration-name": v.display_name, "external-doc-url": v.docs_url} for v in ALL],
        "hooks": [{"integration-name": v.display_name, "python-modules": [v.hook_module]} for v in ALL],
        "operators": _modules("operators"),
        "sensors": _modules("sensors"),
        "triggers": [{"integration-name": _ENGINE, "python-modules": [f"{_P}.triggers.run"]}],
        "transfers": [
            {
                "source-integration-name": v.display_name,
                "target-integration-name": "Object storage",
                "python-module": module,
            }
            for v in ALL
            for module in v.transfers
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
                        f"{v.conn_type}_poll_interval": {
                            "description": f"Default seconds between {v.name} status checks when a task sets "
                            f"none (default {v.default_poll_interval:g}); never below the vendor's floor "
                            f"({v.poll_floor:g}).",
                            "version_added": "0.1.0",
                            "type": "float",
                            "example": f"{v.default_poll_interval:g}",
                            "default": None,
                        }
                        for v in ALL
                    },
                },
            }
        },
        # One link class: each operator's button is a FlowRunLink named from its vendor's record.
        "extra-links": [f"{_P}.links.FlowRunLink"],
    }

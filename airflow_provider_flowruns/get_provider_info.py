"""Provider metadata for Airflow's ``ProvidersManager`` (entry point ``apache_airflow_provider``).

Connection forms are declared here (``ui-field-behaviour`` + ``conn-fields``, Airflow 3.2+), so the
API server renders them without importing our hooks.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_flowruns import __version__

_P = "airflow_provider_flowruns"


def _str_field(label: str, description: str) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"]}}


def _num_field(label: str, description: str) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": ["number", "null"]}}


_MAX_RPS = _num_field(
    "Max requests/second", "Request rate to stay under, per connection and process (sent at 90 % of it)."
)

CONNECTION_TYPES: list[dict[str, Any]] = [
    {
        "connection-type": "habu",
        "hook-class-name": f"{_P}.hooks.habu.HabuHook",
        "hook-name": "LiveRamp Clean Room (Habu)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "extra"],
            "relabeling": {"host": "API base URL", "login": "Client ID", "password": "Client secret"},
            "placeholders": {"host": "https://api.habu.com/v1", "login": "API user client id"},
        },
        "conn-fields": {},
    },
    {
        "connection-type": "amperity",
        "hook-class-name": f"{_P}.hooks.amperity.AmperityHook",
        "hook-name": "Amperity",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {
                "host": "API base URL",
                "login": "OAuth client ID (client credentials only)",
                "password": "API token or OAuth client secret",
            },
            "placeholders": {"host": "https://app.amperity.com/api"},
        },
        "conn-fields": {
            "tenant": _str_field("Tenant", "Amperity tenant id, sent as the amperity-tenant header."),
            "api_version": _str_field("API version", "Sent as api-version; default 2024-04-01."),
            "auth": _str_field("Auth", "'token' (default) or 'client_credentials'."),
            "ui_run_url_template": _str_field(
                "Run URL template", "Optional link to a run, with {tenant} and {run_id} placeholders."
            ),
            "max_rps": _MAX_RPS,
        },
    },
    {
        "connection-type": "activepieces",
        "hook-class-name": f"{_P}.hooks.activepieces.ActivepiecesHook",
        "hook-name": "Activepieces",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login"],
            "relabeling": {"host": "API base URL", "password": "Platform API key"},
            "placeholders": {"host": "https://cloud.activepieces.com/api"},
        },
        "conn-fields": {
            "project_id": _str_field("Project ID", "The project whose flow runs this connection manages."),
            "max_rps": _MAX_RPS,
        },
    },
    {
        "connection-type": "tableflow",
        "hook-class-name": f"{_P}.hooks.tableflow.TableflowHook",
        "hook-name": "Tableflow",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login"],
            "relabeling": {"host": "API base URL", "password": "API key"},
            "placeholders": {"host": "https://api.tableflow.com/v2"},
        },
        "conn-fields": {"max_rps": _MAX_RPS},
    },
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

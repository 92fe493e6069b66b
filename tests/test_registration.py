"""The provider is visible to Airflow: entry point, ProvidersManager, CLI, class paths, conn types."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_flowruns.get_provider_info import get_provider_info

INFO = get_provider_info()


def _import(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_entry_point_is_declared():
    eps = importlib.metadata.entry_points(group="apache_airflow_provider")
    ours = [ep for ep in eps if ep.value.startswith("airflow_provider_flowruns")]
    assert len(ours) == 1 and ours[0].load()() == INFO


def test_provider_info_matches_airflows_schema():
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(INFO, schema)


def test_every_declared_module_and_class_imports():
    for section in ("hooks", "operators", "sensors", "triggers", "transfers"):
        for entry in INFO[section]:
            for module in entry.get("python-modules") or [entry["python-module"]]:
                importlib.import_module(module)
    for path in INFO["extra-links"]:
        assert _import(path).name
    for conn in INFO["connection-types"]:
        hook = _import(conn["hook-class-name"])
        assert hook.conn_type == conn["connection-type"]
        assert hook.default_conn_name == f"{conn['connection-type']}_default"


def test_providers_manager_sees_package_and_hooks():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert "airflow-provider-flowruns" in pm.providers
    for conn_type in ("habu", "amperity", "activepieces", "tableflow"):
        hook_info = pm.hooks[conn_type]
        assert hook_info is not None
        assert hook_info.package_name == "airflow-provider-flowruns"
        assert _import(hook_info.hook_class_name).conn_type == conn_type


@pytest.mark.parametrize("command", ["list", "hooks", "links"])
def test_airflow_cli_lists_us(command):
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", command, "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    ).stdout
    data = json.loads(out[out.index("[") :])
    text = json.dumps(data)
    if command == "list":
        assert any(p["package_name"] == "airflow-provider-flowruns" for p in data)
    elif command == "hooks":
        assert all(t in text for t in ("habu", "amperity", "activepieces", "tableflow"))
    else:
        assert "airflow_provider_flowruns.links.FlowRunLink" in text

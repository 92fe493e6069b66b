"""Connection forms as the running Airflow's own UI service serves them (``/ui/connections/hook_meta``).

Airflow 3.2+ builds them from provider info, Airflow 3.1 from the hooks' classmethods; ``make test``
runs this file on both, against the same expectations, so the two paths cannot drift apart.
The service runs in a fresh interpreter, as in the API server: it patches WTForms with its own
stand-ins and caches the providers it loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_flowruns import forms
from airflow_provider_flowruns.hooks.activepieces import ActivepiecesHook
from airflow_provider_flowruns.hooks.amperity import AmperityHook
from airflow_provider_flowruns.hooks.habu import HabuHook
from airflow_provider_flowruns.hooks.tableflow import TableflowHook
from airflow_provider_flowruns.testing.demo import DemoHook

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [HabuHook, AmperityHook, ActivepiecesHook, TableflowHook, DemoHook]

PROBE = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
print("HOOK_META=" + json.dumps({m.connection_type: m.model_dump() for m in HookMetaService.hook_meta_data()}))
"""


@pytest.fixture(scope="module")
def hook_meta() -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("HOOK_META="))
    return dict(json.loads(line.removeprefix("HOOK_META=")))


def _shown(meta: dict[str, Any]) -> dict[str, Any]:
    """What a person sees: each standard field's label/placeholder or hidden, and each extra field's
    label, type, choices, default and description."""
    standard = {
        name: ("hidden" if f["hidden"] else (f["title"], f["placeholder"]))
        for name, f in (meta["standard_fields"] or {}).items()
        if f
    }
    extras = {
        name: {
            "label": f["schema"].get("title"),
            "type": f["schema"].get("type"),
            "enum": f["schema"].get("enum"),
            "value": f["value"],
            "description": f["description"],
        }
        for name, f in (meta["extra_fields"] or {}).items()
    }
    return {"standard": standard, "extras": extras}


def _declared(form: forms.Form) -> dict[str, Any]:
    standard: dict[str, Any] = {}
    for name, key in [("host", "host"), ("port", "port"), ("login", "login"), ("password", "password")]:
        if name in form.hidden:
            standard[key] = "hidden"
        elif name in form.labels or name in form.placeholders:
            standard[key] = (form.labels.get(name), form.placeholders.get(name))  # type: ignore[call-overload]
    if "schema" in form.hidden:
        standard["url_schema"] = "hidden"
    extras = {
        name: {
            "label": f.label,
            "type": f.schema()["type"],
            "enum": list(f.choices) or None,
            "value": f.default,
            "description": f.description,
        }
        for name, f in form.extras.items()
    }
    return {"standard": standard, "extras": extras}


@pytest.mark.parametrize("conn_type", sorted(forms.FORMS))
def test_the_ui_serves_the_declared_form(hook_meta, conn_type):
    assert _shown(hook_meta[conn_type]) == _declared(forms.FORMS[conn_type])


def test_what_the_forms_say(hook_meta):
    """The facts people asked for, spelled out (issue 18 item 4), on this Airflow version."""
    amperity = hook_meta["amperity"]["extra_fields"]
    assert amperity["tenant"]["schema"]["type"] == "string"  # no "null": the UI marks it required
    assert amperity["auth"]["schema"]["enum"] == ["token", "client_credentials"]
    assert amperity["auth"]["value"] == "token"
    assert hook_meta["activepieces"]["extra_fields"]["project_id"]["schema"]["type"] == "string"
    habu = hook_meta["habu"]
    assert habu["extra_fields"]["creates_per_hour"]["schema"] == {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": 20,
        "title": "Creates per hour",
    }
    mints = habu["extra_fields"]["test_connection_mints"]
    assert mints["schema"] == {
        "type": ["boolean", "null"],
        "default": False,
        "title": "Test Connection may spend a token",
    }
    assert mints["value"] is False  # off unless a person turns it on
    assert "spends one of the two tokens Habu issues this API user per day" in mints["description"]
    assert habu["standard_fields"]["login"] == {
        "hidden": False,
        "title": "Client ID",
        "placeholder": "API user client id",
    }
    assert hook_meta["flowruns_demo"]["hook_class_name"] == "airflow_provider_flowruns.testing.demo.DemoHook"
    for conn_type in ("habu", "amperity", "activepieces", "tableflow"):
        assert hook_meta[conn_type]["standard_fields"]["url_schema"]["hidden"] is True


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h.conn_type)
def test_hooks_carry_the_form_for_airflow_3_1(hook):
    """Airflow 3.1 reads only classmethods defined on the hook class itself, not inherited ones."""
    assert "get_ui_field_behaviour" in hook.__dict__
    assert "get_connection_form_widgets" in hook.__dict__
    form = forms.FORMS[hook.conn_type]
    assert hook.get_ui_field_behaviour() == {
        "hidden_fields": list(form.hidden),
        "relabeling": dict(form.labels),
        "placeholders": dict(form.placeholders),
    }
    assert form.ui_field_behaviour() == {
        "hidden-fields": list(form.hidden),
        "relabeling": dict(form.labels),
        "placeholders": dict(form.placeholders),
    }

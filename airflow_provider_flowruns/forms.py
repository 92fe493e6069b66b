"""Each connection type's form, declared once, for every Airflow the provider supports.

Airflow 3.2+ reads a form from provider info (``ui-field-behaviour`` and ``conn-fields``) without
importing the hook; Airflow 3.1 reads it only from the hook's ``get_ui_field_behaviour()`` and
``get_connection_form_widgets()`` classmethods. Both are derived here from one :class:`Form`, so the
UI shows the same fields, labels, placeholders, choices and required markers on either version
(``tests/test_forms.py`` compares what each Airflow's own UI service makes of them).

The UI marks an extra field required when its JSON-schema type does not allow ``null``, and shows a
select for an ``enum``. This module imports nothing heavy: the API server loads it with provider info.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

FieldType = Literal["string", "integer", "number", "boolean"]
StandardField = Literal["host", "schema", "login", "password", "port"]


@dataclass(frozen=True)
class ExtraField:
    """One field of the connection's extra JSON, shown under "Extra Fields"."""

    label: str
    description: str
    type: FieldType = "string"
    required: bool = False
    choices: tuple[str, ...] = ()
    default: str | int | float | bool | None = None
    minimum: float | None = None
    maximum: float | None = None

    def schema(self) -> dict[str, Any]:
        """The field's JSON schema, as Airflow's UI reads it (``title`` is the label)."""
        out: dict[str, Any] = {"type": self.type if self.required else [self.type, "null"]}
        if self.choices:
            out["enum"] = list(self.choices)
        if self.default is not None:
            out["default"] = self.default
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass(frozen=True)
class Form:
    """A connection type's form: which standard fields show, how they are labelled, and the extras."""

    hidden: tuple[StandardField, ...]
    labels: dict[StandardField, str]
    placeholders: dict[StandardField, str] = field(default_factory=dict)
    extras: dict[str, ExtraField] = field(default_factory=dict)

    # -- Airflow 3.2+: provider info --------------------------------------------------------------
    def ui_field_behaviour(self) -> dict[str, Any]:
        """Provider info's ``ui-field-behaviour``."""
        return {
            "hidden-fields": list(self.hidden),
            "relabeling": dict(self.labels),
            "placeholders": dict(self.placeholders),
        }

    def conn_fields(self) -> dict[str, Any]:
        """Provider info's ``conn-fields``."""
        return {
            name: {"label": f.label, "description": f.description, "schema": f.schema()}
            for name, f in self.extras.items()
        }

    # -- Airflow 3.1: the hook classmethods ---------------------------------------------------------
    def field_behaviour(self) -> dict[str, Any]:
        """What ``get_ui_field_behaviour()`` returns (the same facts, Python-style keys)."""
        return {
            "hidden_fields": list(self.hidden),
            "relabeling": dict(self.labels),
            "placeholders": dict(self.placeholders),
        }

    def form_widgets(self) -> dict[str, Any]:
        """What ``get_connection_form_widgets()`` returns.

        Airflow 3.1's UI service builds these with its stand-ins for WTForms' field classes (each
        keeps a ``Param`` whose schema the UI reads), but those stand-ins make every field optional
        and know no number type; so the widget's schema is replaced by the declared one. Under real
        WTForms (no ``param``) the fields are plain labelled inputs, which is all WTForms can show.
        """
        from wtforms import BooleanField, IntegerField, StringField  # imported late: 3.1 patches these

        classes = {"integer": IntegerField, "boolean": BooleanField}
        widgets: dict[str, Any] = {}
        for name, f in self.extras.items():
            widget = classes.get(f.type, StringField)(f.label, description=f.description, default=f.default)
            param = getattr(widget, "param", None)
            if param is not None:
                param.schema = {**f.schema(), "title": f.label}
            widgets[name] = widget
        return widgets


_MAX_RPS = ExtraField(
    "Max requests/second",
    "Request rate to stay under, per connection and process (sent at 90 % of it).",
    type="number",
)
#: Amperity's and the demo's ``auth`` extra: a bearer token, or OAuth client credentials.
#: Declared here (this module imports nothing of Airflow: provider discovery loads it); the hook's
#: check and the operators' types use the same Literal (vendors/amperity.py).
AmperityAuth = Literal["token", "client_credentials"]
AUTH_CHOICES: tuple[AmperityAuth, ...] = get_args(AmperityAuth)

HABU = Form(
    hidden=("schema", "port"),
    labels={"host": "API base URL", "login": "Client ID", "password": "Client secret"},
    placeholders={"host": "https://api.habu.com/v1", "login": "API user client id"},
    extras={
        "creates_per_hour": ExtraField(
            "Creates per hour",
            "Question and flow runs this deployment may create per hour with this API user "
            "(Habu allows 20); lower it to leave room for other systems using the same user.",
            type="integer",
            minimum=1,
            maximum=20,
        ),
        "test_connection_mints": ExtraField(
            "Test Connection may spend a token",
            "Off (default): the Test button only reuses a token this deployment already holds, and "
            "says so when none is cached. On: with none cached, the test mints one, which spends one "
            "of the two tokens Habu issues this API user per day.",
            type="boolean",
            default=False,
        ),
    },
)

AMPERITY = Form(
    hidden=("schema", "port"),
    labels={
        "host": "API base URL",
        "login": "OAuth client ID (client credentials only)",
        "password": "API token or OAuth client secret",
    },
    placeholders={"host": "https://app.amperity.com/api"},
    extras={
        "tenant": ExtraField(
            "Tenant", "Amperity tenant id, sent as the amperity-tenant header.", required=True
        ),
        "auth": ExtraField(
            "Auth",
            "token: the password is a UI-issued API token; client_credentials: login and password "
            "are an OAuth client id and secret.",
            required=True,
            choices=AUTH_CHOICES,
            default="token",
        ),
        "api_version": ExtraField("API version", "Sent as api-version; default 2024-04-01."),
        "ui_run_url_template": ExtraField(
            "Run URL template", "Optional link to a run, with {tenant} and {run_id} placeholders."
        ),
        "max_rps": _MAX_RPS,
    },
)

ACTIVEPIECES = Form(
    hidden=("schema", "port", "login"),
    labels={"host": "API base URL", "password": "Platform API key"},
    placeholders={"host": "https://cloud.activepieces.com/api"},
    extras={
        "project_id": ExtraField(
            "Project ID", "The project whose flow runs this connection manages.", required=True
        ),
        "max_rps": _MAX_RPS,
    },
)

TABLEFLOW = Form(
    hidden=("schema", "port", "login"),
    labels={"host": "API base URL", "password": "API key"},
    placeholders={"host": "https://api.tableflow.com/v2"},
    extras={"max_rps": _MAX_RPS},
)

#: The demo emulator's type (``testing/demo.py``), registered so the README's ten-line DAG's
#: connection can be made in the UI too.
# --8<-- [start:form]
DEMO = Form(
    hidden=("schema", "port"),
    labels={
        "host": "Emulator API URL",
        "login": "Client ID (client credentials only)",
        "password": "Token or client secret",
    },
    placeholders={"host": "http://127.0.0.1:8765/demo/v1"},
    extras={
        "auth": ExtraField(
            "Auth",
            "token: the password is a bearer token; client_credentials: login and password are a "
            "client id and secret.",
            required=True,
            choices=AUTH_CHOICES,
            default="token",
        ),
    },
)
# --8<-- [end:form]

#: Connection type -> form.
FORMS: dict[str, Form] = {
    "habu": HABU,
    "amperity": AMPERITY,
    "activepieces": ACTIVEPIECES,
    "tableflow": TABLEFLOW,
    "flowruns_demo": DEMO,
}

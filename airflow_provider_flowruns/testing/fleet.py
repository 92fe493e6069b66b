"""Every vendor's emulator, each at a useful speed, plus the Airflow connections and Variables that
point the example DAGs at them. ``make demo`` and the end-to-end tests both start from here.

Speeds: the demo vendor in real time; Amperity and Activepieces 10x; Tableflow 2x; Habu 600x, with
``emulator_time_scale`` on its connection so its 5-minute poll floor and hourly windows shrink the
same way (an emulated week of clean-room work takes seconds, the limits still hold).
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_provider_flowruns.testing.process import EmulatorProcess

SPEEDS: dict[str, float] = {"demo": 1, "amperity": 10, "activepieces": 10, "tableflow": 2, "habu": 600}
EXAMPLE_DAGS = (
    "example_flowruns_demo",
    "example_amperity_nightly",
    "example_habu_weekly_flow",
    "example_tableflow_invoices",
    "example_activepieces_approval",
)
ACTIVEPIECES_PROJECT = "projAcme0000000000000"


class EmulatorFleet:
    """``with EmulatorFleet(workdir) as fleet: fleet.env`` - the Airflow environment for the examples.

    :param secret: one credential for every vendor (client secrets, API keys), so a leak scan has a
        single sentinel to look for; default: each emulator's built-in credential.
    :param speeds: per-vendor overrides of :data:`SPEEDS` (Habu's connection follows its speed).
    """

    def __init__(
        self, workdir: Path, *, secret: str | None = None, speeds: dict[str, float] | None = None
    ) -> None:
        self.workdir = workdir
        self.secret = secret
        self.speeds = {**SPEEDS, **(speeds or {})}
        self.emulators: dict[str, EmulatorProcess] = {}
        self._stack = ExitStack()
        self.env: dict[str, str] = {}

    def __enter__(self) -> EmulatorFleet:
        overrides = {}
        if self.secret:
            for name in ("DEMO_CLIENT_SECRET", "AMPERITY_CLIENT_SECRET", "HABU_CLIENT_SECRET"):
                overrides[f"FLOWRUNS_{name}"] = self.secret
            overrides["FLOWRUNS_TABLEFLOW_API_KEY"] = self.secret
            overrides["FLOWRUNS_ACTIVEPIECES_API_KEY"] = self.secret
        try:
            for vendor, speed in self.speeds.items():
                self.emulators[vendor] = self._stack.enter_context(
                    EmulatorProcess([vendor], speed=speed, env=overrides)
                )
            self.env = self._airflow_env()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    # -- what the example DAGs need --------------------------------------------------------------------
    def _secret(self, default: str) -> str:
        return self.secret or default

    def _airflow_env(self) -> dict[str, str]:
        emu = self.emulators
        inbox = self.workdir / "invoices"
        inbox.mkdir(parents=True, exist_ok=True)
        for name in ("invoice-1001.pdf", "invoice-1002.pdf"):
            (inbox / name).write_bytes(b"%PDF-1.4\n" + os.urandom(20_000))
        connections = {
            "flowruns_demo_default": {
                "conn_type": "flowruns_demo",
                "host": emu["demo"].url("demo", "/v1"),
                "login": "demo-client",
                "password": self._secret("demo-secret"),
                "extra": {"auth": "client_credentials"},
            },
            "amperity_default": {
                "conn_type": "amperity",
                "host": emu["amperity"].url("amperity", "/api"),
                "login": "amperity-client",
                "password": self._secret("amperity-secret"),
                "extra": {"tenant": "acme", "auth": "client_credentials"},
            },
            "habu_default": {
                "conn_type": "habu",
                "host": emu["habu"].url("habu", "/v1"),
                "login": "habu-client",
                "password": self._secret("habu-secret"),
                "extra": {"emulator_time_scale": self.speeds["habu"]},
            },
            "tableflow_default": {
                "conn_type": "tableflow",
                "host": emu["tableflow"].url("tableflow", "/v2"),
                "password": self._secret("tableflow-key"),
            },
            "activepieces_default": {
                "conn_type": "activepieces",
                "host": emu["activepieces"].url("activepieces", "/api"),
                "password": self._secret("activepieces-key"),
                "extra": {"project_id": ACTIVEPIECES_PROJECT},
            },
        }
        env = {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(conn) for cid, conn in connections.items()}
        env.update(
            {
                # Only the runs we trigger: unpausing a DAG must not add its latest interval, which
                # would race the triggered run for the same inbox and emulated state.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__FLOWRUNS__AMPERITY_POLL_INTERVAL": "10",
                "AIRFLOW__FLOWRUNS__ACTIVEPIECES_POLL_INTERVAL": "5",
                "AIRFLOW__FLOWRUNS__TABLEFLOW_POLL_INTERVAL": "10",
                "AIRFLOW_VAR_FLOWRUNS_DEMO_OUTPUT": str(self.workdir / "demo"),
                "AIRFLOW_VAR_HABU_REPORT_DIR": str(self.workdir / "habu"),
                "AIRFLOW_VAR_TABLEFLOW_INBOX": str(inbox),
            }
        )
        return env

    # -- what the vendors saw ----------------------------------------------------------------------------
    def stats(self, vendor: str) -> dict[str, Any]:
        return dict(self.emulators[vendor].stats()["vendors"][vendor])

    def minted_tokens(self) -> list[str]:
        return [t for vendor in self.emulators for t in self.stats(vendor).get("minted_tokens", [])]

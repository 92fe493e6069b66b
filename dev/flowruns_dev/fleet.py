"""Every vendor's emulator, each at a useful speed, plus the Airflow connections and Variables that
point the example DAGs at them. ``make demo`` and the end-to-end tests both start from here.

Speeds: the demo vendor in real time; Amperity and Activepieces 10x; Tableflow 2x; Habu 600x, with
``emulator_time_scale`` on its connection so its 5-minute poll floor and hourly windows shrink the
same way (an emulated week of clean-room work takes seconds, the limits still hold).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_provider_flowruns.testing.process import EmulatorProcess
from flowruns_dev.airflow_stack import AirflowStack

SPEEDS: dict[str, float] = {"demo": 1, "amperity": 10, "activepieces": 10, "tableflow": 2, "habu": 600}
EXAMPLE_DAGS = (
    "example_flowruns_demo",
    "example_amperity_nightly",
    "example_habu_weekly_flow",
    "example_tableflow_invoices",
    "example_activepieces_approval",
    "example_flowruns_pipeline",
)
#: Example DAGs run over a window of intervals (their catchup) instead of one triggered run. The
#: fleet's Airflow does not create interval runs by itself (``USE_JOB_SCHEDULE`` is off, see below),
#: so the window is created as a backfill: the same runs, one per interval.
CATCHUP_WINDOWS: dict[str, tuple[str, str]] = {"example_flowruns_pipeline": ("2026-01-01", "2026-01-02")}
ACTIVEPIECES_PROJECT = "projAcme0000000000000"


class EmulatorFleet:
    """``with EmulatorFleet(workdir) as fleet: fleet.env`` - the Airflow environment for the examples.

    :param secret: one credential for every vendor (client secrets, API keys), so a leak scan has a
        single sentinel to look for; default: each emulator's built-in credential.
    :param speeds: per-vendor emulator speeds overriding :data:`SPEEDS`; every vendor whose speed is
        overridden also gets ``emulator_time_scale`` on its connection, so its poll interval shrinks
        with its clock (fault and load tests run minutes of vendor time in seconds).
    :param vendors: the emulators to start (default: all of :data:`SPEEDS`).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        secret: str | None = None,
        speeds: Mapping[str, float] | None = None,
        vendors: tuple[str, ...] | None = None,
    ) -> None:
        self.workdir = workdir
        self.secret = secret
        self.speeds = {**SPEEDS, **(speeds or {})}
        self.vendors = vendors or tuple(SPEEDS)
        self.scaled = {"habu", *(speeds or {})}
        self.emulators: dict[str, EmulatorProcess] = {}
        self._stack = ExitStack()
        self.env: dict[str, str] = {}

    def __enter__(self) -> EmulatorFleet:
        # A Habu token lives a week of emulated time (17 real minutes at 600x), so one token serves
        # a whole demo or end-to-end run however slow the machine: tests can then prove that every
        # worker and the triggerer shared it (the vendor's default day is 2.4 real minutes here).
        overrides = {"FLOWRUNS_HABU_TOKEN_LIFETIME": str(7 * 86400)}
        if self.secret:
            for name in ("DEMO_CLIENT_SECRET", "AMPERITY_CLIENT_SECRET", "HABU_CLIENT_SECRET"):
                overrides[f"FLOWRUNS_{name}"] = self.secret
            overrides["FLOWRUNS_TABLEFLOW_API_KEY"] = self.secret
            overrides["FLOWRUNS_ACTIVEPIECES_API_KEY"] = self.secret
        try:
            for vendor in self.vendors:
                self.emulators[vendor] = self._stack.enter_context(
                    EmulatorProcess([vendor], speed=self.speeds[vendor], env=overrides)
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

    def _url(self, vendor: str, suffix: str) -> str:
        # A vendor left out of ``vendors`` gets an unroutable URL: its connection exists but fails fast.
        emulator = self.emulators.get(vendor)
        return emulator.url(vendor, suffix) if emulator else f"http://127.0.0.1:9/{vendor}{suffix}"

    def _extra(self, vendor: str, **extra: Any) -> dict[str, Any]:
        if vendor in self.scaled and self.speeds[vendor] > 1:
            extra["emulator_time_scale"] = self.speeds[vendor]
        return extra

    def _airflow_env(self) -> dict[str, str]:
        inbox = self.workdir / "invoices"
        inbox.mkdir(parents=True, exist_ok=True)
        for name in ("invoice-1001.pdf", "invoice-1002.pdf"):
            (inbox / name).write_bytes(b"%PDF-1.4\n" + os.urandom(20_000))
        connections = {
            "flowruns_demo_default": {
                "conn_type": "flowruns_demo",
                "host": self._url("demo", "/v1"),
                "login": "demo-client",
                "password": self._secret("demo-secret"),
                "extra": self._extra("demo", auth="client_credentials"),
            },
            "amperity_default": {
                "conn_type": "amperity",
                "host": self._url("amperity", "/api"),
                "login": "amperity-client",
                "password": self._secret("amperity-secret"),
                "extra": self._extra("amperity", tenant="acme", auth="client_credentials"),
            },
            "habu_default": {
                "conn_type": "habu",
                "host": self._url("habu", "/v1"),
                "login": "habu-client",
                "password": self._secret("habu-secret"),
                "extra": self._extra("habu"),
            },
            "tableflow_default": {
                "conn_type": "tableflow",
                "host": self._url("tableflow", "/v2"),
                "password": self._secret("tableflow-key"),
                "extra": self._extra("tableflow"),
            },
            "activepieces_default": {
                "conn_type": "activepieces",
                "host": self._url("activepieces", "/api"),
                "password": self._secret("activepieces-key"),
                "extra": self._extra("activepieces", project_id=ACTIVEPIECES_PROJECT),
            },
        }
        env = {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(conn) for cid, conn in connections.items()}
        env.update(
            {
                # Only the runs we trigger: unpausing a DAG must not add its latest interval, which
                # would race the triggered run for the same inbox and emulated state.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                # Test Connection (UI button, REST, CLI) is off unless a deployment enables it.
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__FLOWRUNS__AMPERITY_POLL_INTERVAL": "10",
                "AIRFLOW__FLOWRUNS__ACTIVEPIECES_POLL_INTERVAL": "5",
                "AIRFLOW__FLOWRUNS__TABLEFLOW_POLL_INTERVAL": "10",
                "AIRFLOW_VAR_FLOWRUNS_DEMO_OUTPUT": str(self.workdir / "demo"),
                "AIRFLOW_VAR_HABU_REPORT_DIR": str(self.workdir / "habu"),
                "AIRFLOW_VAR_TABLEFLOW_INBOX": str(inbox),
                "AIRFLOW_VAR_PIPELINE_REPORT_DIR": str(self.workdir / "pipeline"),
            }
        )
        return env

    # -- what the vendors saw ----------------------------------------------------------------------------
    def stats(self, vendor: str) -> dict[str, Any]:
        return dict(self.emulators[vendor].stats()["vendors"][vendor])

    def minted_tokens(self) -> list[str]:
        return [t for vendor in self.emulators for t in self.stats(vendor).get("minted_tokens", [])]


def start_example_runs(stack: AirflowStack) -> list[tuple[str, str]]:
    """Start every example DAG on ``stack``: (dag id, run id) of each run, catchup windows included.

    Each DAG is triggered through the REST API without a logical date, as Airflow 3 triggers by
    default (CLI, REST, UI); a DAG with a catchup window also runs its intervals, as scheduled.
    """
    runs: list[tuple[str, str]] = []
    for dag in EXAMPLE_DAGS:
        if dag in CATCHUP_WINDOWS:
            runs += [(dag, run_id) for run_id in stack.backfill(dag, *CATCHUP_WINDOWS[dag])]
        runs.append((dag, stack.trigger(dag, without_logical_date=True)))
    return runs

"""A minimal dbt-Cloud-shaped run API: just enough for ``DbtCloudRunJobTrigger`` to poll.

It exists for one reason: the triggerer-density benchmark runs 1,000 of dbt Cloud's own triggers
side by side with ours, against the same server, clock and run durations. Only the two routes the
trigger path needs are here (trigger a job run, get a run), in dbt Cloud's v2 shapes; the run's
``duration`` in the trigger body is an emulator extension, as on the demo API.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Header

from airflow_provider_flowruns.testing.progression import Progression
from airflow_provider_flowruns.testing.server import VendorEmulator, VendorError

API_TOKEN = "dbt-token"
#: dbt Cloud's numeric run statuses (``DbtCloudJobRunStatus``).
STATUS_CODES = {"QUEUED": 1, "STARTING": 2, "RUNNING": 3, "SUCCESS": 10, "ERROR": 20, "CANCELLED": 30}


@dataclass
class DbtRun:
    id: int
    account_id: int
    job_id: int
    created_at: float
    progression: Progression


class DbtCloudEmulator(VendorEmulator):
    name = "dbtcloud"

    def reset(self) -> None:
        super().reset()
        self.runs: dict[int, DbtRun] = {}
        self._ids = itertools.count(70_000_001)

    def __init__(self, clock: Any) -> None:
        super().__init__(clock)
        self.reset()

    def error_body(self, status: int, message: str, code: str | None = None) -> dict[str, Any]:
        return {"status": {"code": status, "is_success": False, "user_message": message}, "data": None}

    def _authorize(self, authorization: str | None) -> None:
        if authorization != f"Token {API_TOKEN}":
            raise VendorError(401, "Invalid token")

    def _view(self, run: DbtRun) -> dict[str, Any]:
        status = run.progression.status_at(self.clock.now() - run.created_at)
        return {
            "status": {"code": 200, "is_success": True},
            "data": {
                "id": run.id,
                "account_id": run.account_id,
                "job_definition_id": run.job_id,
                "status": STATUS_CODES[status],
                "status_humanized": status.title(),
                "href": f"https://cloud.getdbt.com/deploy/{run.account_id}/runs/{run.id}",
            },
        }

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api/v2/accounts")

        @router.post("/{account_id}/jobs/{job_id}/run/")
        async def trigger(
            account_id: int, job_id: int, body: dict[str, Any], authorization: str | None = Header(None)
        ) -> dict[str, Any]:
            self._authorize(authorization)
            duration = float(body.get("duration", 5.0))
            run = DbtRun(
                id=next(self._ids),
                account_id=account_id,
                job_id=job_id,
                created_at=self.clock.now(),
                progression=Progression(
                    [("QUEUED", min(1.0, duration / 5)), ("RUNNING", duration)], "SUCCESS"
                ),
            )
            with self.lock:
                self.runs[run.id] = run
                self.counters["runs_created"] += 1
            return self._view(run)

        @router.get("/{account_id}/runs/{run_id}/")
        async def get_run(
            account_id: int, run_id: int, authorization: str | None = Header(None)
        ) -> dict[str, Any]:
            self._authorize(authorization)
            run = self.runs.get(run_id)
            if run is None or run.account_id != account_id:
                raise VendorError(404, f"run {run_id} not found")
            self.counters["status_polls"] += 1
            return self._view(run)

        return router

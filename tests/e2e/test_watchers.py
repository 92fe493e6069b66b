"""Vendor runs as Airflow asset events, through a real Airflow (API server, scheduler, DAG
processor, triggerer; PostgreSQL): Habu flow runs started directly at the emulator, outside Airflow,
schedule the watching DAG once each - across a triggerer killed and restarted, and a vendor outage."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from flowruns_dev.airflow_stack import AirflowStack
from flowruns_dev.fleet import EmulatorFleet

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "watch_habu_weekly"
CR = "cr-acme"
NODES = {"6f1c1b7e-0001-4000-8000-000000000001": {"START_DATE": "2026-11-16", "END_DATE": "2026-11-23"}}
LISTING = "cleanroom-flows/flow-weekly/cleanroom-flow-runs$"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]


def wait(predicate: Any, timeout: float, what: str, stack: AirflowStack) -> Any:
    return stack.wait_for(predicate, timeout, what)


@pytest.fixture(scope="module")
def watched(tmp_path_factory, monkeypatch_module):
    workdir = tmp_path_factory.mktemp("watch")
    with EmulatorFleet(workdir, vendors=("habu",)) as fleet:
        for key, value in fleet.env.items():
            if key.startswith("AIRFLOW_CONN_"):
                monkeypatch_module.setenv(key, value)
        monkeypatch_module.setenv("AIRFLOW__FLOWRUNS__TOKEN_LOCK_DIR", str(workdir / "locks"))
        # A run that finished before the watcher existed: it must never fire.
        before = start_run("before-deploy")
        wait_finished(fleet, before)
        env = {**fleet.env, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"}  # asset-triggered runs
        with AirflowStack(
            "watch", dags_folder=ROOT / "tests" / "e2e" / "watch_dags", root=ROOT, env=env
        ) as stack:
            stack.unpause(DAG_ID)
            # Deployed: the watcher's first listing wrote its cursor.
            wait(lambda: cursor(stack), 240, "the watcher's cursor", stack)
            yield stack, fleet, before


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def start_run(name: str) -> str:
    """A flow run started at the vendor directly, as a partner or the clean-room UI would."""
    from airflow_provider_flowruns.hooks.habu import HabuHook

    return str(HabuHook().create_flow_run(CR, "flow-weekly", name=name, nodes=NODES)["id"])


def wait_finished(fleet: EmulatorFleet, run_id: str) -> None:
    from airflow_provider_flowruns.hooks.habu import HabuHook

    hook = HabuHook()
    deadline = time.monotonic() + 120
    while hook.get_flow_run(CR, run_id)["status"] != "COMPLETED":
        assert time.monotonic() < deadline, f"run {run_id} did not complete at the emulator"
        time.sleep(1)


def cursor(stack: AirflowStack) -> dict[str, Any] | None:
    """The watcher's cursor Variable, read through the REST API (the stored value is encrypted)."""
    rows = stack.query("select key from variable where key like 'flowruns_watch_%'")
    return json.loads(stack.api("GET", f"/variables/{rows[0][0]}")["value"]) if rows else None


def fired_run_ids(stack: AirflowStack) -> list[str]:
    """The vendor run of every asset event the watcher fired (duplicates kept)."""
    rows = stack.query("select extra from asset_event order by id")
    extras = [row[0] if isinstance(row[0], dict) else json.loads(row[0]) for row in rows]
    return [e["payload"]["run_id"] for e in extras if e.get("from_trigger")]


def dag_runs(stack: AirflowStack) -> list[tuple[str, str]]:
    return [
        tuple(r)
        for r in stack.query("select run_id, state from dag_run where dag_id=:d order by id", d=DAG_ID)
    ]


def consumed(stack: AirflowStack) -> list[str]:
    """What each watching DAG run's task says it ran for (the asset events' run ids)."""
    out: list[str] = []
    for run_id, _ in dag_runs(stack):
        stack.wait_for_run_id(run_id, timeout=240)
        out += stack.report(DAG_ID, run_id).xcoms["runs_that_finished.return_value"]
    return out


def test_a_run_started_at_the_vendor_fires_the_watching_dag_once_and_not_again_after_a_restart(watched):
    stack, fleet, before = watched
    first = start_run("partner-1")
    wait(lambda: fired_run_ids(stack), 240, "an asset event", stack)
    wait(lambda: dag_runs(stack), 240, "a DAG run scheduled on the asset", stack)
    assert fired_run_ids(stack) == [first]  # not the run that finished before deployment
    assert consumed(stack) == [first]
    # The watcher recorded the delivery; then the triggerer dies without a goodbye.
    wait(
        lambda: (c := cursor(stack)) and not c["pending"] and first in c["done"],
        120,
        "delivery recorded",
        stack,
    )
    listings = fleet.stats("habu")["run_listings"]
    stack.kill_service("triggerer")
    stack.start_service("triggerer", tag="triggerer-2")
    # The new triggerer has taken the watcher over and listed the runs several times since.
    wait(
        lambda: fleet.stats("habu")["run_listings"] >= listings + 5,
        240,
        "listings by the new triggerer",
        stack,
    )
    assert fired_run_ids(stack) == [first]
    assert len(dag_runs(stack)) == 1
    assert before not in fired_run_ids(stack)


def test_two_finished_runs_fire_two_dag_runs(watched):
    stack, _, _ = watched
    already = len(dag_runs(stack))
    second = start_run("partner-2")
    wait(lambda: len(dag_runs(stack)) > already, 240, "the second run's DAG run", stack)
    third = start_run("partner-3")
    wait(lambda: len(dag_runs(stack)) > already + 1, 240, "the third run's DAG run", stack)
    assert fired_run_ids(stack)[-2:] == [second, third]
    assert consumed(stack)[-2:] == [second, third]


def test_a_vendor_outage_delays_the_event_but_loses_nothing(watched):
    stack, fleet, _ = watched
    already = fired_run_ids(stack)
    fleet.emulators["habu"].add_faults(
        {"kind": "status", "status": 503, "path": LISTING, "method": "GET", "times": 100000}
    )
    during = start_run("during-outage")
    wait_finished(fleet, during)
    wait(
        lambda: fleet.emulators["habu"].stats()["faults_injected"].get("status", 0) >= 3,
        240,
        "refused listings",
        stack,
    )
    assert fired_run_ids(stack) == already  # nothing while the vendor is down
    fleet.emulators["habu"].control("DELETE", "faults")
    wait(lambda: len(fired_run_ids(stack)) > len(already), 300, "the delayed event", stack)
    assert fired_run_ids(stack) == [*already, during]
    wait(lambda: len(dag_runs(stack)) == len(already) + 1, 240, "its DAG run", stack)


def test_events_fired_equal_runs_finished_without_duplicates_and_within_habus_limits(watched):
    stack, fleet, before = watched
    fired = fired_run_ids(stack)
    from airflow_provider_flowruns.hooks.habu import HabuHook

    finished = [
        r["id"]
        for r in HabuHook().list_flow_runs(CR, "flow-weekly")
        if r["status"] == "COMPLETED" and r["id"] != before
    ]
    assert sorted(fired) == sorted(finished)  # events fired == runs finished after deployment
    assert len(fired) == len(set(fired))  # no duplicates
    stats = fleet.stats("habu")
    # Every listing happened at most every 5 vendor minutes: 12 an hour, under the 20 allowed.
    assert stats["polls_too_frequent"] == 0
    print(
        f"\nwatcher: {len(fired)} events for {len(finished)} finished runs, 0 duplicates; "
        f"{stats['run_listings']} listings; tokens minted {stats['tokens_minted']}"
    )

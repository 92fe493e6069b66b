"""The event-driven example DAGs (example_dags/example_event_driven.py) on a real Airflow (API server,
scheduler, DAG processor, triggerer; PostgreSQL), loaded from example_dags as users get them: Habu
flow runs started at the emulator, outside Airflow, one after another, each get exactly one DAG run
of ``example_habu_report_on_partner_run`` and one reach report, and each landed report one DAG run
of ``example_tableflow_after_habu`` and one Tableflow run, scheduled on the report asset whose
event extra says what landed.

Its own stack: test_real_airflow.py's stack creates only the runs it triggers
(``USE_JOB_SCHEDULE`` off), so asset-scheduled DAGs never run there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from flowruns_dev.airflow_stack import AirflowStack
from flowruns_dev.fleet import EmulatorFleet

ROOT = Path(__file__).resolve().parents[2]
CR = "cr-acme"
REPORTS_DAG = "example_habu_report_on_partner_run"
TABLEFLOW_DAG = "example_tableflow_after_habu"
FLOW_RUNS = "habu://cr-acme/flow-weekly"
REACH_REPORTS = "flowruns://habu/reach-reports"
NODES = {
    "6f1c1b7e-0001-4000-8000-000000000001": {"START_DATE": "2026-11-16", "END_DATE": "2026-11-23"},
    "6f1c1b7e-0001-4000-8000-000000000002": {"BRAND": "acme"},
}
#: Partner runs started at the vendor, one after another.
PARTNER_RUNS = 3

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]


def wait(predicate: Any, timeout: float, what: str, stack: AirflowStack) -> Any:
    return stack.wait_for(predicate, timeout, what)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def chained(tmp_path_factory, monkeypatch_module):
    workdir = tmp_path_factory.mktemp("event-driven")
    with EmulatorFleet(workdir, vendors=("habu", "tableflow")) as fleet:
        for key, value in fleet.env.items():
            if key.startswith("AIRFLOW_CONN_"):
                monkeypatch_module.setenv(key, value)  # this process starts the partner runs
        monkeypatch_module.setenv("AIRFLOW__FLOWRUNS__TOKEN_LOCK_DIR", str(workdir / "locks"))
        env = {**fleet.env, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"}  # asset-triggered runs
        with AirflowStack("events", dags_folder=ROOT / "example_dags", root=ROOT, env=env) as stack:
            # Only the two event-driven DAGs run: every other example stays paused as created.
            stack.unpause(REPORTS_DAG)
            stack.unpause(TABLEFLOW_DAG)
            wait(lambda: cursor(stack), 240, "the watcher's cursor (deployed)", stack)
            # One partner run at a time, each followed down the chain: Airflow 3.3.2 and 3.1.8 leave
            # an asset event that lands while its consumer's DAG run is being queued for the next
            # event (see docs/event-driven-scheduling.md), so a burst is not what this asserts.
            started: list[str] = []
            for n in range(PARTNER_RUNS):
                started.append(start_run(f"partner-{n}"))
                wait(lambda: len(events(stack, FLOW_RUNS)) > n, 300, f"partner run {n}'s event", stack)
                wait(lambda: len(events(stack, REACH_REPORTS)) > n, 300, f"report {n}", stack)
                wait(lambda: extracts(stack) > n, 300, f"Tableflow run {n}", stack)
            for dag in (REPORTS_DAG, TABLEFLOW_DAG):
                for run_id, _ in dag_runs(stack, dag):
                    stack.wait_for_run_id(run_id, timeout=300)
            yield stack, fleet, started, workdir


def start_run(name: str) -> str:
    """A flow run started at the vendor directly, as a partner or the clean-room UI would."""
    from airflow_provider_flowruns.hooks.habu import HabuHook

    return str(HabuHook().create_flow_run(CR, "flow-weekly", name=name, nodes=NODES)["id"])


def cursor(stack: AirflowStack) -> dict[str, Any] | None:
    rows = stack.query("select key from variable where key like 'flowruns_watch_%'")
    return json.loads(stack.api("GET", f"/variables/{rows[0][0]}")["value"]) if rows else None


def events(stack: AirflowStack, uri: str) -> list[dict[str, Any]]:
    """The extras of every event of the asset ``uri``, oldest first."""
    rows = stack.query(
        "select e.extra from asset_event e join asset a on a.id = e.asset_id where a.uri = :u order by e.id",
        u=uri,
    )
    return [row[0] if isinstance(row[0], dict) else json.loads(row[0]) for row in rows]


def dag_runs(stack: AirflowStack, dag_id: str) -> list[tuple[str, str]]:
    rows = stack.query("select run_id, run_type from dag_run where dag_id=:d order by id", d=dag_id)
    return [(str(r[0]), str(r[1])) for r in rows]


def xcoms(stack: AirflowStack, dag_id: str, task_id: str, key: str = "return_value") -> list[Any]:
    rows = stack.query(
        "select value from xcom where dag_id=:d and task_id=:t and key=:k order by run_id, map_index",
        d=dag_id,
        t=task_id,
        k=key,
    )
    return [_decoded(row[0]) for row in rows]


def _decoded(value: Any) -> Any:
    """An XCom value as the stack's database returns it (JSON text, or a bare string)."""
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def extracts(stack: AirflowStack) -> int:
    return len(xcoms(stack, TABLEFLOW_DAG, "extract", "run_id"))


def test_each_partner_run_fired_one_event_and_got_exactly_one_report(chained):
    stack, fleet, started, workdir = chained
    fired = [e["payload"]["run_id"] for e in events(stack, FLOW_RUNS)]
    assert sorted(fired) == sorted(started)  # one event per finished run, no duplicate
    runs = dag_runs(stack, REPORTS_DAG)
    assert len(runs) == PARTNER_RUNS and {run_type for _, run_type in runs} == {"asset_triggered"}
    for run_id, _ in runs:
        assert stack.report(REPORTS_DAG, run_id).state == "success"
    # Over every DAG run (folded events or not), each vendor run was handed to the report task once.
    handed = [item["run_id"] for batch in xcoms(stack, REPORTS_DAG, "finished_runs") for item in batch]
    assert sorted(handed) == sorted(started)
    for run in started:
        report = workdir / "habu" / run / "reach.csv"
        assert len(report.read_text(encoding="utf-8").splitlines()) > 1234  # header + rows (some multi-line)
    assert fleet.stats("habu")["runs_created"] == PARTNER_RUNS  # the example DAGs started none


def test_the_report_events_say_what_landed_and_the_tableflow_dag_extracted_each_report(chained):
    stack, fleet, started, workdir = chained
    landed = events(stack, REACH_REPORTS)
    assert sorted(e["run_id"] for e in landed) == sorted(started)
    for extra in landed:
        path = Path(extra["uri"].removeprefix("file://"))
        assert path == workdir / "habu" / extra["run_id"] / "reach.csv"
        data = path.read_bytes()
        assert extra["bytes"] == len(data) and extra["sha256"] == hashlib.sha256(data).hexdigest()
        assert extra["rows"] == 1234 and extra["vendor"] == "LiveRamp Clean Room"
        assert extra["run_url"] == f"https://app.habu.com/clean-rooms/{CR}/flows/runs/{extra['run_id']}"
    runs = dag_runs(stack, TABLEFLOW_DAG)
    assert len(runs) == PARTNER_RUNS and {run_type for _, run_type in runs} == {"asset_triggered"}
    for run_id, _ in runs:
        assert stack.report(TABLEFLOW_DAG, run_id).state == "success"
    # One Tableflow run per report, named after its Habu run, fed the report's bytes.
    asked = [item["name"] for batch in xcoms(stack, TABLEFLOW_DAG, "landed_reports") for item in batch]
    assert sorted(asked) == sorted(f"reach report of Habu run {run}" for run in started)
    tableflow = fleet.stats("tableflow")
    assert tableflow["runs_created"] == extracts(stack) == PARTNER_RUNS
    assert tableflow["bytes_received"] >= sum(e["bytes"] for e in landed)


def test_the_watcher_stayed_within_habus_limits_on_the_shared_token(chained):
    _, fleet, _, _ = chained
    habu = fleet.stats("habu")
    assert habu["polls_too_frequent"] == 0 and habu["creates_refused"] == 0
    # This test process minted one for its creates; the workers and the triggerer's watcher shared
    # the deployment's cached token (or this one): never one per task.
    assert habu["tokens_minted"] <= 2, habu
    assert habu["run_listings"] >= 1

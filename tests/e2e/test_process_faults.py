"""Process faults under a real Airflow (API server, scheduler, DAG processor, triggerer; LocalExecutor;
PostgreSQL metadata DB when reachable), every vendor's emulator as a uvicorn process.

- The triggerer is killed (SIGKILL) while a run of every vendor is deferred, and a new one started:
  every task still finishes and no vendor saw a second run.
- The chained example pipeline is unpaused and the scheduler catches up its two daily intervals,
  each through all four vendors.
- A task's worker process is killed right after it submitted, for every vendor: the retry
  re-attaches to the same vendor run (task state store on 3.3+; below it the run's name or key,
  which Amperity lacks).
- 30 deferrable tasks at the shortest allowed poll interval, whose trigger could fire at once: none
  is failed or retried by Airflow's defer-exit race (apache/airflow#67287), thanks to the first-poll
  floor.
- A deferred task is marked failed or cleared (Airflow 3.3+, ``BaseTrigger.on_kill``): the vendor run
  is stopped where the vendor can (Amperity stop, Activepieces cancel of a paused run) and the log says
  it keeps going where it cannot (Habu, Tableflow); a cleared task then runs once more, on a new run
  where the old one was stopped or had finished.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_flowruns.core.runs import RunRef
from airflow_provider_flowruns.hooks.activepieces import ActivepiecesHook
from airflow_provider_flowruns.testing.activepieces_app import FLOW_APPROVAL, FLOW_BROKEN
from airflow_provider_flowruns.vendors.activepieces import RunFilter
from airflow_provider_flowruns.version_compat import AIRFLOW_V_3_3_PLUS
from flowruns_dev.airflow_stack import AirflowStack
from flowruns_dev.fleet import EmulatorFleet

ROOT = Path(__file__).resolve().parents[2]
VENDORS = ("amperity", "habu", "tableflow", "activepieces")
#: Long runs take 30-40 s here: long enough to be deferred when the fault strikes, short enough for CI.
SPEEDS = {"amperity": 100.0, "habu": 600.0, "tableflow": 2.0, "activepieces": 2.0, "demo": 2.0}
PIPELINE = "example_flowruns_pipeline"  # tests/e2e/dags/pipeline_catchup.py

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack_and_fleet(tmp_path_factory) -> Iterator[tuple[AirflowStack, EmulatorFleet]]:
    workdir = tmp_path_factory.mktemp("process-faults")
    invoice = workdir / "invoice.pdf"
    invoice.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 100)
    with EmulatorFleet(workdir, speeds=SPEEDS, vendors=(*VENDORS, "demo")) as fleet:
        env = {
            **fleet.env,
            "AIRFLOW_VAR_PF_INVOICE": str(invoice),
            # Interval runs are created here (the fault DAGs have no schedule): the example pipeline's
            # catchup comes from the scheduler.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
        }
        with AirflowStack(
            "process-faults", dags_folder=ROOT / "tests" / "e2e" / "dags", root=ROOT, env=env
        ) as stack:
            yield stack, fleet


class Api:
    """The REST calls these tests make on the stack (the CLI takes seconds per call; faults need
    tasks started together)."""

    def __init__(self, stack: AirflowStack) -> None:
        self.stack = stack

    def call(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return self.stack.api(method, path, body)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        return self.stack.trigger(dag_id, conf=conf)

    def clear(self, dag_id: str, run_id: str) -> None:
        self.call(
            "POST",
            f"/dags/{dag_id}/clearTaskInstances",
            {"dry_run": False, "dag_run_id": run_id, "task_ids": ["wait"], "only_failed": False},
        )

    def mark_failed(self, dag_id: str, run_id: str) -> None:
        self.call("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/wait", {"new_state": "failed"})


@pytest.fixture(scope="module")
def api(stack_and_fleet) -> Api:
    stack, _ = stack_and_fleet
    dag_ids = [f"pf_{v}" for v in VENDORS] + [f"pf_worker_{v}" for v in VENDORS] + [PIPELINE]
    for dag_id in dag_ids:  # parsed before anything starts
        wait_until(
            lambda d=dag_id: stack.query("select count(*) from dag where dag_id=:d", d=d)[0][0], dag_id
        )
    return Api(stack)


def ti(stack: AirflowStack, dag_id: str, run_id: str) -> tuple[str, int | None, int]:
    """(state, pid, try number) of the DAG's task ``wait``."""
    rows = stack.query(
        "select coalesce(state, 'none'), pid, try_number from task_instance "
        "where dag_id=:d and run_id=:r and task_id='wait'",
        d=dag_id,
        r=run_id,
    )
    return (str(rows[0][0]), rows[0][1], int(rows[0][2])) if rows else ("none", None, 0)


def wait_until(predicate, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def wait_until_watched(stack: AirflowStack, runs: dict[str, str]) -> None:
    """Until a triggerer runs each task's trigger. A task is ``deferred`` before any triggerer picks
    its trigger up, and a trigger that never ran is never told to ``on_kill``: an action taken in
    that gap leaves the vendor run alone (Airflow's behaviour, whatever the provider does)."""

    def watched(dag_id: str, run_id: str) -> bool:
        folder = stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=wait"
        return any("starting" in log.read_text() for log in folder.glob("attempt=*.log.trigger.*.log"))

    wait_until(lambda: all(watched(d, r) for d, r in runs.items()), "a triggerer to run every trigger")


def runs_created(fleet: EmulatorFleet) -> dict[str, int]:
    return {vendor: fleet.stats(vendor)["runs_created"] for vendor in VENDORS}


def xcom_run_id(stack: AirflowStack, dag_id: str, run_id: str) -> str:
    return str(stack.report(dag_id, run_id).xcoms["wait.run_id"])


def test_killed_triggerer_is_replaced_and_every_run_finishes_once(stack_and_fleet, api):
    stack, fleet = stack_and_fleet
    before = runs_created(fleet)
    runs = {f"pf_{vendor}": api.trigger(f"pf_{vendor}") for vendor in VENDORS}
    wait_until(lambda: all(ti(stack, d, r)[0] == "deferred" for d, r in runs.items()), "every task deferred")

    stack.kill_service("triggerer")  # SIGKILL: no cleanup, no goodbye
    time.sleep(2)
    assert all(ti(stack, d, r)[0] == "deferred" for d, r in runs.items())  # nobody is watching now
    stack.start_service("triggerer", tag="triggerer-2")

    for dag_id, run_id in runs.items():
        report = stack.wait_for_run(dag_id, run_id, timeout=240)
        assert report.tasks == {"wait": "success"}, (dag_id, report)
    after = runs_created(fleet)
    assert {v: after[v] - before[v] for v in VENDORS} == dict.fromkeys(VENDORS, 1)


#: Who re-attaches a retried task to its run: the task state store (3.3+) for every vendor; below
#: 3.3 a run found again by its deterministic name or key - which Amperity runs do not carry, so there
#: a retry after a crash between submit and the end of the try starts a second run (docs/amperity.md).
WORKER_VENDORS = VENDORS if AIRFLOW_V_3_3_PLUS else ("habu", "tableflow", "activepieces")


def test_worker_killed_after_submit_retries_onto_the_same_vendor_run(stack_and_fleet, api):
    stack, fleet = stack_and_fleet
    before = runs_created(fleet)
    runs = {f"pf_worker_{vendor}": api.trigger(f"pf_worker_{vendor}") for vendor in WORKER_VENDORS}

    def submitted(dag_id: str, run_id: str) -> bool:
        # The run id XCom is pushed right after submit (and the state store written); the task then
        # waits in its worker process, which is killed there.
        return bool(
            stack.query(
                "select count(*) from xcom where dag_id=:d and run_id=:r and key='run_id'", d=dag_id, r=run_id
            )[0][0]
        )

    first_runs = {}
    for dag_id, run_id in runs.items():
        wait_until(lambda d=dag_id, r=run_id: submitted(d, r), f"the submit of {dag_id}")
        state, pid, try_number = ti(stack, dag_id, run_id)
        assert state == "running" and pid and try_number == 1, (dag_id, state, pid, try_number)
        first_runs[dag_id] = xcom_run_id(stack, dag_id, run_id)
        os.kill(pid, signal.SIGKILL)

    for dag_id, run_id in runs.items():
        report = stack.wait_for_run(dag_id, run_id, timeout=240)
        assert report.tasks == {"wait": "success"}, (dag_id, report)
        assert ti(stack, dag_id, run_id)[2] == 2, dag_id  # the second try did the work
        assert xcom_run_id(stack, dag_id, run_id) == first_runs[dag_id], dag_id
    after = runs_created(fleet)
    assert {v: after[v] - before[v] for v in WORKER_VENDORS} == dict.fromkeys(WORKER_VENDORS, 1)


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="BaseTrigger.on_kill arrived in Airflow 3.3")
def test_marking_a_deferred_task_failed_stops_the_vendor_run_or_says_it_cannot(stack_and_fleet, api):
    stack, fleet = stack_and_fleet
    stops, cancels = fleet.stats("amperity")["stops"], fleet.stats("activepieces")["cancelled"]
    runs = {
        f"pf_{vendor}": api.trigger(
            f"pf_{vendor}", {"flow": FLOW_APPROVAL} if vendor == "activepieces" else None
        )
        for vendor in VENDORS
    }
    wait_until(lambda: all(ti(stack, d, r)[0] == "deferred" for d, r in runs.items()), "every task deferred")
    wait_until_watched(stack, runs)
    vendor_runs = {d: xcom_run_id(stack, d, r) for d, r in runs.items()}
    for dag_id, run_id in runs.items():
        api.mark_failed(dag_id, run_id)

    wait_until(lambda: fleet.stats("amperity")["stops"] > stops, "Amperity to be asked to stop", 60)
    wait_until(lambda: fleet.stats("activepieces")["cancelled"] > cancels, "Activepieces to cancel", 60)
    logs = {}

    def said_so() -> bool:
        logs["text"] = stack.log_text()
        return all(f"run {vendor_runs[f'pf_{v}']} keeps going" in logs["text"] for v in ("habu", "tableflow"))

    wait_until(said_so, "the log to say Habu and Tableflow runs keep going", 60)
    assert fleet.stats("amperity")["stops"] - stops == 1
    assert fleet.stats("activepieces")["cancelled"] - cancels == 1
    for dag_id, run_id in runs.items():
        assert ti(stack, dag_id, run_id)[0] == "failed"


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="BaseTrigger.on_kill and the task state store: 3.3")
def test_clearing_a_deferred_task_stops_its_run_and_a_finished_one_runs_again(stack_and_fleet, api):
    """Clear while deferred: the trigger's on_kill stops what the vendor can stop (Amperity,
    Activepieces) and the next try starts a new run - never adopting the one being stopped - while a
    run the vendor cannot stop (Habu, Tableflow) is said to keep going and is re-attached, not doubled.
    Clear once succeeded: the task runs again with a new vendor run, not the old result."""
    stack, fleet = stack_and_fleet
    stops, cancels = fleet.stats("amperity")["stops"], fleet.stats("activepieces")["cancelled"]
    before = runs_created(fleet)
    runs = {f"pf_{vendor}": api.trigger(f"pf_{vendor}") for vendor in VENDORS}
    wait_until(lambda: all(ti(stack, d, r)[0] == "deferred" for d, r in runs.items()), "every task deferred")
    wait_until_watched(stack, runs)
    first = {d: xcom_run_id(stack, d, r) for d, r in runs.items()}
    for dag_id, run_id in runs.items():
        api.clear(dag_id, run_id)

    for dag_id, run_id in runs.items():
        report = stack.wait_for_run(dag_id, run_id, timeout=300)
        assert report.tasks == {"wait": "success"}, (dag_id, report)
    second = {d: xcom_run_id(stack, d, r) for d, r in runs.items()}
    # Stopped by the old trigger's on_kill, by the new try (which does not wait for it), or both:
    # stopping is idempotent, and the run stopped is the first one (the new runs succeeded).
    assert fleet.stats("amperity")["stops"] - stops in (1, 2)
    assert fleet.stats("activepieces")["cancelled"] - cancels == 1
    logs = stack.log_text()
    for vendor in ("habu", "tableflow"):
        assert f"run {first[f'pf_{vendor}']} keeps going" in logs, vendor
    restarted = {"amperity": True, "activepieces": True, "habu": False, "tableflow": False}
    assert {v: second[f"pf_{v}"] != first[f"pf_{v}"] for v in VENDORS} == restarted
    after = runs_created(fleet)
    assert {v: after[v] - before[v] for v in VENDORS} == {v: 1 + restarted[v] for v in VENDORS}

    for dag_id, run_id in runs.items():  # each finished: a clear now asks for a new run
        api.clear(dag_id, run_id)
    wait_until(lambda: all(ti(stack, d, r)[0] != "success" for d, r in runs.items()), "the clear to land")
    for dag_id, run_id in runs.items():
        report = stack.wait_for_run(dag_id, run_id, timeout=300)
        assert report.tasks == {"wait": "success"}, (dag_id, report)
        assert xcom_run_id(stack, dag_id, run_id) not in (first[dag_id], second[dag_id]), dag_id
    final = runs_created(fleet)
    assert {v: final[v] - after[v] for v in VENDORS} == dict.fromkeys(VENDORS, 1)


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the task state store arrived in Airflow 3.3")
def test_clearing_a_bulk_retry_that_succeeded_retries_the_runs_again(stack_and_fleet, api):
    """Bulk retry keeps its answer in the task state store so a retried try does not retry the runs
    twice; a clear after success must retry them again (the answer is flagged done once the task
    has it, by Airflow's own call of ``post_execute``)."""
    stack, fleet = stack_and_fleet
    with pytest.MonkeyPatch.context() as env:
        for name, value in fleet.env.items():
            env.setenv(name, value)
        hook = ActivepiecesHook()
        hook.trigger_webhook(FLOW_BROKEN, {})  # fails at every attempt of its version

        def failed_run() -> str | None:
            found = hook.list_runs(RunFilter.build(flow_ids=[FLOW_BROKEN], statuses=["FAILED"]))
            return next((str(r["id"]) for r in found), None)

        wait_until(lambda: failed_run() is not None, "a failed Activepieces run", 60)
        run = str(failed_run())

        def failed_again() -> bool:
            return hook.get_status(RunRef(run)).vendor_status == "FAILED"

        retries = fleet.stats("activepieces")["retries"]
        dag_run = api.trigger("pf_bulk_retry", conf={"runs": [run]})
        report = stack.wait_for_run("pf_bulk_retry", dag_run, timeout=120)
        assert report.tasks == {"wait": "success"}, report
        assert fleet.stats("activepieces")["retries"] - retries == 1
        wait_until(failed_again, "the retried run to fail again", 60)

        api.clear("pf_bulk_retry", dag_run)
        wait_until(lambda: ti(stack, "pf_bulk_retry", dag_run)[0] != "success", "the clear to land")
        report = stack.wait_for_run("pf_bulk_retry", dag_run, timeout=120)
        assert report.tasks == {"wait": "success"}, report
        assert fleet.stats("activepieces")["retries"] - retries == 2  # retried anew, not the old answer
        assert [r["id"] for r in report.xcoms["wait.return_value"]] == [run]


def test_the_scheduler_catches_up_the_pipeline_through_all_four_vendors(stack_and_fleet, api):
    """The chained example, unpaused on a scheduler that creates interval runs: catchup makes one run
    per daily interval from ``start_date`` to ``end_date`` (two), each running Amperity refresh ->
    Habu flow run (paused, resumed) -> report to storage -> Tableflow over that report ->
    Activepieces notified, with one vendor run per step and interval."""
    stack, fleet = stack_and_fleet
    before = runs_created(fleet)
    stack.unpause(PIPELINE)

    def scheduled() -> list[str]:
        rows = stack.query(
            "select run_id from dag_run where dag_id=:d and run_type='scheduled' order by logical_date",
            d=PIPELINE,
        )
        return [str(run_id) for (run_id,) in rows]

    wait_until(lambda: len(scheduled()) >= 2, "the scheduler to create the catchup runs", 120)
    reports = [stack.wait_for_run(PIPELINE, run_id, timeout=420) for run_id in scheduled()]
    assert len(scheduled()) == 2  # end_date bounds the catchup
    steps = ("amperity_refresh", "habu_match", "tableflow_extract", "notify")
    for report in reports:
        assert report.state == "success" and set(report.tasks.values()) == {"success"}, report
    days = [Path(r.xcoms["report_to_storage.return_value"]["uri"]).parent.name for r in reports]
    assert days == ["2026-01-01", "2026-01-02"], days
    for step in steps:
        assert len({r.xcoms[f"{step}.run_id"] for r in reports}) == 2, step
    after = runs_created(fleet)
    assert {v: after[v] - before[v] for v in VENDORS} == dict.fromkeys(VENDORS, 2)
    assert fleet.stats("habu")["resumes"] >= 2


def test_thirty_deferrals_at_the_shortest_interval_see_no_spurious_failure_or_retry(stack_and_fleet):
    """Each run ends before the trigger's first poll, so each trigger fires as soon as the provider
    lets it; with a first poll at the scaled interval (0.5 s) Airflow failed or retried such tasks
    when its scheduler had not yet processed the worker's defer-exit (up to 5.25 s measured)."""
    stack, fleet = stack_and_fleet
    dag_id = "pf_defer_race"  # tests/e2e/dags/defer_race_dags.py
    before = fleet.stats("demo").get("runs_created", 0)
    run_id = stack.trigger(dag_id)
    report = stack.wait_for_run(dag_id, run_id, timeout=600)
    rows = stack.query(
        "select map_index, coalesce(state, 'none'), try_number from task_instance "
        "where dag_id=:d and run_id=:r order by map_index",
        d=dag_id,
        r=run_id,
    )
    assert [tuple(r) for r in rows] == [(i, "success", 1) for i in range(30)], rows
    assert report.state == "success"
    # every task really deferred (a trigger log per task) and started exactly one vendor run
    folder = stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    assert len(list(folder.rglob("attempt=1.log.trigger.*.log"))) == 30
    assert fleet.stats("demo")["runs_created"] - before == 30

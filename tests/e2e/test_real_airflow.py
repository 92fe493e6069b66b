"""End to end through a real Airflow: API server, scheduler, DAG processor and triggerer processes
(LocalExecutor), PostgreSQL metadata DB (SQLite fallback, announced), every vendor's emulator as a
uvicorn process. Every example DAG runs, with sentinel credentials that must never surface."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from flowruns_dev.airflow_stack import AirflowStack
from flowruns_dev.fleet import EXAMPLE_DAGS, EmulatorFleet, start_example_runs

ROOT = Path(__file__).resolve().parents[2]
SECRET = (
    "sentinel-secret-7f3c9a"  # every client secret and API key; must never show up anywhere Airflow writes
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]  # the stack starts in the first test's setup


class DeferredSampler(threading.Thread):
    """Copies what Airflow holds only while tasks are deferred - the serialized trigger kwargs and
    the tasks' ``next_kwargs`` - before the triggerer deletes them, so the secret scan reads them."""

    def __init__(self, stack: AirflowStack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.texts: set[str] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            try:
                rows = self.stack.query(
                    "select kwargs from trigger union all "
                    "select cast(next_kwargs as text) from task_instance where next_kwargs is not null"
                )
            except Exception:  # the stack may be between restarts; the next sample catches up
                continue
            self.texts.update(str(value) for (value,) in rows)


@pytest.fixture(scope="module")
def stack_and_fleet(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("results")
    with (
        EmulatorFleet(workdir, secret=SECRET) as fleet,
        AirflowStack("e2e", dags_folder=ROOT / "example_dags", root=ROOT, env=fleet.env) as stack,
    ):
        sampler = DeferredSampler(stack)
        sampler.start()
        runs = start_example_runs(stack)
        all_reports = [stack.wait_for_run(dag, run_id, timeout=420) for dag, run_id in runs]
        sampler.done.set()
        sampler.join()
        stack.deferred_texts = sampler.texts  # type: ignore[attr-defined]
        stack.all_reports = all_reports
        yield stack, fleet, {r.dag_id: r for r in all_reports}, workdir


def test_every_example_dag_succeeds(stack_and_fleet):
    stack, _, reports, _ = stack_and_fleet
    assert sorted(reports) == sorted(EXAMPLE_DAGS)
    for report in stack.all_reports:
        assert report.state == "success", (report.dag_id, report)
        assert set(report.tasks.values()) == {"success"}, (report.dag_id, report.tasks)


def test_every_example_dag_runs_when_triggered_without_a_logical_date(stack_and_fleet):
    """Airflow 3's default trigger (CLI, REST, UI) sets no logical date, so no ``ds``,
    ``logical_date`` or ``data_interval_*`` in the context: the examples used to fail rendering."""
    stack, _, _, _ = stack_and_fleet
    manual = {
        dag: state
        for dag, state in stack.query(
            "select dag_id, state from dag_run where logical_date is null and run_type='manual'"
        )
    }
    assert manual == dict.fromkeys(EXAMPLE_DAGS, "success")


def test_chained_pipeline_ran_each_interval_through_all_four_vendors(stack_and_fleet):
    """Amperity refresh -> Habu flow run (paused, resumed) -> report to storage -> Tableflow over
    that report -> Activepieces notified; once per interval of its catchup window."""
    stack, fleet, _, workdir = stack_and_fleet
    dag = "example_flowruns_pipeline"
    pipeline = [r for r in stack.all_reports if r.dag_id == dag and not r.run_id.startswith("e2e__")]
    assert len(pipeline) == 2, [r.run_id for r in pipeline]  # two daily intervals
    days = sorted(p.name for p in (workdir / "pipeline").iterdir())
    # ... and the run triggered by hand, filed under the day it was asked for (no logical date).
    (asked,) = stack.query("select run_after from dag_run where dag_id=:d and logical_date is null", d=dag)
    asked_day = asked[0].astimezone(timezone.utc) if isinstance(asked[0], datetime) else asked[0]
    assert days == sorted(["2026-01-01", "2026-01-02", str(asked_day)[:10]]), days
    runs: dict[str, set[str]] = {}
    for report in pipeline:
        saved = report.xcoms["report_to_storage.return_value"]
        path = Path(saved["uri"].removeprefix("file://"))
        assert path.is_relative_to(workdir / "pipeline") and path.stat().st_size == saved["size"]
        assert saved["rows"] > 0
        for task in ("amperity_refresh", "habu_match", "tableflow_extract", "notify"):
            runs.setdefault(task, set()).add(report.xcoms[f"{task}.run_id"])
    # One vendor run per step and interval: two distinct runs of each.
    assert {task: len(ids) for task, ids in runs.items()} == dict.fromkeys(runs, 2)
    # Tableflow received the reports Airflow wrote (two uploads of their sizes).
    assert fleet.stats("tableflow")["bytes_received"] >= sum(
        r.xcoms["report_to_storage.return_value"]["size"] for r in pipeline
    )


def test_waiting_tasks_deferred_to_the_triggerer(stack_and_fleet):
    """Tasks that always reach the triggerer: Habu's (no status check before deferring) and the demo's
    six-second run. A short run that ends before the check before deferring rightly never defers -
    here Amperity's and Activepieces' sometimes do; test_process_faults.py defers runs of every
    vendor that last long enough, every time."""
    stack, _, reports, _ = stack_and_fleet
    for dag, task in [
        ("example_flowruns_demo", "start_and_wait"),
        ("example_habu_weekly_flow", "match_audiences"),
        ("example_habu_weekly_flow", "reach_and_overlap"),
    ]:
        logs = stack.home / "logs" / f"dag_id={dag}" / f"run_id={reports[dag].run_id}"
        assert list(logs.glob(f"task_id={task}/*.trigger.*.log")), (dag, task)


def test_results_landed_whole_where_the_xcoms_say(stack_and_fleet):
    _, _, reports, workdir = stack_and_fleet
    saved = reports["example_flowruns_demo"].xcoms["save_result.return_value"]
    path = Path(saved["uri"].removeprefix("file://"))
    assert path.is_relative_to(workdir)
    assert len(path.read_text().splitlines()) == 1001 and path.stat().st_size == saved["size"]
    habu_reports = list((workdir / "habu").glob("*/reach.csv"))
    assert habu_reports and all(len(p.read_text(encoding="utf-8").splitlines()) > 1234 for p in habu_reports)
    invoices = workdir / "invoices"
    assert sorted(p.name for p in (invoices / "processed").iterdir()) == [
        "invoice-1001.pdf",
        "invoice-1002.pdf",
    ]
    assert len(list((invoices / "extractions").rglob("*.csv"))) >= 2


def test_vendor_side_one_run_per_task_and_limits_held(stack_and_fleet):
    stack, fleet, _, _ = stack_and_fleet

    def started(dag: str, *tasks: str) -> int:
        return sum(
            stack.query(
                f"select count(*) from xcom where dag_id='{dag}' and task_id='{task}' and key='run_id'"
            )[0][0]
            for task in tasks
        )

    pipeline = "example_flowruns_pipeline"
    amperity = fleet.stats("amperity")
    assert amperity["runs_created"] == started(
        "example_amperity_nightly", "refresh_sources", "full_run"
    ) + started(pipeline, "amperity_refresh")
    habu = fleet.stats("habu")
    assert habu["runs_created"] == started("example_habu_weekly_flow", "match_audiences") + started(
        pipeline, "habu_match"
    )
    assert habu["resumes"] == habu["runs_created"]
    # Workers (one process per task) and the triggerer shared the API user's token.
    assert habu["tokens_minted"] == 1, habu
    assert habu["polls_too_frequent"] == 0 and habu["creates_refused"] == 0
    tableflow = fleet.stats("tableflow")
    assert tableflow["runs_created"] == started("example_tableflow_invoices", "extract") + started(
        pipeline, "tableflow_extract"
    )
    activepieces = fleet.stats("activepieces")
    assert activepieces.get("public_calls_with_credentials", 0) == 0
    demo = fleet.stats("demo")
    assert demo["runs_created"] == 2 * len(
        stack.query("select run_id from dag_run where dag_id='example_flowruns_demo'")
    )
    # Client-credentials tokens are cached per process: each worker process and the triggerer mint
    # at most once, so some calls ride on a token minted for an earlier call (the triggerer polls
    # two runs; save_result reads the run and its result). Polls alone are too few to compare
    # with - adaptive polling may watch a short run with a single call.
    assert 1 <= demo["tokens_minted"] < demo["calls_with_minted_tokens"], demo


def test_no_secret_or_token_anywhere_airflow_writes(stack_and_fleet):
    stack, fleet, _, _ = stack_and_fleet
    needles = [SECRET, *fleet.minted_tokens()]
    assert len(needles) > 1
    haystacks = {
        "logs": stack.log_text(),
        "xcom": "\n".join(str(v) for (v,) in stack.query("select value from xcom")),
        "rendered": "\n".join(
            str(v) for (v,) in stack.query("select rendered_fields from rendered_task_instance_fields")
        ),
        "trigger kwargs and next_kwargs (sampled while deferred)": "\n".join(stack.deferred_texts),
        "dag run conf and audit log": "\n".join(
            str(v)
            for (v,) in stack.query("select cast(conf as text) from dag_run union all select extra from log")
        ),
    }
    # The sample really holds serialized triggers (plain JSON here: the stack sets no Fernet key).
    assert "hook_class_path" in haystacks["trigger kwargs and next_kwargs (sampled while deferred)"]
    for where, text in haystacks.items():
        for needle in needles:
            assert needle not in text, f"secret leaked into {where}"


def test_rest_connection_test_reaches_every_vendor(stack_and_fleet):
    """``POST /api/v2/connections/test`` (what the UI's Test button sends) in the API server: the hook
    is built as Airflow builds it and tests itself. Habu's answer rides on the token the tasks
    minted and share through the metadata database; nothing new is minted."""
    stack, fleet, _, _ = stack_and_fleet
    minted = fleet.stats("habu")["tokens_minted"]
    expected = {
        "amperity_default": "Reached Amperity tenant acme at {host}; OAuth client 'amperity-client' accepted "
        "(client credentials).",
        "activepieces_default": "Reached Activepieces at {host}; platform API key accepted for project "
        "projAcme0000000000000.",
        "tableflow_default": "Reached Tableflow at {host}; API key accepted; 4 active flow(s) (workspace "
        "uT2bJNWN75YPU95r).",
        "habu_default": "Reached LiveRamp Clean Room at {host} (health: UP); a token for API user "
        "'habu-client' is cached and valid until ",
    }
    for conn_id, message in expected.items():
        conn = json.loads(fleet.env[f"AIRFLOW_CONN_{conn_id.upper()}"])
        body = {
            "connection_id": conn_id,
            "conn_type": conn["conn_type"],
            "host": conn["host"],
            "login": conn.get("login"),
            "password": conn["password"],
            "extra": json.dumps(conn.get("extra") or {}),
        }
        answer = stack.api("POST", "/connections/test", body)
        assert answer["status"] is True, (conn_id, answer)
        assert answer["message"].startswith(message.format(host=conn["host"])), (conn_id, answer)
        assert SECRET not in answer["message"]
    assert fleet.stats("habu")["tokens_minted"] == minted

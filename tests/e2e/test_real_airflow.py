"""End to end through a real Airflow: API server, scheduler, DAG processor and triggerer processes,
PostgreSQL metadata DB (SQLite fallback, announced), the emulators as a uvicorn process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_flowruns.testing.airflow_stack import AirflowStack
from airflow_provider_flowruns.testing.process import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sentinel-secret-7f3c9a"  # the client secret; must never show up anywhere Airflow writes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack_and_emulator(tmp_path_factory):
    from airflow_provider_flowruns.testing import demo_app

    output = tmp_path_factory.mktemp("results")
    # The emulator process reads its credentials from the module; use a sentinel secret for this run.
    secrets = {"FLOWRUNS_DEMO_CLIENT_SECRET": SECRET, "FLOWRUNS_AMPERITY_CLIENT_SECRET": SECRET}
    # Amperity at speed 10 (a 20 emulated-second run takes 2 real ones); the demo at real time.
    with (
        EmulatorProcess(["demo"], env=secrets) as emu,
        EmulatorProcess(["amperity"], speed=10, env=secrets) as amp,
    ):
        env = {
            "AIRFLOW_CONN_AMPERITY_DEFAULT": json.dumps(
                {
                    "conn_type": "amperity",
                    "host": amp.url("amperity", "/api"),
                    "login": "amperity-client",
                    "password": SECRET,
                    "extra": {"tenant": "acme", "auth": "client_credentials"},
                }
            ),
            "AIRFLOW__FLOWRUNS__AMPERITY_POLL_INTERVAL": "10",
            "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT": (
                f'{{"conn_type": "flowruns_demo", "host": "{emu.url("demo", "/v1")}", "login": "{demo_app.CLIENT_ID}",'
                f' "password": "{SECRET}", "extra": {{"auth": "client_credentials"}}}}'
            ),
            "AIRFLOW_VAR_FLOWRUNS_DEMO_OUTPUT": str(output),
        }
        with AirflowStack("e2e", dags_folder=ROOT / "example_dags", root=ROOT, env=env) as stack:
            yield stack, emu, amp, output


def test_example_dags_run_end_to_end_through_the_triggerer(stack_and_emulator):
    stack, emu, amp, output = stack_and_emulator
    run_id = stack.trigger("example_flowruns_demo")
    amperity_run = stack.trigger("example_amperity_nightly")
    report = stack.wait_for_run("example_flowruns_demo", run_id, timeout=300)
    amperity = stack.wait_for_run("example_amperity_nightly", amperity_run, timeout=300)
    assert amperity.state == "success", amperity
    assert amperity.tasks == {"refresh_sources": "success", "full_run": "success"}
    assert amperity.xcoms["refresh_sources.return_value"].startswith("wf-")
    amperity_logs = stack.home / "logs" / "dag_id=example_amperity_nightly" / f"run_id={amperity_run}"
    assert list(amperity_logs.glob("task_id=full_run/*.trigger.*.log"))
    # Unpausing also scheduled the latest 03:00 run: once it settles, one vendor run per task, no duplicates.
    for (other,) in stack.query("select run_id from dag_run where dag_id='example_amperity_nightly'"):
        stack.wait_for_run("example_amperity_nightly", other, timeout=300)
    (started,) = stack.query(
        "select count(*) from xcom where dag_id='example_amperity_nightly' and key='run_id'"
    )[0]
    assert started >= 2 and amp.stats()["vendors"]["amperity"]["runs_created"] == started
    assert report.state == "success", report
    assert set(report.tasks.values()) == {"success"}
    # The waiting tasks really deferred: the triggerer wrote their trigger logs.
    logs = stack.home / "logs" / "dag_id=example_flowruns_demo" / f"run_id={run_id}"
    assert list(logs.glob("task_id=start_and_wait/*.trigger.*.log"))
    assert list(logs.glob("task_id=watch_side_run/*.trigger.*.log"))
    # The result landed where the XCom says, complete.
    saved = report.xcoms["save_result.return_value"]
    path = Path(saved["uri"].removeprefix("file://"))
    assert path.is_relative_to(output)
    assert len(path.read_text().splitlines()) == 1001 and path.stat().st_size == saved["size"]
    vendor = emu.stats()["vendors"]["demo"]
    assert vendor["runs_created"] == 2
    assert report.xcoms["start_and_wait.run_url"].endswith(report.xcoms["start_and_wait.run_id"])
    # The API user minted one token per process that needed one (worker tasks + triggerer), not per poll.
    assert 1 <= vendor["tokens_minted"] <= len(report.tasks) + 1 < vendor["status_polls"]

    # No secret or minted token anywhere Airflow wrote: logs, XComs, rendered templates.
    needles = [SECRET, *vendor["minted_tokens"], *amp.stats()["vendors"]["amperity"]["minted_tokens"]]
    haystacks = {
        "logs": stack.log_text(),
        "xcom": "\n".join(str(v) for (v,) in stack.query("select value from xcom")),
        "rendered": "\n".join(
            str(v) for (v,) in stack.query("select rendered_fields from rendered_task_instance_fields")
        ),
    }
    for where, text in haystacks.items():
        for needle in needles:
            assert needle not in text, f"secret leaked into {where}"

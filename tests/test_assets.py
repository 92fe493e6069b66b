"""Assets out of the box: run operators and transfers that only list assets as ``outlets`` leave asset
events whose extra names the vendor run (id, URL, status) and what landed (uri, bytes, sha256,
rows), read back from Airflow's own ``asset_event`` table after a real ``dag.test()`` against the
emulators - the record a DAG scheduled on those assets is handed in ``triggering_asset_events``.

Every number is checked against the objects on disk (size, sha256, CSV rows), never against what
the operator returned."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import run_dag, xcom

from airflow_provider_flowruns.testing.activepieces_app import API_KEY, FLOW_OK, PROJECT_ID
from airflow_provider_flowruns.testing.process import EmulatorProcess

pytestmark = pytest.mark.usefixtures("airflow_db")

SPEED = 600
DAGS = "asset_dags.py"
ASSET = "flowruns-test://assets/{}".format


@pytest.fixture(scope="module")
def emulators():
    with EmulatorProcess(["habu", "amperity", "activepieces", "tableflow"], speed=SPEED) as emu:
        yield emu


@pytest.fixture
def vendors(emulators, monkeypatch, fresh_tokens):
    emulators.control("POST", "reset")
    scale = {"emulator_time_scale": SPEED}
    conns = {
        "HABU": {
            "conn_type": "habu",
            "host": emulators.url("habu", "/v1"),
            "login": "habu-client",
            "password": "habu-secret",
            "extra": scale,
        },
        "AMPERITY": {
            "conn_type": "amperity",
            "host": emulators.url("amperity", "/api"),
            "password": "amperity-token",
            "extra": {
                "tenant": "acme",
                "ui_run_url_template": "https://app.amperity.com/#/{tenant}/workflows/{run_id}",
                **scale,
            },
        },
        "ACTIVEPIECES": {
            "conn_type": "activepieces",
            "host": emulators.url("activepieces", "/api"),
            "password": API_KEY,
            "extra": {"project_id": PROJECT_ID, **scale},
        },
        "TABLEFLOW": {
            "conn_type": "tableflow",
            "host": emulators.url("tableflow", "/v2"),
            "password": "tableflow-key",
            "extra": scale,
        },
    }
    for name, conn in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{name}_DEFAULT", json.dumps(conn))
    return emulators


def events_of(ti: Any) -> dict[str, list[dict[str, Any]]]:
    """Asset URI -> extras of the asset events this task instance's run left, from Airflow's DB."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .filter(
                AssetEvent.source_dag_id == ti.dag_id,
                AssetEvent.source_run_id == ti.run_id,
                AssetEvent.source_task_id == ti.task_id,
            )
            .all()
        )
    out: dict[str, list[dict[str, Any]]] = {}
    for uri, extra in rows:
        out.setdefault(uri, []).append(dict(extra))
    return out


def the_event(ti: Any, name: str) -> dict[str, Any]:
    """The one event task ``ti`` left on asset ``name`` (and on no other asset)."""
    events = events_of(ti)
    assert list(events) == [ASSET(name)], events
    (extra,) = events[ASSET(name)]
    return extra


def on_disk(uri: str) -> dict[str, Any]:
    """What the object at ``uri`` (a local file) really is: its bytes and sha256."""
    path = Path(uri.removeprefix("file://"))
    data = path.read_bytes()
    return {"uri": uri, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def csv_rows(uri: str) -> int:
    with Path(uri.removeprefix("file://")).open(newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1  # the header


def test_habu_flow_run_report_question_run_and_files_carry_their_run_and_objects(vendors, tmp_path):
    tis = run_dag(DAGS, "assets_habu", run_conf={"out": str(tmp_path)})
    assert {t: ti.state for t, ti in tis.items()} == dict.fromkeys(
        ("flow", "report", "question", "files"), "success"
    )
    flow_run, question_run = xcom(tis["flow"]), xcom(tis["question"])

    flow = the_event(tis["flow"], "habu_flow_run")
    assert flow == {
        "vendor": "LiveRamp Clean Room",
        "run_id": flow_run,
        "run_url": f"https://app.habu.com/clean-rooms/cr-acme/flows/runs/{flow_run}",
        "kind": "flow_run",
        "scope": {"cleanroom_id": "cr-acme", "flow_id": "flow-weekly"},
        "status": "succeeded",
        "vendor_status": "COMPLETED",
    }

    report = the_event(tis["report"], "habu_report")
    (written,) = [p for p in tmp_path.iterdir() if p.suffix == ".csv"]
    assert report == {
        **on_disk(report["uri"]),
        "rows": csv_rows(report["uri"]),
        "vendor": "LiveRamp Clean Room",
        "run_id": flow_run,
        "run_url": flow["run_url"],
    }
    assert Path(report["uri"].removeprefix("file://")) == written and report["rows"] == 1234

    question = the_event(tis["question"], "habu_question_run")
    assert question["run_id"] == question_run and question["kind"] == "question_run"
    assert question["status"] == "succeeded" and question["vendor_status"] == "COMPLETED"

    files = the_event(tis["files"], "habu_question_files")
    landed = sorted(str(p) for p in (tmp_path / "question").iterdir())
    assert sorted(o["uri"].removeprefix("file://") for o in files["objects"]) == landed
    for obj in files["objects"]:
        expected = on_disk(obj["uri"])
        if obj["uri"].endswith("data.csv"):
            expected["rows"] = csv_rows(obj["uri"])
        assert obj == expected
    assert files["bytes"] == sum(o["bytes"] for o in files["objects"])
    assert files["vendor"] == "LiveRamp Clean Room" and files["run_id"] == question_run
    assert "run_url" not in files  # the transfer is not told the clean room: no guessed address


def test_amperity_run_operator_marks_its_outlet_with_the_finished_run(vendors):
    tis = run_dag(DAGS, "assets_amperity")
    assert tis["run"].state == "success"
    run_id = xcom(tis["run"])
    assert the_event(tis["run"], "amperity_run") == {
        "vendor": "Amperity",
        "run_id": run_id,
        "run_url": f"https://app.amperity.com/#/acme/workflows/{run_id}",
        "kind": "run",
        "status": "succeeded",
        "vendor_status": "succeeded",
    }


def test_activepieces_run_and_step_outputs_carry_the_run_and_each_file(vendors, tmp_path):
    tis = run_dag(DAGS, "assets_activepieces", run_conf={"out": str(tmp_path)})
    assert {t: ti.state for t, ti in tis.items()} == {"trigger": "success", "steps": "success"}
    run_id = xcom(tis["trigger"])
    run_url = f"{vendors.url('activepieces')}/projects/{PROJECT_ID}/runs/{run_id}"
    run = the_event(tis["trigger"], "activepieces_run")
    assert run == {
        "vendor": "Activepieces",
        "run_id": run_id,
        "run_url": run_url,
        "kind": "run",
        "status": "succeeded",
        "vendor_status": "SUCCEEDED",
    }
    steps = the_event(tis["steps"], "activepieces_steps")
    landed = sorted(str(p) for p in (tmp_path / run_id).iterdir())
    assert len(landed) >= 2 and sorted(o["uri"].removeprefix("file://") for o in steps["objects"]) == landed
    assert all(o == on_disk(o["uri"]) for o in steps["objects"])
    assert steps["bytes"] == sum(o["bytes"] for o in steps["objects"])
    assert (steps["vendor"], steps["run_id"], steps["run_url"]) == ("Activepieces", run_id, run_url)
    assert FLOW_OK not in json.dumps(steps)  # the extra names the run, not the flow's internals


def test_tableflow_run_and_results_carry_the_run_and_every_object(vendors, tmp_path):
    document = tmp_path / "invoice.pdf"
    document.write_bytes(b"%PDF-1.4\n" + os.urandom(20_000))
    out = tmp_path / "out"
    tis = run_dag(DAGS, "assets_tableflow", run_conf={"file": str(document), "out": str(out)})
    assert {t: ti.state for t, ti in tis.items()} == {"run": "success", "results": "success"}
    run_id = xcom(tis["run"])
    run = the_event(tis["run"], "tableflow_run")
    assert run["run_id"] == run_id and run["vendor"] == "Tableflow"
    assert (run["status"], run["vendor_status"], run["kind"]) == ("succeeded", "completed", "run")
    results = the_event(tis["results"], "tableflow_results")
    landed = sorted(str(p) for p in out.rglob("*") if p.is_file())
    assert sorted(o["uri"].removeprefix("file://") for o in results["objects"]) == landed
    assert all(o == on_disk(o["uri"]) for o in results["objects"])
    assert any(o["uri"].endswith(".csv") for o in results["objects"])
    assert results["bytes"] == sum(o["bytes"] for o in results["objects"])
    assert results["run_id"] == run_id and results.get("run_url") == run.get("run_url")

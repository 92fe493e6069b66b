"""Habu (LiveRamp Clean Room) against its vendor's own examples, served verbatim by the emulator.

Every fixture in ``tests/contracts/habu/`` is put on the wire as it stands (``serve_verbatim``) and
read by the hook, operator, sensor, trigger or transfer that could receive it; request examples are
compared with what the provider sent (the emulator records the requests its verbatim answers
went to). Each outcome is asserted by value - the rows, the status, the ids - or is an error that
names the field; never a success with empty, partial or guessed output.
"""

from __future__ import annotations

import csv
import json

import pytest
from contract_examples import example

from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError, UnexpectedResponse
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.core.schedule import PollSchedule
from airflow_provider_flowruns.core.storage import IncompleteTransfer
from airflow_provider_flowruns.hooks import habu as habu_hooks
from airflow_provider_flowruns.hooks.habu import FLOW_RUN, QUESTION_RUN, HabuHook
from airflow_provider_flowruns.operators.habu import HabuQuestionRunOperator
from airflow_provider_flowruns.sensors.habu import HabuFlowRunSensor, HabuQuestionRunSensor
from airflow_provider_flowruns.testing.process import EmulatorProcess
from airflow_provider_flowruns.transfers.habu import (
    HabuFlowRunReportToStorageOperator,
    HabuQuestionRunFilesToStorageOperator,
)
from airflow_provider_flowruns.triggers.run import FlowRunTrigger

SPEED = 600
FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05, "max_retries": 1}
CR = "cr1234"
V1 = "/habu/v1"


@pytest.fixture(scope="module")
def habu_server():
    with EmulatorProcess(["habu"], speed=SPEED) as emu:
        yield emu


@pytest.fixture
def habu(habu_server, monkeypatch, tmp_path):
    habu_server.control("POST", "reset")
    monkeypatch.setenv(
        "AIRFLOW_CONN_HABU_DEFAULT",
        json.dumps(
            {
                "conn_type": "habu",
                "host": habu_server.url("habu", "/v1"),
                "login": "habu-client",
                "password": "habu-secret",
                "extra": {"emulator_time_scale": SPEED},
            }
        ),
    )
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__TOKEN_LOCK_DIR", str(tmp_path / "locks"))
    from airflow_provider_flowruns.core import shared_tokens

    monkeypatch.setattr(shared_tokens.SHARED_TOKEN_CACHE, "_memory", shared_tokens.MemoryTokenCache())
    monkeypatch.setattr(habu_hooks.CREATE_BUDGET, "_memory", {})
    return habu_server


def serve(emu, name: str, method: str, path: str, **answer) -> dict:
    """Serve fixture ``name`` (its documented status and body) at ``method V1+path``."""
    ex = example("habu", name)
    emu.serve_verbatim({"method": method, "path": V1 + path, "status": ex.status, "body": ex.body, **answer})
    return ex.body


def sent(emu, path: str) -> list:
    """The JSON bodies the provider sent to ``V1+path`` (answered verbatim), oldest first."""
    return [r["body"] for r in emu.verbatim_requests() if r["path"] == V1 + path]


def flow_ref(run_id: str) -> RunRef:
    return RunRef(run_id, kind=FLOW_RUN, scope={"cleanroom_id": CR})


def read_csv(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# -- reports: both documented shapes, one table ----------------------------------------------------
REPORT = f"/cleanrooms/{CR}/cleanroom-flow-runs/fr1234/report"


def report_op(tmp_path, fmt: str = "csv", name: str = "report") -> HabuFlowRunReportToStorageOperator:
    return HabuFlowRunReportToStorageOperator(
        task_id="r",
        cleanroom_id=CR,
        run_id="fr1234",
        node="q2 - Clone",
        destination=str(tmp_path / "out" / f"{name}.{fmt}"),
        format=fmt,
    )


def test_seed_report_page_is_one_row_of_total_count(habu, tmp_path):
    """Seed 000's report: written before as a 2-byte CSV ("Wrote 0 rows") - now its one row."""
    serve(habu, "report_record_stats", "GET", REPORT, query={"node": "q2 - Clone"})
    result = report_op(tmp_path).execute({})
    assert result["rows"] == 1
    assert (tmp_path / "out" / "report.csv").read_bytes() == b"Total Count\r\n576\r\n"


def test_seed_report_page_as_json_lines(habu, tmp_path):
    serve(habu, "report_record_stats", "GET", REPORT)
    assert report_op(tmp_path, "jsonl").execute({})["rows"] == 1
    assert (tmp_path / "out" / "report.jsonl").read_text(encoding="utf-8") == '{"Total Count":"576"}\n'


def _seed_shaped(dimensions_as: str) -> dict:
    """The seed's shape with two dimensions, in both readings of a record group's ``dimensions``."""

    def dims(platform: str, brand: str) -> list:
        if dimensions_as == "key-value":
            return [{"key": "PLATFORM", "value": platform}, {"key": "BRAND", "value": brand}]
        return [platform, brand]

    return {
        "response": {
            "title": "reach",
            "metadata": {"facts": ["ROW_COUNT", "REACH"], "dimensions": ["PLATFORM", "BRAND"]},
            "recordStats": [
                {
                    "dimensions": dims("ios", "acme"),
                    "records": [{"key": "ROW_COUNT", "value": "10"}, {"key": "REACH", "value": "7"}],
                },
                {
                    "dimensions": dims("web", "acme"),
                    "records": [{"key": "ROW_COUNT", "value": "3"}, {"key": "REACH", "value": "2"}],
                },
            ],
        }
    }


SPEC_SHAPED = {
    "metadata": [
        {"fieldName": name, "dataType": "STRING", "columnName": name}
        for name in ("PLATFORM", "BRAND", "ROW_COUNT", "REACH")
    ],
    "stats": [
        {"PLATFORM": "ios", "BRAND": "acme", "ROW_COUNT": "10", "REACH": "7"},
        {"PLATFORM": "web", "BRAND": "acme", "ROW_COUNT": "3", "REACH": "2"},
    ],
    "count": 2,
}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_both_report_shapes_write_the_same_table(habu, tmp_path, fmt):
    written = {}
    for label, body in [
        ("spec", SPEC_SHAPED),
        ("seed-kv", _seed_shaped("key-value")),
        ("seed-plain", _seed_shaped("plain")),
        ("spec-wrapped", {"response": SPEC_SHAPED}),
    ]:
        habu.clear_verbatim()
        habu.serve_verbatim({"method": "GET", "path": V1 + REPORT, "body": body})
        assert report_op(tmp_path, fmt, label).execute({})["rows"] == 2
        written[label] = (tmp_path / "out" / f"{label}.{fmt}").read_bytes()
    assert len(set(written.values())) == 1, written
    if fmt == "csv":
        assert written["spec"] == b"PLATFORM,BRAND,ROW_COUNT,REACH\r\nios,acme,10,7\r\nweb,acme,3,2\r\n"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"response": {"title": "x"}}, "response: neither a 'stats' list"),
        ({"title": "x", "metadata": []}, "(body): neither a 'stats' list"),
        ({"response": {"metadata": {"facts": ["A"]}, "recordStats": [{"dimensions": []}]}}, "records"),
        (
            {"response": {"metadata": {"facts": ["A"]}, "recordStats": [{"records": [{"key": "A"}]}]}},
            "response.recordStats[0].records[0].value: Field required",
        ),
        (
            {
                "metadata": {"facts": ["A"], "dimensions": ["D"]},
                "recordStats": [{"dimensions": ["x", "y"], "records": []}],
            },
            "recordStats[0].dimensions: 2 plain values for the 1 dimensions",
        ),
        ({"response": {"recordStats": []}}, "response.metadata: Field required"),
        ({"metadata": [], "stats": None, "count": 0}, "stats: Input should be a valid list"),
    ],
)
def test_an_unrecognised_report_fails_naming_the_field_and_writes_nothing(habu, tmp_path, body, field):
    habu.serve_verbatim({"method": "GET", "path": V1 + REPORT, "body": body})
    with pytest.raises(UnexpectedResponse) as exc:
        report_op(tmp_path).execute({})
    assert field in str(exc.value)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": [{"fieldName": "A", "columnName": "A"}], "stats": [], "count": 0},
        {"response": {"metadata": {"facts": ["A"], "dimensions": []}, "recordStats": []}},
    ],
)
def test_an_empty_report_is_written_only_when_the_vendor_says_so(habu, tmp_path, body):
    habu.serve_verbatim({"method": "GET", "path": V1 + REPORT, "body": body})
    assert report_op(tmp_path).execute({})["rows"] == 0
    assert (tmp_path / "out" / "report.csv").read_bytes() == b"A\r\n"


def test_seed_shape_pages_until_a_short_page(habu, tmp_path):
    """No count in the seed's shape: a full page asks for the next; a shorter one ends the report."""

    def page(first: int, n: int) -> dict:
        groups = [
            {"dimensions": [str(i)], "records": [{"key": "N", "value": str(i)}]}
            for i in range(first, first + n)
        ]
        return {"response": {"metadata": {"facts": ["N"], "dimensions": ["I"]}, "recordStats": groups}}

    habu.serve_verbatim(
        {"method": "GET", "path": V1 + REPORT, "query": {"offset": "0"}, "body": page(0, 3)},
        {"method": "GET", "path": V1 + REPORT, "query": {"offset": "3"}, "body": page(3, 3)},
        {"method": "GET", "path": V1 + REPORT, "query": {"offset": "6"}, "body": page(6, 1)},
    )
    op = report_op(tmp_path)
    op.page_size = 3
    assert op.execute({})["rows"] == 7
    assert read_csv(tmp_path / "out" / "report.csv") == [["I", "N"]] + [[str(i), str(i)] for i in range(7)]
    assert [r["query"]["offset"] for r in habu.verbatim_requests()] == ["0", "3", "6"]


def test_a_column_first_seen_on_the_last_page_is_kept(habu, tmp_path):
    meta = [{"fieldName": "brand", "columnName": "brand"}]
    habu.serve_verbatim(
        {
            "method": "GET",
            "path": V1 + REPORT,
            "query": {"offset": "0"},
            "body": {"metadata": meta, "stats": [{"brand": "a"}, {"brand": "b"}], "count": 3},
        },
        {
            "method": "GET",
            "path": V1 + REPORT,
            "query": {"offset": "2"},
            "body": {"metadata": meta, "stats": [{"brand": "c", "late": "kept"}], "count": 3},
        },
    )
    op = report_op(tmp_path)
    op.page_size = 2
    assert op.execute({})["rows"] == 3
    assert read_csv(tmp_path / "out" / "report.csv") == [
        ["brand", "late"],
        ["a", ""],
        ["b", ""],
        ["c", "kept"],
    ]


# -- question-run result data and files (spec §1.5) ------------------------------------------------------
QRUN = "qr-1"


def _serve_files(emu, *names: str) -> None:
    for name in names:
        emu.serve_verbatim(
            {
                "method": "GET",
                "path": f"{V1}/cleanroom-question-runs/{QRUN}/download/{name}",
                "text": f"file {name}\n",
                "content_type": "text/csv",
            }
        )


def files_op(tmp_path, include_data: str | None = "csv") -> HabuQuestionRunFilesToStorageOperator:
    return HabuQuestionRunFilesToStorageOperator(
        task_id="f", run_id=QRUN, destination=str(tmp_path / "out"), include_data=include_data
    )


def test_spec_result_example_rows_with_more_columns_than_metadata(habu, tmp_path):
    """§1.5's example: metadata lists ``brand``, its rows carry ``reach`` too (UnexpectedColumn
    before). Served for every page, as a vendor answering with that example would: two pages of
    one row each make the announced count of 2."""
    serve(habu, "question_run_result_data", "GET", f"/cleanroom-question-runs/{QRUN}/data")
    _serve_files(habu, "output_a.csv", "output_b.csv")
    written = files_op(tmp_path).execute({})
    assert [w["source"] for w in written] == ["output_a.csv", "output_b.csv", "data"]
    assert written[-1]["rows"] == 2
    out = tmp_path / "out"
    assert read_csv(out / "data.csv") == [["brand", "reach"], ["nike", "1234"], ["nike", "1234"]]
    assert (out / "output_a.csv").read_text() == "file output_a.csv\n"


def test_spec_result_example_alone_is_one_row_short_and_lands_nothing(habu, tmp_path):
    """The example page once (count 2, one row), then an empty page: the transfer fails, and the two
    files it had already downloaded are gone with it (all or nothing)."""
    data = f"/cleanroom-question-runs/{QRUN}/data"
    serve(habu, "question_run_result_data", "GET", data, query={"offset": "0"})
    habu.serve_verbatim(
        {
            "method": "GET",
            "path": V1 + data,
            "query": {"offset": "1"},
            "body": {"metadata": [], "stats": [], "count": 2},
        }
    )
    _serve_files(habu, "output_a.csv", "output_b.csv")
    with pytest.raises(IncompleteTransfer, match="received 1 rows, the API announced 2"):
        files_op(tmp_path).execute({})
    downloads = [r["path"] for r in habu.verbatim_requests() if "/download/" in r["path"]]
    assert len(downloads) == 2  # both files were fetched before the data failed
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []


def test_a_failing_data_page_after_two_downloads_leaves_nothing(habu, tmp_path):
    data = f"/cleanroom-question-runs/{QRUN}/data"
    serve(habu, "question_run_result_data", "GET", data, query={"limit": "1"})
    habu.serve_verbatim(
        {"method": "GET", "path": V1 + data, "status": 500, "body": {"code": "500", "message": "boom"}}
    )
    _serve_files(habu, "output_a.csv", "output_b.csv")
    with pytest.raises(FlowRunsApiError) as exc:
        files_op(tmp_path).execute({})
    assert exc.value.status == 500
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []


# -- flow runs ------------------------------------------------------------------------------------------------
def test_seed_create_request_is_sent_as_documented_and_its_answer_is_run_fr1234(habu):
    request = example("habu", "create_flow_run_request_seed").body
    path = f"/cleanrooms/{CR}/cleanroom-flows/f1/clean-room-flow-runs"
    serve(habu, "create_flow_run_response_seed", "POST", path)
    run = HabuHook(**FAST).create_flow_run(
        CR,
        "f1",
        name=request["name"],
        flow_run_parameters=request["flowRunParameters"],
        start_level=request["startLevelId"],
        pause_level=request["pauseLevelId"],
    )
    assert run["id"] == "fr1234"
    assert sent(habu, path) == [request]


def test_spec_create_request_is_sent_as_documented_and_answered_with_flow_run_metadata(habu):
    request = example("habu", "create_flow_run_request_spec").body
    path = f"/cleanrooms/{CR}/cleanroom-flows/f1/cleanroom-flow-runs"
    serve(habu, "flow_run_metadata", "POST", path)
    options = {k: v for k, v in request.items() if k not in ("name", "pauseLevelID", "nodes")}
    run = HabuHook(**FAST).create_flow_run(
        CR,
        "f1",
        name=request["name"],
        nodes=request["nodes"],
        pause_level=request["pauseLevelID"],
        options=options,
    )
    assert run["id"] == "fr_..." and run["status"] == "RUNNING"
    assert sent(habu, path) == [request]


@pytest.mark.parametrize(
    "body",
    [{"response": {"success": True}}, {"response": {"Id": ""}}, {"response": ["fr1234"]}, {"name": "x"}],
)
def test_a_create_answer_without_a_run_id_fails_naming_it(habu, body):
    path = f"/cleanrooms/{CR}/cleanroom-flows/f1/cleanroom-flow-runs"
    habu.serve_verbatim({"method": "POST", "path": V1 + path, "body": body})
    with pytest.raises(UnexpectedResponse, match=r"no run id|valid dictionary") as exc:
        HabuHook(**FAST).create_flow_run(CR, "f1", name="n", nodes={})
    assert "the run may exist" in str(exc.value)


def test_flow_run_parameters_in_the_seeds_wrapper(habu):
    path = f"/cleanrooms/{CR}/cleanroom-flows/f1/flow-run-parameters"
    serve(habu, "flow_run_parameters_wrapped", "GET", path)
    params = HabuHook(**FAST).flow_run_parameters(CR, "f1")
    assert params == [{"nodeId": "n1234", "nodeQuestionName": "q1 - Clone", "parameterMetadataList": []}]


def test_flow_run_parameters_without_node_ids_fail_naming_the_field(habu):
    path = f"/cleanrooms/{CR}/cleanroom-flows/f1/flow-run-parameters"
    habu.serve_verbatim({"method": "GET", "path": V1 + path, "body": {"flowRunParameters": [{"node": "x"}]}})
    with pytest.raises(
        UnexpectedResponse,
        match=r"flowRunParameters\[0\]\.nodeId: Field required",
    ):
        HabuHook(**FAST).flow_run_parameters(CR, "f1")


STATUS_PATH = f"/cleanrooms/{CR}/cleanroom-flow-runs/fr1234"


@pytest.mark.parametrize(
    ("name", "state", "vendor_status", "message"),
    [
        ("flow_run_poll_wrapped", RunState.SUCCEEDED, "COMPLETED", None),
        ("flow_run_metadata", RunState.RUNNING, "RUNNING", "..."),
        ("flow_run_status", RunState.RUNNING, "RUNNING", None),  # the /status body, read the same
    ],
)
def test_flow_run_status_examples(habu, name, state, vendor_status, message):
    serve(habu, name, "GET", STATUS_PATH)
    status = HabuHook(**FAST).get_status(flow_ref("fr1234"))
    assert (status.state, status.vendor_status, status.message) == (state, vendor_status, message)


def test_seed_poll_answer_via_get_flow_run(habu):
    serve(habu, "flow_run_poll_wrapped", "GET", STATUS_PATH)
    run = HabuHook(**FAST).get_flow_run(CR, "fr1234")
    assert (run["id"], run["status"]) == ("1e0d7f4a-d6a1-4000-9e5f-41968137e825", "COMPLETED")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"response": {"id": "fr1234", "state": "COMPLETED"}}, "response.status: Field required"),
        ({"id": "fr1234", "status": None}, "status: Input should be a valid string"),
        ({"response": "COMPLETED"}, "response: Input should be a valid dictionary"),
    ],
)
def test_a_status_body_without_a_status_fails_naming_the_field(habu, body, field):
    habu.serve_verbatim({"method": "GET", "path": V1 + STATUS_PATH, "body": body})
    with pytest.raises(UnexpectedResponse) as exc:
        HabuHook(**FAST).get_status(flow_ref("fr1234"))
    assert field in str(exc.value)


async def test_trigger_reads_the_seed_poll_answer_as_success(habu):
    serve(habu, "flow_run_poll_wrapped", "GET", STATUS_PATH)
    hook = HabuHook(**FAST)
    trigger = FlowRunTrigger(
        hook_class_path=hook.class_path(),
        hook_kwargs=hook.hook_kwargs(),
        run_ref=flow_ref("fr1234").to_dict(),
        schedule=PollSchedule.fixed(300 / SPEED, 0.0).to_dict(),
    )
    try:
        events = [event.payload async for event in trigger.run()]
    finally:
        await trigger.cleanup()
    assert [(e["status"], e["run_id"], e["vendor_status"]) for e in events] == [
        ("success", "fr1234", "COMPLETED")
    ]


async def test_trigger_fails_on_a_status_body_it_cannot_read(habu):
    habu.serve_verbatim({"method": "GET", "path": V1 + STATUS_PATH, "body": {"response": {"id": "fr1234"}}})
    hook = HabuHook(**FAST)
    trigger = FlowRunTrigger(
        hook_class_path=hook.class_path(),
        hook_kwargs=hook.hook_kwargs(),
        run_ref=flow_ref("fr1234").to_dict(),
        schedule=PollSchedule.fixed(300 / SPEED, 0.0).to_dict(),
    )
    try:
        events = [event.payload async for event in trigger.run()]
    finally:
        await trigger.cleanup()
    assert len(events) == 1 and events[0]["status"] == "error"
    assert "response.status: Field required" in events[0]["message"]


def test_flow_run_sensor_on_the_seed_poll_answer(habu):
    serve(habu, "flow_run_poll_wrapped", "GET", STATUS_PATH)
    sensor = HabuFlowRunSensor(task_id="s", run_id="fr1234", cleanroom_id=CR, poke_interval=300)
    assert sensor.poke({}) is True


def test_resume_request_and_answer(habu):
    path = f"/cleanrooms/{CR}/cleanroom-flow-runs/fr1234/resume-flow-run"
    serve(habu, "resume_response", "POST", path)
    assert HabuHook(**FAST).resume_flow_run(CR, "fr1234", pause_level=2) == {"success": True}
    assert sent(habu, path) == [example("habu", "resume_request").body]


def test_resume_answered_success_false_fails(habu):
    path = f"/cleanrooms/{CR}/cleanroom-flow-runs/fr1234/resume-flow-run"
    habu.serve_verbatim({"method": "POST", "path": V1 + path, "body": {"success": False}})
    with pytest.raises(FlowRunsApiError, match="did not resume flow run fr1234"):
        HabuHook(**FAST).resume_flow_run(CR, "fr1234")


def test_replay_answer_names_the_new_run(habu):
    path = f"/cleanrooms/{CR}/cleanroom-flow-runs/fr1234/replay-flow-run"
    serve(habu, "replay_response", "POST", path)
    assert HabuHook(**FAST).replay_flow_run(CR, "fr1234", name="again") == "<NEW run id>"
    assert sent(habu, path) == [{"name": "again"}]


# -- question runs and provisioning (seed 001, spec §1.4) ---------------------------------------------------
def test_seed_question_run_create_request_and_answer(habu):
    """Seed 001 shows the request file wrapped in ``{"response": ...}`` (a copy of an answer, we
    read it): what is sent is its inner object, ``name`` plus string ``parameters``."""
    request = example("habu", "create_question_run_request_seed").body["response"]
    path = "/cleanroom-questions/crq1234/create-run"
    serve(habu, "create_question_run_response_seed", "POST", path)
    run = HabuHook(**FAST).create_question_run(
        "crq1234", name=request["name"], parameters=request["parameters"]
    )
    assert (run["id"], run["status"]) == ("8e42c214-c610-4841-8b7a-f38210b9e857", "QUEUED")
    assert sent(habu, path) == [request]


def test_spec_question_run_create_request(habu):
    request = example("habu", "create_question_run_request_spec").body
    path = "/cleanroom-questions/crq1234/create-run"
    serve(habu, "question_run_metadata", "POST", path)
    run = HabuHook(**FAST).create_question_run(
        "crq1234", name=request["name"], parameters=request["parameters"]
    )
    assert run["id"] == "..."
    assert sent(habu, path) == [request]


@pytest.mark.parametrize(
    ("name", "state", "vendor_status"),
    [
        ("question_run_poll_wrapped", RunState.SUCCEEDED, "COMPLETED"),
        ("question_run_metadata", RunState.SUCCEEDED, "COMPLETED"),
        ("create_question_run_response_seed", RunState.QUEUED, "QUEUED"),
    ],
)
def test_question_run_status_examples(habu, name, state, vendor_status):
    serve(habu, name, "GET", "/cleanroom-question-runs/qr-1")
    status = HabuHook(**FAST).get_status(RunRef("qr-1", kind=QUESTION_RUN))
    assert (status.state, status.vendor_status) == (state, vendor_status)


def test_question_run_sensor_and_get_question_run_on_the_seed_poll_answer(habu):
    serve(habu, "question_run_poll_wrapped", "GET", "/cleanroom-question-runs/qr-1")
    assert HabuQuestionRunSensor(task_id="s", run_id="qr-1", poke_interval=300).poke({}) is True
    run = HabuHook(**FAST).get_question_run("qr-1")
    assert (
        run["id"] == "8e42c214-c610-4841-8b7a-f38210b9e857"
        and run["parameters"]["START_DATE"] == "2024-10-01"
    )


def test_question_parameters_example(habu):
    serve(
        habu,
        "question_parameters_response",
        "GET",
        "/cleanroom-questions/crq1234/cleanroom-question-parameters",
    )
    params = HabuHook(**FAST).question_parameters("crq1234")
    assert [p["Name"] for p in params["parameters"]] == ["START_DATE", "END_DATE", "BRAND"]


def test_create_question_request_and_answer(habu):
    request = example("habu", "create_question_request").body
    serve(habu, "create_question_response", "POST", "/question")
    assert HabuHook(**FAST).create_question(request) == "q1234"
    assert sent(habu, "/question") == [request]


def test_create_question_answer_without_an_id_fails(habu):
    habu.serve_verbatim({"method": "POST", "path": V1 + "/question", "body": {"response": {"success": True}}})
    with pytest.raises(UnexpectedResponse, match="response: Value error, no question id"):
        HabuHook(**FAST).create_question({"questionDetails": {}})


def test_provision_details_and_ownership_examples(habu):
    serve(habu, "provision_question_response", "POST", f"/cleanrooms/{CR}/cleanroom-questions")
    serve(habu, "question_details_response", "GET", "/cleanroom-questions/crq1234")
    serve(habu, "datasets_ownership_response", "POST", "/cleanroom-questions/crq1234/datasets-ownership")
    hook = HabuHook(**FAST)
    added = hook.add_question_to_cleanroom(CR, "q1234")
    assert (added["id"], added["stage"]) == ("a1234", "MISSING_DATASETS")
    assert hook.get_question("crq1234")["displayId"] == "CRQ-109839"
    owned = hook.assign_dataset_ownership("crq1234", [{"organizationId": "oo1234", "macro": "digital"}])
    assert owned["id"] == "crq1234"


# -- errors --------------------------------------------------------------------------------------------
def test_the_3p_401_body_is_an_error_with_its_message(habu):
    serve(habu, "error_unauthorized_3p", "GET", "/cleanroom-questions/crq1234")
    with pytest.raises(FlowRunsApiError) as exc:
        HabuHook(**FAST).get_question("crq1234")
    assert exc.value.status == 401 and exc.value.vendor_code == "UNAUTHORIZED"
    assert "Full authentication is required to access this resource" in str(exc.value)


def test_quoting_survives_either_shape(habu, tmp_path):
    """Commas, quotes and CRLF inside a value come back intact (RFC 4180), from the seed's shape."""
    value = 'x,"y"\r\nz'
    body = {"metadata": {"facts": ["a"]}, "recordStats": [{"records": [{"key": "a", "value": value}]}]}
    habu.serve_verbatim({"method": "GET", "path": V1 + REPORT, "body": body})
    report_op(tmp_path).execute({})
    assert read_csv(tmp_path / "out" / "report.csv") == [["a"], [value]]


def test_the_documented_415_on_the_token_endpoint_fails_with_its_status(habu):
    serve(habu, "error_unsupported_media_type_3p", "POST", "/oauth/token")
    with pytest.raises(FlowRunsApiError) as exc:
        HabuHook(**FAST).get_question("crq1234")
    # The token code (core/auth.py, not this change) does not quote the body's status word.
    assert exc.value.status == 415 and "token endpoint answered HTTP 415" in str(exc.value)
    assert "habu-secret" not in str(exc.value)


# -- token and health ------------------------------------------------------------------------------------
def test_the_documented_token_response_authorizes_calls(habu):
    """camelCase ``accessToken``/``expiresIn``/``expiresAt``, as the example shows."""
    serve(habu, "token_response", "POST", "/oauth/token")
    serve(habu, "question_details_response", "GET", "/cleanroom-questions/crq1234")
    assert HabuHook(**FAST).get_question("crq1234")["id"] == "crq1234"
    assert [r["path"] for r in habu.verbatim_requests()] == [
        V1 + "/oauth/token",
        V1 + "/cleanroom-questions/crq1234",
    ]


def test_the_emulator_health_answer_is_the_documented_one(habu):
    """No provider code reads ``/health``; the emulator at least answers the documented body."""
    import httpx

    assert httpx.get(habu.url("habu", "/v1/health")).json() == example("habu", "health").body


# -- question parameters at DAG parse (the create-run body maps names to strings) -------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parameters": {"BRANDS": ["acme", "zeta"]}}, "parameters['BRANDS'] must be a string"),
        ({"parameters": {"RANGE": {"from": "2025-01-01"}}}, "parameters['RANGE'] must be a string"),
        ({"partition_parameters": {"digital.app_id": None}}, "partition_parameters['digital.app_id']"),
        ({"parameters": {"ENABLED": True}}, "got bool True (pass 'true' or 'false' as a string)"),
    ],
)
def test_non_string_question_parameters_fail_at_parse_naming_the_parameter(kwargs, message):
    with pytest.raises(FlowRunsConfigError) as exc:
        HabuQuestionRunOperator(task_id="q", question_id="crq1234", **kwargs)
    assert message in str(exc.value)


def test_string_templated_and_number_parameters_are_accepted_and_sent_as_strings(habu):
    op = HabuQuestionRunOperator(
        task_id="q", question_id="crq1234", parameters={"START_DATE": "{{ ds }}", "DAYS": 30, "RATE": 0.5}
    )
    assert op.parameters["DAYS"] == 30  # kept as given until the run: templates render first
    path = "/cleanroom-questions/crq1234/create-run"
    serve(habu, "create_question_run_response_seed", "POST", path)
    HabuHook(**FAST).create_question_run("crq1234", name="n", parameters={"DAYS": 30, "RATE": 0.5, "D": "x"})
    assert sent(habu, path) == [{"name": "n", "parameters": {"DAYS": "30", "RATE": "0.5", "D": "x"}}]


def test_a_list_parameter_rendered_at_run_time_is_refused_before_anything_is_sent(habu):
    with pytest.raises(FlowRunsConfigError, match=r"parameters\['BRANDS'\]"):
        HabuHook(**FAST).create_question_run("crq1234", name="n", parameters={"BRANDS": ["a"]})
    assert habu.stats()["vendors"]["habu"].get("runs_created", 0) == 0

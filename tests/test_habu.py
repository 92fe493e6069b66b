"""LiveRamp Clean Room (Habu) end to end against its emulator: the token ration, both create
shapes, levels/pause/resume/replay, reports and files to storage, the hourly create budget and the
5-minute poll floor, with the operators under the real Airflow (dag.test())."""

from __future__ import annotations

import csv
import json
import re
import runpy
import time
from pathlib import Path

import pytest

from airflow_provider_flowruns.core.errors import (
    FlowRunsApiError,
    FlowRunsConfigError,
    RateLimitBudgetExhausted,
)
from airflow_provider_flowruns.core.runs import RunRef, RunState
from airflow_provider_flowruns.core.storage import as_storage_path
from airflow_provider_flowruns.hooks import habu as habu_hooks
from airflow_provider_flowruns.hooks.habu import FLOW_RUN, QUESTION_RUN, HabuHook, level_id
from airflow_provider_flowruns.operators.habu import HabuFlowRunOperator, HabuQuestionRunOperator
from airflow_provider_flowruns.testing.process import EmulatorProcess
from airflow_provider_flowruns.transfers.habu import HabuFlowRunReportToStorageOperator, unique_name

#: Emulated seconds per real second. The connection says the same (``emulator_time_scale``), so
#: the 5-minute floor is half a real second and an emulated hour six.
SPEED = 600
FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}
CR = "cr-acme"
NODE = "6f1c1b7e-0001-4000-8000-00000000000{}".format
DATES = {"START_DATE": "2026-11-16", "END_DATE": "2026-11-23"}


@pytest.fixture(scope="module")
def habu_server():
    with EmulatorProcess(["habu"], speed=SPEED) as emu:
        yield emu


def _conn(emu, **extra) -> str:
    return json.dumps(
        {
            "conn_type": "habu",
            "host": emu.url("habu", "/v1"),
            "login": "habu-client",
            "password": "habu-secret",
            "extra": {"emulator_time_scale": extra.pop("scale", SPEED), **extra},
        }
    )


@pytest.fixture
def habu(habu_server, monkeypatch, tmp_path):
    habu_server.control("POST", "reset")
    monkeypatch.setenv("AIRFLOW_CONN_HABU_DEFAULT", _conn(habu_server))
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__TOKEN_LOCK_DIR", str(tmp_path / "locks"))
    # A fresh process-wide token cache per test: each test counts its own mints.
    from airflow_provider_flowruns.core import shared_tokens

    monkeypatch.setattr(shared_tokens.SHARED_TOKEN_CACHE, "_memory", shared_tokens.MemoryTokenCache())
    # ... and a fresh fallback create ledger: the emulator's hour was just reset too.
    monkeypatch.setattr(habu_hooks.CREATE_BUDGET, "_memory", {})
    return habu_server


def vendor(emu) -> dict:
    return emu.stats()["vendors"]["habu"]


def advance(emu, seconds: float) -> None:
    emu.control("POST", "clock", json={"advance": seconds})


def flow_ref(run_id: str) -> RunRef:
    return RunRef(run_id, kind=FLOW_RUN, scope={"cleanroom_id": CR})


def settle(hook: HabuHook, ref: RunRef, emu, states: set[RunState]) -> RunState:
    """Jump the emulated clock 10 minutes at a time (more than the floor) until a state is reached."""
    for _ in range(200):
        state = hook.get_status(ref).state
        if state in states:
            return state
        advance(emu, 600)
    raise AssertionError(f"{ref.run_id} never reached {states}")


# -- parameters (no network) -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pause_level": "Level-x"}, "pause_level"),
        ({"pause_level": 0}, "pause_level"),
        ({"start_level": True}, "start_level"),
        ({"nodes": [{"parameters": {}}]}, "nodeIdentifier"),
        ({"nodes": {"n": "not-a-dict"}}, "parameters must be a dict"),
        ({"nodes": {}, "flow_run_parameters": []}, "not both"),
        ({"on_create_limit": "retry"}, "on_create_limit"),
    ],
)
def test_bad_flow_run_parameters_fail_at_parse(kwargs, message):
    with pytest.raises(FlowRunsConfigError, match=message):
        HabuFlowRunOperator(task_id="t", cleanroom_id=CR, flow_id="f", **kwargs)


def test_levels_accept_numbers_and_level_ids():
    assert level_id(2) == level_id("2") == level_id("Level-2") == level_id("level2") == "Level-2"
    op = HabuFlowRunOperator(task_id="t", cleanroom_id=CR, flow_id="f", pause_level="{{ params.level }}")
    assert op.pause_level == "{{ params.level }}"  # templated: checked when rendered
    with pytest.raises(FlowRunsConfigError, match="parameters"):
        HabuQuestionRunOperator(task_id="q", question_id="crq", parameters=["START_DATE"])


def test_time_scale_is_refused_for_a_real_vendor(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_HABU_DEFAULT",
        json.dumps(
            {"conn_type": "habu", "login": "c", "password": "s", "extra": {"emulator_time_scale": 600}}
        ),
    )
    with pytest.raises(FlowRunsConfigError, match="loopback"):
        HabuHook().get_client()


def test_poll_floor_is_five_vendor_minutes(habu, capfd):
    op = HabuFlowRunOperator(task_id="t", cleanroom_id=CR, flow_id="f", poll_interval=60)
    assert op.effective_poll_interval() == pytest.approx(300 / SPEED)
    assert "below LiveRamp Clean Room's floor of 300" in capfd.readouterr().out


# -- tokens -----------------------------------------------------------------------------------------------
def test_one_token_serves_every_call_and_hook(habu):
    for _ in range(3):
        hook = HabuHook(**FAST)
        hook.flow_run_parameters(CR, "flow-weekly")
        hook.question_parameters("crq-reach")
    assert vendor(habu)["tokens_minted"] == 1


def test_expired_token_is_refreshed_once_not_per_call(habu):
    hook = HabuHook(**FAST)
    hook.get_question("crq-reach")
    advance(habu, 86400 + 60)  # the token expires on the vendor's clock (our copy still looks valid)
    for _ in range(3):
        hook.get_question("crq-reach")
    stats = vendor(habu)
    assert stats["tokens_minted"] == 2 and stats["unauthorized"] == 1


#: Said by every token refusal, whether the task was about to create a run or checking one.
RUN_GOES_ON = "A run already started keeps running at Habu; this task could not check it."
SPENT = "Habu mints at most two tokens per API user per 24 h and this API user's are spent."
REMEMBERED = (
    "No token request was sent: the token cache this deployment's workers and triggerers share "
    "remembers that Habu refused to mint a token; it asks again after "
)
#: The vendor's 24 h window in real seconds at this speed.
DAY = 86400 / SPEED


@pytest.fixture(scope="module")
def short_server():
    """Tokens that live one emulated hour: a test spends the day's two in seconds."""
    with EmulatorProcess(["habu"], speed=SPEED, env={"FLOWRUNS_HABU_TOKEN_LIFETIME": "3600"}) as emu:
        yield emu


@pytest.fixture
def short(habu, short_server, monkeypatch):
    """Like ``habu`` (fresh caches), on the short-token emulator."""
    short_server.control("POST", "reset")
    monkeypatch.setenv("AIRFLOW_CONN_HABU_DEFAULT", _conn(short_server))
    return short_server


def mint_elsewhere(emu) -> None:
    """Another system using the same API user takes a token (this deployment never hears of it)."""
    import httpx

    answer = httpx.post(
        emu.url("habu", "/v1/oauth/token"),
        auth=("habu-client", "habu-secret"),
        data={"grant_type": "client_credentials"},
    )
    assert answer.status_code == 200, answer.text


def utc_of(text: str) -> float:
    from datetime import datetime, timezone

    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=timezone.utc).timestamp()


def ration_frees(message: str) -> tuple[float, float]:
    """(when the ration frees, when the first of the two tokens was minted), read from a message
    that knows both mints."""
    found = re.search(
        r"The ration frees at (\S+ \S+ UTC) \(24 h after the first of the two tokens, minted at "
        r"(\S+ \S+ UTC)\)\.",
        message,
    )
    assert found, message
    return utc_of(found[1]), utc_of(found[2])


def test_token_ration_exhausted_is_a_clear_error_not_a_retry_storm(short):
    hook = HabuHook(**FAST)
    before = int(time.time())
    hook.get_question("crq-reach")
    after = time.time()
    advance(short, 3700)
    hook.get_question("crq-reach")  # 401, then the day's second token
    advance(short, 3700)
    refused_from = int(time.time())
    with pytest.raises(FlowRunsApiError) as exc:
        hook.get_question("crq-reach")
    refused_by = time.time()
    stats = vendor(short)
    message = str(exc.value)
    assert exc.value.status == 429 and not exc.value.retryable
    assert message.startswith(
        "POST /habu/v1/oauth/token failed with HTTP 429: Token issuance limit reached: 2 tokens per "
        f"24 hours. {SPENT} {RUN_GOES_ON} The ration frees at "
    )
    frees, first = ration_frees(message)
    assert before <= first <= after and frees == first + DAY  # from the mint times it recorded
    asks = re.search(
        r" Until (.+), the token cache this deployment's workers and triggerers share answers with "
        r"this refusal instead of asking again\.$",
        message,
    )
    assert asks, message
    assert refused_from + 3600 / SPEED <= utc_of(asks[1]) + 1 <= refused_by + 3600 / SPEED + 1
    assert stats["tokens_minted"] == 2 and stats["token_refused"] == 1  # asked once, not retried
    # The refusal is remembered (in the cache every process shares): later calls do not ask, and
    # say so instead of quoting an HTTP status no request received.
    for _ in range(3):
        with pytest.raises(FlowRunsApiError) as again:
            hook.get_question("crq-reach")
        remembered = str(again.value)
        assert remembered.startswith(REMEMBERED) and "HTTP" not in remembered
        assert again.value.status is None and not again.value.retryable
        assert RUN_GOES_ON in remembered and SPENT in remembered
        assert ration_frees(remembered) == (frees, first)
    assert vendor(short)["token_refused"] == 1
    time.sleep(3600 / SPEED + 0.5)  # an (emulated) hour later the deployment asks once more
    with pytest.raises(FlowRunsApiError, match="2 tokens per 24 hours"):
        hook.get_question("crq-reach")
    assert vendor(short)["token_refused"] == 2
    assert "habu-secret" not in message
    advance(short, 86400)  # a new day: the API user can mint again, once the refusal expires
    time.sleep(3600 / SPEED + 0.5)
    assert hook.get_question("crq-reach")["id"] == "crq-reach"
    assert vendor(short)["tokens_minted"] == 3


def test_a_ration_spent_elsewhere_frees_within_24_h_of_the_first_token(short):
    """No mint of the two was this deployment's: it cannot name a time, and says what it knows."""
    mint_elsewhere(short)
    mint_elsewhere(short)
    hook = HabuHook(**FAST)
    with pytest.raises(FlowRunsApiError) as exc:
        hook.get_question("crq-reach")
    ends = f"{RUN_GOES_ON} The ration frees within 24 h of the first of the two tokens."
    assert exc.value.status == 429 and ends in str(exc.value)
    with pytest.raises(FlowRunsApiError) as again:
        hook.get_question("crq-reach")
    assert str(again.value).startswith(REMEMBERED) and str(again.value).endswith(ends)
    assert vendor(short)["token_refused"] == 1


def test_a_ration_half_spent_elsewhere_frees_by_24_h_after_our_token_at_the_latest(short):
    """One of the two was this deployment's: the ration frees no later than a day after it."""
    hook = HabuHook(**FAST)
    before = int(time.time())
    hook.get_question("crq-reach")
    after = time.time()
    mint_elsewhere(short)
    advance(short, 3700)  # our token expires at the vendor: the next call needs a third
    with pytest.raises(FlowRunsApiError) as exc:
        hook.get_question("crq-reach")
    found = re.search(
        r"The ration frees by (\S+ \S+ UTC) at the latest \(24 h after the token this deployment "
        r"minted at (\S+ \S+ UTC); the other token\(s\) were minted outside this deployment's "
        r"record\)\.",
        str(exc.value),
    )
    assert exc.value.status == 429 and found, str(exc.value)
    assert before <= utc_of(found[2]) <= after and utc_of(found[1]) == utc_of(found[2]) + DAY
    assert RUN_GOES_ON in str(exc.value)


def test_a_create_refused_a_token_is_not_taken_for_the_create_limit(short, monkeypatch):
    """A create that could get no token was never sent: the task says the token ration is spent
    (not "run creations used up"), and the create slot goes back to the ledger (with a budget of
    one, the second create gets the remembered token refusal, not the ledger's)."""
    monkeypatch.setenv("AIRFLOW_CONN_HABU_DEFAULT", _conn(short, creates_per_hour=1))
    mint_elsewhere(short)
    mint_elsewhere(short)
    hook = HabuHook(**FAST)
    for first in (True, False):
        with pytest.raises(FlowRunsApiError) as exc:
            hook.create_question_run("crq-reach", name="during-a-spent-ration", parameters=DATES)
        assert not isinstance(exc.value, RateLimitBudgetExhausted)
        assert str(exc.value).startswith(
            "POST /habu/v1/oauth/token failed with HTTP 429" if first else REMEMBERED
        )
        assert RUN_GOES_ON in str(exc.value)
    stats = vendor(short)
    assert stats["question_runs"] == 0 and stats["creates_refused"] == 0 and stats["token_refused"] == 1


def test_a_poll_refused_a_token_tells_the_task_its_run_keeps_going(short):
    """The triggerer's poll of a run that exists: the error event says the run keeps going."""
    import asyncio

    from airflow_provider_flowruns.core.schedule import PollSchedule
    from airflow_provider_flowruns.triggers.run import FlowRunTrigger

    hook = HabuHook(**FAST)
    run = hook.create_question_run("crq-reach", name="started-before", parameters=DATES)
    mint_elsewhere(short)  # the day's second token: the ration is spent
    advance(short, 3700)  # and our token has expired at the vendor
    trigger = FlowRunTrigger(
        hook_class_path=hook.class_path(),
        hook_kwargs=hook.hook_kwargs(),
        run_ref=RunRef(run["id"], kind=QUESTION_RUN).to_dict(),
        schedule=PollSchedule.fixed(0.1, 0.0).to_dict(),
    )

    async def events() -> list[dict]:
        try:
            return [event.payload async for event in trigger.run()]
        finally:
            await trigger.cleanup()

    (event,) = asyncio.run(events())
    assert event["status"] == "error"
    assert event["message"].startswith("POST /habu/v1/oauth/token failed with HTTP 429")
    assert RUN_GOES_ON in event["message"] and "The ration frees by " in event["message"]
    assert vendor(short)["question_runs"] == 1  # the run is still there, at the vendor


# -- flow runs: both create shapes, levels, pause, resume, replay ---------------------------------------
def test_create_spec_shape_pause_resume_complete(habu):
    hook = HabuHook(**FAST)
    params = hook.flow_run_parameters(CR, "flow-weekly")
    assert {p["nodeId"] for p in params} == {NODE(1), NODE(2), NODE(3)}
    run = hook.create_flow_run(
        CR,
        "flow-weekly",
        name="weekly-2026-11-16",
        nodes={NODE(1): DATES, NODE(2): {"BRAND": "acme"}},
        pause_level=1,
    )
    ref = flow_ref(run["id"])
    assert settle(hook, ref, habu, {RunState.PAUSED}) is RunState.PAUSED
    assert "Level-1" in hook.get_status(ref).message
    hook.resume_flow_run(CR, ref.run_id, pause_level=2)
    assert settle(hook, ref, habu, {RunState.PAUSED}) is RunState.PAUSED
    assert "Level-2" in hook.get_status(ref).message
    hook.resume_flow_run(CR, ref.run_id)
    assert settle(hook, ref, habu, {RunState.SUCCEEDED, RunState.FAILED}) is RunState.SUCCEEDED
    with pytest.raises(FlowRunsApiError) as exc:
        hook.resume_flow_run(CR, ref.run_id)
    assert exc.value.status == 409
    assert hook.find_flow_run(CR, "flow-weekly", "weekly-2026-11-16")["id"] == ref.run_id


def test_create_seed_shape_and_validation_errors(habu):
    hook = HabuHook(**FAST)
    typed = {k: {"value": v, "parameterType": "PARTITION_PARAMETER"} for k, v in DATES.items()}
    run = hook.create_flow_run(
        CR,
        "flow-weekly",
        name="seed-shape",
        flow_run_parameters=[{"nodeId": NODE(1), "parameters": typed}],
        start_level=1,
        pause_level="Level-1",
    )
    assert run["id"].startswith("fr-")
    assert hook.get_flow_run(CR, run["id"])["name"] == "seed-shape"
    with pytest.raises(FlowRunsApiError, match="START_DATE") as exc:
        hook.create_flow_run(CR, "flow-weekly", name="no-dates", nodes={NODE(2): {"BRAND": "x"}})
    assert exc.value.status == 400
    with pytest.raises(FlowRunsApiError) as exc:
        hook.create_flow_run(CR, "flow-weekly", name="too-deep", nodes={NODE(1): DATES}, pause_level=9)
    assert exc.value.status == 400


def test_replay_is_a_new_run_that_reuses_results(habu):
    hook = HabuHook(**FAST)
    parent = hook.create_flow_run(CR, "flow-weekly", name="parent", nodes={NODE(1): DATES})["id"]
    settle(hook, flow_ref(parent), habu, {RunState.SUCCEEDED})
    child = hook.replay_flow_run(CR, parent, name="child", start_level=3, flow_id="flow-weekly")
    assert child != parent
    assert hook.get_flow_run(CR, child).get("parentFlowRunId") == parent
    assert settle(hook, flow_ref(child), habu, {RunState.SUCCEEDED}) is RunState.SUCCEEDED
    assert vendor(habu)["runs_created"] == 2


def test_failed_flow_run_carries_the_run_message(habu):
    hook = HabuHook(**FAST)
    run = hook.create_flow_run(CR, "flow-fail", name="will-fail", nodes={NODE(1): DATES})
    ref = flow_ref(run["id"])
    assert settle(hook, ref, habu, {RunState.FAILED}) is RunState.FAILED
    assert "BRAND_EXPOSURES is empty" in hook.get_status(ref).message
    nodes = {n["node"]["label"]: n["runStatus"] for n in hook.output_nodes(CR, ref.run_id)}
    assert nodes["Match"] == "COMPLETED" and nodes["Reach"] == "FAILED"


# -- reports and files -------------------------------------------------------------------------------------
def _completed_flow_run(hook: HabuHook, emu) -> str:
    run_id = hook.create_flow_run(CR, "flow-weekly", name="for-reports", nodes={NODE(1): DATES})["id"]
    settle(hook, flow_ref(run_id), emu, {RunState.SUCCEEDED})
    return run_id


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_report_to_storage_keeps_every_row_and_value(habu, tmp_path, fmt):
    hook = HabuHook(**FAST)
    run_id = _completed_flow_run(hook, habu)
    dest = tmp_path / "out" / f"reach.{fmt}"
    op = HabuFlowRunReportToStorageOperator(
        task_id="r",
        cleanroom_id=CR,
        run_id=run_id,
        node="Q-1002",
        destination=str(dest),
        format=fmt,
        page_size=200,
    )
    result = op.execute({})
    expected = [row for page in hook.iter_report(CR, run_id, "Q-1002", page_size=1000) for row in page.rows()]
    assert len(expected) == result["rows"] == 1234
    if fmt == "csv":
        with dest.open(newline="", encoding="utf-8") as fh:  # keep \r\n inside values as written
            rows = list(csv.DictReader(fh))
    else:
        rows = [json.loads(line) for line in dest.read_text(encoding="utf-8").splitlines()]
    assert rows == expected  # commas, quotes, newlines, unicode and empty strings all intact
    assert any("\n" in r["note"] for r in rows) and any("," in r["note"] for r in rows)
    assert dest.stat().st_size == result["size"]
    assert vendor(habu)["report_pages"] >= 7  # streamed 200 rows at a time
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no partial left behind


def test_report_of_a_node_that_has_not_run_is_an_error_and_writes_nothing(habu, tmp_path):
    hook = HabuHook(**FAST)
    run_id = hook.create_flow_run(CR, "flow-weekly", name="early", nodes={NODE(1): DATES})["id"]
    dest = tmp_path / "early.csv"
    op = HabuFlowRunReportToStorageOperator(
        task_id="r", cleanroom_id=CR, run_id=run_id, node="Q-1003", destination=str(dest)
    )
    with pytest.raises(FlowRunsApiError):
        op.execute({})
    assert not dest.exists()


def test_node_file_download(habu, tmp_path):
    hook = HabuHook(**FAST)
    run_id = _completed_flow_run(hook, habu)
    dest = as_storage_path(str(tmp_path / "overlap_summary.csv"))
    written = hook.download_node_file(CR, run_id, NODE(3), "overlap_summary.csv", dest)
    assert written.size == (tmp_path / "overlap_summary.csv").stat().st_size > 0


def test_unique_names_are_sanitized_and_distinct():
    taken: set[str] = set()
    names = [unique_name(n, taken) for n in ("../../out.csv", "sub/out.csv", "out.csv", ".hidden", "a\x00b")]
    assert names == ["out.csv", "out-2.csv", "out-3.csv", "hidden", "a_b"]


# -- question runs and the create budget ----------------------------------------------------------------
def test_question_run_lifecycle_and_partner_states(habu):
    hook = HabuHook(**FAST)
    params = hook.question_parameters("crq-reach")
    assert {p["Name"] for p in params["parameters"]} >= {"START_DATE", "END_DATE", "BRAND"}
    run = hook.create_question_run("crq-partner", name="partner-run", parameters=DATES)
    ref = RunRef(run["id"], kind=QUESTION_RUN)
    seen = set()
    for _ in range(40):
        status = hook.get_status(ref)
        seen.add(status.vendor_status)
        if status.state.is_terminal:
            break
        advance(habu, 400)
    assert status.state is RunState.SUCCEEDED
    assert {"PARTNER_RUNNING", "PARTNER_COMPLETED"} <= seen
    assert hook.find_question_run("crq-partner", "partner-run")["id"] == run["id"]
    assert [r["id"] for r in hook.list_question_runs("crq-partner", status="COMPLETED")] == [run["id"]]


def test_question_not_ready_is_a_412(habu):
    with pytest.raises(FlowRunsApiError) as exc:
        HabuHook(**FAST).create_question_run("crq-missing", name="x", parameters=DATES)
    assert exc.value.status == 412


def test_create_limit_raises_budget_exhausted_without_retrying(habu):
    hook = HabuHook(**FAST)
    for i in range(20):
        hook.create_question_run("crq-reach", name=f"q{i}", parameters=DATES)
    with pytest.raises(RateLimitBudgetExhausted, match="20 run creations allowed per hour") as exc:
        hook.create_flow_run(CR, "flow-weekly", name="one-too-many", nodes={NODE(1): DATES})
    assert exc.value.retry_at is not None
    stats = vendor(habu)
    # The ledger knew the hour was spent: Habu was not even asked.
    assert stats["runs_created"] == 20 and stats["creates_refused"] == 0


# -- operators under the real Airflow ----------------------------------------------------------------------
def _run(dag_id: str, module: str, **kwargs) -> list:
    path = Path(__file__).parent / "dags" / module
    dag = runpy.run_path(str(path))[dag_id]
    return list(dag.test(**kwargs).get_task_instances())


def _states(tis) -> dict[str, str]:
    """task id (with map index when mapped) -> state."""
    return {ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in tis}


@pytest.mark.usefixtures("fresh_tokens")
def test_example_weekly_flow_pause_check_resume_report(habu, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_HABU_REPORT_DIR", str(tmp_path))
    tis = _run("example_habu_weekly_flow", "examples.py")
    assert set(_states(tis).values()) == {"success"}, _states(tis)
    reports = list(tmp_path.glob("*/reach.csv"))
    assert len(reports) == 1 and len(reports[0].read_text(encoding="utf-8").splitlines()) > 1234
    stats = vendor(habu)
    assert stats["runs_created"] == 1 and stats["resumes"] == 1
    assert stats["tokens_minted"] == 1
    assert stats["polls_too_frequent"] == 0  # the 5-minute floor held across all three tasks


@pytest.mark.usefixtures("fresh_tokens")
def test_question_run_to_storage_with_hostile_file_names(habu, tmp_path):
    out = tmp_path / "results"
    tis = _run(
        "habu_question_to_storage", "habu_dags.py", run_conf={"question": "crq-files", "out": str(out)}
    )
    assert _states(tis) == {"question": "success", "files": "success"}
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(["escape.csv", "out.csv", "résumé ✓.csv", "hidden", "data.csv"])
    assert not list(tmp_path.glob("escape.csv")) and not (tmp_path.parent / "escape.csv").exists()


@pytest.mark.usefixtures("fresh_tokens")
@pytest.mark.parametrize(
    ("question", "message"),
    [("crq-fail", "column BRAND_ID not found"), ("crq-missing", "412")],
)
def test_failing_question_runs_fail_the_task_with_the_reason(habu, capfd, question, message):
    tis = _run("habu_question_failing", "habu_dags.py", run_conf={"question": question})
    assert _states(tis) == {"question": "failed"}
    assert message in capfd.readouterr().out


@pytest.mark.usefixtures("fresh_tokens")
def test_sync_wait_reports_the_failed_flow_run(habu, capfd):
    tis = _run("habu_flow_sync", "habu_dags.py")
    assert _states(tis) == {"flow": "failed"}
    assert "BRAND_EXPOSURES is empty" in capfd.readouterr().out
    assert vendor(habu)["polls_too_frequent"] == 0


@pytest.mark.usefixtures("fresh_tokens")
def test_replay_operator_follows_the_new_run(habu):
    hook = HabuHook(**FAST)
    parent = hook.create_flow_run(CR, "flow-weekly", name="replayed", nodes={NODE(1): DATES}, pause_level=1)[
        "id"
    ]
    settle(hook, flow_ref(parent), habu, {RunState.PAUSED})
    tis = _run("habu_replay", "habu_dags.py", run_conf={"parent": parent})
    assert _states(tis) == {"replay": "success"}
    stats = vendor(habu)
    assert stats["replays"] == 1 and stats["runs_created"] == 2


@pytest.mark.usefixtures("fresh_tokens")
def test_sensors(habu):
    hook = HabuHook(**FAST)
    paused = hook.create_flow_run(CR, "flow-weekly", name="watched", nodes={NODE(1): DATES}, pause_level=1)[
        "id"
    ]
    done = hook.create_question_run("crq-reach", name="watched-q", parameters=DATES)["id"]
    failed = hook.create_question_run("crq-fail", name="watched-f", parameters=DATES)["id"]
    conf = {"paused": paused, "question_run": done, "failed_run": failed}
    tis = _run("habu_sensors", "habu_dags.py", run_conf=conf)
    assert _states(tis) == {"flow_paused": "success", "question_done": "success", "question_failed": "failed"}
    assert vendor(habu)["runs_created"] == 3  # sensors never create runs


@pytest.fixture
def habu_hourly(habu, fresh_tokens, monkeypatch):
    """Habu at 60x: an emulated hour is a real minute, so the budget filled by a test is still
    spent when its DAG starts, however slow the machine (at 600x it could free in six seconds)."""
    with EmulatorProcess(["habu"], speed=60) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_HABU_DEFAULT", _conn(emu, scale=60))
        yield emu


def test_create_limit_waits_for_the_next_window_in_the_triggerer(habu_hourly):
    habu = habu_hourly
    hook = HabuHook(**FAST)
    for i in range(19):  # leave one creation in this hour's budget
        hook.create_question_run("crq-reach", name=f"filler{i}", parameters=DATES)
    tis = _run("habu_create_limit_wait", "habu_dags.py")
    assert _states(tis) == {f"questions[{i}]": "success" for i in range(3)}
    stats = vendor(habu)
    assert stats["runs_created"] == 22  # 19 + 3: each mapped task created exactly one run
    # The fillers were booked outside the deployment's ledger (no Airflow here), so Habu refuses
    # the first task once; the ledger then holds every other task back: one 429 in all.
    assert stats["creates_refused"] == 1


@pytest.mark.usefixtures("fresh_tokens")
def test_create_limit_fails_clearly_when_told_to(habu_hourly, capfd):
    habu = habu_hourly
    hook = HabuHook(**FAST)
    for i in range(20):
        hook.create_question_run("crq-reach", name=f"filler{i}", parameters=DATES)
    tis = _run("habu_create_limit_fail", "habu_dags.py")
    assert set(_states(tis).values()) == {"failed"} and len(tis) == 3
    out = capfd.readouterr().out
    assert "refused to create" in out and "20 run creations allowed per hour" in out
    assert vendor(habu)["creates_refused"] == 1  # the first task asked; the ledger told the others


@pytest.mark.usefixtures("fresh_tokens")
def test_a_task_adopts_its_live_run_by_name_instead_of_creating_another(habu):
    """What a retry without a task state store (or after a crash between create and store) does."""
    from conftest import xcom

    hook = HabuHook(**FAST)
    nodes = {NODE(1): {"START_DATE": "2026-01-01", "END_DATE": "2026-01-08"}}
    existing = hook.create_flow_run(CR, "flow-slow", name="weekly-2026-47", nodes=nodes)["id"]
    tis = _run("habu_flow_named", "habu_dags.py", run_conf={"name": "weekly-2026-47"})
    assert _states(tis) == {"flow": "success"}
    assert xcom(tis[0], "run_id") == existing
    assert vendor(habu)["runs_created"] == 1


def test_on_kill_says_the_run_keeps_going(habu, capfd):
    op = HabuFlowRunOperator(task_id="k", cleanroom_id=CR, flow_id="flow-weekly")
    op._run_ref = flow_ref("fr-running")
    op.on_kill()
    assert "no API to cancel a run; run fr-running keeps going" in capfd.readouterr().out


def test_provisioning_a_question_until_it_runs(habu):
    hook = HabuHook(**FAST)
    question_id = hook.create_question({"questionDetails": {"title": "q1 API test", "category": "testing"}})
    added = hook.add_question_to_cleanroom(CR, question_id)
    crq = added["id"]
    with pytest.raises(FlowRunsApiError) as exc:
        hook.create_question_run(crq, name="too-early", parameters=DATES)
    assert exc.value.status == 412
    hook.assign_dataset_ownership(crq, [{"organizationId": "org-1", "macro": "digital"}])
    hook.configure_datasets(crq, [{"datasetId": "ds-1", "macro": "digital", "fields": []}])
    assert hook.create_question_run(crq, name="ready", parameters=DATES)["status"] == "QUEUED"

"""FlowRunTrigger: serialization, one terminal event per outcome, deadline, transient errors,
cleanup and on_kill - driven exactly as the triggerer drives it, against the live emulator."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from conftest import demo_stats

from airflow_provider_flowruns.core.clients import REGISTRY
from airflow_provider_flowruns.core.runs import RunRef
from airflow_provider_flowruns.core.schedule import PollSchedule
from airflow_provider_flowruns.hooks.tableflow import TableflowHook
from airflow_provider_flowruns.testing.demo import DemoHook
from airflow_provider_flowruns.triggers.run import FlowRunTrigger


def every(seconds: float) -> dict:
    """A fixed schedule with no floor, as a trigger's ``schedule`` argument."""
    return PollSchedule.fixed(seconds, 0.0).to_dict()


def make_trigger(ref: RunRef, poll_interval: float = 0.2, **overrides) -> FlowRunTrigger:
    hook = DemoHook(retry_base_delay=0.01, retry_max_delay=0.05, max_retries=1)
    kwargs = dict(
        hook_class_path=hook.class_path(),
        hook_kwargs=hook.hook_kwargs(),
        run_ref=ref.to_dict(),
        schedule=every(poll_interval),
        deadline=None,
        run_url="http://x/runs/1",
    )
    kwargs.update(overrides)
    return FlowRunTrigger(**kwargs)


def tableflow_trigger(run_id: str, poll_interval: float, **kwargs) -> FlowRunTrigger:
    """A trigger on Tableflow run ``run_id`` (connection ``tableflow_default``, set by the test),
    polling every ``poll_interval`` unless a ``schedule`` is given."""
    hook = TableflowHook()
    kwargs.setdefault("schedule", every(poll_interval))
    return FlowRunTrigger(
        hook_class_path=hook.class_path(),
        hook_kwargs=hook.hook_kwargs(),
        run_ref={"run_id": run_id},
        **kwargs,
    )


async def events_of(trigger: FlowRunTrigger) -> list[dict]:
    try:
        return [event.payload async for event in trigger.run()]
    finally:
        await trigger.cleanup()


def test_serialization_round_trip_is_plain_and_secret_free():
    trigger = make_trigger(RunRef("r1", kind="flow_run", scope={"cleanroom_id": "c"}), deadline=123.0)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_flowruns.triggers.run.FlowRunTrigger"
    rebuilt = FlowRunTrigger(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    text = json.dumps(kwargs)  # plain JSON, no objects
    assert "demo-token" not in text and "password" not in text
    assert kwargs["hook_kwargs"]["conn_id"] == "flowruns_demo_default"


@pytest.mark.parametrize(("outcome", "status"), [("SUCCEEDED", "success"), ("FAILED", "failed")])
async def test_yields_exactly_one_terminal_event(demo, outcome, status):
    ref = DemoHook().start_run("t", duration=1.0, outcome=outcome)
    events = await events_of(make_trigger(ref))
    assert len(events) == 1
    event = events[0]
    assert event["status"] == status and event["run_id"] == ref.run_id
    assert event["vendor_status"] == outcome
    assert set(event) >= {"status", "run_id", "run_url", "vendor_status", "message"}
    if outcome == "FAILED":
        assert "division by zero" in event["message"]


async def test_cancelled_run_is_not_success(demo):
    hook = DemoHook()
    ref = hook.start_run("c", duration=60)
    hook.cancel(ref)
    (event,) = await events_of(make_trigger(ref))
    assert event["status"] == "cancelled"


async def test_deadline_emits_timeout(demo):
    import time

    ref = DemoHook().start_run("slow", duration=3600)
    (event,) = await events_of(make_trigger(ref, deadline=time.time() + 0.5))
    assert event["status"] == "timeout" and event["run_id"] == ref.run_id


async def test_survives_transient_errors(demo):
    ref = DemoHook().start_run("blips", duration=1.5)
    demo.add_faults(
        {"kind": "status", "status": 503, "path": f"/runs/{ref.run_id}$", "times": 4},
        {"kind": "drop", "path": f"/runs/{ref.run_id}$", "times": 2},
    )
    (event,) = await events_of(make_trigger(ref))
    assert event["status"] == "success"
    assert demo.stats()["faults_injected"] == {"status": 4, "drop": 2}


async def test_permanent_error_ends_the_wait(demo):
    (event,) = await events_of(make_trigger(RunRef("run_gone")))
    assert event["status"] == "error" and "404" in event["message"]


async def test_stop_states_end_the_wait_at_pause(tableflow_fr1):
    """Tableflow's human "review" step is PAUSED: with stop_states it ends the wait, else it polls on."""
    route = tableflow_fr1(
        {"id": "fr1", "status": "processing"},
        {"id": "fr1", "status": "review", "status_history": [{"message": "needs eyes"}]},
    )
    trigger = tableflow_trigger("fr1", poll_interval=0.05, stop_states=["PAUSED"])
    (event,) = await events_of(trigger)
    assert (event["status"], event["vendor_status"], event["message"]) == ("paused", "review", "needs eyes")
    assert route.call_count == 2


async def test_cleanup_releases_the_shared_client(demo):
    before = REGISTRY.open_async_clients()
    ref = DemoHook().start_run("x", duration=0.5)
    trigger = make_trigger(ref)
    async for _ in trigger.run():
        break
    assert REGISTRY.open_async_clients() == before + 1
    await trigger.cleanup()
    assert REGISTRY.open_async_clients() == before


def test_the_shared_client_is_closed_when_the_driver_never_calls_cleanup(demo):
    """dag.test() takes a trigger's first event and never calls cleanup() (Airflow's own code)."""
    ref = DemoHook().start_run("inline", duration=0.2)
    trigger = make_trigger(ref, poll_interval=0.05)
    before = REGISTRY.open_async_clients()

    async def _run_trigger():  # as InProcessTestSupervisor.run_trigger_in_process does it
        return await anext(trigger.run(), None)

    event = asyncio.run(_run_trigger())
    assert event.payload["status"] == "success"
    assert REGISTRY.open_async_clients() == before
    assert trigger._hook is not None and trigger._hook._aclient is None  # released, hence closed


async def test_on_kill_cancels_the_vendor_run(demo):
    ref = DemoHook().start_run("kill-me", duration=3600)
    trigger = make_trigger(ref)
    await trigger.on_kill()
    assert DemoHook().get_status(ref).vendor_status == "CANCELLED"
    assert demo_stats(demo)["cancels"] == 1


async def test_on_kill_respects_cancel_on_kill_false(demo):
    ref = DemoHook().start_run("keep", duration=3600)
    await make_trigger(ref, cancel_on_kill=False).on_kill()
    assert DemoHook().get_status(ref).vendor_status != "CANCELLED"


async def test_on_kill_without_cancel_endpoint_logs_and_returns(capfd, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TABLEFLOW_DEFAULT", '{"conn_type": "tableflow", "password": "k"}')
    trigger = tableflow_trigger("r", poll_interval=10)
    await trigger.on_kill()  # no network call: Tableflow has no cancel API
    assert re.search(
        r"\[warning\s*\] Tableflow has no API to cancel a run; run r keeps going", capfd.readouterr().out
    )


def test_rejects_a_class_that_is_not_a_hook():
    trigger = FlowRunTrigger(
        hook_class_path="builtins.dict", hook_kwargs={}, run_ref={"run_id": "r"}, schedule=every(1)
    )
    with pytest.raises(TypeError, match="not a FlowRunsHook"):
        _ = trigger.hook


async def test_initial_delay_skips_the_redundant_first_poll(demo):
    """The operator polled just before deferring; the trigger must not poll again at once."""
    import time

    ref = DemoHook().start_run("spaced", duration=3600)
    before = demo_stats(demo).get("status_polls", 0)
    (event,) = await events_of(make_trigger(ref, initial_delay=5, deadline=time.time() + 0.5))
    assert event["status"] == "timeout"
    assert demo_stats(demo).get("status_polls", 0) == before
    (event,) = await events_of(make_trigger(ref, initial_delay=0.1, deadline=time.time() + 0.4))
    assert demo_stats(demo)["status_polls"] > before


async def test_logs_the_first_status_and_every_change_not_every_poll(capfd, tableflow_fr1):
    statuses = ["processing"] * 3 + ["review"] * 2 + ["processing", "completed"]
    route = tableflow_fr1(*({"id": "fr1", "status": s} for s in statuses))
    trigger = tableflow_trigger("fr1", poll_interval=0.01)
    (event,) = await events_of(trigger)
    assert event["status"] == "success" and route.call_count == len(statuses)
    out = capfd.readouterr().out
    assert out.count("Run fr1 is RUNNING (processing); watching it until it finishes") == 1
    assert out.count("Run fr1 is PAUSED (review)") == 1
    assert out.count("Run fr1 is RUNNING (processing)") == 2  # the first answer, and back from review
    assert "is still" not in out  # the periodic line comes only after minutes unchanged
    assert '"k"' not in out and "Bearer k" not in out


# -- the first poll after deferring: never before Airflow recorded the deferral ----------------------
class _TI:
    """What a run operator's ``execute`` reads from ``context["ti"]``: it pushes two XComs."""

    def __init__(self) -> None:
        self.xcoms: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcoms[key] = value


def _deferred_trigger(task, context: dict) -> FlowRunTrigger:
    try:
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # Airflow < 3.2
        from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]

    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, FlowRunTrigger)
    return trigger


@pytest.fixture
def scaled_demo(demo, monkeypatch):
    """The demo emulator behind a connection that shrinks vendor time 10x (interval 1 s -> 0.1 s),
    and the first-poll floor at its default (the dag.test() suites lower it, see conftest)."""
    from conftest import DEMO_TOKEN

    monkeypatch.delenv("AIRFLOW__FLOWRUNS__FIRST_POLL_FLOOR", raising=False)
    conn = {
        "conn_type": "flowruns_demo",
        "host": demo.url("demo", "/v1"),
        "password": DEMO_TOKEN,
        "extra": {"emulator_time_scale": 10},
    }
    monkeypatch.setenv("AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT", json.dumps(conn))
    return demo


@pytest.mark.parametrize("poll_schedule", ["fixed", "adaptive"])
def test_a_deferring_run_operator_polls_first_after_the_floor_whatever_the_time_scale(
    scaled_demo, poll_schedule
):
    from airflow_provider_flowruns.testing.demo import DemoRunOperator
    from airflow_provider_flowruns.triggers.run import FIRST_POLL_FLOOR

    task = DemoRunOperator(
        task_id="t",
        run_name=f"floor-{poll_schedule}",
        duration=3600,
        deferrable=True,
        poll_interval=1,
        poll_schedule=poll_schedule,
    )
    trigger = _deferred_trigger(task, {"ti": _TI(), "task_state_store": None})
    assert FIRST_POLL_FLOOR == 10.0
    assert trigger.initial_delay == 10.0  # 0.1 s (1 s / 10) before the floor
    assert trigger.schedule["interval"] == pytest.approx(0.1)  # later polls keep the scaled interval
    assert trigger.serialize()[1]["initial_delay"] == 10.0  # what the triggerer rebuilds it from


def test_a_deferring_sensor_polls_first_after_the_floor_whatever_the_time_scale(scaled_demo):
    from airflow_provider_flowruns.testing.demo import DemoRunSensor

    ref = DemoHook().start_run("floor-sensor", duration=3600)
    sensor = DemoRunSensor(task_id="s", run_id=ref.run_id, deferrable=True, poke_interval=1)
    trigger = _deferred_trigger(sensor, {"ti": _TI()})
    assert trigger.initial_delay == 10.0
    assert trigger.schedule["floor"] == pytest.approx(0.1)


def test_first_poll_delay_keeps_longer_gaps_and_reads_the_configured_floor(monkeypatch):
    from airflow_provider_flowruns.core.errors import FlowRunsConfigError
    from airflow_provider_flowruns.triggers.run import first_poll_delay

    monkeypatch.delenv("AIRFLOW__FLOWRUNS__FIRST_POLL_FLOOR", raising=False)
    assert (first_poll_delay(0.1), first_poll_delay(300.0)) == (10.0, 300.0)
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__FIRST_POLL_FLOOR", "3")
    assert first_poll_delay(0.1) == 3.0
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__FIRST_POLL_FLOOR", "0.5")  # under a second is allowed
    assert first_poll_delay(0.1) == 0.5
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__FIRST_POLL_FLOOR", "0")  # dag.test()'s setting
    assert first_poll_delay(0.1) == 0.1
    monkeypatch.setenv("AIRFLOW__FLOWRUNS__FIRST_POLL_FLOOR", "-1")
    with pytest.raises(FlowRunsConfigError, match=r"first_poll_floor must be >= 0 seconds, got -1.0"):
        first_poll_delay(0.1)


async def test_the_trigger_backs_off_after_failed_polls_up_to_the_cap_and_resets_on_an_answer(
    tableflow_fr1, monkeypatch
):
    """What the trigger sleeps between polls while the vendor errors: 2x per failed poll, capped at
    min(8 x interval, interval + 15 min), back to the interval after the first good answer."""
    import httpx

    from airflow_provider_flowruns.triggers import run as trigger_module

    unavailable = httpx.Response(503, json={"message": "maintenance"})
    route = tableflow_fr1(
        *[unavailable] * 4,
        {"id": "fr1", "status": "processing"},
        unavailable,
        {"id": "fr1", "status": "completed"},
    )
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(trigger_module.asyncio, "sleep", record_sleep)
    monkeypatch.setattr(trigger_module.random, "uniform", lambda a, b: 1.0)  # no jitter: exact gaps
    hook = TableflowHook(max_retries=0)  # each 503 reaches the trigger as one failed poll
    trigger = FlowRunTrigger(
        hook_class_path=hook.class_path(),
        hook_kwargs=hook.hook_kwargs(),
        run_ref={"run_id": "fr1"},
        schedule=every(200),  # cap: min(1600, 200 + 900) = 1100 s (it was 8x: 1600 s)
    )
    (event,) = await events_of(trigger)
    assert event["status"] == "success" and route.call_count == 7
    assert slept == [400.0, 800.0, 1100.0, 1100.0, 200.0, 400.0]


# -- what the trigger sleeps, reports and logs: exact values ---------------------------------------
@pytest.fixture
def recorded_sleeps(monkeypatch) -> list[float]:
    """The trigger's sleeps, recorded and skipped (jitter off: exact gaps)."""
    from airflow_provider_flowruns.triggers import run as trigger_module

    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(trigger_module.asyncio, "sleep", record_sleep)
    monkeypatch.setattr(trigger_module.random, "uniform", lambda a, b: 1.0)
    return slept


def test_status_event_reports_the_state_and_the_better_url():
    from airflow_provider_flowruns.core.runs import RunState, RunStatus
    from airflow_provider_flowruns.triggers.run import status_event

    running = RunStatus("r1", RunState.RUNNING, "processing")
    assert status_event(running, run_url="http://x/r1") == {
        "status": "running",
        "state": "RUNNING",
        "run_id": "r1",
        "run_url": "http://x/r1",
        "vendor_status": "processing",
        "message": "run r1 is processing",
    }
    done = RunStatus("r1", RunState.SUCCEEDED, "completed", message="all good", url="http://vendor/r1")
    event = status_event(done, run_url="http://x/r1")
    assert (event["status"], event["run_url"], event["message"]) == (
        "success",
        "http://vendor/r1",
        "all good",
    )
    assert status_event(done)["run_url"] == "http://vendor/r1"


async def test_a_timeout_event_names_the_run_and_carries_no_vendor_status(tableflow_fr1, recorded_sleeps):
    import time

    route = tableflow_fr1({"id": "fr1", "status": "processing"})
    # the next poll (200 s on) would fall after the deadline (150 s): wait for it, then time out
    trigger = tableflow_trigger("fr1", poll_interval=200, deadline=time.time() + 150, run_url="http://x/fr1")
    (event,) = await events_of(trigger)
    assert event == {
        "status": "timeout",
        "run_id": "fr1",
        "run_url": "http://x/fr1",
        "vendor_status": None,
        "message": "run fr1 did not finish before its deadline",
    }
    assert route.call_count == 1 and len(recorded_sleeps) == 1 and 0 < recorded_sleeps[0] <= 150


async def test_without_a_schedule_the_trigger_sleeps_its_poll_interval_even_under_a_second(
    tableflow_fr1, recorded_sleeps
):
    tableflow_fr1({"id": "fr1", "status": "processing"}, {"id": "fr1", "status": "completed"})
    (event,) = await events_of(tableflow_trigger("fr1", poll_interval=0.5))
    assert event["status"] == "success" and "submitted_at" not in event
    assert recorded_sleeps == [0.5]


async def test_a_serialized_schedule_decides_the_gaps_and_reports_the_start(tableflow_fr1, recorded_sleeps):
    from airflow_provider_flowruns.core.schedule import PollSchedule

    tableflow_fr1({"id": "fr1", "status": "processing"}, {"id": "fr1", "status": "completed"})
    schedule = PollSchedule.fixed(300.0, 300.0, started_at=17.0).to_dict()
    (event,) = await events_of(tableflow_trigger("fr1", poll_interval=200, schedule=schedule))
    assert recorded_sleeps == [300.0]  # the schedule's floor, not the 200 s the helper defaults to
    assert (event["status"], event["submitted_at"]) == ("success", 17.0)


async def test_the_initial_delay_is_slept_first_and_never_past_the_deadline(tableflow_fr1, recorded_sleeps):
    import time

    route = tableflow_fr1(*[{"id": "fr1", "status": "completed"}] * 3)
    (event,) = await events_of(tableflow_trigger("fr1", poll_interval=10, initial_delay=0.5))
    assert (event["status"], recorded_sleeps) == ("success", [0.5])  # no deadline: the whole delay
    recorded_sleeps.clear()
    (event,) = await events_of(
        tableflow_trigger("fr1", poll_interval=10, initial_delay=100, deadline=time.time() + 50)
    )
    assert event["status"] == "success"
    assert len(recorded_sleeps) == 1 and 0 < recorded_sleeps[0] <= 50  # cut to the deadline
    recorded_sleeps.clear()
    (event,) = await events_of(
        tableflow_trigger("fr1", poll_interval=10, initial_delay=5, deadline=time.time() - 10)
    )
    assert (event["status"], recorded_sleeps) == ("timeout", [0.0])  # deadline already gone: no wait
    assert event["message"] == "run fr1 did not finish before its deadline"
    assert route.call_count == 2  # and no poll after it


async def test_an_unexpected_failure_ends_the_wait_with_its_type_and_a_logged_traceback(
    tableflow_fr1, recorded_sleeps, capfd
):
    tableflow_fr1().mock(side_effect=ZeroDivisionError("division by zero"))  # not an API error
    (event,) = await events_of(tableflow_trigger("fr1", poll_interval=10, run_url="http://x/fr1"))
    assert event == {
        "status": "error",
        "run_id": "fr1",
        "run_url": "http://x/fr1",
        "vendor_status": None,
        "message": "checking run fr1 failed: ZeroDivisionError: division by zero",
    }
    out = capfd.readouterr().out
    assert re.search(r"\[error\s*\] Checking run fr1 failed unexpectedly\. ", out), out
    assert "ZeroDivisionError" in out  # the traceback is logged


async def test_an_unchanged_status_is_logged_with_its_poll_count_once_the_period_passes(
    tableflow_fr1, recorded_sleeps, capfd, monkeypatch
):
    from airflow_provider_flowruns.triggers import run as trigger_module

    monkeypatch.setattr(trigger_module, "UNCHANGED_LOG_EVERY", 0.0)  # every unchanged poll is "still"
    statuses = ["processing"] * 3 + ["completed"]
    tableflow_fr1(*({"id": "fr1", "status": s} for s in statuses))
    (event,) = await events_of(tableflow_trigger("fr1", poll_interval=1))
    assert event["status"] == "success"
    lines = re.findall(r"Run fr1 is .*", capfd.readouterr().out)
    assert [line.split(" [")[0] for line in lines] == [
        "Run fr1 is RUNNING (processing); watching it until it finishes",
        "Run fr1 is still RUNNING (processing) after 2 polls",
        "Run fr1 is still RUNNING (processing) after 3 polls",
    ]


async def test_a_failed_poll_is_logged_as_one_to_retry(tableflow_fr1, recorded_sleeps, capfd):
    import httpx

    tableflow_fr1(httpx.Response(503, json={"message": "maintenance"}), {"id": "fr1", "status": "completed"})
    hook = TableflowHook(max_retries=0)
    trigger = FlowRunTrigger(
        hook_class_path=hook.class_path(),
        hook_kwargs=hook.hook_kwargs(),
        run_ref={"run_id": "fr1"},
        schedule=every(5),
    )
    (event,) = await events_of(trigger)
    assert event["status"] == "success"
    assert re.search(
        r"\[warning\s*\] Status check for run fr1 failed \(GET flows/runs/fr1 failed with HTTP 503: "
        r"maintenance[^)]*\); will poll again\. ",
        capfd.readouterr().out,
    )


async def test_on_kill_logs_what_it_cancelled_or_could_not(demo, capfd):
    ref = DemoHook().start_run("kill-log", duration=3600)
    await make_trigger(ref).on_kill()
    out = capfd.readouterr().out
    assert re.search(rf"\[info\s*\] Cancelled Demo run {ref.run_id} because its task was killed\. ", out), out
    await make_trigger(RunRef("run_gone")).on_kill()
    out = capfd.readouterr().out
    assert re.search(r"\[error\s*\] Could not cancel run run_gone; it may still be running\. ", out), out

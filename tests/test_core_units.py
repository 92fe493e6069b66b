"""Pure units of the engine: state maps, retry delays, Retry-After, rate limiter, run refs, errors."""

from __future__ import annotations

import logging
import pickle
import time
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError
from airflow_provider_flowruns.core.polling import RetryPolicy, clamp_poll_interval, parse_retry_after
from airflow_provider_flowruns.core.ratelimit import RATE_MARGIN, RatePacer, pacer_for
from airflow_provider_flowruns.core.runs import TERMINAL_STATES, RunRef, RunState, RunStatus, StatusMap
from airflow_provider_flowruns.hooks.activepieces import ActivepiecesHook
from airflow_provider_flowruns.hooks.amperity import AmperityHook
from airflow_provider_flowruns.hooks.habu import FLOW_RUN_STATUS, QUESTION_RUN_STATUS
from airflow_provider_flowruns.hooks.tableflow import TableflowHook


def test_unknown_status_is_running_and_warned_once(caplog):
    smap = StatusMap({RunState.SUCCEEDED: ["DONE"]})
    with caplog.at_level(logging.WARNING):
        assert smap("WEIRD") is RunState.RUNNING
        assert smap("weird ") is RunState.RUNNING
    assert sum("Unknown vendor status" in r.message for r in caplog.records) == 1
    assert [r.getMessage() for r in caplog.records if r.name == "airflow_provider_flowruns.core.runs"] == [
        "Unknown vendor status 'WEIRD': treating it as RUNNING until the deadline."
    ]
    assert smap("done") is RunState.SUCCEEDED


@pytest.mark.parametrize(
    ("state", "terminal"),
    [
        (RunState.QUEUED, False),
        (RunState.RUNNING, False),
        (RunState.PAUSED, False),
        (RunState.SUCCEEDED, True),
        (RunState.FAILED, True),
        (RunState.CANCELLED, True),
    ],
)
def test_run_states_are_terminal_or_active_never_both(state, terminal):
    """A terminal run is one to resubmit after; an active one is a re-attach target (and a trigger
    keeps waiting on it): a paused run is still the vendor's."""
    assert state.is_terminal is terminal
    assert state.is_active is not terminal
    assert (state in TERMINAL_STATES) is terminal


def test_terminal_states_are_exactly_the_three_ends():
    assert frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}) == TERMINAL_STATES


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # written by an older release or by hand: no kind, no scope
        ({"run_id": "r"}, RunRef("r", kind="run", scope={})),
        ({"run_id": "r", "kind": "flow_run", "scope": None}, RunRef("r", kind="flow_run", scope={})),
        # ids that arrived as numbers travel as strings
        (
            {"run_id": 7, "kind": "run", "scope": {"cleanroom_id": 12}},
            RunRef("7", scope={"cleanroom_id": "12"}),
        ),
    ],
)
def test_run_ref_from_dict_fills_in_what_a_writer_left_out(data, expected):
    ref = RunRef.from_dict(data)
    assert ref == expected
    assert ref.to_dict() == {"run_id": expected.run_id, "kind": expected.kind, "scope": dict(expected.scope)}


def test_a_status_snapshot_is_not_stopping_unless_the_hook_says_so():
    status = RunStatus("r1", RunState.RUNNING, "running")
    assert (status.stopping, status.message, status.url, dict(status.raw)) == (False, None, None, {})


def test_stopping_statuses_are_normalized_and_only_those_count():
    smap = StatusMap(
        {RunState.RUNNING: ["running", "stopping"], RunState.CANCELLED: ["stopped"]}, stopping=["Stopping"]
    )
    assert smap.is_stopping("stopping") is True
    assert smap.is_stopping(" STOPPING ") is True
    assert smap.is_stopping("running") is False
    assert smap.is_stopping("stopped") is False
    assert smap.is_stopping(None) is False
    assert smap("Stopping") is RunState.RUNNING


def test_a_stopping_status_without_a_state_is_refused_when_the_map_is_declared():
    with pytest.raises(ValueError) as refused:
        StatusMap({RunState.RUNNING: ["running"]}, stopping=["running", "winding down", "halting"])
    assert str(refused.value) == "stopping statuses ['HALTING', 'WINDING DOWN'] need a state in the mapping"


@pytest.mark.parametrize(
    ("value", "state"),
    [
        ("Running with failures", RunState.RUNNING),
        ("running-with-failures", RunState.RUNNING),
        ("RUNNING_WITH_FAILURES", RunState.RUNNING),
        ("In progress", RunState.RUNNING),
        ("canceled", RunState.CANCELLED),
        ("Stopped", RunState.CANCELLED),
        ("succeeded", RunState.SUCCEEDED),
        ("failed", RunState.FAILED),
        ("scheduled", RunState.QUEUED),
    ],
)
def test_amperity_states_are_spelling_lenient(value, state):
    assert AmperityHook.status_map(value) is state


def test_vendor_maps_cover_the_reference_enums():
    activepieces = "QUEUED RUNNING PAUSED SUCCEEDED FAILED TIMEOUT CANCELED QUOTA_EXCEEDED MEMORY_LIMIT_EXCEEDED INTERNAL_ERROR LOG_SIZE_EXCEEDED"
    mapped = {s: ActivepiecesHook.status_map(s) for s in activepieces.split()}
    assert len(mapped) == 11
    assert mapped["CANCELED"] is RunState.CANCELLED and mapped["TIMEOUT"] is RunState.FAILED
    assert ActivepiecesHook.status_map.statuses_for(RunState.RUNNING) == ["RUNNING"]
    assert FLOW_RUN_STATUS("COMPLETED") is RunState.SUCCEEDED and FLOW_RUN_STATUS("ERROR") is RunState.FAILED
    assert QUESTION_RUN_STATUS("PARTNER_COMPLETED") is RunState.RUNNING
    assert QUESTION_RUN_STATUS("PARTNER_FAILED") is RunState.FAILED
    assert TableflowHook.status_map("review") is RunState.PAUSED


def test_retry_policy_backs_off_with_jitter_and_caps_retry_after():
    policy = RetryPolicy(max_retries=5, base_delay=1.0, max_delay=10.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 10.0), (9, 10.0)]:
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    assert policy.delay(1, retry_after=3) == 3
    assert policy.delay(1, retry_after=3600) == 10.0
    with pytest.raises(FlowRunsConfigError):
        RetryPolicy(max_retries=-1)


def test_parse_retry_after_seconds_and_dates():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 25 <= parse_retry_after(format_datetime(future, usegmt=True)) <= 31


def test_clamp_poll_interval(caplog):
    assert clamp_poll_interval(None, floor=300, default=900, who="Habu") == 900
    with caplog.at_level(logging.WARNING):
        assert clamp_poll_interval(60, floor=300, default=900, who="Habu") == 300
    assert "below Habu's floor" in caplog.text
    with pytest.raises(FlowRunsConfigError, match="poll_interval"):
        clamp_poll_interval(-1, floor=1, default=2, who="x")
    with pytest.raises(FlowRunsConfigError, match="poll_interval"):
        clamp_poll_interval("5", floor=1, default=2, who="x")  # type: ignore[arg-type]


def test_clamp_poll_interval_keeps_a_valid_interval_and_warns_exactly_once_below_the_floor(caplog):
    with caplog.at_level(logging.WARNING):
        assert clamp_poll_interval(600, floor=300, default=900, who="Habu") == 600.0
        assert (
            clamp_poll_interval(300, floor=300, default=900, who="Habu") == 300.0
        )  # at the floor: no warning
        assert clamp_poll_interval(0.5, floor=0.1, default=2, who="x") == 0.5  # sub-second is positive
    assert caplog.records == []
    with caplog.at_level(logging.WARNING):
        assert clamp_poll_interval(60, floor=300, default=900, who="Habu") == 300.0
    assert [r.getMessage() for r in caplog.records] == [
        "poll_interval=60s is below Habu's floor of 300s; polling every 300s instead."
    ]
    assert clamp_poll_interval(None, floor=300, default=60, who="Habu") == 300  # a default under the floor
    for bad in (0, 0.0, True):
        with pytest.raises(FlowRunsConfigError) as refused:
            clamp_poll_interval(bad, floor=1, default=2, who="x")
        assert str(refused.value) == f"poll_interval must be a positive number of seconds, got {bad!r}"


def test_retry_after_of_zero_or_under_a_second_is_waited_as_given():
    policy = RetryPolicy(max_retries=5, base_delay=8.0, max_delay=60.0)  # jitter alone: 4-8 s
    assert policy.delay(1, retry_after=0) == 0.0
    assert policy.delay(1, retry_after=0.5) == 0.5
    assert 4.0 <= policy.delay(1, retry_after=-1) <= 8.0  # a negative one is ignored: back-off


def test_retry_policy_accepts_zeros_and_refuses_negatives_by_name():
    never = RetryPolicy(max_retries=0, base_delay=0.0, max_delay=0.0)  # no retries, no waiting: valid
    assert (never.max_retries, never.delay(1)) == (0, 0.0)
    with pytest.raises(FlowRunsConfigError) as refused:
        RetryPolicy(max_retries=-1)
    assert str(refused.value) == "max_retries must be >= 0, got -1"
    for delays in ({"base_delay": -1.0}, {"max_delay": -1.0}):
        with pytest.raises(FlowRunsConfigError) as refused:
            RetryPolicy(**delays)
        assert str(refused.value) == "retry delays must be >= 0"


def test_parse_retry_after_never_goes_negative_and_keeps_zero():
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 0.25 ") == 0.25
    assert parse_retry_after("-5") == 0.0
    past = datetime.now(timezone.utc) - timedelta(seconds=30)
    assert parse_retry_after(format_datetime(past, usegmt=True)) == 0.0


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_books_evenly_spaced_slots_in_order():
    clock = FakeClock()
    pacer = RatePacer(10, clock=clock)
    slots = [pacer.book() for _ in range(4)]
    assert [pacer.wait_for(b) for b in slots] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    clock.now += 0.1
    assert pacer.wait_for(slots[1]) == 0.0  # due: goes now
    assert pacer.wait_for(slots[2]) == pytest.approx(0.1)


def test_a_late_sender_moves_every_later_slot_back_instead_of_letting_them_bunch():
    """A stall (loaded machine, blocked event loop) must not release the slots it covered at once."""
    clock = FakeClock()
    pacer = RatePacer(10, clock=clock)
    a, b, c = pacer.book(), pacer.book(), pacer.book()  # due at +0, +0.1, +0.2
    clock.now += 0.35  # every one of them wakes only now
    assert pacer.wait_for(a) == 0.0  # sent 0.35 s late ...
    assert pacer.wait_for(b) == pytest.approx(0.1)  # ... so b goes 0.1 s after a's real send
    assert pacer.wait_for(c) == pytest.approx(0.2)
    assert pacer.wait_for(pacer.book()) == pytest.approx(0.3)  # a new booking queues behind them
    clock.now += 0.1
    assert pacer.wait_for(b) == 0.0
    assert pacer.wait_for(c) == pytest.approx(0.1)


def test_an_idle_pacer_spaces_from_the_last_real_send():
    clock = FakeClock()
    pacer = RatePacer(4, clock=clock)
    first = pacer.book()
    clock.now += 1.0  # the caller wakes a second late, then sends
    assert pacer.wait_for(first) == 0.0
    assert pacer.wait_for(pacer.book()) == pytest.approx(0.25)  # not 0: a full spacing after that send
    clock.now += 10.0
    assert pacer.wait_for(pacer.book()) == 0.0  # idle since: no debt carried


def test_pacer_for_aims_under_the_vendor_limit_and_is_shared_per_connection():
    assert RATE_MARGIN == 0.9
    # keys no other test (or an earlier run in this process) used: the pacers are process-wide
    conn_a, conn_b = f"conn-a-{uuid.uuid4()}", f"conn-b-{uuid.uuid4()}"
    pacer = pacer_for(conn_a, 10.0)
    assert pacer.rate == pytest.approx(9.0) and pacer.spacing == pytest.approx(1 / 9)
    assert pacer_for(conn_a, 10.0) is pacer
    assert pacer_for(conn_b, 10.0) is not pacer
    assert pacer_for(conn_a, 5.0).rate == pytest.approx(4.5)  # another limit, another pacer
    with pytest.raises(ValueError) as refused:
        RatePacer(0)
    assert str(refused.value) == "rate must be positive"


def test_a_rate_under_one_per_second_is_a_long_spacing():
    assert RatePacer(0.5, clock=FakeClock()).spacing == 2.0


def test_a_booking_carries_the_slip_so_far():
    clock = FakeClock()
    pacer = RatePacer(10, clock=clock)
    first = pacer.book()
    assert (first.at, first.slip) == (100.0, 0.0)  # a new pacer has not slipped
    clock.now += 0.25
    assert pacer.wait_for(first) == 0.0  # sent 0.25 s late
    assert pacer.book().slip == pytest.approx(0.25)


def test_slips_add_up_over_two_stalls():
    clock = FakeClock()
    pacer = RatePacer(10, clock=clock)
    a, b, c = pacer.book(), pacer.book(), pacer.book()  # due at +0, +0.1, +0.2
    clock.now += 0.35
    assert pacer.wait_for(a) == 0.0  # 0.35 s late: b now due at +0.45
    clock.now += 0.25
    assert pacer.wait_for(b) == 0.0  # b wakes at +0.6, 0.15 s late: 0.5 s slipped in all
    assert pacer.wait_for(c) == pytest.approx(0.1)  # c goes a full spacing after b's real send


class SleepRecorder:
    """Stands in for ``time``/``asyncio`` in core.ratelimit: each sleep moves the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sleeps: list[float] = []

    def _sleep(self, seconds: float) -> None:
        assert isinstance(seconds, float) and seconds > 0, f"pointless sleep({seconds!r})"
        self.sleeps.append(seconds)
        self.clock.now += seconds

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)


class AsyncSleepRecorder(SleepRecorder):
    async def sleep(self, seconds: float) -> None:  # type: ignore[override]
        self._sleep(seconds)


def test_acquire_sleeps_exactly_until_each_slot_opens(monkeypatch):
    from airflow_provider_flowruns.core import ratelimit

    clock = FakeClock()
    pacer = RatePacer(10, clock=clock)
    recorder = SleepRecorder(clock)
    monkeypatch.setattr(ratelimit, "time", recorder)
    for _ in range(3):
        pacer.acquire()
    assert recorder.sleeps == pytest.approx([0.1, 0.1])  # the first goes at once
    assert clock.now == pytest.approx(100.2)


async def test_aacquire_sleeps_exactly_until_each_slot_opens(monkeypatch):
    from airflow_provider_flowruns.core import ratelimit

    clock = FakeClock()
    pacer = RatePacer(4, clock=clock)
    recorder = AsyncSleepRecorder(clock)
    monkeypatch.setattr(ratelimit, "asyncio", recorder)
    for _ in range(3):
        await pacer.aacquire()
    assert recorder.sleeps == pytest.approx([0.25, 0.25])
    assert clock.now == pytest.approx(100.5)


def test_run_ref_round_trip_is_plain():
    ref = RunRef("r1", kind="flow_run", scope={"cleanroom_id": "cr1"})
    assert RunRef.from_dict(ref.to_dict()) == ref
    assert ref.to_dict() == {"run_id": "r1", "kind": "flow_run", "scope": {"cleanroom_id": "cr1"}}


def test_api_error_carries_fields_and_survives_pickling():
    err = FlowRunsApiError(
        "no such run", status=404, vendor_code="NOT_FOUND", request_id="req-1", method="GET", path="runs/x"
    )
    assert str(err) == "GET runs/x failed with HTTP 404: NOT_FOUND: no such run; request id req-1"
    assert not err.retryable
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.status, copy.vendor_code, copy.request_id) == (404, "NOT_FOUND", "req-1")
    assert FlowRunsApiError("x", status=503).retryable and FlowRunsApiError("x").retryable


@pytest.mark.parametrize(
    ("hook_cls", "conn", "base"),
    [
        (TableflowHook, {"conn_type": "tableflow", "password": "k"}, "https://api.tableflow.com/v2"),
        (
            ActivepiecesHook,
            {"conn_type": "activepieces", "password": "k", "host": "ap.example.com/api/"},
            "https://ap.example.com/api",
        ),
    ],
)
def test_bearer_vendor_connections(monkeypatch, hook_cls, conn, base):
    import json

    monkeypatch.setenv(f"AIRFLOW_CONN_{hook_cls.default_conn_name.upper()}", json.dumps(conn))
    hook = hook_cls()
    assert str(hook.get_client().base_url) == base + "/"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{hook_cls.default_conn_name.upper()}", json.dumps({"conn_type": conn["conn_type"]})
    )
    with pytest.raises(FlowRunsConfigError, match="password"):
        hook_cls().get_client()


# -- read_ahead: the next report page is fetched while this one is encoded ---------------------------------
def _recorded_pages(produced: list[int], count: int, error: str | None = None):
    for i in range(count):
        produced.append(i)
        yield i
    if error:
        raise RuntimeError(error)


def test_read_ahead_keeps_order_stays_two_steps_ahead_and_raises_where_the_worker_failed():
    import time

    from airflow_provider_flowruns.core.pages import READ_AHEAD, read_ahead

    produced: list[int] = []
    got = []
    with pytest.raises(RuntimeError, match="page 5 broke"):
        for item in read_ahead(_recorded_pages(produced, 5, "page 5 broke")):
            time.sleep(0.05)  # time for the worker to run as far ahead as it would
            assert max(produced) == min(item + READ_AHEAD, 4), (item, produced)
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_read_ahead_stops_fetching_once_the_caller_stops():
    import threading
    import time

    from airflow_provider_flowruns.core.pages import read_ahead

    produced: list[int] = []
    pages = read_ahead(_recorded_pages(produced, 100))
    assert next(pages) == 0
    # let the worker run as far as it may: one page queued, one in its hand, waiting for room
    for _ in range(500):
        if len(produced) == 3:
            break
        time.sleep(0.01)
    time.sleep(0.2)
    pages.close()
    for _ in range(500):  # the worker gives up within a _STOP_CHECK of the close; ample here
        if not any(t.name == "flowruns-read-ahead" for t in threading.enumerate()):
            break
        time.sleep(0.02)
    assert not any(t.name == "flowruns-read-ahead" for t in threading.enumerate())
    assert produced == [0, 1, 2]  # the page taken and the two fetched ahead, nothing after


def _taken_in_a_thread(pages, *, pause: float = 0.0) -> list:
    """Every item of ``pages``, read in a thread (``pause`` seconds per item): a reader that hangs
    fails the test instead of hanging it."""
    import threading
    import time

    got: list = []
    done = threading.Event()

    def take() -> None:
        for item in pages:
            got.append(item)
            time.sleep(pause)
        done.set()

    threading.Thread(target=take, daemon=True).start()
    assert done.wait(30), f"reading hangs after {got}"
    return got


def test_read_ahead_ends_where_the_pages_end():
    from airflow_provider_flowruns.core.pages import read_ahead

    assert _taken_in_a_thread(read_ahead(iter([1, 2, 3]))) == [1, 2, 3]
    assert _taken_in_a_thread(read_ahead(iter([]))) == []


def test_read_ahead_waits_for_a_slow_reader():
    """A reader slower than the worker's stop check (0.1 s) still gets every page: a full queue
    means wait, not stop."""
    from airflow_provider_flowruns.core.pages import read_ahead

    assert _taken_in_a_thread(read_ahead(iter(range(4))), pause=0.3) == [0, 1, 2, 3]


def test_the_read_ahead_worker_is_a_daemon_thread():
    """A killed task must not wait for a page request in flight."""
    import threading

    from airflow_provider_flowruns.core.pages import read_ahead

    release = threading.Event()

    def pages():
        yield 0
        release.wait(30)
        yield 1

    reader = read_ahead(pages())
    assert next(reader) == 0
    workers = [t for t in threading.enumerate() if t.name == "flowruns-read-ahead"]
    try:
        assert workers and all(t.daemon for t in workers)
    finally:
        release.set()
        assert list(reader) == [1]


# -- the event -> outcome table: what a settled run does to the task ------------------------------------
def _event(status, message="vendor says why", **extra):
    return {"status": status, "run_id": "r1", "vendor_status": "VS", "message": message, **extra}


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        ("failed", "RunFailed", "demo run r1 failed (VS): vendor says why"),
        ("cancelled", "RunCancelled", "demo run r1 was cancelled (VS): vendor says why"),
        ("timeout", "RunTimedOut", "demo run r1 timed out: vendor says why"),
        (
            "paused",
            "RunFailed",
            "demo run r1 is paused (VS) and this task was not asked to stop at a pause: vendor says why",
        ),
    ],
)
def test_a_settled_run_that_did_not_succeed_raises_its_own_error_with_the_vendors_words(status, error, text):
    from airflow_provider_flowruns.core import errors
    from airflow_provider_flowruns.core.outcome import raise_for_event

    with pytest.raises(errors.RunFailed) as raised:
        raise_for_event(_event(status), vendor="demo")
    assert type(raised.value) is getattr(errors, error)
    assert str(raised.value) == text
    assert (raised.value.run_id, raised.value.vendor_status) == ("r1", "VS")


@pytest.mark.parametrize("message", [None, ""])
def test_an_event_without_a_message_still_names_the_run_and_its_status(message):
    from airflow_provider_flowruns.core.errors import RunFailed
    from airflow_provider_flowruns.core.outcome import raise_for_event

    with pytest.raises(RunFailed) as raised:
        raise_for_event(_event("failed", message), vendor="demo")
    assert str(raised.value) == "demo run r1 failed (VS): "


def test_success_and_accepted_statuses_return_quietly_and_the_rest_is_a_named_error():
    from airflow_provider_flowruns.core.errors import FlowRunsError, RunFailed
    from airflow_provider_flowruns.core.outcome import raise_for_event

    assert raise_for_event(_event("success"), vendor="demo") is None
    assert raise_for_event(_event("paused"), vendor="demo", accept=frozenset({"paused"})) is None
    # accepting a pause does not accept a failure
    with pytest.raises(RunFailed):
        raise_for_event(_event("failed"), vendor="demo", accept=frozenset({"paused"}))
    # a trigger's "error" event (or anything unknown) is a provider error, not a run outcome
    for event, text in [
        (
            _event("error", "GET runs/r1 failed with HTTP 404"),
            "demo run r1: GET runs/r1 failed with HTTP 404",
        ),
        (_event("weird", None), "demo run r1: unexpected event 'weird'"),
        ({}, "demo run None: unexpected event None"),
    ]:
        with pytest.raises(FlowRunsError) as raised:
            raise_for_event(event, vendor="demo")
        assert type(raised.value) is FlowRunsError
        assert str(raised.value) == text


# -- pages of a listing: the objects, or an error naming the listing ---------------------------------
def test_page_items_reads_an_object_page_a_bare_list_or_an_empty_page():
    from airflow_provider_flowruns.core.pages import page_field, page_items

    runs = [{"id": "a"}, None, "x", {"id": "b"}]
    assert page_items({"data": runs, "next": "t"}, "data", what="runs") == [{"id": "a"}, {"id": "b"}]
    assert page_items(runs, "data", what="runs") == [{"id": "a"}, {"id": "b"}]  # the bare list
    assert page_items(runs, None, what="runs") == [{"id": "a"}, {"id": "b"}]
    assert page_items({"next": None}, "data", what="runs") == []  # no key: an empty page
    assert page_items({"data": None}, "data", what="runs") == []
    assert page_field({"next": "t2", "data": []}, "next") == "t2"
    assert page_field({"data": []}, "next") is None
    assert page_field([{"next": "t"}], "next") is None  # a list page has no pagination fields


@pytest.mark.parametrize(
    ("body", "key", "text"),
    [
        ({"data": {"id": "a"}}, "data", "expected an object with a 'data' list, got dict"),
        ("oops", "data", "expected an object with a 'data' list, got str"),
        ({"data": []}, None, "expected a list, got dict"),
        (7, None, "expected a list, got int"),
    ],
)
def test_a_page_of_the_wrong_shape_names_the_listing(body, key, text):
    from airflow_provider_flowruns.core.errors import UnexpectedResponse
    from airflow_provider_flowruns.core.pages import page_items

    with pytest.raises(UnexpectedResponse) as refused:
        page_items(body, key, what="Habu question runs")
    assert refused.value.message == f"listing Habu question runs answered a page of the wrong shape: {text}"
    assert (refused.value.status, refused.value.retryable) == (200, False)


def test_every_api_error_field_survives_pickling():
    err = FlowRunsApiError(
        "slow down",
        status=429,
        vendor_code="RATE",
        request_id="req-2",
        retry_after=30.0,
        method="POST",
        path="runs",
    )
    assert (err.retry_after, err.method, err.path, err.message) == (30.0, "POST", "runs", "slow down")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is FlowRunsApiError
    fields = ("message", "status", "vendor_code", "request_id", "retry_after", "method", "path")
    assert {f: getattr(copy, f) for f in fields} == {f: getattr(err, f) for f in fields}
    assert str(copy) == str(err) == "POST runs failed with HTTP 429: RATE: slow down; request id req-2"


def test_a_spent_budget_says_when_it_refills():
    from airflow_provider_flowruns.core.errors import RateLimitBudgetExhausted

    err = RateLimitBudgetExhausted("20 run creations per hour spent", retry_at=1234.5)
    assert (str(err), err.retry_at) == ("20 run creations per hour spent", 1234.5)
    assert RateLimitBudgetExhausted("spent").retry_at is None


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({}, "request failed: no answer"),  # a transport failure: no status, no call named
        ({"method": "GET"}, "request failed: no answer"),  # half a call names none
        ({"path": "runs"}, "request failed: no answer"),
        ({"status": 500}, "request failed with HTTP 500: no answer"),
        ({"status": 404, "method": "GET", "path": "runs/x"}, "GET runs/x failed with HTTP 404: no answer"),
        ({"request_id": "r-9"}, "request failed: no answer; request id r-9"),
    ],
)
def test_an_api_error_names_only_what_it_knows(fields, text):
    assert str(FlowRunsApiError("no answer", **fields)) == text


# -- a spent token ration, explained: what is spent and when it frees ------------------------------------
def test_a_ration_counts_only_the_newest_mints_inside_its_window():
    from airflow_provider_flowruns.core.token_ration import TokenRation

    ration = TokenRation("Habu", tokens=2, window=1000.0, window_text="24 h")
    # now 1060: the window opened at 60 (a mint at exactly 60 is outside); duplicates count once
    assert ration.recent([300.0, 50.0, 60.0, 200.0, 200.0], now=1060.0) == (200.0, 300.0)
    assert ration.recent([500.0, 100.0, 900.0, 700.0], now=1000.0) == (700.0, 900.0)  # the newest two
    assert ration.recent([], now=1000.0) == ()
    assert ration.recent([60.0, 300.0], now=1060.0) == (300.0,)  # one window old: expired
    assert TokenRation("X", 1, 10.0, "10 s").recent([5.0, 8.0], now=12.0) == (8.0,)
    # now defaults to the clock
    assert ration.recent([time.time() - 10, time.time() - 5000]) == pytest.approx((time.time() - 10,), abs=5)


def test_a_spent_ration_says_when_it_frees_as_far_as_this_deployment_knows():
    from airflow_provider_flowruns.core.token_ration import TokenRation, utc

    ration = TokenRation("Habu", tokens=2, window=86400.0, window_text="24 h")
    now = time.time()
    first, second = now - 600.0, now - 60.0
    assert ration.frees([second, first, now - 90000.0]) == (
        f"The ration frees at {utc(first + 86400)} (24 h after the first of the two tokens, minted at "
        f"{utc(first)})."
    )
    assert ration.frees([second]) == (
        f"The ration frees by {utc(second + 86400)} at the latest (24 h after the token this deployment "
        f"minted at {utc(second)}; the other token(s) were minted outside this deployment's record)."
    )
    assert ration.frees([]) == "The ration frees within 24 h of the first of the two tokens."
    assert ration.explain([]) == (
        "Habu mints at most two tokens per API user per 24 h and this API user's are spent. A run "
        "already started keeps running at Habu; this task could not check it. The ration frees within "
        "24 h of the first of the two tokens."
    )


@pytest.mark.parametrize(("tokens", "count"), [(1, "one"), (2, "two"), (3, "three"), (5, "5")])
def test_a_ration_names_its_count_in_words(tokens, count):
    from airflow_provider_flowruns.core.token_ration import TokenRation

    assert TokenRation("V", tokens, 60.0, "1 min").frees([]) == (
        f"The ration frees within 1 min of the first of the {count} tokens."
    )


def test_ration_times_are_utc_to_the_second_whatever_the_machine_s_time_zone(monkeypatch):
    from airflow_provider_flowruns.core.token_ration import utc

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert utc(0) == "1970-01-01 00:00:00 UTC"
        assert utc(1_790_000_000.9) == "2026-09-21 14:13:20 UTC"
    finally:
        monkeypatch.undo()
        time.tzset()

"""Engine additions used by the Activepieces hook: calls that leave the connection's credentials
behind (public webhook and resume routes), and ISO-8601 timestamps for run filters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_flowruns.core.errors import FlowRunsApiError, FlowRunsConfigError
from airflow_provider_flowruns.core.http import Call
from airflow_provider_flowruns.core.timestamps import iso_utc, parse_iso8601
from airflow_provider_flowruns.testing.demo import DemoHook


def test_unauthenticated_call_sends_no_credentials(demo):
    """The demo API requires the bearer token: the same call passes with it and is refused without."""
    hook = DemoHook(max_retries=0)
    assert "runs" in hook.call(Call("GET", "runs"))
    with pytest.raises(FlowRunsApiError) as info:
        hook.call(Call("GET", "runs", authenticated=False))
    assert info.value.status == 401
    with pytest.raises(FlowRunsApiError) as streamed, hook.stream(Call("GET", "runs", authenticated=False)):
        pass
    assert streamed.value.status == 401
    assert "runs" in hook.call(Call("GET", "runs"))  # the client keeps its auth for later calls


async def test_unauthenticated_async_call_sends_no_credentials(demo):
    hook = DemoHook(max_retries=0)
    try:
        assert "runs" in await hook.acall(Call("GET", "runs"))
        with pytest.raises(FlowRunsApiError) as info:
            await hook.acall(Call("GET", "runs", authenticated=False))
        assert info.value.status == 401
    finally:
        await hook.aclose()


def test_timestamps_are_utc_with_milliseconds_and_errors_name_the_parameter():
    assert iso_utc("2026-11-23T01:00:00+02:00", "created_after") == "2026-11-22T23:00:00.000Z"
    assert iso_utc("2026-11-23", "x") == "2026-11-23T00:00:00.000Z"  # naive means UTC
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-1)))
    assert iso_utc(moment, "x") == "2026-01-02T04:04:05.678Z"
    assert parse_iso8601("2026-11-23T00:00:00Z", "x").tzinfo is not None
    for bad in ("yesterday", "", None, 5):
        with pytest.raises(FlowRunsConfigError, match="created_before"):
            iso_utc(bad, "created_before")


def test_timestamps_keep_offsets_strip_blanks_and_name_the_parameter_exactly():
    plus_two = timezone(timedelta(hours=2))
    assert parse_iso8601(" 2026-11-23T01:00:00+02:00 ", "x") == datetime(2026, 11, 23, 1, tzinfo=plus_two)
    assert parse_iso8601("2026-11-23T01:00:00+02:00", "x").utcoffset() == timedelta(hours=2)  # kept
    assert parse_iso8601("2026-11-23T00:00:00Z", "x") == datetime(2026, 11, 23, tzinfo=timezone.utc)
    naive = parse_iso8601(datetime(2026, 11, 23, 5), "x")
    assert (naive.hour, naive.tzinfo) == (5, timezone.utc)  # naive means UTC, not local time
    aware = datetime(2026, 11, 23, 5, tzinfo=plus_two)
    assert parse_iso8601(aware, "x") is aware
    for bad, text in [
        (5, "created_before must be an ISO-8601 timestamp string, got 5"),
        ("  ", "created_before must be an ISO-8601 timestamp string, got '  '"),
        ("yesterday", "created_before is not an ISO-8601 timestamp: 'yesterday'"),
    ]:
        with pytest.raises(FlowRunsConfigError) as refused:
            iso_utc(bad, "created_before")
        assert str(refused.value) == text


def test_timestamps_are_utc_whatever_the_machine_s_time_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
        assert iso_utc(moment, "x") == "2026-01-02T01:04:05.000Z"
        assert iso_utc("2026-07-01T12:00:00", "x") == "2026-07-01T12:00:00.000Z"  # naive: UTC, not local
    finally:
        monkeypatch.undo()
        time.tzset()

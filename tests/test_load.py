"""Load: many deferred runs across the four vendors waiting in one event loop, the way Airflow's
triggerer runs them (every trigger an asyncio task of one loop, one process).

``make test`` runs 40; ``make soak`` runs 200 (``FLOWRUNS_LOAD_RUNS``). Runs are started through the
hooks (the vendors' create limits respected: Habu's 20 per hour at a fast emulated hour), then one
``FlowRunTrigger`` per run waits in a single loop. Every trigger must yield exactly one success
event; every vendor must have made exactly one run per trigger; the shared clients are released.
The process's RSS and the loop's lag (how late a 50 ms timer fires) are reported, not asserted:
performance belongs to the benchmarks.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Iterator
from itertools import cycle

import pytest

from airflow_provider_flowruns.core.clients import REGISTRY
from airflow_provider_flowruns.core.errors import RateLimitBudgetExhausted
from airflow_provider_flowruns.core.http import FlowRunsHook
from airflow_provider_flowruns.core.runs import RunRef
from airflow_provider_flowruns.core.schedule import PollSchedule
from airflow_provider_flowruns.hooks.activepieces import ActivepiecesHook, RunFilter
from airflow_provider_flowruns.hooks.amperity import AmperityHook
from airflow_provider_flowruns.hooks.habu import QUESTION_RUN, HabuHook
from airflow_provider_flowruns.hooks.tableflow import TableflowHook
from airflow_provider_flowruns.testing.activepieces_app import FLOW_OK
from airflow_provider_flowruns.triggers.run import FlowRunTrigger
from flowruns_dev.fleet import EmulatorFleet

LOAD_RUNS = int(os.environ.get("FLOWRUNS_LOAD_RUNS", "40"))
VENDORS = ("amperity", "habu", "tableflow", "activepieces")
#: Runs last a few seconds; Habu's emulated hour is one real second so 20 creates/hour never stall.
SPEEDS = {"amperity": 10.0, "habu": 3600.0, "tableflow": 4.0, "activepieces": 10.0}
DATES = {"START_DATE": "2026-11-16", "END_DATE": "2026-11-23"}
POLL = 1.0  # seconds between a trigger's polls (Habu's 5-minute floor is 0.08 s at this speed)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[EmulatorFleet]:
    with EmulatorFleet(tmp_path_factory.mktemp("load"), speeds=SPEEDS, vendors=VENDORS) as fleet:
        yield fleet


def start_runs(vendor: str, count: int, invoice: str) -> tuple[type[FlowRunsHook], list[RunRef]]:
    """Start ``count`` runs of ``vendor`` through its hook; their references."""
    if vendor == "amperity":
        hook = AmperityHook()
        return AmperityHook, [RunRef(hook.start_workflow(f"cg-load-{i}")["id"]) for i in range(count)]
    if vendor == "habu":
        habu, refs = HabuHook(), []
        while len(refs) < count:
            try:
                run = habu.create_question_run("crq-files", name=f"load-{len(refs)}", parameters=DATES)
            except RateLimitBudgetExhausted as exc:  # 20 per emulated hour: wait for the next one
                time.sleep(max(0.0, (exc.retry_at or time.time()) - time.time()))
                continue
            refs.append(RunRef(run["id"], kind=QUESTION_RUN))
        return HabuHook, refs
    if vendor == "tableflow":
        tableflow = TableflowHook()
        runs = [tableflow.run_flow("flow_invoices", {"invoice": invoice}) for _ in range(count)]
        return TableflowHook, [RunRef(run["id"]) for run in runs]
    activepieces = ActivepiecesHook()
    for i in range(count):
        activepieces.trigger_webhook(FLOW_OK, {"load": i})
    runs = list(activepieces.list_runs(RunFilter.build(flow_ids=[FLOW_OK])))
    return ActivepiecesHook, [RunRef(str(run["id"])) for run in runs]


async def wait_in_one_loop(triggers: list[FlowRunTrigger]) -> tuple[list[list[dict]], list[float]]:
    """Run every trigger as a task of this loop, as the triggerer does; sample the loop's lag."""
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.05)
            lags.append(time.perf_counter() - started - 0.05)

    async def drive(trigger: FlowRunTrigger) -> list[dict]:
        try:
            return [event.payload async for event in trigger.run()]
        finally:
            await trigger.cleanup()

    tick = asyncio.create_task(ticker())
    events = await asyncio.gather(*(drive(t) for t in triggers))
    done.set()
    await tick
    return list(events), lags


# The load shape does not depend on the Airflow version; the floor run skips it to keep CI short.
pytestmark = pytest.mark.newest_only


def test_many_deferred_runs_in_one_loop_all_finish_once(fleet, monkeypatch, fresh_tokens, tmp_path):
    for key, value in fleet.env.items():
        monkeypatch.setenv(key, value)
    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(b"%PDF-1.4\n" + os.urandom(5_000))
    shares = dict.fromkeys(VENDORS, 0)
    for _, vendor in zip(range(LOAD_RUNS), cycle(VENDORS)):
        shares[vendor] += 1
    triggers = []
    for vendor, count in shares.items():
        hook_cls, refs = start_runs(vendor, count, str(invoice))
        assert len(refs) == count, (vendor, len(refs))
        hook = hook_cls()
        triggers += [
            FlowRunTrigger(
                hook_class_path=hook.class_path(),
                hook_kwargs=hook.hook_kwargs(),
                run_ref=ref.to_dict(),
                schedule=PollSchedule.fixed(POLL, 0.0).to_dict(),
                deadline=time.time() + 300,
            )
            for ref in refs
        ]
    clients_before = REGISTRY.open_async_clients()
    rss_before = _rss_mib()

    events, lags = asyncio.run(wait_in_one_loop(triggers))

    assert all(len(e) == 1 for e in events), [e for e in events if len(e) != 1][:3]
    statuses = [e[0]["status"] for e in events]
    assert statuses.count("success") == LOAD_RUNS, {s: statuses.count(s) for s in set(statuses)}
    created = {vendor: fleet.stats(vendor)["runs_created"] for vendor in VENDORS}
    assert created == shares, "a vendor made more (or fewer) runs than were started"
    assert fleet.stats("habu")["polls_too_frequent"] == 0
    assert REGISTRY.open_async_clients() == clients_before  # every trigger released its client
    lags.sort()
    print(
        f"\nLOAD: {LOAD_RUNS} deferred runs in one loop ({shares}): all succeeded; "
        f"RSS {rss_before:.0f} -> {_rss_mib():.0f} MiB (peak {_peak_rss_mib():.0f} MiB); loop lag "
        f"p50 {1000 * lags[len(lags) // 2]:.1f} ms, p99 {1000 * lags[int(len(lags) * 0.99)]:.1f} ms, "
        f"max {1000 * lags[-1]:.1f} ms over {len(lags)} ticks"
    )


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

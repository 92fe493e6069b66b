"""One triggerer's event loop running N triggers of one kind; prints its measurements as JSON.

Run in a fresh interpreter by ``benchmarks.density`` so each side's memory starts from the same
imports. Like Airflow's TriggerRunner: each trigger's ``run()`` is iterated to its first event in a
task on one loop, then ``cleanup()`` is awaited.

Protocol: ``python -m benchmarks.density_worker ours|dbt`` imports, prints ``ready``, then reads one
JSON line ``{"run_ids": [...], "poll": s}`` from stdin (the runs are created only once the worker is
ready) and prints its measurements as one JSON line.

``FLOWRUNS_BENCH_PROFILE=/path/file.prof`` runs the event loop under cProfile and writes the stats
there (for looking at the per-poll path; the numbers of a profiled run are not comparable).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from typing import Any


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_triggers(kind: str, run_ids: list[Any], poll: float) -> list[Any]:
    if kind == "ours":
        from airflow_provider_flowruns.core.schedule import PollSchedule
        from airflow_provider_flowruns.testing.demo import DemoHook
        from airflow_provider_flowruns.triggers.run import FlowRunTrigger

        hook = DemoHook("flowruns_demo_default")
        return [
            FlowRunTrigger(
                hook_class_path=hook.class_path(),
                hook_kwargs=hook.hook_kwargs(),
                run_ref={"run_id": rid},
                schedule=PollSchedule.fixed(poll, 0.0).to_dict(),
                deadline=time.time() + 3600,
            )
            for rid in run_ids
        ]
    from airflow.providers.dbt.cloud.triggers.dbt import DbtCloudRunJobTrigger

    return [
        DbtCloudRunJobTrigger(
            conn_id="dbt_cloud_default",
            run_id=rid,
            end_time=time.time() + 3600,
            poll_interval=poll,
            account_id=1,
        )
        for rid in run_ids
    ]


async def main(kind: str, run_ids: list[Any], poll: float) -> dict[str, Any]:
    base_rss, base_cpu, started = rss(), cpu(), time.monotonic()
    triggers = make_triggers(kind, run_ids, poll)
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    peak = [rss()]
    done = asyncio.Event()

    async def monitor() -> None:
        tick = 0.05
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(tick)
            lags.append(max(0.0, loop.time() - before - tick))
            peak[0] = max(peak[0], rss())

    async def drive(trigger: Any) -> dict[str, Any]:
        try:
            async for event in trigger.run():
                return dict(event.payload)
            return {"status": "no event"}
        finally:
            await trigger.cleanup()

    watcher = asyncio.create_task(monitor())
    events = await asyncio.gather(*(drive(t) for t in triggers))
    done.set()
    await watcher
    lags.sort()
    return {
        "kind": kind,
        "triggers": len(triggers),
        "events": [str(e.get("status")) for e in events],
        "wall_s": time.monotonic() - started,
        "cpu_s": cpu() - base_cpu,
        "rss_base_b": base_rss,
        "rss_peak_b": peak[0],
        "lag_p99_s": lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else 0.0,
        "lag_max_s": lags[-1] if lags else 0.0,
    }


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "ours":  # import before the baseline RSS, as dbt's side imports in make_triggers
        import airflow_provider_flowruns.testing.demo
        import airflow_provider_flowruns.triggers.run  # noqa: F401
    else:
        import airflow.providers.dbt.cloud.triggers.dbt  # noqa: F401
    print("ready", flush=True)
    spec = json.loads(sys.stdin.readline())
    profile_to = os.environ.get("FLOWRUNS_BENCH_PROFILE")
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(asyncio.run, main(kind, spec["run_ids"], spec["poll"]))
        profiler.dump_stats(profile_to)
    else:
        result = asyncio.run(main(kind, spec["run_ids"], spec["poll"]))
    print(json.dumps(result))

"""DAG for ``tests/e2e/test_process_faults.py::test_thirty_deferrals_at_the_shortest_interval_...``.

``pf_defer_race``: 30 deferrable demo runs side by side, each at the demo vendor's shortest allowed
poll interval (its 1 s floor, halved again by the fleet's ``emulator_time_scale``), each run over
before the first poll after deferring: the trigger fires as early as the provider lets it. A
trigger that fires before the scheduler recorded the deferral gets the task failed or retried
(apache/airflow#67287); the first-poll floor (``[flowruns] first_poll_floor``) is what prevents it.

The operator here skips the status check before deferring: with it, a loaded worker that took over
a second between submit and check found the run already over and finished without deferring (a
clean-clone run on a loaded machine: 21 of 30 deferred), and the test then counted the race fewer
times than it claims to. Without it every task defers, whatever the machine's load.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_flowruns.testing.demo import DemoRunOperator

RACE_TASKS = 30


class AlwaysDeferringDemoRunOperator(DemoRunOperator):
    """The demo run operator without the status check before deferring: every task defers."""

    check_before_defer = False


with DAG(
    "pf_defer_race",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks=RACE_TASKS,
):
    AlwaysDeferringDemoRunOperator.partial(
        task_id="wait",
        duration=2,  # emulated seconds: 1 s at the fleet's 2x demo clock
        deferrable=True,
        poll_interval=1,  # the demo floor
        poll_schedule="fixed",
        # What the docs recommend for deferrable tasks; a spurious failure shows as try_number 2.
        retries=1,
        retry_delay=timedelta(seconds=5),
    ).expand(run_name=[f"race-{{{{ run_id }}}}-{i}" for i in range(RACE_TASKS)])

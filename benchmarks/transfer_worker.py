"""Stream one demo run's result to a destination with the product's transfer operator; print JSON.

A fresh interpreter per transfer so the peak RSS (VmHWM) is this transfer's alone.
"""

from __future__ import annotations

import json
import sys
import time


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    run_id, destination = sys.argv[1], sys.argv[2]
    from airflow_provider_flowruns.testing.demo import DemoResultToStorageOperator

    op = DemoResultToStorageOperator(task_id="save", run_id=run_id, destination=destination)
    before = peak_rss()
    started = time.perf_counter()
    written = op.execute({})
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "size": written["size"],
                "peak_rss_b": peak_rss(),
                "rss_before_b": before,
            }
        )
    )

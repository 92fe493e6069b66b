"""One transfer with the product's transfer operator in a fresh interpreter; print JSON.

``result <run id> <destination>``: a demo run's result file (``DemoResultToStorageOperator``, the
shared streamed ``download_to``). ``report <question run id> <destination prefix>``: a Habu
question run's paginated result data as ``data.csv`` (``HabuQuestionRunFilesToStorageOperator``
with ``include_data="csv"``: every page fetched, its rows encoded as CSV, the row count checked,
the object moved into place). A fresh interpreter per transfer so the peak RSS (VmHWM) is this
transfer's alone; ``rss_before_b`` is the peak once Airflow's object storage (its filesystems and
its lineage collector) is loaded, just before the transfer starts. It prints ``ready`` there and waits for a line on stdin, so the parent can start the
timed part at a moment of its choosing (see ``transfer.FILE_PAIRS``).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

from airflow.sdk import ObjectStoragePath
from airflow.sdk.lineage import get_hook_lineage_collector

#: Printed once the worker is loaded; it then waits for a line on stdin before its timed transfer.
READY = "ready"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _operator(kind: str, run_id: str, destination: str) -> Any:
    if kind == "report":
        from airflow_provider_flowruns.transfers.habu import HabuQuestionRunFilesToStorageOperator

        return HabuQuestionRunFilesToStorageOperator(
            task_id="save", run_id=run_id, destination=destination, include_data="csv"
        )
    from airflow_provider_flowruns.testing.demo import DemoResultToStorageOperator

    return DemoResultToStorageOperator(task_id="save", run_id=run_id, destination=destination)


if __name__ == "__main__":
    args = sys.argv[1:]
    kind = args.pop(0) if args[0] in ("result", "report") else "result"
    run_id, destination = args
    op = _operator(kind, run_id, destination)
    # What any object-storage use loads before a byte moves: Airflow registers every installed
    # provider's filesystem (the Amazon provider's imports botocore) and builds the destination's.
    # The peak over this is the transfer's own memory; the absolute peak is reported too.
    ObjectStoragePath(destination if "://" in destination else f"file://{destination}").fs  # noqa: B018
    # ... and what its first write, move or copy loads: Airflow's hook lineage collector, whose
    # first use imports every installed provider's asset module (~0.1 s with the Amazon provider).
    get_hook_lineage_collector()
    # A task process is forked from Airflow's supervisor, so it has the supervisor module loaded;
    # a fresh interpreter would import it inside the timed part, on the first connection lookup.
    import airflow.sdk.execution_time.supervisor  # noqa: F401

    before = peak_rss()
    print(READY, flush=True)
    sys.stdin.readline()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    written = op.execute({})
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    objects = written if isinstance(written, list) else [written]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_s": cpu,
                "size": sum(int(o["size"]) for o in objects),
                "rows": sum(int(o.get("rows", 0)) for o in objects),
                "peak_rss_b": peak_rss(),
                "rss_before_b": before,
            }
        )
    )

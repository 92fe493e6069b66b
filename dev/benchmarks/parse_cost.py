"""Benchmark 1: DAG-parse cost of importing our operator/sensor modules, against dbt Cloud's.

In fresh interpreters (every DAG-processor parse of a new file pays imports once per process):
time and RSS to import the modules, minus a bare ``import airflow.sdk`` measured in the same
interpreter just before. Ours and dbt's alternate, so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import json
import pkgutil
import statistics
import subprocess
import sys
from importlib.util import find_spec

import airflow_provider_flowruns
from benchmarks.report import Report, Row

DBT_MODULES = ["airflow.providers.dbt.cloud.operators.dbt", "airflow.providers.dbt.cloud.sensors.dbt"]

_PROBE = """
import json, os, sys, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
t0, m0 = time.perf_counter(), rss()
import airflow.sdk
t1, m1 = time.perf_counter(), rss()
for name in sys.argv[1:]:
    __import__(name)
t2, m2 = time.perf_counter(), rss()
print(json.dumps({"sdk_s": t1 - t0, "sdk_b": m1 - m0, "s": t2 - t1, "b": m2 - m1}))
"""


def our_modules() -> list[str]:
    """Every module a DAG author imports operators or sensors from (transfers are operators too)."""
    names = []
    for sub in ("operators", "sensors", "transfers"):
        pkg = f"airflow_provider_flowruns.{sub}"
        path = [str(p) for p in __import__(pkg, fromlist=["x"]).__path__]
        names += [f"{pkg}.{m.name}" for m in pkgutil.iter_modules(path)]
    assert airflow_provider_flowruns
    return sorted(names)


def probe(modules: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules], check=True, capture_output=True, text=True, timeout=300
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def dbt_available() -> bool:
    try:
        return find_spec("airflow.providers.dbt.cloud") is not None
    except ModuleNotFoundError:  # find_spec imports the parents: no airflow.providers.dbt at all
        return False


def run(report: Report, *, smoke: bool) -> None:
    reps = 1 if smoke else 15
    ours_mods = our_modules()
    has_dbt = dbt_available()
    ours: list[dict[str, float]] = []
    dbt: list[dict[str, float]] = []
    for _ in range(reps):
        ours.append(probe(ours_mods))
        if has_dbt:
            dbt.append(probe(DBT_MODULES))

    def med(runs: list[dict[str, float]], key: str) -> float | None:
        return statistics.median(r[key] for r in runs) if runs else None

    t_ours, t_dbt = statistics.median(r["s"] for r in ours), med(dbt, "s")
    m_ours, m_dbt = statistics.median(r["b"] for r in ours), med(dbt, "b")
    name = f"1 DAG-parse cost, {len(ours_mods)} modules, median of {reps} fresh interpreters"
    judge = not smoke and has_dbt
    report.add(
        Row(
            name,
            "import time over `import airflow.sdk`",
            t_ours * 1000,
            None if t_dbt is None else t_dbt * 1000,
            "ms",
            "<= 0.5x and < 50 ms",
            (t_ours <= 0.5 * t_dbt and t_ours < 0.05) if judge and t_dbt else None,
            baseline_name="dbt Cloud",
        )
    )
    report.add(
        Row(
            name,
            "RSS over `import airflow.sdk`",
            m_ours / 2**20,
            None if m_dbt is None else m_dbt / 2**20,
            "MiB",
            "<= 0.5x",
            (m_ours <= 0.5 * m_dbt) if judge and m_dbt else None,
            baseline_name="dbt Cloud",
        )
    )
    sdk = statistics.median(r["sdk_s"] for r in ours + dbt)
    report.notes.append(f"bench 1: a bare `import airflow.sdk` itself took {sdk * 1000:.0f} ms (median).")
    if not has_dbt:
        report.notes.append(
            "bench 1: apache-airflow-providers-dbt-cloud is NOT installed here - dbt baseline skipped "
            "(it lives in .venv-bench; run `make bench` or `make bench-smoke`)."
        )

"""Benchmark 2: triggerer density - N ``FlowRunTrigger``s in one event loop against N dbt Cloud
``DbtCloudRunJobTrigger``s, both polling the emulator served by uvicorn in another process.

Both sides get the same run durations (random, over a few emulated minutes), the same poll interval
and the same TLS server (dbt's hook only speaks https). The server counts status polls and the
distinct client ports (TCP connections) per vendor; the worker process reports RSS, CPU and
event-loop lag (``benchmarks.density_worker``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_flowruns.testing.process import EmulatorProcess
from benchmarks.parse_cost import dbt_available
from benchmarks.report import Report, Row
from benchmarks.tls import self_signed

DEMO_TOKEN = "demo-token"
DBT_TOKEN = "dbt-token"
OURS_POLL = "GET /demo/v1/runs/{run_id}"
DBT_POLL = "GET /dbtcloud/api/v2/accounts/{account_id}/runs/{run_id}/"


def create_runs(emu: EmulatorProcess, kind: str, durations: list[float], verify: Any) -> list[Any]:
    """Start the runs the triggers will watch (from this process: setup is not measured)."""
    ids: list[Any] = []
    with httpx.Client(verify=verify, timeout=30) as client:
        for i, duration in enumerate(durations):
            if kind == "ours":
                body = {"name": f"bench-{i}", "duration": duration}
                r = client.post(
                    emu.url("demo", "/v1/runs"), json=body, headers={"Authorization": f"Bearer {DEMO_TOKEN}"}
                )
            else:
                r = client.post(
                    emu.url("dbtcloud", "/api/v2/accounts/1/jobs/1/run/"),
                    json={"cause": "bench", "duration": duration},
                    headers={"Authorization": f"Token {DBT_TOKEN}"},
                )
            r.raise_for_status()
            body = r.json()
            ids.append(body["id"] if kind == "ours" else body["data"]["id"])
    return ids


def run_side(
    emu: EmulatorProcess, kind: str, durations: list[float], poll: float, env: dict[str, str], verify: Any
) -> dict[str, Any]:
    ids = create_runs(emu, kind, durations, verify)
    before = emu.stats()
    spec = json.dumps({"kind": kind, "run_ids": ids, "poll": poll})
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.density_worker", spec],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    after = emu.stats()
    route = OURS_POLL if kind == "ours" else DBT_POLL
    result["polls"] = after["requests"].get(route, 0) - before["requests"].get(route, 0)
    vendor = "demo" if kind == "ours" else "dbtcloud"
    result["connections"] = after.get("connections", {}).get(vendor, 0) - before.get("connections", {}).get(
        vendor, 0
    )
    return result


def run(report: Report, *, smoke: bool) -> None:
    n = 20 if smoke else 1000
    speed, poll = (4.0, 0.5) if smoke else (4.0, 2.0)
    lo, hi = (8.0, 16.0) if smoke else (30.0, 240.0)  # emulated seconds: "a few minutes"
    rng = random.Random(11)
    durations = [rng.uniform(lo, hi) for _ in range(n)]
    has_dbt = dbt_available()
    with tempfile.TemporaryDirectory(prefix="flowruns-bench-") as tmp:
        cert, key = self_signed(Path(tmp))
        import ssl

        verify = ssl.create_default_context(cafile=cert)
        with EmulatorProcess(["demo", "dbtcloud"], speed=speed, tls=(cert, key)) as emu:
            env = {
                **os.environ,
                "SSL_CERT_FILE": cert,  # both httpx (trust_env) and aiohttp (default context) honour it
                "AIRFLOW_HOME": tmp,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT": json.dumps(
                    {"conn_type": "flowruns_demo", "host": emu.url("demo", "/v1"), "password": DEMO_TOKEN}
                ),
                "AIRFLOW_CONN_DBT_CLOUD_DEFAULT": json.dumps(
                    {
                        "conn_type": "dbt_cloud",
                        "host": emu.base.removeprefix("https://") + "/dbtcloud",
                        "password": DBT_TOKEN,
                    }
                ),
            }
            ours = run_side(emu, "ours", durations, poll, env, verify)
            dbt = run_side(emu, "dbt", durations, poll, env, verify) if has_dbt else None
    for side in filter(None, (ours, dbt)):
        bad = [e for e in side["events"] if e != "success"]
        if bad or len(side["events"]) != n:
            raise RuntimeError(
                f"density {side['kind']}: {len(bad)} of {n} triggers did not succeed: {bad[:5]}"
            )
    name = f"2 triggerer density, {n} triggers, {int(lo)}-{int(hi)} emulated s runs, poll {poll} s"
    judge = not smoke and dbt is not None

    def per(side: dict[str, Any] | None, what: str) -> float | None:
        if side is None:
            return None
        if what == "rss":
            return (side["rss_peak_b"] - side["rss_base_b"]) / side["triggers"] / 1024
        if what == "cpu":
            return side["cpu_s"] / max(side["polls"], 1) * 1000
        if what == "lag":
            return side["lag_p99_s"] * 1000
        return float(side["connections"])

    rss_o, rss_d = per(ours, "rss") or 0.0, per(dbt, "rss")
    cpu_o, cpu_d = per(ours, "cpu") or 0.0, per(dbt, "cpu")
    report.add(
        Row(
            name,
            "peak RSS per trigger",
            rss_o,
            rss_d,
            "KiB",
            "<= 0.5x",
            rss_o <= 0.5 * rss_d if judge and rss_d else None,
            baseline_name="dbt Cloud",
        )
    )
    report.add(
        Row(
            name,
            "CPU per 1,000 polls",
            cpu_o,
            cpu_d,
            "s",
            "<= 0.5x",
            cpu_o <= 0.5 * cpu_d if judge and cpu_d else None,
            baseline_name="dbt Cloud",
        )
    )
    lag_o = per(ours, "lag") or 0.0
    report.add(
        Row(
            name,
            "event-loop lag p99",
            lag_o,
            per(dbt, "lag"),
            "ms",
            "ours < 100 ms",
            lag_o < 100 if not smoke else None,
            baseline_name="dbt Cloud",
        )
    )
    conn_o = per(ours, "connections") or 0.0
    report.add(
        Row(
            name,
            "TCP connections opened",
            conn_o,
            per(dbt, "connections"),
            "",
            "small constant per conn id",
            conn_o <= 20 if not smoke else None,
            baseline_name="dbt Cloud",
        )
    )
    report.add(
        Row(
            name,
            "status polls (sanity)",
            float(ours["polls"]),
            None if dbt is None else float(dbt["polls"]),
            "",
            "-",
        )
    )
    report.notes.append(
        f"bench 2: ours ran {ours['wall_s']:.0f} s wall, {ours['cpu_s']:.1f} s CPU, "
        f"{ours['polls']} polls over {ours['connections']} connections"
        + (
            f"; dbt Cloud {dbt['wall_s']:.0f} s wall, {dbt['cpu_s']:.1f} s CPU, {dbt['polls']} polls over "
            f"{dbt['connections']} connections."
            if dbt
            else "; dbt Cloud baseline skipped (provider not installed here)."
        )
    )

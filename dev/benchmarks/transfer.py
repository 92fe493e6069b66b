"""Benchmark 3: transfer throughput and memory, to ``file://`` and to ``s3://`` (moto's server),
one fresh process per transfer, each at two sizes (a streamed copy should not grow with size):

- a result file streamed from the demo emulator (uvicorn) by ``DemoResultToStorageOperator`` (the
  shared ``download_to`` every vendor's file transfer uses), against ``curl -o`` of the same URL;
- a paginated report: a Habu question run's result data (the Habu emulator's ``crq-big-report``,
  500 rows of ~450 bytes per page, as the hook asks) written as one CSV by
  ``HabuQuestionRunFilesToStorageOperator(include_data="csv")``, against curl fetching the same
  page URLs (one connection, pages appended to one file).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_flowruns.testing.process import EmulatorProcess
from benchmarks.report import Report, Row
from benchmarks.transfer_worker import READY
from flowruns_dev.moto import MotoServer

TOKEN = "demo-token"
MIB = 1 << 20
GIB = 1 << 30
HABU_CLIENT, HABU_SECRET = "habu-client", "habu-secret"
#: Alternating curl / ours pairs per result-file size, medians reported. On a VM, writing a GiB of
#: page cache costs ~0.3 s of CPU when it reuses pages another file freed just before, and ~3 s once
#: the guest has handed the freed pages back to the host (after ~2 s idle: free page reporting).
#: curl starts in milliseconds, a worker in seconds, so each side starts its transfer right after the
#: other's file is deleted: both reuse the same freed pages, neither pays for the other's start-up.
FILE_PAIRS = 3
REPORT_PAGE = 500  # rows per page, as HabuHook asks (REPORT_PAGE_SIZE)


def start_run(emu: EmulatorProcess, size: int) -> str:
    r = httpx.post(
        emu.url("demo", "/v1/runs"),
        json={"name": f"bench-{size}", "duration": 0, "result_bytes": size},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    r.raise_for_status()
    return str(r.json()["id"])


def curl(url: str, dest: Path) -> tuple[float, float]:
    """``curl -o``: its wall time and its CPU time (user + system), in seconds."""
    before = _children_cpu()
    started = time.perf_counter()
    subprocess.run(
        ["curl", "-sSf", "-o", str(dest), "-H", f"Authorization: Bearer {TOKEN}", url],
        check=True,
        timeout=1800,
    )
    return time.perf_counter() - started, _children_cpu() - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def report_rows(size: int) -> int:
    """Rows of ``crq-big-report`` whose CSV is about ``size`` bytes (row width from a sample)."""
    from airflow_provider_flowruns.core.rows import encode_rows
    from airflow_provider_flowruns.testing.habu_app import _WIDE_COLUMNS, _wide_row

    sample = 2000
    columns = [c for c, _ in _WIDE_COLUMNS]
    width = sum(len(c) for c in encode_rows("csv", columns, (_wide_row(i) for i in range(sample)))) / sample
    return max(1, round(size / width))


def habu_report_run(emu: EmulatorProcess) -> tuple[str, str]:
    """A completed ``crq-big-report`` question run on the Habu emulator, and a token for curl."""
    token = httpx.post(
        emu.url("habu", "/v1/oauth/token"),
        data={"grant_type": "client_credentials"},
        auth=(HABU_CLIENT, HABU_SECRET),
    )
    token.raise_for_status()
    bearer = str(token.json()["accessToken"])
    created = httpx.post(
        emu.url("habu", "/v1/cleanroom-questions/crq-big-report/create-run"),
        json={"name": "bench-report", "parameters": {"START_DATE": "2025-01-01", "END_DATE": "2025-01-31"}},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    created.raise_for_status()
    emu.control("POST", "clock", json={"advance": 600})  # QUEUED 60 s + RUNNING 60 s: completed
    return str(created.json()["id"]), bearer


def curl_pages(url: str, rows: int, bearer: str, dest: Path) -> float:
    """curl fetching every page URL the hook fetches (URL globbing: one connection, in order),
    the pages appended to one file."""
    last = (rows - 1) // REPORT_PAGE * REPORT_PAGE
    started = time.perf_counter()
    with dest.open("wb") as out:
        subprocess.run(
            [
                "curl",
                "-sSf",
                "-H",
                f"Authorization: Bearer {bearer}",
                f"{url}?limit={REPORT_PAGE}&offset=[0-{last}:{REPORT_PAGE}]",
            ],
            stdout=out,
            check=True,
            timeout=3600,
        )
    return time.perf_counter() - started


def ours(
    run_id: str,
    destination: str,
    env: dict[str, str],
    kind: str = "result",
    *,
    just_before: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One transfer in a fresh worker process. ``just_before`` runs once the worker is loaded and
    waiting, right before its timed transfer starts (as curl's starts right after the parent's
    previous step)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.transfer_worker", kind, run_id, destination],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if proc.stdout.readline().strip() == READY and just_before is not None:
            just_before()
        proc.stdin.write("go\n")
        proc.stdin.flush()
    except BrokenPipeError:
        pass  # it failed while loading: its stderr says why
    stdout, stderr = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"transfer to {destination} failed:\n{stderr[-3000:]}")
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def compile_provider() -> None:
    """Byte-compile the provider, as ``pip install`` does. The operator imports its engine inside
    ``execute()``, i.e. inside the timed transfer, and where the bytecode was never written
    (``PYTHONDONTWRITEBYTECODE``, uv's default install) each worker would compile it there: ~60 ms
    that a real install does not pay and curl has no counterpart of."""
    import airflow_provider_flowruns

    package = Path(airflow_provider_flowruns.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, timeout=300)


def _sync_unlink(path: Path) -> None:
    os.sync()
    path.unlink(missing_ok=True)


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median time, carrying the highest peak RSS of all the runs."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[len(ordered) // 2], "peak_rss_b": max(r["peak_rss_b"] for r in runs)}


def _s3(report: Report, results: dict[tuple[str, int], dict[str, Any]], size: int, transfer: Any) -> bool:
    """Run an s3:// transfer; moto's server has answered 500 to a 1 GiB multipart completion under
    load, so a failed one is reported as a note (and its rows left out) instead of ending the run."""
    try:
        results[("s3", size)] = transfer()
        return True
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1][:200]
        report.notes.append(
            f"bench 3: an s3:// transfer of {size // MIB} MiB failed ({last}); its rows are missing."
        )
        return False


def _rows(
    report: Report,
    what: str,
    results: dict[tuple[str, int], dict[str, Any]],
    curl_s: dict[int, float],
    sizes: list[int],
    *,
    smoke: bool,
    throughput_goal: bool,
    baseline: str,
) -> None:
    big, small = sizes[-1], sizes[0]
    label = lambda s: f"{s // MIB} MiB"  # noqa: E731
    for dest in ("file", "s3"):
        if (dest, big) not in results or (dest, small) not in results:
            report.notes.append(
                f"bench 3 ({what}): no {dest}:// rows - s3fs / the Amazon provider are not installed here "
                "(the dev group and the s3 extra install them), or a transfer failed (see the notes)."
            )
            continue
        name = f"3 transfer {what} -> {dest}://"
        for size in sizes:
            mbps = results[(dest, size)]["size"] / MIB / results[(dest, size)]["seconds"]
            curl_mbps = results[("curl", size)]["size"] / MIB / curl_s[size]
            # The issue sets the goal for the 1 GiB file; smaller sizes are reported (there a
            # task's fixed start-up, which curl has no counterpart of, is a visible share).
            judged = throughput_goal and dest == "file" and size == big
            # throughput: higher is better, so the row holds curl's time / ours (ratio of speeds)
            report.add(
                Row(
                    f"{name} {label(size)}",
                    "throughput",
                    mbps,
                    curl_mbps,
                    "MiB/s",
                    ">= 0.8x of curl" if judged else "(reported)",
                    (mbps >= 0.8 * curl_mbps) if judged and not smoke else None,
                    baseline_name=baseline,
                )
            )
        peaks = [results[(dest, s)]["peak_rss_b"] / 1e6 for s in sizes]
        report.add(
            Row(
                f"{name} peak RSS",
                f"at {label(big)} vs at {label(small)}",
                peaks[1],
                peaks[0],
                "MB",
                "same peak, < 150 MB",
                (peaks[1] <= peaks[0] * 1.1 + 5 and peaks[1] < 150) if not smoke else None,
                baseline_name=f"ours at {label(small)}",
            )
        )
        added = [(results[(dest, s)]["peak_rss_b"] - results[(dest, s)]["rss_before_b"]) / 1e6 for s in sizes]
        report.add(
            Row(
                f"{name} peak RSS added by the transfer",
                f"at {label(big)} vs at {label(small)}, over the process before it",
                added[1],
                added[0],
                "MB",
                "-",
                None,
                baseline_name=f"ours at {label(small)}",
            )
        )


def run(report: Report, *, smoke: bool) -> None:
    sizes = [1 * MIB, 8 * MIB] if smoke else [100 * MIB, 1024 * MIB]
    has_s3 = find_spec("s3fs") is not None and find_spec("airflow.providers.amazon") is not None
    compile_provider()
    with tempfile.TemporaryDirectory(prefix="flowruns-bench-") as tmp:
        base_env = {
            **os.environ,
            "AIRFLOW_HOME": tmp,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AWS_ACCESS_KEY_ID": "testing",  # moto accepts any credentials
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        files: dict[tuple[str, int], dict[str, Any]] = {}
        reports: dict[tuple[str, int], dict[str, Any]] = {}
        curl_files: dict[int, float] = {}
        cpu_per_gib: dict[tuple[str, int], float] = {}
        curl_reports: dict[int, float] = {}
        moto = MotoServer("bench") if has_s3 else None
        if moto is not None:
            moto.__enter__()
            base_env["AWS_ENDPOINT_URL"] = moto.url  # ObjectStoragePath without conn_id: botocore's env
            base_env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"endpoint_url": moto.url, "region_name": "us-east-1"},
                }
            )
        out_dir = Path(tmp) / "out"
        try:
            with EmulatorProcess(["demo"]) as emu:
                env = {
                    **base_env,
                    "AIRFLOW_CONN_FLOWRUNS_DEMO_DEFAULT": json.dumps(
                        {"conn_type": "flowruns_demo", "host": emu.url("demo", "/v1"), "password": TOKEN}
                    ),
                }
                for size in sizes:
                    run_id = start_run(emu, size)
                    url = emu.url("demo", f"/v1/runs/{run_id}/result")
                    curl_runs, curl_cpu, our_runs = [], [], []
                    curl_out = Path(tmp) / "curl.out"
                    for _ in range(1 if smoke else FILE_PAIRS):
                        # Each side starts right after the other's file is written back and
                        # deleted: see FILE_PAIRS for why the order matters on a VM.
                        os.sync()
                        shutil.rmtree(out_dir, ignore_errors=True)
                        seconds, cpu = curl(url, curl_out)
                        curl_runs.append(seconds)
                        curl_cpu.append(cpu)
                        files[("curl", size)] = {"size": curl_out.stat().st_size}
                        our_runs.append(
                            ours(
                                run_id, f"file://{out_dir}", env, just_before=partial(_sync_unlink, curl_out)
                            )
                        )
                    shutil.rmtree(out_dir, ignore_errors=True)
                    curl_files[size] = statistics.median(curl_runs)
                    cpu_per_gib[("curl", size)] = statistics.median(curl_cpu) * GIB / size
                    cpu_per_gib[("ours", size)] = statistics.median(o["cpu_s"] for o in our_runs) * GIB / size
                    files[("file", size)] = _median_run(our_runs)
                    report.notes.append(
                        f"bench 3: result file to file://, {size // MIB} MiB, curl's time / ours in each "
                        "of the alternating pairs: "
                        + ", ".join(
                            f"{c / o['seconds']:.2f}x" for c, o in zip(curl_runs, our_runs, strict=True)
                        )
                    )
                    if moto is not None:
                        _s3(report, files, size, partial(ours, run_id, "s3://bench/results", env))
            for size in sizes:
                rows = report_rows(size)
                # One emulator per size: the report's row count is fixed when the emulator starts.
                with EmulatorProcess(["habu"], env={"FLOWRUNS_HABU_BIG_REPORT_ROWS": str(rows)}) as emu:
                    run_id, bearer = habu_report_run(emu)
                    url = emu.url("habu", f"/v1/cleanroom-question-runs/{run_id}/data")
                    curl_reports[size] = curl_pages(url, rows, bearer, Path(tmp) / "curl.out")
                    json_bytes = (Path(tmp) / "curl.out").stat().st_size
                    (Path(tmp) / "curl.out").unlink()
                    env = {
                        **base_env,
                        "AIRFLOW_CONN_HABU_DEFAULT": json.dumps(
                            {
                                "conn_type": "habu",
                                "host": emu.url("habu", "/v1"),
                                "login": HABU_CLIENT,
                                "password": HABU_SECRET,
                            }
                        ),
                    }
                    for dest, uri in (("file", f"file://{out_dir}"), ("s3", "s3://bench/reports")):
                        if dest == "s3" and moto is None:
                            continue
                        # Habu mints 2 tokens a day and each worker process mints one: a new day.
                        emu.control("POST", "clock", json={"advance": 90000})
                        if dest == "s3":
                            if not _s3(report, reports, size, partial(ours, run_id, uri, env, kind="report")):
                                continue
                        else:
                            reports[(dest, size)] = ours(run_id, uri, env, kind="report")
                        if reports[(dest, size)]["rows"] != rows:
                            raise RuntimeError(
                                f"report to {dest} wrote {reports[(dest, size)]['rows']} rows, expected {rows}"
                            )
                        shutil.rmtree(out_dir, ignore_errors=True)
                    # Same report, same pages: both speeds count the report's CSV bytes, so their
                    # ratio is curl's time over ours.
                    csv_bytes = reports[("file", size)]["size"]
                    reports[("curl", size)] = {"size": csv_bytes, "json_bytes": json_bytes}
        finally:
            if moto is not None:
                moto.__exit__(None, None, None)
    for (dest, size), res in files.items():
        if res["size"] != size:
            raise RuntimeError(f"transfer to {dest} wrote {res['size']} bytes, expected {size}")
    for size in sizes:
        report.add(
            Row(
                f"3 transfer result file -> file:// {size // MIB} MiB",
                "CPU per GiB, user + system (medians)",
                cpu_per_gib[("ours", size)],
                cpu_per_gib[("curl", size)],
                "s",
                "(reported)",
                None,
                baseline_name="curl -o to a file",
            )
        )
    _rows(
        report,
        "result file",
        files,
        curl_files,
        sizes,
        smoke=smoke,
        throughput_goal=True,
        baseline="curl -o to a file",
    )
    _rows(
        report,
        "paginated report",
        reports,
        curl_reports,
        sizes,
        smoke=smoke,
        throughput_goal=False,
        baseline="curl of the same pages to a file",
    )
    for size in sizes:
        if ("file", size) in reports:
            report.notes.append(
                f"bench 3: the {size // MIB} MiB report: {reports[('file', size)]['rows']:,} rows in "
                f"{-(-reports[('file', size)]['rows'] // REPORT_PAGE):,} pages of {REPORT_PAGE}; our CSV is "
                f"{reports[('file', size)]['size'] / MIB:.0f} MiB, the pages curl fetched (JSON) "
                f"{reports[('curl', size)]['json_bytes'] / MIB:.0f} MiB; both throughputs count the CSV's "
                "bytes (the ratio is curl's time / ours)."
            )

"""The benchmark harness runs end to end at smoke size (seconds) and its report is well formed.

Nothing here judges speed (that is what ``make bench`` and its ratios are for): only that every
benchmark produced every row, with sane, consistent numbers, so the harness cannot rot.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The benchmarks and the harness they use live in dev/, outside the wheel.
DEV = ROOT / "dev"


# Measures our code on the newest Airflow; the floor run skips it to keep CI short.
pytestmark = pytest.mark.newest_only


def test_smoke_run_produces_every_row(tmp_path):
    out = tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(DEV), os.environ.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        timeout=900,  # a hang guard, not a speed check: a loaded clean-clone run took over 300 s
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = out.read_text()
    assert "- command: `python -m benchmarks --smoke" in text and "- cpu: " in text
    rows = [
        line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| benchmark")
    ]
    by_bench: dict[str, list[list[str]]] = {}
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 7, line
        by_bench.setdefault(cells[0][0], []).append(cells)
    assert sorted(by_bench) == ["1", "2", "3", "4"]
    assert len(by_bench["1"]) == 2  # time and memory
    # RSS, CPU, lag, connections, polls; and CPU on httpx's own transport when aiohttp is installed
    assert len(by_bench["2"]) == (6 if find_spec("aiohttp") else 5)
    assert len(by_bench["4"]) == 9  # calls, p95 latency and the oracle's calls for three spreads
    # per destination (file://, s3:// on moto: the s3 extra installs s3fs) and kind: two
    # throughputs, the peak and the peak the transfer added; and the result file's CPU per GiB
    # against curl's, at both sizes
    assert len(by_bench["3"]) == 18
    for cells in rows:
        if cells[1].startswith(("event-loop lag", "TCP")) or "oracle" in cells[1] or "added" in cells[0]:
            continue  # the oracle is n/a when a smoke-sized sample cannot reach the target at all
        assert cells[2] != "n/a" and float(cells[2].replace(",", "")) > 0, cells  # ours is always measured
    density = {c[1]: c for c in by_bench["2"]}
    polls = float(density["status polls (sanity)"][2].replace(",", ""))
    assert polls >= 20  # every one of the 20 triggers polled at least once
    assert 1 <= float(density["TCP connections opened"][2]) <= polls
    from benchmarks.parse_cost import dbt_available

    if not dbt_available():
        assert "dbt-cloud is NOT installed here" in text  # the skipped baseline is said out loud

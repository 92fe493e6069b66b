"""Result rows, the printed table, and docs/benchmarks.md (with the machine and the command)."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import tomllib

#: The repository (pyproject's [project.urls] Source): docs/benchmarks.md links into it absolutely, so
#: the link holds on the docs site, where files outside docs/ are not pages.
REPOSITORY = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"][
    "urls"
]["Source"]


@dataclass
class Row:
    """One measured number of ours against the baseline's, and whether the issue's goal holds.

    ``ratio`` is ours / baseline (lower is better for every metric here); ``met`` is None when the
    goal cannot be judged (no baseline in this environment, or a smoke-sized run).
    """

    bench: str
    metric: str
    ours: float | None
    baseline: float | None
    unit: str
    goal: str
    met: bool | None = None
    baseline_name: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline in (None, 0):
            return None
        return self.ours / self.baseline  # type: ignore[operator]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[value]


def table(rows: list[Row]) -> str:
    """A Markdown table (also readable as printed text)."""
    head = "| benchmark | metric | ours | baseline | ours/baseline | goal | met |"
    lines = [head, "|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        base = _num(r.baseline) + (
            f" ({r.baseline_name})" if r.baseline_name and r.baseline is not None else ""
        )
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "n/a"
        metric = f"{r.metric} [{r.unit}]" if r.unit else r.metric
        lines.append(
            f"| {r.bench} | {metric} | {_num(r.ours)} | {base} | {ratio} | {r.goal} | {_met(r.met)} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": mem,
        "os": platform.platform(),
        "load average at the end (1/5/15 min; other work shares this machine)": " / ".join(
            f"{x:.1f}" for x in os.getloadavg()
        ),
        "python": sys.version.split()[0],
        "apache-airflow": ver("apache-airflow"),
        "apache-airflow-providers-dbt-cloud": ver("apache-airflow-providers-dbt-cloud"),
    }


def markdown(report: Report, *, command: str, smoke: bool) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# Benchmarks",
        "",
        "Every number is ours against a baseline measured side by side in the same invocation; "
        "ours/baseline below 1 is better, except throughput (MiB/s), where above 1 is better. Goals are "
        "the ones issue 7 set; a goal not met is reported "
        f"as measured. How each benchmark works: [dev/benchmarks/README.md]({REPOSITORY}/blob/main/dev/benchmarks/README.md).",
        "",
        f"- command: `{command}`" + (" (smoke-sized: goals not judged)" if smoke else ""),
        f"- measured: {when}",
        *(f"- {k}: {v}" for k, v in machine().items()),
        "",
        table(report.rows),
        "",
    ]
    if report.notes:
        parts += ["## Notes from this run", "", *(f"- {n}" for n in report.notes), ""]
    return "\n".join(parts)

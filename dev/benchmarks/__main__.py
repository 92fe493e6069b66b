"""``python -m benchmarks [--smoke] [--only N ...] [--out docs/benchmarks.md]``: run, print, write."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from benchmarks import density, parse_cost, polling, transfer
from benchmarks.report import Report, markdown, table

BENCHES = {"1": parse_cost.run, "2": density.run, "3": transfer.run, "4": polling.run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="seconds, not minutes: checks the harness only")
    parser.add_argument("--only", action="append", choices=sorted(BENCHES), help="repeatable; default: all")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (e.g. docs/benchmarks.md)")
    parser.add_argument("--command", default=None, help="the command to record in the report")
    args = parser.parse_args(argv)
    report = Report()
    for key in args.only or sorted(BENCHES):
        started = time.monotonic()
        BENCHES[key](report, smoke=args.smoke)
        print(f"benchmark {key} done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print(table(report.rows))
    for note in report.notes:
        print(f"- {note}")
    if args.out:
        command = args.command or shlex.join(["python", "-m", "benchmarks", *(argv or sys.argv[1:])])
        args.out.write_text(markdown(report, command=command, smoke=args.smoke))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

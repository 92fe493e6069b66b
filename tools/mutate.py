"""``make mutate``: mutation testing of the engine, one module at a time against its fast tests.

For each module in ``TARGETS`` (or the ones named on the command line) this runs mutmut with only
that module mutated and only that module's fast test files selected, counts what the tests did to
each mutant, leaves out the mutants ``tools/mutation_equivalents.toml`` declares equivalent (each
with its reason), and writes the per-module score into ``docs/mutation.md``.

Why one mutmut run per module, each in its own work directory (``.mutate/<module>/``): mutmut reads
its settings from the working directory's ``setup.cfg``, and its test selection is global; a work
directory per module gives each its own settings and its own ``mutants/`` cache, so
``mutmut show`` / ``mutmut results`` can be run there afterwards. The work directory holds symlinks
to the package, the tests and ``pyproject.toml`` (pytest's settings), so nothing is copied by hand
and the repository root gets no mutmut settings of its own.

What mutmut does not mutate (so no score here covers it): module-level constants, class bodies
(dataclass field defaults, enum members) and decorated functions other than ``@staticmethod`` /
``@classmethod`` (``@property``, ``@contextmanager``). docs/mutation.md says which mutants were checked
by hand instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # mutmut installs toml there
    import toml as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_flowruns"
WORK = ROOT / ".mutate"
EQUIVALENTS = ROOT / "tools" / "mutation_equivalents.toml"
REPORT = ROOT / "docs" / "mutation.md"
BEGIN, END = "<!-- mutate:scores:begin -->", "<!-- mutate:scores:end -->"
#: Per test, not per mutant: a mutant that makes a test wait forever is a kill, found in a minute
#: instead of the suite's 600 s.
TEST_TIMEOUT_S = 60

#: Each module of core/ and triggers/ -> the fast test files (no dag.test(), no Airflow stack) that
#: exercise it. mutmut then runs, for each mutant, only those of these tests that call the mutated
#: function. Declared once: the driver, the Makefile and docs/mutation.md read it from here.
TARGETS: dict[str, tuple[str, ...]] = {
    "core/aiohttp_transport.py": ("tests/test_aiohttp_transport.py",),
    "core/auth.py": ("tests/test_http_engine.py", "tests/test_shared_tokens.py"),
    "core/clients.py": ("tests/test_http_engine.py", "tests/test_download_transport.py"),
    "core/create_budget.py": ("tests/test_create_budget.py",),
    "core/download_transport.py": ("tests/test_download_transport.py",),
    "core/errors.py": (
        "tests/test_http_engine.py",
        "tests/test_core_units.py",
        "tests/test_core_public_calls.py",
    ),
    "core/history.py": ("tests/test_poll_schedule.py",),
    "core/http.py": ("tests/test_http_engine.py", "tests/test_core_public_calls.py"),
    "core/leases.py": ("tests/test_shared_tokens.py", "tests/test_create_budget.py"),
    "core/models.py": ("tests/test_contract_fixtures.py",),
    "core/outcome.py": ("tests/test_core_units.py", "tests/test_trigger.py"),
    "core/pages.py": ("tests/test_core_units.py",),
    "core/polling.py": ("tests/test_core_units.py", "tests/test_http_engine.py"),
    "core/ratelimit.py": ("tests/test_core_units.py",),
    "core/rows.py": ("tests/test_rows.py",),
    "core/runs.py": ("tests/test_core_units.py",),
    "core/schedule.py": ("tests/test_poll_schedule.py",),
    "core/shared_tokens.py": ("tests/test_shared_tokens.py",),
    "core/storage.py": (
        "tests/test_storage.py",
        "tests/test_bad_input.py::test_vendor_file_names_never_leave_the_destination",
        # the whole file: only its download_to tests call into storage, so only they run per mutant
        "tests/test_download_transport.py",
    ),
    "core/timestamps.py": ("tests/test_core_public_calls.py",),
    "core/variables.py": ("tests/test_shared_tokens.py", "tests/test_create_budget.py"),
    "triggers/run.py": ("tests/test_trigger.py",),
}

#: mutmut's exit-code verdicts, grouped the way the score counts them.
KILLED = {"killed", "timeout", "segfault", "caught by type check"}
NOT_KILLED = {"survived", "no tests", "suspicious"}


@dataclass
class Score:
    module: str
    tests: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict)
    survivors: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    #: Only the earlier run's survivors were re-tested (--survivors): the wall time is not the module's.
    survivors_only: bool = False
    date: str = ""

    @property
    def killed(self) -> int:
        return sum(self.counts.get(k, 0) for k in KILLED)

    @property
    def scored(self) -> int:
        """Non-equivalent mutants mutmut checked: the score's denominator."""
        return self.killed + len(self.survivors)

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.scored if self.scored else 100.0


def work_dir(module: str) -> Path:
    return WORK / module.removesuffix(".py").replace("/", ".")


def prepare(module: str, tests: tuple[str, ...], *, keep: bool) -> Path:
    """The module's work directory: symlinks to the sources and a setup.cfg naming only it."""
    wd = work_dir(module)
    if wd.exists() and not keep:
        shutil.rmtree(wd)  # mutmut would not re-test a cached survivor against a new test
    wd.mkdir(parents=True, exist_ok=True)
    for name in (PACKAGE, "tests", "dev", "pyproject.toml"):  # dev/: the harness (pytest's pythonpath)
        link = wd / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name)
    newline = "\n    "
    (wd / "setup.cfg").write_text(
        "# Written by tools/mutate.py; edit TARGETS there instead.\n"
        "[mutmut]\n"
        f"source_paths = {PACKAGE}\n"
        f"only_mutate = {PACKAGE}/{module}\n"
        f"pytest_add_cli_args_test_selection ={newline}{newline.join(tests)}\n"
        f"pytest_add_cli_args ={newline}-p{newline}no:cacheprovider{newline}--timeout={TEST_TIMEOUT_S}\n"
        "use_git_change_detection = false\n"
    )
    return wd


def run_mutmut(wd: Path, jobs: int, names: list[str]) -> tuple[int, float]:
    """``mutmut run`` in the work directory (only ``names`` if given: mutmut re-tests named mutants
    even when it has a verdict for them)."""
    mutmut = Path(sys.executable).parent / "mutmut"
    started = time.monotonic()
    with open(wd / "mutmut.log", "a") as log:
        rc = subprocess.call(  # noqa: S603 - the venv's own mutmut, fixed arguments
            [str(mutmut), "run", "--max-children", str(jobs), *names], cwd=wd, stdout=log, stderr=log
        )
    return rc, time.monotonic() - started


def not_killed(module: str, wd: Path, only: str | None = None) -> list[str]:
    """The full names of the mutants the last run in ``wd`` did not kill (or had verdict ``only``)."""
    import json

    from mutmut.stats import status_by_exit_code

    meta_path = wd / "mutants" / PACKAGE / f"{module}.meta"
    if not meta_path.exists():
        return []
    meta = json.loads(meta_path.read_text())
    verdicts = {k: status_by_exit_code[v] for k, v in meta["exit_code_by_key"].items()}
    return [k for k, v in verdicts.items() if (v == only if only else v not in KILLED)]


def collect(module: str, tests: tuple[str, ...], wd: Path, equivalents: dict[str, str]) -> Score:
    """Read mutmut's verdicts from its meta file (mutants/<path>.meta: mutant name -> exit code)."""
    import json

    from mutmut.stats import status_by_exit_code

    meta = json.loads((wd / "mutants" / PACKAGE / f"{module}.meta").read_text())
    score = Score(module, tests, date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    for full_name, exit_code in sorted(meta["exit_code_by_key"].items(), key=lambda kv: _natural(kv[0])):
        name = full_name.rpartition(".")[2]
        status = status_by_exit_code[exit_code]
        score.counts[status] = score.counts.get(status, 0) + 1
        if name in equivalents:
            if status in NOT_KILLED:
                score.equivalent.append(name)
            else:  # listed as equivalent but a test now tells it apart: the list is out of date
                score.stale.append(name)
        elif status in NOT_KILLED or status == "not checked":
            score.survivors.append(f"{name} ({status})")
    score.stale += sorted(set(equivalents) - {k.rpartition(".")[2] for k in meta["exit_code_by_key"]})
    return score


def _natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("__mutmut_")
    return stem, int(number) if number.isdigit() else 0


def load_equivalents() -> dict[str, dict[str, str]]:
    """``[core/storage.py]`` tables of ``"mutant name" = "why it changes nothing observable"``."""
    if not EQUIVALENTS.exists():
        return {}
    return {module: dict(table) for module, table in tomllib.loads(EQUIVALENTS.read_text()).items()}


def machine() -> str:
    """The machine as the benchmark report describes it (one description for both reports)."""
    sys.path.insert(0, str(ROOT / "dev"))  # the repository's benchmarks package: run from any folder
    import mutmut

    from benchmarks.report import machine as described

    return f"{described()['cpu']}, Python {platform.python_version()}, mutmut {mutmut.__version__}"


def row(score: Score) -> str:
    c = score.counts
    return (
        f"| `{score.module}` | {score.scored + len(score.equivalent)} | {c.get('killed', 0)} "
        f"| {c.get('timeout', 0)} | {c.get('survived', 0)} | {c.get('no tests', 0)} "
        f"| {len(score.equivalent)} | **{score.percent:.0f} %** "
        f"| {score.wall_s:.0f} s{' (survivors re-tested)' if score.survivors_only else ''} | {score.date} |"
    )


def write_report(scores: list[Score], command: str) -> None:
    """Replace the rows of the modules just run in docs/mutation.md's score table; keep the rest."""
    text = REPORT.read_text()
    head, _, rest = text.partition(BEGIN)
    old, _, tail = rest.partition(END)
    rows: dict[str, str] = {}
    survivors: dict[str, str] = {}
    for line in old.splitlines():
        if line.startswith("| `"):
            rows[line.split("`")[1]] = line
        elif line.startswith("- `"):
            survivors[line.split("`")[1]] = line
    for s in scores:
        rows[s.module] = row(s)
        listed = ", ".join(f"`{n}`" for n in s.survivors[:20]) or "none"
        if len(s.survivors) > 20:
            listed += f" and {len(s.survivors) - 20} more (`mutmut results` in {work_dir(s.module).relative_to(ROOT)})"
        stale = f" Out-of-date equivalents: {', '.join(s.stale)}." if s.stale else ""
        survivors[s.module] = f"- `{s.module}` ({', '.join(s.tests)}): {listed}.{stale}"
    order = [m for m in TARGETS if m in rows]
    body = [
        "",
        f"Last run: `{command}` on {machine()}.",
        "",
        "| module | mutants | killed | timeout | survived | no tests | equivalent | score | wall time | date |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(rows[m] for m in order),
        "",
        "Mutants not killed (not listed as equivalent), per module, with the tests it ran against:",
        "",
        *(survivors[m] for m in order if m in survivors),
        "",
    ]
    REPORT.write_text(head + BEGIN + "\n".join(body) + END + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="e.g. core/storage.py (default: every module in TARGETS)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested side by side (default 2)")
    parser.add_argument("--keep", action="store_true", help="reuse .mutate/<module>/mutants (mutmut's cache)")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="re-test only the mutants the last run of each module did not kill, against the tests as "
        "they are now (implies --keep; the other verdicts stand: valid while the module's code is unchanged)",
    )
    parser.add_argument("--no-report", action="store_true", help="print the scores, leave docs/mutation.md")
    args = parser.parse_args(argv)
    modules = [m.removeprefix(f"{PACKAGE}/") for m in args.modules] or list(TARGETS)
    if unknown := [m for m in modules if m not in TARGETS]:
        parser.error(f"not in tools/mutate.py TARGETS: {', '.join(unknown)}")
    equivalents = load_equivalents()
    scores = []
    for module in modules:
        wd = prepare(module, TARGETS[module], keep=args.keep or args.survivors)
        names = not_killed(module, wd) if args.survivors else []
        if args.survivors and not names:
            if not (wd / "mutants" / PACKAGE / f"{module}.meta").exists():
                print(f"== {module}: no earlier run in {wd.relative_to(ROOT)}; skipped", flush=True)
                continue
            print(f"== {module}: the earlier run killed every mutant; its verdicts are reported", flush=True)
        what = f"{len(names)} earlier survivors" if names else "every mutant"
        print(
            f"== {module}: {what}, in {wd.relative_to(ROOT)}, against {', '.join(TARGETS[module])}",
            flush=True,
        )
        rc, wall = run_mutmut(wd, args.jobs, names) if names or not args.survivors else (0, 0.0)
        if rc == 0 and names and (fresh := not_killed(module, wd, only="not checked")):
            # functions edited since the earlier run got new mutants: test those too
            rc, more = run_mutmut(wd, args.jobs, fresh)
            wall += more
        if rc != 0:
            log = (wd / "mutmut.log").read_text(errors="replace")
            if "could not find any test case for any mutant" not in log:
                print(f"!! mutmut failed (exit {rc}); see {wd / 'mutmut.log'}", flush=True)
                return rc
            # none of the module's fast tests calls it: every mutant survives, and the table says so
            print(f"!! no test in {', '.join(TARGETS[module])} calls {module}", flush=True)
        score = collect(module, TARGETS[module], wd, equivalents.get(module, {}))
        score.wall_s, score.survivors_only = wall, bool(names)
        scores.append(score)
        print(row(score), flush=True)
        for name in score.survivors:
            print(f"   not killed: {name}")
        if score.stale:
            print(f"   !! out-of-date equivalents: {', '.join(score.stale)}")
    if not args.no_report:
        command = "make mutate" + (f' MODULES="{" ".join(args.modules)}"' if args.modules else "")
        write_report(scores, command)
        print(f"scores written to {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A user's type checker over DAGs that use the provider: the package ships ``py.typed`` (PEP 561),
so mypy reads our signatures instead of skipping the modules as ``import-untyped``, and enumerated
parameters are ``Literal`` types whose runtime checks come from the same declaration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

import airflow_provider_flowruns
from airflow_provider_flowruns.core.errors import FlowRunsConfigError
from airflow_provider_flowruns.core.schedule import POLL_SCHEDULES, PollScheduleMode
from airflow_provider_flowruns.operators.activepieces import ActivepiecesTriggerFlowOperator, OnPause
from airflow_provider_flowruns.operators.tableflow import OnReview, TableflowRunFlowOperator
from airflow_provider_flowruns.vendors.amperity import AUTH_MODES, RUN_MODES, AmperityAuth, RunMode

ROOT = Path(__file__).resolve().parent.parent
# The example DAGs, and those the docs include their snippets from (example_dags/docs/).
EXAMPLES = sorted(str(p) for p in (ROOT / "example_dags").glob("example_*.py")) + sorted(
    str(p) for p in (ROOT / "example_dags" / "docs").glob("*.py")
)


def _mypy(tmp_path: Path, *files: str) -> subprocess.CompletedProcess[str]:
    """mypy as a user runs it: from elsewhere (not our project config), the package importable as
    an installed one (on PYTHONPATH, where PEP 561's py.typed rule applies, as in site-packages)."""
    package_root = Path(airflow_provider_flowruns.__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), *files],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(package_root)},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_package_is_marked_typed():
    assert (Path(airflow_provider_flowruns.__file__).parent / "py.typed").is_file()


def test_mypy_over_the_example_dags_finds_no_error_and_enumerations_are_checked(tmp_path):
    """Before: ``Skipping analyzing "airflow_provider_flowruns.operators.amperity": module is
    installed, but missing library stubs or py.typed marker [import-untyped]`` for every example,
    and a misspelt ``run_mode`` or ``on_review`` passed any type check. One mypy run (it reads
    Airflow's sources each time): the examples and a DAG with two typos."""
    typos = tmp_path / "typo_dag.py"
    typos.write_text(
        "from airflow_provider_flowruns.operators.amperity import AmperityRunWorkflowOperator\n"
        "from airflow_provider_flowruns.operators.tableflow import TableflowRunFlowOperator\n"
        'AmperityRunWorkflowOperator(task_id="a", config_id="cg-1", run_mode="refrsh")\n'
        'TableflowRunFlowOperator(task_id="t", flow_id="f", files={"a": "x"}, on_review="skip")\n'
    )
    result = _mypy(tmp_path, *EXAMPLES, str(typos))
    errors = [line for line in result.stdout.splitlines() if ": error: " in line]
    assert all(line.startswith("typo_dag.py:") for line in errors), result.stdout  # none in the examples
    assert [line.split(": error: ")[1] for line in errors] == [
        'Argument "run_mode" to "AmperityRunWorkflowOperator" has incompatible type "Literal[\'refrsh\']"; '
        "expected \"Literal['source', 'refresh', 'full'] | None\"  [arg-type]",
        'Argument "on_review" to "TableflowRunFlowOperator" has incompatible type "Literal[\'skip\']"; '
        "expected \"Literal['wait', 'fail', 'succeed']\"  [arg-type]",
    ]
    assert result.stdout.strip().endswith(
        f"Found 2 errors in 1 file (checked {len(EXAMPLES) + 1} source files)"
    )


def test_runtime_checks_take_their_values_from_the_literal_types():
    assert RUN_MODES == get_args(RunMode) == ("source", "refresh", "full")
    assert AUTH_MODES == get_args(AmperityAuth) == ("token", "client_credentials")
    assert POLL_SCHEDULES == get_args(PollScheduleMode) == ("adaptive", "fixed")
    with pytest.raises(
        FlowRunsConfigError, match="on_pause must be one of 'wait', 'return', 'fail', got 'skip'"
    ):
        ActivepiecesTriggerFlowOperator(task_id="a", flow_id="f", on_pause="skip")  # type: ignore[arg-type]
    with pytest.raises(
        FlowRunsConfigError, match="on_review must be one of 'wait', 'fail', 'succeed', got 'skip'"
    ):
        TableflowRunFlowOperator(task_id="t", flow_id="f", files={"a": "x"}, on_review="skip")  # type: ignore[arg-type]
    assert get_args(OnPause) == ("wait", "return", "fail") and get_args(OnReview) == (
        "wait",
        "fail",
        "succeed",
    )

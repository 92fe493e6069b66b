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
from airflow_provider_flowruns.core.errors import FlowRunsConfigError, RunFailed
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
        "expected \"Literal['wait', 'succeed', 'fail']\"  [arg-type]",
    ]
    assert result.stdout.strip().endswith(
        f"Found 2 errors in 1 file (checked {len(EXAMPLES) + 1} source files)"
    )


def test_runtime_checks_take_their_values_from_the_literal_types():
    assert RUN_MODES == get_args(RunMode) == ("source", "refresh", "full")
    assert AUTH_MODES == get_args(AmperityAuth) == ("token", "client_credentials")
    assert POLL_SCHEDULES == get_args(PollScheduleMode) == ("adaptive", "fixed")
    with pytest.raises(
        FlowRunsConfigError, match="on_pause must be one of 'wait', 'succeed', 'fail', got 'skip'"
    ):
        ActivepiecesTriggerFlowOperator(task_id="a", flow_id="f", on_pause="skip")  # type: ignore[arg-type]
    with pytest.raises(
        FlowRunsConfigError, match="on_review must be one of 'wait', 'succeed', 'fail', got 'skip'"
    ):
        TableflowRunFlowOperator(task_id="t", flow_id="f", files={"a": "x"}, on_review="skip")  # type: ignore[arg-type]
    assert get_args(OnPause) == get_args(OnReview) == ("wait", "succeed", "fail")


def test_one_pause_option_and_the_old_spellings_still_work_for_a_release():
    """Activepieces' ``on_pause="return"`` and the sensors' ``succeed_on_pause=True`` were the old
    names of ``on_pause="succeed"``: they still work, with a deprecation warning."""
    from airflow.exceptions import AirflowProviderDeprecationWarning

    from airflow_provider_flowruns.core.runs import RunState
    from airflow_provider_flowruns.sensors.activepieces import ActivepiecesFlowRunSensor

    assert issubclass(AirflowProviderDeprecationWarning, DeprecationWarning)
    with pytest.warns(DeprecationWarning, match="on_pause='return' is deprecated; use on_pause='succeed'"):
        op = ActivepiecesTriggerFlowOperator(task_id="a", flow_id="f", on_pause="return")  # type: ignore[arg-type]
    assert op.on_pause == "succeed" and op.stop_states() == {RunState.PAUSED}
    with pytest.warns(
        DeprecationWarning, match="succeed_on_pause=True is deprecated; use on_pause='succeed'"
    ):
        sensor = ActivepiecesFlowRunSensor(task_id="s", run_id="r", succeed_on_pause=True)
    assert sensor.on_pause == "succeed"
    with pytest.warns(DeprecationWarning):
        assert ActivepiecesFlowRunSensor(task_id="s2", run_id="r", succeed_on_pause=False).on_pause == "wait"
    with pytest.raises(FlowRunsConfigError, match="succeed_on_pause=True and on_pause='fail' disagree"):
        ActivepiecesFlowRunSensor(task_id="s3", run_id="r", succeed_on_pause=True, on_pause="fail")
    with pytest.raises(
        FlowRunsConfigError, match="on_pause must be one of 'wait', 'succeed', 'fail', got 'skip'"
    ):
        ActivepiecesFlowRunSensor(task_id="s4", run_id="r", on_pause="skip")  # type: ignore[arg-type]
    event = {"status": "paused", "run_id": "r", "vendor_status": "PAUSED", "message": "waiting for input"}
    ActivepiecesFlowRunSensor(task_id="s5", run_id="r", on_pause="succeed").execute_complete({}, event)
    with pytest.raises(
        RunFailed, match=r"Activepieces run r is paused \(PAUSED\) and on_pause='fail': waiting for input"
    ):
        ActivepiecesFlowRunSensor(task_id="s6", run_id="r", on_pause="fail").execute_complete({}, event)

"""The chained example pipeline (``example_dags/example_flowruns_pipeline.py``) for the process-fault
stack, whose scheduler creates interval runs: there the pipeline's two catchup intervals are made by
the scheduler itself, as in production, not by a backfill.

The DAG is loaded from the example file and re-homed here, so Airflow finds it in this bundle when a
worker parses the file again to run its tasks.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from airflow.sdk import DAG

_EXAMPLE = Path(__file__).resolve().parents[3] / "example_dags" / "example_flowruns_pipeline.py"

dag: DAG = runpy.run_path(str(_EXAMPLE))["dag"]
dag.fileloc = __file__

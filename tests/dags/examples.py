"""Expose the example DAGs to the test bundle, so ``dag.test()`` can run them as users would."""

from __future__ import annotations

import runpy
from pathlib import Path

from airflow.sdk import DAG

for _path in sorted((Path(__file__).resolve().parents[2] / "example_dags").glob("example_*.py")):
    for _value in runpy.run_path(str(_path)).values():
        if isinstance(_value, DAG):
            globals()[_value.dag_id] = _value

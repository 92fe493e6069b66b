"""The one place that decides which Airflow features exist (copied pattern, per Airflow's advice)."""

from __future__ import annotations

from airflow import __version__ as _airflow_version
from packaging.version import Version

_v = Version(_airflow_version)
AIRFLOW_VERSION = (_v.major, _v.minor, _v.micro)

#: ``BaseTrigger.on_kill`` (PR #65590) and ``context["task_state_store"]`` arrived in 3.3.
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= (3, 3, 0)


def default_deferrable() -> bool:
    from airflow.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)

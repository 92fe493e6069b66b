"""Operator and sensor parameters, checked once for every vendor.

Run operators, sensors, transfers and the bulk operators take the same kinds of parameters
(durations, ``hook_params``, values that may still be templates) and name the same task instance
when they look for a run they started. Each rule is written here once, so siblings cannot drift
(they had four template checks and three spellings of the task key). Nothing here imports more
than the standard library and ``core.errors``: DAG files import it at parse.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, Union, get_args

from airflow_provider_flowruns.core.errors import FlowRunsConfigError

if TYPE_CHECKING:
    from airflow.sdk import XComArg

#: A string, or another task's output resolved to one at run time. A run id usually comes from the
#: task that started the run (``start.output``) or a template; typed ``str`` alone, the ordinary
#: ``run_id=start.output`` failed a user's mypy check. (``Union``: the ``|`` form would evaluate
#: ``XComArg`` at import, and DAG parsing should not import it for a type.)
RunIdArg: TypeAlias = Union[str, "XComArg"]


#: What a task does when the run it watches pauses (for a human, an approval, a delay): keep
#: waiting, succeed while it is paused (a later task resumes it), or fail. One name and one set of
#: values for every vendor's operators and every sensor (Tableflow calls its pause a review:
#: ``on_review``, same values).
OnPause = Literal["wait", "succeed", "fail"]
ON_PAUSE: tuple[OnPause, ...] = get_args(OnPause)


def on_pause_checked(
    value: Any, name: str = "on_pause", *, deprecated: dict[Any, OnPause] | None = None
) -> OnPause:
    """``value`` as an :data:`OnPause`; the error names the parameter. ``deprecated`` maps an old
    spelling (Activepieces' ``"return"``) to its value, with a deprecation warning (one release)."""
    if deprecated and value in deprecated:
        from airflow.exceptions import AirflowProviderDeprecationWarning

        warnings.warn(
            f"{name}={value!r} is deprecated; use on_pause={deprecated[value]!r}",
            AirflowProviderDeprecationWarning,
            stacklevel=3,
        )
        return deprecated[value]
    if value not in ON_PAUSE:
        raise FlowRunsConfigError(f"{name} must be one of {', '.join(map(repr, ON_PAUSE))}, got {value!r}")
    return value  # type: ignore[no-any-return]


def to_seconds(value: Any, name: str) -> float | None:
    """Validate a duration parameter (seconds or timedelta); the error names the parameter."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise FlowRunsConfigError(
            f"{name} must be a positive number of seconds or a timedelta, got {value!r}"
        )
    return float(value)


def default_poll_interval(conn_type: str, vendor_default: float) -> float:
    """The deployment's default poll interval for a vendor: ``[flowruns] <conn_type>_poll_interval``
    (e.g. ``AIRFLOW__FLOWRUNS__AMPERITY_POLL_INTERVAL=30``), else the vendor default. Never below the
    vendor floor: ``clamp_poll_interval`` applies that after."""
    from airflow.configuration import conf

    return conf.getfloat("flowruns", f"{conn_type}_poll_interval", fallback=vendor_default)


def hook_params_checked(hook_params: Any) -> dict[str, Any]:
    """``hook_params`` as plain keyword arguments: a trigger serializes them, so only numbers,
    strings and booleans are allowed."""
    if hook_params is None:
        return {}
    if not isinstance(hook_params, dict):
        raise FlowRunsConfigError(f"hook_params must be a dict, got {type(hook_params).__name__}")
    for key, value in hook_params.items():
        if value is not None and not isinstance(value, (int, float, str, bool)):
            raise FlowRunsConfigError(f"hook_params[{key!r}] must be a plain number or string")
    return dict(hook_params)


def is_templated(*values: Any) -> bool:
    """Whether any value is still a Jinja template (``{{ ... }}`` or ``{% ... %}``), itself or inside
    a list or tuple. Parse-time checks skip such values: they are checked once rendered."""
    for value in values:
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            return True
        if isinstance(value, (list, tuple)) and is_templated(*value):
            return True
    return False


def task_key(context: Any, sep: str = "/", *, unmapped: str | None = "-1") -> str:
    """The task instance a run belongs to: ``dag<sep>task<sep>run<sep>map index``.

    Operators tag the runs they start with it (a run name, a webhook marker, run metadata) so a
    retried task finds its run where Airflow has no task state store. An unmapped task's map index
    reads ``unmapped`` (``None``: left out).
    """
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    parts = [ti.dag_id, ti.task_id, ti.run_id]
    if map_index is not None and map_index >= 0:
        parts.append(map_index)
    elif unmapped is not None:
        parts.append(unmapped)
    return sep.join(str(p) for p in parts)

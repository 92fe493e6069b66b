"""Types of operator parameters that a DAG fills from another task, declared once.

A run id usually comes from the task that started the run (``start.output``, an ``XComArg``) or a
template (``"{{ ti.xcom_pull('start') }}"``); Airflow resolves either before ``execute``. Typed
``str`` alone, the ordinary ``run_id=start.output`` failed a user's mypy check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, Union

if TYPE_CHECKING:
    from airflow.sdk import XComArg

#: A string, or another task's output resolved to one at run time. (``Union``: the ``|`` form would
#: evaluate ``XComArg`` at import, and DAG parsing should not import it for a type.)
RunIdArg: TypeAlias = Union[str, "XComArg"]

"""Tableflow at DAG parse: hook defaults (see ``vendors``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_flowruns.vendors import HookRef

if TYPE_CHECKING:
    from airflow_provider_flowruns.hooks.tableflow import TableflowHook

TABLEFLOW: HookRef[TableflowHook] = HookRef(
    "airflow_provider_flowruns.hooks.tableflow.TableflowHook",
    conn_type="tableflow",
    default_conn_name="tableflow_default",
    default_poll_interval=30.0,
)
